// TLS (RFC 4642, RFC 8143) as operators and clients meet it: certificates
// made with `tidings cert`, STARTTLS with Python's nntplib and openssl
// s_client, the nntps listener, plain text pipelined past STARTTLS, feeds
// over TLS that verify the peer, and a certificate renewed on disk.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { CLI, startNode, tempDir, type TestNode } from "../helpers/node.js";
import { NntpClient } from "../../protocol/nntp/client.js";

function tidings(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A fresh self-signed pair from our own `tidings cert`. */
function makeCert(dir: string): { cert: string; key: string } {
  const r = tidings("cert", "--self-signed", dir);
  assert.equal(r.code, 0, r.err);
  return { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
}

const tlsSection = (p: { cert: string; key: string }) => `[tls]\ncert = ${JSON.stringify(p.cert)}\nkey = ${JSON.stringify(p.key)}\n`;

/** Runs a Python script (stdin) with arguments; returns what it printed, or fails the test with its stderr. */
function python(script: string, ...args: string[]): string {
  const r = spawnSync("python3", ["-W", "ignore::DeprecationWarning", "-", ...args], { input: script, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  return r.stdout;
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The certificate a new TLS connection to the nntps port is served (its SHA-256 fingerprint). */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.on("error", reject);
  });
}

function fingerprint(file: string): string {
  return new X509Certificate(readFileSync(file)).fingerprint256;
}

const STARTTLS_SESSION = `
import io, sys, ssl, json, nntplib
port, cafile, msgid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
s = nntplib.NNTP("127.0.0.1", port)
out = {"before": "STARTTLS" in s.getcapabilities()}
s.starttls(ctx)
out["version"] = s.sock.version()
out["after"] = "STARTTLS" in s.getcapabilities()
out["post"] = s.post(io.BytesIO(b"From: Py <py@example.org>\\r\\nNewsgroups: local.test\\r\\nSubject: over TLS\\r\\nMessage-ID: " + msgid.encode() + b"\\r\\n\\r\\nsecret\\r\\n"))
out["body"] = [l.decode() for l in s.body(msgid)[1].lines]
try:
    s._shortcmd("STARTTLS")
    out["again"] = "accepted"
except nntplib.NNTPError as e:
    out["again"] = str(e)
s.quit()
print(json.dumps(out))
`;

test("tidings cert --self-signed writes a usable pair, the key for its owner only, and check-config names the key at fault", () => {
  const dir = tempDir();
  try {
    const pair = makeCert(join(dir, "certs"));
    assert.equal(statSync(pair.key).mode & 0o777, 0o600);
    const x = new X509Certificate(readFileSync(pair.cert));
    for (const name of ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", `DNS:${hostname()}`]) assert.ok(x.subjectAltName?.includes(name), `${name} in ${x.subjectAltName}`);
    assert.ok(x.checkPrivateKey(createPrivateKey(readFileSync(pair.key))), "the key belongs to the certificate");
    // a second run does not overwrite what an operator may be using
    const again = tidings("cert", "--self-signed", join(dir, "certs"));
    assert.equal(again.code, 2);
    assert.match(again.err, /already holds a certificate or key.*--force/);
    const ok = join(dir, "ok.toml");
    writeFileSync(ok, tlsSection(pair) + `[nntp]\ntls_listen = "127.0.0.1:0"\n`);
    assert.equal(tidings("check-config", ok).code, 0, tidings("check-config", ok).err);
    // a key from another pair: refused by check-config (and so by serve), naming tls.key and its line
    const other = makeCert(join(dir, "other"));
    const bad = join(dir, "bad.toml");
    writeFileSync(bad, `[tls]\ncert = ${JSON.stringify(pair.cert)}\nkey = ${JSON.stringify(other.key)}\n`);
    const r = tidings("check-config", bad);
    assert.equal(r.code, 2);
    assert.match(r.err, /bad\.toml:3: key tls\.key: .*does not belong to the certificate/);
    // an nntps listener without a certificate, and a CA file that is not there
    const none = join(dir, "none.toml");
    writeFileSync(none, `[nntp]\ntls_listen = "127.0.0.1:563"\n\n[[peer]]\nname = "p"\nhost = "127.0.0.1"\ntls = true\ntls_ca = "/nonexistent/ca.pem"\n`);
    const r2 = tidings("check-config", none);
    assert.equal(r2.code, 2);
    assert.match(r2.err, /none\.toml:2: key nntp\.tls_listen: expected \[tls\] cert and key/);
    assert.match(r2.err, /none\.toml:8: key peer\.0\.tls_ca: .*cannot read the CA file \/nonexistent\/ca\.pem: ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("STARTTLS with Python's nntplib: offered before TLS only, then read and post encrypted; a second STARTTLS gets 502", { timeout: 90_000 }, async () => {
  const dir = tempDir();
  const pair = makeCert(dir);
  const node = await startNode({ config: tlsSection(pair) });
  const plain = await startNode();
  try {
    const msgid = `<tls.${Date.now()}@test.example>`;
    const out = JSON.parse(python(STARTTLS_SESSION, String(node.port), pair.cert, msgid));
    assert.equal(out.before, true, "STARTTLS is in CAPABILITIES before TLS");
    assert.equal(out.after, false, "and not after (RFC 4642 §2.2.2)");
    assert.match(out.version, /^TLSv1\.[23]$/);
    assert.match(out.post, /^240/);
    assert.deepEqual(out.body, ["secret"]);
    assert.match(out.again, /^502 /);
    // a node without a certificate neither offers STARTTLS nor starts it
    const { client } = await NntpClient.open("127.0.0.1", plain.port);
    const caps = (await client.command("CAPABILITIES"), await client.blockLines());
    assert.ok(!caps.includes("STARTTLS"), caps.join(","));
    assert.match(await client.command("STARTTLS"), /^580 /);
    assert.match(await client.command("DATE"), /^111 /, "the session goes on in plain text");
    client.destroy();
  } finally {
    await node.stop();
    await plain.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("openssl s_client -starttls nntp is shown our certificate; plain text pipelined after STARTTLS is never run", { timeout: 90_000 }, async () => {
  const dir = tempDir();
  const pair = makeCert(dir);
  const node = await startNode({ config: tlsSection(pair) });
  try {
    const r = spawnSync("openssl", ["s_client", "-starttls", "nntp", "-connect", `127.0.0.1:${node.port}`, "-CAfile", pair.cert, "-verify_return_error", "-showcerts", "-ign_eof"], {
      input: "DATE\r\nQUIT\r\n",
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/, r.stdout + r.stderr);
    const shown = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0];
    assert.equal(shown && new X509Certificate(shown).fingerprint256, fingerprint(pair.cert), "the certificate shown is the one configured");
    assert.match(r.stdout, /^111 \d{14}/m, "commands go through once encrypted");
    // SMTP's STARTTLS uses the same certificate when smtp.tls_cert is not set
    const m = spawnSync("openssl", ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${node.smtpPort}`, "-CAfile", pair.cert, "-verify_return_error", "-showcerts", "-ign_eof"], {
      input: "QUIT\r\n",
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.match(m.stdout, /Verify return code: 0 \(ok\)/, m.stdout + m.stderr);

    // The injection (CVE-2011-0411 in Postfix): DATE before STARTTLS is
    // answered first; the POST and its article sent in the same write after
    // STARTTLS, in plain text, must be dropped, not run once encrypted.
    const msgid = `<injected.${Date.now()}@test.example>`;
    const raw = net.connect(node.port, "127.0.0.1");
    const lines: string[] = [];
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("latin1");
      for (let i = buf.indexOf("\r\n"); i >= 0; i = buf.indexOf("\r\n")) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    };
    raw.on("data", onData);
    await until("the greeting", () => (lines.length >= 1 ? true : undefined));
    raw.write(`DATE\r\nSTARTTLS\r\nPOST\r\nFrom: X <x@example.org>\r\nNewsgroups: local.test\r\nSubject: injected\r\nMessage-ID: ${msgid}\r\n\r\nrun me\r\n.\r\n`);
    await until("the 382", () => (lines.some((l) => l.startsWith("382")) ? true : undefined));
    assert.deepEqual(lines.map((l) => l.slice(0, 3)), ["200", "111", "382"], "DATE answered before STARTTLS, nothing after the 382");
    raw.off("data", onData);
    const t = tls.connect({ socket: raw, ca: readFileSync(pair.cert), servername: "localhost" });
    await new Promise<void>((resolve, reject) => (t.once("secureConnect", resolve), t.once("error", reject)));
    let enc = "";
    t.on("data", (d) => (enc += d.toString("latin1")));
    t.write(`STAT ${msgid}\r\nDATE\r\n`);
    await until("two replies over TLS", () => (enc.split("\r\n").length > 2 ? true : undefined));
    const [first, second] = enc.split("\r\n");
    assert.match(first, /^430 /, `the injected POST was not run: the first reply over TLS is the STAT's (${enc})`);
    assert.match(second, /^111 /);
    t.destroy();
    // nor stored by any other way
    const { client } = await NntpClient.open("127.0.0.1", node.port);
    assert.match(await client.command(`STAT ${msgid}`), /^430 /);

    // a failed handshake closes that connection, and the node serves the next one
    const junk = net.connect(node.port, "127.0.0.1");
    let got = "";
    junk.on("data", (d) => {
      got += d;
      if (got.includes("382")) junk.write("this is not a TLS ClientHello\r\n\r\n");
    });
    junk.write("STARTTLS\r\n");
    await new Promise((r) => junk.once("close", r));
    assert.match(await client.command("DATE"), /^111 /);
    client.destroy();
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the nntps listener (implicit TLS, RFC 8143) with nntplib.NNTP_SSL; it is named in the ready line", { timeout: 90_000 }, async () => {
  const dir = tempDir();
  const pair = makeCert(dir);
  const node = await startNode({ config: tlsSection(pair), args: ["--nntps", "127.0.0.1:0"] });
  try {
    assert.ok(node.nntpsPort > 0, "nntps=HOST:PORT in the ready line");
    const msgid = `<nntps.${Date.now()}@test.example>`;
    const out = JSON.parse(
      python(
        `
import io, sys, ssl, json, nntplib
port, cafile, msgid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = nntplib.NNTP_SSL("127.0.0.1", port, ssl_context=ssl.create_default_context(cafile=cafile))
out = {"welcome": s.getwelcome(), "starttls": "STARTTLS" in s.getcapabilities()}
out["post"] = s.post(io.BytesIO(b"From: Py <py@example.org>\\r\\nNewsgroups: local.test\\r\\nSubject: nntps\\r\\nMessage-ID: " + msgid.encode() + b"\\r\\n\\r\\nover 563\\r\\n"))
out["body"] = [l.decode() for l in s.body(msgid)[1].lines]
try:
    s._shortcmd("STARTTLS")
    out["again"] = "accepted"
except nntplib.NNTPError as e:
    out["again"] = str(e)
s.quit()
print(json.dumps(out))
`,
        String(node.nntpsPort),
        pair.cert,
        msgid,
      ),
    );
    assert.match(out.welcome, /^200 /);
    assert.equal(out.starttls, false, "no STARTTLS on a connection that is TLS already");
    assert.match(out.post, /^240/);
    assert.deepEqual(out.body, ["over 563"]);
    assert.match(out.again, /^502 /);
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Posts on `port` and returns the Message-ID. */
async function post(port: number, subject: string): Promise<string> {
  const { client } = await NntpClient.open("127.0.0.1", port);
  const msgid = `<feed.${subject}.${Date.now()}@test.example>`;
  assert.match(await client.command("POST"), /^340/);
  client.writeBlock(Buffer.from(`From: F <f@example.org>\r\nNewsgroups: local.test\r\nSubject: ${subject}\r\nMessage-ID: ${msgid}\r\n\r\nflows\r\n`, "latin1"));
  assert.match(await client.line(), /^240/);
  client.destroy();
  return msgid;
}

async function has(node: TestNode, msgid: string): Promise<boolean> {
  const { client } = await NntpClient.open("127.0.0.1", node.port);
  const r = await client.command(`STAT ${msgid}`);
  client.destroy();
  return r.startsWith("223");
}

function peerStatus(node: TestNode, name: string): { lastError: string | null; accepted: number; connected: number } | undefined {
  try {
    return JSON.parse(readFileSync(join(node.dataDir, "status.json"), "utf8")).peers.find((p: { name: string }) => p.name === name);
  } catch {
    return undefined;
  }
}

const FAST = `[feeds]\nstatus_interval = 0.1\nreconnect_min = 0.1\nreconnect_max = 0.3\n`;

test("feeds over TLS, implicit and STARTTLS, verify the peer's certificate and carry the article", { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const pb = makeCert(join(dir, "b"));
  const pc = makeCert(join(dir, "c"));
  const b = await startNode({ config: tlsSection(pb), args: ["--nntps", "127.0.0.1:0"] });
  const c = await startNode({ config: tlsSection(pc) });
  const a = await startNode({
    config:
      FAST +
      `[[peer]]\nname = "b"\nhost = "127.0.0.1"\nport = ${b.nntpsPort}\ngroups = "*"\npath_identities = [${JSON.stringify(b.pathhost)}]\ntls = true\ntls_ca = ${JSON.stringify(pb.cert)}\n` +
      `[[peer]]\nname = "c"\nhost = "127.0.0.1"\nport = ${c.port}\ngroups = "*"\npath_identities = [${JSON.stringify(c.pathhost)}]\ntls = "starttls"\ntls_ca = ${JSON.stringify(pc.cert)}\ntls_servername = "localhost"\n`,
  });
  try {
    const msgid = await post(a.port, "tls");
    await until("the article on b (nntps)", async () => ((await has(b, msgid)) ? true : undefined));
    await until("the article on c (STARTTLS)", async () => ((await has(c, msgid)) ? true : undefined));
    await until("status of both feeds", () => (peerStatus(a, "b")?.accepted && peerStatus(a, "c")?.accepted ? true : undefined));
    // peer check goes the same way as the feed
    const cb = tidings("peer", "check", "b", "--config", join(a.dataDir, "tidings.toml"));
    assert.match(cb.out, /✓ TLS \(implicit\): the certificate of 127\.0\.0\.1 verifies/, cb.out + cb.err);
    const cc = tidings("peer", "check", "c", "--config", join(a.dataDir, "tidings.toml"));
    assert.match(cc.out, /✓ TLS \(STARTTLS\): the certificate of 127\.0\.0\.1 verifies/, cc.out + cc.err);
  } finally {
    await a.stop();
    await b.stop();
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a feed to a peer whose certificate does not verify sends nothing, logs why once, and status names the reason", { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const pb = makeCert(join(dir, "b"));
  const stranger = makeCert(join(dir, "stranger"));
  const b = await startNode({ config: tlsSection(pb), args: ["--nntps", "127.0.0.1:0"] });
  const a = await startNode({
    config:
      FAST +
      // trusts another certificate than the one b serves
      `[[peer]]\nname = "untrusted"\nhost = "127.0.0.1"\nport = ${b.nntpsPort}\ngroups = "*"\npath_identities = [${JSON.stringify(b.pathhost)}]\ntls = true\ntls_ca = ${JSON.stringify(stranger.cert)}\n` +
      // the right certificate, but for another name
      `[[peer]]\nname = "misnamed"\nhost = "127.0.0.1"\nport = ${b.port}\ngroups = "*"\npath_identities = ["other.${b.pathhost}"]\ntls = "starttls"\ntls_ca = ${JSON.stringify(pb.cert)}\ntls_servername = "news.example.org"\n`,
  });
  try {
    const msgid = await post(a.port, "refused");
    const untrusted = await until("the reason in status", () => peerStatus(a, "untrusted")?.lastError ?? undefined);
    assert.match(untrusted, /TLS: the certificate of 127\.0\.0\.1:\d+ does not verify: self.signed certificate/);
    const misnamed = await until("the reason in status", () => peerStatus(a, "misnamed")?.lastError ?? undefined);
    assert.match(misnamed, /does not verify: .*news\.example\.org/);
    // several retries later (each sets the time of the last error): still nothing on b, still one log line per feed
    const attempts = new Set<number>();
    await until("three more attempts", () => {
      const at = (peerStatus(a, "untrusted") as { lastErrorAt?: number } | undefined)?.lastErrorAt;
      if (at) attempts.add(at);
      return attempts.size >= 4 ? true : undefined;
    });
    assert.equal(await has(b, msgid), false, "nothing was sent to a peer that could not be verified");
    const lines = a.stderr.split("\n").filter((l) => l.includes("feed connection failed") && l.includes('"peer":"untrusted"'));
    assert.equal(lines.length, 1, `logged once, not at every retry:\n${lines.join("\n")}`);
    const check = tidings("peer", "check", "misnamed", "--config", join(a.dataDir, "tidings.toml"));
    assert.equal(check.code, 1);
    assert.match(check.out, /✗ TLS: the certificate of 127\.0\.0\.1:\d+ does not verify: .*news\.example\.org.*; the feed sends nothing to misnamed/);
    const s = tidings("status", "--data", a.dataDir);
    assert.match(s.out, /peer untrusted .*\n(.*\n)*.*last error: TLS: the certificate of 127\.0\.0\.1:\d+ does not verify/);
  } finally {
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a certificate replaced on disk is served to the next connection without a restart; a broken one is refused and the last good one stays", { timeout: 90_000 }, async () => {
  const dir = tempDir();
  const pair = makeCert(dir);
  const node = await startNode({ config: tlsSection(pair), args: ["--nntps", "127.0.0.1:0"] });
  try {
    const first = fingerprint(pair.cert);
    assert.equal(await servedFingerprint(node.nntpsPort), first);
    // a connection made before the renewal goes on with its own session
    const { client } = await NntpClient.open("127.0.0.1", node.nntpsPort, { tls: { mode: "implicit", ca: readFileSync(pair.cert) } });
    assert.equal(tidings("cert", "--self-signed", dir, "--force").code, 0);
    const renewed = fingerprint(pair.cert);
    assert.notEqual(renewed, first);
    await until("the renewed certificate served", async () => ((await servedFingerprint(node.nntpsPort)) === renewed ? true : undefined));
    // STARTTLS on the plain port gets it too
    const { client: st } = await NntpClient.open("127.0.0.1", node.port);
    await st.startTls({ mode: "starttls", ca: readFileSync(pair.cert), servername: "localhost" });
    assert.equal((st.socket as tls.TLSSocket).getPeerCertificate().fingerprint256, renewed);
    st.destroy();
    // and SMTP, which shares the pair
    const m = spawnSync("openssl", ["s_client", "-starttls", "smtp", "-connect", `127.0.0.1:${node.smtpPort}`, "-showcerts", "-ign_eof"], { input: "QUIT\r\n", encoding: "utf8", timeout: 30_000 });
    const smtpCert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(m.stdout)?.[0];
    assert.equal(smtpCert && new X509Certificate(smtpCert).fingerprint256, renewed, "SMTP STARTTLS serves the renewed certificate too");
    assert.match(await client.command("DATE"), /^111 /, "the older connection is still served");
    client.destroy();
    // a half-written renewal: refused with a log line, the last good one stays in use
    writeFileSync(pair.cert, "-----BEGIN CERTIFICATE-----\nnot yet\n");
    await until("the refusal in the log", () => (/TLS certificate not reloaded/.test(node.stderr) ? true : undefined));
    assert.equal(await servedFingerprint(node.nntpsPort), renewed);
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("connections that never finish their TLS handshake cannot crowd out the nntps listener", { timeout: 90_000 }, async () => {
  const dir = tempDir();
  const pair = makeCert(dir);
  const node = await startNode({ config: tlsSection(pair) + `[nntp]\nmax_connections = 16\n`, args: ["--nntps", "127.0.0.1:0", "--log-level", "info"] });
  const stalled: net.Socket[] = [];
  try {
    // a stranger opens 20 TCP connections and sends nothing: no handshake ever starts
    const closedEarly: Promise<boolean>[] = [];
    for (let i = 0; i < 20; i++) {
      const s = net.connect({ host: "127.0.0.1", port: node.nntpsPort, localAddress: "127.0.0.2" });
      s.on("error", () => {});
      stalled.push(s);
      closedEarly.push(new Promise((r) => { s.once("close", () => r(true)); setTimeout(() => r(false), 3000).unref(); }));
    }
    const early = (await Promise.all(closedEarly)).filter(Boolean).length;
    assert.equal(early, 12, "eight handshakes may wait per address; the rest are closed at once");
    // a real client still gets in, over TLS
    const fp = await servedFingerprint(node.nntpsPort);
    assert.equal(fp, fingerprint(pair.cert));
    assert.match(node.stderr + (await until("the log line", () => (node.stderr.includes("before its TLS handshake") ? node.stderr : undefined))), /connection refused before its TLS handshake/);
  } finally {
    for (const s of stalled) s.destroy();
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
