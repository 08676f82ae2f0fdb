// Forwarding by the article: a node passes on groups it does not carry, keeps
// such articles only while a peer still needs them, and remembers their ids.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Mesh } from "../helpers/mesh.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";

test("a transit-only node passes on a group it does not carry, then forgets the bytes but not the id", { timeout: 60_000 }, async () => {
  // n1 carries far.away; n0 does not, but its peer n1 wants everything
  const groups = `[[group]]\nname = "local.test"\n[[group]]\nname = "far.away"\n`;
  const mesh = await Mesh.start(2, [[0, 1]], `[storage]\npurge_transit = "* * * * * *"\n`);
  try {
    // restart n1 with the extra group (Mesh gives both nodes the same extra text)
    await mesh.nodes[1].node.stop({ keepData: true });
    const { startNode } = await import("../helpers/node.js");
    mesh.nodes[1].node = await startNode({
      dataDir: mesh.nodes[1].dir,
      config: Mesh.config(1, mesh.ports, mesh.edges, groups),
      args: ["--nntp", `127.0.0.1:${mesh.ports[1]}`],
    });
    const a = makeArticle({ groups: "far.away" });
    const c0 = (await RawClient.connect(mesh.nodes[0].port)).client;
    assert.match(await c0.cmd(`IHAVE ${a.msgid}`), /^335/);
    c0.send(stuff(a.text));
    assert.match(await c0.line(), /^235/, "n0 takes it for its peer although it carries no far.away");
    assert.match(await c0.cmd("GROUP far.away"), /^411/);

    const c1 = (await RawClient.connect(mesh.nodes[1].port)).client;
    const deadline = Date.now() + 20_000;
    while (!(await c1.cmd(`STAT ${a.msgid}`)).startsWith("223")) {
      assert.ok(Date.now() < deadline, "n1 never got the article");
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(await c1.cmd("GROUP far.away"), /^211 1 /);
    // once n1 has it, n0 drops the bytes (purge runs every second here) but keeps the id
    while ((await c0.cmd(`STAT ${a.msgid}`)).startsWith("223")) {
      assert.ok(Date.now() < deadline, "n0 kept the transit-only article");
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(await c0.cmd(`IHAVE ${a.msgid}`), /^435/, "history still knows the id");
    c0.close();
    c1.close();
  } finally {
    await mesh.stop();
  }
});
