// The commit thread's many-row INSERT as one JSON parameter (storage/stepwise.ts):
// each value must come back exactly as a bound value would have been stored.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Db } from "../../storage/sqlite.js";
import { StepRunner, toWire, type WireStep } from "../../storage/stepwise.js";
import { CommitThread } from "../../storage/commit-thread.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

async function table(): Promise<Db> {
  const db = await Db.open(":memory:");
  await db.exec("CREATE TABLE t (n INTEGER, s TEXT, b BLOB, r REAL, x, z BLOB)");
  return db;
}

const head = "INSERT INTO t (n, s, b, r, x, z) VALUES";
// a header as the writer keeps it: one char per octet (8-bit bytes as they came), quotes, controls, CRLF
const latin1 = Buffer.from([0x53, 0xe9, 0xff, 0x22, 0x5c, 0x01, 0x0d, 0x0a]).toString("latin1");
const rows = (): unknown[][] => [
  [1, latin1, Buffer.from([0, 1, 2, 0xff]), 1.5, null, Buffer.alloc(0)],
  [2 ** 41, "", null, 2, "text", Buffer.from("zz")],
  // bytes that crossed to the commit thread by structured clone are a Uint8Array, not a Buffer
  [-7, "ü", new Uint8Array([9, 8]), -0.25, 3, new Uint8Array(0)],
];

const dump = (db: Db) =>
  db.all<Record<string, unknown>>(
    "SELECT n, typeof(n) tn, s, hex(s) hs, hex(b) hb, typeof(b) tb, r, typeof(r) tr, x, typeof(x) tx, hex(z) hz, typeof(z) tz FROM t ORDER BY rowid",
  );

test("an INSERT's rows as one JSON parameter store what binding each value stores: integers, text, bytes, reals, nulls", async () => {
  const bound = await table();
  // the values as the old path binds them, one statement a row
  for (const r of rows()) await bound.run(`${head} (?, ?, ?, ?, ?, ?)`, r.map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v) : v)));
  const viaJson = await table();
  const steps: WireStep[] = [{ kind: "insert", head, cols: 6, rows: rows(), tail: "" }];
  await new StepRunner(viaJson).run(steps);
  const want = await dump(bound);
  const got = await dump(viaJson);
  assert.equal(got.length, 3);
  assert.deepEqual(got, want);
  assert.equal(got[0].hs, Buffer.from(latin1, "utf8").toString("hex").toUpperCase(), "text stored as UTF-8, as bound");
  assert.equal(got[1].tn, "integer", "an integer beyond 32 bits stays an integer");
  assert.equal(got[0].tz, "blob", "an empty blob stays a blob, not NULL");
  assert.equal(got[2].hb, "0908");
  await bound.close();
  await viaJson.close();
});

test("bytes that all crossed as Uint8Array, and a batch whose every blob is empty, are stored as blobs", async () => {
  const db = await table();
  const runner = new StepRunner(db);
  await runner.run([{ kind: "insert", head, cols: 6, rows: [[1, "a", new Uint8Array([7]), 0, null, new Uint8Array([1, 2])]], tail: "" }]);
  await runner.run([{ kind: "insert", head, cols: 6, rows: [[2, "b", Buffer.alloc(0), 0, null, new Uint8Array(0)]], tail: "" }]);
  const got = await db.all<{ hb: string; tb: string; hz: string; tz: string }>("SELECT hex(b) hb, typeof(b) tb, hex(z) hz, typeof(z) tz FROM t ORDER BY rowid");
  assert.deepEqual(got, [
    { hb: "07", tb: "blob", hz: "0102", tz: "blob" },
    { hb: "", tb: "blob", hz: "", tz: "blob" },
  ]);
  await db.close();
});

test("INSERT OR IGNORE through JSON ignores the duplicate rows, and the statement is atomic with the rest of the transaction", async () => {
  const db = await Db.open(":memory:");
  await db.exec("CREATE TABLE h (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID");
  const runner = new StepRunner(db);
  await runner.run([{ kind: "insert", head: "INSERT OR IGNORE INTO h (k, v) VALUES", cols: 2, rows: [["a", 1], ["b", 2], ["a", 3]], tail: "" }]);
  assert.deepEqual(await db.all("SELECT k, v FROM h ORDER BY k"), [{ k: "a", v: 1 }, { k: "b", v: 2 }]);
  // a NOT NULL violation later in the transaction takes the JSON insert back with it
  await assert.rejects(
    runner.run([
      { kind: "insert", head: "INSERT INTO h (k, v) VALUES", cols: 2, rows: [["c", 4]], tail: "" },
      { kind: "insert", head: "INSERT INTO h (k, v) VALUES", cols: 2, rows: [["d", null]], tail: "" },
    ]),
    /NOT NULL/,
  );
  assert.deepEqual(await db.all("SELECT k FROM h ORDER BY k"), [{ k: "a" }, { k: "b" }]);
  await db.close();
});

test("a list step (DELETE ... IN) as one JSON parameter matches integers and text, with the fixed values first", async () => {
  const db = await Db.open(":memory:");
  await db.exec("CREATE TABLE b (peer INTEGER, article INTEGER, PRIMARY KEY (peer, article)) WITHOUT ROWID; CREATE TABLE c (k TEXT PRIMARY KEY) WITHOUT ROWID");
  await db.exec("INSERT INTO b VALUES (1, 1), (1, 2), (1, 3), (2, 2); INSERT INTO c VALUES ('<a@x>'), ('<b@x>'), ('<ü@x>')");
  const runner = new StepRunner(db);
  await runner.run([
    { kind: "in", head: "DELETE FROM b WHERE peer = ? AND article IN", fixed: [1], list: [2, 3, 99] },
    { kind: "in", head: "DELETE FROM c WHERE k IN", fixed: [], list: ["<a@x>", "<ü@x>", "<zz@x>"] },
  ]);
  assert.deepEqual(await db.all("SELECT peer, article FROM b ORDER BY peer, article"), [{ peer: 1, article: 1 }, { peer: 2, article: 2 }]);
  assert.deepEqual(await db.all("SELECT k FROM c"), [{ k: "<b@x>" }]);
  await db.close();
});

test("a batch's bytes move to the commit thread rather than being copied again, and arrive whole; a pooled small buffer is copied", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tidings-stepwise-"));
  const file = join(dir, "t.db");
  const setup = await Db.open(file);
  await setup.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER, b BLOB)");
  await setup.close();
  const thread = await CommitThread.start(file, "normal", dir);
  try {
    const big = toWire({ kind: "insert", head: "INSERT INTO t (n, b) VALUES", cols: 2, rows: [[1, Buffer.alloc(20_000, 7)], [2, Buffer.alloc(30_000, 9)]], tail: "" });
    assert.ok(big.kind === "run" && big.owned, "a buffer of its own is marked to move");
    const small = toWire({ kind: "insert", head: "INSERT INTO t (n, b) VALUES", cols: 2, rows: [[3, Buffer.from("abc")]], tail: "" });
    assert.ok(small.kind === "run" && !small.owned, "a buffer in Node's shared pool is not");
    await thread.run([big, small]);
    assert.equal(big.owned!.byteLength, 0, "moved: the main thread's copy is detached");
    const db = await Db.open(file);
    assert.deepEqual(
      await db.all("SELECT n, length(b) AS len, hex(substr(b, 1, 1)) AS first, hex(substr(b, -1)) AS last FROM t ORDER BY n"),
      [
        { n: 1, len: 20_000, first: "07", last: "07" },
        { n: 2, len: 30_000, first: "09", last: "09" },
        { n: 3, len: 3, first: "61", last: "63" },
      ],
    );
    await db.close();
  } finally {
    await thread.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
