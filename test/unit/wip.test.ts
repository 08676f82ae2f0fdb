// The Message-IDs being received (relay/wip.ts): 431/436 for a second offer
// while the first is in progress, and no reservation kept for ever.
import { test } from "node:test";
import assert from "node:assert/strict";
import { InFlight } from "../../relay/wip.js";

test("an id claimed by one session is refused to another until released, and a session may claim its own again", () => {
  const t = Date.now();
  const wip = new InFlight(60_000);
  const a = {};
  const b = {};
  assert.equal(wip.claim("<x@y>", a, t), true);
  assert.equal(wip.claim("<x@y>", a, t), true, "CHECK then TAKETHIS from the same session");
  assert.equal(wip.claim("<x@y>", b, t), false);
  assert.equal(wip.heldByOther("<x@y>", b, t), true);
  assert.equal(wip.heldByOther("<x@y>", a, t), false);
  wip.release("<x@y>", b);
  assert.equal(wip.claim("<x@y>", b, t), false, "only the owner releases");
  wip.release("<x@y>", a);
  assert.equal(wip.claim("<x@y>", b, t), true);
  assert.equal(wip.size, 1);
  wip.releaseAll(b);
  assert.equal(wip.size, 0);
});

test("a reservation never released lasts at least the ttl and at most twice it", () => {
  const t = Date.now();
  const wip = new InFlight(1000);
  const a = {};
  const b = {};
  assert.equal(wip.claim("<old@y>", a, t), true);
  assert.equal(wip.claim("<old@y>", b, t + 999), false, "before the ttl");
  assert.equal(wip.claim("<late@y>", a, t + 1500), true);
  assert.equal(wip.claim("<old@y>", b, t + 1999), false, "still held within twice the ttl");
  assert.equal(wip.claim("<old@y>", b, t + 2000 + 1000), true, "gone after twice the ttl");
  // a claim renewed by its owner is young again
  assert.equal(wip.claim("<r@y>", a, t + 3100), true);
  assert.equal(wip.claim("<r@y>", a, t + 4100), true);
  assert.equal(wip.claim("<r@y>", b, t + 4200), false);
  // a long quiet spell drops everything at once
  assert.equal(wip.claim("<r@y>", b, t + 60_000), true);
  assert.equal(wip.size, 1);
});
