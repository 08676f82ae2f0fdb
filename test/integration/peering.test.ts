// Flooding between real nodes: every node gets every article exactly once,
// Path records the route, nothing is offered to a node already in Path, and
// outages and kills lose nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Mesh, chain, ring, fullMesh, post, waitForEverywhere, groupContents, status, freePort } from "../helpers/mesh.js";
import { Receiver } from "../../bench/receiver.js";
import { RawClient, stuff } from "../helpers/client.js";
import { startNode } from "../helpers/node.js";

async function floodAndCheck(mesh: Mesh, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let k = 0; k < n; k++) ids.push(await post(mesh.nodes[Math.floor(Math.random() * mesh.nodes.length)].port));
  const missing = await waitForEverywhere(mesh, ids, 30_000);
  if (missing.size) {
    for (const m of mesh.nodes) { console.log(m.name, JSON.stringify((await status(m)).peers)); (await import("node:fs")).writeFileSync(`/tmp/mesh-${m.name}.log`, m.node.stderr); }
  }
  assert.equal(missing.size, 0, `missing after 30 s: ${JSON.stringify([...missing])}`);
  for (const m of mesh.nodes) {
    const contents = await groupContents(m.port);
    const mine = contents.filter((c) => ids.includes(c.msgid));
    assert.equal(mine.length, ids.length, `${m.name} files ${mine.length} of ${ids.length}`);
    assert.equal(new Set(mine.map((c) => c.msgid)).size, mine.length, `${m.name} stores an article twice`);
    for (const c of mine) {
      const hops = c.path.split("!").filter((p) => /^n\d+\.test$/.test(p));
      assert.equal(hops[0], `${m.name}.test`, `Path on ${m.name} starts with its own identity: ${c.path}`);
      assert.equal(new Set(hops).size, hops.length, `a node appears twice in ${c.path}`);
    }
  }
  // give status.json a moment, then: no node ever saw an article naming itself in Path
  await new Promise((r) => setTimeout(r, 500));
  for (const m of mesh.nodes) assert.equal((await status(m)).articles.loops, 0, `${m.name} was offered an article already in its Path`);
  return ids;
}

test("a chain of 5: every article reaches every node once, Path records the route", { timeout: 90_000 }, async () => {
  const mesh = await Mesh.start(5, chain(5));
  try {
    await floodAndCheck(mesh, 20);
    // an article posted at one end crossed every hop in order
    const id = await post(mesh.nodes[0].port);
    assert.equal((await waitForEverywhere(mesh, [id], 10_000)).size, 0);
    const last = (await groupContents(mesh.nodes[4].port)).find((c) => c.msgid === id)!;
    assert.match(last.path, /^n4\.test!n3\.test!n2\.test!n1\.test!n0\.test!/);
  } finally {
    await mesh.stop();
  }
});

test("a ring of 5: the cycle ends the flood by itself", { timeout: 90_000 }, async () => {
  const mesh = await Mesh.start(5, ring(5));
  try {
    await floodAndCheck(mesh, 20);
  } finally {
    await mesh.stop();
  }
});

test("a full mesh of 6: each node stores each article once", { timeout: 90_000 }, async () => {
  const mesh = await Mesh.start(6, fullMesh(6));
  try {
    await floodAndCheck(mesh, 30);
    // every backlog drains by itself (438s and deferred retries included)
    const deadline = Date.now() + 15_000;
    for (const m of mesh.nodes) {
      for (;;) {
        const left = (await status(m)).peers.filter((p) => p.backlog.count > 0).map((p) => `${m.name}→${p.name}: ${p.backlog.count}`);
        if (left.length === 0) break;
        assert.ok(Date.now() < deadline, `backlog not drained: ${left.join(", ")}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await mesh.stop();
  }
});

test("a peer down while articles are posted gets every one exactly once when it returns", { timeout: 90_000 }, async () => {
  const mesh = await Mesh.start(3, chain(3));
  try {
    await mesh.nodes[1].node.stop({ keepData: true });
    const ids: string[] = [];
    for (let k = 0; k < 30; k++) ids.push(await post(mesh.nodes[k % 2 === 0 ? 0 : 2].port));
    await new Promise((r) => setTimeout(r, 500));
    const s0 = await status(mesh.nodes[0]);
    assert.ok(s0.peers[0].backlog.count > 0, "the sender keeps a backlog while the peer is down");
    await mesh.restart(1);
    const missing = await waitForEverywhere(mesh, ids, 30_000);
    assert.equal(missing.size, 0, `missing: ${JSON.stringify([...missing])}`);
    for (const m of mesh.nodes) {
      const mine = (await groupContents(m.port)).filter((c) => ids.includes(c.msgid));
      assert.equal(mine.length, ids.length);
    }
  } finally {
    await mesh.stop();
  }
});

test("a sender killed with SIGKILL mid-drain resumes after restart; nothing is lost or stored twice", { timeout: 120_000 }, async () => {
  const mesh = await Mesh.start(2, chain(2));
  try {
    // build a backlog on n0 while n1 is down, then kill n0 while it drains
    await mesh.nodes[1].node.stop({ keepData: true });
    const { client } = await RawClient.connect(mesh.nodes[0].port);
    const ids: string[] = [];
    for (let k = 0; k < 1500; k++) {
      const msgid = `<drain.${k}.${Date.now().toString(36)}@test.example>`;
      ids.push(msgid);
      client.send(`TAKETHIS ${msgid}\r\n`);
      client.send(stuff(`Path: elsewhere.test!not-for-mail\r\nFrom: a <a@b.c>\r\nNewsgroups: local.test\r\nSubject: drain ${k}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: ${msgid}\r\n\r\nbody ${k}\r\n`));
    }
    for (let k = 0; k < ids.length; k++) assert.match(await client.line(), /^239/);
    client.close();
    await mesh.restart(1);
    // wait until n1 has some but not all, then kill the sender
    const deadline = Date.now() + 20_000;
    for (;;) {
      const have = (await groupContents(mesh.nodes[1].port)).length;
      if (have > 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await mesh.nodes[0].node.kill();
    await mesh.restart(0);
    const missing = await waitForEverywhere(mesh, ids, 60_000);
    assert.equal(missing.size, 0, `missing: ${[...missing].map(([k, v]) => `${k}: ${v.length}`)}`);
    const got = (await groupContents(mesh.nodes[1].port)).map((c) => c.msgid);
    assert.equal(got.length, ids.length, "each article stored once on the receiver");
    assert.equal(new Set(got).size, got.length);
  } finally {
    await mesh.stop();
  }
});

test("two peers offering the same 1,000 articles at once: each stored once and transferred once", { timeout: 120_000 }, async () => {
  // n0 and n1 both feed n2; both get the same articles from outside at the same moment
  const mesh = await Mesh.start(3, [[0, 2], [1, 2]]);
  try {
    const articles = Array.from({ length: 1000 }, (_, k) => {
      const msgid = `<dual.${k}.${Date.now().toString(36)}@test.example>`;
      return { msgid, wire: stuff(`Path: origin.test!not-for-mail\r\nFrom: a <a@b.c>\r\nNewsgroups: local.test\r\nSubject: dual ${k}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: ${msgid}\r\n\r\nbody ${k}\r\n`) };
    });
    await Promise.all(
      [0, 1].map(async (i) => {
        const { client } = await RawClient.connect(mesh.nodes[i].port);
        client.send("MODE STREAM\r\n");
        await client.line();
        for (const a of articles) client.send(Buffer.concat([Buffer.from(`TAKETHIS ${a.msgid}\r\n`), a.wire]));
        for (const _ of articles) assert.match(await client.line(), /^239/);
        client.close();
      }),
    );
    const ids = articles.map((a) => a.msgid);
    assert.equal((await waitForEverywhere(mesh, ids, 60_000)).size, 0);
    const got = (await groupContents(mesh.nodes[2].port)).map((c) => c.msgid);
    assert.equal(got.length, 1000);
    let s0, s1;
    const deadline = Date.now() + 20_000;
    do {
      await new Promise((r) => setTimeout(r, 200));
      s0 = (await status(mesh.nodes[0])).peers[0];
      s1 = (await status(mesh.nodes[1])).peers[0];
    } while (s0.backlog.count + s1.backlog.count > 0 && Date.now() < deadline);
    // every article was offered by both, but sent (TAKETHIS, 239) by only one
    assert.equal(s0.accepted + s1.accepted, 1000, `transfers: ${s0.accepted} + ${s1.accepted}`);
    assert.equal(s0.backlog.count + s1.backlog.count, 0);
  } finally {
    await mesh.stop();
  }
});

test("a client that is not a configured peer is refused with the reason", async () => {
  const node = await startNode({ config: `[nntp]\ntransit_from = []\n[[peer]]\nname = "far"\naccept_from = ["192.0.2.7"]\n` });
  try {
    const { client } = await RawClient.connect(node.port);
    assert.equal(await client.cmd("MODE STREAM"), "502 Transit not permitted from 127.0.0.1: not a configured peer");
    assert.match(await client.cmd("IHAVE <x@y.z>"), /^502 Transit not permitted from 127\.0\.0\.1/);
    client.close();
  } finally {
    await node.stop();
  }
});

test("backlog rows older than max_backlog_age are dropped and counted, not sent", { timeout: 60_000 }, async () => {
  const port = await freePort(); // nothing listens there yet: the peer is away
  const node = await startNode({
    config: `[feeds]\nreconnect_min = 0.05\nreconnect_max = 0.2\nstatus_interval = 0.1\n[[peer]]\nname = "away"\nhost = "127.0.0.1"\nport = ${port}\ngroups = "*"\nmax_backlog_age = 1\n`,
  });
  let rx: Receiver | undefined;
  try {
    const old = [await post(node.port), await post(node.port), await post(node.port)];
    await new Promise((r) => setTimeout(r, 1500)); // older than a second now
    const peer = () => JSON.parse(readFileSync(`${node.dataDir}/status.json`, "utf8")).peers[0];
    // while the peer is away, status shows what waits for it
    const waiting = peer();
    assert.equal(waiting.backlog.count, 3);
    assert.ok(waiting.backlog.bytes > 3 * 100, JSON.stringify(waiting.backlog));
    assert.ok(Date.now() - waiting.backlog.oldest >= 1500, JSON.stringify(waiting.backlog));
    rx = await Receiver.start(port);
    const deadline = Date.now() + 10_000;
    while ((peer().dropped < 3 || peer().backlog.count > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(peer().dropped, 3, JSON.stringify(peer()));
    assert.equal(peer().backlog.count, 0);
    const fresh = await post(node.port);
    await rx.waitFor(fresh, 10_000);
    for (const id of old) assert.ok(!rx.arrivals.has(id), `${id} was too old to send`);
  } finally {
    await node.stop();
    await rx?.close();
  }
});

test("IHAVE feeds: to a peer without streaming, and to one configured with streaming = false", { timeout: 60_000 }, async () => {
  const plain = await Receiver.start(0, { streaming: false }); // answers 500 to MODE STREAM
  const told = await Receiver.start(); // could stream, but the configuration says no
  const node = await startNode({
    config:
      `[feeds]\nstatus_interval = 0.1\n` +
      `[[peer]]\nname = "plain"\nhost = "127.0.0.1"\nport = ${plain.port}\ngroups = "*"\n` +
      `[[peer]]\nname = "told"\nhost = "127.0.0.1"\nport = ${told.port}\ngroups = "*"\nstreaming = false\n`,
  });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await post(node.port));
    for (const rx of [plain, told]) {
      for (const id of ids) await rx.waitFor(id, 10_000);
      assert.deepEqual(new Set(rx.via.values()), new Set(["ihave"]), "every article came by IHAVE");
    }
    const deadline = Date.now() + 5_000;
    let peers: { name: string; mode: string; accepted: number; backlog: { count: number } }[] = [];
    do {
      await new Promise((r) => setTimeout(r, 100));
      peers = JSON.parse(readFileSync(`${node.dataDir}/status.json`, "utf8")).peers;
    } while (peers.some((p) => p.accepted < 20 || p.backlog.count > 0) && Date.now() < deadline);
    for (const p of peers) {
      assert.equal(p.mode, "ihave", `${p.name} is fed by IHAVE`);
      assert.equal(p.accepted, 20);
      assert.equal(p.backlog.count, 0);
    }
  } finally {
    await node.stop();
    await plain.close();
    await told.close();
  }
});

test("a peer that takes offers and then says nothing is timed out and reconnected", { timeout: 60_000 }, async () => {
  const rx = await Receiver.start(0, { silentFirst: 1 });
  const node = await startNode({
    config: `[feeds]\nreply_timeout = 0.5\nreconnect_min = 0.05\nreconnect_max = 0.2\nstatus_interval = 0.1\n[[peer]]\nname = "hung"\nhost = "127.0.0.1"\nport = ${rx.port}\ngroups = "*"\n`,
  });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await post(node.port));
    for (const id of ids) await rx.waitFor(id, 15_000);
    assert.ok(rx.connections >= 2, "the feed connected again");
    await new Promise((r) => setTimeout(r, 300));
    const peer = JSON.parse(readFileSync(`${node.dataDir}/status.json`, "utf8")).peers[0];
    assert.match(peer.lastError, /did not answer for 0\.5 s/);
    assert.equal(peer.accepted, 5);
  } finally {
    await node.stop();
    await rx.close();
  }
});

test("a peer that sends a reply line without end is cut off, not buffered", async () => {
  const { createServer } = await import("node:net");
  const { NntpClient: NntpConnection } = await import("../../protocol/nntp/client.js");
  const server = createServer((s) => {
    s.on("error", () => {});
    s.write("200 hello\r\n");
    s.write("x".repeat(200_000)); // and never CRLF
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const c = await NntpConnection.connect("127.0.0.1", (server.address() as { port: number }).port);
    assert.equal(await c.line(), "200 hello");
    await assert.rejects(c.line(5_000), /reply line over 65536 octets/);
  } finally {
    server.close();
  }
});
