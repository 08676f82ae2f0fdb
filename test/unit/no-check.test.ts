import { test } from "node:test";
import assert from "node:assert/strict";
import { NoCheck } from "../../relay/outbound/no-check.js";

test("no-CHECK mode: off at first, on after ~50 offers nearly all taken, off again when the peer refuses more than 10%", () => {
  const n = new NoCheck();
  for (let i = 0; i < 49; i++) n.sample(true);
  assert.equal(n.on, false, "not before about 50 answers");
  n.sample(true);
  assert.equal(n.on, true);
  // one refusal in twenty keeps it on (95% taken)
  for (let i = 0; i < 200; i++) n.sample(i % 20 !== 0);
  assert.equal(n.on, true, `ratio ${n.ratio}`);
  // a peer that has half the articles already (two peers offering the same): back to CHECK
  let off = -1;
  for (let i = 0; i < 200 && off < 0; i++) {
    n.sample(i % 2 === 0);
    if (!n.on) off = i;
  }
  assert.ok(off >= 0 && off < 20, `back to CHECK after ${off} mixed answers`);
  for (let i = 0; i < 100; i++) n.sample(i % 2 === 0);
  assert.equal(n.on, false, "stays off while half are refused");
});

test("no-CHECK mode: a peer that refuses from the start never leaves CHECK", () => {
  const n = new NoCheck();
  for (let i = 0; i < 500; i++) n.sample(i % 3 !== 0);
  assert.equal(n.on, false);
});
