// The NNTP fuzzer's parts (issue 7), driven by test/integration/fuzz.test.ts:
//
// - fast-check generators of what a case sends: commands (valid, odd, broken),
//   articles and their mutations, binary garbage, how the bytes are cut into
//   writes, and sometimes a "hog" (a reader that never reads);
// - rendering a generated case into bytes, and running it on real sockets
//   while recording a replayable transcript;
// - a model of how the server frames a connection (RFC 3977 §3.1, §3.1.1, as
//   tidings does it) that pairs every reply with its command, so a reply out
//   of order is seen and every 240/235/239 is tied to the exact article bytes
//   the server read;
// - checks on stored articles (well-formed, and byte for byte what was sent);
// - monitors: a well-behaved client sending DATE, and the node's RSS.
//
// Byte strings: everything generated is a JS string with one char per byte
// (latin1), so 8-bit and UTF-8 bytes are written as "\xe9" or "\xc3\xa9".
import fc from "fast-check";
import net from "node:net";
import { readFileSync } from "node:fs";

export const MAX_LINE = 512; // nntp.max_line default, CRLF included
export const MAX_ARTICLE = 1048576; // nntp.max_article_bytes default
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

export const bytes = (s: string): Buffer => Buffer.from(s, "latin1");
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A JSON string literal in which every byte outside printable ASCII is escaped (\u00XX): paste-able, replayable. */
export function esc(data: Buffer | string): string {
  const s = typeof data === "string" ? data : data.toString("latin1");
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

// ---------------------------------------------------------------------------
// What a case is made of

export type IdRef =
  | { k: "fresh"; n: number } // <fuzz.SEED.CASE.n@fuzz.example>: new in this case (the same n twice collides on purpose)
  | { k: "setup"; n: number } // one of the articles stored before the run: duplicates
  | { k: "big" } // the ~900 KB article
  | { k: "bad"; s: string }; // not a valid Message-ID, or an odd one
export type Tok = string | IdRef;

export interface CmdPiece {
  t: "cmd";
  lead: string;
  verb: string;
  casing: number; // 0 as is, 1 lower, 2 mixed
  args: Tok[][];
  seps: string[];
  trail: string;
  eol: string;
}
export interface RawPiece {
  t: "raw";
  bytes: string;
}
export interface HeaderSpec {
  name: string;
  value: Tok[];
}
export type Mutation =
  | { m: "drop"; i: number }
  | { m: "dup"; i: number }
  | { m: "empty"; i: number }
  | { m: "emptyPath" }
  | { m: "inject"; inHeader: boolean; i: number; pos: number; bytes: string }
  | { m: "long"; inHeader: boolean; i: number; len: number }
  | { m: "huge"; kb: number }
  | { m: "badLine"; i: number; line: string }
  | { m: "fold"; i: number; how: string }
  | { m: "nosep" }
  | { m: "noterm" }
  | { m: "premature"; i: number }
  | { m: "nostuff" }
  | { m: "garbage"; i: number; bytes: string }
  | { m: "mismatch" }
  | { m: "msgid"; ref: IdRef }
  | { m: "groups"; v: string };
export interface ArticlePiece {
  t: "article";
  via: "post" | "ihave" | "takethis" | "check";
  casing: number;
  modeStream: boolean;
  id: IdRef;
  msgidHeader: boolean;
  headers: HeaderSpec[];
  body: string[];
  muts: Mutation[];
  /** Send the article at once, before the 340/335 (otherwise wait for the reply to POST/IHAVE). */
  early: boolean;
}
export type Piece = CmdPiece | RawPiece | ArticlePiece;
export interface SplitPlan {
  cuts: number[];
  crlf: number; // bit 1: split inside every CRLF; bit 2: inside every "\r\n.\r\n"
  window: { start: number; len: number } | null; // these bytes one write each
  delays: number[]; // 0 none, 1 setImmediate, 2 1 ms, 3 5 ms; cycled over the writes
}
export interface ConnPlan {
  pieces: Piece[];
  split: SplitPlan;
}
export interface HogPlan {
  count: number;
  ms: number;
}
export interface CasePlan {
  conns: ConnPlan[];
  hog: HogPlan | null;
}

// ---------------------------------------------------------------------------
// Generators

const printable = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
const alnum = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
const word = fc.string({ unit: alnum, minLength: 1, maxLength: 10 });
const text = fc.string({ unit: printable, maxLength: 60 });
const eightBit = fc.constantFrom(
  "caf\xe9", // Latin-1
  "caf\xc3\xa9", // UTF-8
  "\xe2\x82\xac 5", // UTF-8 euro
  "\xf0\x9f\x98\x80", // UTF-8 emoji
  "\xff\xfe", // never UTF-8
  "\xc3", // truncated UTF-8
  "na\xefve \xa0x", // Latin-1 with NBSP
  "\xed\xa0\x80", // UTF-8-encoded surrogate
  "\xc0\xaf", // overlong UTF-8
);
const binary = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a).toString("latin1"));
const weighted = <T>(...xs: [number, fc.Arbitrary<T>][]): fc.Arbitrary<T> => fc.oneof(...xs.map(([weight, arbitrary]) => ({ weight, arbitrary })));

const BAD_IDS = [
  "<>", "nope", "<a@b", "a@b>", "<a b@c>", "<a@b>>", "<@>", "<a@>", "<@b>", "<<a@b>", "<a@b@c>", "<a@[127.0.0.1]>",
  "<" + "x".repeat(300) + "@y>", "<a\x00b@c>", "<caf\xe9@fuzz.example>", "<\xc3\xa9@fuzz.example>", "<a@b>c", "<a\\@b>", "<.@.>",
];
const freshId: fc.Arbitrary<IdRef> = fc.nat(7).map((n) => ({ k: "fresh" as const, n }));
const idRef: fc.Arbitrary<IdRef> = weighted<IdRef>(
  [6, freshId],
  [2, fc.nat(4).map((n) => ({ k: "setup" as const, n }))],
  [1, fc.constant({ k: "big" as const })],
  [2, fc.constantFrom(...BAD_IDS).map((s) => ({ k: "bad" as const, s }))],
);

const num = weighted<string>(
  [3, fc.nat(12).map(String)],
  [1, fc.constantFrom("0", "-1", "99999999999999999999", "1.5", "+3", "0x10", "00001", "9007199254740993", "x", "1e3", "\xc3\xa9")],
);
const range = weighted<string>(
  [2, fc.tuple(fc.nat(15), fc.option(fc.nat(15))).map(([a, z]) => (z === null ? `${a}-` : `${a}-${z}`))],
  [1, num],
  [2, fc.constantFrom("5-3", "-", "-5", "1--2", "99999999999999999999", "1-99999999999999999999", "x-y", "0-0", "1-2-3", "99999999999999999-", "2-1", "1-")],
);
const groupArg = fc.constantFrom(
  "local.test", "local.general", "tidings.announce", "control", "junk", "no.such.group", "local.*", "LOCAL.TEST", "a..b", ".", "local.test.",
  "x".repeat(300), "local.test\x00", "caf\xe9", "local.t\xc3\xa9st",
);
/** Wildmats: valid, malformed, and runs of "*" that would take a backtracking matcher exponential time. */
function wildmatArg(): fc.Arbitrary<string> {
  const odd = fc.constantFrom(
    "*", "local.*", "!local.*", "local.*,!local.test", "[z-a]", "[", "]", "[]", "[^]", "\\", "\\*", "a\\", "*.announce", "?", "l?cal.*", "[a-z]*",
    "*,!*", ",", "!", "tidings.*,control,junk", "*te*", "[!a]*", "\xe9*", "**", "*[", "[\\]]", "[a-]", "*\\", "local.[tg]*", "!*", "*?*",
  );
  const stars = fc.tuple(fc.integer({ min: 1, max: 40 }), fc.constantFrom("!", "x", "a*b", "", "?*?*?*z")).map(([k, tail]) => "*".repeat(k) + tail);
  return weighted([5, odd], [2, stars]);
}
const dateArgs = fc.constantFrom(
  ["20240101", "000000"], ["240101", "000000", "GMT"], ["19990101", "000000", "gmt"], ["20001301", "000000"], ["20240101", "250000"],
  ["99999999", "999999"], ["yesterday"], ["20240101"], ["00000000", "000000"], ["20240101", "000000", "UTC"], ["2024010", "000000"], ["30000101", "000000"],
);
const field = fc.constantFrom("Subject", "subject", "From", ":bytes", ":lines", "Message-ID", "References", "Newsgroups", "Xref", "Date", "X-Missing", ":", "Path", "Lines", "Bytes", "BYTES", "x\xe9");
const junk = weighted<string>([3, word], [1, text.filter((s) => !/[\r\n]/.test(s))], [1, eightBit]);

type Args = (Tok[] | null)[];
const s1 = (a: fc.Arbitrary<string>) => a.map((x) => [x] as Tok[]);
const id1 = (a: fc.Arbitrary<IdRef>) => a.map((x) => [x] as Tok[]);
const opt = (a: fc.Arbitrary<Tok[]>, freq = 2) => fc.option(a, { freq });
const target = weighted<Tok[]>([2, s1(num)], [2, id1(idRef)], [1, s1(range)], [1, s1(junk)]);
const rangeOrId = weighted<Tok[]>([3, s1(range)], [2, id1(idRef)], [1, s1(junk)]);

function core(): fc.Arbitrary<{ verb: string; args: Args }> {
  const v = (verb: string, ...args: fc.Arbitrary<Tok[] | null>[]) => (args.length ? fc.tuple(...args) : fc.constant([] as Args)).map((a) => ({ verb, args: a as Args }));
  const wild = s1(wildmatArg());
  const dates = dateArgs.map((d) => d.map((x) => [x] as Tok[]));
  return fc.oneof(
    v("CAPABILITIES", opt(s1(junk), 4)),
    v("MODE", s1(fc.constantFrom("READER", "reader", "STREAM", "stream", "SOMETHING", ""))),
    v("GROUP", opt(s1(groupArg), 8)),
    v("LISTGROUP", opt(s1(groupArg), 3), opt(s1(range), 2)),
    v("NEXT", opt(s1(junk), 6)),
    v("LAST", opt(s1(junk), 6)),
    v("ARTICLE", opt(target, 4)),
    v("HEAD", opt(target, 4)),
    v("BODY", opt(target, 4)),
    v("STAT", opt(target, 4), opt(s1(junk), 8)),
    v("LIST", opt(s1(fc.constantFrom("ACTIVE", "active", "NEWSGROUPS", "ACTIVE.TIMES", "OVERVIEW.FMT", "HEADERS", "DISTRIB.PATS", "MOTD", "SUBSCRIPTIONS", "NONSENSE", "ACTIVE")), 5), opt(wild, 2), opt(s1(fc.constantFrom("MSGID", "RANGE", "x")), 8)),
    fc.tuple(dates, fc.boolean()).map(([d, pre]) => ({ verb: "NEWGROUPS", args: (pre ? [["local.*"] as Tok[]] : []).concat(d) as Args })),
    fc.tuple(wild, dates).map(([w, d]) => ({ verb: "NEWNEWS", args: [w, ...d] as Args })),
    v("OVER", opt(rangeOrId, 4)),
    v("XOVER", opt(rangeOrId, 4)),
    v("HDR", opt(s1(field), 8), opt(rangeOrId, 4)),
    v("XHDR", opt(s1(field), 8), opt(rangeOrId, 4)),
    fc.tuple(s1(field), rangeOrId, fc.array(wild, { minLength: 0, maxLength: 3 })).map(([f, r, ps]) => ({ verb: "XPAT", args: [f, r, ...ps] as Args })),
    v("DATE", opt(s1(junk), 6)),
    v("HELP", opt(s1(junk), 6)),
    v("CHECK", opt(id1(idRef), 8), opt(s1(junk), 8)),
    v("IHAVE", opt(id1(idRef), 8)),
    v("TAKETHIS", opt(id1(idRef), 8)),
    v("POST", opt(s1(junk), 6)),
    v("MODE", s1(fc.constant("STREAM"))),
    fc.constantFrom("FROBNICATE", "XYZZY", "XOVERVIEW", "LISTX", "GROUPS", "\xc3\xa9T\xc3\xa9").chain((verb) => v(verb, opt(s1(junk), 2))),
  );
}

function commandArb(): fc.Arbitrary<CmdPiece> {
  return fc
    .record({
      c: core(),
      lead: fc.constantFrom("", "", "", "", " ", "\t", "  "),
      casing: fc.constantFrom(0, 0, 0, 1, 2),
      seps: fc.array(fc.constantFrom(" ", " ", " ", " ", "  ", "\t", " \t "), { minLength: 6, maxLength: 6 }),
      trail: fc.constantFrom("", "", "", "", " ", "\t", "  "),
      eol: fc.constantFrom("\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\n"),
    })
    .map(({ c, lead, casing, seps, trail, eol }) => ({ t: "cmd" as const, lead, verb: c.verb, casing, args: c.args.filter((a): a is Tok[] => a !== null), seps, trail, eol }));
}

const rawArb: fc.Arbitrary<RawPiece> = weighted<string>(
  [2, fc.constantFrom("\r\n", " \t \r\n", "\n", "\r\n.\r\n", ".\r\n", "..\r\n", "\r\r\n", "\x00\r\n", "\xff\xfe\r\n")],
  [2, fc.tuple(fc.constantFrom("", "GROUP ", "ARTICLE ", "XPAT Subject 1- ", "POST "), fc.integer({ min: 500, max: 1500 })).map(([p, n]) => p + "x".repeat(n) + "\r\n")],
  [3, binary(300)],
  [1, fc.tuple(binary(100), fc.constantFrom("\r\n", "\n")).map(([g, e]) => g.replace(/[\r\n]/g, "") + e)],
).map((s) => ({ t: "raw" as const, bytes: s }));

const extraHeader: fc.Arbitrary<HeaderSpec> = fc
  .tuple(
    fc.constantFrom("X-Fuzz", "Organization", "Keywords", "Summary", "User-Agent", "X-Trace", "Followup-To", "Distribution", "Lines", "Xref", "Injection-Date", "Approved", "Expires", "X-\xe9"),
    weighted<string>([4, text], [1, eightBit], [1, fc.constantFrom("", " ", "a\tb", "local.test", "world", "tidings.local local.test:99")]),
  )
  .map(([name, v]) => ({ name, value: [v] }));
const refs = fc.array(idRef, { minLength: 1, maxLength: 3 }).map((ids) => ({ name: "References", value: ids.flatMap((r, i) => (i ? [" ", r] : [r])) as Tok[] }));

const bodyLine = weighted<string>(
  [6, text],
  [2, fc.constantFrom("", ".", "..", ".x", "...", ". ", "-- ", "From x", ">From y", "\t", " .")],
  [1, eightBit],
  [1, binary(80).map((s) => s.replace(/\r?\n\./g, "\r\n.."))],
);

/** What can go wrong with an article; fast-check shrinks a case towards fewer of these. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat(12).map((i) => ({ m: "drop" as const, i })),
  fc.nat(12).map((i) => ({ m: "dup" as const, i })),
  fc.nat(12).map((i) => ({ m: "empty" as const, i })),
  { weight: 2, arbitrary: fc.constant({ m: "emptyPath" as const }) },
  {
    weight: 4,
    arbitrary: fc
      .record({
        inHeader: fc.boolean(),
        i: fc.nat(12),
        pos: fc.nat(80),
        bytes: fc.constantFrom("\x00", "\n", "\r", "\x01", "\x1b", "\x7f", "\x80", "\xe9", "\xff", "\xc3\xa9", "\xc3", "\xe2\x82\xac", "\t", "\r\n", "\r\n ", "\x00\x00"),
      })
      .map((r) => ({ m: "inject" as const, ...r })),
  },
  fc.record({ inHeader: fc.boolean(), i: fc.nat(12), len: fc.integer({ min: 500, max: 1500 }) }).map((r) => ({ m: "long" as const, ...r })),
  fc.integer({ min: 60, max: 300 }).map((kb) => ({ m: "huge" as const, kb })),
  fc.tuple(fc.nat(12), fc.constantFrom("no colon here", "Bad Name: x", ": empty name", " leading continuation", "X-Ok:", "X-Ok:no-space", "\xe9: x", "X\x00Y: z")).map(([i, line]) => ({ m: "badLine" as const, i, line })),
  fc.tuple(fc.nat(12), fc.constantFrom("\r\n\t", "\r\n ", "\r\n  ")).map(([i, how]) => ({ m: "fold" as const, i, how })),
  fc.constant({ m: "nosep" as const }),
  fc.constant({ m: "noterm" as const }),
  fc.nat(12).map((i) => ({ m: "premature" as const, i })),
  fc.constant({ m: "nostuff" as const }),
  fc.tuple(fc.nat(12), binary(200)).map(([i, g]) => ({ m: "garbage" as const, i, bytes: g })),
  fc.constant({ m: "mismatch" as const }),
  idRef.map((ref) => ({ m: "msgid" as const, ref })),
  fc.constantFrom("tidings.announce", "junk", "control", "no.such.group", "", "local.test,,local.general", "local.test,no.such", "local.*", "local.test local.general", "loc\xe9l.test").map((v) => ({ m: "groups" as const, v })),
);

const articleArb: fc.Arbitrary<ArticlePiece> = fc
  .record({
    via: fc.constantFrom("post", "post", "ihave", "ihave", "takethis", "takethis", "check"),
    casing: fc.constantFrom(0, 0, 0, 1, 2),
    modeStream: fc.boolean(),
    id: weighted<IdRef>([8, freshId], [1, idRef]),
    msgidHeader: fc.boolean(),
    from: weighted<string>([4, fc.constantFrom("Fuzz Tester <fuzz@fuzz.example>", "fuzz@fuzz.example", '"Fuzz, T." <t@fuzz.example>')], [1, fc.constantFrom("Jos\xc3\xa9 <jose@fuzz.example>", "Jos\xe9 <jose@fuzz.example>", "=?UTF-8?Q?Jos=C3=A9?= <j@fuzz.example>")]),
    groups: fc.constantFrom("local.test", "local.test", "local.general", "local.test,local.general", "local.test, local.general"),
    subject: weighted<string>([4, text.filter((s) => s.trim().length > 0)], [1, eightBit.map((s) => "Re: " + s)]),
    date: fc.constantFrom("Tue, 02 Jan 2024 03:04:05 +0000", "2 Jan 2024 03:04:05 GMT", "Mon, 1 Jan 2024 00:00:00 -0500", "Wed, 03 Jan 2024 10:00:00 +0100 (CET)"),
    path: fc.constantFrom("fuzz.peer!not-for-mail", "a.example!b.example!not-for-mail", "fuzz.peer", "x!y!.POSTED!not-for-mail"),
    pathForPost: fc.boolean(),
    extras: fc.array(weighted<HeaderSpec>([4, extraHeader], [1, refs]), { maxLength: 4 }),
    body: fc.array(bodyLine, { maxLength: 12 }),
    muts: weighted<Mutation[]>([3, fc.constant([])], [4, fc.array(mutation, { minLength: 1, maxLength: 3 })]),
    early: fc.constantFrom(false, false, true),
  })
  .map((r) => {
    const transit = r.via !== "post";
    const headers: HeaderSpec[] = [];
    if (transit || r.pathForPost) headers.push({ name: "Path", value: [r.path] });
    headers.push({ name: "From", value: [r.from] }, { name: "Newsgroups", value: [r.groups] }, { name: "Subject", value: [r.subject] }, { name: "Date", value: [r.date] });
    if (transit || r.msgidHeader) headers.push({ name: "Message-ID", value: [r.id] });
    headers.push(...r.extras);
    return { t: "article" as const, via: r.via as ArticlePiece["via"], casing: r.casing, modeStream: r.modeStream, id: r.id, msgidHeader: transit || r.msgidHeader, headers, body: r.body, muts: r.muts, early: r.early };
  });

const splitArb: fc.Arbitrary<SplitPlan> = fc.record({
  cuts: fc.array(fc.nat(), { maxLength: 12 }),
  crlf: fc.nat(3),
  window: fc.option(fc.record({ start: fc.nat(), len: fc.integer({ min: 1, max: 120 }) }), { freq: 3 }),
  delays: fc.array(fc.nat(3), { minLength: 1, maxLength: 6 }),
});

export function pieceArb(): fc.Arbitrary<Piece> {
  return weighted<Piece>([6, commandArb()], [3, articleArb], [1, rawArb]);
}

/** A plain GROUP, so that reads by number and NEXT/LAST find articles. */
const selectGroup = fc.constantFrom("local.test", "local.general").map((g): CmdPiece => ({ t: "cmd", lead: "", verb: "GROUP", casing: 0, args: [[g]], seps: [" "], trail: "", eol: "\r\n" }));

export function caseArb(opts: { hog?: boolean } = {}): fc.Arbitrary<CasePlan> {
  const pieces = fc.tuple(fc.option(selectGroup, { freq: 2 }), fc.array(pieceArb(), { minLength: 1, maxLength: 14 })).map(([g, ps]) => (g ? [g, ...ps] : ps));
  const conn = fc.record({ pieces, split: splitArb });
  const hog = fc.record({ count: fc.integer({ min: 800, max: 1200 }), ms: fc.integer({ min: 1500, max: 3000 }) });
  return fc.record({
    conns: weighted<ConnPlan[]>([4, fc.array(conn, { minLength: 1, maxLength: 1 })], [2, fc.array(conn, { minLength: 2, maxLength: 3 })]),
    hog: opts.hog === false ? fc.constant(null) : weighted<HogPlan | null>([30, fc.constant(null)], [1, hog]),
  });
}

// ---------------------------------------------------------------------------
// Rendering a case into bytes

export interface RenderCtx {
  seed: number;
  caseNo: number;
  setupIds: string[];
  bigId: string;
}

export function idText(r: IdRef, ctx: RenderCtx): string {
  switch (r.k) {
    case "fresh":
      return `<fuzz.${ctx.seed >>> 0}.${ctx.caseNo}.${r.n}@fuzz.example>`;
    case "setup":
      return ctx.setupIds[r.n % ctx.setupIds.length];
    case "big":
      return ctx.bigId;
    case "bad":
      return r.s;
  }
}

const toks = (t: Tok[], ctx: RenderCtx): string => t.map((x) => (typeof x === "string" ? x : idText(x, ctx))).join("");

/** ASCII letters only: a byte string stays a byte string. */
function casing(s: string, how: number): string {
  if (how === 1) return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (how === 2) return s.replace(/[A-Za-z]/g, (c, i: number) => (i % 2 ? c.toLowerCase() : c.toUpperCase()));
  return s;
}

export function renderCmd(p: CmdPiece, ctx: RenderCtx): string {
  let s = p.lead + casing(p.verb, p.casing);
  p.args.forEach((a, i) => (s += p.seps[i % p.seps.length] + toks(a, ctx)));
  return s + p.trail + p.eol;
}

/** Inserts `ins` at `pos`; a bare LF is never left before a "." (that would be a line start to the framer). */
function insertAt(s: string, pos: number, ins: string): string {
  const p = pos % (s.length + 1);
  const after = s.slice(p);
  const guard = ins.endsWith("\n") && after.startsWith(".") ? "x" : "";
  return s.slice(0, p) + ins + guard + after;
}

/** The article as written after its command: stuffed and terminated unless mutated. */
export function renderArticle(p: ArticlePiece, ctx: RenderCtx): { pre: string[]; cmd: string; sync: boolean; article: string } {
  const hs = p.headers.map((h) => ({ name: h.name, value: toks(h.value, ctx) }));
  const extraLines: { at: number; line: string }[] = [];
  const body = [...p.body];
  let sep = true;
  let term = true;
  let stuff = true;
  let offer = idText(p.id, ctx);
  const premature: number[] = [];
  const idx = (i: number, n: number) => (n === 0 ? 0 : i % n);
  for (const m of p.muts) {
    switch (m.m) {
      case "drop":
        if (hs.length) hs.splice(idx(m.i, hs.length), 1);
        break;
      case "dup":
        if (hs.length) hs.splice(idx(m.i, hs.length), 0, { ...hs[idx(m.i, hs.length)] });
        break;
      case "empty":
        if (hs.length) hs[idx(m.i, hs.length)].value = "";
        break;
      case "emptyPath": {
        const j = hs.findIndex((h) => h.name.toLowerCase() === "path");
        if (j >= 0) hs[j].value = "";
        else hs.unshift({ name: "Path", value: "" });
        break;
      }
      case "inject":
        if (m.inHeader && hs.length) {
          const h = hs[idx(m.i, hs.length)];
          h.value = insertAt(h.value, m.pos, m.bytes);
        } else if (body.length) {
          const j = idx(m.i, body.length);
          body[j] = insertAt(body[j], m.pos, m.bytes);
        } else body.push(insertAt("", 0, m.bytes) + "x");
        break;
      case "long": {
        const filler = "y".repeat(m.len);
        if (m.inHeader && hs.length) hs[idx(m.i, hs.length)].value += " " + filler;
        else body.splice(idx(m.i, body.length + 1), 0, filler);
        break;
      }
      case "huge": {
        const line = "h".repeat(990);
        for (let k = 0; k * 1000 < m.kb * 1024; k++) hs.push({ name: `X-Huge-${k}`, value: line });
        break;
      }
      case "badLine":
        extraLines.push({ at: m.i, line: m.line });
        break;
      case "fold":
        if (hs.length) {
          const h = hs[idx(m.i, hs.length)];
          const sp = h.value.indexOf(" ", 1);
          h.value = sp > 0 ? h.value.slice(0, sp) + m.how + h.value.slice(sp + 1) : h.value + m.how + "folded";
        }
        break;
      case "nosep":
        sep = false;
        break;
      case "noterm":
        term = false;
        break;
      case "premature":
        premature.push(idx(m.i, body.length + 1));
        break;
      case "nostuff":
        stuff = false;
        break;
      case "garbage":
        body.splice(idx(m.i, body.length + 1), 0, m.bytes.replace(/\n(?=\.)/g, "\nx"));
        break;
      case "mismatch":
        offer = idText({ k: "fresh", n: 50 + (p.id.k === "fresh" ? p.id.n : 0) }, ctx);
        break;
      case "msgid": {
        const j = hs.findIndex((h) => h.name.toLowerCase() === "message-id");
        if (j >= 0) hs[j].value = idText(m.ref, ctx);
        else hs.push({ name: "Message-ID", value: idText(m.ref, ctx) });
        break;
      }
      case "groups": {
        const j = hs.findIndex((h) => h.name.toLowerCase() === "newsgroups");
        if (j >= 0) hs[j].value = m.v;
        break;
      }
    }
  }
  const lines = hs.map((h) => `${h.name}:${h.value === "" ? "" : " " + h.value}`);
  for (const e of extraLines) lines.splice(e.at % (lines.length + 1), 0, e.line);
  const SENTINEL = "\u0100"; // an unstuffed "." line, placed after stuffing
  premature.sort((a, z) => z - a).forEach((at) => body.splice(at, 0, SENTINEL));
  let art = lines.map((l) => l + "\r\n").join("") + (sep ? "\r\n" : "") + body.map((l) => l + "\r\n").join("");
  if (stuff) art = art.replace(/(^|\r\n)\./g, "$1..");
  art = art.split(SENTINEL).join(".");
  if (term) art += ".\r\n";
  const verb = { post: "POST", ihave: "IHAVE", takethis: "TAKETHIS", check: "TAKETHIS" }[p.via];
  const pre: string[] = [];
  if (p.modeStream && p.via !== "post" && p.via !== "ihave") pre.push("MODE STREAM\r\n");
  if (p.via === "check") pre.push(`CHECK ${offer}\r\n`);
  const cmd = casing(verb, p.casing) + (p.via === "post" ? "" : " " + offer) + "\r\n";
  return { pre, cmd, sync: !p.early && (p.via === "post" || p.via === "ihave"), article: art };
}

export interface Rendered {
  bytes: Buffer;
  /** Offsets just after a POST/IHAVE line: wait for its first reply before sending on. */
  syncs: number[];
}

export function renderPieces(pieces: Piece[], ctx: RenderCtx): Rendered {
  const parts: string[] = [];
  let len = 0;
  const syncs: number[] = [];
  const add = (s: string) => {
    parts.push(s);
    len += s.length;
  };
  for (const p of pieces) {
    if (p.t === "cmd") add(renderCmd(p, ctx));
    else if (p.t === "raw") add(p.bytes);
    else {
      const r = renderArticle(p, ctx);
      r.pre.forEach(add);
      add(r.cmd);
      if (r.sync) syncs.push(len);
      add(r.article);
    }
  }
  return { bytes: bytes(parts.join("")), syncs };
}

/** One transcript step: bytes to write (latin1 string), wait for the reply to the POST/IHAVE just sent, or pause. */
export type Step = string | { wait: "reply" } | { sleep: number };

export function toSteps(r: Rendered, split: SplitPlan): Step[] {
  const n = r.bytes.length;
  const cuts = new Set<number>(r.syncs);
  const cap = (xs: number[], max: number) => (xs.length <= max ? xs : xs.filter((_, i) => i % Math.ceil(xs.length / max) === 0));
  for (const c of split.cuts) cuts.add(c % (n + 1));
  if (split.crlf & 1) {
    const xs: number[] = [];
    for (let i = r.bytes.indexOf("\r\n"); i >= 0; i = r.bytes.indexOf("\r\n", i + 1)) xs.push(i + 1);
    cap(xs, 60).forEach((x) => cuts.add(x));
  }
  if (split.crlf & 2) {
    const xs: number[] = [];
    for (let i = r.bytes.indexOf("\r\n.\r\n"); i >= 0; i = r.bytes.indexOf("\r\n.\r\n", i + 1)) xs.push(i + 1 + (xs.length % 4));
    cap(xs, 60).forEach((x) => cuts.add(x));
  }
  if (split.window && n > 0) {
    const s = split.window.start % n;
    for (let i = s; i <= Math.min(n, s + split.window.len); i++) cuts.add(i);
  }
  const sorted = [...cuts].filter((c) => c > 0 && c < n).sort((a, z) => a - z);
  const syncs = new Set(r.syncs);
  const steps: Step[] = [];
  const many = sorted.length > 80;
  let at = 0;
  sorted.push(n);
  sorted.forEach((c, i) => {
    if (c <= at) return;
    steps.push(r.bytes.toString("latin1", at, c));
    at = c;
    if (syncs.has(c)) steps.push({ wait: "reply" });
    else if (c < n) {
      const d = split.delays[i % split.delays.length];
      if (d === 1 || (many && d > 1)) steps.push({ sleep: 0 });
      else if (d === 2) steps.push({ sleep: 1 });
      else if (d === 3) steps.push({ sleep: 5 });
    }
  });
  return steps;
}

/** The well-formed ending of every connection (see fuzz.test.ts): ends any article, then two markers. */
export function ending(tag: string): string {
  return `\r\n.\r\nSTAT <mark1.${tag}@fuzz>\r\nSTAT <mark2.${tag}@fuzz>\r\n`;
}

// ---------------------------------------------------------------------------
// A model of the server's side of a connection: pairs replies with commands

const KNOWN_VERBS = new Set([
  "CAPABILITIES", "MODE", "QUIT", "HELP", "DATE", "GROUP", "LISTGROUP", "NEXT", "LAST", "ARTICLE", "HEAD", "BODY", "STAT",
  "LIST", "NEWGROUPS", "NEWNEWS", "OVER", "XOVER", "HDR", "XHDR", "XPAT", "IHAVE", "CHECK", "TAKETHIS", "POST",
]);
/** Codes each command may answer besides the generic errors; RFC 3977 and RFC 4644. */
const OK_CODES: Record<string, number[]> = {
  CAPABILITIES: [101], MODE: [200, 201, 203], QUIT: [205], HELP: [100], DATE: [111],
  GROUP: [211, 411], LISTGROUP: [211, 411, 412], NEXT: [223, 412, 420, 421], LAST: [223, 412, 420, 422],
  ARTICLE: [220, 412, 420, 423, 430], HEAD: [221, 412, 420, 423, 430], BODY: [222, 412, 420, 423, 430], STAT: [223, 412, 420, 423, 430],
  LIST: [215], NEWGROUPS: [231], NEWNEWS: [230],
  OVER: [224, 412, 420, 423, 430], XOVER: [224, 412, 420, 423, 430], HDR: [225, 412, 420, 423, 430], XHDR: [221, 412, 420, 423, 430], XPAT: [221, 412, 420, 423, 430],
  IHAVE: [335, 435, 436, 437], CHECK: [238, 431, 438], TAKETHIS: [239, 431, 439], POST: [340, 440, 441],
};
const FINAL_CODES: Record<string, number[]> = { POST: [240, 441], IHAVE: [235, 436, 437] };
const MULTI: Record<string, number> = {
  CAPABILITIES: 101, HELP: 100, LIST: 215, LISTGROUP: 211, ARTICLE: 220, HEAD: 221, BODY: 222, OVER: 224, XOVER: 224,
  HDR: 225, XHDR: 221, XPAT: 221, NEWNEWS: 230, NEWGROUPS: 231,
};
const GENERIC = new Set([400, 403, 480, 500, 501, 502, 503]);

export interface ModelReply {
  code: number;
  line: string;
}
export interface ModelCmd {
  kind: "cmd" | "empty" | "toolong" | "unknown";
  verb: string;
  args: string[];
  line: string;
  start: number;
  end: number;
  replies: ModelReply[];
  block?: { data: Buffer; size: number; tooBig: boolean; start: number; end: number };
}
export interface Alignment {
  cmds: ModelCmd[];
  greeting?: string;
  /** The replies do not fit the commands: out of order, missing, extra or malformed. */
  problem?: string;
  /** Where the model stopped for want of bytes: "sent" (a partial line or block), "recv" (a reply not yet here), or "end". */
  stopped: "sent" | "recv" | "end";
  /** Offset in the sent bytes up to which commands were framed. */
  sentUsed: number;
  recvUsed: number;
  /** Offset where an unfinished block began, if the model stopped inside one. */
  openBlock?: number;
}

/**
 * Reads a dot-terminated block as tidings' framer does: a line starts after
 * any LF; "." then LF or CRLF ends it; another leading "." is dropped.
 */
export function readBlock(buf: Buffer, from: number, max = MAX_ARTICLE): { data: Buffer; size: number; tooBig: boolean; end: number } | undefined {
  const parts: Buffer[] = [];
  let size = 0;
  let i = from;
  let lineStart = true;
  const n = buf.length;
  while (i < n) {
    if (lineStart) {
      if (buf[i] === DOT) {
        if (i + 1 >= n) return undefined;
        const c1 = buf[i + 1];
        const done = c1 === LF ? i + 2 : c1 === CR ? (i + 2 >= n ? -1 : buf[i + 2] === LF ? i + 3 : 0) : 0;
        if (done < 0) return undefined;
        if (done > 0) {
          const tooBig = size > max;
          return { data: tooBig ? Buffer.alloc(0) : Buffer.concat(parts, size), size, tooBig, end: done };
        }
        i += 1;
      }
      lineStart = false;
    }
    const j = buf.indexOf(LF, i);
    if (j < 0) return undefined;
    const part = buf.subarray(i, j + 1);
    size += part.length;
    if (size <= max) parts.push(part);
    i = j + 1;
    lineStart = true;
  }
  return undefined;
}

export function align(sent: Buffer, recv: Buffer, maxLine = MAX_LINE): Alignment {
  const cmds: ModelCmd[] = [];
  let rp = 0;
  let sp = 0;
  const out = (stopped: Alignment["stopped"], problem?: string, openBlock?: number): Alignment => ({ cmds, greeting, problem, stopped, sentUsed: sp, recvUsed: rp, openBlock });
  const nextLine = (): string | undefined => {
    const i = recv.indexOf("\r\n", rp);
    if (i < 0) return undefined;
    const l = recv.toString("latin1", rp, i);
    rp = i + 2;
    return l;
  };
  const greeting = nextLine();
  if (greeting === undefined) return out("recv");
  if (!/^20[01] /.test(greeting)) return out("end", `greeting ${esc(greeting.slice(0, 100))}`);
  /** One reply for `c`: undefined if not all here yet, a string if it does not fit. */
  const reply = (c: ModelCmd, allowed: number[]): ModelReply | string | undefined => {
    const save = rp;
    const l = nextLine();
    if (l === undefined) return undefined;
    const m = /^(\d{3})(?: |$)/.exec(l);
    const what = c.kind === "toolong" ? `an over-long line (${c.line})` : `${esc(c.line.slice(0, 100))} (sent at offset ${c.start})`;
    if (!m) return `malformed status line ${esc(l.slice(0, 120))} in answer to ${what}`;
    const code = Number(m[1]);
    if (!allowed.includes(code) && !GENERIC.has(code)) return `reply ${esc(l.slice(0, 120))} does not answer ${what}: out of order?`;
    if (MULTI[c.verb] === code && allowed === OK_CODES[c.verb]) {
      for (;;) {
        const x = nextLine();
        if (x === undefined) {
          rp = save;
          return undefined;
        }
        if (x === ".") break;
      }
    }
    return { code, line: l };
  };
  for (;;) {
    const lf = sent.indexOf(LF, sp);
    if (lf < 0) {
      if (rp < recv.length) {
        const l = recv.toString("latin1", rp, Math.min(recv.length, rp + 120));
        return out("end", `a reply with no command left to answer: ${esc(l)}`);
      }
      return out(sp < sent.length ? "sent" : "end");
    }
    const start = sp;
    const octets = lf + 1 - sp;
    let c: ModelCmd;
    if (octets > maxLine) {
      c = { kind: "toolong", verb: "", args: [], line: `${octets} octets`, start, end: lf + 1, replies: [] };
    } else {
      const end = lf > sp && sent[lf - 1] === CR ? lf - 1 : lf;
      const text = sent.toString("utf8", sp, end);
      const line = text.trim();
      const at = line.search(/[ \t]/);
      const verb = (at < 0 ? line : line.slice(0, at)).toUpperCase();
      const args = at < 0 ? [] : line.slice(at + 1).trim().split(/[ \t]+/);
      const kind = line.length === 0 ? "empty" : KNOWN_VERBS.has(verb) ? "cmd" : "unknown";
      c = { kind, verb: kind === "cmd" ? verb : "", args, line: sent.toString("latin1", sp, end), start, end: lf + 1, replies: [] };
    }
    sp = lf + 1;
    cmds.push(c);
    const allowed = c.kind === "toolong" ? [501] : c.kind !== "cmd" ? [500] : OK_CODES[c.verb];
    const takeBlock = (): boolean => {
      const b = readBlock(sent, sp);
      if (!b) return false;
      c.block = { data: b.data, size: b.size, tooBig: b.tooBig, start: sp, end: b.end };
      sp = b.end;
      return true;
    };
    if (c.verb === "TAKETHIS" && !takeBlock()) return out("sent", undefined, sp);
    const r = reply(c, allowed);
    if (r === undefined) return out("recv");
    if (typeof r === "string") return out("end", r);
    c.replies.push(r);
    if ((c.verb === "POST" && r.code === 340) || (c.verb === "IHAVE" && r.code === 335)) {
      if (!takeBlock()) return out("sent", undefined, sp);
      const r2 = reply(c, FINAL_CODES[c.verb]);
      if (r2 === undefined) return out("recv");
      if (typeof r2 === "string") return out("end", r2);
      c.replies.push(r2);
    }
    if (c.replies[c.replies.length - 1].code === 205) return out("end");
  }
}

/** An article the node acknowledged (240, 235, 239), with the exact bytes it read. */
export interface Ack {
  msgid: string | undefined;
  via: "POST" | "IHAVE" | "TAKETHIS";
  reply: string;
  data: Buffer;
}

export function acksOf(a: Alignment): Ack[] {
  const acks: Ack[] = [];
  for (const c of a.cmds) {
    const last = c.replies[c.replies.length - 1];
    if (!last || !c.block || c.block.tooBig) continue;
    // a post to a moderated group without Approved is taken for its moderator (RFC 5537 §3.5.1: mailed
    // or held), not stored as an article: the 240 says so, and ARTICLE rightly answers 430
    if (c.verb === "POST" && last.code === 240 && !/ the moderator of /.test(last.line)) acks.push({ msgid: /(<[^<>\s]+>)\s*$/.exec(last.line)?.[1], via: "POST", reply: last.line, data: c.block.data });
    if (c.verb === "IHAVE" && last.code === 235) acks.push({ msgid: c.args[0], via: "IHAVE", reply: last.line, data: c.block.data });
    if (c.verb === "TAKETHIS" && last.code === 239) acks.push({ msgid: c.args[0], via: "TAKETHIS", reply: last.line, data: c.block.data });
  }
  return acks;
}

/** RFC 4644 §2.4/§2.5: CHECK and TAKETHIS replies name the Message-ID they answer. */
export function streamingIdProblems(a: Alignment): string[] {
  const out: string[] = [];
  for (const c of a.cmds) {
    if ((c.verb !== "CHECK" && c.verb !== "TAKETHIS") || c.args.length !== 1 || !isMsgid(c.args[0])) continue;
    const r = c.replies[c.replies.length - 1];
    if (r && r.code !== 403 && r.code !== 502 && r.code !== 400 && r.line.split(" ")[1] !== c.args[0]) out.push(`${c.verb} ${c.args[0]} answered ${esc(r.line.slice(0, 120))}: another command's reply?`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Stored articles

const MSGID = /^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$/;
export const isMsgid = (s: string) => s.length <= 250 && MSGID.test(s);
const REQUIRED = ["from", "newsgroups", "subject", "date", "message-id", "path"];

/** The header section (each line with its CRLF) and the body of a stored article. */
export function splitStored(data: Buffer, headerLen?: number): { header: Buffer; body: Buffer; problem?: string } {
  if (headerLen !== undefined) {
    const problem = data.toString("latin1", headerLen, headerLen + 2) === "\r\n" ? undefined : `header_len ${headerLen} is not followed by the empty line`;
    return { header: data.subarray(0, headerLen), body: data.subarray(Math.min(data.length, headerLen + 2)), problem };
  }
  const i = data.indexOf("\r\n\r\n");
  if (i < 0) return { header: data, body: Buffer.alloc(0), problem: "no empty line after the header section" };
  return { header: data.subarray(0, i + 2), body: data.subarray(i + 4) };
}

/** Problems with a stored article's header section (RFC 5536 §2, §3.1). */
export function wellFormed(data: Buffer, headerLen?: number, msgidColumn?: string): string[] {
  const out: string[] = [];
  const { header, problem } = splitStored(data, headerLen);
  if (problem) out.push(problem);
  if (header.length < 2 || header[header.length - 2] !== CR || header[header.length - 1] !== LF) out.push("header section does not end with CRLF");
  for (let i = 0; i < header.length; i++) {
    const c = header[i];
    const where = () => `at offset ${i} (${esc(header.toString("latin1", Math.max(0, i - 30), i + 10))})`;
    if (c === 0) out.push(`NUL in the header section ${where()}`);
    else if (c === CR && header[i + 1] !== LF) out.push(`lone CR in the header section ${where()}`);
    else if (c === LF && header[i - 1] !== CR) out.push(`bare LF in the header section ${where()}`);
    else if ((c < 0x20 && c !== 0x09 && c !== CR && c !== LF) || c === 0x7f) out.push(`control character 0x${c.toString(16)} in the header section ${where()}`);
    if (out.length > 8) break;
  }
  const lines = header.toString("latin1").split("\r\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const fields: { key: string; value: string }[] = [];
  for (const l of lines) {
    if (l === "") out.push("empty line inside the header section");
    else if (l[0] === " " || l[0] === "\t") {
      if (fields.length === 0) out.push("header section starts with a continuation line");
      else fields[fields.length - 1].value += l;
    } else {
      const colon = l.indexOf(":");
      if (colon <= 0 || !/^[\x21-\x39\x3b-\x7e]+$/.test(l.slice(0, colon))) out.push(`malformed header line ${esc(l.slice(0, 80))}`);
      else fields.push({ key: l.slice(0, colon).toLowerCase(), value: l.slice(colon + 1) });
    }
  }
  for (const k of REQUIRED) {
    const n = fields.filter((f) => f.key === k).length;
    if (n !== 1) out.push(`${n} ${k} headers (want exactly 1)`);
  }
  const ids = fields.filter((f) => f.key === "message-id").map((f) => f.value.trim());
  if (ids.length === 1 && !isMsgid(ids[0])) out.push(`invalid Message-ID ${esc(ids[0].slice(0, 100))}`);
  if (ids.length === 1 && msgidColumn !== undefined && ids[0] !== msgidColumn) out.push(`Message-ID header ${esc(ids[0])} differs from the stored id ${esc(msgidColumn)}`);
  return out;
}

/**
 * Problems comparing a stored article with the bytes the node acknowledged:
 * the body exactly; every header line sent, byte for byte, except Path and
 * Xref (and Injection-Date on POST), which the server rewrites.
 */
export function matchesSent(stored: Buffer, headerLen: number | undefined, sent: Buffer, via: Ack["via"]): string[] {
  const out: string[] = [];
  const s = splitStored(stored, headerLen);
  const sep = sent.indexOf("\r\n\r\n");
  let sentHeader: Buffer;
  let sentBody: Buffer;
  if (sep >= 0) {
    sentHeader = sent.subarray(0, sep);
    sentBody = sent.subarray(sep + 4);
  } else {
    sentHeader = sent.length >= 2 && sent[sent.length - 2] === CR && sent[sent.length - 1] === LF ? sent.subarray(0, sent.length - 2) : sent;
    sentBody = Buffer.alloc(0);
  }
  if (!s.body.equals(sentBody)) {
    let i = 0;
    while (i < s.body.length && i < sentBody.length && s.body[i] === sentBody[i]) i++;
    out.push(`body differs from the one sent at offset ${i} of ${sentBody.length}: sent ${esc(sentBody.subarray(i, i + 40))}, stored ${esc(s.body.subarray(i, i + 40))}`);
  }
  const storedHeader = "\r\n" + s.header.toString("latin1");
  const exempt = via === "POST" ? /^(path|xref|injection-date):/i : /^(path|xref):/i;
  let skipping = false;
  for (const l of sentHeader.toString("latin1").split("\r\n")) {
    const cont = l.startsWith(" ") || l.startsWith("\t");
    if (!cont) skipping = exempt.test(l);
    if (skipping || l === "") continue;
    if (!storedHeader.includes("\r\n" + l + "\r\n")) {
      out.push(`header line sent as ${esc(l.slice(0, 160))} is not in the stored header section byte for byte`);
      if (out.length > 6) break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Sockets

/** A raw fuzz connection: records what it sent (as transcript steps) and everything it got. */
export class Wire {
  #chunks: Buffer[] = [];
  #len = 0;
  #waiters = new Set<() => void>();
  sent: Buffer[] = [];
  sentLen = 0;
  steps: Step[] = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.#chunks.push(d);
      this.#len += d.length;
      this.#wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.#wake();
    });
    socket.on("error", () => {});
  }

  static connect(port: number, timeoutMs = 10_000): Promise<Wire> {
    const socket = net.connect({ port, host: "127.0.0.1" });
    socket.setNoDelay(true);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => (socket.destroy(), reject(new Error("connect timed out"))), timeoutMs);
      socket.once("connect", () => (clearTimeout(t), resolve(new Wire(socket))));
      socket.once("error", (e) => (clearTimeout(t), reject(e)));
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  get recv(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks, this.#len)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** The last n bytes received, without joining everything. */
  tail(n: number): Buffer {
    const parts: Buffer[] = [];
    let have = 0;
    for (let i = this.#chunks.length - 1; i >= 0 && have < n; i--) {
      parts.unshift(this.#chunks[i]);
      have += this.#chunks[i].length;
    }
    const b = Buffer.concat(parts);
    return b.subarray(Math.max(0, b.length - n));
  }

  get sentBytes(): Buffer {
    if (this.sent.length > 1) this.sent = [Buffer.concat(this.sent, this.sentLen)];
    return this.sent[0] ?? Buffer.alloc(0);
  }

  write(s: string): void {
    const b = bytes(s);
    this.steps.push(s);
    this.sent.push(b);
    this.sentLen += b.length;
    if (!this.closed && !this.socket.destroyed) this.socket.write(b);
  }

  /** Resolves true once pred() holds, false on timeout or close (pred checked once more). */
  async until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (pred()) return true;
      if (this.closed) return pred();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.#waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, left);
        this.#waiters.add(done);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A line-at-a-time client for the checker and the DATE monitor; drops what it has read. */
export class LineConn {
  #buf: Buffer = Buffer.alloc(0);
  #waiters = new Set<() => void>();
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
      for (const w of [...this.#waiters]) w();
    });
    socket.on("close", () => {
      this.closed = true;
      for (const w of [...this.#waiters]) w();
    });
    socket.on("error", () => {});
  }

  static async connect(port: number, timeoutMs = 5000): Promise<{ conn: LineConn; greeting: string }> {
    const socket = net.connect({ port, host: "127.0.0.1" });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => (socket.destroy(), reject(new Error("connect timed out"))), timeoutMs);
      socket.once("connect", () => (clearTimeout(t), resolve()));
      socket.once("error", (e) => (clearTimeout(t), reject(e)));
    });
    const conn = new LineConn(socket);
    const greeting = await conn.line(timeoutMs);
    return { conn, greeting };
  }

  async #more(timeoutMs: number, what: string): Promise<void> {
    if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(t);
        this.#waiters.delete(ok);
        if (err) reject(err);
        else resolve();
      };
      const ok = () => done();
      const t = setTimeout(() => done(new Error(`no ${what} within ${timeoutMs} ms (have ${esc(this.#buf.subarray(0, 200))})`)), timeoutMs);
      this.#waiters.add(ok);
    });
  }

  async line(timeoutMs = 10_000): Promise<string> {
    for (;;) {
      const i = this.#buf.indexOf("\r\n");
      if (i >= 0) {
        const l = this.#buf.toString("latin1", 0, i);
        this.#buf = this.#buf.subarray(i + 2);
        return l;
      }
      await this.#more(timeoutMs, "reply line");
    }
  }

  /** A dot-terminated block, unstuffed. */
  async block(timeoutMs = 10_000): Promise<Buffer> {
    for (;;) {
      const b = readBlock(this.#buf, 0, Number.MAX_SAFE_INTEGER);
      if (b) {
        this.#buf = this.#buf.subarray(b.end);
        return b.data;
      }
      await this.#more(timeoutMs, "end of a multi-line reply");
    }
  }

  send(s: string): void {
    this.socket.write(bytes(s));
  }

  async cmd(s: string, timeoutMs = 10_000): Promise<string> {
    this.send(s + "\r\n");
    return this.line(timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------
// Monitors

export interface Violation {
  at: number;
  what: string;
}

/** Samples the node's VmRSS every 250 ms; calls onOver (once per crossing) above the limit. */
export class RssSampler {
  peak = 0;
  current = 0;
  violations: Violation[] = [];
  #timer: NodeJS.Timeout;
  #over = false;

  constructor(private readonly pid: () => number | undefined, readonly limitMb: number, private readonly onOver: () => void) {
    this.#timer = setInterval(() => this.sample(), 250);
  }

  sample(): number {
    const pid = this.pid();
    if (!pid) return 0;
    let kb = 0;
    try {
      kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "latin1"))?.[1] ?? 0);
    } catch {
      return 0;
    }
    const mb = kb / 1024;
    this.current = mb;
    this.peak = Math.max(this.peak, mb);
    if (mb > this.limitMb && !this.#over) {
      this.#over = true;
      this.violations.push({ at: Date.now(), what: `node RSS ${mb.toFixed(0)} MB over the ${this.limitMb} MB bound` });
      this.onOver();
    } else if (mb <= this.limitMb) this.#over = false;
    return mb;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** The well-behaved client: DATE every ~200 ms, 111 within 5 s (a hang check, not a speed check). */
export class DateMonitor {
  worst = 0;
  count = 0;
  violations: Violation[] = [];
  paused = false;
  #stop = false;
  #conn: LineConn | undefined;
  #loop: Promise<void>;

  constructor(private readonly port: () => number, readonly limitMs = 5000) {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stop) {
      if (this.paused) {
        this.#conn?.close();
        this.#conn = undefined;
        await sleep(50);
        continue;
      }
      try {
        if (!this.#conn || this.#conn.closed) this.#conn = (await LineConn.connect(this.port(), this.limitMs)).conn;
        const t = Date.now();
        const l = await this.#conn.cmd("DATE", this.limitMs);
        const ms = Date.now() - t;
        if (!this.paused) {
          this.worst = Math.max(this.worst, ms);
          this.count++;
          if (!/^111 \d{14}$/.test(l)) this.violations.push({ at: Date.now(), what: `DATE answered ${esc(l.slice(0, 100))}` });
        }
      } catch (err) {
        if (!this.paused && !this.#stop) this.violations.push({ at: Date.now(), what: `the well-behaved client got no 111 to DATE within ${this.limitMs} ms: ${(err as Error).message.slice(0, 200)}` });
        this.#conn?.close();
        this.#conn = undefined;
      }
      await sleep(200);
    }
    this.#conn?.close();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}

// ---------------------------------------------------------------------------
// Running one connection and the hog

export interface ConnResult {
  tag: string;
  steps: Step[];
  sent: Buffer;
  recv: Buffer;
  closedByServer: boolean;
  markers: "ok" | "closed-ok" | string;
}

/** Whether to stop waiting at a sync point: the POST/IHAVE line ending at `at` has its first reply, or cannot get one. */
function syncReached(w: Wire, at: number): boolean {
  const a = align(w.sentBytes, w.recv);
  if (a.problem) return true;
  const c = a.cmds.find((x) => x.end === at);
  if (c) return (c.verb !== "POST" && c.verb !== "IHAVE") || c.replies.length > 0;
  if (a.openBlock !== undefined && a.openBlock < at) return true; // our POST line is inside an article the server is reading
  return a.sentUsed >= at;
}

export function lastStatusLine(recv: Buffer): string {
  const lines = recv.toString("latin1").split("\r\n");
  for (let i = lines.length - 1; i >= 0; i--) if (/^\d{3}( |$)/.test(lines[i])) return lines[i];
  return "";
}

/** The marker check: 430 for mark1 then 430 for mark2; or closed after 205/400. */
export function markerVerdict(recv: Buffer, tag: string, closed: boolean): "ok" | "closed-ok" | string {
  const lines = recv.toString("latin1").split("\r\n");
  const i = lines.findIndex((l) => l.includes(`<mark1.${tag}@fuzz>`));
  if (i >= 0) {
    if (!/^430 /.test(lines[i])) return `marker 1 answered ${esc(lines[i].slice(0, 120))}, not 430`;
    const next = lines[i + 1];
    if (next === undefined || (next === "" && i + 2 >= lines.length)) return closed ? "marker 2 never answered (connection closed)" : "marker 2 not answered within 15 s";
    if (!next.includes(`<mark2.${tag}@fuzz>`) || !/^430 /.test(next)) return `after marker 1 came ${esc(next.slice(0, 120))}, not 430 for marker 2`;
    return "ok";
  }
  const j = lines.findIndex((l) => l.includes(`<mark2.${tag}@fuzz>`));
  if (j >= 0) return `marker 2 answered before marker 1: ${esc(lines[j].slice(0, 120))}`;
  if (closed) {
    const last = lastStatusLine(recv);
    if (/^(205|400)( |$)/.test(last)) return "closed-ok";
    return `connection closed by the server before the markers were answered; last status line ${esc(last.slice(0, 120))}`;
  }
  return "markers not answered within 15 s (the session is wedged or the node hangs)";
}

export async function driveConn(port: number, steps: Step[], tag: string, markerTimeoutMs = 15_000): Promise<ConnResult> {
  let w: Wire;
  try {
    w = await Wire.connect(port);
  } catch (err) {
    return { tag, steps, sent: Buffer.alloc(0), recv: Buffer.alloc(0), closedByServer: true, markers: `could not connect: ${(err as Error).message}` };
  }
  try {
    for (const s of steps) {
      if (typeof s === "string") w.write(s);
      else if ("sleep" in s) {
        w.steps.push(s);
        if (s.sleep === 0) await tick();
        else await sleep(s.sleep);
      } else {
        w.steps.push(s);
        const at = w.sentLen;
        await w.until(() => syncReached(w, at), 3000);
      }
    }
    w.write(ending(tag));
    const mark2 = `<mark2.${tag}@fuzz>`;
    await w.until(() => {
      const t = w.tail(600).toString("latin1");
      const i = t.lastIndexOf(mark2);
      return i >= 0 && t.indexOf("\r\n", i) >= 0;
    }, markerTimeoutMs);
    const closed = w.closed;
    return { tag, steps: w.steps, sent: w.sentBytes, recv: w.recv, closedByServer: closed, markers: markerVerdict(w.recv, tag, closed) };
  } finally {
    w.close();
  }
}

export interface HogResult {
  line: string;
  sent: number;
  ms: number;
}

/** A reader that pipelines ARTICLE <big> and never reads a reply; destroyed after plan.ms or when stop() is called. */
export async function runHog(port: number, plan: HogPlan, bigId: string, registry: Set<() => void>): Promise<HogResult> {
  const line = `ARTICLE ${bigId}\r\n`;
  const socket = net.connect({ port, host: "127.0.0.1" });
  socket.pause();
  socket.on("error", () => {});
  let stopped = false;
  const stop = () => {
    stopped = true;
    socket.destroy();
  };
  registry.add(stop);
  const t0 = Date.now();
  let sent = 0;
  try {
    await new Promise<void>((resolve) => {
      socket.once("connect", () => resolve());
      socket.once("error", () => resolve());
      socket.once("close", () => resolve());
    });
    socket.pause();
    const batch = Buffer.from(line.repeat(100));
    while (!stopped && sent < plan.count && !socket.destroyed) {
      socket.write(batch);
      sent += 100;
      await sleep(15);
    }
    while (!stopped && Date.now() - t0 < plan.ms) await sleep(25);
  } finally {
    registry.delete(stop);
    socket.destroy();
  }
  return { line, sent, ms: Date.now() - t0 };
}

// ---------------------------------------------------------------------------
// Transcripts

export interface Transcript {
  seed: number;
  path: string;
  run: number;
  conns: { steps: Step[]; answered: string; closedByServer: boolean; verdict: string }[];
  hog?: HogResult;
}

/** JSON text of a transcript; byte strings escaped so they survive copy and paste. */
export function transcriptJson(t: Transcript): string {
  const step = (s: Step) => (typeof s === "string" ? esc(s) : JSON.stringify(s));
  const conns = t.conns.map(
    (c) =>
      `  {"steps": [\n    ${c.steps.map(step).join(",\n    ")}\n  ],\n  "answered": ${esc(c.answered)},\n  "closedByServer": ${c.closedByServer}, "verdict": ${JSON.stringify(c.verdict)}}`,
  );
  const hog = t.hog ? `,\n "hog": {"line": ${esc(t.hog.line)}, "times": ${t.hog.sent}, "ms": ${t.hog.ms}, "note": "a second connection: socket.pause(), never read, write line x times, destroy after ms"}` : "";
  return `{"seed": ${t.seed}, "path": ${JSON.stringify(t.path)}, "run": ${t.run},\n "conns": [\n${conns.join(",\n")}\n ]${hog}\n}`;
}

/** What the server sent, first 4 KB, for a transcript. */
export const answered = (recv: Buffer): string => recv.toString("latin1", 0, 4096) + (recv.length > 4096 ? `...[${recv.length - 4096} more bytes]` : "");

/**
 * Replays a transcript's connections against a node (for a unit test made of
 * a fuzz failure): writes each connection's steps as recorded, at once, and
 * returns what each got, with the same checks the fuzzer makes (markers,
 * replies in command order). The steps already end with the markers.
 */
export async function replayTranscript(port: number, t: { conns: { steps: Step[] }[] }): Promise<{ recv: Buffer[]; problems: string[] }> {
  const results = await Promise.all(
    t.conns.map(async (c) => {
      const w = await Wire.connect(port);
      try {
        for (const s of c.steps) {
          if (typeof s === "string") w.write(s);
          else if ("sleep" in s) await (s.sleep === 0 ? tick() : sleep(s.sleep));
          else {
            const at = w.sentLen;
            await w.until(() => syncReached(w, at), 3000);
          }
        }
        const tag = /<mark2\.([^@>]+)@fuzz>/.exec(w.sentBytes.toString("latin1"))?.[1] ?? "";
        await w.until(() => tag !== "" && w.recv.includes(`<mark2.${tag}@fuzz>\r\n`), 15_000);
        const problems: string[] = [];
        const m = markerVerdict(w.recv, tag, w.closed);
        if (m !== "ok" && m !== "closed-ok") problems.push(m);
        const a = align(w.sentBytes, w.recv);
        if (a.problem) problems.push(a.problem);
        problems.push(...streamingIdProblems(a));
        return { recv: w.recv, problems };
      } finally {
        w.close();
      }
    }),
  );
  return { recv: results.map((r) => r.recv), problems: results.flatMap((r) => r.problems) };
}
