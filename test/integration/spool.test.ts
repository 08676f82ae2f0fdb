// Large articles live in append-only spool files beside the database
// (storage/spool.ts): written once, synced before the COMMIT that points at
// them, read back byte for byte by every path that reads articles, and their
// files deleted by expiry once no article in them is left. SIGKILL during a
// flood of spooled articles: test/integration/crash.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { Storage } from "../../storage/database.js";
import { Spool, SpoolWriter } from "../../storage/spool.js";
import type { NewArticle } from "../../storage/writer.js";
import { spawnSync } from "node:child_process";
import { CLI, startNode, tempDir } from "../helpers/node.js";
import { RawClient, makeArticle, stuff, until } from "../helpers/client.js";
import { Mesh, chain } from "../helpers/mesh.js";

function tidings(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const OPTS = { synchronous: "full" as const, pathhost: "x", maxBatch: 50, maxQueue: 1e9, maxQueueBytes: 1e12 };

/** A body with every octet value, lines that start with a dot, and CRLF line ends. */
function awkwardBody(len: number, seed: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = (i * 7 + seed) % 256;
  // no bare CR or LF or NUL (ingest refuses NUL; the wire has lines): put CRLF every 70 bytes, a dot after some
  for (let i = 0; i < len; i++) if (out[i] === 0x0d || out[i] === 0x0a || out[i] === 0) out[i] = 0x41;
  for (let i = 70; i + 3 < len; i += 72) {
    out[i] = 0x0d;
    out[i + 1] = 0x0a;
    if ((i / 72) % 3 === 0) out[i + 2] = 0x2e;
  }
  out[len - 2] = 0x0d;
  out[len - 1] = 0x0a;
  return out;
}

const article = (msgid: string, body: Buffer): NewArticle => ({
  msgid, header: `Message-ID: ${msgid}\r\nOrganization: spool test\r\n`, body, groups: ["local.test"], subject: "s", author: "a",
  date: "d", refs: "", lines: 1, source: "x", arrived: Date.now(), peers: [],
});

const segments = (dataDir: string) => readdirSync(join(dataDir, "spool")).filter((n) => n.endsWith(".spool")).sort();

test("storage: an article of 4 KB or more is written to the spool, its row keeps the header; every read gives it back whole, after a restart too", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  try {
    let st = await Storage.open({ dataDir: dir, ...OPTS, spoolSegmentBytes: 65_536 });
    await st.groups.ensure([{ name: "local.test" }]);
    const small = Buffer.from("small\r\n");
    const bodies = [small, awkwardBody(10_240, 1), awkwardBody(4_100, 2), awkwardBody(30_000, 3), awkwardBody(30_000, 4)];
    const stored = await Promise.all(bodies.map((b, i) => st.writer.store(article(`<s${i}@spool.test>`, b))));
    const want = new Map<string, Buffer>();
    for (const [i, r] of stored.entries()) {
      assert.equal(r.kind, "stored");
      if (r.kind === "stored") want.set(`<s${i}@spool.test>`, r.data);
    }

    const rows = await st.readDb.all<{ msgid: string; data: Buffer; header_len: number; bytes: number; spool_seg: number | null; spool_at: number | null }>(
      "SELECT msgid, data, header_len, bytes, spool_seg, spool_at FROM articles ORDER BY id",
    );
    assert.equal(rows[0].spool_seg, null, "a small article stays in its row");
    assert.ok(rows[0].data.equals(want.get("<s0@spool.test>")!));
    for (const r of rows.slice(1)) {
      assert.notEqual(r.spool_seg, null, `${r.msgid} is spooled`);
      assert.equal(r.data.length, r.header_len + 2, `${r.msgid}: the row holds the header section and the empty line`);
      const file = readFileSync(join(dir, "spool", `${String(r.spool_seg).padStart(8, "0")}.spool`));
      assert.ok(file.subarray(r.spool_at!, r.spool_at! + r.bytes).equals(want.get(r.msgid)!), `${r.msgid} lies whole in its segment`);
    }
    assert.ok(segments(dir).length >= 2, `65,536-byte segments: the 30 KB articles fill more than one (${segments(dir)})`);

    const check = async (s: Storage) => {
      for (const [i, [msgid, bytes]] of [...want].entries()) {
        assert.ok((await s.articles.byMsgid(msgid))?.data.equals(bytes), `${msgid} by Message-ID`);
        assert.ok((await s.articles.byId(i + 1))?.data.equals(bytes), `${msgid} by id`);
        assert.ok((await s.articles.fullAtNumber(s.groups.get("local.test")!.id, i + 1))?.data.equals(bytes), `${msgid} by number`);
      }
    };
    await check(st);
    const before = segments(dir);
    await st.close();

    st = await Storage.open({ dataDir: dir, ...OPTS, spoolSegmentBytes: 65_536 });
    await check(st);
    const later = await st.writer.store(article("<later@spool.test>", awkwardBody(5_000, 5)));
    assert.equal(later.kind, "stored");
    const after = segments(dir);
    assert.equal(after.length, before.length + 1, "a new run writes a new segment, never after what an earlier run left");
    assert.ok(after.slice(0, -1).every((n, i) => n === before[i]) && after.at(-1)! > before.at(-1)!);
    if (later.kind === "stored") assert.ok((await st.articles.byMsgid("<later@spool.test>"))?.data.equals(later.data));
    await st.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("spool: a segment is deleted only when no row uses it and no batch in flight has a place in it", async () => {
  const dir = tempDir();
  try {
    const spool = Spool.open(dir, 65_536);
    const writer = new SpoolWriter(spool.dir, "full");
    const a = spool.place(40_000);
    await writer.write([{ ...a, bytes: Buffer.alloc(40_000, 1) }]);
    const b = spool.place(40_000); // does not fit: the next segment
    assert.equal(b.seg, a.seg + 1);
    await writer.write([{ ...b, bytes: Buffer.alloc(40_000, 2) }]);
    assert.equal(await spool.sweep(async () => false), 0, "the first segment's batch has not settled: kept");
    spool.settle(a.seg);
    assert.equal(await spool.sweep(async (seg) => seg === a.seg), 0, "a row uses it: kept");
    assert.equal(await spool.sweep(async () => false), 40_000, "settled and unused: deleted, its bytes given back");
    assert.equal(await spool.read(a.seg, a.at, 10), undefined, "a read of a deleted segment finds nothing");
    assert.ok((await spool.read(b.seg, b.at, 40_000))?.equals(Buffer.alloc(40_000, 2)), "the current segment stays and reads whole");
    spool.settle(b.seg);
    assert.equal(await spool.sweep(async () => false), 0, "the current segment is never deleted");
    writer.close();
    spool.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** ARTICLE, HEAD and BODY of a message as raw blocks (still dot-stuffed), and one header by XHDR and by XPAT. */
async function readAll(port: number, msgid: string, number: number) {
  const { client: c } = await RawClient.connect(port);
  try {
    const block = async (cmd: string, code: RegExp) => {
      assert.match(await c.cmd(cmd), code, cmd);
      return (await c.rawBlock()).toString("latin1");
    };
    assert.match(await c.cmd("GROUP local.test"), /^211 /);
    return {
      article: await block(`ARTICLE ${msgid}`, /^220 /),
      byNumber: await block(`ARTICLE ${number}`, /^220 /),
      head: await block(`HEAD ${msgid}`, /^221 /),
      body: await block(`BODY ${number}`, /^222 /),
      xhdr: await block(`XHDR Organization ${number}`, /^221 /),
      xpat: await block(`XPAT Organization ${number} *spooled*`, /^221 /),
    };
  } finally {
    c.close();
  }
}

test("node: a spooled article reads back byte for byte by ARTICLE, HEAD, BODY, XHDR and XPAT, after a restart and after a SIGKILL", { timeout: 60_000 }, async () => {
  const node = await startNode();
  let again: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    const body = awkwardBody(20_000, 9).toString("latin1");
    const a = makeArticle({ body, extra: "Organization: spooled here\r\n" });
    const { client } = await RawClient.connect(node.port);
    assert.match(await client.cmd(`IHAVE ${a.msgid}`), /^335 /);
    client.send(stuff(a.text));
    assert.match(await client.line(), /^235 /);
    client.close();
    assert.equal(segments(node.dataDir).length, 1, "the article went to the spool");

    const first = await readAll(node.port, a.msgid, 1);
    const wireBody = stuff(body).toString("latin1").slice(0, -3); // the body as sent, dot-stuffed, terminator off
    assert.ok(first.article.endsWith("\r\n\r\n" + wireBody), "ARTICLE ends with the body as sent");
    assert.equal(first.body, wireBody, "BODY is the body as sent");
    assert.equal(first.byNumber, first.article);
    assert.ok(first.article.startsWith(first.head + "\r\n"), "HEAD is the article's header section");
    assert.match(first.head, /^Organization: spooled here$/m);
    assert.equal(first.xhdr, "1 spooled here\r\n");
    assert.equal(first.xpat, "1 spooled here\r\n");

    await node.stop({ keepData: true });
    again = await startNode({ dataDir: node.dataDir });
    assert.deepEqual(await readAll(again.port, a.msgid, 1), first, "the same after a restart");
    await again.kill();
    again = await startNode({ dataDir: node.dataDir });
    assert.deepEqual(await readAll(again.port, a.msgid, 1), first, "the same after a SIGKILL");
  } finally {
    await again?.stop();
    await node.stop();
  }
});

test("a peer that was down gets spooled articles whole from the sender's backlog", { timeout: 90_000 }, async () => {
  const mesh = await Mesh.start(2, chain(2));
  try {
    await mesh.nodes[1].node.stop({ keepData: true });
    const sent = new Map<string, string>();
    const { client } = await RawClient.connect(mesh.nodes[0].port);
    for (let i = 0; i < 12; i++) {
      const body = awkwardBody(6_000 + i * 1_000, i).toString("latin1");
      const a = makeArticle({ body, path: "elsewhere.example!not-for-mail" });
      assert.match(await client.cmd(`IHAVE ${a.msgid}`), /^335 /);
      client.send(stuff(a.text));
      assert.match(await client.line(), /^235 /);
      sent.set(a.msgid, stuff(body).toString("latin1").slice(0, -3));
    }
    client.close();
    await mesh.restart(1);
    const { client: reader } = await RawClient.connect(mesh.nodes[1].port);
    try {
      for (const [msgid, body] of sent) {
        await until(async () => (await reader.cmd(`STAT ${msgid}`)).startsWith("223"), 30_000, `${msgid} at the peer`);
        assert.match(await reader.cmd(`BODY ${msgid}`), /^222 /);
        assert.equal((await reader.rawBlock()).toString("latin1"), body, `${msgid} arrived whole`);
      }
    } finally {
      reader.close();
    }
  } finally {
    await mesh.stop();
  }
});

test("expiry deletes a spool file once none of its articles is left; the data folder levels off", { timeout: 120_000 }, async () => {
  const N = 40;
  const config = `[storage]\nspool_segment_bytes = 131072\n[expire]\nschedule = "off"\nmax_articles = ${N}\n`;
  const node = await startNode({ config });
  try {
    const size = () => segments(node.dataDir).reduce((n, f) => n + statSync(join(node.dataDir, "spool", f)).size, 0);
    const sizes: number[] = [];
    let last: string[] = [];
    for (let round = 1; round <= 5; round++) {
      last = [];
      const { client } = await RawClient.connect(node.port);
      for (let i = 0; i < N; i++) {
        const a = makeArticle({ body: awkwardBody(8_000, round * 100 + i).toString("latin1") });
        assert.match(await client.cmd(`IHAVE ${a.msgid}`), /^335 /);
        client.send(stuff(a.text));
        assert.match(await client.line(), /^235 /);
        last.push(a.msgid);
      }
      client.close();
      const r = tidings("expire", "--data", node.dataDir);
      assert.equal(r.code, 0, r.out + r.err);
      sizes.push(size());
    }
    // 40 articles of ~8.3 KB a round, files of 128 KB: each round's files go with the round before's articles
    for (const s of sizes.slice(1)) assert.ok(s <= sizes[0] * 1.6, `the spool grew: ${sizes.join(", ")} bytes`);
    assert.ok(sizes.at(-1)! < 5 * N * 8_000 * 0.5, `files of expired articles were deleted: ${sizes.join(", ")} bytes`);
    const { client } = await RawClient.connect(node.port);
    for (const msgid of last) assert.match(await client.cmd(`STAT ${msgid}`), /^223 /, `${msgid}, of the last round, is kept`);
    client.close();
    // the operator sees the spool in tidings status, as the files are
    const files = segments(node.dataDir).length;
    await until(async () => new RegExp(`; spool \\S+ \\S+ in ${files} files?$`, "m").test(tidings("status", "--data", node.dataDir).out), 10_000, "the spool in tidings status");
  } finally {
    await node.stop();
  }
});
