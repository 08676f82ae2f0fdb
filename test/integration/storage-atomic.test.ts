// Group commit is one transaction: a reader never sees a backlog row without
// its article, nor an article without its group numbers, whatever the batch sizes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { Storage } from "../../storage/database.js";
import { Backlog } from "../../storage/backlog.js";
import { tempDir } from "../helpers/node.js";

test("readers never see half of a group commit", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const st = await Storage.open({ dataDir: dir, synchronous: "normal", pathhost: "x", maxBatch: 50, maxQueue: 1e9, maxQueueBytes: 1e12 });
  try {
    await st.groups.ensure([{ name: "local.test" }]);
    const peer = (await Backlog.peerIds(st.writeDb, ["p"])).get("p")!;
    let partial = 0;
    let checks = 0;
    let done = false;
    const watcher = (async () => {
      while (!done) {
        const r = await st.readDb.all(
          `SELECT b.article FROM backlog b LEFT JOIN articles a ON a.id = b.article WHERE a.id IS NULL
           UNION ALL SELECT a.id FROM articles a LEFT JOIN group_articles g ON g.article = a.id WHERE g.article IS NULL`,
        );
        checks++;
        if (r.length) partial++;
      }
    })();
    const body = Buffer.alloc(100, 97);
    for (let round = 0; round < 150; round++) {
      const n = 1 + ((round * 7) % 41); // many batch sizes, so many statement shapes
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          st.writer.store({ msgid: `<m${round}.${i}@x>`, header: "Subject: s\r\n", body, groups: ["local.test"], subject: "s", author: "a", date: "d", refs: "", lines: 1, source: "x", arrived: Date.now(), peers: [peer] }),
        ),
      );
    }
    done = true;
    await watcher;
    assert.ok(checks > 20, `the reader looked ${checks} times`);
    assert.equal(partial, 0, `a reader saw a partial transaction ${partial} times`);
  } finally {
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
