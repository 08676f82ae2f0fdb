// One node per data folder, and a sound one (issue 9): a second node on a
// folder in use, an empty, foreign or read-only database file, and a full
// disk, each as an operator meets them, with the real `tidings serve`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import sqlite3 from "sqlite3";
import { CLI, startNode, tempDir, tryServe } from "../helpers/node.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";
import { runningPid } from "../../storage/lock.js";

interface Attempt {
  ready: boolean;
  code: number | null;
  stderr: string;
}

/** Runs `tidings serve` on `dir` until it is ready (then it is stopped) or exits. */
async function tryServeOn(dir: string): Promise<Attempt> {
  return tryServe(["--data", dir, "--nntp", "127.0.0.1:0", "--smtp", "off", "--http", "off", "--log-level", "warn"]);
}

/** The refusal an operator reads: not ready, a non-zero status, and one line on standard error. */
function refusedLine(a: Attempt): string {
  assert.equal(a.ready, false, `the node started (it must refuse); stderr: ${a.stderr}`);
  assert.notEqual(a.code, 0);
  const lines = a.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${a.stderr}`);
  return lines[0];
}

function sql<T = Record<string, unknown>>(file: string, statement: string): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, (err) => {
      if (err) return reject(err);
      db.all(statement, (e, rows) => db.close(() => (e ? reject(e) : resolve(rows as T[]))));
    });
  });
}

async function post(port: number, subject: string): Promise<string> {
  const { client } = await RawClient.connect(port);
  try {
    const a = makeArticle({ subject });
    assert.match(await client.cmd("POST"), /^340 /);
    client.send(stuff(a.text));
    assert.match(await client.line(), /^240 /);
    return a.msgid;
  } finally {
    client.close();
  }
}

async function stat(port: number, msgid: string): Promise<string> {
  const { client } = await RawClient.connect(port);
  try {
    return await client.cmd(`STAT ${msgid}`);
  } finally {
    client.close();
  }
}

/** A tmpfs of `size` mounted on a new folder, to fill; undefined (the test skipped) where it cannot be mounted. */
function smallDisk(t: { skip(msg: string): void }, prefix: string, size: string): string | undefined {
  const mnt = tempDir(prefix);
  const mount = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mnt], { encoding: "utf8" });
  if (mount.status === 0) return mnt;
  rmSync(mnt, { recursive: true, force: true });
  t.skip(`cannot mount a small tmpfs to fill (mount: ${mount.stderr.trim() || mount.error}); needs root`);
  return undefined;
}

/** A data folder with a database a node made and left (stopped cleanly), holding one article. */
async function madeFolder(): Promise<{ dir: string; msgid: string }> {
  const dir = tempDir();
  const node = await startNode({ dataDir: dir });
  const msgid = await post(node.port, "kept");
  await node.stop({ keepData: true });
  return { dir, msgid };
}

test("a second node on a data folder in use refuses, in one line naming the folder and the first node's pid", async () => {
  const first = await startNode();
  try {
    const msgid = await post(first.port, "before the second node");
    const second = await tryServeOn(first.dataDir);
    const line = refusedLine(second);
    assert.ok(line.includes(first.dataDir), line);
    assert.ok(line.includes(`pid ${first.pid}`), line);
    assert.equal(runningPid(first.dataDir), first.pid, "the lock names the running node's pid (tidings reload sends it SIGHUP)");
    // the first node goes on serving, and its group counts are its own
    assert.match(await stat(first.port, msgid), /^223 /);
    const { client } = await RawClient.connect(first.port);
    assert.match(await client.cmd("GROUP local.test"), /^211 1 1 1 local\.test/);
    client.close();
  } finally {
    await first.stop({ keepData: true });
  }
  assert.equal(runningPid(first.dataDir), undefined, "a node stopped cleanly leaves no lock");
  assert.equal(existsSync(join(first.dataDir, "tidings.lock")), false);
  rmSync(first.dataDir, { recursive: true, force: true });
});

test("after a SIGKILL the next node starts on the same folder, with what was stored", async () => {
  const dir = tempDir();
  try {
    const a = await startNode({ dataDir: dir });
    const msgid = await post(a.port, "survives a kill");
    await a.kill();
    assert.ok(existsSync(join(dir, "tidings.lock")), "the killed node's lock is left behind");
    const b = await startNode({ dataDir: dir });
    assert.match(await stat(b.port, msgid), /^223 /);
    assert.equal(runningPid(dir), b.pid);
    await b.kill();
    // a lock whose pid now belongs to another live process (a pid reused after a reboot) does not hold the folder
    writeFileSync(join(dir, "tidings.lock"), `${process.pid}\nstart 1\n`);
    const c = await startNode({ dataDir: dir });
    assert.match(await stat(c.port, msgid), /^223 /);
    await c.kill();
    // nor does a lock file that is not one
    writeFileSync(join(dir, "tidings.lock"), "garbage");
    const d = await startNode({ dataDir: dir });
    assert.match(await stat(d.port, msgid), /^223 /);
    await d.stop({ keepData: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a zero-byte database file is refused, not taken for a new node, and left as it was", async () => {
  const dir = tempDir();
  const file = join(dir, "tidings.sqlite");
  try {
    writeFileSync(file, "");
    const line = refusedLine(await tryServeOn(dir));
    assert.ok(line.includes(file), line);
    assert.match(line, /empty/);
    assert.equal(statSync(file).size, 0);
    assert.equal(existsSync(join(dir, "tidings.lock")), false, "a refused start leaves no lock");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a SQLite database of another program, or a file that is not SQLite, is refused and left untouched", async () => {
  const dir = tempDir();
  const file = join(dir, "tidings.sqlite");
  try {
    await sql(file, "CREATE TABLE notes (body TEXT)");
    const line = refusedLine(await tryServeOn(dir));
    assert.ok(line.includes(file), line);
    assert.match(line, /not a tidings database/);
    assert.deepEqual((await sql<{ name: string }>(file, "SELECT name FROM sqlite_schema")).map((r) => r.name), ["notes"]);

    rmSync(file);
    writeFileSync(file, "name,value\na,1\n");
    const line2 = refusedLine(await tryServeOn(dir));
    assert.ok(line2.includes(file), line2);
    assert.match(line2, /not a SQLite database/);
    assert.equal(readFileSync(file, "utf8"), "name,value\na,1\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a database the node cannot write to is refused in one line naming the file", async (t) => {
  const { dir } = await madeFolder();
  const file = join(dir, "tidings.sqlite");
  try {
    // tests run as root, which file modes do not stop: the immutable flag does
    const chattr = spawnSync("chattr", ["+i", file], { encoding: "utf8" });
    if (chattr.status !== 0) {
      t.skip(`cannot make the file immutable here (chattr: ${chattr.stderr.trim() || chattr.error}); needs root on a file system with chattr`);
      return;
    }
    try {
      const line = refusedLine(await tryServeOn(dir));
      assert.ok(line.includes(file), line);
      assert.match(line, /cannot (open the database for writing|write)/);
    } finally {
      spawnSync("chattr", ["-i", file]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a database that SQLite cannot open is refused with its file named", async () => {
  const dir = tempDir();
  const file = join(dir, "tidings.sqlite");
  try {
    mkdirSync(file); // SQLITE_CANTOPEN, which alone names no file
    const line = refusedLine(await tryServeOn(dir));
    assert.ok(line.includes(file), line);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a database made before tidings marked its files opens, keeps its articles and is marked", async () => {
  const { dir, msgid } = await madeFolder();
  const file = join(dir, "tidings.sqlite");
  try {
    await sql(file, "PRAGMA application_id = 0");
    const node = await startNode({ dataDir: dir });
    assert.match(await stat(node.port, msgid), /^223 /);
    await node.stop({ keepData: true });
    const [{ application_id }] = await sql<{ application_id: number }>(file, "PRAGMA application_id");
    assert.equal(application_id, 0x54444e47);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("with the disk full, deferred articles are logged once with a count, not once each", { timeout: 180_000 }, async (t) => {
  const mnt = smallDisk(t, "tidings-full-", "12m");
  if (!mnt) return;
  const dir = join(mnt, "data");
  let node;
  try {
    node = await startNode({ dataDir: dir });
    // fill the disk to the last block
    const fd = openSync(join(mnt, "filler"), "w");
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
    }
    try {
      for (;;) writeSync(fd, chunk.subarray(0, 512));
    } catch {
      // full
    }
    closeSync(fd);

    const { client } = await RawClient.connect(node.port);
    assert.match(await client.cmd("MODE STREAM"), /^203 /);
    const n = 2000;
    const body = "x".repeat(2000) + "\r\n";
    const parts: Buffer[] = [];
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const a = makeArticle({ subject: `full ${i}`, body });
      ids.push(a.msgid);
      parts.push(Buffer.from(`TAKETHIS ${a.msgid}\r\n`), stuff(a.text));
    }
    client.send(Buffer.concat(parts));
    const replies: string[] = [];
    for (let i = 0; i < n; i++) replies.push(await client.line(60_000));
    client.close();
    const deferred = replies.filter((r) => /^(431|436|400) /.test(r)).length;
    const taken = replies.filter((r) => r.startsWith("239 ")).length;
    assert.ok(deferred >= 1000, `most articles should be deferred on a full disk (deferred ${deferred}, taken ${taken}): ${replies.slice(-3).join(" | ")}`);

    // room again: the node takes articles again, without a restart
    rmSync(join(mnt, "filler"));
    const msgid = await post(node.port, "after the disk had room again");
    assert.match(await stat(node.port, msgid), /^223 /);
    // batches are written while the ones before them are in flight (storage/group-commit.ts):
    // when one fails, those staged on it fail too, and nothing that was answered 239 is missing
    const { client: reader } = await RawClient.connect(node.port);
    for (let i = 0; i < n; i++) {
      if (replies[i].startsWith("239 ")) assert.match(await reader.cmd(`STAT ${ids[i]}`), /^223 /, `acknowledged ${ids[i]}`);
      else assert.match(await reader.cmd(`STAT ${ids[i]}`), /^430 /, `deferred ${ids[i]} (${replies[i]}) is not stored`);
    }
    reader.close();

    await node.stop({ keepData: true });
    const log = node.stderr.trim().split("\n").filter(Boolean);
    const about = log.filter((l) => /deferred/.test(l));
    t.diagnostic(`${deferred} articles deferred, ${taken} taken; ${log.length} log lines in all, ${about.length} about deferrals`);
    assert.ok(about.length >= 1 && about.length <= 3, `expected the deferrals logged once with a count, got ${about.length} lines:\n${about.slice(0, 5).join("\n")}`);
    // the last summary has the whole count (a long episode may also have a "still" line with part of it)
    const counted = about
      .map((l) => JSON.parse(l) as { count?: number; cause?: string })
      .filter((e) => e.count !== undefined)
      .sort((x, y) => y.count! - x.count!)[0];
    assert.ok(counted, `a line with the count: ${about.join("\n")}`);
    assert.match(String(counted.cause), /SQLITE_FULL/);
    assert.equal(counted.count, deferred);
    assert.ok(log.length < 20, `the log stays short on a full disk (${log.length} lines):\n${log.slice(0, 10).join("\n")}`);
  } finally {
    await node?.kill();
    spawnSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});

// 3,000-byte bodies are kept in the database; 6,000-byte ones go to the spool (storage.spool_min_bytes), whose write fails first
for (const [bodyBytes, where] of [[3000, "in the database"], [6000, "in the spool"]] as const) {
test(`the disk filling up during a flood (${bodyBytes}-byte bodies, ${where}): every article answered 239 is stored, every one deferred is not, and the numbers have no holes`, { timeout: 180_000 }, async (t) => {
  const mnt = smallDisk(t, "tidings-filling-", "16m");
  if (!mnt) return;
  let node;
  try {
    node = await startNode({ dataDir: join(mnt, "data") });
    // leave room for about 1,000 articles: the first part of the flood only
    const filler = join(mnt, "filler");
    const fd = openSync(filler, "w");
    try {
      for (;;) writeSync(fd, Buffer.alloc(64 * 1024, 0x61));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
    }
    closeSync(fd);
    spawnSync("truncate", ["-s", `-${bodyBytes * 1024}`, filler]);

    // several connections, so that batches are staged on batches still being written (storage/group-commit.ts)
    const n = 1500;
    const ids: string[][] = [];
    const replies = await Promise.all(
      [0, 1, 2].map(async (c) => {
        const { client } = await RawClient.connect(node!.port);
        assert.match(await client.cmd("MODE STREAM"), /^203 /);
        const mine: string[] = [];
        const parts: Buffer[] = [];
        for (let i = 0; i < n; i++) {
          const a = makeArticle({ subject: `filling ${c}.${i}`, body: "y".repeat(bodyBytes) + "\r\n" });
          mine.push(a.msgid);
          parts.push(Buffer.from(`TAKETHIS ${a.msgid}\r\n`), stuff(a.text));
        }
        ids[c] = mine;
        client.send(Buffer.concat(parts));
        const got: string[] = [];
        for (let i = 0; i < n; i++) got.push(await client.line(60_000));
        client.close();
        return got;
      }),
    );
    const all = replies.flat();
    const taken = all.filter((r) => r.startsWith("239 ")).length;
    const deferred = all.filter((r) => /^(431|436|400) /.test(r)).length;
    t.diagnostic(`${taken} taken, ${deferred} deferred`);
    assert.ok(taken > 100 && deferred > 100, `the disk should fill part way through (taken ${taken}, deferred ${deferred})`);
    assert.equal(taken + deferred, all.length, all.find((r) => !/^(239|431|436|400) /.test(r)));

    rmSync(filler);
    const { client: reader } = await RawClient.connect(node.port);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < n; i++) {
        const want = replies[c][i].startsWith("239 ") ? /^223 / : /^430 /;
        assert.match(await reader.cmd(`STAT ${ids[c][i]}`), want, `${ids[c][i]} answered ${replies[c][i]}`);
      }
    }
    // the group's numbers go 1..count without a hole (numbers staged by a failed batch are given again)
    const g = await reader.cmd("GROUP local.test");
    const [, count, low, high] = g.split(" ").map(Number);
    assert.equal(count, taken, g);
    assert.equal(low, 1, g);
    assert.equal(high, taken, g);
    // and the node goes on taking articles
    assert.match(await reader.cmd("STAT 1"), /^223 /);
    reader.close();
    const msgid = await post(node.port, "after the disk had room again");
    assert.match(await stat(node.port, msgid), /^223 /);
    if (bodyBytes === 6000) {
      // each article taken reads back whole from its spool file
      const { client: again } = await RawClient.connect(node.port);
      for (let c = 0; c < 3; c++) {
        for (let i = 0; i < n; i++) {
          if (!replies[c][i].startsWith("239 ")) continue;
          assert.match(await again.cmd(`BODY ${ids[c][i]}`), /^222 /);
          assert.equal((await again.rawBlock()).toString("latin1"), "y".repeat(bodyBytes) + "\r\n", `${ids[c][i]} reads back whole`);
        }
      }
      again.close();
      assert.ok(readdirSync(join(mnt, "data", "spool")).length > 0, "the articles went to the spool");
    }
  } finally {
    await node?.kill();
    spawnSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});
}
