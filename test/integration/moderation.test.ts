// Moderated groups as a poster and a moderator see them (RFC 5537 §3.5.1): a
// post without Approved goes by mail to the moderator (an SMTP sink here,
// reached through a [[route]]) and is not stored; an approved post from an
// approver is taken; Approved from anyone else is refused with a reply that
// names the moderator; with no moderator address the post is kept for the
// moderator (tidings held); what a peer relays with Approved is taken.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startNode, CLI } from "../helpers/node.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { mailSetup } from "../helpers/mail.js";
import { RawClient, stuff, commandOn, postOn } from "../helpers/client.js";

before(() => mailSetup());

let seq = 0;
function article(from: string, groups: string, extra = ""): { msgid: string; text: string } {
  const msgid = `<mod.${process.pid}.${Date.now().toString(36)}.${seq++}@test.example>`;
  return { msgid, text: `From: ${from}\r\nNewsgroups: ${groups}\r\nSubject: submission ${seq}\r\nMessage-ID: ${msgid}\r\n${extra}\r\nPlease publish this.\r\n` };
}

test("a post to a moderated group goes to the moderator by mail; approvers may post; Approved from anyone else is refused", { timeout: 90_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const node = await startNode({
    config: `
[mail]
retry_first = 0.2
sweep = "* * * * * *"

[[group]]
name = "example.announce"
status = "m"
moderator = "announce-mod@mods.example"
approvers = ["editor@example.org"]

[[group]]
name = "example.talk"

[[group]]
name = "example.quiet"
status = "m"

[[group]]
name = "control"
status = "n"

[[route]]
domain = "mods.example"
next_hop = "127.0.0.1:${sinkPort}"
`,
  });
  try {
    // 1. no Approved: mailed to the moderator, not stored, and the poster is told where it went
    const sub = article("Poster <poster@example.org>", "example.talk,example.announce");
    const r1 = await postOn(node.port, sub.text);
    assert.match(r1, /^240 Article mailed to the moderator of example\.announce \(announce-mod@mods\.example\)/);
    const [mail] = await sink.waitFor(1, 20_000);
    assert.deepEqual(mail.to, ["announce-mod@mods.example"]);
    const text = mail.data.toString("latin1");
    assert.match(text, /^To: announce-mod@mods\.example\r$/m);
    assert.match(text, new RegExp(`^Message-ID: ${sub.msgid.replace(/[.$]/g, "\\$&")}\r$`, "m"), "RFC 5537 §3.5.1: the Message-ID is kept");
    assert.doesNotMatch(text, /^Injection-Info:/m, "not injected until the moderator approves it");
    assert.match(text, /Please publish this\./);
    assert.match(await commandOn(node.port, `STAT ${sub.msgid}`), /^430/, "not stored as an article");

    // 2. the moderator approves it: posted from an approver's address with Approved, it is taken
    const approved = article("Editor <editor@example.org>", "example.talk,example.announce", "Approved: editor@example.org\r\n");
    assert.match(await postOn(node.port, approved.text), /^240 Article received OK/);
    assert.match(await commandOn(node.port, `STAT ${approved.msgid}`), /^223/);
    const fromModerator = article("The Moderator <announce-mod@mods.example>", "example.announce", "Approved: announce-mod@mods.example\r\n");
    assert.match(await postOn(node.port, fromModerator.text), /^240 Article received OK/);

    // 3. Approved from someone else is not honoured: refused, naming the moderator
    const forged = article("Mallory <mallory@example.org>", "example.announce", "Approved: announce-mod@mods.example\r\n");
    assert.match(await postOn(node.port, forged.text), /^441 You are not allowed to approve postings to example\.announce; its moderator is announce-mod@mods\.example/);
    assert.match(await commandOn(node.port, `STAT ${forged.msgid}`), /^430/);

    // 4. no moderator address: kept for the moderator, and the poster is told so
    const quiet = article("Poster <poster@example.org>", "example.quiet");
    assert.match(await postOn(node.port, quiet.text), /^240 Article kept for the moderator of example\.quiet \(no moderator address is configured\)/);
    const held = spawnSync(process.execPath, [CLI, "held", "list", "--data", node.dataDir], { encoding: "utf8" });
    assert.equal(held.status, 0, held.stderr);
    assert.match(held.stdout, new RegExp(`example\\.quiet.*${quiet.msgid.replace(/[.$]/g, "\\$&")}`));

    // 5. transit: a peer's article with Approved is taken as it is (moderation is enforced at injection)
    const { client } = await RawClient.connect(node.port);
    const relayed = article("Someone <someone@example.net>", "example.announce", `Approved: announce-mod@mods.example\r\nPath: far.example!not-for-mail\r\nDate: ${new Date().toUTCString()}\r\n`);
    assert.match(await client.cmd(`IHAVE ${relayed.msgid}`), /^335/);
    client.send(stuff(relayed.text));
    assert.match(await client.line(), /^235/);
    client.close();

    // and nothing else reached the moderator's mailbox
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.messages.length, 1);
  } finally {
    await node.stop();
    await sink.stop();
  }
});

test("a logged-in poster approves by user name: Approved is honoured from an approving user, whatever the From, and not from another user", { timeout: 60_000 }, async () => {
  const node = await startNode({
    config: `
[auth]
allow_plaintext = true

[[group]]
name = "example.announce"
status = "m"
moderator = "announce-mod@mods.example"
approvers = ["ed"]
`,
  });
  try {
    for (const [name, password] of [["ed", "ed-password"], ["joe", "joe-password"]]) {
      const r = spawnSync(process.execPath, [CLI, "user", "add", name, "--data", node.dataDir, "--password-stdin"], { input: password + "\n", encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    }
    const byEd = article("Whoever <whoever@example.org>", "example.announce", "Approved: announce-mod@mods.example\r\n");
    assert.match(await postOn(node.port, byEd.text, ["ed", "ed-password"]), /^240 Article received OK/);
    assert.match(await commandOn(node.port, `STAT ${byEd.msgid}`), /^223/);
    // joe is logged in, so his From (even the moderator's own address) does not make him an approver
    const byJoe = article("The Moderator <announce-mod@mods.example>", "example.announce", "Approved: announce-mod@mods.example\r\n");
    assert.match(await postOn(node.port, byJoe.text, ["joe", "joe-password"]), /^441 You are not allowed to approve postings to example\.announce/);
    // and without Approved joe's post is kept for the moderator (no route to the moderator's domain)
    const plain = article("Joe <joe@example.org>", "example.announce");
    assert.match(await postOn(node.port, plain.text, ["joe", "joe-password"]), /^240 Article kept for the moderator of example\.announce \(no mail route to its moderator announce-mod@mods\.example\)/);
  } finally {
    await node.stop();
  }
});
