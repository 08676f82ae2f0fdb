// The commit thread's side (see commit-thread.ts): its own writer connection,
// one transaction at a time, in the order they come.
import { parentPort, workerData } from "node:worker_threads";
import { Db } from "./sqlite.js";
import { StepRunner, type WireStep } from "./stepwise.js";
import { writerPragmas } from "./pragmas.js";

const { file, synchronous } = workerData as { file: string; synchronous: "full" | "normal" };
const port = parentPort!;

const db = await Db.open(file);
await db.exec(writerPragmas(synchronous));
const runner = new StepRunner(db);
let chain: Promise<void> = Promise.resolve();
/** Set by a failed transaction: those sent after it were staged on top of it, and fail until the main thread says reset. */
let failed: { message: string; code?: string } | undefined;

port.on("message", (m: { seq: number; steps: WireStep[] } | { close: true } | { reset: true }) => {
  chain = chain.then(async () => {
    if ("reset" in m) {
      failed = undefined;
      return;
    }
    if ("close" in m) {
      await db.close().catch(() => {});
      port.postMessage({ closed: true });
      return;
    }
    if (failed !== undefined) {
      port.postMessage({ seq: m.seq, error: { message: `not written: an earlier batch failed (${failed.message})`, code: failed.code } });
      return;
    }
    try {
      port.postMessage({ seq: m.seq, changes: await runner.run(m.steps) });
    } catch (err) {
      const e = err as { message?: string; code?: string; errno?: number };
      failed = { message: e?.message ?? String(err), code: e?.code };
      port.postMessage({ seq: m.seq, error: { message: e?.message ?? String(err), code: e?.code, errno: e?.errno } });
    }
  });
});
port.postMessage({ ready: true });
