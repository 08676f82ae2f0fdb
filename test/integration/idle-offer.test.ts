// The idle path of propagation (issue 12): an article written alone is offered
// by an idle feed while its own transaction commits, so that the sync is not
// part of the hop. What must still hold: the sender's 239 waits for the
// COMMIT; an article whose transaction failed was refused to the sender, and
// its id is never given to another article (a peer's late answer for it would
// otherwise settle the other's backlog row).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { Storage } from "../../storage/database.js";
import { Db } from "../../storage/sqlite.js";
import { minimalArticle } from "../helpers/storage.js";
import { NntpClient } from "../../protocol/nntp/client.js";
import { Receiver } from "../../bench/receiver.js";
import { startNode, tempDir } from "../helpers/node.js";
import { makeArticle, stuff } from "../helpers/client.js";

const article = minimalArticle;

test("writer: an article written alone is told of before its COMMIT, and a failed batch's ids are not given again", { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const st = await Storage.open({ dataDir: dir, synchronous: "full", pathhost: "x", maxBatch: 50, maxQueue: 1e9, maxQueueBytes: 1e12 });
  const other = await Db.open(join(dir, "tidings.sqlite"));
  try {
    await st.groups.ensure([{ name: "local.test" }]);
    const told: { msgid: string; id: number; after: number; committed: boolean }[] = [];
    const committed = new Set<string>();
    st.writer.onStagedAlone = (a, id, _data, after) => told.push({ msgid: a.msgid, id, after, committed: committed.has(a.msgid) });
    const store = async (msgid: string) => {
      const r = await st.writer.store(article(msgid));
      committed.add(msgid);
      return r;
    };

    const first = await store("<one@alone.test>");
    assert.equal(first.kind, "stored");
    const firstId = first.kind === "stored" ? first.id : 0;
    assert.deepEqual(told, [{ msgid: "<one@alone.test>", id: firstId, after: firstId - 1, committed: false }]);

    // a batch that fails in SQLite (a trigger made by another connection refuses it)
    await other.exec(`CREATE TRIGGER refuse_one BEFORE INSERT ON articles WHEN NEW.msgid = '<fails@alone.test>' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    await assert.rejects(store("<fails@alone.test>"), /refused by the test/);
    assert.equal(told.length, 2, "the failing article was told of too: it was on its way");
    assert.equal(told[1].id, firstId + 1);
    const gone = await st.readDb.all<{ n: number }>("SELECT count(*) AS n FROM articles WHERE msgid = ?", ["<fails@alone.test>"]);
    assert.equal(gone[0].n, 0, "nothing of the failed batch was stored");

    const next = await store("<two@alone.test>");
    assert.equal(next.kind, "stored");
    assert.equal(next.kind === "stored" ? next.id : 0, firstId + 2, "the failed article's id was given to the next one");
    // the failed id counts as given: the node offers ahead only once every id before has been announced,
    // so this one article goes the committed way and the next is offered ahead again
    assert.equal(told[2].after, firstId + 1, "the newest id given out before it");

    // several articles at once go stepwise, as one batch: not told of
    await Promise.all(["<a@alone.test>", "<b@alone.test>", "<c@alone.test>"].map((m) => store(m)));
    assert.ok(told.length <= 4, `articles written together were told of as if alone: ${told.length - 3}`);
  } finally {
    await other.close();
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("node: an idle feed passes an article on while its COMMIT waits, and the 239 still waits for the COMMIT", { timeout: 60_000 }, async () => {
  const rx = await Receiver.start();
  const node = await startNode({ config: `[[peer]]\nname = "rx"\nhost = "127.0.0.1"\nport = ${rx.port}\ngroups = "*"\n` });
  const lock = await Db.open(join(node.dataDir, "tidings.sqlite"));
  const { client } = await NntpClient.open("127.0.0.1", node.port);
  const takethis = (a: { msgid: string; text: string }) => client.write([`TAKETHIS ${a.msgid}\r\n`, stuff(a.text)]);
  try {
    assert.match(await client.command("MODE STREAM"), /^203/);
    // warm: the feed connects and has read its (empty) backlog
    const warm = makeArticle({ groups: "local.test" });
    takethis(warm);
    assert.match(await client.line(), /^239/);
    await rx.waitFor(warm.msgid, 10_000);

    // another writer holds the lock: the article's transaction waits for it
    await lock.exec("BEGIN IMMEDIATE");
    const held = makeArticle({ groups: "local.test" });
    let replied = false;
    takethis(held);
    const reply = client.line(30_000).then((l) => ((replied = true), l));
    await rx.waitFor(held.msgid, 4_000);
    assert.equal(replied, false, "the 239 came before the COMMIT");
    await lock.exec("COMMIT");
    assert.match(await reply, /^239/);
    assert.match(await client.command(`STAT ${held.msgid}`), /^223/);

    // the lock held past the writer's busy timeout: the transaction fails, the sender is refused
    await lock.exec("BEGIN IMMEDIATE");
    const failed = makeArticle({ groups: "local.test" });
    takethis(failed);
    const refused = client.line(30_000);
    await rx.waitFor(failed.msgid, 4_000);
    const r = await refused;
    await lock.exec("COMMIT");
    assert.doesNotMatch(r, /^239/, "an article whose transaction failed was acknowledged");
    assert.match(await client.command(`STAT ${failed.msgid}`), /^430/);

    // the node goes on: the next article is stored and passed on, and nothing stays in the backlog
    const after = makeArticle({ groups: "local.test" });
    takethis(after);
    assert.match(await client.line(), /^239/);
    await rx.waitFor(after.msgid, 10_000);
    const rows = async () => (await lock.all<{ n: number }>("SELECT count(*) AS n FROM backlog"))[0].n;
    const deadline = Date.now() + 10_000;
    while ((await rows()) > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.equal(await rows(), 0, "backlog rows left after the peer answered for every article");
    assert.equal(rx.arrivals.size, 4);
  } finally {
    client.close();
    await lock.close();
    await node.stop();
    await rx.close();
  }
});

test("node: an answered article's backlog row goes with the next article's transaction, not in a transaction of its own, and the last goes within seconds", { timeout: 60_000 }, async () => {
  const rx = await Receiver.start();
  const node = await startNode({ config: `[[peer]]\nname = "rx"\nhost = "127.0.0.1"\nport = ${rx.port}\ngroups = "*"\n` });
  const db = await Db.open(join(node.dataDir, "tidings.sqlite"));
  const { client } = await NntpClient.open("127.0.0.1", node.port);
  const commits = async () => {
    const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
    return Number(/^tidings_writer_commits_total (\d+)$/m.exec(text)?.[1]);
  };
  const rows = async () => (await db.all<{ n: number }>("SELECT count(*) AS n FROM backlog"))[0].n;
  try {
    assert.match(await client.command("MODE STREAM"), /^203/);
    const send = async () => {
      const a = makeArticle({ groups: "local.test" });
      client.write([`TAKETHIS ${a.msgid}\r\n`, stuff(a.text)]);
      assert.match(await client.line(), /^239/);
      await rx.waitFor(a.msgid, 10_000);
    };
    await send(); // the feed connects
    await new Promise((res) => setTimeout(res, 1500));
    const before = await commits();
    // one article at a time, each answered by the peer before the next comes: a quiet link
    const n = 20;
    for (let i = 0; i < n; i++) {
      await send();
      await new Promise((res) => setTimeout(res, 30));
    }
    const during = (await commits()) - before;
    // each article's transaction takes the row answered before it; alone, each answer was a commit too
    assert.ok(during <= n + 4, `${during} transactions for ${n} articles passed on one at a time`);
    // the last row has no article to go with: it goes on its own shortly after
    const deadline = Date.now() + 10_000;
    while ((await rows()) > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    assert.equal(await rows(), 0, "a backlog row stayed after the peer answered for its article");
    assert.equal(rx.arrivals.size, n + 1);
  } finally {
    client.close();
    await db.close();
    await node.stop();
    await rx.close();
  }
});
