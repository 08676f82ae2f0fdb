// Hostile input (issue 7): each fault found by a hostile tester against a
// zero-configuration node, reproduced over a real socket. Every test here
// failed on the code before the fix.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { readFileSync } from "node:fs";
import { startNode, type TestNode } from "../helpers/node.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";

let node: TestNode;

before(async () => {
  node = await startNode();
});
after(async () => {
  await node.stop();
});

async function fresh(): Promise<RawClient> {
  const { client, greeting } = await RawClient.connect(node.port);
  assert.match(greeting, /^200 /);
  return client;
}

/** Reads status lines (skipping nothing) until `n` have come; a multi-line block would break this, so tests only send single-line commands. */
async function lines(c: RawClient, n: number): Promise<string[]> {
  const out: string[] = [];
  while (out.length < n) out.push(await c.line());
  return out;
}

const post = (subject: string, extra = "", body = "body\r\n") =>
  `From: Hostile <h@example.org>\r\nNewsgroups: local.test\r\nSubject: ${subject}\r\n${extra}\r\n${body}`;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

test("1. a pipelined POST behind another command is answered in order", async () => {
  const c = await fresh();
  // RFC 3977 §3.5: a pipeline may end with POST; 211 must come before 340
  c.send("GROUP local.test\r\nPOST\r\n");
  assert.deepEqual((await lines(c, 2)).map((l) => l.slice(0, 3)), ["211", "340"]);
  c.send(stuff(post("in order")));
  assert.match(await c.line(), /^240 /);

  // a refused POST does not wedge the session: DATE after it is answered
  c.send("GROUP local.test\r\nPOST x\r\nDATE\r\n");
  assert.deepEqual((await lines(c, 3)).map((l) => l.slice(0, 3)), ["211", "501", "111"]);

  // the article sent before the 340 is read once, and what follows is answered
  c.send(Buffer.concat([Buffer.from("GROUP local.test\r\nPOST\r\n"), stuff(post("early")), Buffer.from("DATE\r\n")]));
  assert.deepEqual((await lines(c, 4)).map((l) => l.slice(0, 3)), ["211", "340", "240", "111"]);

  // the same for IHAVE, and two POSTs in one write
  const a = makeArticle();
  c.send(Buffer.concat([Buffer.from(`GROUP local.test\r\nIHAVE ${a.msgid}\r\n`), stuff(a.text), Buffer.from("DATE\r\n")]));
  assert.deepEqual((await lines(c, 4)).map((l) => l.slice(0, 3)), ["211", "335", "235", "111"]);
  c.send(Buffer.concat([Buffer.from("POST\r\n"), stuff(post("one")), Buffer.from("POST\r\n"), stuff(post("two")), Buffer.from("DATE\r\n")]));
  assert.deepEqual((await lines(c, 5)).map((l) => l.slice(0, 3)), ["340", "240", "340", "240", "111"]);
  c.close();
});

test("1. the same pipelines split one byte a write are answered alike", async () => {
  const c = await fresh();
  const bytes = Buffer.concat([Buffer.from("GROUP local.test\r\nPOST x\r\nPOST\r\n"), stuff(post("bytewise")), Buffer.from("DATE\r\n")]);
  for (const b of bytes) {
    c.send(Buffer.from([b]));
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual((await lines(c, 5)).map((l) => l.slice(0, 3)), ["211", "501", "340", "240", "111"]);
  c.close();
});

test("2. a bare LF, lone CR or NUL inside a header line is refused on every path", async () => {
  const c = await fresh();
  const smuggled = post("hi\nApproved: fake\nNewsgroups: tidings.announce");
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(smuggled));
  const r = await c.line();
  assert.match(r, /^441 Bare LF in header line/);

  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(post("lone\rCR")));
  assert.match(await c.line(), /^441 Lone CR in header line/);

  const t = makeArticle({ subject: "x\nControl: cancel <victim@example.org>" });
  assert.match(await c.cmd("MODE STREAM"), /^203/);
  c.send(Buffer.concat([Buffer.from(`TAKETHIS ${t.msgid}\r\n`), stuff(t.text)]));
  assert.match(await c.line(), new RegExp(`^439 ${t.msgid.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} Bare LF in header line`));
  const i = makeArticle({ subject: "nul\0here" });
  assert.match(await c.cmd(`IHAVE ${i.msgid}`), /^335/);
  c.send(stuff(i.text));
  assert.match(await c.line(), /^437 NUL in header line/);
  // nothing of them was stored
  for (const id of [t.msgid, i.msgid]) assert.match(await c.cmd(`STAT ${id}`), /^430 /);
  c.close();
});

test("3. From must be a mailbox list: NUL and address-less values are refused", async () => {
  const c = await fresh();
  for (const from of ["\0@\0", "nobody", "Name <>", "a@b@c"]) {
    assert.match(await c.cmd("POST"), /^340/);
    c.send(stuff(`From: ${from}\r\nNewsgroups: local.test\r\nSubject: from\r\n\r\nbody\r\n`));
    assert.match(await c.line(), /^441 /, JSON.stringify(from));
  }
  for (const from of ["user@example.org (Real Name)", "\"Doe, John\" <john@example.org>"]) {
    assert.match(await c.cmd("POST"), /^340/);
    c.send(stuff(`From: ${from}\r\nNewsgroups: local.test\r\nSubject: from\r\n\r\nbody\r\n`));
    assert.match(await c.line(), /^240 /, from);
  }
  c.close();
});

test("4. an empty Path on POST is replaced, not kept beside the injected one", async () => {
  const c = await fresh();
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(post("empty path", "Path: \r\n")));
  const id = (await c.line()).split(" ").pop()!;
  assert.match(await c.cmd(`HEAD ${id}`), /^221 /);
  const head = (await c.lines()).filter((l) => /^path:/i.test(l));
  assert.deepEqual(head, [`Path: ${node.pathhost}!.POSTED!not-for-mail`]);
  c.close();
});

test("5. 8-bit header bytes are kept byte for byte, on POST and on transit", async () => {
  const c = await fresh();
  const latin1 = Buffer.from("caf\xe9 cr\xe8me", "latin1");
  const art = Buffer.concat([Buffer.from("From: Hostile <h@example.org>\r\nNewsgroups: local.test\r\nSubject: "), latin1, Buffer.from("\r\nX-Raw: \xff\xfe\r\n\r\nbody \xe9\r\n", "latin1")]);
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(art));
  const id = (await c.line()).split(" ").pop()!;
  assert.match(await c.cmd(`ARTICLE ${id}`), /^220 /);
  const got = await c.rawBlock();
  assert.ok(got.includes(Buffer.concat([Buffer.from("Subject: "), latin1, Buffer.from("\r\n")])), got.toString("latin1"));
  assert.ok(got.includes(Buffer.from("X-Raw: \xff\xfe\r\n", "latin1")));
  assert.ok(got.includes(Buffer.from("\r\n\r\nbody \xe9\r\n", "latin1")));

  const t = makeArticle({ subject: "na\xefve", body: "b\xf6dy\r\n" });
  c.send(Buffer.concat([Buffer.from(`TAKETHIS ${t.msgid}\r\n`), stuff(Buffer.from(t.text, "latin1"))]));
  assert.match(await c.line(), /^239 /);
  assert.match(await c.cmd(`ARTICLE ${t.msgid}`), /^220 /);
  const stored = await c.rawBlock();
  // everything but the Path this node prepends and the Xref it adds
  const sent = Buffer.from(t.text, "latin1").toString("latin1").replace(/^Path: /, `Path: ${node.pathhost}!`);
  assert.equal(stored.toString("latin1").replace(/Xref: [^\r]*\r\n/, ""), sent);
  // UTF-8 stays UTF-8 in overview, as it did
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(Buffer.from(post("Grüße"), "utf8")));
  const u = (await c.line()).split(" ").pop()!;
  assert.match(await c.cmd(`HDR Subject ${u}`), /^225 /);
  assert.deepEqual(await c.lines(), ["0 Grüße"]);
  // a UTF-8 "à" ends in the octet 0xA0, which String.trim() takes for a space
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(Buffer.from(post("voilà"), "utf8")));
  const v = (await c.line()).split(" ").pop()!;
  assert.match(await c.cmd(`OVER ${v}`), /^224 /);
  assert.equal((await c.lines())[0].split("\t")[1], "voilà");
  c.close();
});

test("6. a malformed wildmat is the client's mistake: 501, and the session goes on", async () => {
  const c = await fresh();
  assert.match(await c.cmd("LIST ACTIVE [z-a]"), /^501 .*z-a/);
  assert.match(await c.cmd("LIST NEWSGROUPS local.[te"), /^501 /);
  assert.match(await c.cmd("NEWNEWS [z-a] 20200101 000000"), /^501 /);
  assert.match(await c.cmd("DATE"), /^111 /);
  c.close();
});

test("7. NUL in a body is refused (as INN 2.7 does); a lone CR or bare LF in a body is kept", async () => {
  const c = await fresh();
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(post("nul body", "", "a\0b\r\n")));
  assert.match(await c.line(), /^441 NUL character in body/);
  const t = makeArticle({ body: "x\0y\r\n" });
  c.send(Buffer.concat([Buffer.from(`TAKETHIS ${t.msgid}\r\n`), stuff(t.text)]));
  assert.match(await c.line(), /^439 .*NUL character in body/);

  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(post("cr body", "", "lone\rCR and bare\nLF\r\n")));
  const id = (await c.line()).split(" ").pop()!;
  assert.match(await c.cmd(`BODY ${id}`), /^222 /);
  assert.equal((await c.rawBlock()).toString("latin1"), "lone\rCR and bare\nLF\r\n");
  c.close();
});

test("8. a reader that never reads is held at a bounded size, and others are served", { timeout: 120_000 }, async () => {
  const c = await fresh();
  const big = "x".repeat(78) + "\r\n";
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(post("big", "", big.repeat(11_000)))); // about 880 KB
  const id = (await c.line()).split(" ").pop()!;

  const before = rssMb(node.pid);
  const hog = net.connect(node.port, "127.0.0.1");
  await new Promise((r) => hog.once("connect", r));
  hog.pause(); // never reads a reply
  const batch = `ARTICLE ${id}\r\n`.repeat(200);
  let sent = 0;
  let peak = before;
  let worstDate = 0;
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline) {
    if (hog.writableLength < 1 << 20) {
      hog.write(batch);
      sent += 200;
    }
    peak = Math.max(peak, rssMb(node.pid));
    const t0 = Date.now();
    assert.match(await c.cmd("DATE"), /^111 /);
    worstDate = Math.max(worstDate, Date.now() - t0);
    await new Promise((r) => setTimeout(r, 100));
  }
  hog.destroy();
  console.log(`hog sent ${sent} ARTICLE commands for an ${Math.round(big.length * 11_000 / 1024)} KB article; node RSS ${before.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB; worst DATE from another client ${worstDate} ms`);
  // before the fix: 124 MB -> 3,172 MB in 9 s
  assert.ok(peak - before < 150, `RSS grew by ${(peak - before).toFixed(0)} MB`);
  c.close();
});

test("9. wildmats built to be slow do not freeze the node", { timeout: 60_000 }, async () => {
  const c = await fresh();
  const other = await fresh();
  for (const n of [19, 40, 200]) {
    c.send(`LIST ACTIVE ${"*".repeat(n)}!\r\n`);
    // another client is served meanwhile; before the fix 19 stars froze every session for 13 s
    assert.match(await other.cmd("DATE"), /^111 /);
    assert.match(await c.line(30_000), /^215 /);
    assert.deepEqual(await c.lines(), []);
  }
  c.send(`XPAT Subject 1-100 ${"*a".repeat(200)}b\r\n`);
  assert.match(await c.line(), /^412 |^221 /);
  c.close();
  other.close();
});

test("an IHAVE whose article comes early and large, behind a command still running, is read to its end (found by the fuzzer)", async () => {
  const c = await fresh();
  const a = makeArticle({ body: `${"h".repeat(990)}\r\n`.repeat(400) });
  // reading pauses while more than 64 KB wait on the IHAVE's verdict; after the 335 it must go on
  c.send(Buffer.concat([Buffer.from(`STAT <y@z>\r\nIHAVE ${a.msgid}\r\n`), stuff(a.text), Buffer.from("STAT <m@x>\r\n")]));
  assert.deepEqual((await lines(c, 4)).map((l) => l.slice(0, 3)), ["430", "335", "235", "430"]);
  c.close();
});
