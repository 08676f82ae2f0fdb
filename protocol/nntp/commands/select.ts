// GROUP, LISTGROUP, NEXT, LAST (RFC 3977 §6.1).
import { C } from "../codes.js";
import { pagedLines, status } from "../reply.js";
import { parseRange } from "./range.js";
import { isNewsgroupName } from "../../article/newsgroups.js";
import type { Command } from "./types.js";
import type { Session } from "../session.js";
import type { Group } from "../../../storage/groups.js";
import { mustLogin, who } from "./auth.js";

/** Article numbers read at a time for LISTGROUP. */
const NUMBERS_PAGE = 10_000;

export function readerDenied(s: Session): string | undefined {
  if (s.perms.read) return undefined;
  // RFC 4643 §2.2: 480 where logging in would allow it, 502 where the rules forbid
  return mustLogin(s, "read") ? status(C.AUTH_REQUIRED, "Authentication required") : status(C.DENIED, `Reading not permitted ${who(s)}`);
}

/** Whether the access rules let this client read the group (relay/access-rules.ts). */
export function readable(s: Session, group: string): boolean {
  return !s.perms.readable || s.perms.readable(group);
}

/**
 * Whether an article asked for by Message-ID is hidden from this client: it
 * is filed in no group the client may read. Asked only of clients whose
 * reading is limited to some groups; they get 430, as for a missing article.
 */
export async function hiddenArticle(s: Session, msgid: string): Promise<boolean> {
  if (!s.perms.readable) return false;
  const row = await s.backend.articles.overviewByMsgid(msgid);
  if (!row) return false; // missing: the caller answers 430 anyway
  return !row.xref
    .split(" ")
    .slice(1)
    .some((part) => readable(s, part.slice(0, part.lastIndexOf(":"))));
}

function summary(g: Group): string {
  // RFC 3977 §6.1.1.2: an empty group reports count 0 and high = low - 1
  return g.count === 0 ? `0 ${g.high + 1} ${g.high} ${g.name}` : `${g.count} ${g.low} ${g.high} ${g.name}`;
}

function select(s: Session, g: Group): void {
  s.group = g;
  s.article = g.count > 0 ? g.low : undefined;
}

export const GROUP: Command = {
  run: async (s, args) => {
    const denied = readerDenied(s);
    if (denied) return denied;
    if (args.length !== 1 || !isNewsgroupName(args[0])) return status(C.SYNTAX, "Usage: GROUP newsgroup");
    const g = s.backend.group(args[0]);
    // a group the client may not read is answered as missing, as INN's nnrpd does: its name is not told to strangers
    if (!g || !readable(s, g.name)) return status(C.NO_SUCH_GROUP, `No such newsgroup ${args[0]}`);
    select(s, g);
    // the first number filed may have been expired; report the real one
    if (g.count > 0) {
      const first = await s.backend.articles.next(g.id, g.low - 1);
      if (first) s.article = first.number;
    }
    return status(C.GROUP_OK, summary(g));
  },
};

export const LISTGROUP: Command = {
  run: async (s, args) => {
    const denied = readerDenied(s);
    if (denied) return denied;
    if (args.length > 2) return status(C.SYNTAX, "Usage: LISTGROUP [newsgroup [range]]");
    let g = s.group;
    if (args.length >= 1) {
      if (!isNewsgroupName(args[0])) return status(C.SYNTAX, "Usage: LISTGROUP [newsgroup [range]]");
      g = s.backend.group(args[0]);
      if (!g || !readable(s, g.name)) return status(C.NO_SUCH_GROUP, `No such newsgroup ${args[0]}`);
    }
    if (!g) return status(C.NO_GROUP, "No newsgroup selected");
    const range = args[1] !== undefined ? parseRange(args[1]) : { low: 1, high: Number.MAX_SAFE_INTEGER };
    if (!range) return status(C.SYNTAX, `Invalid range ${args[1]}`);
    select(s, g);
    const group = g, high = range.high;
    const numbers = await s.backend.articles.numbers(g.id, range.low, high, NUMBERS_PAGE);
    if (g.count > 0) {
      const first = await s.backend.articles.next(g.id, 0);
      s.article = first?.number;
    }
    // a group of millions is listed page by page as the client reads
    return pagedLines(C.GROUP_OK, `${summary(g)} list follows`, numbers, NUMBERS_PAGE, (last) => s.backend.articles.numbers(group.id, last + 1, high, NUMBERS_PAGE), String);
  },
};

function step(direction: "next" | "previous"): Command {
  return {
    run: async (s, args) => {
      const denied = readerDenied(s);
      if (denied) return denied;
      if (args.length) return status(C.SYNTAX, `Usage: ${direction === "next" ? "NEXT" : "LAST"}`);
      if (!s.group) return status(C.NO_GROUP, "No newsgroup selected");
      if (s.article === undefined) return status(C.NO_CURRENT, "No current article selected");
      const r =
        direction === "next"
          ? await s.backend.articles.next(s.group.id, s.article)
          : await s.backend.articles.previous(s.group.id, s.article);
      if (!r) return direction === "next" ? status(C.NO_NEXT, "No next article in this group") : status(C.NO_PREV, "No previous article in this group");
      s.article = r.number;
      return status(C.STAT, `${r.number} ${r.msgid} retrieved`);
    },
  };
}

export const NEXT = step("next");
export const LAST = step("previous");
