// The group commit engine: one queue, one transaction at a time on the writer
// connection, every caller's promise resolved only after COMMIT. What rows an
// item writes is not its business: each kind of item has a Contributor
// (news articles and their backlog rows, the mail queue) that stages rows into
// the transaction. So a 239 for an article and a 250 for a mail mean the same
// thing: committed, and synced when storage.synchronous = full.
import type { Db } from "./sqlite.js";
import { StepRunner, toWire, type TxRunner, type WireStep } from "./stepwise.js";
import { coalesce, type SpoolWrite, type SpoolWriter } from "./spool.js";

export class WriterBusy extends Error {}

/** Rows and statements of one transaction, staged by the contributors. */
export class Tx {
  readonly steps: Step[] = [];
  /** Bytes for the spool (storage/spool.ts), written and synced before this transaction's COMMIT. */
  readonly spooled: SpoolWrite[] = [];
  /** Items that make the transaction heavy (articles, messages): one or none may take the one-call path. */
  weight = 0;
  /** Articles among them: a transaction without any may take the one-call path with up to MAIL_LITERAL_MAX_WEIGHT messages. */
  articles = 0;
  #afterCommit: (() => void)[] = [];
  #onFail: (() => void)[] = [];
  #sentAlone: (() => void)[] = [];

  /**
   * A multi-row statement: `head` is "INSERT ... (cols) VALUES" (its rows go
   * as one JSON parameter, stepwise.ts, or as literals in the one-call path,
   * #inOneCall) or any text that a list of rows
   * completes, such as "DELETE ... WHERE (a, b) IN (VALUES" with `tail` ")";
   * rows all have `cols` values.
   */
  insert(head: string, cols: number, rows: unknown[][], tail = ""): void {
    if (rows.length > 0) this.steps.push({ kind: "insert", head, cols, rows, tail });
  }

  /** `head` ends with "IN"; `fixed` fills its other ? marks; the list goes as one JSON parameter (stepwise.ts), or as literals (#inOneCall). */
  inList(head: string, fixed: unknown[], list: unknown[]): void {
    if (list.length > 0) this.steps.push({ kind: "in", head, fixed, list });
  }

  /** One statement; `changes`, when given, is told how many rows it changed (forces the stepwise path). */
  run(sql: string, params: unknown[], changes?: (n: number) => void): void {
    this.steps.push({ kind: "run", sql, params, changes });
  }

  /** Bytes the rows of this transaction point at in the spool: on disk before the COMMIT. */
  spool(seg: number, at: number, bytes: Uint8Array): void {
    this.spooled.push({ seg, at, bytes });
  }

  /** Called after COMMIT, in staging order, before any caller is resolved. */
  afterCommit(f: () => void): void {
    this.#afterCommit.push(f);
  }

  /** Called if the transaction was rolled back or never ran: staged state must be forgotten. */
  onFail(f: () => void): void {
    this.#onFail.push(f);
  }

  /**
   * Called when the transaction is about to be handed to SQLite in one call
   * (the idle path: nothing else in flight, GroupCommit.#oneCall), so before
   * its COMMIT; never for batches written stepwise. What needs nothing but this
   * batch's rows may start meanwhile: an idle feed's offer
   * (storage/writer.ts onStagedAlone). It must not throw.
   */
  onSentAlone(f: () => void): void {
    this.#sentAlone.push(f);
  }

  /** Runs the onSentAlone listeners; whether there were any. */
  sentAlone(): boolean {
    const fs = this.#sentAlone.splice(0);
    for (const f of fs) {
      try {
        f();
      } catch {
        // a listener's fault must not fail a transaction already on its way
      }
    }
    return fs.length > 0;
  }

  committed(): void {
    for (const f of this.#afterCommit) f();
  }

  failed(): void {
    for (const f of this.#onFail.splice(0)) f();
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
  /**
   * True if it can stage a batch while its previous batch is still being
   * written: its staging then builds on what it staged before (ids, group
   * numbers, Message-IDs being written), not only on what was committed, and
   * forgets that on Tx.onFail.
   */
  readonly pipelines?: boolean;
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
  #runner: TxRunner;
  #threaded = false;
  #spool: SpoolWriter | undefined;
  /** Batches sent and not yet settled, oldest first. */
  #inFlight: Promise<void>[] = [];
  /** A batch failed: batches staged on top of it fail too; staging waits for them, then starts again. */
  #poisoned = false;
  readonly stats = { batches: 0, items: 0, largestBatch: 0, commitMs: 0 };
  /** Told each transaction's time and size after its COMMIT (the /metrics histogram): once per batch, never per item; must not throw. */
  onCommit?: (ms: number, items: number) => void;

  constructor(private readonly db: Db, private readonly opts: EngineOptions) {
    this.#runner = new StepRunner(db);
  }

  /** Writes the spool's bytes of transactions run on this thread (the idle path, and batches before useThread). */
  useSpool(spool: SpoolWriter): void {
    this.#spool = spool;
    if (!this.#threaded) this.#runner = new StepRunner(this.db, spool);
  }

  /**
   * Batches run on `thread` from now on. The idle path (one article or
   * message, written in one call) stays on this connection: one hop to
   * SQLite instead of two more between threads, where latency is what counts.
   */
  useThread(thread: TxRunner): void {
    this.#runner = thread;
    this.#threaded = true;
  }

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

  /**
   * Takes batches off the queue and commits them in order. A batch whose
   * items all come from contributors that can stage ahead (`pipelines`) is
   * staged and sent to the commit thread while the batch before it is still
   * being written, so that the thread never waits for the main thread to see
   * one COMMIT before it is handed the next transaction; anything else waits
   * until nothing is in flight. A failed batch fails every batch staged on
   * top of it (the commit thread refuses them), and staging starts again
   * from what was committed.
   */
  async #loop(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.opts.maxBatch);
      const ahead = this.#threaded && batch.every((p) => p.contributor.pipelines);
      while (this.#inFlight.length > (ahead ? PIPELINE_DEPTH - 1 : 0)) await this.#inFlight[0]; // settles, never rejects
      if (this.#poisoned) {
        await Promise.allSettled(this.#inFlight);
        this.#runner.reset?.();
        this.#poisoned = false;
      }
      const t0 = performance.now();
      let committing: Promise<void>;
      let onMain = false;
      try {
        const { tx, results } = await this.#stage(batch);
        // nothing may be sent to the thread while this connection writes: the order of the COMMITs would be open
        onMain = this.#oneCall(tx);
        const before = this.#inFlight.at(-1);
        // a batch with nothing to write still settles after the batches it was staged on
        const nothing = () => before?.then(() => this.#failedBefore()) ?? Promise.resolve();
        // An article offered ahead goes out first: handing the transaction over wakes a
        // thread-pool thread, and done first it delayed the offer by up to 0.4 ms on this
        // VM (bench/RESULTS-2026-11-26d.md); the write waits one turn of the event loop.
        const offered = onMain && tx.steps.length > 0 && tx.sentAlone();
        const write = () => (tx.steps.length === 0 ? nothing() : onMain ? this.#inOneCall(tx) : this.#stepwise(tx));
        committing = (offered ? new Promise<void>((r) => setImmediate(r)).then(write) : write()).then(
          () => {
            tx.committed();
            this.stats.batches++;
            this.stats.items += batch.length;
            this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
            const ms = performance.now() - t0;
            this.stats.commitMs += ms;
            this.onCommit?.(ms, batch.length);
            batch.forEach((p, i) => p.resolve(results[i]));
          },
          (err) => {
            this.#poisoned = true;
            tx.failed();
            throw err;
          },
        );
      } catch (err) {
        committing = Promise.reject(err);
      }
      const settled: Promise<void> = committing
        .catch((err) => {
          for (const p of batch) p.reject(err);
        })
        .finally(() => {
          for (const p of batch) this.#queuedBytes -= p.size;
          this.#inFlight.splice(this.#inFlight.indexOf(settled), 1);
        });
      this.#inFlight.push(settled);
      if (!ahead || onMain) await settled;
    }
    // batches may still be in flight: the next submit starts a loop that waits for them as needed
    this.#running = false;
    if (this.#inFlight.length === 0) this.#maybeIdle();
    else void Promise.allSettled(this.#inFlight).then(() => this.#maybeIdle());
  }

  #maybeIdle(): void {
    if (this.#running || this.#inFlight.length > 0 || this.#queue.length > 0) return;
    for (const f of this.#idle.splice(0)) f();
  }

  /** Resolves when everything queued so far has been committed or failed. */
  drain(): Promise<void> {
    if (!this.#running && this.#inFlight.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.drain();
  }

  /** Runs the contributors' reads and staging for a batch: its transaction and one result per item. */
  async #stage(batch: Pending[]): Promise<{ tx: Tx; results: unknown[] }> {
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
    try {
      for (const [c, idx] of groups) {
        const r = c.stage(idx.map((i) => batch[i].item), tx);
        idx.forEach((i, k) => (results[i] = r[k]));
      }
    } catch (err) {
      tx.failed();
      throw err;
    }
    return { tx, results };
  }

  #failedBefore(): void {
    if (this.#poisoned) throw new WriterBusy("not written: an earlier batch failed");
  }

  /** Whether a staged transaction is written in one call on this connection: light, and nothing else in flight. */
  #oneCall(tx: Tx): boolean {
    return (
      this.#inFlight.length === 0 &&
      (tx.weight <= LITERAL_MAX_WEIGHT || (tx.articles === 0 && tx.weight <= MAIL_LITERAL_MAX_WEIGHT)) &&
      tx.steps.every((s) => (s.kind === "run" ? !s.changes : s.kind !== "in" || s.list.length <= 500))
    );
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
    if (tx.spooled.length > 0) {
      if (!this.#spool) throw new Error("spooled bytes with no spool to write them");
      await this.#spool.write(coalesce(tx.spooled));
    }
    try {
      await this.db.exec(sql.join("\n"));
    } catch (err) {
      // exec stops at the failing statement with the transaction still open
      await this.db.exec("ROLLBACK").catch(() => {});
      throw err;
    }
  }

  /**
   * Runs a transaction's statements one after the other: on the commit
   * thread once useThread() has given one (storage/commit-thread.ts), else on
   * this connection. Each counted step's callback is told its changes.
   */
  async #stepwise(tx: Tx): Promise<void> {
    const wire: WireStep[] = tx.steps.map((s) => (s.kind === "run" ? { kind: "run", sql: s.sql, params: s.params, counted: !!s.changes } : toWire(s)));
    const changes = await this.#runner.run(wire, coalesce(tx.spooled));
    let k = 0;
    for (const s of tx.steps) if (s.kind === "run" && s.changes) s.changes(changes[k++]);
  }
}

/**
 * Transactions of at most this weight (articles, messages) are written in one
 * call. One is the idle case, where latency counts; in a flood, batches of 2
 * to 8 articles written this way cost about 10% of the ingest rate (hex and a
 * fresh compile per statement), so they take the prepared path.
 */
const LITERAL_MAX_WEIGHT = 1;

/**
 * Mail is not staged ahead (each batch waits for the one before), so its
 * batches are small and each one's trips to SQLite are most of the wait
 * before a 250: a BEGIN, five to seven statements and a COMMIT each cross
 * to a thread-pool thread and back. In one call a batch of up to this many
 * messages makes one trip.
 */
const MAIL_LITERAL_MAX_WEIGHT = 16;

/** Batches in flight at once when they can be staged ahead: one being written, the next ones waiting on the thread. */
const PIPELINE_DEPTH = 3;

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
