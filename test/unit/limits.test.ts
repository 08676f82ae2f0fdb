// The arithmetic of the NNTP limits (relay/admission.ts, relay/rate-limits.ts),
// with the clock given; test/integration/limits.test.ts tries them on a node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Admission, addressKey, type Occupant } from "../../relay/admission.js";
import { CommandRate, PostQuota } from "../../relay/rate-limits.js";

test("addresses are counted as IPv4, or IPv6 by /64", () => {
  assert.equal(addressKey("192.0.2.7"), "192.0.2.7");
  assert.equal(addressKey("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(addressKey("2001:db8:1:2:3:4:5:6"), addressKey("2001:db8:1:2::9"));
  assert.notEqual(addressKey("2001:db8:1:2::9"), addressKey("2001:db8:1:3::9"));
});

type O = Occupant & { peer?: boolean };

function fill(a: Admission<O>, open: O[], addresses: string[], now: number): Map<string, number> {
  const per = new Map<string, number>();
  for (const client of addresses) {
    for (;;) {
      const v = a.decide(client, open, now);
      if (!v.admit || v.evict) break;
      const o = { client, lastInput: now };
      a.enter(o);
      open.push(o);
      per.set(client, (per.get(client) ?? 0) + 1);
    }
  }
  return per;
}

test("the default cap is not filled by four addresses: each takes a shrinking share", () => {
  const a = new Admission<O>({ maxConnections: 256, maxPerClient: 64, reservedForNew: 16, evictIdleAfter: 180 }, () => ({ busy: false, peer: false }));
  const open: O[] = [];
  const per = fill(a, open, ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"], 0);
  assert.deepEqual([...per.values()], [64, 59, 39, 26]);
  assert.ok(a.open < 256 - 16);
  // a newcomer is admitted without dropping anyone
  assert.deepEqual(a.decide("198.51.100.1", open, 0), { admit: true });
});

test("a full node drops the connection silent longest for a newcomer, sparing peers; never one silent too briefly", () => {
  const a = new Admission<O>({ maxConnections: 4, maxPerClient: 4, reservedForNew: 1, evictIdleAfter: 10 }, (o) => ({ busy: false, peer: !!o.peer }));
  const open: O[] = [
    { client: "192.0.2.1", lastInput: 0, peer: true },
    { client: "192.0.2.2", lastInput: 1000 },
    { client: "192.0.2.3", lastInput: 2000 },
    { client: "192.0.2.4", lastInput: 15_000 },
  ];
  for (const o of open) a.enter(o);
  const v = a.decide("198.51.100.1", open, 20_000);
  assert.ok(v.admit && v.evict === open[1], JSON.stringify(v));
  a.leave(open[1]);
  a.leave(open[1]); // the socket's close, later: counted once
  assert.equal(a.open, 3);
  // an address that has a connection does not evict
  a.enter({ client: "198.51.100.1", lastInput: 20_000 });
  const again = a.decide("198.51.100.1", open, 20_000);
  assert.ok(!again.admit && again.cause === "share");
  // nobody silent for 10 s but the peer and 192.0.2.3: 192.0.2.3 goes
  const v2 = a.decide("198.51.100.2", open, 20_000);
  assert.ok(v2.admit && v2.evict === open[2]);
  a.leave(open[2]);
  a.enter({ client: "198.51.100.2", lastInput: 20_000 });
  // only the peer is left silent long enough: a peer goes last, but it does go
  const v3 = a.decide("198.51.100.3", open, 20_000);
  assert.ok(v3.admit && v3.evict === open[0]);
  // and when no one has been silent long enough, 400
  const b = new Admission<O>({ maxConnections: 1, maxPerClient: 1, reservedForNew: 0, evictIdleAfter: 10 }, () => ({ busy: false, peer: false }));
  const only = { client: "192.0.2.9", lastInput: 0 };
  b.enter(only);
  const v4 = b.decide("198.51.100.4", [only], 5000);
  assert.ok(!v4.admit && v4.cause === "full");
});

test("commands: a burst of ten seconds' worth passes, then slowed, then a flood", () => {
  let rate = 10;
  const r = new CommandRate(() => rate, 0);
  assert.deepEqual(r.charge(100, false, 0), { slow: false });
  assert.deepEqual(r.charge(120, false, 0), { slow: true, pauseMs: 2000 });
  // two seconds later the debt is paid
  assert.deepEqual(r.charge(121, false, 2000), { slow: true, pauseMs: 100 });
  assert.deepEqual(r.charge(2000, false, 2100), { flood: true });
  // transit sessions are not charged
  const t = new CommandRate(() => rate, 0);
  assert.deepEqual(t.charge(100_000, true, 0), { slow: false });
  assert.deepEqual(t.charge(100_001, false, 0), { slow: false });
  rate = 0;
  assert.deepEqual(t.charge(200_000, false, 0), { slow: false });
});

test("posts: a sliding hour per key", () => {
  const q = new PostQuota(2);
  assert.deepEqual(q.take("u", 0), { ok: true });
  assert.deepEqual(q.take("u", 1000), { ok: true });
  assert.deepEqual(q.take("u", 2000), { ok: false, retryIn: 3598 });
  assert.deepEqual(q.take("v", 2000), { ok: true });
  assert.deepEqual(q.take("u", 3600_000), { ok: true });
  q.perHour = 0;
  assert.deepEqual(q.take("u", 3600_001), { ok: true });
});
