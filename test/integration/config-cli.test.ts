// One truth about configuration (issue 9): `tidings check-config` runs the
// checks `tidings serve` runs, every error is `file:line: key ...: what was
// expected`, and no subcommand answers a bad file with a stack trace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, tempDir, tryServe } from "../helpers/node.js";

const dir = tempDir();
test.after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function file(text: string): string {
  const f = join(dir, `t${files++}.toml`);
  writeFileSync(f, text);
  return f;
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 20_000 });
}

/** `tidings serve` on a file, until it is ready (then stopped) or exits: what an operator sees. */
async function serve(config: string, ownListen = false): Promise<{ ready: boolean; code: number | null; stderr: string }> {
  const data = join(dir, `data${files++}`);
  const listen = ownListen ? [] : ["--nntp", "127.0.0.1:0"];
  return tryServe(["--config", config, "--data", data, ...listen, "--smtp", "off", "--http", "off", "--log-level", "warn"]);
}

const noStack = (s: string) => assert.doesNotMatch(s, /^\s+at /m, `a stack trace:\n${s}`);

/** check-config refuses the file with exactly `expected` (file:line: key ...), and serve refuses it with the same line. */
async function bothRefuse(text: string, expected: RegExp, ownListen = false): Promise<void> {
  const f = file(text);
  const check = cli("check-config", f);
  assert.equal(check.status, 2, `check-config passed a file serve must refuse: ${check.stdout}`);
  const line = check.stderr.trim();
  assert.ok(line.startsWith(`${f}:`), line);
  assert.match(line, expected);
  noStack(check.stderr);
  const s = await serve(f, ownListen);
  assert.equal(s.ready, false, "serve started on a file check-config refused");
  assert.equal(s.code, 2, s.stderr);
  assert.ok(s.stderr.includes(line), `serve says otherwise:\n${s.stderr}`);
  noStack(s.stderr);
}

test("an impossible CIDR prefix (127.0.0.1/99) is refused by check-config and by serve alike, naming the key", async () => {
  await bothRefuse('[nntp]\nposting_from = ["127.0.0.0/8", "127.0.0.1/99"]\n', /:2: key nntp\.posting_from\.1: expected a prefix length from 0 to 32/);
  await bothRefuse('[[peer]]\nname = "up"\nhost = "127.0.0.1"\naccept_from = ["::1/129"]\n', /:4: key peer\.0\.accept_from\.0: expected a prefix length from 0 to 128/);
  await bothRefuse('[smtp]\nrelay_from = ["10.0.0.300"]\n', /:2: key smtp\.relay_from\.0: expected an IPv4 or IPv6 address/);
});

test("duplicate peers, duplicate groups and a path identity on two peers are refused, naming the second", async () => {
  await bothRefuse('[[peer]]\nname = "up"\nhost = "127.0.0.1"\n\n[[peer]]\nname = "up"\nhost = "127.0.0.2"\n', /:6: key peer\.1\.name: expected a name no other \[\[peer\]\] has: up is already the name of \[\[peer\]\] number 1/);
  await bothRefuse('[[group]]\nname = "local.a"\n\n[[group]]\nname = "local.b"\n\n[[group]]\nname = "local.a"\n', /:8: key group\.2\.name: expected a group listed once: local\.a is already \[\[group\]\] number 1/);
  await bothRefuse('[[peer]]\nname = "a"\npath_identities = ["hub.example"]\n\n[[peer]]\nname = "b"\npath_identities = ["HUB.example"]\n', /:7: key peer\.1\.path_identities\.0: expected a path identity no other peer has/);
});

test("HOST:PORT values that cannot be listened on or dialled are refused before serve meets them", async () => {
  await bothRefuse('[nntp]\nlisten = "999.0.0.1:119"\n', /:2: key nntp\.listen: expected HOST:PORT/, true);
  await bothRefuse('[nntp]\nlisten = "[127.0.0.1]:119"\n', /:2: key nntp\.listen: expected HOST:PORT/, true);
  await bothRefuse('[mail]\ndns_servers = ["1.2.3.4:0"]\n', /:2: key mail\.dns_servers\.0: expected a port/);
});

test("a file check-config passes, serve starts on", async () => {
  const f = file('[nntp]\nlisten = "127.0.0.1:0"\nposting_from = ["127.0.0.0/8", "::1", "10.0.0.0/8", "fd00::/8", "::ffff:192.0.2.0/120"]\n\n[[peer]]\nname = "a"\nhost = "localhost"\naccept_from = ["127.0.0.2/32"]\n\n[[group]]\nname = "local.a"\n');
  assert.equal(cli("check-config", f).status, 0);
  const s = await serve(f);
  assert.equal(s.ready, true, s.stderr);
});

test("status, mailq, reload and peer check on a broken file: the file:line: key line and status 2, never a stack trace", () => {
  const broken = file("[nntp]\nlisten = 127.0.0.1:1119\n");
  for (const args of [["status", "--config", broken], ["mailq", "--config", broken], ["check-config", broken], ["peer", "check", "x", "--config", broken], ["reload", "--config", broken]]) {
    const r = cli(...args);
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    noStack(r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^${broken.replace(/[.]/g, "\\.")}:2: key nntp\\.listen: expected TOML syntax: `), `${args.join(" ")}: ${r.stderr}`);
  }
  const missing = join(dir, "missing.toml");
  for (const args of [["status", "--config", missing], ["check-config", missing]]) {
    const r = cli(...args);
    assert.equal(r.status, 2);
    noStack(r.stderr);
    assert.equal(r.stderr.trim(), `${missing}: cannot read configuration: no such file`);
  }
  const bad = file('[nntp]\nposting_from = ["127.0.0.1/99"]\n');
  const r = cli("status", "--config", bad);
  assert.equal(r.status, 2);
  noStack(r.stderr);
  assert.match(r.stderr.trim(), new RegExp(`^${bad.replace(/[.]/g, "\\.")}:2: key nntp\\.posting_from\\.0: expected `));
});
