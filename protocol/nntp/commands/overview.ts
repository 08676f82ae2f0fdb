// OVER/XOVER, HDR/XHDR and XPAT (RFC 3977 §8.3, §8.5; RFC 2980 §2.6, §2.9 for the X forms).
import { C } from "../codes.js";
import { multiline, pagedLines, status, type Reply } from "../reply.js";
import { parseRange, type Range } from "./range.js";
import { isMessageId } from "../../article/msgid.js";
import { Headers, parseHeaders, text } from "../../article/headers.js";
import { pattern } from "../../article/wildmat.js";
import { hiddenArticle, readerDenied } from "./select.js";
import { badWildmat } from "./list.js";
import type { Command } from "./types.js";
import type { Session } from "../session.js";
import type { OverviewRow } from "../../../storage/articles.js";


type Target = { kind: "msgid"; msgid: string } | { kind: "range"; range: Range } | { kind: "error"; reply: string };

/** The range or Message-ID a command works on; none means the current article (RFC 3977 §8.3.2). */
function target(s: Session, arg: string | undefined, rangeOk = true): Target {
  if (arg !== undefined && arg.startsWith("<")) {
    if (!isMessageId(arg)) return { kind: "error", reply: status(C.SYNTAX, `Invalid Message-ID ${arg.slice(0, 80)}`) };
    return { kind: "msgid", msgid: arg };
  }
  if (!s.group) return { kind: "error", reply: status(C.NO_GROUP, "No newsgroup selected") };
  if (arg === undefined) {
    if (s.article === undefined) return { kind: "error", reply: status(C.NO_CURRENT, "Current article number is invalid") };
    return { kind: "range", range: { low: s.article, high: s.article } };
  }
  const range = rangeOk ? parseRange(arg) : undefined;
  if (!range) return { kind: "error", reply: status(C.SYNTAX, `Invalid range ${arg.slice(0, 40)}`) };
  return { kind: "range", range };
}

function noneInRange(t: Target, s: Session): string {
  if (t.kind === "range" && t.range.low === t.range.high && t.range.low === s.article) return status(C.NO_CURRENT, "Current article number is invalid");
  return status(C.NO_NUMBER, "No articles in that range");
}

export const OVER: Command = {
  run: async (s, args) => {
    const denied = readerDenied(s);
    if (denied) return denied;
    if (args.length > 1) return status(C.SYNTAX, "Usage: OVER [range|<message-id>]");
    const t = target(s, args[0]);
    if (t.kind === "error") return t.reply;
    if (t.kind === "msgid") {
      const line = (await hiddenArticle(s, t.msgid)) ? undefined : await s.backend.articles.overviewLineByMsgid(t.msgid);
      if (line === undefined) return status(C.NO_MSGID, `No such article ${t.msgid}`);
      return multiline(C.OVER_OK, "Overview information follows", [line]);
    }
    const g = s.group!, high = t.range.high;
    const rows = await s.backend.articles.overviewLines(g.id, t.range.low, high, OVER_PAGE);
    if (rows.length === 0) return noneInRange(t, s);
    return pagedLines(C.OVER_OK, "Overview information follows", rows, OVER_PAGE, (last) => s.backend.articles.overviewLines(g.id, last.number + 1, high, OVER_PAGE), (r) => r.line);
  },
};

/** Overview rows read at a time: about 200 KB of reply. */
const OVER_PAGE = 1000;
/** Whole articles read at a time for HDR and XPAT on a header outside the overview. */
const DATA_PAGE = 64;

const OVERVIEW_HEADER: Record<string, (r: OverviewRow) => string> = {
  subject: (r) => r.subject,
  from: (r) => r.author,
  date: (r) => r.date,
  "message-id": (r) => r.msgid,
  references: (r) => r.refs,
  xref: (r) => r.xref,
  ":bytes": (r) => String(r.bytes),
  ":lines": (r) => String(r.lines),
  bytes: (r) => String(r.bytes),
  lines: (r) => String(r.lines),
};

type Value = [number, string | undefined];

/**
 * The field over the target as a reply: `line` makes each [number, value]
 * into a line, or undefined to leave it out (XPAT). A range is read page by
 * page and streamed. undefined when a Message-ID names no article.
 */
async function fieldReply(
  s: Session, field: string, t: Exclude<Target, { kind: "error" }>,
  code: number, text: string, line: (v: Value) => string | undefined, emptyRange: () => Reply | undefined,
): Promise<Reply | undefined> {
  const key = field.toLowerCase();
  const fromOverview = OVERVIEW_HEADER[key];
  if (t.kind === "msgid") {
    if (await hiddenArticle(s, t.msgid)) return undefined;
    let v: Value;
    if (fromOverview) {
      const row = await s.backend.articles.overviewByMsgid(t.msgid);
      if (!row) return undefined;
      v = [0, fromOverview(row) || undefined];
    } else {
      const a = await s.backend.articles.byMsgid(t.msgid);
      if (!a) return undefined;
      v = [0, headerOf(a.data, a.headerLen, key)];
    }
    const l = line(v);
    return multiline(code, text, l === undefined ? [] : [l]);
  }
  const g = s.group!, high = t.range.high;
  // pages of [number, value], each read after the number that ended the one before
  let page: (low: number) => Promise<Value[]>;
  let size: number;
  if (fromOverview) {
    size = OVER_PAGE;
    page = async (low) => (await s.backend.articles.overview(g.id, low, high, size)).map((r) => [r.number, fromOverview(r) || undefined]);
  } else if (key.startsWith(":")) {
    size = OVER_PAGE;
    page = async (low) => (await s.backend.articles.numbers(g.id, low, high, size)).map((n) => [n, undefined]);
  } else {
    size = DATA_PAGE;
    page = async (low) => (await s.backend.articles.dataRange(g.id, low, high, size)).map((r) => [r.number, headerOf(r.data, r.header_len, key)]);
  }
  const first = await page(t.range.low);
  if (first.length === 0) {
    const empty = emptyRange();
    if (empty) return empty;
  }
  return pagedLines<Value>(code, text, first, size, (last) => page(last[0] + 1), line);
}

function headerOf(data: Buffer, headerLen: number, key: string): string | undefined {
  // what is stored was checked on the way in; read it back without refusing
  const h = new Headers(parseHeaders(data.subarray(0, headerLen + 2), { strict: false }).fields);
  const v = h.get(key);
  return v === undefined ? undefined : text(v).replace(/[\t\r\n]/g, " ");
}

export const HDR: Command = {
  run: async (s, args, verb) => {
    const denied = readerDenied(s);
    if (denied) return denied;
    const legacy = verb === "XHDR";
    if (args.length < 1 || args.length > 2) return status(C.SYNTAX, `Usage: ${verb} field [range|<message-id>]`);
    const t = target(s, args[1]);
    if (t.kind === "error") return t.reply;
    // RFC 3977 §8.5.2: an absent header is an empty value; XHDR (RFC 2980) says "(none)"
    const reply = await fieldReply(
      s, args[0], t,
      legacy ? C.HEAD : C.HDR_OK, legacy ? `${args[0]} fields follow` : "Headers follow",
      ([n, v]) => `${n} ${v ?? (legacy ? "(none)" : "")}`,
      () => noneInRange(t, s),
    );
    return reply ?? status(C.NO_MSGID, `No such article ${(t as { msgid: string }).msgid}`);
  },
};

export const XPAT: Command = {
  run: async (s, args) => {
    const denied = readerDenied(s);
    if (denied) return denied;
    if (args.length < 3) return status(C.SYNTAX, "Usage: XPAT field range|<message-id> pattern [pattern ...]");
    const t = target(s, args[1]);
    if (t.kind === "error") return t.reply;
    for (const p of args.slice(2)) {
      const bad = badWildmat(p, true);
      if (bad) return bad;
    }
    const patterns = args.slice(2).map(pattern);
    const match = (v: string) => patterns.some((p) => p(v));
    const reply = await fieldReply(
      s, args[0], t, C.HEAD, `${args[0]} matches follow`,
      ([n, v]) => (v !== undefined && match(v) ? `${n} ${v}` : undefined),
      () => undefined,
    );
    return reply ?? status(C.NO_MSGID, `No such article ${(t as { msgid: string }).msgid}`);
  },
};
