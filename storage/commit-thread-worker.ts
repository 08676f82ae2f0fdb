// The commit thread's side (see commit-thread.ts): its own writer connection,
// one transaction at a time, in the order they come.
import { parentPort, workerData } from "node:worker_threads";
import { Db } from "./sqlite.js";
import { StepRunner, type WireStep } from "./stepwise.js";
import { writerPragmas } from "./pragmas.js";
import { SpoolWriter, type SpoolWrite } from "./spool.js";

const { file, synchronous, spoolDir } = workerData as { file: string; synchronous: "full" | "normal"; spoolDir: string };
const port = parentPort!;

const db = await Db.open(file);
// This connection never checkpoints: a second one does, beside it (below).
await db.exec(`${writerPragmas(synchronous)} PRAGMA wal_autocheckpoint = 0;`);
const spool = new SpoolWriter(spoolDir, synchronous);
const runner = new StepRunner(db, spool);

// The checkpoint (copying the WAL's pages into the database, and syncing it)
// was a quarter of this thread's time at 10 KB an article, done inside a
// COMMIT every 4,000 pages while batches waited. Here a second connection
// copies what each transaction wrote while the next one is being written
// (a PASSIVE checkpoint never blocks the writer). SQLite starts the WAL over
// only when a transaction begins with every frame copied, which a
// checkpointer that runs beside a busy writer never sees: so once the WAL
// holds WAL_FRAMES, the next transaction first waits for the copy of the
// last few frames, and the WAL starts over, as it did with autocheckpoint.
// Each such wait stalls the writer, so the WAL is let grow to 16,000 frames
// (128 MiB of 8 KB pages) first: 10 KB × 4 ingest ran 7-10% faster than with
// 4,000 (bench/RESULTS-2026-11-26d.md), for 100 MB more disk under a flood.
const WAL_FRAMES = 16_000;
const checkpointer = await Db.open(file);
// the writer's sync level: a checkpoint syncs the WAL before copying and the database after, as the writer's own did
await checkpointer.exec(`${writerPragmas(synchronous)} PRAGMA wal_autocheckpoint = 0;`);
let walFrames = 0;
let copying: Promise<void> | undefined;
function checkpoint(): Promise<void> {
  copying ??= checkpointer
    .all<{ log: number }>("PRAGMA wal_checkpoint(PASSIVE)")
    .then(([r]) => void (walFrames = r?.log ?? 0))
    .catch(() => {}) // busy or failed: the next transaction asks again, and the WAL bound still holds
    .finally(() => (copying = undefined));
  return copying;
}
let chain: Promise<void> = Promise.resolve();
/** Set by a failed transaction: those sent after it were staged on top of it, and fail until the main thread says reset. */
let failed: { message: string; code?: string } | undefined;

port.on("message", (m: { seq: number; steps: WireStep[]; spool?: SpoolWrite[] } | { close: true } | { reset: true } | { quiet: number }) => {
  chain = chain.then(async () => {
    if ("quiet" in m) {
      await copying;
      port.postMessage({ quiet: m.quiet });
      return;
    }
    if ("reset" in m) {
      failed = undefined;
      return;
    }
    if ("close" in m) {
      await copying;
      await checkpointer.close().catch(() => {});
      await db.close().catch(() => {});
      spool.close();
      port.postMessage({ closed: true });
      return;
    }
    if (failed !== undefined) {
      port.postMessage({ seq: m.seq, error: { message: `not written: an earlier batch failed (${failed.message})`, code: failed.code } });
      return;
    }
    try {
      if (walFrames >= WAL_FRAMES) {
        await copying;
        await checkpoint();
      }
      const changes = await runner.run(m.steps, m.spool);
      void checkpoint();
      port.postMessage({ seq: m.seq, changes });
    } catch (err) {
      const e = err as { message?: string; code?: string; errno?: number };
      failed = { message: e?.message ?? String(err), code: e?.code };
      port.postMessage({ seq: m.seq, error: { message: e?.message ?? String(err), code: e?.code, errno: e?.errno } });
    }
  });
});
port.postMessage({ ready: true });
