// The path identity a node makes from its host name, and the kind a refusal is logged and counted under.
import { test } from "node:test";
import assert from "node:assert/strict";
import { makeIdentity } from "../../storage/identity.js";
import { refusalKind } from "../../relay/refusals.js";
import { isPathIdentity } from "../../protocol/article/path.js";

/** RFC 5536 §3.1.5: path-identity = ( ALPHA / DIGIT ) *( ALPHA / DIGIT / "-" / "." / ":" / "_" ). */
const RFC = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

test("a made identity is a valid path identity whatever the host name", () => {
  const hosts = ["box.example.org", "vm", "", "localhost", "My_Host.Example.ORG", "-odd-.", "..x..y", "héllo wörld", "x".repeat(300) + ".example", "a.b.c." + "d".repeat(250), "[::1]", "10.0.0.1"];
  for (const h of hosts) {
    const id = makeIdentity(h, "k3j9x2");
    assert.match(id, RFC, `${JSON.stringify(h)} gave ${id}`);
    assert.ok(isPathIdentity(id) && id.length <= 255, `${JSON.stringify(h)} gave ${id}`);
    assert.ok(id.includes("-k3j9x2"), id);
  }
  assert.equal(makeIdentity("box.example.org", "k3j9x2"), "box-k3j9x2.example.org");
  assert.equal(makeIdentity("vm", "k3j9x2"), "vm-k3j9x2");
  assert.equal(makeIdentity("", "k3j9x2"), "tidings-k3j9x2");
});

test("two identities made on one machine differ", () => {
  const made = new Set(Array.from({ length: 100 }, () => makeIdentity("box.example.org")));
  assert.equal(made.size, 100);
});

test("a refusal's kind leaves out Message-IDs and what follows a colon", () => {
  assert.equal(refusalKind("439 <a@x> Invalid Date header: Mon"), refusalKind("439 <b@y> Invalid Date header: Tue"));
  assert.equal(refusalKind("439 <a@x> Article already passed through n.example (Path loop)"), "439 Article already passed through n.example (Path loop)");
  assert.equal(refusalKind("Missing required header: From"), "Missing required header");
  assert.ok(refusalKind("x ".repeat(200)).length <= 81);
});
