// The commit thread's connection never checkpoints; a second connection
// copies the WAL beside it, and the WAL starts over every 16,000 frames
// (storage/commit-thread-worker.ts). Under a steady stream of batches the
// write-ahead log stays bounded instead of growing with everything written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { rmSync, statSync } from "node:fs";
import { Storage } from "../../storage/database.js";
import type { NewArticle } from "../../storage/writer.js";
import { tempDir } from "../helpers/node.js";

const body = Buffer.alloc(10_240, 0x62);
const article = (msgid: string): NewArticle => ({
  msgid, header: `Message-ID: ${msgid}\r\n`, body, groups: ["local.test"], subject: "s", author: "a",
  date: "d", refs: "", lines: 1, source: "x", arrived: Date.now(), peers: [],
});

test("the WAL stays bounded under a steady stream of batches: 400 MB written, the log never past 250 MB", { timeout: 120_000 }, async (t) => {
  const dir = tempDir();
  // every article kept in the database, none in the spool (storage/spool.ts): the WAL gets all the bytes
  const st = await Storage.open({ dataDir: dir, synchronous: "normal", pathhost: "x", maxBatch: 500, maxQueue: 1e9, maxQueueBytes: 1e12, spoolMinBytes: Number.MAX_SAFE_INTEGER });
  const wal = join(dir, "tidings.sqlite-wal");
  try {
    await st.groups.ensure([{ name: "local.test" }]);
    let largest = 0;
    // batches kept coming, several in flight at once, as under a flood
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < 40_000; i++) {
      const p = st.writer.store(article(`<w${i}@wal.test>`));
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      if (inFlight.size >= 1200) await Promise.race(inFlight);
      if (i % 500 === 0) largest = Math.max(largest, statSync(wal).size);
    }
    await Promise.all(inFlight);
    largest = Math.max(largest, statSync(wal).size);
    const n = await st.readDb.get<{ n: number }>("SELECT count(*) AS n FROM articles");
    assert.equal(n?.n, 40_000);
    t.diagnostic(`largest WAL seen: ${(largest / 1e6).toFixed(1)} MB`);
    // 16,000 frames of 8 KB are 131 MB; a checkpoint slow to report lets a few more batches in first
    // (without the bound the WAL reached 458 MB here)
    assert.ok(largest < 250e6, `the WAL reached ${(largest / 1e6).toFixed(1)} MB`);
  } finally {
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
