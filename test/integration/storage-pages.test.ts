// A new database is made with 8 KB pages (storage/database.ts); one made
// before, with SQLite's 4 KB, keeps its pages and works as it did, and the
// README's recipe converts it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { Storage } from "../../storage/database.js";
import { Db } from "../../storage/sqlite.js";
import type { NewArticle } from "../../storage/writer.js";
import { tempDir } from "../helpers/node.js";

const OPTS = { synchronous: "full" as const, pathhost: "x", maxBatch: 50, maxQueue: 1e9, maxQueueBytes: 1e12 };
const body = Buffer.alloc(10_240, 0x61);
const article = (msgid: string): NewArticle => ({
  msgid, header: `Message-ID: ${msgid}\r\n`, body, groups: ["local.test"], subject: "s", author: "a",
  date: "d", refs: "", lines: 1, source: "x", arrived: Date.now(), peers: [],
});

async function pageSize(file: string): Promise<number> {
  const db = await Db.open(file);
  try {
    return (await db.get<{ page_size: number }>("PRAGMA page_size"))!.page_size;
  } finally {
    await db.close();
  }
}

/** What the README says to run, with the node stopped, to give a database other pages. */
async function convert(file: string, size: number): Promise<void> {
  const db = await Db.open(file);
  try {
    await db.exec(`PRAGMA journal_mode = DELETE; PRAGMA page_size = ${size}; VACUUM; PRAGMA journal_mode = WAL;`);
  } finally {
    await db.close();
  }
}

test("a new database has 8 KB pages; one with 4 KB pages keeps them, keeps its articles and takes new ones", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const file = join(dir, "tidings.sqlite");
  try {
    let st = await Storage.open({ dataDir: dir, ...OPTS });
    await st.groups.ensure([{ name: "local.test" }]);
    const first = await st.writer.store(article("<before@pages.test>"));
    assert.equal(first.kind, "stored");
    await st.close();
    assert.equal(await pageSize(file), 8192);

    // as a database made before this version: SQLite's 4 KB pages
    await convert(file, 4096);
    assert.equal(await pageSize(file), 4096);
    st = await Storage.open({ dataDir: dir, ...OPTS });
    const second = await st.writer.store(article("<after@pages.test>"));
    assert.equal(second.kind, "stored");
    for (const id of ["<before@pages.test>", "<after@pages.test>"]) {
      const a = await st.articles.byMsgid(id);
      assert.ok(a, `${id} is there`);
      assert.ok(a.data.subarray(a.data.length - body.length).equals(body), `${id} has its body whole`);
    }
    await st.close();
    assert.equal(await pageSize(file), 4096, "opening an older database does not change its pages");

    await convert(file, 8192);
    assert.equal(await pageSize(file), 8192);
    st = await Storage.open({ dataDir: dir, ...OPTS });
    assert.ok(await st.articles.byMsgid("<before@pages.test>"));
    await st.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
