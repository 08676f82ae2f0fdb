// Interop with INN 2.7 (Debian's inn2) on loopback: INN's own tools feed
// tidings (innfeed streaming in real time, innxmit from a batch) and read
// from it (getlist). The sandbox script installs inn2 if it is missing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { rmSync } from "node:fs";
import { freePort } from "../helpers/mesh.js";
import { startNode, tempDir, type TestNode } from "../helpers/node.js";
import { RawClient, stuff } from "../helpers/client.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SANDBOX = join(root, "test", "interop", "inn-sandbox.sh");

function sandbox(...args: string[]): { code: number; out: string } {
  const r = spawnSync("bash", [SANDBOX, ...args], { encoding: "utf8", timeout: 600_000 });
  return { code: r.status ?? -1, out: (r.stdout ?? "") + (r.stderr ?? "") };
}


let skip: string | false = false;
before(() => {
  const r = sandbox("ensure");
  if (r.code !== 0) skip = `INN is not available here (inn-sandbox.sh ensure exited ${r.code}): ${r.out.slice(0, 300)}`;
});

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function startInn(peer?: number): Promise<{ dir: string; port: number }> {
  const dir = tempDir("tidings-inn-");
  const port = await freePort();
  const r = sandbox("start", dir, String(port), ...(peer ? [`127.0.0.1:${peer}`] : []));
  assert.equal(r.code, 0, `INN did not start: ${r.out}`);
  cleanups.push(() => {
    sandbox("stop", dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, port };
}

async function node(): Promise<TestNode> {
  const n = await startNode({ pathhost: "tidings.local" }); // the name inn-sandbox.sh's newsfeeds entry excludes
  cleanups.push(() => n.stop());
  return n;
}

/** Posts through INN's nnrpd (MODE READER, POST) and returns the Message-IDs. */
async function postToInn(port: number, n: number, tag: string): Promise<string[]> {
  const { client, greeting } = await RawClient.connect(port);
  assert.match(greeting, /^20[01]/);
  assert.match(await client.cmd("MODE READER"), /^20[01]/);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const msgid = `<${tag}.${i}@inn-interop.test>`;
    assert.match(await client.cmd("POST"), /^340/);
    client.send(
      stuff(
        `From: Interop <interop@example.org>\r\nNewsgroups: local.test\r\nSubject: interop ${tag} ${i}\r\n` +
          `Message-ID: ${msgid}\r\n\r\n.leading dot\r\nline ${i} \xe9\r\n`,
      ),
    );
    const r = await client.line();
    assert.match(r, /^240/, `INN refused the posting: ${r}`);
    ids.push(msgid);
  }
  client.close();
  return ids;
}

async function waitForAll(port: number, ids: string[], ms: number): Promise<Map<string, string>> {
  const { client } = await RawClient.connect(port);
  const found = new Map<string, string>();
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && found.size < ids.length) {
    for (const id of ids) {
      if (found.has(id)) continue;
      if ((await client.cmd(`ARTICLE ${id}`)).startsWith("220")) found.set(id, (await client.rawBlock()).toString("latin1"));
    }
    if (found.size < ids.length) await new Promise((r) => setTimeout(r, 200));
  }
  client.close();
  return found;
}

test("INN's innfeed streams what INN accepts into tidings, in real time", { timeout: 120_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const tidings = await node();
  const inn = await startInn(tidings.port);
  const tag = `feed${Date.now().toString(36)}`;
  // innd starts innfeed with the first article; articles that reach innfeed
  // while its first connection is still being set up go to its backlog tape
  // and are sent minutes later, so let that first one through, then burst.
  const first = await postToInn(inn.port, 1, `${tag}a`);
  assert.equal((await waitForAll(tidings.port, first, 30_000)).size, 1, "innfeed's first article did not arrive");
  const ids = [...first, ...(await postToInn(inn.port, 30, tag))];
  const got = await waitForAll(tidings.port, ids, 60_000);
  assert.equal(got.size, ids.length, `tidings got ${got.size} of ${ids.length} from innfeed`);
  for (const [, text] of got) {
    assert.match(text, /^Path: tidings\.local!inn\.test!/m, "tidings prepends its identity to INN's Path");
    assert.match(text, /\r\n\.\.leading dot\r\n/, "dot-stuffing survives the trip");
    assert.match(text, /\r\nline \d+ \xe9\r\n/, "8-bit bytes survive the trip");
  }
});

test("INN's innxmit feeds tidings from a batch; a second run stores nothing twice", { timeout: 120_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const tidings = await node();
  const inn = await startInn();
  const ids = await postToInn(inn.port, 10, `xmit${Date.now().toString(36)}`);
  const r = sandbox("feed", inn.dir, `127.0.0.1:${tidings.port}`);
  assert.equal(r.code, 0, `innxmit failed: ${r.out}`);
  const got = await waitForAll(tidings.port, ids, 10_000);
  assert.equal(got.size, ids.length);

  // post two more on INN and feed again: INN offers only the new batch, and
  // offering the old ones by hand gets 438 from history
  const more = await postToInn(inn.port, 2, `xmit2${Date.now().toString(36)}`);
  assert.equal(sandbox("feed", inn.dir, `127.0.0.1:${tidings.port}`).code, 0);
  assert.equal((await waitForAll(tidings.port, more, 10_000)).size, 2);
  const { client } = await RawClient.connect(tidings.port);
  assert.match(await client.cmd("MODE STREAM"), /^203/);
  assert.match(await client.cmd(`CHECK ${ids[0]}`), /^438/);
  const g = await client.cmd("GROUP local.test");
  assert.equal(Number(g.split(" ")[1]), ids.length + more.length, `group count: ${g}`);
  client.close();
});

test("INN's getlist reads tidings' active file and descriptions", { timeout: 60_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const tidings = await node();
  const inn = await startInn();
  const env = { ...process.env, INNCONF: join(inn.dir, "etc", "inn.conf") };
  const active = spawnSync("/usr/lib/news/bin/getlist", ["-h", "127.0.0.1", "-p", String(tidings.port), "active"], { encoding: "utf8", env });
  assert.equal(active.status, 0, active.stderr);
  assert.match(active.stdout, /^local\.test \d+ \d+ y$/m);
  assert.match(active.stdout, /^tidings\.announce \d+ \d+ m$/m);
  const groups = spawnSync("/usr/lib/news/bin/getlist", ["-h", "127.0.0.1", "-p", String(tidings.port), "newsgroups", "local.*"], { encoding: "utf8", env });
  assert.equal(groups.status, 0, groups.stderr);
  assert.match(groups.stdout, /^local\.general\tGeneral discussion/m);
  assert.doesNotMatch(groups.stdout, /^tidings\.announce/m, "the wildmat filters the list");
});

test("tidings and INN peer both ways: posts on either side reach the other, and Path stops the loop", { timeout: 180_000 }, async (t) => {
  if (skip) return t.skip(skip);
  // tidings must know INN's port before it starts, and INN tidings' port
  const innPort = await freePort();
  const dir = tempDir("tidings-inn-both-");
  const tidings = await startNode({
    pathhost: "tidings.local",
    config: `[feeds]\nreconnect_min = 0.1\nreconnect_max = 1\nstatus_interval = 0.2\n[[peer]]\nname = "inn"\nhost = "127.0.0.1"\nport = ${innPort}\npath_identities = ["inn.test"]\ngroups = "*,!junk,!control*"\naccept_from = ["127.0.0.1"]\n`,
  });
  cleanups.push(() => tidings.stop());
  const r = sandbox("start", dir, String(innPort), `127.0.0.1:${tidings.port}`);
  assert.equal(r.code, 0, r.out);
  cleanups.push(() => {
    sandbox("stop", dir);
    rmSync(dir, { recursive: true, force: true });
  });

  // INN → tidings (first article opens innfeed's connection, then a burst)
  const tag = `both${Date.now().toString(36)}`;
  const fromInn = await postToInn(innPort, 1, `${tag}i0`);
  assert.equal((await waitForAll(tidings.port, fromInn, 30_000)).size, 1);
  fromInn.push(...(await postToInn(innPort, 10, `${tag}i`)));

  // tidings → INN, by streaming
  const { client } = await RawClient.connect(tidings.port);
  const fromTidings: string[] = [];
  for (let i = 0; i < 10; i++) {
    const msgid = `<${tag}.t${i}@tidings-interop.test>`;
    assert.match(await client.cmd("POST"), /^340/);
    client.send(stuff(`From: T <t@example.org>\r\nNewsgroups: local.test\r\nSubject: from tidings ${i}\r\nMessage-ID: ${msgid}\r\n\r\n.dot\r\nbody ${i}\r\n`));
    assert.match(await client.line(), /^240/);
    fromTidings.push(msgid);
  }
  client.close();

  const onTidings = await waitForAll(tidings.port, fromInn, 60_000);
  assert.equal(onTidings.size, fromInn.length, `tidings has ${onTidings.size} of ${fromInn.length} INN articles`);
  const onInn = await waitForInn(innPort, fromTidings, 60_000);
  assert.equal(onInn.size, fromTidings.length, `INN has ${onInn.size} of ${fromTidings.length} tidings articles`);
  for (const text of onInn.values()) assert.match(text, /^Path: inn\.test!tidings\.local!/m);

  // Path stopped the loop: tidings never offered INN's own articles back to it
  await new Promise((r) => setTimeout(r, 1000));
  const { readFileSync } = await import("node:fs");
  const st = JSON.parse(readFileSync(join(tidings.dataDir, "status.json"), "utf8"));
  const inn = st.peers.find((p: { name: string }) => p.name === "inn");
  assert.equal(inn.offered, fromTidings.length, `tidings offered INN ${inn.offered} articles`);
  assert.equal(inn.accepted, fromTidings.length);
  assert.equal(inn.backlog.count, 0);
  assert.equal(st.articles.loops, 0, "INN offered tidings an article that had passed through it");
});

/** Reads articles from INN's nnrpd. */
async function waitForInn(port: number, ids: string[], ms: number): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && found.size < ids.length) {
    const { client } = await RawClient.connect(port);
    await client.cmd("MODE READER");
    for (const id of ids) {
      if (found.has(id)) continue;
      if ((await client.cmd(`ARTICLE ${id}`)).startsWith("220")) found.set(id, (await client.rawBlock()).toString("latin1"));
    }
    client.close();
    if (found.size < ids.length) await new Promise((r) => setTimeout(r, 300));
  }
  return found;
}
