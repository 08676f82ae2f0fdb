// Limits that protect clients from one another (issue 9): a client trickling
// bytes is cut off, a few addresses cannot fill the connection cap, and
// command and posting rates answer with the protocol's codes. Each refusal is
// logged once per cause and address with a count. Every test here failed on
// the code before the limits: the trickler was served for ever (the idle timer
// restarts at each byte), one address filled the cap and a newcomer got 400,
// nothing was slowed or refused, and each refused connection wrote a line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NntpClient } from "../../protocol/nntp/client.js";
import { startNode, type TestNode } from "../helpers/node.js";
import { stuff } from "../helpers/client.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client from a chosen loopback address: the node tells clients apart by address. */
async function connect(node: TestNode, from: string): Promise<{ c: NntpClient; greeting: string }> {
  const { client, greeting } = await NntpClient.open("127.0.0.1", node.port, { localAddress: from, maxLine: Infinity, timeoutMs: 20_000 });
  return { c: client, greeting };
}

/** Log lines (JSON) of the node that match every given field. */
function logLines(node: TestNode, fields: Record<string, unknown>): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of node.stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line);
    } catch {
      continue;
    }
    if (Object.entries(fields).every(([k, v]) => o[k] === v)) out.push(o);
  }
  return out;
}

const post = (subject: string, body = "body\r\n") =>
  `From: Limits <l@example.org>\r\nNewsgroups: local.test\r\nSubject: ${subject}\r\n\r\n${body}`;

test("a client trickling a command line or an article is cut off at the deadline; others are served meanwhile", { timeout: 120_000 }, async () => {
  const node = await startNode({ config: "[nntp]\ncommand_timeout = 3\nidle_timeout = 600\n" });
  try {
    const { c: other } = await connect(node, "127.0.0.2");

    // a command line, one byte a second: the idle timer never fires, the line deadline does
    const { c: slow } = await connect(node, "127.0.0.3");
    const closed = slow.closedByPeer(60_000);
    const line = Buffer.from(`XHDR Subject ${"x".repeat(100)}\r\n`);
    const started = Date.now();
    let served = 0;
    for (let i = 0; i < line.length && !slow.closed; i++) {
      slow.write(line.subarray(i, i + 1));
      // the node goes on serving someone else meanwhile
      assert.match(await other.command("DATE"), /^111 /);
      served++;
      await sleep(1000);
    }
    const rest = (await closed).toString();
    const took = (Date.now() - started) / 1000;
    assert.match(rest, /^400 Command line not finished within 3 seconds/);
    assert.ok(took >= 2.5 && took < 40, `cut off after ${took} s`);
    assert.ok(served >= 1, `others served meanwhile: ${served}`);

    // an article, one byte a second after the 340
    const { c: slowPost } = await connect(node, "127.0.0.4");
    assert.match(await slowPost.command("POST"), /^340 /);
    const closedPost = slowPost.closedByPeer(60_000);
    const art = stuff(post("trickled", "a body that takes a long time to arrive\r\n".repeat(4)));
    for (let i = 0; i < art.length && !slowPost.closed; i++) {
      slowPost.write(art.subarray(i, i + 1));
      await sleep(1000);
    }
    assert.match((await closedPost).toString(), /^400 Article not finished in time/);

    // an honest client sending a larger article in pieces over longer than command_timeout is not cut off
    const { c: steady } = await connect(node, "127.0.0.5");
    assert.match(await steady.command("POST"), /^340 /);
    const big = stuff(post("steady", `${"y".repeat(998)}\r\n`.repeat(100)));
    const pieces = 10;
    for (let i = 0; i < pieces; i++) {
      steady.write(big.subarray(Math.floor((i * big.length) / pieces), Math.floor(((i + 1) * big.length) / pieces)));
      await sleep(450);
    }
    assert.match(await steady.line(), /^240 /);
    assert.match(await other.command("DATE"), /^111 /);
    steady.close();
    other.close();

    // one warn line per cause and address
    assert.equal(logLines(node, { cause: "command line timeout", key: "127.0.0.3" }).length, 1);
    assert.equal(logLines(node, { cause: "article timeout", key: "127.0.0.4" }).length, 1);
  } finally {
    await node.stop();
  }
});

test("idle connections from a few addresses cannot lock others out: a new address is served, an idle one is dropped", { timeout: 120_000 }, async () => {
  const cap = 8;
  const node = await startNode({
    config: `[nntp]\nmax_connections = ${cap}\nmax_connections_per_client = ${cap}\nreserved_connections = 2\nevict_idle_after = 1\n`,
  });
  try {
    // six addresses each take all they can: the share shrinks as the node fills
    const held: { c: NntpClient; from: string }[] = [];
    const refused = new Map<string, string>();
    for (let a = 2; a <= 7; a++) {
      const from = `127.0.0.${a}`;
      for (let i = 0; i < cap; i++) {
        const { c, greeting } = await connect(node, from);
        if (greeting.startsWith("400")) {
          refused.set(from, greeting);
          c.destroy();
          break;
        }
        assert.match(greeting, /^20[01] /);
        held.push({ c, from });
      }
    }
    assert.equal(held.length, cap, "the node is full");

    // all but the first connection have spoken lately; the first has been silent since it came
    await sleep(1500);
    const [oldest, ...rest] = held;
    const dropped = oldest.c.closedByPeer(30_000);
    for (const h of rest) assert.match(await h.c.command("DATE"), /^111 /);

    // a newcomer is served, in the place of the one silent longest
    const { c: newcomer, greeting } = await connect(node, "127.0.0.9");
    assert.match(greeting, /^20[01] /);
    assert.match(await newcomer.command("DATE"), /^111 /);
    assert.match((await dropped).toString(), /^400 Connection dropped after \d+ s idle to make room for another client/);
    for (const h of rest) assert.match(await h.c.command("DATE"), /^111 /, `${h.from} still served`);

    // it took six addresses to fill the node: each got a share that shrank as the node filled
    const per = new Map<string, number>();
    for (const h of held) per.set(h.from, (per.get(h.from) ?? 0) + 1);
    for (const [from, n] of per) assert.ok(n <= cap / 4, `${from} holds ${n} of ${cap}`);
    assert.match(refused.get("127.0.0.2") ?? "", /^400 .*too many connections from 127\.0\.0\.2 while the node is busy/);

    // an address already holding connections does not get more while the node is full
    const { c: again, greeting: g2 } = await connect(node, "127.0.0.3");
    assert.match(g2, /^400 /);
    again.destroy();

    // a flood of refused connections is one log line per cause and address, with a count when it ends
    for (let i = 0; i < 40; i++) {
      const { c, greeting } = await connect(node, "127.0.0.2");
      assert.match(greeting, /^400 /);
      c.destroy();
    }
    // what the limits did shows in /metrics (and in tidings status, from the same figures)
    const metrics = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
    assert.match(metrics, /^tidings_nntp_limited_total\{action="evicted"\} 1$/m);
    assert.ok(Number(/^tidings_nntp_limited_total\{action="refused"\} (\d+)$/m.exec(metrics)?.[1]) >= 40, metrics.split("\n").filter((l) => l.includes("limited")).join("\n"));
    for (const h of rest) h.c.destroy();
    newcomer.destroy();
    await node.stop({ keepData: true });
    // (two lines: the first refusal, and its count at the end; a pause over 10 s on a slow day may split it in two episodes)
    const lines = logLines(node, { key: "127.0.0.2", cause: "refused: share" });
    assert.ok(lines.length >= 2 && lines.length <= 4, JSON.stringify(lines));
    const counted = lines.map((l) => Number(l.count ?? 0));
    assert.ok(Math.max(...counted) >= 40, JSON.stringify(lines));
    assert.equal(logLines(node, { cause: "evicted idle" }).length, 1);
  } finally {
    await node.stop();
  }
});

test("commands a second and posts an hour: slowed, then 400 for a flood; 441 over the hourly posts; transit is not counted", { timeout: 120_000 }, async () => {
  const config = (posts: number) => `[nntp]\nmax_commands_per_second = 5\nmax_posts_per_hour = ${posts}\ntransit_from = ["127.0.0.1/32"]\n`;
  const node = await startNode({ config: config(2) });
  try {
    // posts: two an hour for this address, then 441 with the reason
    const { c: poster } = await connect(node, "127.0.0.3");
    for (const n of [1, 2]) {
      assert.match(await poster.command("POST"), /^340 /);
      poster.write(stuff(post(`quota ${n}`)));
      assert.match(await poster.line(), /^240 /);
    }
    assert.match(await poster.command("POST"), /^340 /);
    poster.write(stuff(post("quota 3")));
    assert.match(await poster.line(), /^441 Posting limit reached \(2 an hour for 127\.0\.0\.3\); try again in \d+ minutes?/);
    // the limit changes at run time (SIGHUP): a third post an hour is now allowed
    writeFileSync(join(node.dataDir, "tidings.toml"), config(3));
    node.proc.kill("SIGHUP");
    let reply = "";
    for (const end = Date.now() + 20_000; Date.now() < end; await sleep(250)) {
      assert.match(await poster.command("POST"), /^340 /);
      poster.write(stuff(post("after reload")));
      reply = await poster.line();
      if (!reply.startsWith("441")) break;
    }
    assert.match(reply, /^240 /);
    // another address has its own quota
    const { c: poster2 } = await connect(node, "127.0.0.6");
    assert.match(await poster2.command("POST"), /^340 /);
    poster2.write(stuff(post("other address")));
    assert.match(await poster2.line(), /^240 /);

    // a burst of ten seconds' worth (50) and 30 more in one write: all answered; then the session is slowed
    const { c: reader } = await connect(node, "127.0.0.4");
    reader.write("DATE\r\n".repeat(80));
    for (let i = 0; i < 80; i++) assert.match(await reader.line(), /^111 /);
    const t0 = performance.now();
    assert.match(await reader.command("DATE"), /^111 /);
    const waited = performance.now() - t0;
    assert.ok(waited >= 2000, `the next command waited ${Math.round(waited)} ms (30 over at 5 a second: 6 s)`);

    // far more than a burst at once: 400 and closed
    const { c: flooder } = await connect(node, "127.0.0.5");
    const gone = flooder.closedByPeer(60_000);
    flooder.write("DATE\r\n".repeat(400));
    assert.match((await gone).toString(), /400 Too many commands \(more than 5 a second\); closing\r\n$/);

    // a transit session (a streaming peer's CHECKs) is not counted
    const { c: peer } = await connect(node, "127.0.0.1");
    assert.match(await peer.command("MODE STREAM"), /^203 /);
    peer.write(Array.from({ length: 400 }, (_, i) => `CHECK <limits-${i}@example.org>\r\n`).join(""));
    for (let i = 0; i < 400; i++) assert.match(await peer.line(), /^238 /);
    assert.match(await peer.command("DATE"), /^111 /);
    peer.close();

    assert.equal(logLines(node, { cause: "command flood", key: "127.0.0.5" }).length, 1);
    poster.close();
    poster2.close();
    reader.close();
  } finally {
    await node.stop();
  }
});
