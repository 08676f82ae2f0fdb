// The Postfix sandbox works end to end: Python's smtplib hands a message to a
// private Postfix on loopback (postfix-sandbox.sh), which relays it to our SMTP
// sink (test/helpers/smtp-sink.ts); the sink must get the same envelope and
// the same bytes, behind the Received: field Postfix prepends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../helpers/mesh.js";
import { tempDir } from "../helpers/node.js";
import { interopScript } from "../helpers/interop.js";
import { SmtpSink } from "../helpers/smtp-sink.js";


function run(script: string, ...args: string[]): { code: number; out: string } {
  const r = spawnSync("bash", [interopScript(script), ...args], { encoding: "utf8", timeout: 300_000 });
  return { code: r.status ?? -1, out: (r.stdout ?? "") + (r.stderr ?? "") };
}

const SEND = String.raw`
import sys, smtplib
port, sender, rcpt = sys.argv[1:4]
data = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as s:
    s.ehlo("client.tidings.test")
    refused = s.sendmail(sender, [rcpt], data, mail_options=["BODY=8BITMIME"])
    if refused:
        sys.exit("refused: %r" % (refused,))
`;

test("a private Postfix relays a message to the sink with its envelope and bytes intact", { timeout: 60_000 }, async (t) => {
  const setup = run("mail-setup.sh");
  if (setup.code === 3) return t.skip(`Postfix or swaks is missing and cannot be installed here: ${setup.out.trim()}`);
  assert.equal(setup.code, 0, `mail-setup.sh failed: ${setup.out}`);

  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  t.after(() => sink.stop());
  const dir = tempDir("tidings-postfix-");
  const port = await freePort();
  t.after(() => {
    run("postfix-sandbox.sh", "stop", dir);
    rmSync(dir, { recursive: true, force: true });
  });
  const started = run("postfix-sandbox.sh", "start", dir, String(port), `127.0.0.1:${sinkPort}`);
  if (started.code === 3) return t.skip(`the Postfix sandbox needs root: ${started.out.trim()}`);
  assert.equal(started.code, 0, `postfix-sandbox.sh start failed: ${started.out}`);

  const message = Buffer.concat([
    Buffer.from(
      "From: Alice <alice@example.org>\r\n" +
        "To: Bob <bob@example.net>\r\n" +
        "Subject: sandbox check\r\n" +
        "Date: Tue, 05 Mar 2024 10:20:30 +0000\r\n" +
        "Message-ID: <sandbox.1@example.org>\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: 8bit\r\n" +
        "\r\n" +
        ".a line that starts with a dot\r\n" +
        "..and one with two\r\n" +
        "8-bit: ",
      "latin1",
    ),
    Buffer.from("Grüße, naïve café\r\n", "utf8"),
    Buffer.from("trailing spaces   \r\n\r\n-- \r\nAlice\r\n", "latin1"),
  ]);
  execFileSync("python3", ["-c", SEND, String(port), "alice@example.org", "bob@example.net"], { input: message, timeout: 15_000 });

  let got;
  try {
    [got] = await sink.waitFor(1, 15_000);
  } catch (e) {
    const log = existsSync(join(dir, "maillog")) ? readFileSync(join(dir, "maillog"), "utf8") : "(no maillog)";
    throw new Error(`${(e as Error).message}; Postfix's log:\n${log}`);
  }
  assert.equal(got.from, "alice@example.org");
  assert.deepEqual(got.to, ["bob@example.net"]);
  assert.equal(got.bodyType, "8bitmime", "Postfix passed BODY=8BITMIME on");
  const prefix = got.data.subarray(0, got.data.length - message.length);
  assert.ok(got.data.subarray(prefix.length).equals(message), "the message arrives byte for byte after Postfix's own fields");
  assert.match(prefix.toString("latin1"), /^Received: from /, "Postfix prepends its Received: field");
  assert.match(prefix.toString("latin1"), /\r\n$/);
  assert.doesNotMatch(prefix.toString("latin1").replace(/\r\n[ \t]/g, " "), /\r\n(?!$)/, "one Received: field and nothing else");
  assert.equal(sink.messages.length, 1);
});
