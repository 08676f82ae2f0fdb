import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { loadConfig, ConfigError, keyAt } from "../../config/load.js";
import { dnsServerError, hostPortError, parseAddressEntry } from "../../config/net.js";
import { AddressList } from "../../relay/access.js";
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
  assert.deepEqual(c.group.map((g) => g.name), ["local.general", "local.test", "tidings.general", "tidings.announce", "control", "junk"]);
  assert.equal(c.node.pathhost, "", "unset: the node makes one at its first start");
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

test("an unknown key is reported with its line; a TOML syntax error with its line, key and column", () => {
  withFile("[nntp]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n", (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message.includes(`${file}:3:`) && e.message.includes('unknown key "listne"'));
  });
  withFile("[nntp\nlisten = 1\n", (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e instanceof ConfigError && e.message.startsWith(`${file}:1: key nntp: expected TOML syntax: `) && /\(column \d+\)$/.test(e.message));
  });
  withFile('[[peer]]\nname = "a"\n\n[[peer]]\nname = "b"\nport = 1x\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e instanceof ConfigError && e.message.startsWith(`${file}:6: key peer.1.port: expected TOML syntax: illegal character in numeric literal`));
  });
});

test("a file that cannot be read is one line: the file, then why", () => {
  const dir = tempDir();
  try {
    assert.throws(() => loadConfig(join(dir, "none.toml")), (e: Error) => e instanceof ConfigError && e.message === `${join(dir, "none.toml")}: cannot read configuration: no such file`);
    assert.throws(() => loadConfig(dir), (e: Error) => e instanceof ConfigError && e.message === `${dir}: cannot read configuration: it is a folder, not a file`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("keyAt names the key written on a line, with its table", () => {
  const src = '# top\nx = 1\n[nntp]\nlisten = "a"\n[[peer]]\nname = "a"\n[[peer]]\nname = "b"\nport = 1\n[smtp.tls]\n';
  assert.equal(keyAt(src, 1), "(none)");
  assert.equal(keyAt(src, 2), "x");
  assert.equal(keyAt(src, 4), "nntp.listen");
  assert.equal(keyAt(src, 6), "peer.0.name");
  assert.equal(keyAt(src, 9), "peer.1.port");
  assert.equal(keyAt(src, 10), "smtp.tls");
});

test("addresses and CIDR blocks: the schema takes exactly what the node's BlockList takes", () => {
  for (const ok of ["127.0.0.1", "127.0.0.0/8", "0.0.0.0/0", "10.1.2.3/32", "::1", "::/0", "fd00::/8", "2001:db8::/128", "::ffff:192.0.2.1"]) {
    const r = parseAddressEntry(ok);
    assert.notEqual(typeof r, "string", `${ok}: ${String(r)}`);
    assert.doesNotThrow(() => new AddressList([ok]));
  }
  for (const bad of ["127.0.0.1/99", "127.0.0.1/33", "::1/129", "10.0.0.300", "127.0.0.1/", "127.0.0.1/8/8", "127.0.0.1/-1", "127.0.0.1/ 8", "localhost", "", "1.2.3.4/08x"]) {
    const r = parseAddressEntry(bad);
    assert.equal(typeof r, "string", `${bad} was taken`);
    assert.match(r as string, /^expected /);
  }
  // each block, once parsed, matches what it says
  const list = new AddressList(["10.0.0.0/8", "fd00::/8", "192.0.2.7"]);
  assert.equal(list.has("10.200.0.1"), true);
  assert.equal(list.has("11.0.0.1"), false);
  assert.equal(list.has("fd12::1"), true);
  assert.equal(list.has("::ffff:192.0.2.7"), true);
});

test("HOST:PORT and DNS servers: what cannot be listened on or dialled is refused with what was expected", () => {
  for (const ok of ["127.0.0.1:0", "0.0.0.0:119", "[::1]:119", "[::]:563", "localhost:1119", "news.example.org:119", "a-b.c:65535"]) assert.equal(hostPortError(ok), undefined, ok);
  for (const bad of ["127.0.0.1", "127.0.0.1:65536", "999.0.0.1:119", "[127.0.0.1]:119", "::1:119", "-x.org:119", "a..b:119", "host:port", ":119", "127.0.0.1:119 "]) assert.match(hostPortError(bad) ?? "(taken)", /^expected /, bad);
  for (const ok of ["192.0.2.53", "127.0.0.1:5353", "[::1]:53", "[2001:db8::1]"]) assert.equal(dnsServerError(ok), undefined, ok);
  for (const bad of ["999.1.1.1", "1.2.3.4:0", "1.2.3.4:70000", "::1", "dns.example"]) assert.match(dnsServerError(bad) ?? "(taken)", /^expected /, bad);
});

test("check-config's rules across entries: duplicate peers, groups and path identities, and our own identity on a peer", () => {
  withFile('[[peer]]\nname = "a"\n\n[[peer]]\nname = "a"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message === `${file}:5: key peer.1.name: expected a name no other [[peer]] has: a is already the name of [[peer]] number 1`);
  });
  withFile('[[group]]\nname = "x.y"\n[[group]]\nname = "x.y"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message.startsWith(`${file}:4: key group.1.name: expected a group listed once`));
  });
  withFile('[[peer]]\nname = "a"\n\n[[peer]]\nname = "A"\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message.startsWith(`${file}:5: key peer.1.name: expected a path identity no other peer has: A is already peer a's`));
  });
  withFile('[node]\npathhost = "news.example.org"\n\n[[peer]]\nname = "up"\npath_identities = ["News.Example.org"]\n', (file) => {
    assert.throws(() => loadConfig(file), (e: Error) => e.message.startsWith(`${file}:6: key peer.0.path_identities.0: expected the peer's own path identity`));
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
