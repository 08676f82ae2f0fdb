// `tidings peer add`, `tidings peer check`, `tidings status` and `tidings demo` as an operator runs them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, tempDir } from "../helpers/node.js";
import { freePorts } from "../helpers/mesh.js";

function tidings(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test("peer add writes a valid [[peer]] entry for both directions, once", () => {
  const dir = tempDir();
  try {
    const file = join(dir, "tidings.toml");
    const r = tidings("peer", "add", "beta", "127.0.0.1:1120", "--config", file, "--groups", "*,!local.*");
    assert.equal(r.code, 0, r.err);
    const text = readFileSync(file, "utf8");
    assert.match(text, /name = "beta"/);
    assert.match(text, /host = "127\.0\.0\.1"/);
    assert.match(text, /groups = "\*,!local\.\*"/);
    assert.match(text, /accept_from = \["127\.0\.0\.1"\]/);
    assert.equal(tidings("check-config", file).code, 0);
    const again = tidings("peer", "add", "beta", "127.0.0.1:1120", "--config", file);
    assert.equal(again.code, 2);
    assert.match(again.err, /already has a peer named beta/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("peer check says in plain words what works and what does not", async () => {
  const dir = tempDir();
  const open = await startNode();
  const closed = await startNode({ config: `[nntp]\ntransit_from = []\n` });
  try {
    const file = join(dir, "tidings.toml");
    assert.equal(tidings("peer", "add", "good", `127.0.0.1:${open.port}`, "--config", file).code, 0);
    assert.equal(tidings("peer", "add", "shut", `127.0.0.1:${closed.port}`, "--config", file).code, 0);
    const good = tidings("peer", "check", "good", "--config", file);
    assert.equal(good.code, 0, good.out + good.err);
    assert.match(good.out, /✓ streaming \(RFC 4644\) works/);
    assert.match(good.out, /✓ good would take a new article from us/);
    const shut = tidings("peer", "check", "shut", "--config", file);
    assert.equal(shut.code, 1);
    assert.match(shut.out, /✗ .*does not see us as a peer|✗ shut does not let us feed it: "502 Transit not permitted from 127\.0\.0\.1: not a configured peer"/);
    const none = tidings("peer", "check", "nobody", "--config", file);
    assert.equal(none.code, 2);
    assert.match(none.err, /no peer named nobody/);
  } finally {
    await open.stop();
    await closed.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("tidings status shows each peer's figures", async () => {
  const node = await startNode({ config: `[feeds]\nstatus_interval = 0.1\n[[peer]]\nname = "away"\nhost = "127.0.0.1"\nport = 9\naccept_from = ["192.0.2.1"]\n` });
  try {
    await new Promise((r) => setTimeout(r, 800));
    const r = tidings("status", "--data", node.dataDir);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /peer away 127\.0\.0\.1:9: not connected/);
    assert.match(r.out, /backlog 0 articles/);
    assert.match(r.out, /last error: connect ECONNREFUSED/);
  } finally {
    await node.stop();
  }
});

test("status says since when a peer is down, and an error from before the link came back is shown as past", { timeout: 60_000 }, async () => {
  const [port] = await freePorts(1);
  const node = await startNode({ config: `[feeds]\nstatus_interval = 0.1\nreconnect_min = 0.1\nreconnect_max = 0.5\n[[peer]]\nname = "later"\nhost = "127.0.0.1"\nport = ${port}\naccept_from = ["127.0.0.1"]\n` });
  let peer: Awaited<ReturnType<typeof startNode>> | undefined;
  const statusUntil = async (re: RegExp) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = tidings("status", "--data", node.dataDir);
      if (r.code === 0 && re.test(r.out)) return r.out;
      if (Date.now() > deadline) throw new Error(`status never matched ${re}:\n${r.out}${r.err}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  };
  try {
    const down = await statusUntil(/last error: connect ECONNREFUSED/);
    assert.match(down, /peer later 127\.0\.0\.1:\d+: not connected for \d+ (ms|s) \(since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)/);
    peer = await startNode({ args: ["--nntp", `127.0.0.1:${port}`] });
    const up = await statusUntil(/peer later 127\.0\.0\.1:\d+: connected \(streaming\)/);
    assert.match(up, /last error: none since connected \(before: connect ECONNREFUSED [^,]+, \d+ (ms|s) ago\)/);
  } finally {
    await peer?.stop();
    await node.stop();
  }
});

test("status shows a receive-only peer that feeds us as feeding us, not as down", { timeout: 60_000 }, async () => {
  // beta only receives from alpha (no host); alpha streams to beta. Loopback is not a transit
  // address here, so that the connection is known as alpha's (relay/node.ts permissions)
  const beta = await startNode({ pathhost: "beta.test", config: `[nntp]\ntransit_from = []\n[feeds]\nstatus_interval = 0.1\n[[peer]]\nname = "alpha"\npath_identities = ["alpha.test"]\naccept_from = ["127.0.0.1"]\n` });
  const alpha = await startNode({ pathhost: "alpha.test", config: `[[peer]]\nname = "beta"\nhost = "127.0.0.1"\nport = ${beta.port}\npath_identities = ["beta.test"]\n` });
  try {
    const deadline = Date.now() + 20_000;
    let out = "";
    while (!/feeds us on/.test(out)) {
      assert.ok(Date.now() < deadline, `status never showed alpha feeding us:\n${out}`);
      await new Promise((r) => setTimeout(r, 200));
      out = tidings("status", "--data", beta.dataDir).out;
    }
    assert.match(out, /peer alpha \(receive only\): we do not send to it; it feeds us on 1 connection, for \d+/);
  } finally {
    await alpha.stop();
    await beta.stop();
  }
});

test("tidings demo floods five nodes and stops by itself", () => {
  const r = tidings("demo");
  assert.equal(r.code, 0, r.err);
  for (let i = 0; i < 5; i++) assert.match(r.out, new RegExp(`node${i} has it after [0-9.]+ ms`));
  assert.match(r.out, /articles sent 4 /);
});
