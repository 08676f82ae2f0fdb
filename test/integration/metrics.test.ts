// Watching a node as an operator does: /metrics scraped over HTTP and read as
// Prometheus text, the same figures in `tidings status`, who is connected,
// the HTTP listener's switch, and log lines fit for where they go.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import net from "node:net";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, tempDir, type TestNode } from "../helpers/node.js";
import { RawClient, stuff } from "../helpers/client.js";
import { NntpClient } from "../../protocol/nntp/client.js";
import { freePort } from "../helpers/mesh.js";

function tidings(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// ---- Prometheus text format (version 0.0.4), parsed strictly enough to catch a malformed line ----

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

class Scrape {
  constructor(readonly types: Map<string, string>, readonly samples: Sample[]) {}

  /** The one sample with this name and exactly these labels, or undefined. */
  get(name: string, labels: Record<string, string> = {}): number | undefined {
    const want = JSON.stringify(Object.entries(labels).sort());
    return this.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
  }

  all(name: string): Sample[] {
    return this.samples.filter((s) => s.name === name);
  }
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)( -?\\d+)?$`);
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)/y;

function parsePrometheus(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split("\n");
  assert.equal(lines.pop(), "", "the exposition ends with a newline");
  for (const line of lines) {
    if (line.startsWith("#")) {
      const m = new RegExp(`^# (HELP|TYPE) (${NAME})(?: (.*))?$`).exec(line);
      assert.ok(m, `malformed comment line: ${line}`);
      if (m[1] === "TYPE") {
        assert.match(m[3] ?? "", /^(counter|gauge|histogram|summary|untyped)$/, line);
        assert.ok(!types.has(m[2]), `TYPE given twice for ${m[2]}`);
        types.set(m[2], m[3]);
      }
      continue;
    }
    if (line.trim() === "") continue;
    const m = SAMPLE.exec(line);
    assert.ok(m, `malformed sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < m[2].length) {
        const l = LABEL.exec(m[2]);
        assert.ok(l, `malformed labels: ${line}`);
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
    }
    // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes "Nan")
    const special = /^([+-]?)(inf|nan)$/i.exec(m[3]);
    const value = special ? (special[2].toLowerCase() === "nan" ? NaN : special[1] === "-" ? -Infinity : Infinity) : Number(m[3]);
    assert.ok(special || (m[3] !== "" && !Number.isNaN(value)), `bad value: ${line}`);
    const family = [m[1], m[1].replace(/_(bucket|sum|count)$/, "")].find((f) => types.has(f));
    assert.ok(family, `sample without a TYPE line: ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  return new Scrape(types, samples);
}

async function scrape(port: number): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  return { status: r.status, type: r.headers.get("content-type") ?? "", body: await r.text() };
}

// ---- two nodes: alpha feeds beta; a client reads on beta ----

let alpha: TestNode;
let beta: TestNode;
let reader: NntpClient;

async function waitFor<T>(what: string, get: () => T | undefined | Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The node's status.json as `tidings status --json` prints it. */
function statusJson(node: TestNode) {
  const r = tidings("status", "--json", "--data", node.dataDir);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out);
}

function readStatus(node: TestNode) {
  try {
    return JSON.parse(readFileSync(join(node.dataDir, "status.json"), "utf8"));
  } catch {
    return undefined; // not written yet, or being replaced
  }
}

async function postArticle(port: number, text: string): Promise<string> {
  const { client } = await RawClient.connect(port);
  try {
    const r1 = await client.cmd("POST");
    assert.match(r1, /^340/);
    client.send(stuff(text));
    return await client.line();
  } finally {
    client.close();
  }
}

let seq = 0;
const article = (group: string, subject: string | null) =>
  `From: Watcher <w@example.org>\r\nNewsgroups: ${group}\r\n` + (subject === null ? "" : `Subject: ${subject}\r\n`) + `Message-ID: <metrics.${process.pid}.${Date.now()}.${seq++}@test.example>\r\n\r\nbody\r\n`;

describe("alpha feeds beta, a reader is on beta", () => {
  before(async () => {
    // beta knows alpha as a receive-only peer on 127.0.0.1; no address is a local feeder, so alpha's
    // connections name the peer. Its Path identity is named, so what alpha sends is not routed back to it.
    beta = await startNode({
      pathhost: "beta.test",
      config: `[nntp]\ntransit_from = []\n[feeds]\nstatus_interval = 0.2\n[[peer]]\nname = "alpha"\naccept_from = ["127.0.0.1"]\npath_identities = ["alpha.test"]\n`,
    });
    // alpha carries a group beta does not, so beta refuses what alpha sends there
    alpha = await startNode({
      pathhost: "alpha.test",
      config:
        `[feeds]\nstatus_interval = 0.2\nreconnect_min = 0.05\n` +
        `[[group]]\nname = "local.test"\n[[group]]\nname = "alpha.only"\n` +
        `[[peer]]\nname = "beta"\nhost = "127.0.0.1"\nport = ${beta.port}\ngroups = "*"\naccept_from = ["192.0.2.1"]\n`,
    });
    for (let i = 0; i < 3; i++) assert.match(await postArticle(alpha.port, article("local.test", `post ${i}`)), /^240/);
    assert.match(await postArticle(alpha.port, article("alpha.only", "beta does not carry this")), /^240/);
    assert.match(await postArticle(alpha.port, article("local.test", null)), /^441 .*Subject/);
    // a reader on beta from an address that is not the peer's
    ({ client: reader } = await NntpClient.open("127.0.0.1", beta.port, { localAddress: "127.0.0.3", timeoutMs: 10_000 }));
    reader.write("MODE READER\r\nGROUP local.test\r\n");
    assert.match(await reader.line(), /^20[01]/);
    assert.match(await reader.line(), /^211 /);
    // everything has settled once alpha has its answers and both status files say so
    await waitFor("alpha's feed to finish", () => {
      const s = readStatus(alpha);
      const p = s?.peers?.[0];
      return p && p.accepted === 3 && p.rejected === 1 && p.backlog.count === 0 ? true : undefined;
    });
    await waitFor("beta's status to show the peer and the reader", () => {
      const s = readStatus(beta);
      return s?.clients?.some((c: { peer: string | null }) => c.peer === "alpha") && s.clients.some((c: { commands: number; peer: string | null }) => !c.peer && c.commands >= 2) && s.articles.rejected === 1
        ? true
        : undefined;
    });
  });

  after(async () => {
    reader?.destroy();
    await alpha?.stop();
    await beta?.stop();
  });

  /**
   * Compares /metrics with status.json written after the scrape; a commit in
   * between (a scheduled purge) can make them differ for a moment, so it tries
   * a few times and reports the last differences.
   */
  async function agree(node: TestNode, check: (m: Scrape, s: ReturnType<typeof statusJson>) => string[]): Promise<{ m: Scrape; s: ReturnType<typeof statusJson> }> {
    let diffs: string[] = [];
    for (let attempt = 0; attempt < 10; attempt++) {
      const r = await scrape(node.httpPort);
      assert.equal(r.status, 200);
      const m = parsePrometheus(r.body);
      const at = Date.now();
      await waitFor("a status written after the scrape", () => (readStatus(node)?.written > at ? true : undefined));
      const s = statusJson(node);
      diffs = check(m, s);
      if (diffs.length === 0) return { m, s };
    }
    assert.fail(`/metrics and tidings status disagree:\n${diffs.join("\n")}`);
  }

  function same(diffs: string[], what: string, metric: number | undefined, status: number): void {
    if (metric !== status) diffs.push(`${what}: /metrics ${metric}, status ${status}`);
  }

  type Status = ReturnType<typeof statusJson>;

  function common(m: Scrape, s: Status): string[] {
    const d: string[] = [];
    for (const k of ["accepted", "duplicate", "rejected", "deferred"]) same(d, `articles ${k}`, m.get("tidings_articles_total", { outcome: k }), s.articles[k]);
    same(d, "path loops", m.get("tidings_articles_path_loops_total"), s.articles.loops);
    for (const row of s.incoming) {
      same(d, `incoming ${JSON.stringify(row)}`, m.get("tidings_articles_received_total", { origin: row.origin, peer: row.peer, outcome: row.outcome, reason: row.reason }), row.count);
    }
    same(d, "incoming rows", m.all("tidings_articles_received_total").length, s.incoming.length);
    for (const p of s.peers) {
      for (const k of ["offered", "accepted", "refused", "rejected", "deferred", "dropped"]) same(d, `peer ${p.name} ${k}`, m.get("tidings_peer_articles_total", { peer: p.name, outcome: k }), p[k]);
      same(d, `peer ${p.name} backlog`, m.get("tidings_peer_backlog_articles", { peer: p.name }), p.backlog.count);
      same(d, `peer ${p.name} connections`, m.get("tidings_peer_connections", { peer: p.name }), p.connected);
      same(d, `peer ${p.name} bytes sent`, m.get("tidings_peer_sent_bytes_total", { peer: p.name }), p.bytesSent);
    }
    const peers = s.clients.filter((c: { peer: string | null }) => c.peer).length;
    same(d, "nntp peer connections", m.get("tidings_nntp_connections", { kind: "peer" }), peers);
    same(d, "nntp client connections", m.get("tidings_nntp_connections", { kind: "client" }), s.clients.length - peers);
    same(d, "nntp commands", m.get("tidings_nntp_commands_total"), s.nntpTotals.commands);
    same(d, "database bytes", m.get("tidings_database_bytes", { file: "main" }), s.database.bytes);
    same(d, "wal bytes", m.get("tidings_database_bytes", { file: "wal" }), s.database.walBytes);
    same(d, "writer queue", m.get("tidings_writer_queue_items"), s.writer.queued);
    same(d, "mail queue", m.get("tidings_mail_queue_messages"), s.mail.messages);
    return d;
  }

  test("the ready line names the HTTP port, and /metrics there is Prometheus text that agrees with tidings status on the sender", async () => {
    assert.ok(alpha.httpPort > 0, "the ready line names http=HOST:PORT");
    const r = await scrape(alpha.httpPort);
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    const { m, s } = await agree(alpha, common);
    assert.equal(m.types.get("tidings_articles_total"), "counter");
    assert.equal(m.types.get("tidings_peer_backlog_articles"), "gauge");
    assert.equal(m.types.get("tidings_commit_seconds"), "histogram");
    // what the operator would look for, by value
    assert.equal(m.get("tidings_articles_total", { outcome: "accepted" }), 4);
    assert.equal(m.get("tidings_articles_received_total", { origin: "nntp-post", peer: "", outcome: "rejected", reason: "missing_subject" }), 1);
    assert.equal(m.get("tidings_peer_articles_total", { peer: "beta", outcome: "accepted" }), 3);
    assert.equal(m.get("tidings_peer_articles_total", { peer: "beta", outcome: "rejected" }), 1);
    assert.equal(m.get("tidings_peer_backlog_articles", { peer: "beta" }), 0);
    assert.ok((m.get("tidings_commit_seconds_count") ?? 0) >= 4, "each post was committed and timed");
    assert.ok((m.get("tidings_database_bytes", { file: "main" }) ?? 0) > 0);
    assert.ok(m.get("process_resident_memory_bytes") !== undefined, "process figures are there too");
    assert.equal(s.articles.accepted, 4);
  });

  test("on the receiver, /metrics names the incoming peer and the reason of its refusal, as tidings status does", async () => {
    const { m } = await agree(beta, common);
    assert.equal(m.get("tidings_nntp_connections", { kind: "peer" }), 1);
    assert.equal(m.get("tidings_nntp_connections", { kind: "client" }), 1);
    const fromAlpha = m.all("tidings_articles_received_total").filter((x) => x.labels.peer === "alpha");
    assert.equal(fromAlpha.filter((x) => x.labels.outcome === "accepted").reduce((t, x) => t + x.value, 0), 3);
    assert.deepEqual(
      fromAlpha.filter((x) => x.labels.outcome === "rejected").map((x) => [x.labels.reason, x.value]),
      [["no_carried_group", 1]],
    );
  });

  test("tidings status shows the connected client and the incoming peer, since when and what they sent, the database size and the uptime", () => {
    const r = tidings("status", "--data", beta.dataDir);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /http 127\.0\.0\.1:\d+\), up \d+ (ms|s|min)/);
    assert.match(r.out, /database .*tidings\.sqlite: [\d.]+ (B|KB|MB), write-ahead log/);
    assert.match(r.out, /connected now: 1 client, 1 incoming peer \(since start: \d+ connections?, \d+ commands?, 4 articles received\)/);
    assert.match(r.out, /peer alpha from 127\.0\.0\.1: connected for [\d.]+ (ms|s|min) \(since \d{4}-\d\d-\d\dT[\d:]+Z\); \d+ commands, 4 articles, /);
    assert.match(r.out, /client 127\.0\.0\.3: connected for .* \(since .*\); 2 commands, 0 articles, \d+ B in; last input .* ago/);
    assert.match(r.out, /from peer alpha: 3 accepted, 0 duplicate, 1 rejected, 0 deferred \(why: 1 no_carried_group\)/);
    const a = tidings("status", "--data", alpha.dataDir);
    assert.match(a.out, /from posts \(POST\): 4 accepted, 0 duplicate, 1 rejected, 0 deferred \(why: 1 missing_subject\)/);
  });

  test("unknown paths get 404, and another method on /metrics 405", async () => {
    const r = await fetch(`http://127.0.0.1:${alpha.httpPort}/nothing-here`);
    assert.equal(r.status, 404);
    await r.text();
    const p = await fetch(`http://127.0.0.1:${alpha.httpPort}/metrics`, { method: "POST", body: "x" });
    assert.equal(p.status, 405);
    assert.equal(p.headers.get("allow"), "GET");
    await p.text();
  });
});

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(false)));
    s.once("error", () => resolve(true));
  });
}

test("--http off: no HTTP listener, even where the file names a port, and the ready line says off", async () => {
  const port = await freePort();
  const node = await startNode({ config: `[http]\nlisten = "127.0.0.1:${port}"\n[feeds]\nstatus_interval = 0.2\n`, args: ["--http", "off"] });
  try {
    assert.equal(node.httpPort, 0);
    assert.ok(await refused(port), `nothing listens on ${port}`);
    await waitFor("status.json", () => readStatus(node));
    assert.equal(statusJson(node).http, "off");
  } finally {
    await node.stop();
  }
  // and the key alone opens it
  const fixed = await freePort();
  const onKey = await startNode({ args: ["--http", `127.0.0.1:${fixed}`] });
  try {
    assert.equal(onKey.httpPort, fixed);
    assert.equal((await scrape(fixed)).status, 200);
  } finally {
    await onKey.stop();
  }
});

test("a standard error that is not a terminal gets one JSON object a line", async () => {
  const node = await startNode({ args: ["--log-level", "info"] });
  const ended = new Promise((r) => node.proc.stderr!.once("end", r));
  await node.stop(); // its info lines when stopping are read too
  await ended;
  const lines = node.stderr.split("\n").filter(Boolean);
  assert.ok(lines.some((l) => l.includes("final statistics")), `exit ${node.proc.exitCode} ${node.proc.signalCode}: ${node.stderr}`);
  for (const l of lines) {
    const o = JSON.parse(l);
    assert.equal(typeof o.level, "number", l);
    assert.equal(typeof o.time, "number", l);
  }
});

test("at a terminal the log is readable: levels as words, times as dates, not JSON", () => {
  // Python's pty gives the node a terminal on standard error; stdout stays a pipe for the ready line
  const script = `
import os, pty, subprocess, sys, time, select
master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
os.close(slave)
out = b""
deadline = time.time() + 30
while b"tidings node started" not in out and time.time() < deadline:
    r, _, _ = select.select([master], [], [], 0.5)
    if r:
        try:
            out += os.read(master, 65536)
        except OSError:
            break
p.terminate()
p.wait(10)
sys.stdout.write(out.decode("utf-8", "replace"))
`;
  const dir = tempDir();
  try {
    const r = spawnSync("python3", ["-c", script, process.execPath, CLI, "serve", "--data", dir, "--nntp", "127.0.0.1:0", "--smtp", "off", "--http", "off", "--log-level", "info"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const text = r.stdout.replace(/\x1b\[[0-9;]*m/g, ""); // colours off
    assert.match(text, /\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: tidings node started/);
    assert.doesNotMatch(text, /^\{"level"/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("contrib/tidings.service is a valid systemd unit with the hardening it promises", (t) => {
  // tests run from the repository's root (npm test), wherever the build is
  const unitFile = join(process.cwd(), "contrib", "tidings.service");
  const unit = readFileSync(unitFile, "utf8");
  for (const line of [
    "User=tidings",
    "StateDirectory=tidings",
    "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "ExecReload=/bin/kill -HUP $MAINPID",
  ]) {
    assert.ok(unit.split("\n").includes(line), `the unit has ${line}`);
  }
  assert.match(unit, /^ExecStart=\S+ (?:--\S+ )*\S+\/cli\/tidings\.js serve .*--data \$\{STATE_DIRECTORY\}$/m);
  if (spawnSync("systemd-analyze", ["--version"]).status !== 0) return t.skip("systemd-analyze is not installed");
  // the node binary where this machine has it, so only the unit's own words are judged
  const dir = tempDir();
  try {
    const copy = join(dir, "tidings.service");
    writeFileSync(copy, unit.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
    const v = spawnSync("systemd-analyze", ["verify", copy], { encoding: "utf8", timeout: 60_000 });
    assert.equal(v.status, 0, v.stderr);
    // verify only warns about unknown keys and bad values; any line naming the file is one
    assert.equal(v.stderr.split("\n").filter((l) => l.includes("tidings.service")).join("\n"), "");
    const s = spawnSync("systemd-analyze", ["security", "--offline=true", copy], { encoding: "utf8", timeout: 60_000 });
    if (s.status === 0) {
      const m = /Overall exposure level for tidings\.service: ([\d.]+)/.exec(s.stdout);
      assert.ok(m && Number(m[1]) <= 2.5, `exposure: ${m?.[1]} (systemd-analyze security)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
