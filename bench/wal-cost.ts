// WAL bytes per article, table by table, in the shape of tidings' schema
// (storage/schema.ts: history keyed by Message-ID, articles by id with an
// index on arrival, group numbers): 120,000 rows first, then 10 batches of
// 300 with automatic checkpoints off, and the WAL's frames counted. Shows
// which table's pages each commit rewrites. A measuring tool, not the node:
// it talks to SQLite directly in a scratch folder.
//   node dist/bench/wal-cost.js
import sqlite3 from "sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";

const dir = mkdtempSync("/var/tmp/tidings-walcost-");
const db = new sqlite3.Database(join(dir, "t.sqlite"));
const all = <T>(sql: string, p: unknown[] = []) => new Promise<T[]>((res, rej) => db.all(sql, p, (e, r) => (e ? rej(e) : res(r as T[]))));
const exec = (sql: string) => new Promise<void>((res, rej) => db.exec(sql, (e) => (e ? rej(e) : res())));

await exec(`PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = FULL;
  CREATE TABLE history (msgid TEXT PRIMARY KEY, status INTEGER, at INTEGER, article INTEGER) WITHOUT ROWID;
  CREATE TABLE articles (id INTEGER PRIMARY KEY, msgid TEXT, arrived INTEGER, subject TEXT, data BLOB);
  CREATE INDEX articles_arrived ON articles(arrived);
  CREATE TABLE group_articles (group_id INTEGER, number INTEGER, article INTEGER, PRIMARY KEY (group_id, number)) WITHOUT ROWID;`);
let id = 0;
const body = Buffer.alloc(1100, 0x61);
const msgid = () => `<${Math.random().toString(36).slice(2)}.${Math.random().toString(36).slice(2)}@bench.example>`;

async function batch(n: number, tables: string): Promise<void> {
  await exec("BEGIN");
  for (let i = 0; i < n; i++) {
    id++;
    const m = msgid();
    if (tables.includes("h")) await all("INSERT INTO history VALUES (?, ?, ?, ?)", [m, 1, Date.now(), id]);
    if (tables.includes("a")) await all("INSERT INTO articles VALUES (?, ?, ?, ?, ?)", [id, m, Date.now(), `subject ${id}`, body]);
    if (tables.includes("g")) await all("INSERT INTO group_articles VALUES (?, ?, ?)", [1, id, id]);
  }
  await exec("COMMIT");
}

try {
  for (let i = 0; i < 400; i++) await batch(300, "hag");
  const names: Record<string, string> = { h: "history only", a: "articles only", g: "group_articles only", hag: "all three" };
  for (const t of ["h", "a", "g", "hag"]) {
    await all("PRAGMA wal_checkpoint(TRUNCATE)");
    for (let i = 0; i < 10; i++) await batch(300, t);
    const [r] = await all<{ log: number }>("PRAGMA wal_checkpoint(PASSIVE)");
    console.log(`${names[t]}: ${r.log} WAL frames for 3,000 articles = ${Math.round((r.log * 4096) / 3000)} bytes of WAL per article`);
  }
} finally {
  await new Promise((r) => db.close(r));
  rmSync(dir, { recursive: true, force: true });
}
