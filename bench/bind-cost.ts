// What node-sqlite3's binding costs: 60,000 article-like rows (14 columns,
// 1,100-byte blob) in batches of 300, inserted as multi-row VALUES with every
// value bound, and as one JSON parameter read by json_each and by jsonb_each
// with the blobs in one buffer cut by substr (storage/stepwise.ts, jsonInsert).
// Prints rows/s and the process's CPU per row. A measuring tool with a
// scratch database of its own, like wal-cost.ts.
//   node dist/bench/bind-cost.js [values|json_each|jsonb_each ...]
import sqlite3 from "sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const N = 60_000;
const B = 300;
const COLS = 14;
const modes = process.argv.length > 2 ? process.argv.slice(2) : ["values", "json_each", "jsonb_each"];
const body = Buffer.alloc(1100, 0x61);

function rowsFor(k: number): unknown[][] {
  return Array.from({ length: B }, (_, i) => {
    const id = k * B + i + 1;
    return [id, `<m${id}@example.org>`, Date.now(), `subject number ${id}`, "Some One <some@example.org>", "Thu, 26 Nov 2026 04:00:00 +0000", "", 1100, 20, `bench local.test:${id}`, 400, "feeder.example", body, 0];
  });
}

async function measure(mode: string): Promise<void> {
  const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), "tidings-bind-"));
  const db = new sqlite3.Database(join(dir, "b.db"));
  const exec = (sql: string) => new Promise<void>((res, rej) => db.exec(sql, (e) => (e ? rej(e) : res())));
  const prepare = (sql: string) => new Promise<sqlite3.Statement>((res, rej) => { const s = db.prepare(sql, (e) => (e ? rej(e) : res(s))); });
  const run = (st: sqlite3.Statement, p: unknown[]) => new Promise<void>((res, rej) => st.run(p, (e: Error | null) => (e ? rej(e) : res())));
  await exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
    CREATE TABLE articles (id INTEGER PRIMARY KEY, msgid TEXT, arrived INTEGER, subject TEXT, author TEXT, date TEXT, refs TEXT,
      bytes INTEGER, lines INTEGER, xref TEXT, header_len INTEGER, source TEXT, data BLOB, transit_only INTEGER)`);
  const st =
    mode === "values"
      ? await prepare(`INSERT INTO articles VALUES ${Array(100).fill(`(${"?,".repeat(COLS - 1)}?)`).join(",")}`)
      : await prepare(`INSERT INTO articles SELECT ${Array.from({ length: COLS }, (_, c) => (c === 12 ? "substr(?2, value->>12, value->>13)" : c === 13 ? "0" : `value->>${c}`)).join(", ")} FROM ${mode}(?1)`);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let k = 0; k < N / B; k++) {
    const rows = rowsFor(k);
    await exec("BEGIN");
    if (mode === "values") {
      for (let j = 0; j < B; j += 100) await run(st, rows.slice(j, j + 100).flat());
    } else {
      const parts: Buffer[] = [];
      let at = 1;
      const json = JSON.stringify(rows.map((r) => { const b = r[12] as Buffer; const x = r.slice(); x[12] = at; x[13] = b.length; at += b.length; parts.push(b); return x; }));
      await run(st, [json, Buffer.concat(parts)]);
    }
    await exec("COMMIT");
  }
  const c = process.cpuUsage(c0);
  const s = (performance.now() - t0) / 1000;
  console.log(`${mode}: ${Math.round(N / s).toLocaleString("en-US")} rows/s, ${((c.user + c.system) / N).toFixed(1)} µs of CPU a row`);
  await new Promise<void>((res) => db.close(() => res()));
  rmSync(dir, { recursive: true, force: true });
}

for (const m of modes) await measure(m);
