// POST (RFC 3977 §6.3.1): the node injects the article (RFC 5537 §3.5).
import { C } from "../codes.js";
import { status } from "../reply.js";
import type { Command } from "./types.js";
import { ANSWER, answer } from "./outcomes.js";
import { mustLogin, who } from "./auth.js";
import { Headers, parseHeaders } from "../../article/headers.js";
import { parseNewsgroups } from "../../article/newsgroups.js";
import type { Session } from "../session.js";

/**
 * RFC 3977 §6.3.1: an article for a group this client may not post to is
 * refused with 441 and the reason. An article whose headers do not parse is
 * left to ingest, which says what is wrong with it.
 */
function forbiddenGroups(s: Session, data: Buffer): string | undefined {
  const may = s.perms.postable;
  if (!may) return undefined;
  let groups: string[];
  try {
    const value = new Headers(parseHeaders(data).fields).get("newsgroups");
    if (value === undefined) return undefined;
    groups = parseNewsgroups(value);
  } catch {
    return undefined;
  }
  const no = groups.filter((g) => !may(g));
  return no.length > 0 ? status(C.POST_FAILED, `Posting to ${no.join(",")} not permitted ${who(s)}`) : undefined;
}

export const POST: Command = {
  block: "after-reply",
  run: async (s, args) => {
    if (args.length) {
      s.resumeFramer("line");
      return status(C.SYNTAX, "Usage: POST");
    }
    if (!s.perms.post) {
      s.resumeFramer("line");
      // RFC 4643 §2.2: 480 where logging in would allow posting
      return mustLogin(s, "post") ? status(C.AUTH_REQUIRED, "Authentication required for posting") : status(C.POST_DENIED, `Posting not permitted ${who(s)}`);
    }
    s.interim(status(C.POST_SEND, "Input article; end with <CR-LF>.<CR-LF>"));
    s.resumeFramer("block");
    const b = await s.nextBlock();
    if (b.tooBig) return status(C.POST_FAILED, `Article too large (${b.size} > ${s.limits.maxArticle} octets)`);
    const forbidden = forbiddenGroups(s, b.data);
    if (forbidden) return forbidden;
    // the node's hourly posting limit per user or address (relay/rate-limits.ts)
    const over = s.backend.takePost?.({ user: s.user, client: s.client, transit: s.perms.transit });
    if (over) return status(C.POST_FAILED, over);
    return answer(ANSWER.POST, await s.backend.ingest(b.data, { kind: "nntp-post", client: s.client, user: s.user }));
  },
};
