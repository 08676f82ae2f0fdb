// The access rules (relay/access-rules.ts) as an operator writes them: the
// defaults keep the older address lists' behaviour, the first entry that
// applies decides, and a client that has not logged in learns when a login
// would help (480) and when it would not (502/440).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { CheckedConfigSchema } from "../../config/schema.js";
import { buildAccessRules } from "../../relay/access-rules.js";
import { addressKey } from "../../relay/login.js";

const rules = (toml: string) => buildAccessRules(CheckedConfigSchema.parse(parse(toml)));

test("without [[access]]: everyone reads, loopback posts and feeds, a peer feeds as itself", () => {
  const r = rules(`[[peer]]\nname = "far"\naccept_from = ["192.0.2.7"]\n`);
  const local = r.permissions("127.0.0.1");
  assert.deepEqual([local.read, local.post, local.transit], [true, true, true]);
  assert.equal(local.readable, undefined, "every group");
  const stranger = r.permissions("198.51.100.1");
  assert.deepEqual([stranger.read, stranger.post, stranger.transit], [true, false, false]);
  assert.deepEqual(stranger.afterLogin, { read: false, post: false, transit: false }, "no login would help: 440/502, not 480");
  const peer = r.permissions("192.0.2.7");
  assert.equal(peer.peer, "far");
  assert.equal(peer.transit, true);
  // the older keys still decide where no entry applies
  const old = rules(`[nntp]\nreader_from = ["10.0.0.0/8"]\nposting_from = ["10.1.0.0/16"]\n`);
  assert.equal(old.permissions("10.1.2.3").post, true);
  assert.equal(old.permissions("10.2.2.3").post, false);
  assert.equal(old.permissions("192.0.2.1").read, false);
});

test("the first entry that applies decides; users, '*', auth_required and the 480 hints", () => {
  const r = rules(`
[[access]]
users = ["alice"]
post = "local.*"

[[access]]
users = ["*"]
read = "local.*"

[[access]]
from = ["192.0.2.0/24"]
read = "*,!staff.*"

[[access]]
auth_required = true
`);
  // the office reads all but staff.*, posts nowhere; alice could post, so POST wants a login
  const office = r.permissions("192.0.2.9");
  assert.equal(office.read, true);
  assert.equal(office.readable!("staff.x"), false);
  assert.equal(office.readable!("comp.x"), true);
  assert.equal(office.post, false);
  assert.equal(office.afterLogin!.post, true);
  assert.equal(office.authRequired, false);
  // anyone else must log in first
  const other = r.permissions("198.51.100.1");
  assert.deepEqual([other.read, other.post, other.authRequired], [false, false, true]);
  // alice: read everything (the default read), post local.*
  const alice = r.permissions("198.51.100.1", "alice");
  assert.equal(alice.readable, undefined);
  assert.equal(alice.postable!("local.test"), true);
  assert.equal(alice.postable!("comp.test"), false);
  assert.equal(alice.afterLogin, undefined, "logged in: no hints");
  // bob matches "*": local.* only, no posting
  const bob = r.permissions("198.51.100.1", "bob");
  assert.equal(bob.readable!("comp.test"), false);
  assert.equal(bob.post, false);
});

test("failed logins are counted per IPv4 address and per IPv6 /64", () => {
  assert.equal(addressKey("192.0.2.1"), "192.0.2.1");
  assert.equal(addressKey("::ffff:192.0.2.1"), "192.0.2.1");
  assert.equal(addressKey("2001:db8:0:1::5"), addressKey("2001:db8:0:1:ffff::9"));
  assert.notEqual(addressKey("2001:db8:0:1::5"), addressKey("2001:db8:0:2::5"));
  assert.equal(addressKey("2001:0db8:0000:0001:0:0:0:1"), "2001:db8:0:1::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
});
