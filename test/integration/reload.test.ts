// Reloading the configuration of a running node: SIGHUP and `tidings reload`
// add a group and a peer without a restart and without dropping a client; a
// broken file is refused and the running configuration stays.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, type TestNode } from "../helpers/node.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";

function tidings(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function post(c: RawClient, group: string): Promise<{ msgid: string; reply: string }> {
  const a = makeArticle({ groups: group });
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(a.text));
  return { msgid: a.msgid, reply: await c.line() };
}

async function arrives(node: TestNode, msgid: string, deadlineMs = 20_000): Promise<boolean> {
  const { client } = await RawClient.connect(node.port);
  try {
    const end = Date.now() + deadlineMs;
    while (Date.now() < end) {
      if ((await client.cmd(`STAT ${msgid}`)).startsWith("223")) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  } finally {
    client.close();
  }
}

async function groups(c: RawClient): Promise<string[]> {
  assert.match(await c.cmd("LIST ACTIVE"), /^215/);
  return (await c.lines()).map((l) => l.split(" ")[0]);
}

const BASE = `[feeds]\nstatus_interval = 0.2\nreconnect_min = 0.05\n\n[[group]]\nname = "local.test"\n`;

test("SIGHUP and tidings reload add a group and a peer without a restart; a broken file is refused", async () => {
  const receiver = await startNode({ pathhost: "receiver.test", config: `[[group]]\nname = "misc.reload"\n` });
  const node = await startNode({ pathhost: "sender.test", config: BASE });
  const file = join(node.dataDir, "tidings.toml");
  const { client } = await RawClient.connect(node.port);
  try {
    assert.deepEqual(await groups(client), ["local.test"]);

    // a group and a peer, added by SIGHUP
    writeFileSync(
      file,
      BASE + `\n[[group]]\nname = "misc.reload"\ndescription = "added live"\n\n[[peer]]\nname = "receiver"\nhost = "127.0.0.1"\nport = ${receiver.port}\npath_identities = ["receiver.test"]\ngroups = "misc.*"\n`,
    );
    process.kill(node.pid, "SIGHUP");
    const deadline = Date.now() + 15_000;
    let names: string[] = [];
    while (Date.now() < deadline && !(names = await groups(client)).includes("misc.reload")) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(names, ["local.test", "misc.reload"], "the group is listed on a connection opened before the reload");
    const first = await post(client, "misc.reload");
    assert.match(first.reply, /^240/);
    assert.ok(await arrives(receiver, first.msgid), "the new peer got the article posted after the reload");

    // `tidings reload`, with a broken file: refused, and the running configuration stays
    writeFileSync(file, readFileSync(file, "utf8") + `\n[nntp]\nmax_connections = "many"\n`);
    const refused = tidings("reload", "--data", node.dataDir);
    assert.equal(refused.code, 1, refused.out + refused.err);
    assert.match(refused.out, /reload refused/);
    assert.match(refused.out, /tidings\.toml:\d+: key nntp\.max_connections/);
    const second = await post(client, "misc.reload");
    assert.match(second.reply, /^240/, "the group added before is still there");
    assert.ok(await arrives(receiver, second.msgid), "and the peer still gets what is posted");

    // a restart-only key is named, and the rest applies
    writeFileSync(file, BASE + `\n[[group]]\nname = "misc.reload"\n\n[[group]]\nname = "misc.later"\n\n[storage]\nmax_batch = 100\n`);
    const partly = tidings("reload", "--data", node.dataDir);
    assert.equal(partly.code, 0, partly.out + partly.err);
    assert.match(partly.out, /only at the next restart: storage\.max_batch/);
    assert.match(partly.out, /changed now: .*group/);
    assert.ok((await groups(client)).includes("misc.later"));
    const status = tidings("status", "--data", node.dataDir);
    assert.match(status.out, /configuration reloaded .*waiting for a restart: storage\.max_batch/);

    // the client connected before the first reload was never dropped
    assert.equal(client.closed, false);
    assert.match(await client.cmd("DATE"), /^111/);
    assert.equal(node.proc.exitCode, null, "SIGHUP does not end the node");
  } finally {
    client.close();
    await node.stop();
    await receiver.stop();
  }
});
