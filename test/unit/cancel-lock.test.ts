// Cancel-Lock and Cancel-Key (RFC 8315): the RFC's own example, parsing of
// field bodies (several elements, comments, folding, unknown schemes), and
// the keys a node makes from its secret opening only its own locks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { keyElement, keyMatches, lockElement, lockOf, parseElements } from "../../protocol/article/cancel-lock.js";

test("RFC 8315 §3: the lock is the base64 of the hash of the key string (the RFC's example)", () => {
  assert.equal(lockOf("sha1", "aaaBBBcccDDDeeeFFF"), "bNXHc6ohSmeHaRHHW56BIWZJt+4=");
  assert.ok(keyMatches("sha1:aaaBBBcccDDDeeeFFF", "sha1:bNXHc6ohSmeHaRHHW56BIWZJt+4="));
  assert.ok(!keyMatches("sha1:aaaBBBcccDDDeeeFFf", "sha1:bNXHc6ohSmeHaRHHW56BIWZJt+4="));
});

test("field bodies: several elements, comments and folding; unknown schemes and malformed elements never match", () => {
  const lock = `sha1:bNXHc6ohSmeHaRHHW56BIWZJt+4= (old)\r\n\tsha256:${lockOf("sha256", "a2V5")}`;
  assert.deepEqual(parseElements(lock).map((e) => e.scheme), ["sha1", "sha256"]);
  assert.ok(keyMatches("SHA256:a2V5", lock), "scheme names are case-insensitive");
  assert.ok(keyMatches("md5:xyz sha256:a2V5", lock), "any key of the cancel may open any lock");
  assert.ok(!keyMatches(`sha1:a2V5`, lock), "a key opens only a lock of its own scheme");
  assert.ok(!keyMatches("sha256:a2V5", "md5:abc"), "locks of unknown schemes are ignored");
  assert.ok(!keyMatches("sha256:a2V5", undefined));
  assert.ok(!keyMatches(undefined, lock));
  assert.deepEqual(parseElements("sha256:not!base64 sha256 :abc"), []);
});

test("a node's keys: the key for (message, poster) opens that poster's lock only", () => {
  const secret = Buffer.from("0123456789abcdef0123456789abcdef");
  const lock = lockElement(secret, "<a@example>", "user:alice");
  assert.match(lock, /^sha256:[A-Za-z0-9+/]{43}=$/);
  assert.ok(keyMatches(keyElement(secret, "<a@example>", "user:alice"), lock));
  assert.ok(!keyMatches(keyElement(secret, "<a@example>", "user:mallory"), lock));
  assert.ok(!keyMatches(keyElement(secret, "<b@example>", "user:alice"), lock));
  assert.ok(!keyMatches(keyElement(Buffer.from("another secret"), "<a@example>", "user:alice"), lock));
});
