// A feed must not take a stale read for the end of its backlog. Statements
// that overlap on one SQLite connection share its read transaction, so a
// backlog read can miss a commit that finished before the read began (seen
// under load: 2 of 20,000 articles stuck in a chain of three until the next
// restart). Here the overlap is made on purpose: a statement is left open on
// the reader connection while articles are committed and the feed is woken.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { pino } from "pino";
import { Storage } from "../../storage/database.js";
import { Backlog } from "../../storage/backlog.js";
import type { NewArticle } from "../../storage/writer.js";
import { PeerFeed } from "../../relay/feeds/peer-feed.js";
import { Receiver } from "../../bench/receiver.js";
import { tempDir } from "../helpers/node.js";

function article(n: number, peer: number): NewArticle {
  const msgid = `<snap.${n}.${Date.now().toString(36)}@test.example>`;
  return {
    msgid,
    header: `Path: origin.test!not-for-mail\r\nFrom: a <a@b.c>\r\nNewsgroups: elsewhere.only\r\nSubject: s${n}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: ${msgid}\r\n`,
    body: Buffer.from(`body ${n}\r\n`),
    groups: [],
    subject: `s${n}`, author: "a <a@b.c>", date: new Date().toUTCString(), refs: "", lines: 1,
    source: "test", arrived: Date.now(), peers: [peer],
  };
}

test("a backlog read older than the bus's news does not make the feed skip articles", { timeout: 30_000 }, async () => {
  const dir = tempDir("tidings-snapshot-");
  const storage = await Storage.open({ dataDir: dir, synchronous: "normal", pathhost: "snap.test", maxBatch: 100, maxQueue: 1000, maxQueueBytes: 64 << 20 });
  const rx = await Receiver.start();
  const peer = (await Backlog.peerIds(storage.writeDb, ["rx"])).get("rx")!;
  const feed = new PeerFeed(
    { id: peer, name: "rx", host: "127.0.0.1", port: rx.port, streaming: true, connections: 1, window: 10, maxBacklogAge: 86400 },
    storage, { reconnectMin: 0.05, reconnectMax: 0.5, retryDeferred: 0.2, replyTimeout: 60 }, pino({ level: "silent" }),
  );
  // what node.ts does with the bus
  const store = async (a: NewArticle, how: "event" | "wake") => {
    const r = await storage.writer.store(a);
    assert.equal(r.kind, "stored");
    if (r.kind !== "stored") return;
    if (how === "event") feed.announce({ article: r.id, msgid: a.msgid, bytes: r.data.length, data: r.data });
    else {
      feed.committed(r.id); // the bus told of it...
      feed.wake(); // ...while the feed was busy, so it only woke
    }
  };
  try {
    feed.start();
    const first = article(1, peer);
    await store(first, "event");
    await rx.waitFor(first.msgid, 10_000);

    // a statement left open on the reader connection pins its snapshot
    // (on every reader connection: the pool makes such reads rare, the feed must not rely on that)
    const pins = [storage.readDb, ...storage.readers.dbs].map((db) => db.raw.prepare("SELECT id FROM articles"));
    for (const pin of pins) await new Promise<void>((resolve, reject) => pin.get((err: Error | null) => (err ? reject(err) : resolve())));
    const missed = article(2, peer);
    await store(missed, "wake"); // the feed reads its backlog from the old snapshot
    await new Promise((r) => setTimeout(r, 300));
    const next = article(3, peer);
    await store(next, "event"); // must not be taken as "everything up to here is known"
    await new Promise((r) => setTimeout(r, 300));
    for (const pin of pins) await new Promise<void>((r) => pin.finalize(() => r()));

    await rx.waitFor(next.msgid, 10_000);
    await rx.waitFor(missed.msgid, 10_000);
    assert.equal(rx.arrivals.size, 3);
  } finally {
    await feed.stop();
    await rx.close();
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
