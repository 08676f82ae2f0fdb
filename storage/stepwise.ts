// Runs one transaction's statements on a connection, each awaited before the
// next, BEGIN IMMEDIATE to COMMIT. Used on the commit thread (commit-thread.ts)
// and, when there is none, on the main thread's writer connection.
import type { Db, Stmt } from "./sqlite.js";
import { StmtCache, chunkSizes } from "./sqlite.js";
import type { SpoolWrite, SpoolWriter } from "./spool.js";

/** A step as it crosses to the commit thread: plain data, no callbacks. */
export type WireStep =
  | { kind: "insert"; head: string; cols: number; rows: unknown[][]; tail: string }
  | { kind: "in"; head: string; fixed: unknown[]; list: unknown[] }
  /**
   * `counted`: the caller wants the number of rows it changed. `owned`: the
   * memory of a buffer in `params` that was made for this step alone, which
   * may be moved to the commit thread instead of copied (commit-thread.ts).
   */
  | { kind: "run"; sql: string; params: unknown[]; counted: boolean; owned?: ArrayBuffer };

/** Runs transactions of steps; resolves with the changes of each counted step, in order. */
export interface TxRunner {
  /** `spool`: bytes the rows point at (storage/spool.ts), on disk before the COMMIT. */
  run(steps: WireStep[], spool?: SpoolWrite[]): Promise<number[]>;
  /** After a failure, transactions sent before this call fail too; those sent after it run again. */
  reset?(): void;
}

export class StepRunner implements TxRunner {
  #stmts = new Map<string, StmtCache>();
  constructor(
    private readonly db: Db,
    private readonly spool?: SpoolWriter,
  ) {}

  #cache(key: string, build: (n: number) => string): StmtCache {
    let c = this.#stmts.get(key);
    if (!c) this.#stmts.set(key, (c = new StmtCache(this.db, build)));
    return c;
  }

  async run(steps: WireStep[], spool: SpoolWrite[] = []): Promise<number[]> {
    // every statement is prepared before the transaction is queued
    const plan: { st: Stmt; params: unknown[]; counted: boolean }[] = [];
    for (const s of steps.map(toWire)) {
      if (s.kind === "insert") {
        const cache = this.#cache(s.head + s.tail, (n) => `${s.head} ${Array(n).fill(`(${"?,".repeat(s.cols - 1)}?)`).join(",")}${s.tail}`);
        let i = 0;
        for (const n of chunkSizes(s.rows.length)) {
          const params: unknown[] = [];
          for (const row of s.rows.slice(i, (i += n))) for (const v of row) params.push(v);
          plan.push({ st: await cache.ready(n), params, counted: false });
        }
      } else {
        plan.push({ st: await this.#cache(s.sql, () => s.sql).ready(1), params: s.params, counted: s.counted });
      }
    }
    // Each statement is awaited before the next is sent. Queuing them all at
    // once (node-sqlite3's serialized mode) was measured to let a reader see
    // half a transaction now and then: test/integration/storage-atomic.test.ts.
    const changes: number[] = [];
    if (spool.length > 0 && !this.spool) throw new Error("spooled bytes with no spool to write them");
    await this.db.exec("BEGIN IMMEDIATE");
    // the spool is written (and synced) while the statements run; the COMMIT waits for it
    const spooled = spool.length > 0 ? this.spool!.write(spool) : undefined;
    spooled?.catch(() => {}); // awaited below; a failure meanwhile must not go unhandled
    try {
      for (const p of plan) {
        const n = await p.st.run(p.params);
        if (p.counted) changes.push(n);
      }
      await spooled;
      await this.db.exec("COMMIT");
    } catch (err) {
      await this.db.exec("ROLLBACK").catch(() => {});
      await spooled?.catch(() => {});
      throw err;
    }
    return changes;
  }
}

/**
 * A step as one statement with its values in one JSON parameter where it can
 * be: a many-row INSERT (jsonInsert), a list (`IN`). The group commit calls
 * this on the main thread, which has time to spare, before the steps cross
 * to the commit thread, whose work is the serial part of every commit; one
 * string and one buffer also cross more cheaply than a thousand small arrays.
 * Other steps are returned as they are.
 */
export function toWire(s: WireStep): Exclude<WireStep, { kind: "in" }> {
  if (s.kind === "insert" && asJson.test(s.head) && s.tail === "") {
    const { sql, json, bytes } = jsonInsert(s.head, s.cols, s.rows);
    if (!bytes) return { kind: "run", sql, params: [json], counted: false };
    // Buffer.concat's copy is this step's alone, unless small enough to sit in Node's shared pool
    const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : undefined;
    return { kind: "run", sql, params: [json, bytes], counted: false, owned };
  }
  if (s.kind === "in") return { kind: "run", sql: `${s.head} (SELECT value FROM json_each(?))`, params: [...s.fixed, JSON.stringify(s.list)], counted: false };
  return s;
}

/** An INSERT ... VALUES head: its rows can go as one JSON text (jsonInsert). */
const asJson = /^INSERT\b[^;]*\bVALUES$/;

/**
 * An INSERT of many rows as one statement with one or two parameters: the
 * rows as a JSON array of arrays, read by jsonb_each, and every BLOB value
 * in one buffer, cut out by offset. node-sqlite3 binds each parameter on the
 * calling thread, checking each number against RegExp and Date first; with 14
 * parameters an article that was two thirds of the commit thread's time.
 * Measured on 60,000 1 KB article rows: 9.2 µs a row bound as VALUES, 6.7 µs
 * as JSON (json text through json_each: 9.3 µs; jsonb_each reads the parsed
 * form without parsing each row again). Numbers come back as INTEGER or
 * REAL, text as TEXT, null as NULL, as bound values would.
 */
export function jsonInsert(head: string, cols: number, rows: unknown[][]): { sql: string; json: string; bytes?: Buffer } {
  // bytes that crossed to the commit thread arrive as Uint8Array (structured clone), not Buffer;
  // a column may hold bytes in some rows and NULL in others
  const isBlob: boolean[] = [];
  for (const r of rows) for (let c = 0; c < cols; c++) if (r[c] instanceof Uint8Array) isBlob[c] = true;
  const blobCols: number[] = [];
  for (let c = 0; c < cols; c++) if (isBlob[c]) blobCols.push(c);
  let json: string;
  let bytes: Buffer | undefined;
  if (blobCols.length === 0) json = JSON.stringify(rows);
  else {
    // each BLOB is replaced by null and its 1-based offset and length appended to the row
    const parts: Uint8Array[] = [];
    let at = 1;
    json = JSON.stringify(
      rows.map((r) => {
        const row = r.slice(0, cols);
        for (const c of blobCols) {
          const b = r[c];
          row[c] = null;
          if (b instanceof Uint8Array) {
            row.push(at, b.length);
            parts.push(b);
            at += b.length;
          } else row.push(null, null);
        }
        return row;
      }),
    );
    bytes = Buffer.concat(parts);
  }
  const exprs = Array.from({ length: cols }, (_, c) => {
    const k = blobCols.indexOf(c);
    if (k < 0) return `value->>${c}`;
    // substr() of a BLOB is a BLOB; an empty one stays X'' (a zero-length ?2 may be bound as NULL), a null stays NULL
    const [at, len] = [`value->>${cols + 2 * k}`, `value->>${cols + 2 * k + 1}`];
    return `CASE WHEN ${len} = 0 THEN X'' ELSE substr(?2, ${at}, ${len}) END`;
  });
  return { sql: `${head.replace(/\s*VALUES$/, "")} SELECT ${exprs.join(", ")} FROM jsonb_each(?1)`, json, bytes };
}
