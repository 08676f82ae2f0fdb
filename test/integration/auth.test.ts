// Users and access (RFC 4643): logins with AUTHINFO USER/PASS and SASL PLAIN,
// what each user and each address may read and post, 480/481/482/483/502 as
// a newsreader sees them, the growing delay after failed logins, and
// `tidings user add/rm/list` as an operator runs it, against real nodes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, tempDir, type TestNode } from "../helpers/node.js";
import { makeArticle, stuff } from "../helpers/client.js";
import { NntpClient } from "../../protocol/nntp/client.js";
import { Db } from "../../storage/sqlite.js";

function tidings(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000, input });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Stops a node and removes the data folder made for it here. */
async function stop(node: TestNode): Promise<void> {
  await node.stop();
  rmSync(node.dataDir, { recursive: true, force: true });
}

function addUser(dataDir: string, name: string, password: string) {
  const r = tidings(["user", "add", name, "--data", dataDir, "--password-stdin"], password + "\n");
  assert.equal(r.code, 0, r.err);
  return r;
}

/** A client from `from` (a loopback address the node may not trust), reading replies exactly. */
async function connect(node: TestNode, from = "127.0.0.1"): Promise<{ c: NntpClient; greeting: string }> {
  const { client, greeting } = await NntpClient.open("127.0.0.1", node.port, { localAddress: from, maxLine: Infinity, timeoutMs: 30_000 });
  return { c: client, greeting };
}

async function capabilities(c: NntpClient): Promise<string[]> {
  assert.match(await c.command("CAPABILITIES"), /^101 /);
  return (await c.blockLines()).map((l) => l.toString());
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/** Runs Python's nntplib against the node; prints what the script prints as JSON. */
function python(script: string, port: number, ...args: string[]): Record<string, unknown> {
  const r = spawnSync("python3", ["-W", "ignore", "-c", script, String(port), ...args], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const hasPython = () => spawnSync("python3", ["-c", "import nntplib"]).status === 0;

// Groups and rules shared by the tests of the first node. First match wins:
//  - 127.0.0.3 must log in before anything;
//  - alice reads everything and posts to local.*;
//  - bob reads local.test only and posts nowhere;
//  - anyone else reads all but local.secret and posts nowhere (so an anonymous POST gets 480: alice could post).
const RULES = `
[auth]
allow_plaintext = true
failure_delay = 0.05
failure_delay_max = 0.2

[[group]]
name = "local.test"
[[group]]
name = "local.secret"
[[group]]
name = "misc.test"

[[access]]
from = ["127.0.0.3"]
auth_required = true
read = "*"
post = "*"

[[access]]
users = ["alice"]
read = "*"
post = "local.*"

[[access]]
users = ["bob"]
read = "local.test"
post = ""

[[access]]
from = ["0.0.0.0/0", "::/0"]
read = "*,!local.secret"
post = ""
`;

async function rulesNode(): Promise<TestNode> {
  const dataDir = tempDir();
  // users are added before the node ever started: the command makes the database
  addUser(dataDir, "alice", "alice-pw");
  addUser(dataDir, "bob", "bob-pw");
  return startNode({ dataDir, config: RULES });
}

test("AUTHINFO USER/PASS: 381, 281 or 481, 482 out of sequence, 502 after a login; CAPABILITIES changes", async () => {
  const node = await rulesNode();
  try {
    const { c, greeting } = await connect(node);
    assert.match(greeting, /^201 /, "an anonymous client may not post here");
    const before = await capabilities(c);
    assert.ok(before.includes("AUTHINFO USER SASL"), before.join("|"));
    assert.ok(before.includes("SASL PLAIN"), before.join("|"));
    assert.ok(!before.includes("POST"));

    assert.match(await c.command("AUTHINFO PASS alice-pw"), /^482 /, "PASS before USER");
    assert.match(await c.command("AUTHINFO USER alice"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS wrong"), /^481 /);
    assert.match(await c.command("AUTHINFO PASS alice-pw"), /^482 /, "the failed PASS used up the USER");
    assert.match(await c.command("AUTHINFO USER nobody"), /^381 /, "an unknown name is not told apart");
    assert.match(await c.command("AUTHINFO PASS alice-pw"), /^481 /);
    assert.match(await c.command("AUTHINFO USER alice"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS alice-pw"), /^281 /);
    // RFC 4643 §2.1, §2.2: no AUTHINFO after a login, and every AUTHINFO gets 502
    const after = await capabilities(c);
    assert.ok(!after.some((l) => l.startsWith("AUTHINFO") || l.startsWith("SASL")), after.join("|"));
    assert.ok(after.includes("POST"), "alice may post");
    assert.match(await c.command("AUTHINFO USER bob"), /^502 /);
    assert.match(await c.command("AUTHINFO SASL PLAIN " + b64("\0bob\0bob-pw")), /^502 /);
    assert.match(await c.command("MODE READER"), /^200 /, "MODE READER keeps working after a login");
    c.destroy();

    // the same with a pipeline: USER and PASS in one write
    const p = await connect(node);
    assert.deepEqual(
      (await p.c.commands(["AUTHINFO USER bob", "AUTHINFO PASS bob-pw", "DATE"])).map((l) => l.slice(0, 3)),
      ["381", "281", "111"],
    );
    p.c.destroy();
  } finally {
    await stop(node);
  }
});

test("AUTHINFO SASL PLAIN: with an initial response, after 383, cancelled, malformed, unknown mechanism", async () => {
  const node = await rulesNode();
  try {
    let { c } = await connect(node);
    assert.match(await c.command("AUTHINFO SASL PLAIN " + b64("\0alice\0alice-pw")), /^281 /);
    c.destroy();

    ({ c } = await connect(node));
    assert.match(await c.command("AUTHINFO SASL PLAIN " + b64("\0alice\0nope")), /^481 /);
    assert.match(await c.command("AUTHINFO SASL PLAIN " + b64("bob\0alice\0alice-pw")), /^481 /, "no acting as another user");
    assert.match(await c.command("AUTHINFO SASL PLAIN %%%"), /^504 /);
    assert.match(await c.command("AUTHINFO SASL CRAM-MD5"), /^503 /);
    // RFC 4643 §2.4: no initial response: 383 with an empty challenge, then the response line
    assert.equal(await c.command("AUTHINFO SASL PLAIN"), "383 =");
    assert.match(await c.command("*"), /^481 /, "the client cancels");
    assert.equal(await c.command("AUTHINFO SASL PLAIN"), "383 =");
    // the response and a command pipelined behind it
    assert.deepEqual((await c.commands([b64("\0bob\0bob-pw"), "DATE"])).map((l) => l.slice(0, 3)), ["281", "111"]);
    c.destroy();
  } finally {
    await stop(node);
  }
});

test("read and post are allowed per user and per group: 411/430 for hidden groups, 441 for a group not allowed, 440/480 for POST", async () => {
  const node = await rulesNode();
  try {
    // alice posts to local.secret (allowed), then to misc.test (not allowed: 441 with the reason)
    const alice = (await connect(node)).c;
    assert.match(await alice.command("AUTHINFO USER alice"), /^381 /);
    assert.match(await alice.command("AUTHINFO PASS alice-pw"), /^281 /);
    const secret = makeArticle({ groups: "local.secret", subject: "only alice" });
    assert.match(await alice.command("POST"), /^340 /);
    alice.write(stuff(secret.text));
    assert.match(await alice.line(), /^240 /);
    const misc = makeArticle({ groups: "local.test,misc.test" });
    assert.match(await alice.command("POST"), /^340 /);
    alice.write(stuff(misc.text));
    assert.equal(await alice.line(), "441 Posting to misc.test not permitted for alice");
    assert.match(await alice.command("GROUP local.secret"), /^211 1 /);
    assert.match(await alice.command(`ARTICLE ${secret.msgid}`), /^220 /);
    await alice.blockLines();

    // anonymous: local.secret is not listed and answers as missing; POST wants a login
    const anon = (await connect(node)).c;
    assert.match(await anon.command("LIST"), /^215 /);
    const groups = (await anon.blockLines()).map((l) => l.toString().split(" ")[0]);
    assert.deepEqual(groups.sort(), ["local.test", "misc.test"]);
    assert.match(await anon.command("GROUP local.secret"), /^411 /);
    assert.match(await anon.command("LISTGROUP local.secret"), /^411 /);
    assert.match(await anon.command(`ARTICLE ${secret.msgid}`), /^430 /);
    assert.match(await anon.command(`STAT ${secret.msgid}`), /^430 /);
    assert.match(await anon.command(`OVER ${secret.msgid}`), /^430 /);
    assert.match(await anon.command(`HDR Subject ${secret.msgid}`), /^430 /);
    assert.match(await anon.command("NEWNEWS * 20000101 000000"), /^230 /);
    assert.ok(!(await anon.blockLines()).map(String).includes(secret.msgid), "NEWNEWS does not name a hidden article");
    assert.match(await anon.command("GROUP misc.test"), /^211 /);
    assert.match(await anon.command("POST"), /^480 /, "logging in would allow posting");
    // a pipeline after the refused POST goes on
    assert.match(await anon.command("DATE"), /^111 /);

    // bob reads local.test only, and may not post at all (440: logging in again would not help)
    const bob = (await connect(node)).c;
    assert.match(await bob.command("AUTHINFO USER bob"), /^381 /);
    assert.match(await bob.command("AUTHINFO PASS bob-pw"), /^281 /);
    assert.match(await bob.command("LIST ACTIVE"), /^215 /);
    assert.deepEqual((await bob.blockLines()).map((l) => l.toString().split(" ")[0]), ["local.test"]);
    assert.match(await bob.command("GROUP misc.test"), /^411 /);
    assert.match(await bob.command("GROUP local.test"), /^211 /);
    assert.equal(await bob.command("POST"), "440 Posting not permitted for bob");
    for (const c of [alice, anon, bob]) c.destroy();
  } finally {
    await stop(node);
  }
});

test("480 before a login where the rules require one, and the commands that still work", async () => {
  const node = await rulesNode();
  try {
    const { c, greeting } = await connect(node, "127.0.0.3");
    assert.match(greeting, /^201 .*authentication required/);
    assert.match(await c.command("MODE READER"), /^480 /);
    assert.match(await c.command("LIST"), /^480 /);
    assert.match(await c.command("GROUP local.test"), /^480 /);
    assert.match(await c.command("ARTICLE <a@b>"), /^480 /);
    assert.match(await c.command("POST"), /^480 /);
    assert.match(await c.command("DATE"), /^111 /);
    const caps = await capabilities(c);
    assert.ok(caps.includes("AUTHINFO USER SASL") && !caps.includes("READER"), caps.join("|"));
    assert.match(await c.command("AUTHINFO USER bob"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS bob-pw"), /^281 /);
    // the rule for 127.0.0.3 applies once logged in: read all, post all
    assert.match(await c.command("GROUP local.secret"), /^211 /);
    assert.match(await c.command("MODE READER"), /^200 /);
    c.destroy();
  } finally {
    await stop(node);
  }
});

test("Python's nntplib logs in (after MODE READER got 480) and posts; a wrong password raises 481", async (t) => {
  if (!hasPython()) return t.skip("python3 with nntplib is not available");
  const node = await rulesNode();
  try {
    const script = `
import io, json, socket, sys, nntplib
port = int(sys.argv[1])
out = {}
class From3(nntplib.NNTP):
    """A newsreader on 127.0.0.3, which the node's rules make log in first."""
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), 30, source_address=("127.0.0.3", 0))
s = From3("127.0.0.1", port, readermode=True)
out["afterauth"] = s.readermode_afterauth
s.login("alice", "alice-pw", usenetrc=False)
out["caps"] = sorted(s.getcapabilities().keys())
resp = s.post(io.BytesIO(b"From: Py <py@example.org>\\r\\nNewsgroups: local.secret\\r\\nSubject: from nntplib\\r\\n\\r\\nhello\\r\\n"))
out["post"] = resp
_, count, low, high, name = s.group("local.secret")
out["count"] = count
s.quit()
t = nntplib.NNTP("127.0.0.1", port, readermode=True)
try:
    t.login("alice", "not-it", usenetrc=False)
    out["bad"] = "accepted"
except nntplib.NNTPError as e:
    out["bad"] = str(e)
t.quit()
print(json.dumps(out))
`;
    const out = python(script, node.port);
    assert.equal(out.afterauth, true, "MODE READER before the login got 480");
    assert.ok((out.caps as string[]).includes("READER") && !(out.caps as string[]).includes("AUTHINFO"));
    assert.match(String(out.post), /^240 /);
    assert.equal(out.count, 1);
    assert.match(String(out.bad), /^481 /);
  } finally {
    await stop(node);
  }
});

test("without TLS AUTHINFO gets 483 by default, loopback included, and CAPABILITIES shows AUTHINFO without arguments", async () => {
  const dataDir = tempDir();
  addUser(dataDir, "alice", "alice-pw");
  const node = await startNode({ dataDir });
  try {
    const { c, greeting } = await connect(node);
    assert.match(greeting, /^200 /, "the defaults are kept: loopback posts");
    const caps = await capabilities(c);
    assert.ok(caps.includes("AUTHINFO"), caps.join("|"));
    assert.ok(!caps.some((l) => l.startsWith("AUTHINFO ") || l.startsWith("SASL")), caps.join("|"));
    assert.match(await c.command("AUTHINFO USER alice"), /^483 /);
    assert.match(await c.command("AUTHINFO PASS alice-pw"), /^483 /);
    assert.match(await c.command("AUTHINFO SASL PLAIN " + b64("\0alice\0alice-pw")), /^483 /);
    assert.match(await c.command("POST"), /^340 /, "what loopback could do before is unchanged");
    c.write(stuff(makeArticle().text));
    assert.match(await c.line(), /^240 /);
    c.destroy();
  } finally {
    await stop(node);
  }
});

test("failed logins slow down per address, doubling up to the cap, without holding up other sessions", async () => {
  const dataDir = tempDir();
  addUser(dataDir, "alice", "alice-pw");
  const node = await startNode({ dataDir, config: "[auth]\nallow_plaintext = true\nfailure_delay = 1\nfailure_delay_max = 4\n" });
  try {
    const { c } = await connect(node);
    const fail = async (client: NntpClient) => {
      assert.match(await client.command("AUTHINFO USER alice"), /^381 /);
      const t0 = performance.now();
      assert.match(await client.command("AUTHINFO PASS wrong"), /^481 /);
      return performance.now() - t0;
    };
    const d1 = await fail(c);
    const d2 = await fail(c);
    assert.ok(d1 >= 950, `first failure answered after ${d1} ms`);
    assert.ok(d2 >= 1950, `second failure answered after ${d2} ms`);

    // the third (4 s, the cap): meanwhile another session is served at once
    assert.match(await c.command("AUTHINFO USER alice"), /^381 /);
    const t0 = performance.now();
    c.write("AUTHINFO PASS wrong\r\n");
    const third = c.line().then((l) => ({ l, at: performance.now() - t0 }));
    const other = (await connect(node, "127.0.0.2")).c;
    assert.match(await other.command("DATE"), /^111 /);
    const otherAt = performance.now() - t0;
    const { l, at } = await third;
    assert.match(l, /^481 /);
    assert.ok(at >= 3950, `third failure answered after ${at} ms`);
    assert.ok(otherAt < at, "the other session was not held up by the delay");

    // another address starts from the first delay again; the good password still works at once after the wait
    const d4 = await fail(other);
    assert.ok(d4 >= 950 && d4 < 3900, `another address's first failure took ${d4} ms`);
    assert.match(await c.command("AUTHINFO USER alice"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS alice-pw"), /^281 /);
    c.destroy();
    other.destroy();
  } finally {
    await stop(node);
  }
});

test("tidings user add/list/rm: a running node sees each change at the next login; only a scrypt hash is stored", async () => {
  const dataDir = tempDir();
  addUser(dataDir, "alice", "alice-pw");
  const node = await startNode({ dataDir, config: "[auth]\nallow_plaintext = true\nfailure_delay = 0.05\nfailure_delay_max = 0.1\n" });
  try {
    // a password with spaces, given on standard input as a script would
    const added = addUser(dataDir, "carol", "correct horse battery staple");
    assert.equal(added.out, "user carol added\n");
    const dup = tidings(["user", "add", "carol", "--data", dataDir, "--password-stdin"], "other\n");
    assert.equal(dup.code, 2);
    assert.match(dup.err, /exists already; --replace/);
    const list = tidings(["user", "list", "--data", dataDir]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /^alice .*\ncarol .*\n-- 2 users\n$/);
    const bad = tidings(["user", "add", "no spaces allowed", "--data", dataDir, "--password-stdin"], "x\n");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /not a user name/);

    let { c } = await connect(node);
    assert.match(await c.command("AUTHINFO USER carol"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS correct horse battery staple"), /^281 /, "added while the node runs");
    c.destroy();

    const changed = tidings(["user", "add", "carol", "--data", dataDir, "--password-stdin", "--replace"], "new-pw\n");
    assert.equal(changed.out, "password of carol changed\n");
    const rm = tidings(["user", "rm", "alice", "--data", dataDir]);
    assert.equal(rm.out, "user alice removed\n");
    assert.equal(tidings(["user", "rm", "alice", "--data", dataDir]).code, 2);
    ({ c } = await connect(node));
    assert.match(await c.command("AUTHINFO USER alice"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS alice-pw"), /^481 /, "removed while the node runs");
    assert.match(await c.command("AUTHINFO USER carol"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS correct horse battery staple"), /^481 /, "the old password no longer works");
    assert.match(await c.command("AUTHINFO USER carol"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS new-pw"), /^281 /);
    c.destroy();

    const db = await Db.open(join(dataDir, "tidings.sqlite"), true);
    try {
      const rows = await db.all<{ name: string; hash: string }>("SELECT name, hash FROM users");
      assert.deepEqual(rows.map((r) => r.name), ["carol"]);
      const h = rows[0].hash;
      assert.match(h, /^\$scrypt\$ln=\d+,r=\d+,p=\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
      for (const form of ["new-pw", b64("new-pw"), Buffer.from("new-pw").toString("hex")]) assert.ok(!h.includes(form), "the password is not in the database");
    } finally {
      await db.close();
    }
  } finally {
    await stop(node);
  }
});

test("over TLS a login works with the default rule: after STARTTLS (raw and Python's nntplib) and on the nntps port", async (t) => {
  const dataDir = tempDir();
  const certs = tempDir();
  const made = tidings(["cert", "--self-signed", certs]);
  assert.equal(made.code, 0, made.err);
  const cert = join(certs, "cert.pem"), key = join(certs, "key.pem");
  addUser(dataDir, "alice", "alice pw");
  const node = await startNode({ dataDir, config: `[tls]\ncert = ${JSON.stringify(cert)}\nkey = ${JSON.stringify(key)}\n[nntp]\ntls_listen = "127.0.0.1:0"\n` });
  try {
    const ca = readFileSync(cert);
    // STARTTLS: AUTHINFO without arguments before, with them after, none after the login
    const { c } = await connect(node);
    const plain = await capabilities(c);
    assert.ok(plain.includes("AUTHINFO") && plain.includes("STARTTLS"), plain.join("|"));
    assert.match(await c.command("AUTHINFO USER alice"), /^483 /);
    await c.startTls({ mode: "starttls", ca });
    const secure = await capabilities(c);
    assert.ok(secure.includes("AUTHINFO USER SASL") && secure.includes("SASL PLAIN") && !secure.includes("STARTTLS"), secure.join("|"));
    assert.match(await c.command("AUTHINFO USER alice"), /^381 /);
    assert.match(await c.command("AUTHINFO PASS alice pw"), /^281 /);
    const after = await capabilities(c);
    assert.ok(!after.some((l) => l.startsWith("AUTHINFO") || l.startsWith("SASL")), after.join("|"));
    c.destroy();

    // implicit TLS (nntps): SASL PLAIN at once
    const { client: s } = await NntpClient.open("127.0.0.1", node.nntpsPort, { tls: { mode: "implicit", ca }, timeoutMs: 30_000 });
    assert.ok((await capabilities(s)).includes("SASL PLAIN"));
    assert.match(await s.command("AUTHINFO SASL PLAIN " + b64("\0alice\0alice pw")), /^281 /);
    s.destroy();

    if (!hasPython()) return t.skip("python3 with nntplib is not available");
    const out = python(`
import json, ssl, sys, nntplib
port, cafile = int(sys.argv[1]), sys.argv[2]
s = nntplib.NNTP("127.0.0.1", port)
s.starttls(ssl.create_default_context(cafile=cafile))
s.login("alice", "alice pw", usenetrc=False)
print(json.dumps({"caps": sorted(s.getcapabilities().keys())}))
s.quit()
`, node.port, cert);
    assert.ok(!(out.caps as string[]).includes("AUTHINFO"), String(out.caps));
  } finally {
    await stop(node);
    rmSync(certs, { recursive: true, force: true });
  }
});

test("access rules change with SIGHUP: a group hidden, posting opened to a user, without a restart", async () => {
  const dataDir = tempDir();
  addUser(dataDir, "alice", "alice-pw");
  const base = "[auth]\nallow_plaintext = true\n[nntp]\nposting_from = [\"127.0.0.1\"]\n";
  const node = await startNode({ dataDir, config: base });
  try {
    const before = (await connect(node, "127.0.0.2")).c;
    assert.match(await before.command("GROUP local.test"), /^211 /);
    assert.match(await before.command("POST"), /^440 /, "a stranger may not post, and no login would help");
    before.destroy();
    writeFileSync(join(dataDir, "tidings.toml"), base + `[[access]]\nusers = ["alice"]\npost = "*"\n\n[[access]]\nread = "*,!local.test"\n`);
    node.proc.kill("SIGHUP");
    // new connections get the new rules once the node has read them
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { c } = await connect(node, "127.0.0.2");
      const r = await c.command("GROUP local.test");
      if (r.startsWith("411")) {
        assert.match(await c.command("POST"), /^480 /, "now a login would allow posting");
        assert.match(await c.command("AUTHINFO USER alice"), /^381 /);
        assert.match(await c.command("AUTHINFO PASS alice-pw"), /^281 /);
        assert.match(await c.command("GROUP local.test"), /^211 /);
        assert.match(await c.command("POST"), /^340 /);
        c.write(stuff(makeArticle().text));
        assert.match(await c.line(), /^240 /);
        c.destroy();
        break;
      }
      c.destroy();
      if (Date.now() > deadline) throw new Error(`the rules did not change after SIGHUP: ${r}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  } finally {
    await stop(node);
  }
});

test("tidings user add at a terminal asks twice without echoing the password", () => {
  const dataDir = tempDir();
  try {
    // a pseudo-terminal, as a person at a shell has
    const r = spawnSync("python3", ["-c", `
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2], "user", "add", "dave", "--data", sys.argv[3]])
out = b""
def read_until(want, t=20):
    global out
    end = time.time() + t
    while want not in out and time.time() < end:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                out += os.read(fd, 1024)
            except OSError:
                return
read_until(b"Password: ")
os.write(fd, b"s3cret pw\\r")
read_until(b"Again: ")
os.write(fd, b"s3cret pw\\r")
read_until(b"added")
os.waitpid(pid, 0)
sys.stdout.write(out.decode())
`, process.execPath, CLI, dataDir], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Password: [\s\S]*Again: [\s\S]*user dave added/);
    assert.ok(!r.stdout.includes("s3cret"), `the password was echoed: ${JSON.stringify(r.stdout)}`);
    assert.match(tidings(["user", "list", "--data", dataDir]).out, /^dave /);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
