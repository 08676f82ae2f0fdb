// The group commit's statements run on a thread of their own, with its own
// writer connection. On the main thread each statement of a batch (a dozen
// or more per transaction) waited for the event loop to come round between
// parsing articles, so a commit of 160 articles took ~6 ms of which SQLite
// was busy for little, and binding 14 values an article (node-sqlite3 copies
// each) was a fifth of the main thread's time. Here the thread's loop has
// nothing else to do. The main thread still stages the rows and decides
// every outcome; only the execution moves (see GroupCommit).
import { Worker } from "node:worker_threads";
import type { TxRunner, WireStep } from "./stepwise.js";

interface Waiting {
  resolve: (changes: number[]) => void;
  reject: (err: Error) => void;
}

export class CommitThread implements TxRunner {
  #seq = 0;
  #waiting = new Map<number, Waiting>();
  #failed: Error | undefined;
  #closed: Promise<void> | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on("message", (m: { seq: number; changes?: number[]; error?: { message: string; code?: string; errno?: number } }) => {
      const w = this.#waiting.get(m.seq);
      if (!w) return;
      this.#waiting.delete(m.seq);
      if (m.error) w.reject(Object.assign(new Error(m.error.message), { code: m.error.code, errno: m.error.errno }));
      else w.resolve(m.changes ?? []);
    });
    const fail = (err: Error) => {
      this.#failed = err;
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the commit thread exited (${code})`)));
  }

  static start(file: string, synchronous: "full" | "normal"): Promise<CommitThread> {
    const worker = new Worker(new URL("./commit-thread-worker.js", import.meta.url), { workerData: { file, synchronous } });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      const onExit = (code: number) => reject(new Error(`the commit thread exited (${code}) before it was ready`));
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.once("message", () => {
        worker.off("error", onError);
        worker.off("exit", onExit);
        resolve(new CommitThread(worker));
      });
    });
  }

  run(steps: WireStep[]): Promise<number[]> {
    if (this.#failed) return Promise.reject(this.#failed);
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#waiting.set(seq, { resolve, reject });
      // the batch's bytes, copied once already into one buffer (stepwise.ts, toWire), move rather than copy again
      const owned = steps.flatMap((s) => (s.kind === "run" && s.owned ? [s.owned] : []));
      this.worker.postMessage({ seq, steps }, owned);
    });
  }

  reset(): void {
    if (!this.#failed) this.worker.postMessage({ reset: true });
  }

  /** Closes the thread's connection and ends the thread; call after the group commit has drained. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      if (this.#failed) return resolve();
      this.worker.once("exit", () => resolve());
      this.worker.on("message", (m: { closed?: boolean }) => {
        if (m.closed) void this.worker.terminate();
      });
      this.worker.postMessage({ close: true });
    });
    return this.#closed;
  }
}
