// The outbound queue engine (relay/outbound/queue.ts) with a source and a
// transport made in the test: no wake-up is lost to a read that raced it or to
// a stale snapshot, deferred work comes back when due and not before, work
// past the maximum age is dropped or given up, a kick ends a backoff at once,
// and backoff stays within its jitter bounds.
import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { OutboundQueue, type QueueOptions, type WorkSource } from "../../relay/outbound/queue.js";
import { backoffMs } from "../../relay/outbound/dispositions.js";
import type { Outcome, Session, Transport } from "../../relay/outbound/transport.js";

const log = pino({ level: "silent" });

interface Item {
  id: number;
  arrived: number;
}

/** A store of items by id; reads see a snapshot taken when they begin, answered after `readDelay` ms. */
class Store implements WorkSource<Item, Outcome> {
  rows: Item[] = [];
  cursor = 0;
  readDelay = 0;
  /** The newest id a read's snapshot holds; staleTop replaces it (a snapshot older than the read). */
  staleTop: number | undefined;
  reads = 0;
  settled: { id: number; outcome: Outcome; expired: boolean }[] = [];
  expired: number[] = [];
  suspended: number[] = [];
  retryIn = 0;
  retriesInSource = false;
  /** ids not due before this time (retries kept by the source) */
  notBefore = new Map<number, number>();
  onSuspend?: boolean;

  key(i: Item): number {
    return i.id;
  }
  arrived(i: Item): number {
    return i.arrived;
  }
  add(id: number, arrived = Date.now()): Item {
    const it = { id, arrived };
    this.rows.push(it);
    return it;
  }
  async read(): Promise<{ items: Item[]; full: boolean; top: number }> {
    this.reads++;
    const now = Date.now();
    const snapshot = this.rows.filter((r) => (this.retriesInSource ? (this.notBefore.get(r.id) ?? 0) <= now : r.id > this.cursor));
    const top = this.staleTop ?? Math.max(0, ...this.rows.map((r) => r.id));
    this.staleTop = undefined;
    if (this.readDelay) await new Promise((r) => setTimeout(r, this.readDelay));
    if (!this.retriesInSource) for (const r of snapshot) this.cursor = Math.max(this.cursor, r.id);
    return { items: snapshot, full: false, top };
  }
  settle(i: Item, outcome: Outcome, expired: boolean): number | void | Promise<number | void> {
    this.settled.push({ id: i.id, outcome, expired });
    if (outcome.disposition === "retry" && !expired) {
      const at = Date.now() + this.retryIn;
      if (this.retriesInSource) this.notBefore.set(i.id, at);
      return at;
    }
    this.rows = this.rows.filter((r) => r.id !== i.id);
  }
  expire(i: Item): void {
    this.expired.push(i.id);
    this.rows = this.rows.filter((r) => r.id !== i.id);
  }
}

class SuspendingStore extends Store {
  async suspend(items: Item[]): Promise<void> {
    for (const i of items) {
      this.suspended.push(i.id);
      this.notBefore.set(i.id, Date.now() + 60_000);
    }
  }
}

/** Sessions that answer each offer with `answer(item)`; `failOpen` makes open() fail. */
class FakeTransport implements Transport<Item, Outcome> {
  opens = 0;
  failOpen = false;
  offers: { id: number; at: number }[] = [];
  answer: (i: Item) => Outcome = () => ({ disposition: "done", reply: "239" });
  async open(): Promise<Session<Item, Outcome>> {
    this.opens++;
    if (this.failOpen) throw new Error("ECONNREFUSED");
    let end!: (e: Error | undefined) => void;
    const closed = new Promise<Error | undefined>((r) => (end = r));
    return {
      window: 10,
      offer: async (i) => {
        this.offers.push({ id: i.id, at: Date.now() });
        await new Promise((r) => setImmediate(r));
        return this.answer(i);
      },
      closed,
      close: () => end(undefined),
    };
  }
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The queue's first read is over and it has settled into waiting (nothing is queued). */
async function caughtUp(store: Store): Promise<void> {
  await until("first read", () => store.reads >= 1);
  await new Promise((r) => setTimeout(r, 20));
}

function make(store: Store, t: FakeTransport, o: Partial<QueueOptions> = {}): OutboundQueue<Item, Outcome> {
  return new OutboundQueue("test", store, t, { connections: 1, reconnect: { min: 0.05, max: 0.2, jitter: 0.5 }, ...o }, log);
}

test("a wake-up during a read is not lost: work added while the read was under way is offered without another wake", async () => {
  const store = new Store();
  const t = new FakeTransport();
  const q = make(store, t);
  store.add(1);
  q.start();
  try {
    await until("item 1 offered", () => t.offers.length === 1);
    await until("the queue idle", () => store.settled.length === 1);
    // a read begins (from a wake), and while it runs item 2 is committed and its wake comes
    store.readDelay = 100;
    q.wake();
    await until("a read under way", () => store.reads >= 2);
    store.add(2);
    q.wake();
    store.readDelay = 0;
    await until("item 2 offered", () => t.offers.some((o) => o.id === 2), 3000);
  } finally {
    await q.stop();
  }
});

test("a stale snapshot is not taken for caught up: announced work past the snapshot's top is read again", async () => {
  const store = new Store();
  const t = new FakeTransport();
  const q = make(store, t);
  q.start();
  try {
    await caughtUp(store);
    // item 5 is committed and announced, but the next read's snapshot predates it (top 0, no rows)
    const it = store.add(5);
    const hidden = store.rows.splice(0);
    store.staleTop = 0;
    q.announce(it, 5);
    await until("the stale read", () => store.reads >= 2);
    store.rows.push(...hidden);
    await until("item 5 offered", () => t.offers.some((o) => o.id === 5), 3000);
  } finally {
    await q.stop();
  }
});

test("the idle path: an announced item is taken from the event without a read when the source accepts it", async () => {
  const store = new Store();
  (store as Store & { take: (i: Item) => boolean }).take = (i: Item) => {
    if (i.id <= store.cursor) return false;
    store.cursor = i.id;
    return true;
  };
  const t = new FakeTransport();
  const q = make(store, t);
  q.start();
  try {
    await caughtUp(store);
    const reads = store.reads;
    q.announce(store.add(7), 7);
    await until("item 7 offered", () => t.offers.some((o) => o.id === 7));
    assert.equal(store.reads, reads, "no read for an announced item on the idle path");
  } finally {
    await q.stop();
  }
});

test("defer: a retry is offered again when due and not before (kept in memory, and kept by the source)", async () => {
  for (const inSource of [false, true]) {
    const store = new Store();
    store.retryIn = 300;
    store.retriesInSource = inSource;
    const t = new FakeTransport();
    let tries = 0;
    t.answer = () => (tries++ === 0 ? { disposition: "retry", reply: "431 later" } : { disposition: "done", reply: "239" });
    const q = make(store, t, { retriesInSource: inSource });
    store.add(1);
    q.start();
    try {
      await until("offered twice", () => t.offers.length === 2, 5000);
      const gap = t.offers[1].at - t.offers[0].at;
      assert.ok(gap >= 290, `offered again after ${gap} ms, not before the 300 ms the source set (${inSource ? "in source" : "in memory"})`);
      assert.ok(gap < 2000, `offered again soon after it was due (${gap} ms)`);
      assert.equal(q.stats.deferred, 1);
      await until("settled done", () => store.settled.some((s) => s.outcome.disposition === "done"));
    } finally {
      await q.stop();
    }
  }
});

test("deferrals due a few milliseconds apart are each offered again when due, with no wake from outside", async () => {
  const store = new Store();
  const t = new FakeTransport();
  const tried = new Set<number>();
  t.answer = (i) => (tried.has(i.id) ? { disposition: "done", reply: "239" } : (tried.add(i.id), { disposition: "retry", reply: "431 later" }));
  const base = Date.now() + 300;
  // each item is due again 1 ms after the one before: some fall just after the moment the timer fires
  store.settle = function (i: Item, outcome: Outcome, expired: boolean): number | void {
    Store.prototype.settle.call(this, i, outcome, expired);
    if (outcome.disposition === "retry") return base + i.id;
  };
  const q = make(store, t);
  for (let id = 1; id <= 20; id++) store.add(id);
  q.start();
  try {
    await until("every item offered twice", () => t.offers.length === 40, 3000);
  } finally {
    await q.stop();
  }
});

test("maximum age before the offer: too old is dropped unsent and counted", async () => {
  const store = new Store();
  const t = new FakeTransport();
  const q = make(store, t, { maxAge: { ms: 1000, when: "before-offer" } });
  store.add(1, Date.now() - 5000);
  store.add(2);
  q.start();
  try {
    await until("item 2 offered", () => t.offers.some((o) => o.id === 2));
    assert.deepEqual(store.expired, [1]);
    assert.ok(!t.offers.some((o) => o.id === 1), "the old item was not offered");
    assert.equal(q.stats.dropped, 1);
  } finally {
    await q.stop();
  }
});

test("maximum age after an attempt: an old item that gets a retry is given up (the source bounces), a young one deferred", async () => {
  const store = new Store();
  store.retryIn = 60_000;
  const t = new FakeTransport();
  t.answer = () => ({ disposition: "retry", reply: "451 later" });
  const q = make(store, t, { maxAge: { ms: 1000, when: "after-attempt" } });
  store.add(1, Date.now() - 5000);
  store.add(2);
  q.start();
  try {
    await until("both settled", () => store.settled.length === 2);
    assert.deepEqual(store.settled.map((s) => [s.id, s.expired]).sort(), [[1, true], [2, false]]);
    assert.ok(t.offers.some((o) => o.id === 1), "tried once before given up");
  } finally {
    await q.stop();
  }
});

test("kick: a connection waiting out a long backoff reconnects at once, and deferred work is offered at once", async () => {
  const store = new Store();
  const t = new FakeTransport();
  t.failOpen = true;
  const q = make(store, t, { reconnect: { min: 60, max: 60, jitter: 0.1 } });
  store.add(1);
  q.start();
  try {
    await until("the first failed open", () => t.opens === 1 && q.stats.retryAt !== null);
    assert.match(q.stats.lastError ?? "", /ECONNREFUSED/);
    const wait = q.stats.retryAt! - Date.now();
    assert.ok(wait > 50_000 && wait <= 66_000, `backing off for about a minute (${wait} ms)`);
    t.failOpen = false;
    let tries = 0;
    store.retryIn = 60_000;
    t.answer = () => (tries++ === 0 ? { disposition: "retry", reply: "431 later" } : { disposition: "done", reply: "239" });
    const t0 = Date.now();
    q.kick();
    await until("reconnected and offered", () => t.offers.length === 1, 2000);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(q.stats.retryAt, null);
    await until("deferred for a minute", () => q.held.deferred === 1);
    q.kick();
    await until("offered again at once", () => t.offers.length === 2, 2000);
  } finally {
    await q.stop();
  }
});

test("while the destination is down, a source that suspends gets the due work at once instead of holding it", async () => {
  const store = new SuspendingStore();
  store.retriesInSource = true;
  const t = new FakeTransport();
  t.failOpen = true;
  const q = make(store, t, { reconnect: { min: 60, max: 60, jitter: 0.1 }, retriesInSource: true });
  q.start();
  try {
    await until("the first failed open", () => t.opens === 1 && q.stats.retryAt !== null);
    store.add(1);
    store.add(2);
    q.wake();
    await until("both suspended", () => store.suspended.length === 2);
    assert.equal(t.offers.length, 0);
  } finally {
    await q.stop();
  }
});

test("backoff: min doubled per attempt up to max, within ±jitter", () => {
  for (let attempt = 0; attempt < 10; attempt++) {
    const base = Math.min(30, 1 * 2 ** attempt) * 1000;
    for (let i = 0; i < 200; i++) {
      const ms = backoffMs(attempt, 1, 30, 0.5);
      assert.ok(ms >= base * 0.5 - 1 && ms <= base * 1.5 + 1, `attempt ${attempt}: ${ms} ms outside ${base} ±50%`);
    }
  }
  const spread = new Set(Array.from({ length: 50 }, () => backoffMs(3, 1, 30, 0.25)));
  assert.ok(spread.size > 10, "jitter spreads the waits");
});

test("reconnect after a lost session follows the backoff bounds", async () => {
  const store = new Store();
  const t = new FakeTransport();
  t.failOpen = true;
  const q = make(store, t, { reconnect: { min: 0.2, max: 0.2, jitter: 0.5 } });
  q.start();
  try {
    await until("two opens", () => t.opens >= 2, 3000);
    const first = Date.now();
    await until("three opens", () => t.opens >= 3, 3000);
    const gap = Date.now() - first;
    assert.ok(gap >= 90 && gap <= 600, `reconnected after ${gap} ms (0.2 s ±50%)`);
  } finally {
    await q.stop();
  }
});

test("windowBytes: large items are offered a few at a time however large the window, and one always goes", async () => {
  class Sized extends Store {
    size(i: Item): number {
      return i.id >= 100 ? 64 * 1024 * 1024 : 6 * 1024 * 1024; // ids 100+: larger than the whole bound
    }
  }
  const store = new Sized();
  let open = 0;
  let most = 0;
  const t = new FakeTransport();
  t.answer = () => ({ disposition: "done", reply: "239" });
  const offer = t.open.bind(t);
  t.open = async () => {
    const s = await offer();
    const inner = s.offer;
    return {
      ...s,
      offer: async (i: Item) => {
        open++;
        most = Math.max(most, open);
        await new Promise((r) => setTimeout(r, 5));
        open--;
        return inner(i);
      },
    };
  };
  for (let i = 1; i <= 12; i++) store.add(i);
  const q = make(store, t, { windowBytes: 16 * 1024 * 1024 });
  q.start();
  try {
    await until("all 12 offered", () => store.settled.length === 12);
    // 6 MiB each against 16 MiB: a third is offered only while less than 16 MiB is open, so at most 3 at once, never the window's 10
    assert.ok(most >= 2 && most <= 3, `at most 3 open at once (saw ${most})`);
    most = 0;
    store.add(100);
    store.add(101);
    q.wake();
    await until("both large items offered", () => store.settled.length === 14);
    assert.equal(most, 1, "an item larger than the bound goes alone, and does not stall the queue");
  } finally {
    await q.stop();
  }
});

test("an answered item keeps its place in the window until its settle is written: a slow disk cannot let more than a window be answered and unrecorded", async () => {
  // A settle written later (mail settles through the group commit): held here until released.
  class SlowSettle extends Store {
    held: (() => void)[] = [];
    override settle(i: Item, outcome: Outcome, expired: boolean): Promise<number | void> {
      return new Promise((resolve) => this.held.push(() => resolve(super.settle(i, outcome, expired))));
    }
  }
  const store = new SlowSettle();
  const t = new FakeTransport();
  for (let i = 1; i <= 25; i++) store.add(i);
  const q = make(store, t);
  q.start();
  try {
    await until("a window answered", () => store.held.length === 10);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(t.offers.length, 10, "nothing more is offered while a window of settles is unwritten");
    store.held.splice(0, 3).forEach((f) => f());
    await until("three more offered", () => t.offers.length === 13);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(t.offers.length, 13, "one more offer for each settle written");
    const release = setInterval(() => store.held.splice(0).forEach((f) => f()), 5);
    try {
      await until("all 25 settled", () => store.settled.length === 25);
    } finally {
      clearInterval(release);
    }
    assert.deepEqual(store.settled.map((s) => s.id).sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => i + 1));
  } finally {
    await q.stop();
  }
});

test("work taken from the event waits in memory only up to a bound in bytes: past it the source is read instead", async () => {
  class Sized extends Store {
    size(): number {
      return 3 * 1024 * 1024;
    }
    take(i: Item): boolean {
      if (i.id <= this.cursor) return false;
      this.cursor = i.id;
      return true;
    }
  }
  const store = new Sized();
  // one offer at a time, held until released: what is taken meanwhile waits in the queue
  let release!: () => void;
  let held = new Promise<void>((r) => (release = r));
  const offered: number[] = [];
  const t = new FakeTransport();
  t.open = async () => {
    let end!: (e: Error | undefined) => void;
    const closed = new Promise<Error | undefined>((r) => (end = r));
    return {
      window: 1,
      offer: async (i: Item) => {
        offered.push(i.id);
        await held;
        return { disposition: "done", reply: "239" } as Outcome;
      },
      closed,
      close: () => end(undefined),
    };
  };
  const q = make(store, t);
  q.start();
  try {
    await caughtUp(store);
    q.announce(store.add(1), 1);
    await until("item 1 on the wire", () => offered.includes(1));
    for (const id of [2, 3, 4]) q.announce(store.add(id), id);
    // 3 MiB each: two wait (6 MiB), a third would make 9 MiB, past the 8 MiB bound
    assert.equal(q.held.queued, 2, `items waiting in memory: ${q.held.queued}`);
    release();
    held = Promise.resolve();
    await until("items 2-4 offered", () => [2, 3, 4].every((id) => offered.includes(id)));
    assert.ok(store.reads >= 2, "the item not taken was read from the source");
  } finally {
    release();
    await q.stop();
  }
});
