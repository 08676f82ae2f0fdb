// SMTP AUTH (RFC 4954) against the node's users, as real clients do it:
// swaks with PLAIN, Python's smtplib with LOGIN; a wrong password gets 535;
// a stranger (127.0.0.2, outside smtp.relay_from) may relay only after AUTH;
// and without TLS a password is refused with 538 unless auth.allow_plaintext.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, tempDir, type TestNode } from "../helpers/node.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { queued, smtpTalk } from "../helpers/mail.js";

const run = promisify(execFile);
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/** Stops a node and removes the data folder made for it here. */
async function stop(node: TestNode): Promise<void> {
  await node.stop();
  rmSync(node.dataDir, { recursive: true, force: true });
}

function addUser(dataDir: string, name: string, password: string): void {
  const r = spawnSync(process.execPath, [CLI, "user", "add", name, "--data", dataDir, "--password-stdin"], { encoding: "utf8", input: password + "\n", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
}

/** A node that relays everything to the sink, trusts only 127.0.0.1, and has the user alice. */
async function relayNode(sinkPort: number, auth: string): Promise<TestNode> {
  const dataDir = tempDir();
  addUser(dataDir, "alice", "alice pw");
  return startNode({
    dataDir,
    config: `${auth}\n[smtp]\nhostname = "relay.example.net"\nrelay_from = ["127.0.0.1/32"]\n\n[[route]]\ndomain = "*"\nnext_hop = "127.0.0.1:${sinkPort}"\n`,
  });
}

const PLAINTEXT_OK = "[auth]\nallow_plaintext = true\nfailure_delay = 0.05\nfailure_delay_max = 0.1\n";

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a stranger relays only after AUTH: swaks with PLAIN, smtplib with LOGIN; a wrong password gets 535", { timeout: 90_000 }, async (t) => {
  if (spawnSync("swaks", ["--version"]).status !== 0) return t.skip("swaks is not installed");
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const node = await relayNode(sinkPort, PLAINTEXT_OK);
  try {
    // without AUTH the stranger may not relay
    const anon = await smtpTalk(node.smtpPort, "127.0.0.2", ["EHLO stranger.example", "MAIL FROM:<a@b.example>", "RCPT TO:<victim@other.example>", "QUIT"]);
    assert.match(anon[0], /AUTH PLAIN LOGIN/, "EHLO offers AUTH");
    assert.match(anon[2], /^554 5\.7\.1 /);

    // a wrong password: 535, and the relay stays closed
    const wrong = await smtpTalk(node.smtpPort, "127.0.0.2", [
      "EHLO stranger.example", `AUTH PLAIN ${b64("\0alice\0not it")}`, "MAIL FROM:<a@b.example>", "RCPT TO:<victim@other.example>", "QUIT",
    ]);
    assert.match(wrong[1], /^535 5\.7\.8 /);
    assert.match(wrong[3], /^554 5\.7\.1 /);

    // swaks, AUTH PLAIN, from the stranger's address
    const sw = await run("swaks", [
      "--server", `127.0.0.1:${node.smtpPort}`, "--local-interface", "127.0.0.2", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "alice pw",
      "--from", "alice@example.net", "--to", "friend@other.example", "--header", "Subject: swaks with auth",
    ]);
    assert.match(sw.stdout, /235 .*Authentication successful/);
    assert.match(sw.stdout, /250 .*queued/);

    // Python's smtplib, AUTH LOGIN
    const py = spawnSync("python3", ["-c", `
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), source_address=("127.0.0.2", 0))
s.ehlo("stranger.example")
s.user, s.password = "alice", "alice pw"
code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
assert code == 235, code
s.sendmail("alice@example.net", ["other@elsewhere.example"], b"Subject: smtplib with auth\\r\\n\\r\\nhi\\r\\n")
s.quit()
`, String(node.smtpPort)], { encoding: "utf8", timeout: 60_000 });
    assert.equal(py.status, 0, py.stderr);

    await until("both messages at the sink", () => sink.messages.length >= 2);
    const got = sink.messages.map((m) => ({ to: m.to, data: m.data.toString("latin1") }));
    const swaks = got.find((m) => m.data.includes("Subject: swaks with auth"))!;
    assert.deepEqual(swaks.to, ["friend@other.example"]);
    assert.match(swaks.data, /^Received: from \S+ \(\[127\.0\.0\.2\]\)\r\n\tby relay\.example\.net \(tidings\) with ESMTPA\r\n/, "RFC 3848: ESMTPA");
    const lib = got.find((m) => m.data.includes("Subject: smtplib with auth"))!;
    assert.deepEqual(lib.to, ["other@elsewhere.example"]);
    assert.deepEqual(await queued(node), []);
  } finally {
    await stop(node);
    await sink.stop();
  }
});

test("without TLS SMTP AUTH is refused with 538 by default, loopback included", { timeout: 60_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const node = await relayNode(sinkPort, "");
  try {
    const r = await smtpTalk(node.smtpPort, "127.0.0.1", ["EHLO friend.example", `AUTH PLAIN ${b64("\0alice\0alice pw")}`, "AUTH LOGIN", "QUIT"]);
    assert.match(r[1], /^538 5\.7\.11 /);
    assert.match(r[2], /^538 5\.7\.11 /, "LOGIN is refused before it asks for the name");
    // the stranger is not let in by a refused AUTH either
    const s = await smtpTalk(node.smtpPort, "127.0.0.2", ["EHLO stranger.example", `AUTH PLAIN ${b64("\0alice\0alice pw")}`, "MAIL FROM:<a@b.example>", "RCPT TO:<victim@other.example>", "QUIT"]);
    assert.match(s[1], /^538 /);
    assert.match(s[3], /^554 5\.7\.1 /);
  } finally {
    await stop(node);
    await sink.stop();
  }
});

test("after STARTTLS SMTP AUTH works with the default rule, and the stranger may relay", { timeout: 90_000 }, async () => {
  const certs = tempDir();
  const made = spawnSync(process.execPath, [CLI, "cert", "--self-signed", certs], { encoding: "utf8", timeout: 60_000 });
  assert.equal(made.status, 0, made.stderr);
  const cert = join(certs, "cert.pem");
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  const node = await relayNode(sinkPort, `[tls]\ncert = ${JSON.stringify(cert)}\nkey = ${JSON.stringify(join(certs, "key.pem"))}\n`);
  try {
    const py = spawnSync("python3", ["-c", `
import json, smtplib, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP("127.0.0.1", port, source_address=("127.0.0.2", 0))
s.ehlo("stranger.example")
out = {"before": s.docmd("AUTH", "PLAIN AGFsaWNlAGFsaWNlIHB3")[0]}
s.starttls(context=ssl.create_default_context(cafile=cafile))
s.ehlo("stranger.example")
out["auth"] = s.login("alice", "alice pw")[0]
s.sendmail("alice@example.net", ["friend@other.example"], b"Subject: over TLS with auth\\r\\n\\r\\nhi\\r\\n")
s.quit()
print(json.dumps(out))
`, String(node.smtpPort), cert], { encoding: "utf8", timeout: 60_000 });
    assert.equal(py.status, 0, py.stderr);
    const out = JSON.parse(py.stdout);
    assert.equal(out.before, 538, "no password before STARTTLS");
    assert.equal(out.auth, 235);
    await until("the message at the sink", () => sink.messages.length >= 1);
    assert.match(sink.messages[0].data.toString("latin1"), /with ESMTPSA\r\n/, "RFC 3848: ESMTPSA");
  } finally {
    await stop(node);
    await sink.stop();
    rmSync(certs, { recursive: true, force: true });
  }
});
