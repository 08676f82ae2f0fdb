// A node's path identity, as a new operator meets it: two stock nodes peered
// with `tidings peer add` and nothing else exchange what users post; the
// identity a node makes is its own, kept across restarts, and named wherever
// the node names itself; a peer that shares our identity is refused, flagged,
// and its refusals are shown with the peer's own words.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { hostname } from "node:os";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, tempDir, type TestNode } from "../helpers/node.js";
import { freePorts } from "../helpers/mesh.js";
import { RawClient, stuff } from "../helpers/client.js";

function tidings(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** RFC 5536 §3.1.5 path-identity. */
const PATH_IDENTITY = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

let seq = 0;
async function post(port: number, group: string): Promise<string> {
  const { client } = await RawClient.connect(port);
  try {
    const msgid = `<identity.${process.pid}.${Date.now().toString(36)}.${seq++}@test.example>`;
    assert.match(await client.cmd("POST"), /^340/);
    client.send(stuff(`From: Op <op@example.org>\r\nNewsgroups: ${group}\r\nSubject: hello ${seq}\r\nMessage-ID: ${msgid}\r\n\r\nhello\r\n`));
    assert.match(await client.line(), /^240 /);
    return msgid;
  } finally {
    client.close();
  }
}

/** The article's header lines on that node, once it has it (or undefined after the deadline). */
async function headOnceThere(port: number, msgid: string, ms = 20_000): Promise<string[] | undefined> {
  const deadline = Date.now() + ms;
  const { client } = await RawClient.connect(port);
  try {
    while (Date.now() < deadline) {
      if ((await client.cmd(`HEAD ${msgid}`)).startsWith("221")) return await client.lines();
      await new Promise((r) => setTimeout(r, 100));
    }
    return undefined;
  } finally {
    client.close();
  }
}

/** The node's JSON log lines (standard error). */
function logLines(node: TestNode): { level: number; msg: string; [k: string]: unknown }[] {
  return node.stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`not within ${ms / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("two stock nodes peered with tidings peer add and nothing else exchange a post in the default flooding group", { timeout: 90_000 }, async () => {
  const dir = tempDir();
  const [pa, pb] = await freePorts(2);
  const nodes: TestNode[] = [];
  try {
    const aToml = join(dir, "a.toml");
    const bToml = join(dir, "b.toml");
    // as the README's "Peering two nodes" says, with no other setting
    assert.equal(tidings("peer", "add", "beta", `127.0.0.1:${pb}`, "--config", aToml).code, 0);
    assert.equal(tidings("peer", "add", "alpha", `127.0.0.1:${pa}`, "--config", bToml).code, 0);
    const a = await startNode({ dataDir: join(dir, "a"), args: ["--nntp", `127.0.0.1:${pa}`, "--config", aToml, "--log-level", "info"] });
    nodes.push(a);
    const b = await startNode({ dataDir: join(dir, "b"), args: ["--nntp", `127.0.0.1:${pb}`, "--config", bToml] });
    nodes.push(b);

    const fromA = await post(a.port, "tidings.general");
    const onB = await headOnceThere(b.port, fromA);
    assert.ok(onB, `an article posted on alpha did not reach beta; beta's log:\n${b.stderr}`);
    assert.notEqual(a.pathhost, b.pathhost, "two nodes on one machine have different path identities");
    assert.ok(onB.includes(`Path: ${b.pathhost}!${a.pathhost}!.POSTED!not-for-mail`), onB.join("\n"));

    const fromB = await post(b.port, "tidings.general");
    assert.ok(await headOnceThere(a.port, fromB), `an article posted on beta did not reach alpha; alpha's log:\n${a.stderr}`);

    // a reload keeps the made identity, and does not take the unset key for a change
    a.proc.kill("SIGHUP");
    const reloaded = await until("alpha's reload", () => logLines(a).find((l) => l.msg === "configuration reloaded"));
    assert.ok(!(reloaded.restart as string[]).includes("node.pathhost"), JSON.stringify(reloaded));
    const greeted = await RawClient.connect(a.port);
    greeted.client.close();
    assert.equal(greeted.greeting.split(" ")[1], a.pathhost);

    // local.* stays on the node it was posted on
    const local = await post(a.port, "local.general");
    await new Promise((r) => setTimeout(r, 500));
    const { client } = await RawClient.connect(b.port);
    assert.match(await client.cmd(`STAT ${local}`), /^430 /);
    client.close();
  } finally {
    for (const n of nodes) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a node without node.pathhost makes its identity once, keeps it across restarts, and names it everywhere", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const nodes: TestNode[] = [];
  try {
    const first = await startNode({ dataDir: join(dir, "one"), args: ["--log-level", "info"] });
    nodes.push(first);
    const id = first.pathhost;
    assert.match(id, PATH_IDENTITY);
    assert.ok(id.length <= 255);
    const host = hostname().toLowerCase().split(".")[0].replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
    if (host) assert.ok(id.startsWith(`${host}-`), `${id} is made from the host name ${hostname()}`);
    assert.notEqual(id, "tidings.local");
    // printed at start: the log says it was made, and every line names the node
    const made = await until("the log line naming the identity made", () => logLines(first).find((l) => /path identity made/.test(l.msg)));
    assert.equal(made.pathhost, id);
    assert.equal(made.node, id);

    // the greeting, Path, Xref and Message-ID name it
    const { client, greeting } = await RawClient.connect(first.port);
    assert.ok(greeting.startsWith(`200 ${id} `), greeting);
    client.close();
    const msgid = await post(first.port, "local.test");
    const head = await headOnceThere(first.port, msgid);
    assert.ok(head?.includes(`Path: ${id}!.POSTED!not-for-mail`), head?.join("\n"));
    assert.ok(head?.includes(`Xref: ${id} local.test:1`), head?.join("\n"));
    await first.stop({ keepData: true });

    // a restart keeps it, and does not make another
    const again = await startNode({ dataDir: join(dir, "one"), args: ["--log-level", "info"] });
    nodes.push(again);
    assert.equal(again.pathhost, id);
    await until("the start line", () => logLines(again).find((l) => /tidings node started/.test(l.msg)));
    assert.ok(!logLines(again).some((l) => /path identity made/.test(l.msg)), again.stderr);
    const status = await until("status.json", () => {
      const r = tidings("status", "--data", join(dir, "one"));
      return r.code === 0 && r.out;
    });
    assert.match(status, new RegExp(`^node ${id.replace(/\./g, "\\.")} `, "m"));
    await again.stop({ keepData: true });

    // a second node on the same machine gets another
    const other = await startNode({ dataDir: join(dir, "two") });
    nodes.push(other);
    assert.match(other.pathhost, PATH_IDENTITY);
    assert.notEqual(other.pathhost, id);
    await other.stop();

    // a configured pathhost still wins, and the made one stays for later
    const named = await startNode({ dataDir: join(dir, "one"), pathhost: "news.example.org" });
    nodes.push(named);
    assert.equal(named.pathhost, "news.example.org");
    const g = await RawClient.connect(named.port);
    assert.ok(g.greeting.startsWith("200 news.example.org "), g.greeting);
    g.client.close();
    await named.stop({ keepData: true });
  } finally {
    for (const n of nodes) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("peer add refuses a peer that has our own path identity, and says why", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  try {
    // the identity from the configuration
    const named = join(dir, "named.toml");
    writeFileSync(named, `[node]\npathhost = "news.example.org"\n`);
    let r = tidings("peer", "add", "news.example.org", "127.0.0.1:1120", "--config", named);
    assert.equal(r.code, 2, r.out);
    assert.match(r.err, /news\.example\.org is this node's own path identity \(from node\.pathhost\)/);
    assert.match(r.err, /refused as a loop/);
    r = tidings("peer", "add", "beta", "127.0.0.1:1120", "--config", named, "--path-identity", "NEWS.example.org");
    assert.equal(r.code, 2, r.out);
    assert.match(r.err, /own path identity/);

    // the identity a node made and keeps in the data folder
    const data = join(dir, "data");
    const node = await startNode({ dataDir: data });
    const id = node.pathhost;
    await node.stop({ keepData: true });
    const stock = join(dir, "stock.toml");
    writeFileSync(stock, `[node]\ndata_dir = ${JSON.stringify(data)}\n`);
    r = tidings("peer", "add", id, "127.0.0.1:1120", "--config", stock);
    assert.equal(r.code, 2, r.out);
    assert.match(r.err, new RegExp(`${id.replace(/\./g, "\\.")} is this node's own path identity \\(from the database in `));
    // a peer of its own name is fine
    r = tidings("peer", "add", "beta", "127.0.0.1:1120", "--config", stock);
    assert.equal(r.code, 0, r.err);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a peer that shares our identity: peer check says ✗ and why, the sender logs and shows the peer's refusal, the receiver logs its reason", { timeout: 90_000 }, async () => {
  const dir = tempDir();
  const nodes: TestNode[] = [];
  try {
    // the old default on both sides: the same name
    const b = await startNode({ pathhost: "tidings.local", args: ["--log-level", "info"], config: `[[peer]]\nname = "alpha"\naccept_from = ["127.0.0.1"]\n` });
    nodes.push(b);
    const a = await startNode({
      pathhost: "tidings.local",
      args: ["--log-level", "info"],
      config: `[feeds]\nstatus_interval = 0.1\n[[peer]]\nname = "beta"\nhost = "127.0.0.1"\nport = ${b.port}\ngroups = "*"\naccept_from = ["127.0.0.1"]\n`,
    });
    nodes.push(a);

    // peer check, from alpha's configuration
    const check = join(dir, "check.toml");
    writeFileSync(check, `[node]\npathhost = "tidings.local"\n[[peer]]\nname = "beta"\nhost = "127.0.0.1"\nport = ${b.port}\naccept_from = ["127.0.0.1"]\n`);
    const c = tidings("peer", "check", "beta", "--config", check);
    assert.equal(c.code, 1, c.out + c.err);
    assert.match(c.out, /✗ beta greets us with our own path identity tidings\.local .*both nodes have the same path identity, so each will refuse the other's articles as a loop/);
    assert.match(c.out, /Set node\.pathhost .* or leave it unset/);

    // three articles, each refused by beta as a loop
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await post(a.port, "local.test"));
    const status = await until("the refusals in alpha's status", () => {
      const r = tidings("status", "--data", a.dataDir);
      return r.code === 0 && /rejected 3,/.test(r.out) && r.out;
    });
    assert.match(status, /last refusal: 439 <[^>]+> Article already passed through tidings\.local \(Path loop\) \(\d+ (ms|s) ago\)/);

    // alpha, the sender: one info line for the kind, with beta's reply, not one an article
    const sent = () => logLines(a).filter((l) => /^peer refused an article/.test(l.msg));
    const first = await until("alpha's log line", () => sent()[0]);
    assert.equal(first.level, 30, "info");
    assert.match(String(first.reason), /^439 <[^>]+> Article already passed through tidings\.local \(Path loop\)$/);
    assert.equal(first.key, "beta");
    assert.equal(sent().length, 1, a.stderr);
    // beta, the receiver: its reason, at info level, once for alpha's address
    const got = () => logLines(b).filter((l) => /^article refused/.test(l.msg));
    const why = await until("beta's log line", () => got()[0]);
    assert.equal(why.level, 30);
    assert.equal(why.reason, "Article already passed through tidings.local (Path loop)");
    assert.equal(got().length, 1, b.stderr);

    // at stop, the count of the episode
    await a.stop({ keepData: true });
    const summary = sent().at(-1)!;
    assert.match(summary.msg, /3 times\)$/, a.stderr);
  } finally {
    for (const n of nodes) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
