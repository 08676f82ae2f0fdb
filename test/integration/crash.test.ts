// Nothing acknowledged is lost: SIGKILL the node while feeders stream, restart
// it on the same data, and check every article that got 239 or 235.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startNode, tempDir } from "../helpers/node.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";
import { feed, makeArticle as benchArticle } from "../../bench/feeder.js";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

async function bodyOf(c: RawClient, msgid: string): Promise<string | undefined> {
  const st = await c.cmd(`BODY ${msgid}`);
  if (!st.startsWith("222")) return undefined;
  return (await c.rawBlock()).toString("latin1");
}

// 700-byte articles are kept in their rows; 10 KB ones go to the spool (storage/spool.ts), synced before the COMMIT
for (const [bodyBytes, rounds] of [[700, 3], [10_240, 2]] as const) {
test(`SIGKILL during a streaming feed of ${bodyBytes}-byte articles loses no acknowledged article and stores none twice`, { timeout: 120_000 }, async () => {
  const dir = tempDir();
  try {
    for (let round = 0; round < rounds; round++) {
      const node = await startNode({ dataDir: dir });
      const tag = `crash${round}x${Date.now().toString(36)}`;
      let acks = 0;
      const killAt = 1500 + round * 700;
      const killed = new Promise<void>((resolve) => {
        const feeding = feed({
          host: "127.0.0.1", port: node.port, count: 200_000, bodyBytes, connections: 3, window: 300,
          group: "local.test", tag, tolerateClose: true,
          onAck: () => {
            if (++acks === killAt) void node.kill().then(resolve);
          },
        });
        void feeding.then((r) => acked.push(...r.acked));
      });
      const acked: string[] = [];
      await killed;
      await new Promise((r) => setTimeout(r, 300)); // let the feeders see the close
      assert.ok(acked.length >= killAt, `feeders saw ${acked.length} acks`);

      const again = await startNode({ dataDir: dir });
      const { client } = await RawClient.connect(again.port);
      for (const msgid of acked) {
        const i = Number(/\.(\d+)@/.exec(msgid)![1]);
        const want = benchArticle(tag, i, bodyBytes, "local.test").wire.toString("latin1");
        const body = await bodyOf(client, msgid);
        assert.ok(body !== undefined, `acknowledged ${msgid} missing after SIGKILL`);
        assert.ok(want.endsWith(body + ".\r\n"), `body of ${msgid} damaged`);
      }
      // each Message-ID once in the group
      const g = await client.cmd("GROUP local.test");
      assert.match(g, /^211 /);
      const [, count, low, high] = g.split(" ").map(Number);
      const o = await client.cmd(`XHDR Message-ID ${low}-${high}`);
      assert.match(o, /^221/);
      const ids = (await client.lines()).map((l) => l.split(" ")[1]);
      assert.equal(ids.length, count);
      assert.equal(new Set(ids).size, ids.length, "an article is filed twice");
      client.close();
      await again.stop({ keepData: true });
    }
    const spooled = readdirSync(join(dir, "spool")).filter((f) => f.endsWith(".spool")).length;
    if (bodyBytes > 4096) assert.ok(spooled >= rounds, `each run wrote a spool file of its own (${spooled})`);
    else assert.equal(spooled, 0, "small articles stay in their rows");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
}

test("SIGKILL between IHAVE acknowledgements keeps every 235", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  try {
    const node = await startNode({ dataDir: dir });
    const { client } = await RawClient.connect(node.port);
    const acked: { msgid: string; body: string }[] = [];
    for (let i = 0; i < 200; i++) {
      const body = `line ${i}\r\n.dot line\r\n\xe9t\xe9 8-bit\r\n`;
      const a = makeArticle({ body });
      assert.match(await client.cmd(`IHAVE ${a.msgid}`), /^335/);
      client.send(stuff(a.text));
      assert.match(await client.line(), /^235/);
      acked.push({ msgid: a.msgid, body });
    }
    await node.kill();
    client.close();
    const again = await startNode({ dataDir: dir });
    const c2 = (await RawClient.connect(again.port)).client;
    for (const a of acked) {
      const body = await bodyOf(c2, a.msgid);
      assert.equal(body?.replace(/^\.\./gm, "."), a.body);
    }
    c2.close();
    await again.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
