// The web reader's speed (issue 11): a group page over a group of 100,000
// articles (target < 50 ms), an article page (< 5 ms), and Server-Sent Events
// reaching 1,000 connected browsers (< 100 ms from the commit; timed from
// sending the article, which includes the commit). Part of `npm run bench` (BENCH_WEB=0 skips
// it); `node dist/bench/web.js` runs it alone. BENCH_SCALE scales the group.
import http from "node:http";
import { startNode } from "../test/helpers/node.js";
import { NntpClient } from "../protocol/nntp/client.js";
import { feed } from "./feeder.js";

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

function get(port: number, path: string, agent: http.Agent): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent }, (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => (bytes += c.length));
        res.on("end", () => resolve({ status: res.statusCode!, bytes }));
      })
      .on("error", reject);
  });
}

/** Median and 95th percentile of `n` sequential requests, in ms, after `warm` unmeasured ones. */
async function timed(port: number, path: string, n: number, warm = 5): Promise<{ median: number; p95: number; bytes: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let bytes = 0;
  for (let i = 0; i < warm; i++) await get(port, path, agent);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await get(port, path, agent);
    times.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status}`);
    bytes = r.bytes;
  }
  agent.destroy();
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(n / 2)], p95: times[Math.floor(n * 0.95)], bytes };
}

export async function webBench(scale = 1): Promise<void> {
  const articles = Math.max(1000, Math.round(100_000 * scale));
  const clients = 1000;
  console.log(`\nWeb reader: a group of ${fmt(articles)} articles; pages timed over HTTP keep-alive; events to ${fmt(clients)} browsers`);
  const node = await startNode({ args: ["--log-level", "warn"] });
  try {
    const f = await feed({ host: "127.0.0.1", port: node.port, count: articles, bodyBytes: 1024, connections: 4, window: 300, group: "local.test", tag: `w${Date.now().toString(36)}` });
    const { client } = await NntpClient.open("127.0.0.1", node.port);
    const g = await client.command("GROUP local.test");
    const high = Number(g.split(" ")[3]);
    const head = await client.command(`HEAD ${high - 10}`);
    const lines = await client.blockLines();
    const msgid = lines.find((l) => /^message-id:/i.test(l))!.split(/:\s*/)[1].trim();
    if (!head.startsWith("221")) throw new Error(`HEAD: ${head}`);
    const groupPage = await timed(node.httpPort, "/local.test/", 50);
    const articlePage = await timed(node.httpPort, `/local.test/${encodeURIComponent(msgid.slice(1, -1)).replace(/%40/g, "@")}/`, 200);
    const feedPage = await timed(node.httpPort, "/local.test/new.atom", 50);
    console.log(`  group page over ${fmt(f.accepted)} articles: median ${groupPage.median.toFixed(1)} ms, p95 ${groupPage.p95.toFixed(1)} ms (target < 50 ms), ${fmt(groupPage.bytes)} bytes`);
    console.log(`  article page: median ${articlePage.median.toFixed(2)} ms, p95 ${articlePage.p95.toFixed(2)} ms (target < 5 ms)`);
    console.log(`  Atom feed of the group: median ${feedPage.median.toFixed(1)} ms, p95 ${feedPage.p95.toFixed(1)} ms`);

    // 1,000 event streams, then one post: how long from its 240 until the last stream has it
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    const arrivals: number[] = [];
    let connected = 0;
    let wanted = "";
    let allIn!: () => void;
    const ready = new Promise<void>((r) => (allIn = r));
    let allGot!: () => void;
    const done = new Promise<void>((r) => (allGot = r));
    const reqs: http.ClientRequest[] = [];
    for (let i = 0; i < clients; i++) {
      const req = http.get({ host: "127.0.0.1", port: node.httpPort, path: "/local.test/events", agent }, (res) => {
        let buf = "";
        let seen = false;
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          buf += d;
          if (!seen && buf.includes("retry:")) {
            seen = true;
            if (++connected === clients) allIn();
          }
          if (wanted && buf.includes(wanted)) {
            arrivals.push(performance.now());
            buf = "";
            wanted && arrivals.length === clients && allGot();
          }
        });
      });
      req.on("error", () => {});
      reqs.push(req);
    }
    await ready;
    const id = `<web-bench.${Date.now()}@bench>`;
    wanted = id.slice(1, -1);
    const p = await client.command("POST");
    if (!p.startsWith("340")) throw new Error(`POST: ${p}`);
    const sentAt = performance.now();
    client.write(`From: b@example.org\r\nNewsgroups: local.test\r\nSubject: pushed\r\nMessage-ID: ${id}\r\n\r\nhi\r\n.\r\n`);
    const committed = await client.line().then((l) => {
      if (!l.startsWith("240")) throw new Error(`POST: ${l}`);
      return performance.now();
    });
    await Promise.race([done, new Promise((r) => setTimeout(r, 30_000))]);
    arrivals.sort((a, b) => a - b);
    // the events leave right after the COMMIT, often before the poster has read its 240; so the times are
    // counted from sending the article, which is before the commit: an upper bound of the time after it
    const after = arrivals.map((t) => t - sentAt);
    console.log(
      `  events: ${fmt(arrivals.length)} of ${fmt(clients)} streams got the article; from sending it (commit included; its 240 came at ${(committed - sentAt).toFixed(1)} ms): ` +
        `first ${after[0]?.toFixed(1)} ms, median ${after[Math.floor(after.length / 2)]?.toFixed(1)} ms, last ${after[after.length - 1]?.toFixed(1)} ms (target < 100 ms after the commit)`,
    );
    for (const r of reqs) r.destroy();
    agent.destroy();
    client.destroy();
  } finally {
    await node.stop();
  }
}

if (process.argv[1] && process.argv[1].endsWith("web.js")) {
  await webBench(Number(process.env.BENCH_SCALE ?? 1));
}
