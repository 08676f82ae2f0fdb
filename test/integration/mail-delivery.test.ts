// Mail delivery end to end: real nodes, real senders (Python's smtplib,
// nodemailer, swaks) and SMTP sinks as next hops. What a user of a relay
// checks: mail sent during an outage arrives once the next hop is back, and
// exactly once; every 250 survives a SIGKILL; refusals come back as RFC 3464
// bounces to the sender (never to <>); 4xx is retried, and given up after
// mail.max_lifetime; two nodes relay in a chain, and a routing loop between
// them ends.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import type { SMTPServer } from "smtp-server";
import { startNode, tempDir, type TestNode } from "../helpers/node.js";
import { SmtpSink, type Received, type SinkOptions } from "../helpers/smtp-sink.js";
import { mailSetup, queued, runWithInput, smtpTalk } from "../helpers/mail.js";
import { DnsServer } from "../helpers/dns-server.js";
import { freePort, freePorts } from "../helpers/mesh.js";

const run = promisify(execFile);

// swaks is the one tool here that may be missing (python3 is a test dependency already)
before(() => {
  try {
    execFileSync("swaks", ["--version"], { stdio: "ignore" });
  } catch {
    mailSetup();
  }
});

// ---------------------------------------------------------------- helpers

function message(id: string, o: { from?: string; to?: string; subject?: string; body?: string; msgid?: boolean } = {}): Buffer {
  return Buffer.from(
    `From: Alice <${o.from ?? "alice@example.net"}>\r\nTo: <${o.to ?? "bob@example.org"}>\r\nSubject: ${o.subject ?? `delivery test ${id}`}\r\n` +
      `Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n${o.msgid === false ? "" : `Message-ID: <${id}@example.net>\r\n`}MIME-Version: 1.0\r\n` +
      `Content-Type: text/plain; charset=us-ascii\r\n\r\n${o.body ?? `Body of ${id}.\r\n`}`,
    "latin1",
  );
}

/** The Message-ID of a message as received, or "" when it has none. */
function msgidOf(data: Buffer): string {
  const head = data.subarray(0, Math.max(0, data.indexOf("\r\n\r\n"))).toString("latin1");
  return /^message-id:[ \t]*(<[^>\r\n]*>)/im.exec(head)?.[1] ?? "";
}

function countById(msgs: Received[]): Map<string, number> {
  const n = new Map<string, number>();
  for (const m of msgs) n.set(msgidOf(m.data), (n.get(msgidOf(m.data)) ?? 0) + 1);
  return n;
}

/**
 * A sink that answers the end of DATA only after `ms`. It records the message
 * before answering (as a real MTA commits before its 250), so a sender killed
 * in between has delivered a message it does not know about.
 */
function slowSink(ms: number, opts: SinkOptions = {}): SmtpSink {
  const sink = new SmtpSink(opts);
  const s = sink as unknown as { onData: (stream: unknown, session: unknown, cb: (err?: Error | null) => void) => void };
  const onData = s.onData.bind(sink);
  s.onData = (stream, session, cb) => onData(stream, session, (err) => void setTimeout(() => cb(err), ms));
  return sink;
}

async function waitUntil(f: () => Promise<boolean> | boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting until ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Test settings: quick retries, a sweep every second, status.json twice a second. */
function nodeConfig(o: { hostname: string; routes: [string, string][]; smtp?: string; mail?: string }): string {
  return (
    `[smtp]\nhostname = "${o.hostname}"\nrelay_from = ["127.0.0.1/32"]\n${o.smtp ?? ""}\n` +
    `[mail]\nretry_first = 0.2\nretry_max = 1\nsweep = "* * * * * *"\n${o.mail ?? ""}\n` +
    `[feeds]\nstatus_interval = 0.5\n` +
    o.routes.map(([domain, hop]) => `\n[[route]]\ndomain = "${domain}"\nnext_hop = "${hop}"\n`).join("")
  );
}

interface MailStatus {
  counts: { queued: number; sent: number; failed: number; retried: number; looped: number };
  received: { messages: number; refusedMessages: number };
}

function mailStatus(node: TestNode): MailStatus | undefined {
  try {
    return (JSON.parse(readFileSync(join(node.dataDir, "status.json"), "utf8")) as { mail: MailStatus }).mail;
  } catch {
    return undefined; // not written yet, or being replaced
  }
}

interface Job {
  from: string;
  to: string[];
  data: Buffer;
  /** MAIL FROM parameters, e.g. ["SMTPUTF8"] */
  options?: string[];
}

/**
 * Sends with Python's smtplib over `connections` connections at once and
 * returns each message's final reply ("250 2.6.0 Ok: queued as 7"); MAIL and
 * RCPT must get 250.
 */
async function smtplibSend(port: number, jobs: Job[], connections = 1): Promise<string[]> {
  const out = await runWithInput(
    "python3",
    [
      "-c",
      `
import json, smtplib, sys, threading
req = json.load(sys.stdin)
jobs, n = req["jobs"], req["connections"]
res = [None] * len(jobs)
def work(k):
    s = smtplib.SMTP("127.0.0.1", req["port"], timeout=30)
    s.ehlo("sender.example.net")
    for i in range(k, len(jobs), n):
        j = jobs[i]
        c, m = s.mail(j["from"], j["options"])
        assert c == 250, ("MAIL", c, m)
        for r in j["to"]:
            c, m = s.rcpt(r)
            assert c == 250, ("RCPT", r, c, m)
        c, m = s.data(bytes.fromhex(j["data"]))
        res[i] = "%d %s" % (c, m.decode("latin1"))
    s.quit()
ts = [threading.Thread(target=work, args=(k,)) for k in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(res))
`,
    ],
    JSON.stringify({ port, connections, jobs: jobs.map((j) => ({ from: j.from, to: j.to, options: j.options ?? [], data: j.data.toString("hex") })) }),
  );
  return JSON.parse(out) as string[];
}

/** Sends with nodemailer's pooled transport, `connections` at once; resolves to the final replies. */
async function nodemailerSend(port: number, jobs: Job[], connections: number): Promise<string[]> {
  const t = nodemailer.createTransport({ pool: true, maxConnections: connections, maxMessages: Infinity, host: "127.0.0.1", port, secure: false, ignoreTLS: true, name: "sender.example.net" });
  try {
    return await Promise.all(jobs.map(async (j) => (await t.sendMail({ envelope: { from: j.from, to: j.to } as never, raw: j.data })).response));
  } finally {
    t.close();
  }
}

/** Sends one message with swaks, its data from a file so that the bytes are known; returns swaks's transcript. */
async function swaks(port: number, from: string, to: string, data: Buffer, dir: string): Promise<string> {
  const file = join(dir, `swaks-${Date.now()}-${Math.random().toString(36).slice(2)}.eml`);
  writeFileSync(file, data.subarray(0, -2)); // swaks ends the data with CRLF . CRLF itself
  const r = await run("swaks", ["--server", `127.0.0.1:${port}`, "--helo", "sender.example.net", "--from", from, "--to", to, "--data", `@${file}`]);
  return r.stdout;
}

interface ParsedDsn {
  type: string;
  reportType: string | null;
  to: string;
  parts: string[];
  perMessage: Record<string, string>;
  recipients: Record<string, string>[];
  originalMsgid: string | null;
}

/** Reads a DSN back with Python's email package (policy=default), as a mail reader would. */
async function parseDsn(data: Buffer): Promise<ParsedDsn> {
  const out = await runWithInput(
    "python3",
    [
      "-c",
      `
import email, email.policy, json, re, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
parts = list(m.iter_parts())
def groups_of(p):
    if p.get_content_type() == "message/delivery-status":
        return p.get_payload()
    # message/global-delivery-status (RFC 6533) is read as one encapsulated message: split it into its groups
    text = p.get_payload()[0].as_bytes(policy=email.policy.SMTPUTF8)
    return [email.message_from_bytes(g + b"\\r\\n\\r\\n", policy=email.policy.default) for g in re.split(rb"\\r?\\n\\r?\\n", text.strip()) if g.strip()]
ds = [p for p in parts if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")]
groups = groups_of(ds[0]) if ds else []
orig = [p for p in parts if p.get_content_type() in ("message/rfc822", "message/global")]
inner = orig[0].get_payload()[0] if orig else None
print(json.dumps({
  "type": m.get_content_type(),
  "reportType": m.get_param("report-type"),
  "to": str(m["To"]),
  "parts": [p.get_content_type() for p in parts],
  "perMessage": {k: str(v) for k, v in groups[0].items()} if groups else {},
  "recipients": [{k: str(v) for k, v in g.items()} for g in groups[1:]],
  "originalMsgid": str(inner["Message-ID"]) if inner is not None else None,
}, ensure_ascii=False))
`,
    ],
    data,
  );
  return JSON.parse(out) as ParsedDsn;
}

// ---------------------------------------------------------------- 1. outage

test("the next hop is down while 20 messages are sent: each gets 250, the deferrals show in the queue, and once it is up each arrives exactly once", { timeout: 90_000 }, async () => {
  const sinkPort = await freePort(); // nothing listens there yet
  const node = await startNode({ config: nodeConfig({ hostname: "relay.example.net", routes: [["example.org", `127.0.0.1:${sinkPort}`]] }) });
  const sink = new SmtpSink();
  try {
    const jobs = Array.from({ length: 20 }, (_, i) => ({ from: "alice@example.net", to: [`bob${i}@example.org`], data: message(`outage${i}`) }));
    const replies = await smtplibSend(node.smtpPort, jobs, 2);
    replies.forEach((r, i) => assert.match(r ?? "", /^250 2\.6\.0 Ok: queued as \d+/, `message ${i}: ${r}`));

    // while the hop is down every recipient is deferred, with the connection failure named
    await waitUntil(
      async () => {
        const q = await queued(node);
        return q.length === 20 && q.every((r) => r.attempts > 0);
      },
      15_000,
      () => "all 20 recipients were tried at least once",
    );
    const q = await queued(node);
    for (const r of q) assert.match(r.last_error, /ECONNREFUSED/, `last_error of ${r.rcpt}: ${r.last_error}`);
    assert.equal(sink.messages.length, 0);

    await sink.start(sinkPort);
    await waitUntil(async () => (await queued(node)).length === 0, 30_000, () => `the queue empties (${sink.messages.length} delivered)`);
    // the queue is empty, so nothing more can be sent: the counts are final
    const counts = countById(sink.messages);
    for (const j of jobs) assert.equal(counts.get(msgidOf(j.data)), 1, `${msgidOf(j.data)} arrives exactly once`);
    assert.equal(sink.messages.length, 20);
    for (const m of sink.messages) {
      const i = Number(/outage(\d+)@/.exec(msgidOf(m.data))![1]);
      assert.deepEqual(m.to, [`bob${i}@example.org`]);
      assert.equal(m.from, "alice@example.net");
      assert.ok(m.data.subarray(m.data.length - jobs[i].data.length).equals(jobs[i].data), "the bytes as sent, after our Received header");
    }
  } finally {
    await node.stop();
    await sink.stop();
  }
});

// ---------------------------------------------------------------- 2. SIGKILL

// down: nothing listens on the next hop's port until the restart; slow: the
// sink answers each end of DATA 100 ms late, so deliveries are under way at the
// kill; busy: as slow, but the kill comes once the sink has taken 60 messages,
// in the middle of delivery.
for (const sinkState of ["down", "slow", "busy"] as const) {
  test(`SIGKILL right after 200 250s (next hop ${sinkState}): after a restart on the same data every acknowledged message is delivered`, { timeout: 120_000 }, async (t) => {
    const sinkPort = await freePort();
    const dataDir = tempDir();
    const config = nodeConfig({ hostname: "relay.example.net", routes: [["example.org", `127.0.0.1:${sinkPort}`]] });
    let sink: SmtpSink | undefined = sinkState === "down" ? undefined : slowSink(100);
    if (sink) await sink.start(sinkPort);
    let node: TestNode | undefined;
    try {
      node = await startNode({ dataDir, config });
      const jobs = Array.from({ length: 200 }, (_, i) => ({ from: "alice@example.net", to: [`rcpt${i % 7}@example.org`], data: message(`kill-${sinkState}-${i}`) }));
      const replies = await nodemailerSend(node.smtpPort, jobs, 5);
      if (sinkState === "busy") await waitUntil(() => sink!.messages.length >= 60, 30_000, () => `the sink has 60 messages (${sink!.messages.length})`);
      await node.kill();
      replies.forEach((r, i) => assert.match(r, /^250 2\.6\.0 Ok: queued as \d+/, `message ${i}: ${r}`));
      // what the dead node wrote before it died may still be in the sink's sockets: count once they are closed
      const server = sink && (sink as unknown as { server: SMTPServer & { connections: Set<unknown> } }).server;
      if (server) await waitUntil(() => server.connections.size === 0, 10_000, () => `the sink's connections from the killed node close (${server.connections.size} open)`);
      const atKill = sink?.messages.length ?? 0;
      const leftInQueue = new Set((await queued(node)).map((r) => r.mail)).size;
      // taken by the sink but still queued here: these are sent again after the restart
      const unsettled = atKill - (200 - leftInQueue);
      t.diagnostic(`at the kill: ${atKill} delivered, ${leftInQueue} messages still queued (${unsettled} of them delivered already)`);
      if (sinkState === "down") assert.equal(leftInQueue, 200, "every acknowledged message is in the queue after the kill");

      if (!sink) {
        sink = new SmtpSink();
        await sink.start(sinkPort);
      }
      node = await startNode({ dataDir, config });
      await waitUntil(async () => (await queued(node!)).length === 0, 60_000, () => `the queue empties after the restart (${sink!.messages.length} delivered)`);
      const counts = countById(sink.messages);
      const missing = jobs.filter((j) => !counts.has(msgidOf(j.data)));
      assert.deepEqual(missing.map((j) => msgidOf(j.data)), [], "every message acknowledged with 250 is delivered");
      const dups = [...counts].filter(([, n]) => n > 1);
      t.diagnostic(`delivered ${sink.messages.length} for 200 messages; duplicates: ${dups.length}${dups.length ? ` (${dups.map(([id, n]) => `${id} x${n}`).join(", ")})` : ""}`);
      if (sinkState === "down") assert.equal(dups.length, 0, "nothing was delivered before the kill, so nothing twice");
      else {
        // A message the sink took but whose 250 the node had not yet committed
        // as sent is sent again after the restart (RFC 5321 §6.1 accepts such
        // duplicates; the alternative is loss). Only deliveries under way at
        // the kill may be sent twice: those on the hop's connections, and
        // those answered whose settle was not yet written. Each holds a place
        // in the hop's window (connections_per_hop 8 × 4 = 32) until its settle
        // is written, however slow the disk; a slow fsync once let 14 through
        // where 8 connections were assumed to be the bound.
        assert.equal(dups.length, unsettled, "the duplicates are the messages delivered but not yet settled at the kill");
        assert.ok(dups.length <= 32, `at most a window of deliveries is repeated: ${dups.length}`);
        for (const [, n] of dups) assert.equal(n, 2);
      }
    } finally {
      await node?.stop();
      await sink?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
}

// ---------------------------------------------------------------- 3. bounce

test("550 for one recipient: a DSN to the sender (multipart/report, Status 5.1.1, the original attached), the other recipient gets the message once; no DSN for a message from <>", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink({ reply: (rcpt) => (rcpt === "nosuch@example.org" ? { code: 550, message: "5.1.1 no such user" } : undefined) });
  const bounces = new SmtpSink({ name: "bounces.example.net" });
  const [sinkPort, bouncePort] = [await sink.start(), await bounces.start()];
  const node = await startNode({
    config: nodeConfig({ hostname: "relay.example.net", routes: [["example.org", `127.0.0.1:${sinkPort}`], ["example.net", `127.0.0.1:${bouncePort}`]] }),
  });
  try {
    const a = message("bounce1", { to: "bob@example.org, nosuch@example.org" });
    const b = message("bounce-null", { from: "mailer-daemon@example.net", to: "nosuch@example.org", subject: "a bounce that bounces" });
    const replies = await smtplibSend(node.smtpPort, [
      { from: "alice@example.net", to: ["bob@example.org", "nosuch@example.org"], data: a },
      { from: "", to: ["nosuch@example.org"], data: b },
    ]);
    for (const r of replies) assert.match(r, /^250 /);

    const [dsn] = await bounces.waitFor(1, 20_000);
    await waitUntil(async () => (await queued(node)).length === 0, 20_000, () => "the queue empties");

    // the accepted recipient: once, alone, and not in the DSN
    const toBob = sink.messages.filter((m) => msgidOf(m.data) === "<bounce1@example.net>");
    assert.equal(toBob.length, 1, "bob gets the message once");
    assert.deepEqual(toBob[0].to, ["bob@example.org"]);
    assert.equal(sink.refusals.filter((r) => r.to[0] === "nosuch@example.org").length, 2, "each message tried nosuch@ once: 550 is not retried");

    // the DSN's envelope, then what Python's email package makes of it
    assert.equal(dsn.from, "", "a DSN comes from <>");
    assert.deepEqual(dsn.to, ["alice@example.net"], "to the original's envelope sender");
    const p = await parseDsn(dsn.data);
    assert.equal(p.type, "multipart/report");
    assert.equal(p.reportType, "delivery-status");
    assert.deepEqual(p.parts, ["text/plain", "message/delivery-status", "message/rfc822"]);
    assert.match(p.to, /alice@example\.net/);
    assert.match(p.perMessage["Reporting-MTA"] ?? "", /^dns; ?relay\.example\.net$/);
    assert.equal(p.recipients.length, 1, `only the failed recipient is reported: ${JSON.stringify(p.recipients)}`);
    const r = p.recipients[0];
    assert.equal(r["Final-Recipient"], "rfc822; nosuch@example.org");
    assert.equal(r["Action"], "failed");
    assert.equal(r["Status"], "5.1.1");
    assert.match(r["Diagnostic-Code"] ?? "", /^smtp; ?550 5\.1\.1 no such user/);
    assert.equal(p.originalMsgid, "<bounce1@example.net>");
    // the original as queued (our Received header, then the sender's bytes), returned byte for byte
    assert.ok(dsn.data.includes(toBob[0].data), "the original is attached byte for byte");
    assert.ok(!dsn.data.toString("latin1").includes("bob@example.org>:"), "bob is not reported");

    // the queue is empty: any DSN for the message from <> would have been delivered by now
    assert.equal(bounces.messages.length, 1, "no DSN for the message from <>");
    assert.equal(sink.messages.filter((m) => msgidOf(m.data) === "<bounce-null@example.net>").length, 0);
  } finally {
    await node.stop();
    await sink.stop();
    await bounces.stop();
  }
});

test("replies are matched to recipients whatever the SMTP client does to their spelling: capitals in the domain, an IDN", { timeout: 60_000 }, async () => {
  // nodemailer lower-cases the domain and turns U-labels into A-labels in RCPT
  // TO, and names refused recipients in that form; the queue has them as received
  const sink = new SmtpSink({
    reply: (rcpt, attempt) => {
      if (/^gone@/i.test(rcpt)) return { code: 550, message: "5.1.1 no such user" };
      if (/^later@/i.test(rcpt) && attempt === 1) return { code: 451, message: "4.3.0 try again later" };
      return undefined;
    },
  });
  const bounces = new SmtpSink();
  const [sinkPort, bouncePort] = [await sink.start(), await bounces.start()];
  const node = await startNode({
    config: nodeConfig({
      hostname: "relay.example.net",
      routes: [["example.org", `127.0.0.1:${sinkPort}`], ["xn--bcher-kva.example", `127.0.0.1:${sinkPort}`], ["example.net", `127.0.0.1:${bouncePort}`]],
    }),
  });
  try {
    const rcpts = ["bob@example.org", "Gone@Example.ORG", "Later@Example.ORG", "gone@bücher.example"];
    const data = message("spelling1", { to: "bob@example.org" });
    const [r] = await smtplibSend(node.smtpPort, [{ from: "alice@example.net", to: rcpts, data, options: ["SMTPUTF8"] }]);
    assert.match(r, /^250 /);
    await waitUntil(async () => (await queued(node)).length === 0, 20_000, () => "the queue empties");
    const got = sink.messages.filter((m) => msgidOf(m.data) === "<spelling1@example.net>");
    const delivered = got.flatMap((m) => m.to.map((t) => t.toLowerCase())).sort();
    assert.deepEqual(delivered, ["bob@example.org", "later@example.org"], "bob at once, Later@ after its 451: each once");
    assert.equal(bounces.messages.length, 1, "one DSN for the two refused recipients");
    const p = await parseDsn(bounces.messages[0].data);
    assert.deepEqual(p.recipients.map((x) => x["Final-Recipient"]).sort(), ["rfc822; Gone@Example.ORG", "utf-8; gone@bücher.example"].sort());
    for (const x of p.recipients) {
      assert.equal(x["Action"], "failed");
      assert.equal(x["Status"], "5.1.1");
    }
  } finally {
    await node.stop();
    await sink.stop();
    await bounces.stop();
  }
});

// ---------------------------------------------------------------- 4. 4xx

test("451 twice, then accepted: delivered once; always 4xx: bounced after mail.max_lifetime with a delivery-time-expired DSN; the bounced message sent again is delivered", { timeout: 60_000 }, async (t) => {
  let mailboxFull = true;
  const sink = new SmtpSink({
    reply: (rcpt, attempt) => {
      if (rcpt === "flaky@example.org" && attempt <= 2) return { code: 451, message: "4.3.0 try again later" };
      if (rcpt === "never@example.org" && mailboxFull) return { code: 452, message: "4.2.2 mailbox full" };
      return undefined;
    },
  });
  const bounces = new SmtpSink();
  const [sinkPort, bouncePort] = [await sink.start(), await bounces.start()];
  const node = await startNode({
    config: nodeConfig({ hostname: "relay.example.net", mail: "max_lifetime = 3\n", routes: [["example.org", `127.0.0.1:${sinkPort}`], ["example.net", `127.0.0.1:${bouncePort}`]] }),
  });
  try {
    const flaky = message("flaky", { to: "flaky@example.org" });
    const never = message("never", { to: "never@example.org" });
    const sent = Date.now();
    const replies = await smtplibSend(node.smtpPort, [
      { from: "alice@example.net", to: ["flaky@example.org"], data: flaky },
      { from: "alice@example.net", to: ["never@example.org"], data: never },
    ]);
    for (const r of replies) assert.match(r, /^250 /);

    // the deferral is visible while it lasts
    await waitUntil(async () => (await queued(node)).some((r) => r.rcpt === "never@example.org" && r.attempts > 0 && /451|452/.test(r.last_error)), 10_000, () => "never@ is deferred with the 4xx reply");
    const [dsn] = await bounces.waitFor(1, 20_000);
    const bouncedAfter = Date.now() - sent;
    await waitUntil(async () => (await queued(node)).length === 0, 20_000, () => "the queue empties");

    const got = sink.messages.filter((m) => msgidOf(m.data) === "<flaky@example.net>");
    assert.equal(got.length, 1, "the message arrives once");
    assert.equal(sink.refusals.filter((r) => r.to[0] === "flaky@example.org").length, 2, "after two 451s");
    assert.ok(got[0].data.subarray(got[0].data.length - flaky.length).equals(flaky));
    assert.ok(sink.refusals.filter((r) => r.to[0] === "never@example.org").length >= 2, "never@ was retried");
    assert.ok(bouncedAfter >= 3000, `not given up before max_lifetime (${bouncedAfter} ms)`);
    // the next attempt after the lifetime gives up: at most retry_max (+25% jitter) and a sweep later, and the DSN's own delivery
    assert.ok(bouncedAfter < 10_000, `given up soon after max_lifetime (${bouncedAfter} ms)`);

    assert.equal(dsn.from, "");
    assert.deepEqual(dsn.to, ["alice@example.net"]);
    const p = await parseDsn(dsn.data);
    assert.equal(p.type, "multipart/report");
    assert.equal(p.reportType, "delivery-status");
    assert.equal(p.recipients.length, 1);
    const r = p.recipients[0];
    t.diagnostic(`bounced after ${bouncedAfter} ms: Status ${r["Status"]}; Diagnostic-Code ${r["Diagnostic-Code"]}`);
    assert.equal(r["Final-Recipient"], "rfc822; never@example.org");
    assert.equal(r["Action"], "failed");
    // given up while the condition was transient: the last reply's status, in class 4 (RFC 3463 §2,
    // and its X.4.7 asks for the actual problem's code where there is one), as Postfix reports it
    assert.equal(r["Status"], "4.2.2");
    assert.match(r["Diagnostic-Code"] ?? "", /^smtp; 452 4\.2\.2 mailbox full/, "the last reply is the diagnostic");
    assert.equal(p.originalMsgid, "<never@example.net>");
    assert.equal(bounces.messages.length, 1, "one DSN, for never@ only");

    // the mailbox has room again and the sender sends the same message (same
    // Message-ID) again, as one does with the original a bounce returns: it is
    // not taken for a loop, since it was never relayed to never@
    mailboxFull = false;
    const [again] = await smtplibSend(node.smtpPort, [{ from: "alice@example.net", to: ["never@example.org"], data: never }]);
    assert.match(again, /^250 2\.6\.0 Ok: queued as \d+/, "queued again");
    await waitUntil(() => sink.messages.some((m) => msgidOf(m.data) === "<never@example.net>"), 10_000, () => "the message sent again arrives");
    await waitUntil(async () => (await queued(node)).length === 0, 10_000, () => "the queue empties");
    assert.equal(sink.messages.filter((m) => msgidOf(m.data) === "<never@example.net>").length, 1);
  } finally {
    await node.stop();
    await sink.stop();
    await bounces.stop();
  }
});

// ---------------------------------------------------------------- 5. chains and loops

test("the hop drops a kept connection as the next message starts: that message goes at once on a new one, not deferred; a refused recipient does not cost the connection", { timeout: 60_000 }, async () => {
  // MAIL FROM 2 is the first on the connection kept from message 1: dropped there, before a byte of the message
  const sink = new SmtpSink({
    mailFrom: (n) => (n === 2 ? "drop" : undefined),
    reply: (rcpt) => (rcpt === "nosuch@example.org" ? { code: 550, message: "5.1.1 no such user" } : undefined),
  });
  const sinkPort = await sink.start();
  const node = await startNode({ config: nodeConfig({ hostname: "relay.example.net", routes: [["example.org", `127.0.0.1:${sinkPort}`]], mail: "connections_per_hop = 1" }) });
  try {
    const send = async (id: string, from: string, to: string) =>
      assert.match((await smtplibSend(node.smtpPort, [{ from, to: [to], data: message(id) }]))[0], /^250 /, `${id} is queued`);
    await send("kept1", "alice@example.net", "bob@example.org");
    await sink.waitFor(1, 20_000);
    await send("kept2", "alice@example.net", "bob@example.org");
    await sink.waitFor(2, 20_000);
    // from <>, so that the 550 bounces to no one
    await send("kept3", "", "nosuch@example.org");
    await waitUntil(() => sink.refusals.length === 1, 20_000, () => "the sink refuses kept3's recipient");
    await send("kept4", "alice@example.net", "bob@example.org");
    await sink.waitFor(3, 20_000);
    await waitUntil(() => mailStatus(node)?.counts.failed === 1 && mailStatus(node)?.counts.sent === 3, 10_000, () => `status counts 3 sent, 1 failed (${JSON.stringify(mailStatus(node)?.counts)})`);
    assert.equal(mailStatus(node)!.counts.retried, 0, "the dropped connection deferred nothing: kept2 went on a new connection at once");
    assert.deepEqual(sink.messages.map((m) => msgidOf(m.data)), ["<kept1@example.net>", "<kept2@example.net>", "<kept4@example.net>"]);
    assert.equal(sink.connections, 2, "one connection for kept1, a second after the drop, kept after the 550 (RSET) for kept4");
  } finally {
    await node.stop();
    await sink.stop();
  }
});

test("the (Message-ID, recipient) memory outlives a restart: the same message sent again after it gets 250 and is not relayed twice", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const dataDir = tempDir();
  const config = nodeConfig({ hostname: "relay.example.net", routes: [["example.org", `127.0.0.1:${sinkPort}`]] });
  let node = await startNode({ dataDir, config });
  try {
    const sent = message("remembered1");
    assert.match(await swaks(node.smtpPort, "alice@example.net", "bob@example.org", sent, node.dataDir), /<- {2}250 2\.6\.0 Ok: queued as \d+/);
    await sink.waitFor(1, 20_000);
    await waitUntil(async () => (await queued(node)).length === 0, 10_000, () => "the queue empties");
    await node.stop({ keepData: true });
    // the memory is read back at start (a filter in front of the table): a message that is
    // surely new needs no read, one relayed before must still be found
    node = await startNode({ dataDir, config });
    const again = await swaks(node.smtpPort, "alice@example.net", "bob@example.org", sent, node.dataDir);
    assert.match(again, /<- {2}250 /, "a client sending again after a lost reply gets its 250");
    const other = message("remembered2");
    assert.match(await swaks(node.smtpPort, "alice@example.net", "bob@example.org", other, node.dataDir), /<- {2}250 /);
    await sink.waitFor(2, 20_000);
    await waitUntil(() => mailStatus(node)?.counts.looped === 1, 10_000, () => `one recipient left out as relayed already (${JSON.stringify(mailStatus(node)?.counts)})`);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual([...countById(sink.messages)], [["<remembered1@example.net>", 1], ["<remembered2@example.net>", 1]]);
  } finally {
    await node.stop();
    await sink.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("two nodes as a chain of relays: swaks -> A -> B -> sink, byte for byte under two Received headers (B's above A's)", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const b = await startNode({ config: nodeConfig({ hostname: "b.example.net", routes: [["example.org", `127.0.0.1:${sinkPort}`]] }) });
  const a = await startNode({ config: nodeConfig({ hostname: "a.example.net", routes: [["example.org", `127.0.0.1:${b.smtpPort}`]] }) });
  try {
    const sent = message("chain1", { body: "Through two relays.\r\n..a dot-stuffed line\r\n" });
    const out = await swaks(a.smtpPort, "alice@example.net", "bob@example.org", sent, a.dataDir);
    assert.match(out, /<- {2}250 2\.6\.0 Ok: queued as \d+/);
    const [got] = await sink.waitFor(1, 20_000);
    assert.equal(got.from, "alice@example.net");
    assert.deepEqual(got.to, ["bob@example.org"]);
    assert.ok(got.data.subarray(got.data.length - sent.length).equals(sent), "the message arrives byte for byte");
    const trace = got.data.subarray(0, got.data.length - sent.length).toString("latin1");
    const received = trace.split(/\r\n(?=Received:)/);
    assert.equal(received.length, 2, `two Received headers prepended: ${JSON.stringify(trace)}`);
    assert.match(received[0], /^Received: from a\.example\.net \(\[127\.0\.0\.1\]\)\r\n\tby b\.example\.net \(tidings\) with ESMTP\r\n\tfor <bob@example\.org>;/, "B's on top, naming A as the client");
    assert.match(received[1], /^Received: from sender\.example\.net \(\[127\.0\.0\.1\]\)\r\n\tby a\.example\.net \(tidings\) with ESMTP\r\n\tfor <bob@example\.org>;/);
    await waitUntil(async () => (await queued(a)).length === 0 && (await queued(b)).length === 0, 10_000, () => "both queues empty");
  } finally {
    await a.stop();
    await b.stop();
    await sink.stop();
  }
});

test("a routing loop between two nodes ends with a 5.4.6 bounce: at once by the (Message-ID, recipient) memory and our own Received, or without a Message-ID by smtp.max_received", { timeout: 90_000 }, async (t) => {
  const bounces = new SmtpSink();
  const bouncePort = await bounces.start();
  const [pa, pb] = await freePorts(2);
  const routes = (other: number): [string, string][] => [["loop.example", `127.0.0.1:${other}`], ["example.net", `127.0.0.1:${bouncePort}`]];
  const smtp = "max_received = 6\n";
  const a = await startNode({ args: ["--smtp", `127.0.0.1:${pa}`], config: nodeConfig({ hostname: "a.example.net", smtp, routes: routes(pb) }) });
  const b = await startNode({ args: ["--smtp", `127.0.0.1:${pb}`], config: nodeConfig({ hostname: "b.example.net", smtp, routes: routes(pa) }) });
  const both = async () => [...(await queued(a)), ...(await queued(b))];
  try {
    // with a Message-ID: A -> B -> A, where A has relayed (Message-ID, x@loop.example) already
    const withId = message("loop1", { to: "x@loop.example" });
    assert.match(await swaks(a.smtpPort, "alice@example.net", "x@loop.example", withId, a.dataDir), /<- {2}250 /);
    // status.json is rewritten twice a second: wait for the figures, not for time
    const figures = () => {
      const sa = mailStatus(a);
      const sb = mailStatus(b);
      return sa && sb ? { aReceived: sa.received.messages, bReceived: sb.received.messages, aLooped: sa.counts.looped, bLooped: sb.counts.looped, refused: sa.received.refusedMessages + sb.received.refusedMessages } : undefined;
    };
    // A got it from swaks; back from B, with A's own Received in it and (Message-ID, x@loop.example)
    // already relayed, A refuses it as a loop (554 5.4.6) and B bounces it to the sender
    const loop1 = { aReceived: 1, bReceived: 1, aLooped: 1, bLooped: 0, refused: 1 };
    await waitUntil(() => JSON.stringify(figures()) === JSON.stringify(loop1), 20_000, () => `the figures become ${JSON.stringify(loop1)}: ${JSON.stringify(figures())}`);
    await waitUntil(async () => (await both()).length === 0, 20_000, () => "both queues empty");
    const [loopDsn] = await bounces.waitFor(1, 20_000);
    const p1 = await parseDsn(loopDsn.data);
    assert.equal(p1.recipients[0]["Final-Recipient"], "rfc822; x@loop.example");
    assert.equal(p1.recipients[0]["Status"], "5.4.6");
    assert.match(p1.recipients[0]["Diagnostic-Code"] ?? "", /^smtp; 554 5\.4\.6 Mail loop: already relayed to <x@loop\.example> by a\.example\.net/);

    // without a Message-ID there is nothing to remember: the Received headers grow until one side refuses
    const noId = message("loop2", { to: "y@loop.example", msgid: false, subject: "loop without a Message-ID" });
    assert.match(await swaks(a.smtpPort, "alice@example.net", "y@loop.example", noId, a.dataDir), /<- {2}250 /);
    const dsn = (await bounces.waitFor(2, 30_000)).find((m) => m.data.includes("loop without a Message-ID"));
    assert.ok(dsn, "a bounce comes back to the sender");
    await waitUntil(async () => (await both()).length === 0, 20_000, () => "both queues empty");
    // accepted with 0 to 6 Received headers (max_received = 6): 7 receptions, 4 at A and 3 at B; the 8th, with 7, is refused by B
    const loop2 = { aReceived: 1 + 4, bReceived: 1 + 3, aLooped: 1, bLooped: 0, refused: 1 + 1 };
    await waitUntil(() => JSON.stringify(figures()) === JSON.stringify(loop2), 20_000, () => `the figures become ${JSON.stringify(loop2)}: ${JSON.stringify(figures())}`);
    assert.equal(dsn.from, "");
    assert.deepEqual(dsn.to, ["alice@example.net"]);
    const p = await parseDsn(dsn.data);
    assert.equal(p.recipients.length, 1);
    assert.equal(p.recipients[0]["Final-Recipient"], "rfc822; y@loop.example");
    assert.equal(p.recipients[0]["Action"], "failed");
    assert.equal(p.recipients[0]["Status"], "5.4.6");
    assert.match(p.recipients[0]["Diagnostic-Code"] ?? "", /^smtp; 554 5\.4\.6 Too many hops \(7 Received headers\)/);
    // the original returned is A's copy: 7 Received headers, alternately by A and by B
    const trail = [...dsn.data.toString("latin1").matchAll(/^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby ([ab])\.example\.net/gm)].map((m) => m[1]).join("");
    assert.equal(trail, "abababa");
    assert.equal(bounces.messages.length, 2, "one bounce for each looping message");
  } finally {
    await a.stop();
    await b.stop();
    await bounces.stop();
  }
});

test("mx routes: the domain's MX host from DNS, the domain itself when it has no MX, and a bounce for a domain that does not exist", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink();
  const mxPort = await sink.start();
  const bounces = new SmtpSink();
  const bouncePort = await bounces.start();
  const dnsServer = new DnsServer({
    mx: { "mx.example": [[20, "backup.mx.example"], [10, "mail.mx.example"]], "two.example": [[10, "dead.two.example"], [20, "mail.mx.example"]] },
    // nothing listens on 127.0.0.2 (the sink is on 127.0.0.1): the first MX of two.example is down
    a: { "mail.mx.example": "127.0.0.1", "nomx.example": "127.0.0.1", "dead.two.example": "127.0.0.2" },
  });
  const dnsPort = await dnsServer.start();
  const node = await startNode({
    config: `[smtp]\nhostname = "relay.example.net"\n[mail]\nretry_first = 0.2\nretry_max = 1\nsweep = "* * * * * *"\ndns_servers = ["127.0.0.1:${dnsPort}"]\nmx_port = ${mxPort}\n` +
      `[[route]]\ndomain = "*"\nnext_hop = "mx"\n[[route]]\ndomain = "example.net"\nnext_hop = "127.0.0.1:${bouncePort}"\n`,
  });
  try {
    const send = (to: string, id: string) =>
      smtpTalk(node.smtpPort, "127.0.0.1", ["EHLO c.example", "MAIL FROM:<alice@example.net>", `RCPT TO:<${to}>`, "DATA", `Subject: mx\r\nMessage-ID: <${id}@example.net>\r\n\r\nbody\r\n.`, "QUIT"]);
    for (const [to, id] of [["bob@mx.example", "mx1"], ["carol@NoMX.example", "mx2"], ["dave@nowhere.example", "mx3"], ["erin@two.example", "mx4"]]) {
      assert.match((await send(to, id))[4], /^250 /);
    }
    const got = await sink.waitFor(3, 15_000);
    // (nodemailer writes domains in lower case on the wire; they are case-insensitive)
    assert.deepEqual(got.map((m) => m.to[0]).sort(), ["bob@mx.example", "carol@nomx.example", "erin@two.example"], "the second MX host took what the first could not");
    // the preferred MX host (10) was looked up, not the backup (20)
    assert.ok(dnsServer.queries.some((q) => q.name === "mail.mx.example" && q.type === 1));
    assert.ok(!dnsServer.queries.some((q) => q.name === "backup.mx.example"));
    const [dsn] = await bounces.waitFor(1, 15_000);
    const p = await parseDsn(dsn.data);
    assert.equal(p.recipients[0]["Final-Recipient"], "rfc822; dave@nowhere.example");
    assert.equal(p.recipients[0]["Status"], "5.1.2");
    await waitUntil(async () => (await queued(node)).length === 0, 10_000, () => "the queue to empty");
  } finally {
    await node.stop();
    await dnsServer.stop();
    await sink.stop();
    await bounces.stop();
  }
});
