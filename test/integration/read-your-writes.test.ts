// What a node acknowledged is there for the next command, whatever other
// readers are doing: POST gets 240, and STAT of the new article right after it
// gets 223, while two other sessions keep the reader connection busy with
// pipelined HEADs. (sqlite3's own get() once let a busy reader pin an older
// snapshot; storage/sqlite.ts explains.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { startNode } from "../helpers/node.js";
import { RawClient, stuff } from "../helpers/client.js";
import { feed } from "../../bench/feeder.js";

test("an article is readable by the next command after its 240, with other readers busy", { timeout: 120_000 }, async () => {
  const node = await startNode();
  let stop = false;
  const busy = async () => {
    const { client } = await RawClient.connect(node.port);
    await client.cmd("GROUP local.test");
    let n = 0;
    while (!stop) {
      for (let k = 0; k < 50; k++) client.send(`HEAD ${1 + (n++ % 5000)}\r\n`);
      for (let k = 0; k < 50; k++) {
        assert.match(await client.line(), /^221 /);
        await client.lines();
      }
    }
    client.close();
  };
  try {
    const f = await feed({ host: "127.0.0.1", port: node.port, count: 5000, bodyBytes: 512, connections: 1, window: 300, group: "local.test", tag: `ryw${Date.now().toString(36)}` });
    assert.equal(f.accepted, 5000);
    const readers = [busy(), busy()];
    const { client } = await RawClient.connect(node.port);
    const misses: string[] = [];
    for (let i = 0; i < 300; i++) {
      assert.match(await client.cmd("POST"), /^340/);
      client.send(stuff(`From: a <a@example.org>\r\nNewsgroups: local.test\r\nSubject: read your writes ${i}\r\n\r\nbody\r\n`));
      const r = await client.line();
      assert.match(r, /^240 /);
      const id = r.split(" ").pop()!;
      const s = await client.cmd(`STAT ${id}`);
      if (!s.startsWith("223")) misses.push(`${r} → ${s}`);
    }
    stop = true;
    await Promise.all(readers);
    client.close();
    assert.deepEqual(misses, []);
  } finally {
    stop = true;
    await node.stop();
  }
});
