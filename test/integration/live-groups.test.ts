// Groups and peers handled on a running node through its control socket
// (tidings group add/rm/set/list, tidings peer list/kick/rm), as an operator
// would: changes apply at once and hold across a restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, type TestNode } from "../helpers/node.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";

function tidings(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function withClient<T>(node: TestNode, f: (c: RawClient) => Promise<T>): Promise<T> {
  const { client } = await RawClient.connect(node.port);
  try {
    return await f(client);
  } finally {
    client.close();
  }
}

async function listed(node: TestNode): Promise<Map<string, string>> {
  return withClient(node, async (c) => {
    assert.match(await c.cmd("LIST ACTIVE"), /^215/);
    return new Map((await c.lines()).map((l) => [l.split(" ")[0], l.split(" ")[3]]));
  });
}

async function post(node: TestNode, group: string): Promise<string> {
  return withClient(node, async (c) => {
    assert.match(await c.cmd("POST"), /^340/);
    c.send(stuff(makeArticle({ groups: group }).text));
    return c.line();
  });
}

test("group add, rm and set act on a running node at once, and a restart keeps them", async () => {
  let node = await startNode({ pathhost: "live.test" });
  const dir = node.dataDir;
  try {
    assert.equal(statSync(join(dir, "control.sock")).mode & 0o777, 0o600, "the control socket is the owner's only");

    const add = tidings("group", "add", "misc.live", "--description", "added on a running node", "--data", dir);
    assert.equal(add.code, 0, add.err);
    assert.match(add.out, /group misc\.live added/);
    assert.equal((await listed(node)).get("misc.live"), "y");
    assert.match(await post(node, "misc.live"), /^240/, "posting to the new group works at once");

    const again = tidings("group", "add", "misc.live", "--data", dir);
    assert.equal(again.code, 2);
    assert.match(again.err, /carried already/);
    assert.match(tidings("group", "add", "Not A Group!", "--data", dir).err, /not a newsgroup name/);

    assert.equal(tidings("group", "rm", "misc.live", "--data", dir).code, 0);
    assert.equal((await listed(node)).has("misc.live"), false, "a removed group is not listed");
    assert.match(await post(node, "misc.live"), /^441/, "nor posted to");
    assert.match(await withClient(node, (c) => c.cmd("GROUP misc.live")), /^411/);

    // a default group (from the configuration's defaults) removed live stays removed
    assert.equal(tidings("group", "rm", "local.test", "--data", dir).code, 0);
    const set = tidings("group", "add", "misc.mod", "--status", "m", "--moderator", "mod@example.org", "--data", dir);
    assert.equal(set.code, 0, set.err);
    const changed = tidings("group", "set", "misc.mod", "--description", "moderated, set live", "--data", dir);
    assert.equal(changed.code, 0, changed.err);
    assert.match(changed.out, /misc\.mod changed: m \(moderated\), "moderated, set live", moderator mod@example\.org/);
    const list = tidings("group", "list", "--data", dir);
    assert.match(list.out, /misc\.mod +m +0 articles +live +moderated, set live +\(moderator mod@example\.org\)/);

    await node.stop({ keepData: true });
    node = await startNode({ dataDir: dir, pathhost: "live.test" });
    const after = await listed(node);
    assert.equal(after.has("misc.live"), false, "the removal held across the restart");
    assert.equal(after.has("local.test"), false, "a default group removed live is not brought back by the defaults");
    assert.equal(after.get("misc.mod"), "m", "the added group held, with its status");
    const desc = await withClient(node, async (c) => {
      assert.match(await c.cmd("LIST NEWSGROUPS misc.mod"), /^215/);
      return c.lines();
    });
    assert.deepEqual(desc, ["misc.mod\tmoderated, set live"]);

    // a removed group that comes back keeps its numbers: none is given twice
    assert.equal(tidings("group", "add", "misc.live", "--data", dir).code, 0);
    assert.match(await withClient(node, (c) => c.cmd("GROUP misc.live")), /^211 \d+ \d+ 1 misc\.live/);
    assert.match(await post(node, "misc.live"), /^240/);
    assert.match(await withClient(node, (c) => c.cmd("GROUP misc.live")), /^211 2 1 2 misc\.live/, "the second article is number 2, not 1 again");
  } finally {
    await node.stop();
  }
});

test("a group taken out of the configuration is gone after a restart", async () => {
  const two = `[[group]]\nname = "local.one"\n\n[[group]]\nname = "local.two"\n`;
  let node = await startNode({ pathhost: "cfg.test", config: two });
  const dir = node.dataDir;
  try {
    assert.deepEqual([...(await listed(node)).keys()], ["local.one", "local.two"]);
    await node.stop({ keepData: true });
    node = await startNode({ dataDir: dir, pathhost: "cfg.test", config: `[[group]]\nname = "local.one"\n` });
    assert.deepEqual([...(await listed(node)).keys()], ["local.one"]);
    assert.match(await post(node, "local.two"), /^441/);
  } finally {
    await node.stop();
  }
});

test("peer kick drains a backlog at once after the peer returns; peer rm drops it after asking; peer list and status show it", async () => {
  // the receiver's port is fixed by a first run, so that it can come back on it
  let receiver = await startNode({ pathhost: "receiver.test" });
  const port = receiver.port;
  const receiverDir = receiver.dataDir;
  await receiver.stop({ keepData: true });
  // a backoff of at least 30 s: without the kick nothing would move for that long
  const config = `[feeds]\nstatus_interval = 0.2\nreconnect_min = 60\nreconnect_max = 120\n\n[[group]]\nname = "misc.flood"\n\n[[peer]]\nname = "receiver"\nhost = "127.0.0.1"\nport = ${port}\npath_identities = ["receiver.test"]\ngroups = "misc.*"\n`;
  const sender = await startNode({ pathhost: "sender.test", config });
  const file = join(sender.dataDir, "tidings.toml");
  try {
    const ids: string[] = [];
    await withClient(sender, async (c) => {
      for (let i = 0; i < 5; i++) {
        const a = makeArticle({ groups: "misc.flood" });
        assert.match(await c.cmd("POST"), /^340/);
        c.send(stuff(a.text));
        assert.match(await c.line(), /^240/);
        ids.push(a.msgid);
      }
    });
    const listing = tidings("peer", "list", "--config", file, "--data", sender.dataDir);
    assert.equal(listing.code, 0, listing.err);
    assert.match(listing.out, /receiver +127\.0\.0\.1:\d+ +not connected +backlog 5 articles/);

    receiver = await startNode({ dataDir: receiverDir, pathhost: "receiver.test", args: ["--nntp", `127.0.0.1:${port}`], config: `[[group]]\nname = "misc.flood"\n` });
    const kicked = Date.now();
    const kick = tidings("peer", "kick", "receiver", "--config", file, "--data", sender.dataDir);
    assert.equal(kick.code, 0, kick.err);
    const last = ids[ids.length - 1];
    let got = false;
    while (!got && Date.now() - kicked < 20_000) {
      got = await withClient(receiver, async (c) => (await c.cmd(`STAT ${last}`)).startsWith("223"));
      if (!got) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(got, "the backlog drained after the kick, long before the 30-90 s backoff");
    console.log(`# backlog of 5 drained ${Date.now() - kicked} ms after tidings peer kick`);
    assert.match(tidings("peer", "kick", "nobody", "--config", file, "--data", sender.dataDir).err, /no peer named nobody/);

    // a backlog left for a peer that is then removed
    await receiver.stop({ keepData: true });
    await withClient(sender, async (c) => {
      assert.match(await c.cmd("POST"), /^340/);
      c.send(stuff(makeArticle({ groups: "misc.flood" }).text));
      assert.match(await c.line(), /^240/);
    });
    const kept = tidings("peer", "rm", "receiver", "--config", file, "--data", sender.dataDir, "--keep-backlog");
    assert.equal(kept.code, 0, kept.err);
    assert.match(kept.out, /removed from .*tidings\.toml/);
    assert.match(kept.out, /backlog of 1 articles kept/);
    assert.match(tidings("status", "--data", sender.dataDir).out, /peer receiver \(no longer configured\)[^\n]*\n  backlog 1 articles/);
    assert.match(tidings("peer", "list", "--config", file, "--data", sender.dataDir).out, /receiver +\(no longer configured\) +not connected +backlog 1 articles/);
    const dropped = tidings("peer", "rm", "receiver", "--config", file, "--data", sender.dataDir, "--yes");
    assert.equal(dropped.code, 0, dropped.err);
    assert.match(dropped.out, /backlog of receiver dropped: 1 articles/);
    assert.doesNotMatch(tidings("peer", "list", "--config", file, "--data", sender.dataDir).out, /receiver/);
    assert.equal(tidings("check-config", file).code, 0, "the file stays valid");
  } finally {
    await sender.stop();
    await receiver.stop();
  }
});

test("group commands say plainly when no node runs", () => {
  const r = tidings("group", "list", "--data", "/tmp/tidings-no-such-node");
  assert.equal(r.code, 2);
  assert.match(r.err, /no node is running on the data folder \/tmp\/tidings-no-such-node/);
});
