// CAPABILITIES, MODE, QUIT, HELP, DATE (RFC 3977 §5, §7.1; RFC 4644 §2.3).
import { C } from "../codes.js";
import { multiline, status } from "../reply.js";
import { formatNntpDate } from "../../article/date.js";
import type { Command } from "./types.js";
import type { Session } from "../session.js";
import { offersStartTls } from "./starttls.js";
import { authCapabilities, mustLogin, who } from "./auth.js";

function capabilities(s: Session): string[] {
  const caps = ["VERSION 2", `IMPLEMENTATION ${s.backend.implementation}`];
  if (s.perms.read) {
    caps.push("READER", "HDR", "LIST ACTIVE ACTIVE.TIMES HEADERS NEWSGROUPS OVERVIEW.FMT", "NEWNEWS", "OVER MSGID");
    if (s.perms.post) caps.push("POST");
  }
  if (s.perms.transit) caps.push("IHAVE", "STREAMING");
  if (offersStartTls(s)) caps.push("STARTTLS");
  caps.push(...authCapabilities(s));
  return caps;
}

export const CAPABILITIES: Command = {
  run: (s, args) => {
    if (args.length > 1) return status(C.SYNTAX, "Usage: CAPABILITIES [keyword]");
    return multiline(C.CAPABILITIES, "Capability list:", capabilities(s));
  },
};

export const MODE: Command = {
  run: (s, args) => {
    const what = (args[0] ?? "").toUpperCase();
    if (args.length !== 1) return status(C.SYNTAX, "Usage: MODE READER | MODE STREAM");
    if (what === "READER") {
      if (!s.perms.read) return mustLogin(s, "read") ? status(C.AUTH_REQUIRED, "Authentication required") : status(C.DENIED, `Reading not permitted ${who(s)}`);
      return s.perms.post ? status(C.POSTING_OK, "Posting allowed") : status(C.NO_POSTING, "Posting prohibited");
    }
    if (what === "STREAM") {
      if (!s.perms.transit) return status(C.DENIED, `Transit not permitted from ${s.client}: ${s.perms.why ?? "not a configured peer"}`);
      s.streaming = true;
      return status(C.STREAMING_OK, "Streaming permitted");
    }
    return status(C.SYNTAX, `Unknown MODE ${what.slice(0, 20)}`);
  },
};

export const QUIT: Command = {
  run: (s) => {
    s.quit();
    return status(C.CLOSING, "Bye");
  },
};

export const HELP: Command = {
  run: () =>
    multiline(C.HELP, "Commands understood:", [
      "  ARTICLE|HEAD|BODY|STAT [<message-id>|number]",
      "  CAPABILITIES   DATE   HELP   QUIT   MODE READER|STREAM",
      "  AUTHINFO USER name   AUTHINFO PASS password   AUTHINFO SASL PLAIN [initial-response]",
      "  GROUP group   LISTGROUP [group [range]]   NEXT   LAST",
      "  LIST [ACTIVE|ACTIVE.TIMES|NEWSGROUPS [wildmat]|OVERVIEW.FMT|HEADERS [MSGID|RANGE]]",
      "  NEWGROUPS [yy]yymmdd hhmmss [GMT]   NEWNEWS wildmat [yy]yymmdd hhmmss [GMT]",
      "  OVER|XOVER [range|<message-id>]   HDR|XHDR field [range|<message-id>]   XPAT field range|<message-id> pattern...",
      "  POST   IHAVE <message-id>   CHECK <message-id>   TAKETHIS <message-id>",
    ]),
};

export const DATE: Command = {
  run: (_s, args) => (args.length ? status(C.SYNTAX, "Usage: DATE") : status(C.DATE, formatNntpDate(Date.now()))),
};
