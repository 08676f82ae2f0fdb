// Every command a reader, poster or feeder uses, with its success and error
// codes, against a real node on a real socket (RFC 3977, RFC 4644).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startNode, type TestNode } from "../helpers/node.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";

let node: TestNode;
let c: RawClient;
const posted: string[] = [];

before(async () => {
  node = await startNode();
  c = (await RawClient.connect(node.port)).client;
  // three articles in local.test, the second a reply to the first
  for (let i = 0; i < 3; i++) {
    assert.match(await c.cmd("POST"), /^340/);
    const refs = i === 1 ? `References: ${posted[0]}\r\n` : "";
    c.send(stuff(`From: Reader <r@example.org>\r\nNewsgroups: local.test\r\nSubject: article ${i}\r\n${refs}\r\n.dot line ${i}\r\nline two\r\n`));
    const r = await c.line();
    assert.match(r, /^240 /);
    posted.push(r.split(" ").pop()!);
  }
});
after(async () => {
  c.close();
  await node.stop();
});

async function fresh(): Promise<RawClient> {
  const { client, greeting } = await RawClient.connect(node.port);
  assert.match(greeting, /^200 /);
  return client;
}

test("greeting, CAPABILITIES, MODE READER, HELP, DATE, unknown command", async () => {
  const k = await fresh();
  assert.match(await k.cmd("CAPABILITIES"), /^101/);
  const caps = await k.lines();
  for (const want of ["VERSION 2", "READER", "POST", "IHAVE", "STREAMING", "OVER MSGID", "HDR", "NEWNEWS"]) assert.ok(caps.includes(want), `${want} in ${caps}`);
  assert.ok(caps.some((l) => /^LIST ACTIVE.*NEWSGROUPS.*OVERVIEW\.FMT/.test(l) && l.includes("ACTIVE.TIMES") && l.includes("HEADERS")));
  assert.ok(caps.some((l) => l.startsWith("IMPLEMENTATION tidings")));
  assert.match(await k.cmd("MODE READER"), /^200 /);
  assert.match(await k.cmd("MODE SOMETHING"), /^501 /);
  assert.match(await k.cmd("HELP"), /^100 /);
  assert.ok((await k.lines()).length > 3);
  assert.match(await k.cmd("DATE"), /^111 \d{14}$/);
  assert.match(await k.cmd("FROBNICATE now"), /^500 /);
  assert.match(await k.cmd("QUIT"), /^205 /);
  await k.closedByServer();
});

test("GROUP and LISTGROUP with ranges", async () => {
  const k = await fresh();
  assert.match(await k.cmd("LISTGROUP"), /^412 /);
  assert.match(await k.cmd("GROUP no.such.group"), /^411 /);
  assert.match(await k.cmd("GROUP"), /^501 /);
  assert.equal(await k.cmd("GROUP local.test"), "211 3 1 3 local.test");
  assert.equal(await k.cmd("GROUP local.general"), "211 0 1 0 local.general");
  assert.match(await k.cmd("LISTGROUP local.test"), /^211 3 1 3 local\.test/);
  assert.deepEqual(await k.lines(), ["1", "2", "3"]);
  assert.match(await k.cmd("LISTGROUP local.test 2-"), /^211 /);
  assert.deepEqual(await k.lines(), ["2", "3"]);
  assert.match(await k.cmd("LISTGROUP local.test 3-2"), /^211 /);
  assert.deepEqual(await k.lines(), []);
  assert.match(await k.cmd("LISTGROUP local.test x-y"), /^501 /);
  k.close();
});

test("ARTICLE, HEAD, BODY, STAT by number, by Message-ID and on the current article", async () => {
  const k = await fresh();
  assert.match(await k.cmd("ARTICLE 1"), /^412 /);
  assert.match(await k.cmd(`STAT ${posted[1]}`), new RegExp(`^223 0 ${posted[1].replace(/[.]/g, "\\.")}`));
  assert.match(await k.cmd("STAT <nope@nowhere.example>"), /^430 /);
  assert.match(await k.cmd("STAT <not a msgid"), /^501 /);
  await k.cmd("GROUP local.test");
  assert.equal(await k.cmd("STAT"), `223 1 ${posted[0]}`);
  assert.equal(await k.cmd("HEAD 2"), `221 2 ${posted[1]}`);
  const head = await k.lines();
  assert.ok(head.includes(`References: ${posted[0]}`));
  assert.ok(head.some((l) => l.startsWith(`Path: ${node.pathhost}!`)));
  assert.ok(head.includes(`Xref: ${node.pathhost} local.test:2`));
  assert.equal(await k.cmd("BODY"), `222 2 ${posted[1]}`, "HEAD 2 made 2 the current article");
  assert.deepEqual(await k.lines(), [".dot line 1", "line two"]);
  assert.equal(await k.cmd(`ARTICLE ${posted[2]}`), `220 0 ${posted[2]}`);
  const art = await k.lines();
  assert.ok(art.includes("") && art.includes(".dot line 2"));
  assert.match(await k.cmd("ARTICLE 99"), /^423 /);
  assert.match(await k.cmd("ARTICLE x"), /^501 /);
  assert.match(await k.cmd("ARTICLE 1 2"), /^501 /);
  k.close();
});

test("NEXT and LAST", async () => {
  const k = await fresh();
  assert.match(await k.cmd("NEXT"), /^412 /);
  await k.cmd("GROUP local.general");
  assert.match(await k.cmd("NEXT"), /^420 /);
  await k.cmd("GROUP local.test");
  assert.match(await k.cmd("LAST"), /^422 /);
  assert.equal(await k.cmd("NEXT"), `223 2 ${posted[1]} retrieved`);
  assert.equal(await k.cmd("NEXT"), `223 3 ${posted[2]} retrieved`);
  assert.match(await k.cmd("NEXT"), /^421 /);
  assert.equal(await k.cmd("LAST"), `223 2 ${posted[1]} retrieved`);
  k.close();
});

test("LIST ACTIVE, NEWSGROUPS, OVERVIEW.FMT, ACTIVE.TIMES, HEADERS", async () => {
  const k = await fresh();
  assert.match(await k.cmd("LIST"), /^215 /);
  const active = await k.lines();
  assert.ok(active.includes("local.test 3 1 y"));
  assert.ok(active.includes("tidings.announce 0 1 m"));
  assert.match(await k.cmd("LIST ACTIVE local.*"), /^215 /);
  assert.deepEqual((await k.lines()).map((l) => l.split(" ")[0]), ["local.general", "local.test"]);
  assert.match(await k.cmd("LIST NEWSGROUPS *.announce"), /^215 /);
  assert.deepEqual(await k.lines(), ["tidings.announce\tAnnouncements (moderated)"]);
  assert.match(await k.cmd("LIST OVERVIEW.FMT"), /^215 /);
  assert.deepEqual(await k.lines(), ["Subject:", "From:", "Date:", "Message-ID:", "References:", ":bytes", ":lines", "Xref:full"]);
  assert.match(await k.cmd("LIST ACTIVE.TIMES local.test"), /^215 /);
  assert.match((await k.lines())[0], /^local\.test \d+ tidings$/);
  assert.match(await k.cmd("LIST HEADERS"), /^215 /);
  assert.deepEqual(await k.lines(), [":", ":bytes", ":lines"]);
  assert.match(await k.cmd("LIST NONSENSE"), /^501 /);
  k.close();
});

test("OVER/XOVER by range and Message-ID; HDR/XHDR; XPAT", async () => {
  const k = await fresh();
  assert.match(await k.cmd("OVER"), /^412 /);
  await k.cmd("GROUP local.test");
  assert.match(await k.cmd("OVER 1-3"), /^224 /);
  const over = (await k.lines()).map((l) => l.split("\t"));
  assert.equal(over.length, 3);
  assert.deepEqual(over[1].slice(0, 2), ["2", "article 1"]);
  assert.equal(over[1][4], posted[1]);
  assert.equal(over[1][5], posted[0], "References in the overview");
  assert.equal(over[1][7], "2", ":lines");
  assert.equal(over[1][8], `Xref: ${node.pathhost} local.test:2`);
  assert.match(await k.cmd(`XOVER ${posted[2]}`), /^224 /);
  assert.equal((await k.lines())[0].split("\t")[0], "0", "RFC 3977 §8.3.2: number 0 for the message-id form");
  assert.match(await k.cmd("OVER 50-60"), /^423 /);
  assert.match(await k.cmd("OVER <missing@nowhere.example>"), /^430 /);
  assert.match(await k.cmd("HDR Subject 1-"), /^225 /);
  assert.deepEqual(await k.lines(), ["1 article 0", "2 article 1", "3 article 2"]);
  assert.match(await k.cmd("HDR Newsgroups 2"), /^225 /);
  assert.deepEqual(await k.lines(), ["2 local.test"]);
  assert.match(await k.cmd(`HDR :bytes ${posted[0]}`), /^225 /);
  assert.match((await k.lines())[0], /^0 \d+$/);
  assert.match(await k.cmd("XHDR X-Missing 1-2"), /^221 /);
  assert.deepEqual(await k.lines(), ["1 (none)", "2 (none)"]);
  assert.match(await k.cmd("XPAT Subject 1-3 *1 *2"), /^221 /);
  assert.deepEqual(await k.lines(), ["2 article 1", "3 article 2"]);
  assert.match(await k.cmd("HDR"), /^501 /);
  k.close();
});

test("NEWNEWS and NEWGROUPS", async () => {
  const k = await fresh();
  assert.match(await k.cmd("NEWNEWS local.* 20000101 000000 GMT"), /^230 /);
  const ids = await k.lines();
  for (const id of posted) assert.ok(ids.includes(id));
  assert.match(await k.cmd("NEWNEWS local.general 20000101 000000"), /^230 /);
  assert.deepEqual(await k.lines(), []);
  assert.match(await k.cmd("NEWNEWS * 30000101 000000"), /^230 /);
  assert.deepEqual(await k.lines(), []);
  assert.match(await k.cmd("NEWGROUPS 000101 000000"), /^231 /);
  assert.ok((await k.lines()).some((l) => l.startsWith("local.test ")));
  assert.match(await k.cmd("NEWGROUPS 20001301 000000"), /^501 /);
  assert.match(await k.cmd("NEWNEWS * yesterday"), /^501 /);
  k.close();
});

test("POST refusals say why, store nothing, and the session goes on", async () => {
  const k = await fresh();
  const cases: [string, RegExp][] = [
    ["From: a <a@b.c>\r\nSubject: s\r\n\r\nb\r\n", /^441 Missing required header: Newsgroups/],
    ["Newsgroups: local.test\r\nSubject: s\r\n\r\nb\r\n", /^441 Missing required header: From/],
    ["From: a <a@b.c>\r\nNewsgroups: local.test\r\n\r\nb\r\n", /^441 Missing required header: Subject/],
    ["From: a <a@b.c>\r\nNewsgroups: local.test\r\nSubject: s\r\nMessage-ID: nope\r\n\r\nb\r\n", /^441 Invalid Message-ID/],
    ["From: a <a@b.c>\r\nNewsgroups: no.such.group\r\nSubject: s\r\n\r\nb\r\n", /^441 No carried newsgroups/],
    // RFC 5537 §3.5.1: Approved only from those the moderated group allows (relay/moderation.ts)
    ["From: a <a@b.c>\r\nNewsgroups: tidings.announce\r\nApproved: a@b.c\r\nSubject: s\r\n\r\nb\r\n", /^441 You are not allowed to approve postings to tidings\.announce/],
    ["From: a <a@b.c>\r\nNewsgroups: local.test\r\nSubject: s\r\nDate: someday\r\n\r\nb\r\n", /^441 Invalid Date/],
    [`From: a <a@b.c>\r\nNewsgroups: local.test\r\nSubject: s\r\nMessage-ID: ${posted[0]}\r\n\r\nb\r\n`, /^441 Duplicate/],
    ["no header at all\r\n\r\nb\r\n", /^441 Malformed header/],
  ];
  for (const [text, want] of cases) {
    assert.match(await k.cmd("POST"), /^340/);
    k.send(stuff(text));
    assert.match(await k.line(), want);
  }
  assert.equal(await k.cmd("GROUP local.test"), "211 3 1 3 local.test", "nothing refused was filed");
  assert.match(await k.cmd("POST extra"), /^501 /);
  k.close();
});

test("an article over the size bound is refused whole on every path", async () => {
  const small = await startNode({ config: "[nntp]\nmax_article_bytes = 2048\n" });
  try {
    const k = (await RawClient.connect(small.port)).client;
    const big = makeArticle({ body: "x".repeat(100) + "\r\n".repeat(1) + ("y".repeat(70) + "\r\n").repeat(40) });
    assert.match(await k.cmd("POST"), /^340/);
    k.send(stuff(big.text));
    assert.match(await k.line(), /^441 Article too large \(\d+ > 2048 octets\)/);
    assert.match(await k.cmd(`IHAVE ${big.msgid}`), /^335/);
    k.send(stuff(big.text));
    assert.match(await k.line(), /^437 Article too large/);
    k.send(`TAKETHIS ${big.msgid}\r\n`);
    k.send(stuff(big.text));
    assert.match(await k.line(), /^439 .*too large/);
    assert.match(await k.cmd(`STAT ${big.msgid}`), /^430/);
    assert.equal(await k.cmd("GROUP local.test"), "211 0 1 0 local.test");
    k.close();
  } finally {
    await small.stop();
  }
});

test("IHAVE: 335/235, 435 duplicate, 437 bad article or Path loop, 501 bad id", async () => {
  const k = await fresh();
  const a = makeArticle({ body: "..two dots\r\n\xe9t\xe9\r\n" });
  assert.match(await k.cmd(`IHAVE ${a.msgid}`), /^335/);
  k.send(stuff(Buffer.from(a.text, "latin1")));
  assert.match(await k.line(), /^235/);
  assert.match(await k.cmd(`IHAVE ${a.msgid}`), /^435/);
  // served back byte for byte (below our Path and the Xref we add)
  assert.match(await k.cmd(`BODY ${a.msgid}`), /^222/);
  assert.equal((await k.rawBlock()).toString("latin1"), "...two dots\r\n\xe9t\xe9\r\n");
  const noFrom = makeArticle();
  assert.match(await k.cmd(`IHAVE ${noFrom.msgid}`), /^335/);
  k.send(stuff(noFrom.text.replace(/^From: .*\r\n/m, "")));
  assert.match(await k.line(), /^437 Missing required header: From/);
  const loop = makeArticle({ path: `elsewhere!${node.pathhost}!origin` });
  assert.match(await k.cmd(`IHAVE ${loop.msgid}`), /^335/);
  k.send(stuff(loop.text));
  assert.equal((await k.line()).startsWith(`437 Article already passed through ${node.pathhost} `), true);
  const other = makeArticle();
  assert.match(await k.cmd(`IHAVE ${other.msgid}`), /^335/);
  k.send(stuff(makeArticle().text));
  assert.match(await k.line(), /^437 .*does not match offered/);
  assert.match(await k.cmd("IHAVE not-an-id"), /^501/);
  assert.match(await k.cmd("DATE"), /^111/);
  k.close();
});

test("quotes, SQL-looking text, UTF-8 and control bytes are stored and served exactly", async () => {
  // one article on an idle node goes through the writer's one-call path (values written into the SQL)
  const k = await fresh();
  const subject = `it's "quoted"'); DROP TABLE articles; -- caf\u00e9 \u2603 ?`;
  const a = makeArticle({ subject, extra: `X-Odd: a\\b ' " \u00e9\r\n`, body: "ctl\x01here\x7f\r\n'); DELETE FROM history; --\r\n" }); // NUL is refused (hostile.test.ts)
  const wire = Buffer.from(a.text, "utf8");
  assert.match(await k.cmd(`IHAVE ${a.msgid}`), /^335/);
  k.send(stuff(wire));
  assert.match(await k.line(), /^235/);
  assert.match(await k.cmd(`ARTICLE ${a.msgid}`), /^220/);
  const got = await k.rawBlock();
  const sep = got.indexOf("\r\n\r\n");
  assert.deepEqual(got.subarray(sep), wire.subarray(wire.indexOf("\r\n\r\n")), "body byte for byte");
  assert.ok(got.subarray(0, sep).includes(Buffer.from(`Subject: ${subject}\r\nDate:`, "utf8")), "Subject byte for byte");
  assert.match(await k.cmd(`OVER ${a.msgid}`), /^224/);
  const over = (await k.rawBlock()).toString("utf8").split("\t");
  assert.equal(over[1], subject);
  assert.equal(over[2], "Test Poster <poster@example.org>");
  k.close();
});

test("streaming: pipelined CHECK and TAKETHIS answered in order; 431 while another session has it", async () => {
  const k = await fresh();
  assert.match(await k.cmd("MODE STREAM"), /^203/);
  const a = makeArticle(), b = makeArticle(), bad = makeArticle();
  // everything in one write: replies must come back in command order
  k.send(Buffer.concat([
    Buffer.from(`CHECK ${a.msgid}\r\nCHECK ${posted[0]}\r\nTAKETHIS ${a.msgid}\r\n`), stuff(a.text),
    Buffer.from(`TAKETHIS ${b.msgid}\r\n`), stuff(b.text),
    Buffer.from(`TAKETHIS ${b.msgid}\r\n`), stuff(b.text),
    Buffer.from(`TAKETHIS ${bad.msgid}\r\n`), stuff(bad.text.replace(/^Subject: .*\r\n/m, "")),
    Buffer.from(`CHECK bogus\r\nDATE\r\n`),
  ]));
  assert.equal(await k.line(), `238 ${a.msgid} send it`);
  assert.match(await k.line(), new RegExp(`^438 ${posted[0].replace(/[.]/g, "\\.")}`));
  assert.equal(await k.line(), `239 ${a.msgid} article transferred OK`);
  assert.equal(await k.line(), `239 ${b.msgid} article transferred OK`);
  assert.match(await k.line(), new RegExp(`^439 ${b.msgid.replace(/[.]/g, "\\.")} Duplicate`));
  assert.match(await k.line(), /^439 .*Missing required header: Subject/);
  assert.match(await k.line(), /^438 bogus/);
  assert.match(await k.line(), /^111 /);

  const other = await fresh();
  await other.cmd("MODE STREAM");
  const c1 = makeArticle();
  assert.match(await k.cmd(`CHECK ${c1.msgid}`), /^238/);
  assert.match(await other.cmd(`CHECK ${c1.msgid}`), /^431/, "RFC 4644 §2.4: in progress elsewhere");
  k.send(`TAKETHIS ${c1.msgid}\r\n`);
  k.send(stuff(c1.text));
  assert.match(await k.line(), /^239/);
  assert.match(await other.cmd(`CHECK ${c1.msgid}`), /^438/);
  k.close();
  other.close();
});

test("a 600-octet command line gets 501 and the session goes on", async () => {
  const k = await fresh();
  assert.match(await k.cmd("GROUP " + "x".repeat(600)), /^501 Line too long \(608 > 512 octets\)/);
  assert.match(await k.cmd("DATE"), /^111 /);
  k.close();
});

test("transit from an address that is not a peer gets 502 with the reason", async () => {
  const shut = await startNode({ config: '[nntp]\ntransit_from = ["10.9.9.9"]\n' });
  try {
    const k = (await RawClient.connect(shut.port)).client;
    const why = "502 Transit not permitted from 127.0.0.1: not a configured peer";
    assert.equal(await k.cmd("MODE STREAM"), why);
    assert.equal(await k.cmd("IHAVE <a@b.c>"), why);
    assert.equal(await k.cmd("CHECK <a@b.c>"), why);
    const a = makeArticle();
    k.send(`TAKETHIS ${a.msgid}\r\n`);
    k.send(stuff(a.text));
    assert.equal(await k.line(), why, "the article after TAKETHIS is read and dropped");
    assert.match(await k.cmd("DATE"), /^111/);
    assert.match(await k.cmd(`STAT ${a.msgid}`), /^430/);
    k.close();
  } finally {
    await shut.stop();
  }
});

test("idle sessions are closed with 400; the connection cap answers 400", async () => {
  const n = await startNode({ config: "[nntp]\nidle_timeout = 1\nmax_connections = 1\n" });
  try {
    const first = (await RawClient.connect(n.port)).client;
    const second = await RawClient.connect(n.port);
    assert.match(second.greeting, /^400 .*too many connections/);
    const rest = await first.closedByServer(5000);
    assert.match(rest, /^400 Idle timeout/);
  } finally {
    await n.stop();
  }
});
