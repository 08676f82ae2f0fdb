import { test } from "node:test";
import assert from "node:assert/strict";
import { NNTP, nntpDisposition, smtpDisposition, backoffMs } from "../../relay/outbound/dispositions.js";

test("reply tables: each transport's codes map to what the queue does", () => {
  assert.equal(nntpDisposition(NNTP.CHECK, "238 <a@b>"), "send");
  assert.equal(nntpDisposition(NNTP.CHECK, "438 <a@b> have it"), "refused");
  assert.equal(nntpDisposition(NNTP.CHECK, "431 <a@b> later"), "retry");
  assert.equal(nntpDisposition(NNTP.CHECK, "239 <a@b>"), undefined, "a TAKETHIS answer to CHECK is a protocol error");
  assert.equal(nntpDisposition(NNTP.TAKETHIS, "439 <a@b> bad"), "rejected");
  assert.equal(nntpDisposition(NNTP.IHAVE, "335 send it"), "send");
  assert.equal(nntpDisposition(NNTP.IHAVE_TRANSFER, "437 bad"), "rejected");
  assert.deepEqual([250, 251, 421, 451, 452, 500, 550, 554, undefined].map(smtpDisposition), ["done", "done", "retry", "retry", "retry", "failed", "failed", "failed", "retry"]);
});

test("backoff doubles from min to max with bounded jitter", () => {
  for (let i = 0; i < 200; i++) {
    const first = backoffMs(0, 2, 60);
    assert.ok(first >= 1500 && first <= 2500, String(first));
    const capped = backoffMs(20, 2, 60);
    assert.ok(capped >= 45_000 && capped <= 75_000, String(capped));
    assert.equal(backoffMs(3, 1, 100, 0), 8000);
  }
});
