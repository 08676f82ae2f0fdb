// The commit thread (storage/commit-thread.ts) is started again when it dies:
// what it held fails (and is deferred by ingest, never acknowledged), and the
// writes after the restart are stored as before.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import type { Worker } from "node:worker_threads";
import { Storage } from "../../storage/database.js";
import type { NewArticle } from "../../storage/writer.js";
import { tempDir } from "../helpers/node.js";

const article = (msgid: string): NewArticle => ({
  msgid, header: `Message-ID: ${msgid}\r\n`, body: Buffer.from("body\r\n"), groups: ["local.test"], subject: "s", author: "a",
  date: "d", refs: "", lines: 1, source: "x", arrived: Date.now(), peers: [],
});
/** Three at once: a batch heavier than one article goes to the commit thread, not the main connection. */
const storeThree = (st: Storage, tag: string) => Promise.allSettled([1, 2, 3].map((i) => st.writer.store(article(`<${tag}.${i}@restart.test>`))));

test("a commit thread that dies is started again: its batch fails, nothing of it is stored, later batches are", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const st = await Storage.open({ dataDir: dir, synchronous: "full", pathhost: "x", maxBatch: 50, maxQueue: 1e9, maxQueueBytes: 1e12 });
  const restarts: number[] = [];
  st.commitThread.onRestart = (_err, inMs) => restarts.push(inMs);
  try {
    await st.groups.ensure([{ name: "local.test" }]);
    for (const r of await storeThree(st, "before")) assert.equal(r.status === "fulfilled" && r.value.kind, "stored");

    // ended with nothing under way: node-sqlite3 aborts the process when a thread ends during one of its calls
    await st.commitThread.quiet();
    const worker = (st.commitThread as unknown as { worker: Worker }).worker;
    const exited = new Promise((r) => worker.once("exit", r));
    await worker.terminate();
    await exited;
    assert.equal(st.commitThread.up, false);
    for (const r of await storeThree(st, "down")) assert.equal(r.status, "rejected", "a write while no thread runs fails (ingest defers it)");

    const until = Date.now() + 10_000;
    while (!st.commitThread.up && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.ok(st.commitThread.up, "the thread is up again");
    assert.deepEqual(restarts, [100]);
    for (const r of await storeThree(st, "after")) assert.equal(r.status === "fulfilled" && r.value.kind, "stored");

    const rows = await st.readDb.all<{ msgid: string }>("SELECT msgid FROM articles ORDER BY id");
    assert.deepEqual(rows.map((r) => r.msgid.split(".")[0]), ["<before", "<before", "<before", "<after", "<after", "<after"]);
  } finally {
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
