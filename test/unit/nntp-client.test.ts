// The NNTP client (protocol/nntp/client.ts) on a real loopback socket: what it
// reads is fed to it chunk by chunk (emitted on its socket, so the cuts are
// exact), what it writes is read by the server.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import fc from "fast-check";
import { NntpClient, type ClientOptions } from "../../protocol/nntp/client.js";

/** RFC 3977 §3.1.1 as a reader undoes it: a "." is added to each CRLF line that starts with one; "." CRLF ends the block. */
function stuffLines(data: string): string {
  return data.replace(/(^|\r\n)\./g, "$1..") + ".\r\n";
}

const received: Buffer[][] = [];
const sockets: net.Socket[] = [];
const server = net.createServer((s) => {
  const got: Buffer[] = [];
  received.push(got);
  sockets.push(s);
  s.on("data", (d) => got.push(d));
  s.on("error", () => {});
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const port = (server.address() as net.AddressInfo).port;
after(() => {
  for (const s of sockets) s.destroy();
  server.close();
});

async function client(opts: ClientOptions = {}): Promise<{ c: NntpClient; feed: (...chunks: (string | Buffer)[]) => void; sent: () => string }> {
  const n = received.length;
  const c = await NntpClient.connect("127.0.0.1", port, opts);
  while (received.length === n) await new Promise((r) => setImmediate(r));
  const got = received[n];
  return {
    c,
    feed: (...chunks) => {
      for (const ch of chunks) c.socket.emit("data", Buffer.isBuffer(ch) ? ch : Buffer.from(ch, "latin1"));
    },
    sent: () => Buffer.concat(got).toString("latin1"),
  };
}

/** `s` cut at `at` (and at `at2`, when given). */
function cut(s: string, at: number, at2 = at): string[] {
  return [s.slice(0, at), s.slice(at, at2), s.slice(at2)].filter((x) => x !== "");
}

test("status lines and blocks come back byte for byte wherever the bytes are cut", async () => {
  const block = "1\tsubject\r\n..leading dot\r\n.\t\r\n\xe9t\xe9 8-bit\r\n\r\nlast\r\n";
  const wire = "200 hello\r\n224 overview\r\n" + block + ".\r\n215 empty\r\n.\r\n223 1 <a@b>\r\n";
  const { c } = await client();
  c.destroy();
  for (let at = 0; at <= wire.length; at++) {
    const { c, feed } = await client();
    const replies = (async () => {
      const out: unknown[] = [await c.line(), await c.line(), (await c.block()).toString("latin1"), await c.line(), await c.blockLines(), await c.line()];
      return out;
    })();
    feed(...cut(wire, at, Math.min(wire.length, at + 3)));
    assert.deepEqual(await replies, [
      "200 hello",
      "224 overview",
      "1\tsubject\r\n.leading dot\r\n\t\r\n\xe9t\xe9 8-bit\r\n\r\nlast\r\n",
      "215 empty",
      [],
      "223 1 <a@b>",
    ], `cut at ${at}`);
    c.destroy();
  }
});

test("rawBlock keeps the stuffing; a block of one empty line; reads asked before and after the bytes come", async () => {
  const { c, feed } = await client();
  feed("220 a\r\n..x\r\n.\r\n", "220 b\r\n\r\n.\r\n");
  assert.equal(await c.line(), "220 a");
  assert.equal((await c.rawBlock()).toString("latin1"), "..x\r\n");
  const l = c.line();
  const b = c.block();
  assert.equal(await l, "220 b");
  assert.equal((await b).toString("latin1"), "\r\n");
  const later = c.line();
  feed("205 bye\r\n");
  assert.equal(await later, "205 bye");
  c.destroy();
});

test("property: any block, stuffed, sent in any pieces, comes back exactly by block() and by onReplies()", async () => {
  const { c: probe } = await client();
  probe.destroy();
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.string({ unit: fc.constantFrom("a", ".", "\r", "\n", "\r\n", "\xff", " ") , maxLength: 12 }), { maxLength: 8 }),
      fc.array(fc.nat(200), { maxLength: 5 }),
      async (lines, cuts) => {
        // a block is CRLF lines that hold no CRLF of their own
        const body = lines.map((l) => l.replace(/\r\n/g, "\r") + "\r\n").join("");
        const data = Buffer.from(body, "latin1");
        const wire = "224 x\r\n" + stuffLines(body) + "223 y\r\n";
        const points = [...new Set(cuts.map((n) => n % (wire.length + 1)))].sort((a, b) => a - b);
        const pieces: string[] = [];
        let from = 0;
        for (const p of points) (pieces.push(wire.slice(from, p)), (from = p));
        pieces.push(wire.slice(from));
        // pulled
        const a = await client();
        const got = (async () => [await a.c.line(), await a.c.block(), await a.c.line()])();
        a.feed(...pieces.filter((p) => p !== ""));
        const [s1, blk, s2] = await got;
        assert.equal(s1, "224 x");
        assert.equal((blk as Buffer).toString("latin1"), data.toString("latin1"));
        assert.equal(s2, "223 y");
        a.c.destroy();
        // event mode
        const e = await client();
        const seen: [string, string | undefined, number | undefined][] = [];
        e.c.onReplies((st) => st.startsWith("224"), (st, block) => seen.push([st, block?.bytes().toString("latin1"), block?.lines()]));
        e.feed(...pieces.filter((p) => p !== ""));
        assert.deepEqual(seen, [["224 x", data.toString("latin1"), (body.match(/\r\n/g) ?? []).length], ["223 y", undefined, undefined]]);
        e.c.destroy();
      },
    ),
    { numRuns: 60 },
  );
});

test("onLine hands each line over as it comes; takeBuffered gives what came before", async () => {
  const { c, feed } = await client();
  feed("200 hi\r\n203 stream\r\n238 <a@b>\r");
  assert.equal(await c.line(), "200 hi");
  const seen: string[] = [];
  c.onLine = (l) => seen.push(l);
  for (const l of c.takeBuffered()) c.onLine(l);
  feed("\n431 <c@d>\r\n");
  assert.deepEqual(seen, ["203 stream", "238 <a@b>", "431 <c@d>"]);
  c.destroy();
});

test("pipelining: commands written together, replies read in order; writes in one tick go out as one", async () => {
  const { c, feed, sent } = await client();
  const replies = c.commands(["STAT <1@x>", "STAT <2@x>", "STAT <3@x>"]);
  c.write("CHECK <4@x>\r\n");
  c.write(["TAKETHIS <5@x>\r\n", Buffer.from("a\r\n")]);
  c.writeBlock(Buffer.from(".dot\r\nplain\r\n"));
  feed("223 1 <1@x>\r\n423 no\r\n223 3 <3@x>\r\n");
  assert.deepEqual(await replies, ["223 1 <1@x>", "423 no", "223 3 <3@x>"]);
  const want = "STAT <1@x>\r\nSTAT <2@x>\r\nSTAT <3@x>\r\nCHECK <4@x>\r\nTAKETHIS <5@x>\r\na\r\n..dot\r\nplain\r\n.\r\n";
  for (let i = 0; i < 100 && sent().length < want.length; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sent(), want);
  c.destroy();
});

test("a reply line over the bound cuts the connection; long blocks of short lines are fine", async () => {
  {
    const { c, feed } = await client({ maxLine: 100 });
    feed("224 big\r\n" + "x".repeat(50) + "\r\n", ("y".repeat(60) + "\r\n").repeat(1000), ".\r\n");
    assert.equal(await c.line(), "224 big");
    assert.equal((await c.blockLines()).length, 1001);
    feed("200 " + "z".repeat(97)); // 101 octets and no CRLF
    await assert.rejects(c.line(), /reply line over 100 octets/);
    assert.equal(c.closed, true);
  }
  {
    const { c, feed } = await client({ maxLine: 100 });
    c.onReplies(() => true, () => {});
    feed("224 x\r\n" + "w".repeat(150));
    await assert.rejects(c.line(), /reply line over 100 octets/);
    c.destroy();
  }
});

test("a read times out after its time without a byte; one that keeps getting bytes does not", async () => {
  const { c, feed } = await client();
  await assert.rejects(c.line(100), /no answer from the server within 100 ms/);
  const slow = c.line(400); // 1 s in all, never 400 ms without a byte
  for (const ch of "200 ok, slowly") {
    feed(ch);
    await new Promise((r) => setTimeout(r, 75));
  }
  feed("\r\n");
  assert.equal(await slow, "200 ok, slowly");
  c.destroy();
});

test("closedByPeer gives what was not read; reads after the end fail with why", async () => {
  const { c, feed } = await client();
  feed("400 going\r\nrest");
  assert.equal(await c.line(), "400 going");
  const closed = c.closedByPeer();
  c.socket.destroy();
  assert.equal((await closed).toString("latin1"), "rest");
  await assert.rejects(c.line(), /connection closed/);
});
