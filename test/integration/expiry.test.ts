// Expiry as an operator sees it: `tidings expire` (and --dry-run) against a
// running node, articles leaving groups by the [expire] rules, water marks
// that GROUP, LISTGROUP and OVER agree on, expired Message-IDs refused while
// remembered and taken again after, and a database file that stops growing
// under a steady flood.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, startNode, type TestNode } from "../helpers/node.js";
import { RawClient, makeArticle, stuff } from "../helpers/client.js";
import { ConfigSchema } from "../../config/schema.js";
import { retentionFor } from "../../relay/expiry.js";
import { Mesh, post } from "../helpers/mesh.js";

function tidings(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function expire(node: TestNode, ...more: string[]) {
  const r = tidings("expire", "--data", node.dataDir, ...more);
  assert.equal(r.code, 0, r.out + r.err);
  return r.out;
}

/** Seconds as the days that [expire] counts in. */
const days = (seconds: number) => seconds / 86400;

/** Offers articles by TAKETHIS (RFC 4644) from a transit address, pipelined; returns their Message-IDs. */
async function flood(port: number, n: number, opts: { groups?: string; body?: string; prefix?: string } = {}): Promise<string[]> {
  const { client } = await RawClient.connect(port);
  assert.match(await client.cmd("MODE STREAM"), /^203/);
  const ids: string[] = [];
  const WINDOW = 200;
  for (let i = 0; i < n; i += WINDOW) {
    const chunk: Buffer[] = [];
    const k = Math.min(WINDOW, n - i);
    for (let j = 0; j < k; j++) {
      const a = makeArticle({ groups: opts.groups, body: opts.body, msgid: opts.prefix ? `<${opts.prefix}.${i + j}@test.example>` : undefined });
      ids.push(a.msgid);
      chunk.push(Buffer.from(`TAKETHIS ${a.msgid}\r\n`), stuff(a.text));
    }
    client.send(Buffer.concat(chunk));
    for (let j = 0; j < k; j++) assert.match(await client.line(30_000), /^239/);
  }
  client.close();
  return ids;
}

async function offerIhave(c: RawClient, article: { msgid: string; text: string }): Promise<string> {
  const r = await c.cmd(`IHAVE ${article.msgid}`);
  if (!r.startsWith("335")) return r;
  c.send(stuff(article.text));
  return c.line();
}

test("expired articles leave their groups; their Message-IDs are refused while remembered and taken after", { timeout: 60_000 }, async () => {
  const REMEMBER = 8; // seconds
  const node = await startNode({
    config: `[expire]\nschedule = "off"\nremember = ${days(REMEMBER)}\n\n[[expire.rule]]\ngroups = "local.*"\nmax_articles = 3\n\n[[expire.rule]]\ngroups = "local.general"\ndays = "never"\nmax_articles = 0\n`,
  });
  try {
    const { client: c } = await RawClient.connect(node.port);
    // ten articles in local.test; the fourth is cross-posted to local.general, which keeps everything
    const arts = Array.from({ length: 10 }, (_, i) => makeArticle({ groups: i === 3 ? "local.test,local.general" : "local.test", subject: `number ${i + 1}` }));
    for (const a of arts) assert.match(await offerIhave(c, a), /^235/);
    assert.match(await c.cmd("GROUP local.test"), /^211 10 1 10 local\.test/);

    // a dry run says what would go and changes nothing
    const dry = expire(node, "--dry-run");
    assert.match(dry, /by the running node/);
    assert.match(dry, /dry run: nothing was changed/);
    assert.match(dry, /local\.test\s+7 articles/);
    assert.match(dry, /would remove 6 articles whole/, "the cross-posted one stays: local.general keeps it");
    assert.match(await c.cmd("GROUP local.test"), /^211 10 1 10 local\.test/);
    assert.match(await c.cmd(`STAT ${arts[0].msgid}`), /^223/);

    const out = expire(node);
    assert.match(out, /local\.test\s+7 articles .* now 8-10/);
    assert.match(out, /removed 6 articles whole/);
    // the run (not the dry run before it) shows in tidings status
    const shown = /last expiry \d+ (ms|s) ago \(\d+ ms\): 6 articles removed whole \(\d+ bytes\) from \d+ groups/;
    const deadline = Date.now() + 15_000; // status.json is written every feeds.status_interval
    while (!shown.test(tidings("status", "--data", node.dataDir).out)) {
      assert.ok(Date.now() < deadline, `status never showed the expiry:\n${tidings("status", "--data", node.dataDir).out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // RFC 3977 §6.1.1.2: low is the lowest number still there; GROUP, LISTGROUP and OVER agree
    assert.match(await c.cmd("GROUP local.test"), /^211 3 8 10 local\.test/);
    assert.match(await c.cmd("LISTGROUP local.test"), /^211 3 8 10 local\.test/);
    assert.deepEqual(await c.lines(), ["8", "9", "10"]);
    assert.match(await c.cmd("OVER 1-10"), /^224/);
    assert.deepEqual((await c.lines()).map((l) => l.split("\t")[0]), ["8", "9", "10"]);
    assert.match(await c.cmd("ARTICLE 1"), /^423/);
    assert.match(await c.cmd(`ARTICLE ${arts[0].msgid}`), /^430/);
    // the cross-posted article left local.test but is still in local.general
    assert.match(await c.cmd(`STAT ${arts[3].msgid}`), /^223/);
    assert.match(await c.cmd("GROUP local.general"), /^211 1 1 1 local\.general/);

    // offered again while remembered: refused, by IHAVE and by CHECK (RFC 3977 §6.3.2, RFC 4644 §2.3)
    const expired = arts.filter((_, i) => i < 7 && i !== 3);
    for (const a of expired) assert.match(await c.cmd(`IHAVE ${a.msgid}`), /^435/, `${a.msgid} taken again while remembered`);
    const { client: s } = await RawClient.connect(node.port);
    assert.match(await s.cmd("MODE STREAM"), /^203/);
    assert.match(await s.cmd(`CHECK ${expired[0].msgid}`), /^438/);

    // after the remember time, the next run forgets them, and they are taken again
    await new Promise((r) => setTimeout(r, REMEMBER * 1000 + 500));
    const later = expire(node);
    assert.match(later, /history rows forgotten: 6/);
    assert.match(await s.cmd(`CHECK ${expired[0].msgid}`), /^238/);
    s.send(Buffer.concat([Buffer.from(`TAKETHIS ${expired[0].msgid}\r\n`), stuff(expired[0].text)]));
    assert.match(await s.line(), /^239/);
    for (const a of expired.slice(1)) assert.match(await offerIhave(c, a), /^235/, `${a.msgid} refused after the remember time`);
    assert.match(await c.cmd(`STAT ${expired[1].msgid}`), /^223/);
    assert.match(await c.cmd(`IHAVE ${arts[9].msgid}`), /^435/, "an article still there is still a duplicate");
    s.close();
    c.close();
  } finally {
    await node.stop();
  }
});

test("the last rule that matches a group applies, and keys it leaves out come from [expire]", () => {
  const cfg = ConfigSchema.parse({
    expire: {
      days: 30,
      max_articles: 100,
      rule: [
        { groups: "local.*", days: "never" },
        { groups: "local.archive*", max_bytes: 5000 },
        { groups: "*,!local.*", max_articles: 0 },
      ],
    },
  }).expire;
  assert.deepEqual(retentionFor(cfg, "comp.lang.c"), { days: 30, maxArticles: 0, maxBytes: 0 });
  assert.deepEqual(retentionFor(cfg, "local.test"), { days: null, maxArticles: 100, maxBytes: 0 });
  // INN's expire.ctl order: the later, more specific rule wins over local.*
  assert.deepEqual(retentionFor(cfg, "local.archive.2024"), { days: 30, maxArticles: 100, maxBytes: 5000 });
  assert.deepEqual(retentionFor({ ...cfg, rule: [] }, "local.test"), { days: 30, maxArticles: 100, maxBytes: 0 });
});

test("expiry runs on its schedule, which a reload changes", { timeout: 60_000 }, async () => {
  const node = await startNode({ config: `[expire]\nschedule = "off"\nmax_articles = 2\n` });
  try {
    await flood(node.port, 5, { groups: "local.test" });
    const { client: c } = await RawClient.connect(node.port);
    assert.match(await c.cmd("GROUP local.test"), /^211 5 1 5 /);
    writeFileSync(join(node.dataDir, "tidings.toml"), `[expire]\nschedule = "* * * * * *"\nmax_articles = 2\n`);
    node.proc.kill("SIGHUP");
    const deadline = Date.now() + 20_000;
    let group = "";
    while (!/^211 2 4 5 /.test((group = await c.cmd("GROUP local.test")))) {
      assert.ok(Date.now() < deadline, `never expired by the schedule: ${group}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    c.close();
  } finally {
    await node.stop();
  }
});

test("caps by articles and by bytes, ages in days, and a removed group expires by the same rules", { timeout: 60_000 }, async () => {
  const CAP = 5000;
  const node = await startNode({
    config:
      `[expire]\nschedule = "off"\n\n` +
      `[[expire.rule]]\ngroups = "local.test"\nmax_bytes = ${CAP}\n\n` +
      `[[expire.rule]]\ngroups = "local.general"\ndays = ${days(4)}\n\n` +
      `[[expire.rule]]\ngroups = "tidings.general"\nmax_articles = 2\n`,
  });
  try {
    const { client: c } = await RawClient.connect(node.port);
    const body = "x".repeat(70) + "\r\n";
    await flood(node.port, 12, { groups: "local.test", body: body.repeat(10) });
    await flood(node.port, 4, { groups: "local.general" });
    await flood(node.port, 6, { groups: "tidings.general" });
    // tidings.general leaves the carried groups; its articles still expire by its rule
    const rm = tidings("group", "rm", "tidings.general", "--data", node.dataDir);
    assert.equal(rm.code, 0, rm.err);
    // local.general's first four are more than 4 s old by the run; one posted just before is not
    await new Promise((r) => setTimeout(r, 4500));
    await flood(node.port, 1, { groups: "local.general" });

    const out = expire(node);
    assert.match(out, /tidings\.general \(removed\)\s+4 articles/);
    assert.match(out, /local\.general\s+4 articles .* now 5-5/);

    assert.match(await c.cmd("GROUP local.general"), /^211 1 5 5 /);
    // local.test keeps the newest articles whose sizes add up to at most the cap
    const group = await c.cmd("GROUP local.test");
    const [, count, low, high] = /^211 (\d+) (\d+) (\d+)/.exec(group)!.map(Number);
    assert.equal(high, 12);
    assert.match(await c.cmd(`OVER ${low}-${high}`), /^224/);
    const sizes = (await c.lines()).map((l) => Number(l.split("\t")[6]));
    assert.equal(sizes.length, count);
    const kept = sizes.reduce((a, b) => a + b, 0);
    assert.ok(kept <= CAP, `kept ${kept} bytes, cap ${CAP}`);
    assert.ok(kept + sizes[0] > CAP, `one more (${sizes[0]} bytes) would have fitted under the cap: ${kept}`);
    assert.ok(count >= 2 && count < 12, `local.test kept ${count}`);
    c.close();
  } finally {
    await node.stop();
  }
});

test("articles that expire while queued for a peer that is down are dropped from its backlog, not sent", { timeout: 60_000 }, async () => {
  const mesh = await Mesh.start(2, [[0, 1]], `[expire]\nschedule = "off"\nmax_articles = 1\n`);
  try {
    const [a, b] = mesh.nodes;
    await b.node.stop({ keepData: true });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await post(a.port, "local.test"));
    const backlog = () => {
      const r = tidings("peer", "list", "--data", a.dir, "--json");
      assert.equal(r.code, 0, r.err);
      return (JSON.parse(r.out) as { name: string; backlog: number }[]).find((p) => p.name === "n1")!.backlog;
    };
    assert.equal(backlog(), 5);
    assert.match(expire(a.node), /removed 4 articles whole/);
    await mesh.restart(1);
    const { client: c } = await RawClient.connect(b.port);
    const deadline = Date.now() + 20_000;
    while (!(await c.cmd(`STAT ${ids[4]}`)).startsWith("223")) {
      assert.ok(Date.now() < deadline, "the article still there never reached the peer");
      await new Promise((r) => setTimeout(r, 100));
    }
    while (backlog() !== 0) {
      assert.ok(Date.now() < deadline, "the backlog of expired articles never drained");
      await new Promise((r) => setTimeout(r, 200));
    }
    // The backlog rows of the expired articles are dropped (storage/backlog.ts reads their msgid as
    // null), the first one too: bytes taken from the bus are not kept while the peer is down
    // (PeerFeed.announce, BacklogSource.returned), so nothing expired is sent from memory.
    for (const id of ids.slice(0, 4)) assert.match(await c.cmd(`STAT ${id}`), /^430/, `${id} was sent after it expired`);
    c.close();
  } finally {
    await mesh.stop();
  }
});

test("with no node running, tidings expire works on the database itself", { timeout: 60_000 }, async () => {
  const config = `[expire]\nschedule = "off"\nmax_articles = 2\n`;
  const node = await startNode({ config });
  try {
    await flood(node.port, 5, { groups: "local.test" });
    await node.stop({ keepData: true });
    const file = join(node.dataDir, "tidings.toml");
    const dry = tidings("expire", "--config", file, "--data", node.dataDir, "--dry-run");
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /directly \(no node is running\)/);
    assert.match(dry.out, /local\.test\s+3 articles/);
    const r = tidings("expire", "--config", file, "--data", node.dataDir);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /removed 3 articles whole/);
    const again = await startNode({ config, dataDir: node.dataDir });
    try {
      const { client: c } = await RawClient.connect(again.port);
      assert.match(await c.cmd("GROUP local.test"), /^211 2 4 5 /);
      c.close();
    } finally {
      await again.stop({ keepData: true });
    }
  } finally {
    await node.stop();
  }
});

/** The database as the operator sees it on disk: the file and its write-ahead log. */
function onDisk(dir: string): { db: number; wal: number } {
  const size = (f: string) => {
    try {
      return statSync(join(dir, f)).size;
    } catch {
      return 0;
    }
  };
  return { db: size("tidings.sqlite"), wal: size("tidings.sqlite-wal") };
}

test("the database file levels off under a steady flood with expiry on", { timeout: 120_000 }, async () => {
  const N = 2000;
  // each round's articles push out the last round's; their Message-IDs are forgotten a round later
  const node = await startNode({ config: `[expire]\nschedule = "off"\nmax_articles = ${N}\nremember = ${days(1)}\n` });
  try {
    const body = ("y".repeat(78) + "\r\n").repeat(25); // about 2 KB
    const sizes: number[] = [];
    for (let round = 1; round <= 6; round++) {
      await flood(node.port, N, { groups: "local.test", body, prefix: `round${round}` });
      const before = onDisk(node.dataDir);
      const out = expire(node);
      const after = onDisk(node.dataDir);
      sizes.push(after.db + after.wal);
      const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
      console.log(
        `round ${round}: ${N} more articles (${round * N} in all); on disk before expiry ${mb(before.db)} + log ${mb(before.wal)},` +
          ` after ${mb(after.db)} + log ${mb(after.wal)}; ${/database: (.*)/.exec(out)?.[1]}; ${/history rows forgotten: \d+/.exec(out)?.[0]}`,
      );
    }
    const { client: c } = await RawClient.connect(node.port);
    assert.match(await c.cmd("GROUP local.test"), new RegExp(`^211 ${N} ${5 * N + 1} ${6 * N} `));
    c.close();
    // the last three rounds stay within 10% of the third: free pages are reused (and given back)
    for (const s of sizes.slice(3)) assert.ok(s <= sizes[2] * 1.1, `grew: ${sizes.map((x) => (x / 1e6).toFixed(2)).join(", ")} MB`);
  } finally {
    await node.stop();
  }
});

test("posting and reading go on while a large expiry runs", { timeout: 120_000 }, async () => {
  const node = await startNode({ config: `[expire]\nschedule = "off"\n\n[[expire.rule]]\ngroups = "local.general"\nmax_articles = 1\n` });
  try {
    const N = 20_000;
    await flood(node.port, N, { groups: "local.general", prefix: "big" });
    const { client: c } = await RawClient.connect(node.port);
    let done = false;
    let output = "";
    const run = new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, [CLI, "expire", "--data", node.dataDir], { stdio: ["ignore", "pipe", "pipe"] });
      p.stdout.on("data", (d) => (output += d));
      p.stderr.on("data", (d) => (output += d));
      p.on("exit", (code) => {
        done = true;
        resolve(code);
      });
    });
    // wait until the expiry is visibly under way: local.general's low mark has moved but not to the end
    const deadline = Date.now() + 60_000;
    let low = 1;
    while (!done && low === 1) {
      assert.ok(Date.now() < deadline, "the expiry never started");
      low = Number(/^211 \d+ (\d+)/.exec(await c.cmd("GROUP local.general"))?.[1] ?? 1);
      await new Promise((r) => setTimeout(r, 5));
    }
    let during = 0;
    let slowest = 0;
    while (!done) {
      const t0 = Date.now();
      const a = makeArticle({ groups: "local.test" });
      assert.match(await c.cmd("POST"), /^340/);
      c.send(stuff(a.text.replace(/^Path: .*\r\n/, "")));
      assert.match(await c.line(), /^240/);
      assert.match(await c.cmd(`STAT ${a.msgid}`), /^223/);
      assert.match(await c.cmd("GROUP local.general"), /^211 /);
      slowest = Math.max(slowest, Date.now() - t0);
      if (!done) during++;
    }
    assert.equal(await run, 0, output);
    console.log(`expiry of ${N - 1} articles: ${during} posts accepted meanwhile, the slowest in ${slowest} ms`);
    assert.match(output, /local\.general\s+19999 articles/);
    assert.ok(during >= 3, `only ${during} posts went through while the expiry ran`);
    assert.match(await c.cmd("GROUP local.general"), new RegExp(`^211 1 ${N} ${N} `));
    c.close();
  } finally {
    await node.stop();
  }
});
