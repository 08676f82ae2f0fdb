// Control messages between two peered nodes, as a hierarchy maintainer and
// posters use them: a newgroup signed the way signcontrol signs (gpg, a
// detached armored signature over the X-Signed-Headers text) creates the group
// on every node it floods to, and INN's own pgpverify agrees with the node;
// an unsigned one where the rules want a signature is logged and ignored;
// cancels and supersedes withdraw an article only with the Cancel-Key that
// opens its Cancel-Lock (RFC 8315), on the node that has it and on a peer
// that gets the cancel first.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Mesh, chain } from "../helpers/mesh.js";
import { startNode, tempDir } from "../helpers/node.js";
import { RawClient, stuff, commandOn, postOn, until } from "../helpers/client.js";

const UID = "Hier Admin <control@hier.example>";
let dir = "";
let gnupg = "";
let keyFile = "";

function gpg(args: string[], input?: string): string {
  const r = spawnSync("gpg", ["--batch", "--homedir", gnupg, ...args], { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gpg ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

before(() => {
  dir = tempDir("tidings-control-");
  gnupg = join(dir, "gnupg");
  mkdirSync(gnupg, { mode: 0o700 });
  gpg(["--passphrase", "", "--quick-gen-key", UID, "rsa2048", "sign", "never"]);
  keyFile = join(dir, "hier.asc");
  writeFileSync(keyFile, gpg(["--armor", "--export", "control@hier.example"]));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A newgroup as signcontrol makes it: the signed text is "X-Signed-Headers:
 * ...", the signed fields, an empty line and the body, LF line ends; gpg
 * makes an armored detached signature; its lines after the Version line go
 * in X-PGP-Sig after the version and the list of signed fields.
 */
function signedNewgroup(group: string, opts: { moderated?: boolean; description: string; tamper?: boolean }): { msgid: string; text: string } {
  const msgid = `<newgroup-${group}-${Date.now()}@hier.example>`;
  const date = new Date().toUTCString().replace("GMT", "+0000");
  const control = `newgroup ${group}${opts.moderated ? " moderated" : ""}`;
  const body = `${group} is a new group.\n\nFor your newsgroups file:\n${group}\t${opts.description}\n`;
  const fields: [string, string][] = [
    ["Subject", `cmsg ${control}`],
    ["Control", control],
    ["Message-ID", msgid],
    ["Date", date],
    ["Injection-Date", date],
    ["From", UID],
  ];
  const signedText = `X-Signed-Headers: ${fields.map(([n]) => n).join(",")}\n${fields.map(([n, v]) => `${n}: ${v}\n`).join("")}\n${body}`;
  const armor = gpg(["--emit-version", "--no-comments", "--no-escape-from-lines", "--no-throw-keyids", "--armor", "--detach-sign", "--local-user", `=${UID}`], signedText);
  const lines = armor.split("\n");
  const version = (lines.find((l) => l.startsWith("Version: ")) ?? "Version: GnuPG").slice(9).replace(/ /g, "_");
  const sig = lines.filter((l) => l.length > 2 && !l.startsWith("-") && !l.startsWith("Version:"));
  const head = [
    "Path: hier.example!not-for-mail",
    `From: ${UID}`,
    "Approved: control@hier.example",
    `Newsgroups: ${group}`,
    `Subject: cmsg ${control}`,
    `Control: ${control}`,
    `Message-ID: ${msgid}`,
    `Date: ${date}`,
    `Injection-Date: ${date}`,
    `X-PGP-Sig: ${version} ${fields.map(([n]) => n).join(",")}`,
    ...sig.map((l) => `\t${l}`),
  ];
  const sent = opts.tamper ? body.replace("new group", "fine group") : body;
  return { msgid, text: head.join("\r\n") + "\r\n\r\n" + sent.replace(/\n/g, "\r\n") };
}

/** INN's pgpverify, run as INN runs it (gpg, a pubring.gpg in <newsetc>/pgp); its INN::Config replaced by a stub naming gpg. */
function pgpverify(article: string): number {
  const etc = join(dir, "etc");
  mkdirSync(join(etc, "pgp"), { recursive: true });
  gpg(["--no-default-keyring", "--keyring", join(etc, "pgp", "pubring.gpg"), "--import", keyFile]);
  const home = join(dir, "verify-home");
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const stub = `BEGIN { $INC{"INN/Config.pm"} = 1; package INN::Config; our $gpg = "/usr/bin/gpg"; our $newsetc = "${etc}"; our $pathtmp = "${dir}"; } $0 = "pgpverify"; do "/usr/lib/news/bin/pgpverify"; die $@ if $@;`;
  const r = spawnSync("perl", ["-e", stub], { input: article, env: { ...process.env, GNUPGHOME: home } });
  return r.status ?? -1;
}

async function ihave(port: number, msgid: string, text: string): Promise<string> {
  const { client } = await RawClient.connect(port);
  try {
    const r = await client.cmd(`IHAVE ${msgid}`);
    if (!r.startsWith("335")) return r;
    client.send(stuff(text));
    return await client.line();
  } finally {
    client.close();
  }
}

async function head(port: number, msgid: string): Promise<string | undefined> {
  const { client } = await RawClient.connect(port);
  try {
    if (!(await client.cmd(`HEAD ${msgid}`)).startsWith("221")) return undefined;
    return (await client.lines()).join("\n");
  } finally {
    client.close();
  }
}

let seq = 0;
function article(from: string, extra = "", groups = "tidings.general"): { msgid: string; text: string } {
  const msgid = `<ctl.${process.pid}.${Date.now().toString(36)}.${seq++}@test.example>`;
  return { msgid, text: `From: ${from}\r\nNewsgroups: ${groups}\r\nSubject: post ${seq}\r\nMessage-ID: ${msgid}\r\n${extra}\r\nBody ${seq}.\r\n` };
}

function cancelOf(target: string, from: string, extra = ""): { msgid: string; text: string } {
  const msgid = `<cancel.${process.pid}.${Date.now().toString(36)}.${seq++}@test.example>`;
  return { msgid, text: `From: ${from}\r\nNewsgroups: tidings.general\r\nSubject: cmsg cancel ${target}\r\nControl: cancel ${target}\r\nMessage-ID: ${msgid}\r\n${extra}\r\nCancelled.\r\n` };
}

test("a signed newgroup creates the group on every node it floods to; pgpverify agrees; unsigned and tampered ones are logged and ignored", { timeout: 120_000 }, async () => {
  const rules = `
[[control]]
message = "*"
from = "control@hier.example"
groups = "hier.*"
action = "doit"
key = "${keyFile}"
`;
  const mesh = await Mesh.start(2, chain(2), rules);
  try {
    const [a, b] = mesh.nodes;
    // the real peer tooling first: INN's pgpverify takes the signed one and refuses the tampered one
    const good = signedNewgroup("hier.talk", { moderated: true, description: "Talk about the hierarchy (Moderated)" });
    const tampered = signedNewgroup("hier.forged", { description: "Forged." , tamper: true });
    assert.equal(pgpverify(good.text), 0, "pgpverify accepts the signed newgroup");
    assert.equal(pgpverify(tampered.text), 3, "pgpverify finds the tampered one's signature bad");

    // an unsigned newgroup from the right sender, then the tampered one, then the signed one, all fed to A
    const unsigned = { msgid: `<newgroup-unsigned-${Date.now()}@hier.example>`, text: "" };
    unsigned.text = `Path: hier.example!not-for-mail\r\nFrom: ${UID}\r\nNewsgroups: hier.unsigned\r\nSubject: cmsg newgroup hier.unsigned\r\nControl: newgroup hier.unsigned\r\nMessage-ID: ${unsigned.msgid}\r\nDate: ${new Date().toUTCString()}\r\n\r\nFor your newsgroups file:\r\nhier.unsigned\tNo signature.\r\n`;
    for (const m of [unsigned, tampered, good]) assert.match(await ihave(a.port, m.msgid, m.text), /^235/);

    // the signed one created the group on A and, flooded by its Newsgroups, on B
    for (const n of [a, b]) {
      const list = await until(async () => {
        const { client } = await RawClient.connect(n.port);
        try {
          if (!(await client.cmd("LIST ACTIVE hier.*")).startsWith("215")) return undefined;
          const lines = await client.lines();
          return lines.some((l) => l.startsWith("hier.talk ")) ? lines : undefined;
        } finally {
          client.close();
        }
      }, 20_000, `hier.talk on ${n.name}`);
      assert.ok(list.find((l) => l.startsWith("hier.talk "))!.endsWith(" m"), `hier.talk is moderated on ${n.name}: ${list}`);
      assert.deepEqual(list.filter((l) => !l.startsWith("hier.talk ")), [], `only the signed group exists on ${n.name}`);
      const { client } = await RawClient.connect(n.port);
      assert.match(await client.cmd("LIST NEWSGROUPS hier.talk"), /^215/);
      assert.deepEqual(await client.lines(), ["hier.talk\tTalk about the hierarchy (Moderated)"]);
      client.close();
      // the control message itself is filed in the control pseudo-group, not in the group
      assert.match(await commandOn(n.port, `STAT ${good.msgid}`), /^223/);
    }
    // the node said why it ignored the other two (log level warn in tests)
    const ignored = () => (a.node.stderr.match(/the rules want a valid X-PGP-Sig/g) ?? []).length;
    await until(async () => ignored() >= 2 || undefined, 10_000, "the log lines");
    assert.equal((a.node.stderr.match(/the rules want a valid X-PGP-Sig/g) ?? []).length, 2, a.node.stderr);
    assert.match(a.node.stderr, /no X-PGP-Sig/);
    assert.match(a.node.stderr, /bad signature/);
  } finally {
    await mesh.stop();
  }
});

test("a newgroup with no [[control]] rule is logged, not acted on (the default)", { timeout: 60_000 }, async () => {
  const node = await startNode({ env: { TIDINGS_TEST_LOG: "info" }, args: ["--log-level", "info"] });
  try {
    const m = signedNewgroup("hier.default", { description: "Default." });
    assert.match(await ihave(node.port, m.msgid, m.text), /^235/);
    await until(async () => node.stderr.includes("control message logged, not acted on") || undefined, 10_000, "the log line");
    assert.match(await commandOn(node.port, "GROUP hier.default"), /^411/);
  } finally {
    await node.stop();
  }
});

test("a cancel withdraws an article only with the Cancel-Key that opens its Cancel-Lock, here and on the peer", { timeout: 120_000 }, async () => {
  const mesh = await Mesh.start(2, chain(2));
  try {
    const [a, b] = mesh.nodes;
    const x = article("Alice <alice@example.org>");
    assert.match(await postOn(a.port, x.text), /^240/);
    const lock = await head(a.port, x.msgid);
    assert.match(lock ?? "", /^Cancel-Lock: sha256:[A-Za-z0-9+/]+=*$/m, "the node locked what its user posted");
    await until(async () => (await commandOn(b.port, `STAT ${x.msgid}`)).startsWith("223") || undefined, 20_000, "the article on B");

    // Mallory's cancel: the node adds a key made for Mallory, which opens nothing
    const bad = cancelOf(x.msgid, "Mallory <mallory@example.org>");
    assert.match(await postOn(a.port, bad.text), /^240/);
    assert.match((await head(a.port, bad.msgid)) ?? "", /^Cancel-Key: sha256:/m);
    await until(async () => (await commandOn(b.port, `STAT ${bad.msgid}`)).startsWith("223") || undefined, 20_000, "Mallory's cancel on B");
    assert.match(await commandOn(a.port, `STAT ${x.msgid}`), /^223/, "still on A");
    assert.match(await commandOn(b.port, `STAT ${x.msgid}`), /^223/, "still on B");

    // Alice's own cancel: the node adds her key; the article goes on A at once and on B when the cancel arrives
    const good = cancelOf(x.msgid, "Alice <alice@example.org>");
    assert.match(await postOn(a.port, good.text), /^240/);
    assert.match(await commandOn(a.port, `STAT ${x.msgid}`), /^430/);
    await until(async () => (await commandOn(b.port, `STAT ${x.msgid}`)).startsWith("430") || undefined, 20_000, "the article gone from B");
    const { client } = await RawClient.connect(a.port);
    const g = await client.cmd("GROUP tidings.general");
    client.close();
    assert.match(g, /^211 0 /, "the group's count went down");
    // offered again later, it is refused: its Message-ID stays in history
    assert.match(await ihave(b.port, x.msgid, `Path: elsewhere!not-for-mail\r\nDate: ${new Date().toUTCString()}\r\n${x.text}`), /^435|^437/);
  } finally {
    await mesh.stop();
  }
});

test("a cancel that reaches a node before its article: the article is refused when it comes, if the key opens its lock", { timeout: 60_000 }, async () => {
  const node = await startNode();
  try {
    const key = "c2VjcmV0IGtleSBvZiB0aGUgcG9zdGVy";
    const lock = createHash("sha256").update(key).digest("base64");
    const date = `Date: ${new Date().toUTCString()}\r\nPath: far.example!not-for-mail\r\n`;
    // the right key first, then its target
    const y = article("Alice <alice@example.org>", `${date}Cancel-Lock: sha256:${lock}\r\n`);
    const cy = cancelOf(y.msgid, "Alice <alice@example.org>", `${date}Cancel-Key: sha256:${key}\r\n`);
    assert.match(await ihave(node.port, cy.msgid, cy.text), /^235/);
    assert.match(await ihave(node.port, y.msgid, y.text), /^437 .*Cancelled by/);
    assert.match(await commandOn(node.port, `STAT ${y.msgid}`), /^430/);
    // a wrong key first: its target is taken when it comes
    const z = article("Alice <alice@example.org>", `${date}Cancel-Lock: sha256:${lock}\r\n`);
    const cz = cancelOf(z.msgid, "Mallory <mallory@example.org>", `${date}Cancel-Key: sha256:bm90IHRoZSBrZXk=\r\n`);
    assert.match(await ihave(node.port, cz.msgid, cz.text), /^235/);
    assert.match(await ihave(node.port, z.msgid, z.text), /^235/);
    assert.match(await commandOn(node.port, `STAT ${z.msgid}`), /^223/);
    // and a cancel with the right key for an article here already withdraws it
    const cz2 = cancelOf(z.msgid, "Alice <alice@example.org>", `${date}Cancel-Key: sha256:${key}\r\n`);
    assert.match(await ihave(node.port, cz2.msgid, cz2.text), /^235/);
    assert.match(await commandOn(node.port, `STAT ${z.msgid}`), /^430/);
  } finally {
    await node.stop();
  }
});

test("supersedes: the poster's new article replaces the old one; someone else's does not", { timeout: 60_000 }, async () => {
  const node = await startNode();
  try {
    const old = article("Alice <alice@example.org>");
    assert.match(await postOn(node.port, old.text), /^240/);
    const other = article("Bob <bob@example.org>", `Supersedes: ${old.msgid}\r\n`);
    assert.match(await postOn(node.port, other.text), /^240/);
    assert.match(await commandOn(node.port, `STAT ${old.msgid}`), /^223/, "Bob cannot replace Alice's article");
    const next = article("Alice <alice@example.org>", `Supersedes: ${old.msgid}\r\n`);
    assert.match(await postOn(node.port, next.text), /^240/);
    assert.match(await commandOn(node.port, `STAT ${old.msgid}`), /^430/);
    assert.match(await commandOn(node.port, `STAT ${next.msgid}`), /^223/);
  } finally {
    await node.stop();
  }
});

test("a peer that gets a node's cancel before the article refuses the article when it comes; a forged cancel first does not stop it", { timeout: 60_000 }, async () => {
  const [a, b] = await Promise.all([startNode(), startNode()]);
  try {
    const fetch = async (msgid: string) => {
      const { client } = await RawClient.connect(a.port);
      try {
        assert.match(await client.cmd(`ARTICLE ${msgid}`), /^220/);
        return (await client.rawBlock()).toString("latin1").replace(/\r\n\.\./g, "\r\n.");
      } finally {
        client.close();
      }
    };
    // Alice posts on A (locked by A) and cancels it there (A adds her key); B has seen neither
    const x = article("Alice <alice@example.org>");
    assert.match(await postOn(a.port, x.text), /^240/);
    const xText = await fetch(x.msgid);
    const c = cancelOf(x.msgid, "Alice <alice@example.org>");
    assert.match(await postOn(a.port, c.text), /^240/);
    const cText = await fetch(c.msgid);
    // B gets the cancel first, then the article, as a flood can deliver them
    assert.match(await ihave(b.port, c.msgid, cText), /^235/);
    assert.match(await ihave(b.port, x.msgid, xText), /^437 .*Cancelled by/);
    assert.match(await commandOn(b.port, `STAT ${x.msgid}`), /^430/);

    // Mallory's cancel for Bob's article reaches B first: Bob's article is still taken
    const y = article("Bob <bob@example.org>");
    assert.match(await postOn(a.port, y.text), /^240/);
    const forged = cancelOf(y.msgid, "Mallory <mallory@example.org>");
    assert.match(await postOn(a.port, forged.text), /^240/);
    assert.match(await ihave(b.port, forged.msgid, await fetch(forged.msgid)), /^235/);
    assert.match(await ihave(b.port, y.msgid, await fetch(y.msgid)), /^235/);
    assert.match(await commandOn(b.port, `STAT ${y.msgid}`), /^223/);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test("checkgroups: applied where a doit rule covers every group it changes, logged where the rule only logs", { timeout: 60_000 }, async () => {
  const groups = ["hier.a", "hier.b", "other.x"].map((g) => `[[group]]\nname = "${g}"\n`).join("\n") + `[[group]]\nname = "control"\nstatus = "n"\n`;
  const doit = `[[control]]\nmessage = "checkgroups"\nfrom = "control@hier.example"\ngroups = "hier.*"\naction = "doit"\n`;
  const checkgroups = (n: number) => {
    const msgid = `<checkgroups-${n}-${Date.now()}@hier.example>`;
    return {
      msgid,
      text: `Path: hier.example!not-for-mail\r\nFrom: ${UID}\r\nNewsgroups: hier.a\r\nSubject: cmsg checkgroups\r\nControl: checkgroups\r\nMessage-ID: ${msgid}\r\nDate: ${new Date().toUTCString()}\r\n\r\n#! scope:hier\r\nhier.a\tThe first group.\r\nhier.c\tA new moderated group. (Moderated)\r\n`,
    };
  };
  const active = async (port: number) => {
    const { client } = await RawClient.connect(port);
    try {
      assert.match(await client.cmd("LIST ACTIVE"), /^215/);
      return (await client.lines()).map((l) => { const f = l.split(" "); return `${f[0]} ${f[3]}`; }).filter((l) => !l.startsWith("control")).sort();
    } finally {
      client.close();
    }
  };
  const applies = await startNode({ config: groups + doit });
  const logs = await startNode({ config: groups + doit.replace('action = "doit"', 'action = "log"'), args: ["--log-level", "info"] });
  try {
    const m = checkgroups(1);
    assert.match(await ihave(applies.port, m.msgid, m.text), /^235/);
    assert.deepEqual(await active(applies.port), ["hier.a y", "hier.c m", "other.x y"]);
    const m2 = checkgroups(2);
    assert.match(await ihave(logs.port, m2.msgid, m2.text), /^235/);
    await until(async () => logs.stderr.includes("checkgroups logged, not applied") || undefined, 10_000, "the log line");
    assert.match(logs.stderr, /add hier\.c m/);
    assert.match(logs.stderr, /remove hier\.b/);
    assert.deepEqual(await active(logs.port), ["hier.a y", "hier.b y", "other.x y"]);
  } finally {
    await Promise.all([applies.stop(), logs.stop()]);
  }
});
