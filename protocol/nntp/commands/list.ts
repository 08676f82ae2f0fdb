// LIST and its keywords, NEWGROUPS, NEWNEWS (RFC 3977 §7.3, §7.4, §7.6, §8.4; RFC 6048).
import { C } from "../codes.js";
import { multiline, pagedLines, status } from "../reply.js";
import { isWildmat, wildmat, wildmatError } from "../../article/wildmat.js";
import { parseNntpDate } from "../../article/date.js";
import { readable, readerDenied } from "./select.js";
import type { Command } from "./types.js";
import type { Session } from "../session.js";
import type { Group } from "../../../storage/groups.js";

/** RFC 3977 §8.4: the overview fields, in order; Xref:full as INN and newsreaders expect. */
export const OVERVIEW_FMT = ["Subject:", "From:", "Date:", "Message-ID:", "References:", ":bytes", ":lines", "Xref:full"];

function active(g: Group): string {
  return `${g.name} ${g.high} ${g.count === 0 ? g.high + 1 : g.low} ${g.status}`;
}

/** RFC 3977 §4: a malformed wildmat is the client's mistake (501), with the reason. */
export function badWildmat(pattern: string, single = false): string | undefined {
  if (!isWildmat(pattern)) return status(C.SYNTAX, `Invalid wildmat ${pattern.slice(0, 40).replace(/[^\x21-\x7e]/g, "?")}`);
  const why = wildmatError(pattern, single);
  return why ? status(C.SYNTAX, `Invalid wildmat: ${why.slice(0, 120)}`) : undefined;
}

function groupsMatching(s: Session, pattern: string | undefined): Group[] | string {
  // groups the client may not read are not listed (relay/access-rules.ts)
  const all = s.perms.readable ? s.backend.groups().filter((g) => readable(s, g.name)) : s.backend.groups();
  if (pattern === undefined) return all;
  const bad = badWildmat(pattern);
  if (bad) return bad;
  const m = wildmat(pattern);
  return all.filter((g) => m(g.name));
}

export const LIST: Command = {
  run: (s, args) => {
    const denied = readerDenied(s);
    if (denied) return denied;
    const keyword = (args[0] ?? "ACTIVE").toUpperCase();
    const arg = args[1];
    if (args.length > 2) return status(C.SYNTAX, "Usage: LIST [keyword [argument]]");
    switch (keyword) {
      case "ACTIVE": {
        const gs = groupsMatching(s, arg);
        return typeof gs === "string" ? gs : multiline(C.LIST_OK, "Newsgroups in form \"group high low status\"", gs.map(active));
      }
      case "ACTIVE.TIMES": {
        const gs = groupsMatching(s, arg);
        return typeof gs === "string" ? gs : multiline(C.LIST_OK, "Newsgroup creation times", gs.map((g) => `${g.name} ${g.created} ${g.creator}`));
      }
      case "NEWSGROUPS": {
        const gs = groupsMatching(s, arg);
        return typeof gs === "string" ? gs : multiline(C.LIST_OK, "Newsgroup descriptions", gs.map((g) => `${g.name}\t${g.description}`));
      }
      case "OVERVIEW.FMT":
        if (arg !== undefined) return status(C.SYNTAX, "LIST OVERVIEW.FMT takes no argument");
        return multiline(C.LIST_OK, "Order of fields in overview database", OVERVIEW_FMT);
      case "HEADERS": {
        const a = arg?.toUpperCase();
        if (a !== undefined && a !== "MSGID" && a !== "RANGE") return status(C.SYNTAX, "Usage: LIST HEADERS [MSGID|RANGE]");
        // RFC 3977 §8.6: ":" means any header may be asked for
        return multiline(C.LIST_OK, "Headers and metadata items supported", [":", ":bytes", ":lines"]);
      }
      case "DISTRIB.PATS":
      case "DISTRIBUTIONS":
      case "MODERATORS":
      case "MOTD":
      case "SUBSCRIPTIONS":
        return status(C.UNSUPPORTED, `LIST ${keyword} is not available on this server`);
      default:
        return status(C.SYNTAX, `Unknown LIST keyword ${keyword.slice(0, 30)}`);
    }
  },
};

/** Articles read at a time for NEWNEWS, by the index on arrival time. */
const NEWNEWS_PAGE = 1000;

/** RFC 3977 §7.3.2: date time [GMT]; this server's time is UTC either way. */
function since(args: string[]): number | undefined {
  if (args.length < 2 || args.length > 3) return undefined;
  if (args.length === 3 && args[2].toUpperCase() !== "GMT") return undefined;
  return parseNntpDate(args[0], args[1]);
}

export const NEWGROUPS: Command = {
  run: (s, args) => {
    const denied = readerDenied(s);
    if (denied) return denied;
    const t = since(args);
    if (t === undefined) return status(C.SYNTAX, "Usage: NEWGROUPS [yy]yymmdd hhmmss [GMT]");
    const gs = s.backend.groups().filter((g) => g.created * 1000 >= t && readable(s, g.name));
    return multiline(C.NEWGROUPS_OK, "List of new newsgroups follows", gs.map(active));
  },
};

export const NEWNEWS: Command = {
  run: async (s, args) => {
    const denied = readerDenied(s);
    if (denied) return denied;
    const t = since(args.slice(1));
    if (args.length < 3 || t === undefined || !isWildmat(args[0])) return status(C.SYNTAX, "Usage: NEWNEWS wildmat [yy]yymmdd hhmmss [GMT]");
    const bad = badWildmat(args[0]);
    if (bad) return bad;
    const m = wildmat(args[0]);
    const rows = await s.backend.articles.arrivedSince(t, NEWNEWS_PAGE);
    return pagedLines(
      C.NEWNEWS_OK, "List of new articles follows", rows, NEWNEWS_PAGE,
      (last) => s.backend.articles.arrivedSince(t, NEWNEWS_PAGE, last),
      (r) => (r.groups.some((g) => m(g) && readable(s, g)) ? r.msgid : undefined),
    );
  },
};
