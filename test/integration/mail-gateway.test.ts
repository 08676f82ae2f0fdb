// The mail-news gateways between two peered nodes: mail to a group's address
// becomes an article that floods to the peer; an article in a group goes by
// mail to its subscribers; and the classic loop (the list mailed to the
// group's own address, a subscriber mailing the group) ends at once.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Mesh, chain, groupContents, post } from "../helpers/mesh.js";
import { SmtpSink } from "../helpers/smtp-sink.js";
import { mailSetup, queued, runWithInput } from "../helpers/mail.js";
import { RawClient, until } from "../helpers/client.js";

before(() => mailSetup());

function sendMail(port: number, from: string, to: string, data: string, source = "127.0.0.1"): Promise<string> {
  return runWithInput("python3", ["-c", `
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", ${port}, source_address=("${source}", 0))
s.sendmail(${JSON.stringify(from)}, [${JSON.stringify(to)}], sys.stdin.buffer.read())
s.quit()
`], Buffer.from(data, "utf8"));
}

async function article(port: number, msgid: string): Promise<string | undefined> {
  const { client } = await RawClient.connect(port);
  try {
    const st = await client.cmd(`ARTICLE ${msgid}`);
    if (!st.startsWith("220")) return undefined;
    return (await client.rawBlock()).toString("utf8");
  } finally {
    client.close();
  }
}

test("mail to a group's address is posted, floods to the peer, goes to the peer's subscribers, and the loops end", { timeout: 90_000 }, async () => {
  const sink = new SmtpSink();
  const sinkPort = await sink.start();
  // n0 and n1 peer by NNTP. Both carry example.talk, each with a mail address;
  // n1's subscribers are alice (at the sink) and n0's group address (routed to
  // n0's SMTP listener, filled in once n0 is up): the list mailed to a gateway.
  let n0Smtp = 0;
  const extra = (i: number) => `
[mail]
retry_first = 0.2
retry_max = 1
sweep = "* * * * * *"

[[group]]
name = "example.talk"
address = "talk@lists.n${i}.test"
${i === 1 ? 'subscribers = ["alice@example.net", "talk@lists.n0.test"]' : ""}

[[route]]
domain = "example.net"
next_hop = "127.0.0.1:${sinkPort}"
${i === 1 ? `\n[[route]]\ndomain = "lists.n0.test"\nnext_hop = "127.0.0.1:N0SMTP"\n` : ""}`;
  const mesh = await Mesh.start(2, chain(2), (i) => extra(i).replace("N0SMTP", String(n0Smtp || 9)));
  try {
    n0Smtp = mesh.nodes[0].node.smtpPort;
    await mesh.nodes[1].node.stop({ keepData: true });
    await mesh.restart(1); // now with n0's SMTP port in its route
    const [n0, n1] = mesh.nodes;

    // 1. A stranger (127.0.0.2) mails the group on n0: accepted from anyone, posted with its Message-ID kept.
    const id = `<gw1.${Date.now()}@example.org>`;
    const mail = `From: Bob <bob@example.org>\r\nTo: talk@lists.n0.test\r\nSubject: hello from mail\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: ${id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nA body with ünïcödé.\r\n`;
    await sendMail(n0.node.smtpPort, "bob@example.org", "talk@lists.n0.test", mail, "127.0.0.2");
    const onN0 = await until(() => article(n0.port, id), 10_000, "the article on n0");
    assert.match(onN0, /^Newsgroups: example\.talk\r$/m);
    assert.match(onN0, /^Path: n0\.test!\.POSTED!not-for-mail\r$/m);
    assert.match(onN0, /^Injection-Info: n0\.test; posting-host="127\.0\.0\.2"\r$/m);
    assert.match(onN0, /^Received: from \S+ \(\[127\.0\.0\.2\]\)/m, "the mail's trace is kept");
    assert.ok(onN0.endsWith("\r\n\r\nA body with ünïcödé.\r\n"), "the body is kept");
    // 2. It floods to n1 by NNTP, and n1 mails it to alice with the list headers.
    await until(() => article(n1.port, id), 10_000, "the article on n1");
    const toAlice = await until(async () => sink.messages.find((m) => m.data.includes(Buffer.from(id))), 10_000, "the mail to alice");
    assert.deepEqual(toAlice.to, ["alice@example.net"]);
    const text = toAlice.data.toString("utf8");
    assert.match(text, /^List-Id: <example\.talk\.n1\.test>\r$/m);
    assert.match(text, /^List-Post: <mailto:talk@lists\.n1\.test>\r$/m);
    assert.match(text, /^List-Unsubscribe: <mailto:postmaster@n1\.test\?subject=unsubscribe%20example\.talk>\r$/m);
    assert.match(text, /^From: Bob <bob@example\.org>\r$/m);
    // 3. n1 also mailed it to n0's group address: n0 has it already (history), so nothing new.
    await until(async () => (await queued(n1.node)).length === 0 && (await queued(n0.node)).length === 0, 15_000, "both queues to empty");

    // 4. alice, a subscriber, mails n1's group: the article is not mailed back to her.
    const id2 = `<gw2.${Date.now()}@example.net>`;
    await sendMail(n1.node.smtpPort, "alice@example.net", "talk@lists.n1.test",
      `From: alice@example.net\r\nSubject: reply by mail\r\nDate: Wed, 25 Nov 2026 12:01:00 +0000\r\nMessage-ID: ${id2}\r\nReferences: ${id}\r\n\r\nagreed\r\n`);
    await until(() => article(n0.port, id2), 10_000, "the reply on n0");
    // 5. a post by NNTP on n1 reaches alice by mail
    const id3 = await post(n1.port, "example.talk", "posted by NNTP\r\n");
    await until(async () => sink.messages.find((m) => m.data.includes(Buffer.from(id3))), 10_000, "the NNTP post by mail");
    await until(async () => (await queued(n1.node)).length === 0 && (await queued(n0.node)).length === 0, 15_000, "both queues to empty");
    await new Promise((r) => setTimeout(r, 500)); // anything still circulating would show now

    assert.equal(sink.messages.filter((m) => m.data.includes(Buffer.from(id2))).length, 0, "alice's own mail is not mailed back to her");
    for (const msgid of [id, id3]) assert.equal(sink.messages.filter((m) => m.data.includes(Buffer.from(`Message-ID: ${msgid}`))).length, 1, `${msgid} mailed to alice once`);
    for (const m of mesh.nodes) {
      const ids = (await groupContents(m.port, "example.talk")).map((a) => a.msgid).sort();
      assert.deepEqual(ids, [id, id2, id3].sort(), `${m.name} has each article once`);
    }
    const s0 = JSON.parse(readFileSync(join(n0.dir, "status.json"), "utf8"));
    assert.ok(s0.articles.duplicate >= 1, "n0 saw its own article come back by mail and took it as a duplicate");
  } finally {
    await mesh.stop();
    await sink.stop();
  }
});
