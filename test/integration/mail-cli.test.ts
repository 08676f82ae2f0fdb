// The operator's side of the mail queue: tidings mailq (list, retry, drop),
// tidings status, tidings route add; STARTTLS with a configured certificate;
// an idle SMTP session is closed with 421.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, tempDir } from "../helpers/node.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { freePort } from "../helpers/mesh.js";
import { mailSetup, queued, smtpTalk } from "../helpers/mail.js";

const run = promisify(execFile);
const tidings = (...args: string[]) => run(process.execPath, [CLI, ...args]);

before(() => mailSetup());

async function until(f: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("mailq lists what waits for a hop that is down, with the error; retry sends it when the hop is back; drop removes one", { timeout: 60_000 }, async () => {
  const hopPort = await freePort();
  const dir = tempDir();
  const conf = join(dir, "t.toml");
  await tidings("route", "add", "example.org", `127.0.0.1:${hopPort}`, "--config", conf);
  assert.match(readFileSync(conf, "utf8"), /\[\[route\]\]\ndomain = "example\.org"\nnext_hop = "127\.0\.0\.1:\d+"/);
  await assert.rejects(tidings("route", "add", "EXAMPLE.org", "mx", "--config", conf), /already has a route for EXAMPLE\.org/);
  const config = readFileSync(conf, "utf8") + `\n[mail]\nretry_first = 30\nretry_max = 60\nsweep = "* * * * * *"\n[feeds]\nstatus_interval = 0.2\n`;
  let node = await startNode({ dataDir: dir, config });
  try {
    for (const n of [1, 2]) {
      const r = await smtpTalk(node.smtpPort, "127.0.0.1", ["EHLO c.example", "MAIL FROM:<a@example.net>", `RCPT TO:<r${n}@example.org>`, "DATA", `Subject: ${n}\r\nMessage-ID: <cli${n}@example.net>\r\n\r\nbody\r\n.`, "QUIT"]);
      assert.match(r[4], /^250 2\.6\.0 Ok: queued as \d+/);
    }
    await until(async () => (await queued(node)).every((q) => q.attempts > 0), 10_000, "a first failed attempt");
    const list = (await tidings("mailq", "--data", dir)).stdout;
    assert.match(list, /^1 {2}\d+ bytes .* from <a@example\.net> {2}<cli1@example\.net>$/m);
    assert.match(list, /^ {4}<r1@example\.org> via 127\.0\.0\.1:\d+: 1 attempts, next try in \d+ s; last error: .*ECONNREFUSED/m);
    assert.match(list, /-- 2 messages, 2 recipients/);
    await until(async () => existsSync(join(dir, "status.json")) && JSON.parse(readFileSync(join(dir, "status.json"), "utf8")).mail?.messages === 2, 5000, "status to show the queue");
    const status = (await tidings("status", "--data", dir)).stdout;
    assert.match(status, /queue: 2 messages, 2 recipients/);
    assert.match(status, /next hop 127\.0\.0\.1:\d+: 2 recipients waiting, 2 deferred, .*last error: .*ECONNREFUSED/);

    assert.match((await tidings("mailq", "drop", "2", "--data", dir)).stdout, /message 2 dropped/);
    await assert.rejects(tidings("mailq", "drop", "2", "--data", dir), /no message 2 in the queue/);
    // the hop comes back; retry makes the rest due at once (not in 30 s)
    const sink = new SmtpSink();
    await sink.start(hopPort);
    try {
      assert.match((await tidings("mailq", "retry", "all", "--data", dir)).stdout, /1 recipients due now/);
      const [m] = await sink.waitFor(1, 10_000);
      assert.deepEqual(m.to, ["r1@example.org"]);
      await until(async () => (await queued(node)).length === 0, 5000, "the queue to empty");
      assert.match((await tidings("mailq", "--data", dir)).stdout, /mail queue is empty/);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(sink.messages.length, 1, "the dropped message was not sent");
      // sent again, the dropped message is queued and relayed, not taken for a loop
      const again = await smtpTalk(node.smtpPort, "127.0.0.1", ["EHLO c.example", "MAIL FROM:<a@example.net>", "RCPT TO:<r2@example.org>", "DATA", "Subject: 2\r\nMessage-ID: <cli2@example.net>\r\n\r\nbody\r\n.", "QUIT"]);
      assert.match(again[4], /^250 2\.6\.0 Ok: queued as 3$/);
      const [, second] = await sink.waitFor(2, 10_000);
      assert.deepEqual(second.to, ["r2@example.org"]);
      // after a restart with the queue empty, ids go on: "queued as N" is never given twice
      await node.stop();
      node = await startNode({ dataDir: dir, config });
      const r = await smtpTalk(node.smtpPort, "127.0.0.1", ["EHLO c.example", "MAIL FROM:<a@example.net>", "RCPT TO:<r3@example.org>", "DATA", "Subject: 3\r\nMessage-ID: <cli3@example.net>\r\n\r\nbody\r\n.", "QUIT"]);
      assert.match(r[4], /^250 2\.6\.0 Ok: queued as 4$/);
    } finally {
      await sink.stop();
    }
  } finally {
    await node.stop();
  }
});

test("STARTTLS is offered with a certificate, and the Received header says ESMTPS; an idle session gets 421", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const dir = tempDir();
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=relay.example.net", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
  const node = await startNode({
    dataDir: dir,
    config: `[smtp]\nhostname = "relay.example.net"\nidle_timeout = 1\ntls_cert = "${join(dir, "cert.pem")}"\ntls_key = "${join(dir, "key.pem")}"\n\n[[route]]\ndomain = "example.org"\nnext_hop = "127.0.0.1:${sinkPort}"\n`,
  });
  try {
    const ehlo = await smtpTalk(node.smtpPort, "127.0.0.1", ["EHLO c.example", "QUIT"]);
    assert.match(ehlo[0], /^250-STARTTLS$/m);
    const sw = await run("swaks", ["--server", `127.0.0.1:${node.smtpPort}`, "--tls", "--from", "a@example.net", "--to", "b@example.org", "--header", "Message-ID: <tls1@example.net>"]);
    assert.match(sw.stdout, /TLS started/);
    const [m] = await sink.waitFor(1, 10_000);
    assert.match(m.data.toString("latin1"), /^Received: from c?\S+ \(\[127\.0\.0\.1\]\)\r\n\tby relay\.example\.net \(tidings\) with ESMTPS\r\n/);
    // RFC 5321 §4.5.3.2.7: the server may close an idle session; it says 421 first
    const t0 = Date.now();
    const idle = await smtpTalk(node.smtpPort, "127.0.0.1", ["EHLO c.example"], { keepOpen: true });
    const closed = await new Promise<string>((resolve) => {
      const wait = setInterval(() => {
        if (idle.length > 1) {
          clearInterval(wait);
          resolve(idle[1]);
        }
      }, 50);
    });
    assert.match(closed, /^421 /);
    assert.ok(Date.now() - t0 >= 900, "not before the idle time");
    idle.close?.();
  } finally {
    await node.stop();
    await sink.stop();
  }
});

test("--smtp off: the node runs without an SMTP listener and says so in its ready line", { timeout: 30_000 }, async () => {
  const node = await startNode({ args: ["--smtp", "off"] });
  try {
    assert.equal(node.smtpPort, 0, "no SMTP port in the ready line");
    const st = JSON.parse(await until2(() => readStatus(node.dataDir), 5000));
    assert.equal(st.smtp, "off");
  } finally {
    await node.stop();
  }
});

function readStatus(dir: string): string | undefined {
  const f = join(dir, "status.json");
  return existsSync(f) ? readFileSync(f, "utf8") : undefined;
}

async function until2<T>(f: () => T | undefined, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}
