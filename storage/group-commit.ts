// The group commit engine: one queue, one transaction at a time on the writer
// connection, every caller's promise resolved only after COMMIT. What rows an
// item writes is not its business: each kind of item has a Contributor
// (news articles and their backlog rows, the mail queue) that stages rows into
// the transaction. So a 239 for an article and a 250 for a mail mean the same
// thing: committed, and synced when storage.synchronous = full.
import type { Db } from "./sqlite.js";
import { StmtCache, chunkSizes, type Stmt } from "./sqlite.js";

export class WriterBusy extends Error {}

/** Rows and statements of one transaction, staged by the contributors. */
export class Tx {
  readonly steps: Step[] = [];
  /** Items that make the transaction heavy (articles, messages): one or none may take the one-call path. */
  weight = 0;
  #afterCommit: (() => void)[] = [];

  /**
   * A multi-row statement: `head` is "INSERT ... (cols) VALUES" (or any text
   * that a list of rows completes, such as "DELETE ... WHERE (a, b) IN (VALUES"
   * with `tail` ")"); rows all have `cols` values.
   */
  insert(head: string, cols: number, rows: unknown[][], tail = ""): void {
    if (rows.length > 0) this.steps.push({ kind: "insert", head, cols, rows, tail });
  }

  /** `head` ends with "IN"; `fixed` fills its other ? marks; the list is split into chunks. */
  inList(head: string, fixed: unknown[], list: unknown[]): void {
    if (list.length > 0) this.steps.push({ kind: "in", head, fixed, list });
  }

  /** One statement; `changes`, when given, is told how many rows it changed (forces the stepwise path). */
  run(sql: string, params: unknown[], changes?: (n: number) => void): void {
    this.steps.push({ kind: "run", sql, params, changes });
  }

  /** Called after COMMIT, in staging order, before any caller is resolved. */
  afterCommit(f: () => void): void {
    this.#afterCommit.push(f);
  }

  committed(): void {
    for (const f of this.#afterCommit) f();
  }
}

type Step =
  | { kind: "insert"; head: string; cols: number; rows: unknown[][]; tail: string }
  | { kind: "in"; head: string; fixed: unknown[]; list: unknown[] }
  | { kind: "run"; sql: string; params: unknown[]; changes?: (n: number) => void };

/** One kind of item the writer commits. */
export interface Contributor<I, R> {
  /** Work before BEGIN on the writer connection (reads that decide what to stage). */
  prepare?(items: I[]): Promise<void>;
  /** Stages the items' rows into `tx`; returns one result per item, in order. */
  stage(items: I[], tx: Tx): R[];
}

interface Pending {
  contributor: Contributor<unknown, unknown>;
  item: unknown;
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
  size: number;
}

export interface EngineOptions {
  /** Most items in one transaction. */
  maxBatch: number;
  /** Items waiting beyond which new counted ones are refused (WriterBusy). */
  maxQueue: number;
  /** Bytes waiting or being written beyond which new counted ones are refused. */
  maxQueueBytes: number;
}

export class GroupCommit {
  #queue: Pending[] = [];
  #queuedBytes = 0;
  #running = false;
  #closed = false;
  #idle: (() => void)[] = [];
  #stmts = new Map<string, StmtCache>();
  readonly stats = { batches: 0, items: 0, largestBatch: 0, commitMs: 0 };
  /** Told each transaction's time and size after its COMMIT (the /metrics histogram): once per batch, never per item; must not throw. */
  onCommit?: (ms: number, items: number) => void;

  constructor(private readonly db: Db, private readonly opts: EngineOptions) {}

  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Queues an item. `bytes` counts against maxQueueBytes; `always` items
   * (bookkeeping such as answered backlog rows) are taken even when full or
   * closing, since dropping them would redo work rather than save it.
   */
  submit<I, R>(contributor: Contributor<I, R>, item: I, bytes = 0, always = false): Promise<R> {
    if (this.#closed && !always) return Promise.reject(new WriterBusy("storage is closing"));
    if (!always && this.#queue.length >= this.opts.maxQueue) return Promise.reject(new WriterBusy("storage queue full"));
    // memory is bounded in bytes too (many large items); one item always fits an empty queue
    if (!always && this.#queuedBytes > 0 && this.#queuedBytes + bytes > this.opts.maxQueueBytes) {
      return Promise.reject(new WriterBusy("storage queue full (bytes)"));
    }
    this.#queuedBytes += bytes;
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ contributor: contributor as Contributor<unknown, unknown>, item, resolve: resolve as (r: unknown) => void, reject, size: bytes });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#loop());
      }
    });
  }

  async #loop(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.opts.maxBatch);
      try {
        const t0 = performance.now();
        const results = await this.#commit(batch);
        const ms = performance.now() - t0;
        this.stats.commitMs += ms;
        this.onCommit?.(ms, batch.length);
        batch.forEach((p, i) => p.resolve(results[i]));
      } catch (err) {
        for (const p of batch) p.reject(err);
      } finally {
        for (const p of batch) this.#queuedBytes -= p.size;
      }
    }
    this.#running = false;
    for (const f of this.#idle.splice(0)) f();
  }

  /** Resolves when everything queued so far has been committed or failed. */
  drain(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.drain();
  }

  async #commit(batch: Pending[]): Promise<unknown[]> {
    // items grouped by contributor, in order of first appearance
    const groups = new Map<Contributor<unknown, unknown>, number[]>();
    batch.forEach((p, i) => {
      const g = groups.get(p.contributor);
      if (g) g.push(i);
      else groups.set(p.contributor, [i]);
    });
    for (const [c, idx] of groups) await c.prepare?.(idx.map((i) => batch[i].item));
    const tx = new Tx();
    const results: unknown[] = new Array(batch.length);
    for (const [c, idx] of groups) {
      const r = c.stage(idx.map((i) => batch[i].item), tx);
      idx.forEach((i, k) => (results[i] = r[k]));
    }
    if (tx.steps.length > 0) {
      const oneCall = tx.weight <= LITERAL_MAX_WEIGHT && tx.steps.every((s) => (s.kind === "run" ? !s.changes : s.kind !== "in" || s.list.length <= 500));
      if (oneCall) await this.#inOneCall(tx);
      else await this.#stepwise(tx);
    }
    tx.committed();
    this.stats.batches++;
    this.stats.items += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    return results;
  }

  /**
   * The idle path: the whole transaction goes to SQLite in one call, values
   * written into the SQL (numbers checked, text and bytes as hex literals, so
   * nothing needs escaping). One trip through the thread pool instead of
   * seven took a commit from 0.9 to 0.5 ms here, and the commit is most of a
   * hop's time (bench/propagation.ts). One call is also atomic by
   * construction: nothing else can run on the connection in between.
   */
  async #inOneCall(tx: Tx): Promise<void> {
    const sql = ["BEGIN IMMEDIATE;"];
    for (const s of tx.steps) {
      if (s.kind === "insert") sql.push(`${s.head} ${s.rows.map((r) => `(${r.map(literal).join(",")})`).join(",")}${s.tail};`);
      else if (s.kind === "in") sql.push(`${fill(s.head, s.fixed)} (${s.list.map(literal).join(",")});`);
      else sql.push(`${fill(s.sql, s.params)};`);
    }
    sql.push("COMMIT;");
    try {
      await this.db.exec(sql.join("\n"));
    } catch (err) {
      // exec stops at the failing statement with the transaction still open
      await this.db.exec("ROLLBACK").catch(() => {});
      throw err;
    }
  }

  #cache(key: string, build: (n: number) => string): StmtCache {
    let c = this.#stmts.get(key);
    if (!c) this.#stmts.set(key, (c = new StmtCache(this.db, build)));
    return c;
  }

  async #stepwise(tx: Tx): Promise<void> {
    // every statement is prepared before the transaction is queued
    const plan: { st: Stmt; params: unknown[]; changes?: (n: number) => void }[] = [];
    for (const s of tx.steps) {
      if (s.kind === "insert") {
        const cache = this.#cache(s.head + s.tail, (n) => `${s.head} ${Array(n).fill(`(${"?,".repeat(s.cols - 1)}?)`).join(",")}${s.tail}`);
        let i = 0;
        for (const n of chunkSizes(s.rows.length)) plan.push({ st: await cache.ready(n), params: s.rows.slice(i, (i += n)).flat() });
      } else if (s.kind === "in") {
        const cache = this.#cache(s.head, (n) => `${s.head} (${"?,".repeat(n - 1)}?)`);
        let i = 0;
        for (const n of chunkSizes(s.list.length)) plan.push({ st: await cache.ready(n), params: [...s.fixed, ...s.list.slice(i, (i += n))] });
      } else {
        plan.push({ st: await this.#cache(s.sql, () => s.sql).ready(1), params: s.params, changes: s.changes });
      }
    }
    // Each statement is awaited before the next is sent. Queuing them all at
    // once (node-sqlite3's serialized mode) was measured to let a reader see
    // half a transaction now and then: test/integration/storage-atomic.test.ts.
    await this.db.exec("BEGIN IMMEDIATE");
    try {
      for (const p of plan) {
        const n = await p.st.run(p.params);
        p.changes?.(n);
      }
      await this.db.exec("COMMIT");
    } catch (err) {
      await this.db.exec("ROLLBACK").catch(() => {});
      throw err;
    }
  }
}

/**
 * Transactions of at most this weight (articles, messages) are written in one
 * call. One is the idle case, where latency counts; in a flood, batches of 2
 * to 8 articles written this way cost about 10% of the ingest rate (hex and a
 * fresh compile per statement), so they take the prepared path.
 */
const LITERAL_MAX_WEIGHT = 1;

function fill(sql: string, params: unknown[]): string {
  let i = 0;
  return sql.replace(/\?/g, () => literal(params[i++]));
}

/** A value as an SQL literal: integers as they are, text and bytes in hex, so no input can change the statement. */
function literal(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new Error(`not an integer: ${v}`);
    return String(v);
  }
  if (typeof v === "string") return `CAST(X'${Buffer.from(v, "utf8").toString("hex")}' AS TEXT)`;
  if (Buffer.isBuffer(v)) return `X'${v.toString("hex")}'`;
  throw new Error(`no literal for ${typeof v}`);
}
