// Mail relaying with real senders (swaks, Python's smtplib, nodemailer) into
// a real node and on to a sink that records every byte; and the open-relay
// test: a stranger's every trick gets 554 5.7.1 and nothing is queued.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { startNode, type TestNode } from "../helpers/node.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { mailSetup, smtpTalk, queued, runWithInput } from "../helpers/mail.js";

const run = promisify(execFile);

before(() => mailSetup());

function message(id: string, body = "Hello from a test.\r\n"): Buffer {
  return Buffer.from(
    `From: Alice <alice@example.net>\r\nTo: Bob <bob@example.org>\r\nSubject: relay test ${id}\r\n` +
      `Date: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <${id}@example.net>\r\nMIME-Version: 1.0\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${body}`,
    "utf8",
  );
}

/** What the sink got is our one Received header and then the bytes as sent. */
function assertRelayed(got: Buffer, sent: Buffer, rcpt: string): void {
  assert.ok(got.subarray(got.length - sent.length).equals(sent), "the message arrives byte for byte");
  const trace = got.subarray(0, got.length - sent.length).toString("latin1");
  assert.match(trace, /^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby relay\.example\.net \(tidings\) with E?SMTP\r\n\tfor <[^>]+>;\r\n\t\w{3}, \d+ \w{3} \d{4} [\d:]+ [+-]\d{4}\r\n$/);
  assert.ok(trace.includes(`for <${rcpt}>`));
}

async function relayNode(sinkPort: number, extra = ""): Promise<TestNode> {
  return startNode({
    config: `[smtp]\nhostname = "relay.example.net"\nrelay_from = ["127.0.0.1/32"]\n\n[[route]]\ndomain = "example.org"\nnext_hop = "127.0.0.1:${sinkPort}"\n${extra}`,
  });
}

test("mail from swaks, smtplib and nodemailer is queued, then relayed byte for byte with the envelope as received", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const node = await relayNode(sinkPort);
  try {
    // swaks, with the message from a file so that its bytes are known
    const a = message("swaks1", "Grüße aus einem Test.\r\n..a line that starts with a dot\r\n");
    const file = join(node.dataDir, "a.eml");
    writeFileSync(file, a.subarray(0, -2)); // swaks ends the data with CRLF . CRLF itself
    const sw = await run("swaks", ["--server", `127.0.0.1:${node.smtpPort}`, "--from", "alice@example.net", "--to", "bob@example.org", "--data", `@${file}`]);
    assert.match(sw.stdout, /<- {2}250 2\.6\.0 Ok: queued as \d+/);

    // Python's smtplib, two recipients in one transaction
    const b = message("smtplib1", "8-bit body: naïve café\r\n");
    await runWithInput("python3", ["-c", `
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", ${node.smtpPort})
s.ehlo("client.example.net")
assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("size") and s.has_extn("enhancedstatuscodes") and s.has_extn("smtputf8"), s.esmtp_features
refused = s.sendmail("alice@example.net", ["bob@example.org", "carol@example.org"], sys.stdin.buffer.read(), mail_options=["BODY=8BITMIME"])
assert refused == {}, refused
s.quit()
`], b);

    // SMTPUTF8 with ASCII addresses and a UTF-8 header: the keyword is passed on (RFC 6531 §3.4)
    const u = Buffer.from("From: alice@example.net\r\nSubject: Grüße\r\nMessage-ID: <utf8a@example.net>\r\n\r\nbody\r\n", "utf8");
    await runWithInput("python3", ["-c", `
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", ${node.smtpPort})
s.ehlo("client.example.net")
s.sendmail("alice@example.net", ["erin@example.org"], sys.stdin.buffer.read(), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
s.quit()
`], u);

    // nodemailer, from the null sender
    const c = message("nodemailer1");
    const t = nodemailer.createTransport({ host: "127.0.0.1", port: node.smtpPort, secure: false, ignoreTLS: true });
    const info = await t.sendMail({ envelope: { from: "", to: ["dave@example.org"] } as never, raw: c });
    assert.match(info.response, /^250 2\.6\.0 Ok: queued as \d+/);
    t.close();

    const got = await sink.waitFor(4, 20_000);
    const byId = (id: string) => got.find((m) => m.data.includes(Buffer.from(`<${id}@example.net>`)))!;
    assertRelayed(byId("swaks1").data, a, "bob@example.org");
    assert.equal(byId("swaks1").from, "alice@example.net");
    const two = byId("smtplib1");
    assert.deepEqual(two.to.sort(), ["bob@example.org", "carol@example.org"], "both recipients in one transaction");
    assert.ok(two.data.subarray(two.data.length - b.length).equals(b));
    assert.equal(two.bodyType.toLowerCase(), "8bitmime", "BODY=8BITMIME is passed on");
    assert.equal(byId("nodemailer1").from, "", "the null sender stays <>");
    const utf8 = byId("utf8a");
    assert.equal(utf8.smtpUtf8, true, "SMTPUTF8 is passed on");
    assert.ok(utf8.data.subarray(utf8.data.length - u.length).equals(u));
    assertRelayed(byId("nodemailer1").data, c, "dave@example.org");
    // delivered mail leaves the queue
    await waitUntil(async () => (await queued(node)).length === 0, 10_000, "the queue empties");
  } finally {
    await node.stop();
    await sink.stop();
  }
});

test("an untrusted client cannot relay, whatever the trick: 554 5.7.1 for each, and nothing is queued", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const node = await relayNode(sinkPort, `\n[[route]]\ndomain = "*"\nnext_hop = "127.0.0.1:${sinkPort}"\n`);
  try {
    const tricks = [
      "victim@other.example",
      "VICTIM@OTHER.EXAMPLE",
      "victim@other.example.",
      "victim%other.example@example.org",
      "victim%other.example@EXAMPLE.ORG",
      "other.example!victim@example.org",
      "victim@other.example@example.org",
      '"victim@other.example"@example.org',
      '"victim%other.example"@example.org',
      "@example.org:victim@other.example",
      "@a.example,@example.org:victim@other.example",
      "victim@[127.0.0.1]",
      "victim@[IPv6:::1]",
      "victim@evilexample.org",
      "victim@example.org.evil",
      "victim@sub.example.org",
    ];
    // a stranger: bound to 127.0.0.2, outside relay_from = 127.0.0.1/32
    const replies = await smtpTalk(node.smtpPort, "127.0.0.2", ["EHLO stranger.example", "MAIL FROM:<spammer@spam.example>", ...tricks.map((t) => `RCPT TO:<${t}>`), "DATA", "QUIT"]);
    tricks.forEach((t, i) => assert.match(replies[i + 2], /^554 5\.7\.1 .*Relay access denied/, `${t}: ${replies[i + 2]}`));
    assert.match(replies[tricks.length + 2], /^503 /, "DATA without a recipient is refused");
    // the routed domain itself is fine for strangers, and a trusted client may relay anywhere
    const ok = await smtpTalk(node.smtpPort, "127.0.0.2", ["EHLO stranger.example", "MAIL FROM:<a@b.example>", "RCPT TO:<bob@Example.ORG>", "QUIT"]);
    assert.match(ok[2], /^250 /);
    const trusted = await smtpTalk(node.smtpPort, "127.0.0.1", ["EHLO friend.example", "MAIL FROM:<a@b.example>", "RCPT TO:<x@other.example>", "QUIT"]);
    assert.match(trusted[2], /^250 /);
    assert.deepEqual(await queued(node), [], "nothing was queued");
    assert.equal(sink.messages.length, 0);
  } finally {
    await node.stop();
    await sink.stop();
  }
});

test("limits: size declared and real (552), recipients (452), line length (552), connections per address and in total (421)", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const limited = await startNode({
    config: `[smtp]\nhostname = "relay.example.net"\nmax_message_bytes = 2000\nmax_recipients = 3\nmax_line = 1000\nmax_connections_per_client = 2\n\n[[route]]\ndomain = "example.org"\nnext_hop = "127.0.0.1:${sinkPort}"\n`,
  });
  try {
    const big = "x".repeat(70) + "\r\n";
    const r = await smtpTalk(limited.smtpPort, "127.0.0.1", [
      "EHLO c.example",
      "MAIL FROM:<a@example.net> SIZE=5000",
      "MAIL FROM:<a@example.net>",
      "RCPT TO:<r1@example.org>", "RCPT TO:<r2@example.org>", "RCPT TO:<r3@example.org>", "RCPT TO:<r4@example.org>",
      "DATA",
      `Subject: big\r\n\r\n${big.repeat(40)}.`,
      "MAIL FROM:<a@example.net>",
      "RCPT TO:<r1@example.org>",
      "DATA",
      `Subject: long line\r\n\r\n${"y".repeat(1500)}\r\n.`,
      "QUIT",
    ]);
    assert.match(r[0], /^250/);
    assert.match(r[1], /^552 5\.3\.4 /, `SIZE= over the limit: ${r[1]}`);
    assert.match(r[2], /^250/);
    assert.match(r[3], /^250/);
    assert.match(r[5], /^250/);
    assert.match(r[6], /^452 4\.5\.3 Too many recipients/, r[6]);
    assert.match(r[7], /^354/);
    assert.match(r[8], /^552 5\.3\.4 /, `a message over the limit: ${r[8]}`);
    assert.match(r[12], /^552 5\.3\.4 Message has a line of 1502 octets/, r[12]);
    // a third connection from one address while two are open
    const hold = await Promise.all([1, 2].map(() => smtpTalk(limited.smtpPort, "127.0.0.1", ["EHLO h.example"], { keepOpen: true })));
    const third = await smtpTalk(limited.smtpPort, "127.0.0.1", []);
    assert.match(third.greeting ?? "", /^421 4\.7\.0 Too many connections from 127\.0\.0\.1/);
    for (const h of hold) h.close?.();
    assert.deepEqual(await queued(limited), [], "nothing was queued");
  } finally {
    await limited.stop();
  }
  // connections in total: two open from two addresses fill smtp.max_connections = 2
  const full = await startNode({ config: `[smtp]\nmax_connections = 2\n` });
  try {
    const hold = await Promise.all(["127.0.0.1", "127.0.0.2"].map((a) => smtpTalk(full.smtpPort, a, ["EHLO h.example"], { keepOpen: true })));
    const third = await smtpTalk(full.smtpPort, "127.0.0.3", []);
    assert.match(third.greeting ?? "", /^421 4\.7\.0 Too many connections; try again later/);
    hold[0].close?.();
    // a place frees when a session ends
    let again: string | undefined;
    for (let i = 0; i < 40 && !again?.startsWith("220"); i++) {
      await new Promise((r) => setTimeout(r, 50));
      again = (await smtpTalk(full.smtpPort, "127.0.0.3", ["QUIT"])).greeting;
    }
    assert.match(again ?? "", /^220 /);
    hold[1].close?.();
  } finally {
    await full.stop();
    await sink.stop();
  }
});

export async function waitUntil(f: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
