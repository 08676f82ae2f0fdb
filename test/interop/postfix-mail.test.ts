// tidings and Postfix as each other's next hop, with a sink that keeps bytes:
//   (a) smtplib → tidings (route example.org → Postfix A) → Postfix A (relayhost → sink)
//   (b) smtplib → Postfix B (relayhost → tidings) → tidings (route example.net → sink)
//   (c) Postfix A refuses a recipient for good (554 at RCPT): tidings returns
//       a DSN to the sender, through its route for the sender's domain
//   (d) SMTPUTF8 (UTF-8 addresses and headers) through both, each way
// Each message must reach the sink once, with the envelope as sent, the bytes
// as sent, and one Received header from each relay in front, newest first.
// The Postfixes are private sandboxes on loopback (postfix-sandbox.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../helpers/mesh.js";
import { startNode, tempDir } from "../helpers/node.js";
import { interopScript } from "../helpers/interop.js";
import { SmtpSink, type Received } from "../helpers/smtp-sink.js";
import { runWithInput } from "../helpers/mail.js";


function runSync(script: string, ...args: string[]): { code: number; out: string } {
  const r = spawnSync("bash", [interopScript(script), ...args], { encoding: "utf8", timeout: 300_000 });
  return { code: r.status ?? -1, out: (r.stdout ?? "") + (r.stderr ?? "") };
}

/** Runs a script without blocking the event loop (the sink must answer meanwhile). */
function run(script: string, ...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn("bash", [interopScript(script), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("close", (code) => resolve({ code: code ?? -1, out }));
  });
}

// sends one message (stdin) with BODY=8BITMIME (and SMTPUTF8 when asked); exits non-zero on any refusal
const SEND = String.raw`
import sys, smtplib
port, utf8, sender, rcpts = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4:]
data = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as s:
    s.ehlo("client.tidings.test")
    refused = s.sendmail(sender, rcpts, data, mail_options=["BODY=8BITMIME"] + (["SMTPUTF8"] if utf8 else []))
    if refused:
        sys.exit("refused: %r" % (refused,))
`;

const send = (port: number, from: string, to: string[], data: Buffer, utf8 = false) =>
  runWithInput("python3", ["-c", SEND, String(port), utf8 ? "1" : "0", from, ...to], data);

/** A message that tries the bytes: dot lines, 8-bit text, trailing spaces, a long line, a body of ~200 KB, empty lines at the end. */
function message(id: string, to: string): Buffer {
  const filler: string[] = [];
  for (let i = 0; i < 2500; i++) filler.push(`${String(i).padStart(5, "0")} ${"abcdefghijklmnopqrstuvwxyz".repeat(3)}${i % 7 === 0 ? "\t " : ""}`);
  return Buffer.concat([
    Buffer.from(
      `From: Alice <alice@example.net>\r\nTo: <${to}>\r\nSubject: relay check ${id}\r\nDate: Tue, 05 Mar 2024 10:20:30 +0000\r\n` +
        `Message-ID: <${id}@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n` +
        ".a line that starts with a dot\r\n..and one with two\r\n.\r\nabove: a line that is only a dot\r\n8-bit: ",
      "latin1",
    ),
    Buffer.from("Grüße, naïve café, 日本語\r\n", "utf8"),
    Buffer.from(`trailing spaces   \r\n${"x".repeat(990)}\r\n${filler.join("\r\n")}\r\n\r\n-- \r\nAlice\r\n\r\n\r\n`, "latin1"),
  ]);
}

/** The header fields in front of `original` in what the sink got, each unfolded; fails unless the rest is `original` byte for byte. */
function tracePrefix(got: Received, original: Buffer): string[] {
  assert.ok(got.data.length > original.length, `the sink got ${got.data.length} bytes, fewer than the ${original.length} sent`);
  const rest = got.data.subarray(got.data.length - original.length);
  if (!rest.equals(original)) {
    let i = 0;
    while (i < original.length && rest[i] === original[i]) i++;
    assert.fail(`the message differs from what was sent at byte ${i} of its tail: sent ${JSON.stringify(original.subarray(i, i + 40).toString("latin1"))}, got ${JSON.stringify(rest.subarray(i, i + 40).toString("latin1"))}`);
  }
  const prefix = got.data.subarray(0, got.data.length - original.length).toString("latin1");
  assert.match(prefix, /\r\n$/);
  return prefix.replace(/\r\n(?=[ \t])/g, "").split("\r\n").slice(0, -1);
}

test("tidings and Postfix relay to each other: envelope, bytes and both Received headers arrive; a 5xx from Postfix becomes tidings' DSN", { timeout: 90_000 }, async (t) => {
  const setup = runSync("mail-setup.sh");
  if (setup.code === 3) return t.skip(`Postfix or swaks is missing and cannot be installed here: ${setup.out.trim()}`);
  assert.equal(setup.code, 0, `mail-setup.sh failed: ${setup.out}`);

  const sink = new SmtpSink({ name: "sink.tidings.test" });
  const sinkPort = await sink.start();
  t.after(() => sink.stop());

  const dirA = tempDir("tidings-pfA-");
  const dirB = tempDir("tidings-pfB-");
  t.after(async () => {
    await Promise.all([run("postfix-sandbox.sh", "stop", dirA), run("postfix-sandbox.sh", "stop", dirB)]);
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirB, { recursive: true, force: true });
  });
  const [portA, portB] = [await freePort(), await freePort()];
  // Postfix A: next hop for example.org; refuses one recipient for good (554 5.7.1 at RCPT)
  const startA = run(
    "postfix-sandbox.sh", "start", dirA, String(portA), `127.0.0.1:${sinkPort}`, "postfix-a.tidings.test",
    "smtpd_recipient_restrictions=check_recipient_access inline:{nobody@example.org=REJECT}",
  );

  const node = await startNode({
    config: `[smtp]
hostname = "tidings.tidings.test"

[[route]]
domain = "example.org"
next_hop = "127.0.0.1:${portA}"

[[route]]
domain = "example.net"
next_hop = "127.0.0.1:${sinkPort}"
`,
  });
  t.after(() => node.stop());
  // Postfix B: relays everything to tidings
  const startB = run("postfix-sandbox.sh", "start", dirB, String(portB), `127.0.0.1:${node.smtpPort}`, "postfix-b.tidings.test");
  const [a, b] = await Promise.all([startA, startB]);
  if (a.code === 3) return t.skip(`the Postfix sandbox needs root: ${a.out.trim()}`);
  assert.equal(a.code, 0, `postfix-sandbox.sh start (A) failed: ${a.out}`);
  assert.equal(b.code, 0, `postfix-sandbox.sh start (B) failed: ${b.out}`);

  const logs = () =>
    [dirA, dirB].map((d) => `${d}/maillog:\n${existsSync(join(d, "maillog")) ? readFileSync(join(d, "maillog"), "utf8") : "(none)"}`).join("\n") +
    `\ntidings' stderr:\n${node.stderr}`;
  const arrive = async (n: number) => {
    try {
      return await sink.waitFor(n, 20_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${logs()}`);
    }
  };

  const DATE = String.raw`\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}`;

  await t.test("(a) client → tidings → Postfix → sink", async () => {
    const m = message("a.1", "bob@example.org");
    await send(node.smtpPort, "alice@example.net", ["bob@example.org"], m);
    const [got] = await arrive(1);
    assert.equal(got.from, "alice@example.net");
    assert.deepEqual(got.to, ["bob@example.org"]);
    assert.equal(got.bodyType, "8bitmime", "BODY=8BITMIME passed on by both");
    const trace = tracePrefix(got, m);
    assert.equal(trace.length, 2, `two header fields in front of the message, got:\n${trace.join("\n")}`);
    // newest first: Postfix's (it took the message from tidings), then tidings' own
    assert.match(trace[0], new RegExp(String.raw`^Received: from tidings\.tidings\.test \(unknown \[127\.0\.0\.1\]\)\s*by postfix-a\.tidings\.test \(Postfix\) with ESMTP id [0-9A-F]+\s*for <bob@example\.org>; ${DATE}`));
    assert.match(trace[1], new RegExp(String.raw`^Received: from client\.tidings\.test \(\[127\.0\.0\.1\]\)\s*by tidings\.tidings\.test \(tidings\) with ESMTP\s*for <bob@example\.org>;\s*${DATE}`));
  });

  await t.test("(b) client → Postfix → tidings → sink", async () => {
    const m = message("b.1", "carol@example.net");
    await send(portB, "dave@example.org", ["carol@example.net"], m);
    const got = (await arrive(2))[1];
    assert.equal(got.from, "dave@example.org");
    assert.deepEqual(got.to, ["carol@example.net"]);
    assert.equal(got.bodyType, "8bitmime", "BODY=8BITMIME passed on by both");
    const trace = tracePrefix(got, m);
    assert.equal(trace.length, 2, `two header fields in front of the message, got:\n${trace.join("\n")}`);
    assert.match(trace[0], new RegExp(String.raw`^Received: from postfix-b\.tidings\.test \(\[127\.0\.0\.1\]\)\s*by tidings\.tidings\.test \(tidings\) with ESMTP\s*for <carol@example\.net>;\s*${DATE}`));
    assert.match(trace[1], new RegExp(String.raw`^Received: from client\.tidings\.test \(unknown \[127\.0\.0\.1\]\)\s*by postfix-b\.tidings\.test \(Postfix\) with ESMTP id [0-9A-F]+\s*for <carol@example\.net>; ${DATE}`));
  });

  await t.test("(c) Postfix refuses a recipient for good: tidings bounces to the sender", async () => {
    const m = message("c.1", "nobody@example.org");
    await send(node.smtpPort, "erin@example.net", ["nobody@example.org"], m);
    const got = (await arrive(3))[2];
    assert.equal(got.from, "", "a DSN has the null sender");
    assert.deepEqual(got.to, ["erin@example.net"]);
    const text = got.data.toString("latin1").replace(/\r\n(?=[ \t])/g, "");
    assert.match(text, /^Content-Type: multipart\/report;\s*report-type=delivery-status/im);
    assert.match(text, /^Final-Recipient: rfc822;\s*nobody@example\.org/im);
    assert.match(text, /^Action: failed/im);
    assert.match(text, /^Status: 5\.7\.1/im);
    assert.match(text, /^Diagnostic-Code: smtp;\s*554 5\.7\.1 <nobody@example\.org>: Recipient address\s+rejected: Access denied/im);
    assert.match(text, /^Message-ID: <c\.1@example\.net>/im, "the DSN carries the original's headers");
  });

  await t.test("(d) SMTPUTF8 through both, each way: UTF-8 addresses and header arrive as sent", async () => {
    const m = (to: string, id: string) =>
      Buffer.from(
        `From: José <josé@example.net>\r\nTo: <${to}>\r\nSubject: Grüße\r\nDate: Tue, 05 Mar 2024 10:20:30 +0000\r\n` +
          `Message-ID: <${id}@example.net>\r\n\r\nnaïve café, 日本語\r\n`,
        "utf8",
      );
    const viaTidings = m("bøb@example.org", "d.1");
    await send(node.smtpPort, "josé@example.net", ["bøb@example.org"], viaTidings, true);
    const a = (await arrive(4))[3];
    assert.equal(a.from, "josé@example.net");
    assert.deepEqual(a.to, ["bøb@example.org"]);
    assert.equal(a.smtpUtf8, true, "tidings → Postfix → sink: SMTPUTF8 on MAIL FROM at the sink");
    assert.equal(tracePrefix(a, viaTidings).length, 2);
    const viaPostfix = m("cärol@example.net", "d.2");
    await send(portB, "dävid@example.org", ["cärol@example.net"], viaPostfix, true);
    const b = (await arrive(5))[4];
    assert.equal(b.from, "dävid@example.org");
    assert.deepEqual(b.to, ["cärol@example.net"]);
    assert.equal(b.smtpUtf8, true, "Postfix → tidings → sink: SMTPUTF8 on MAIL FROM at the sink");
    const trace = tracePrefix(b, viaPostfix);
    assert.equal(trace.length, 2);
    // RFC 6531 §3.7.3: UTF8SMTP in the Received header of a hop that took SMTPUTF8
    assert.match(trace[0], /by tidings\.tidings\.test \(tidings\) with UTF8SMTP/);
    assert.match(trace[1], /by postfix-b\.tidings\.test \(Postfix\) with UTF8SMTP/);
  });

  await t.test(
    "(e) tidings' Received header names a UTF-8 recipient in UTF-8",
    () => {
      // the message of (d) that went through tidings first: its Received header is the second field
      const got = sink.messages[3];
      const head = got.data.subarray(0, got.data.indexOf("\r\n\r\n"));
      const ours = /Received: from client\.tidings\.test[^]*?(?=\r\n[^ \t])/.exec(head.toString("latin1"))![0];
      const bytes = Buffer.from(ours, "latin1");
      assert.ok(bytes.includes(Buffer.from("for <bøb@example.org>", "utf8")), `tidings' Received header in bytes: ${JSON.stringify(ours)}`);
      assert.equal(Buffer.from(bytes.toString("utf8"), "utf8").equals(bytes), true, "the header is valid UTF-8");
    },
  );

  // nothing arrives twice, and nothing is left in any queue
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(sink.messages.length, 5, `the sink got ${sink.messages.length} messages, expected 5`);
  for (const d of [dirA, dirB]) {
    const q = spawnSync("postqueue", ["-c", join(d, "etc"), "-p"], { encoding: "utf8", env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
    assert.match(q.stdout + q.stderr, /Mail queue is empty/, `Postfix queue in ${d} is empty`);
  }
});
