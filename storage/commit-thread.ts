// The group commit's statements run on a thread of their own, with its own
// writer connection. On the main thread each statement of a batch (a dozen
// or more per transaction) waited for the event loop to come round between
// parsing articles, so a commit of 160 articles took ~6 ms of which SQLite
// was busy for little, and binding 14 values an article (node-sqlite3 copies
// each) was a fifth of the main thread's time. Here the thread's loop has
// nothing else to do. The main thread still stages the rows and decides
// every outcome; only the execution moves (see GroupCommit). A thread that
// dies is started again (100 ms, doubling to 30 s between tries); what it
// held fails and is deferred, never acknowledged. One that dies in the middle
// of a node-sqlite3 call takes the process with it (the call's callback runs
// in a torn-down environment and aborts): a crash, after which nothing
// acknowledged is lost either.
import { Worker } from "node:worker_threads";
import type { TxRunner, WireStep } from "./stepwise.js";
import type { SpoolWrite } from "./spool.js";

interface Waiting {
  resolve: (changes: number[]) => void;
  reject: (err: Error) => void;
}

type Reply = { seq: number; changes?: number[]; error?: { message: string; code?: string; errno?: number } };

/** Longest wait before starting a thread again after it died; the first wait is 100 ms, doubled each time. */
const RESTART_MAX_MS = 30_000;

export class CommitThread implements TxRunner {
  #seq = 0;
  #waiting = new Map<number, Waiting>();
  /** TypeScript-private, not #private: the restart test ends the thread through it. */
  private worker!: Worker;
  /** Why no thread runs now (it died, and its successor is not up yet); runs fail at once meanwhile. */
  #down: Error | undefined;
  #restarts = 0;
  #closing = false;
  #closed: Promise<void> | undefined;
  /**
   * Told when the thread died and when it will be started again. The batches
   * it had were not written (their callers get the error, and ingest defers
   * them); the ones after it wait for the new thread or fail while there is none.
   */
  onRestart?: (err: Error, inMs: number) => void;

  private constructor(
    worker: Worker,
    private readonly file: string,
    private readonly synchronous: "full" | "normal",
    private readonly spoolDir: string,
  ) {
    this.#adopt(worker);
  }

  #adopt(worker: Worker): void {
    this.worker = worker;
    worker.on("message", (m: Reply) => {
      const w = this.#waiting.get(m.seq);
      if (!w) return;
      this.#waiting.delete(m.seq);
      if (m.error) w.reject(Object.assign(new Error(m.error.message), { code: m.error.code, errno: m.error.errno }));
      else {
        this.#restarts = 0;
        w.resolve(m.changes ?? []);
      }
    });
    worker.on("error", (err) => this.#died(worker, err));
    worker.on("exit", (code) => this.#died(worker, new Error(`the commit thread exited (${code})`)));
  }

  /** A thread that dies (an uncaught error, say) is started again, so that the node does not defer every write from then on. */
  #died(worker: Worker, err: Error): void {
    if (worker !== this.worker || this.#down) return; // 'error' and then 'exit' for the one death
    this.#down = err;
    for (const w of this.#waiting.values()) w.reject(err);
    this.#waiting.clear();
    if (this.#closing) return;
    this.#restartLater(err);
  }

  #restartLater(err: Error): void {
    const inMs = Math.min(RESTART_MAX_MS, 100 * 2 ** this.#restarts++);
    this.onRestart?.(err, inMs);
    setTimeout(() => void this.#restart(), inMs).unref();
  }

  async #restart(): Promise<void> {
    if (this.#closing) return;
    let worker: Worker;
    try {
      worker = await CommitThread.#spawn(this.file, this.synchronous, this.spoolDir);
    } catch (err) {
      this.#down = err as Error;
      if (!this.#closing) this.#restartLater(err as Error);
      return;
    }
    if (this.#closing) {
      await worker.terminate();
      return;
    }
    this.#adopt(worker);
    this.#down = undefined;
  }

  static #spawn(file: string, synchronous: "full" | "normal", spoolDir: string): Promise<Worker> {
    const worker = new Worker(new URL("./commit-thread-worker.js", import.meta.url), { workerData: { file, synchronous, spoolDir } });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      const onExit = (code: number) => reject(new Error(`the commit thread exited (${code}) before it was ready`));
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.once("message", () => {
        worker.off("error", onError);
        worker.off("exit", onExit);
        resolve(worker);
      });
    });
  }

  /** `spoolDir`: where the thread writes the spool's bytes of each batch (storage/spool.ts). */
  static async start(file: string, synchronous: "full" | "normal", spoolDir: string): Promise<CommitThread> {
    return new CommitThread(await CommitThread.#spawn(file, synchronous, spoolDir), file, synchronous, spoolDir);
  }

  run(steps: WireStep[], spool: SpoolWrite[] = []): Promise<number[]> {
    if (this.#down) return Promise.reject(this.#down);
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#waiting.set(seq, { resolve, reject });
      // the batch's bytes, copied once already into one buffer (stepwise.ts, toWire), move rather than copy again
      const owned = steps.flatMap((s) => (s.kind === "run" && s.owned ? [s.owned] : []));
      for (const w of spool) if (w.owned) owned.push(w.bytes.buffer as ArrayBuffer);
      this.worker.postMessage({ seq, steps, spool }, owned);
    });
  }

  reset(): void {
    if (!this.#down) this.worker.postMessage({ reset: true });
  }

  /**
   * Resolves once the thread has nothing under way: every transaction sent
   * before it done, and no checkpoint running. (A thread ended while
   * node-sqlite3 has a call under way aborts the whole process: its callback
   * runs in a torn-down environment. The tests end it only when quiet.)
   */
  quiet(): Promise<void> {
    if (this.#down) return Promise.resolve();
    const worker = this.worker;
    const id = ++this.#seq;
    return new Promise((resolve) => {
      const on = (m: { quiet?: number }) => {
        if (m.quiet !== id) return;
        worker.off("message", on);
        resolve();
      };
      worker.on("message", on);
      worker.postMessage({ quiet: id });
    });
  }

  /** Whether a thread is up to take batches (false between a death and the restart). */
  get up(): boolean {
    return !this.#down;
  }

  /** Closes the thread's connection and ends the thread; call after the group commit has drained. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#closing = true;
      if (this.#down) return resolve();
      const worker = this.worker;
      worker.once("exit", () => resolve());
      worker.on("message", (m: { closed?: boolean }) => {
        if (m.closed) void worker.terminate();
      });
      worker.postMessage({ close: true });
    });
    return this.#closed;
  }
}
