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

test("mail keys: defaults, and rules across keys name the key at fault with its line", () => {
  const c = loadConfig(undefined);
  assert.equal(c.smtp.listen, "127.0.0.1:2525");
  assert.deepEqual(c.smtp.relay_from, ["127.0.0.0/8", "::1"]);
  assert.deepEqual(c.route, []);
  withFile('[[route]]\ndomain = "example.org"\nnext_hop = "127.0.0.1:25"\n\n[[route]]\ndomain = "EXAMPLE.org"\nnext_hop = "mx"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e instanceof ConfigError && e.message.includes(`${file}:6: key route.1.domain: a second route for EXAMPLE.org`));
  });
  withFile('[[group]]\nname = "a.b"\nsubscribers = ["x@nowhere.example"]\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e instanceof ConfigError && e.message.includes(`${file}:3: key group.0.subscribers.0: no [[route]] takes mail for nowhere.example`));
  });
  withFile('[[route]]\ndomain = "*.example.org"\nnext_hop = "mx"\n\n[[group]]\nname = "a.b"\nsubscribers = ["x@lists.example.org"]\n', (file) => {
    assert.equal(loadConfig(file).group[0].subscribers[0], "x@lists.example.org");
  });
  withFile('[smtp]\nlisten = "127.0.0.1:99999"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message.includes(`${file}:2: key smtp.listen`));
  });
  withFile('[smtp]\ntls_cert = "/etc/cert.pem"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message.includes("key smtp.tls_key: STARTTLS needs both"));
  });
});
