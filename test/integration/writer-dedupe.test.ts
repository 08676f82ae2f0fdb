// Two copies of one article arriving in consecutive batches (two peers
// flooding the same article at once): the second batch's history read may run
// on a snapshot taken before the first batch's COMMIT and return after it, so
// the writer must still know the first copy by what it had staged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { Storage } from "../../storage/database.js";
import { Db, Stmt } from "../../storage/sqlite.js";
import { minimalArticle } from "../helpers/storage.js";
import { tempDir } from "../helpers/node.js";

const article = minimalArticle;

test("a copy staged while the first copy commits is a duplicate: the article is stored once", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const st = await Storage.open({ dataDir: dir, synchronous: "normal", pathhost: "x", maxBatch: 50, maxQueue: 1e9, maxQueueBytes: 1e12 });
  const lock = await Db.open(join(dir, "tidings.sqlite"));
  const all = Stmt.prototype.all;
  try {
    await st.groups.ensure([{ name: "local.test" }]);
    const x = "<twice@race.test>";
    const old = "<old@race.test>";
    await st.writer.store(article(old));
    let firstCopy: Promise<{ kind: string }[]> | undefined;
    let reads = 0;
    let committedMeanwhile = false;
    // the second batch's history read (for `old`, the one id it holds that history may have)
    // sees the database as it was before the first batch's COMMIT, and answers after it
    Stmt.prototype.all = async function <T>(this: Stmt, params: unknown[]): Promise<T[]> {
      if (!Array.isArray(params) || !params.includes(old)) return all.call(this, params) as Promise<T[]>;
      const rows = (await all.call(this, params)) as T[];
      reads++;
      await lock.exec("COMMIT");
      await Promise.race([firstCopy!.then(() => (committedMeanwhile = true)), new Promise((r) => setTimeout(r, 5000))]);
      return rows;
    };
    // the first batch goes to the commit thread (more than one article) and waits there for the lock
    await lock.exec("BEGIN IMMEDIATE");
    firstCopy = Promise.all([x, "<a@race.test>", "<b@race.test>"].map((id) => st.writer.store(article(id))));
    await new Promise((r) => setTimeout(r, 100));
    const [second] = await Promise.all([st.writer.store(article(x)), st.writer.store(article(old))]);
    const first = await firstCopy;
    assert.equal(reads, 1, "the second batch read history once");
    assert.ok(committedMeanwhile, "the first batch committed while the second read history (they were one batch)");
    assert.equal(first[0].kind, "stored");
    assert.equal(second.kind, "duplicate", "the second copy was stored as an article of its own");
    const rows = await st.readDb.all<{ n: number }>("SELECT count(*) AS n FROM articles WHERE msgid = ?", [x]);
    assert.equal(rows[0].n, 1);
  } finally {
    Stmt.prototype.all = all;
    await lock.close();
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
