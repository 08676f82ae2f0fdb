// Runs one transaction's statements on a connection, each awaited before the
// next, BEGIN IMMEDIATE to COMMIT. Used on the commit thread (commit-thread.ts)
// and, when there is none, on the main thread's writer connection.
import type { Db, Stmt } from "./sqlite.js";
import { StmtCache, chunkSizes } from "./sqlite.js";

/** A step as it crosses to the commit thread: plain data, no callbacks. */
export type WireStep =
  | { kind: "insert"; head: string; cols: number; rows: unknown[][]; tail: string }
  | { kind: "in"; head: string; fixed: unknown[]; list: unknown[] }
  /** `counted`: the caller wants the number of rows it changed. */
  | { kind: "run"; sql: string; params: unknown[]; counted: boolean };

/** Runs transactions of steps; resolves with the changes of each counted step, in order. */
export interface TxRunner {
  run(steps: WireStep[]): Promise<number[]>;
  /** After a failure, transactions sent before this call fail too; those sent after it run again. */
  reset?(): void;
}

export class StepRunner implements TxRunner {
  #stmts = new Map<string, StmtCache>();
  constructor(private readonly db: Db) {}

  #cache(key: string, build: (n: number) => string): StmtCache {
    let c = this.#stmts.get(key);
    if (!c) this.#stmts.set(key, (c = new StmtCache(this.db, build)));
    return c;
  }

  async run(steps: WireStep[]): Promise<number[]> {
    // every statement is prepared before the transaction is queued
    const plan: { st: Stmt; params: unknown[]; counted: boolean }[] = [];
    for (const s of steps) {
      if (s.kind === "insert") {
        const cache = this.#cache(s.head + s.tail, (n) => `${s.head} ${Array(n).fill(`(${"?,".repeat(s.cols - 1)}?)`).join(",")}${s.tail}`);
        let i = 0;
        for (const n of chunkSizes(s.rows.length)) {
          const params: unknown[] = [];
          for (const row of s.rows.slice(i, (i += n))) for (const v of row) params.push(v);
          plan.push({ st: await cache.ready(n), params, counted: false });
        }
      } else if (s.kind === "in") {
        const cache = this.#cache(s.head, (n) => `${s.head} (${"?,".repeat(n - 1)}?)`);
        let i = 0;
        for (const n of chunkSizes(s.list.length)) plan.push({ st: await cache.ready(n), params: [...s.fixed, ...s.list.slice(i, (i += n))], counted: false });
      } else {
        plan.push({ st: await this.#cache(s.sql, () => s.sql).ready(1), params: s.params, counted: s.counted });
      }
    }
    // Each statement is awaited before the next is sent. Queuing them all at
    // once (node-sqlite3's serialized mode) was measured to let a reader see
    // half a transaction now and then: test/integration/storage-atomic.test.ts.
    const changes: number[] = [];
    await this.db.exec("BEGIN IMMEDIATE");
    try {
      for (const p of plan) {
        const n = await p.st.run(p.params);
        if (p.counted) changes.push(n);
      }
      await this.db.exec("COMMIT");
    } catch (err) {
      await this.db.exec("ROLLBACK").catch(() => {});
      throw err;
    }
    return changes;
  }
}
