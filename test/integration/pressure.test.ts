// Under pressure, defer: when the writer's queue is full a valid article gets
// 431 (streaming) or 436 (IHAVE), never 439/437, and the sender can retry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startNode } from "../helpers/node.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";

/** Sends the article again, as a peer would after 431, until the node takes it; asks CHECK first if told to. */
async function offerUntilTaken(client: RawClient, a: { msgid: string; text: string }, check: boolean): Promise<void> {
  for (;;) {
    if (check) assert.match(await client.cmd(`CHECK ${a.msgid}`), /^(238|431)/);
    client.send(Buffer.concat([Buffer.from(`TAKETHIS ${a.msgid}\r\n`), stuff(a.text)]));
    const r = await client.line();
    if (r.startsWith("239")) return;
    assert.match(r, /^431/);
    await new Promise((res) => setTimeout(res, 5));
  }
}

/** How many articles the group holds. */
async function groupCount(client: RawClient): Promise<number> {
  return Number((await client.cmd("GROUP local.test")).split(" ")[1]);
}

test("a full storage queue defers valid articles instead of refusing them", { timeout: 60_000 }, async () => {
  const node = await startNode({ config: "[storage]\nmax_queue = 2\nmax_batch = 2\n" });
  try {
    const { client } = await RawClient.connect(node.port);
    assert.match(await client.cmd("MODE STREAM"), /^203/);
    const arts = Array.from({ length: 400 }, () => makeArticle());
    client.send(Buffer.concat(arts.flatMap((a) => [Buffer.from(`TAKETHIS ${a.msgid}\r\n`), stuff(a.text)])));
    const codes = new Map<string, string>();
    for (const a of arts) codes.set(a.msgid, (await client.line()).slice(0, 3));
    const counts = [...codes.values()].reduce<Record<string, number>>((m, c) => ((m[c] = (m[c] ?? 0) + 1), m), {});
    assert.ok(counts["431"] > 0, `expected some 431 under pressure, got ${JSON.stringify(counts)}`);
    assert.equal(counts["439"] ?? 0, 0, "a valid article was refused for good");
    // deferred ones are taken when offered again; accepted ones are there
    for (const a of arts) if (codes.get(a.msgid) === "431") await offerUntilTaken(client, a, true);
    assert.equal(await groupCount(client), arts.length);
    client.close();
  } finally {
    await node.stop();
  }
});

test("the storage queue is bounded in bytes too: large articles are deferred, then taken", { timeout: 60_000 }, async () => {
  // room for about three 40 KB articles; one article always fits an empty queue
  const node = await startNode({ config: "[storage]\nmax_queue_bytes = 100000\n" });
  try {
    const { client } = await RawClient.connect(node.port);
    assert.match(await client.cmd("MODE STREAM"), /^203/);
    const big = "x".repeat(78) + "\r\n";
    const arts = Array.from({ length: 60 }, () => makeArticle({ body: big.repeat(500) }));
    client.send(Buffer.concat(arts.flatMap((a) => [Buffer.from(`TAKETHIS ${a.msgid}\r\n`), stuff(a.text)])));
    const deferred: typeof arts = [];
    for (const a of arts) {
      const r = await client.line();
      assert.match(r, /^(239|431)/, "valid articles are taken or deferred, never refused");
      if (r.startsWith("431")) {
        assert.match(r, /storage queue full \(bytes\)/);
        deferred.push(a);
      }
    }
    assert.ok(deferred.length > 0, "a burst of 2.4 MB into a 100 KB queue defers some");
    for (const a of deferred) await offerUntilTaken(client, a, false);
    assert.equal(await groupCount(client), arts.length);
    client.close();
  } finally {
    await node.stop();
  }
});
