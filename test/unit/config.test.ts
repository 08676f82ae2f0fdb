import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { loadConfig, ConfigError } from "../../config/load.js";
import { CLI, tempDir } from "../helpers/node.js";

function withFile(text: string, fn: (file: string) => void): void {
  const dir = tempDir();
  const file = join(dir, "tidings.toml");
  writeFileSync(file, text);
  try {
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("no file: loopback, ./data, a few groups, limits on", () => {
  const c = loadConfig(undefined);
  assert.equal(c.nntp.listen, "127.0.0.1:1119");
  assert.equal(c.node.data_dir, "./data");
  assert.deepEqual(c.group.map((g) => g.name), ["local.general", "local.test", "tidings.announce", "control", "junk"]);
  assert.equal(c.nntp.max_line, 512);
  assert.deepEqual(c.peer, []);
});

test("a bad value names the file, the line and the key", () => {
  withFile('[node]\npathhost = "ok.example"\n\n[nntp]\nmax_connections = 5\nlisten = "nope"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e instanceof ConfigError && e.message.includes(`${file}:6:`) && e.message.includes("nntp.listen") && e.message.includes("HOST:PORT"));
  });
  withFile('[[peer]]\nname = "a"\n\n[[peer]]\nname = "b"\nport = "x"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message.includes(`${file}:6:`) && e.message.includes("peer.1.port"));
  });
});

test("a schedule that is not a cron expression names the file, the line and the key", () => {
  withFile("[storage]\npurge_transit = \"every half minute\"\n", (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e instanceof ConfigError && e.message.includes(`${file}:2:`) && e.message.includes("storage.purge_transit") && e.message.includes("cron"));
  });
});

test("a malformed wildmat in a peer's groups names the file, the line and the key", () => {
  withFile('[[peer]]\nname = "a"\ngroups = "*,!local.[z-a]"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e instanceof ConfigError && e.message.includes(`${file}:3:`) && e.message.includes("peer.0.groups") && e.message.includes("z-a"));
  });
});

test("an unknown key is reported with its line; a TOML syntax error with line and column", () => {
  withFile("[nntp]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n", (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message.includes(`${file}:3:`) && e.message.includes('unknown key "listne"'));
  });
  withFile("[nntp\nlisten = 1\n", (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => new RegExp(`${file.replace(/[.]/g, "\\.")}:1:\\d+:`).test(e.message));
  });
});

test("tidings serve refuses to start on a bad file and says why", () => {
  withFile("[nntp]\nidle_timeout = -5\n", (file) => {
    const r = spawnSync(process.execPath, [CLI, "serve", "--config", file], { encoding: "utf8", timeout: 20_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /configuration error/);
    assert.ok(r.stderr.includes(`${file}:2: key nntp.idle_timeout`), r.stderr);
  });
});
