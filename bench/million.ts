// Memory: a million 1 KB articles into one node, RSS printed on the way.
// Part of `npm run bench`; `node dist/bench/million.js` runs it alone.
import { readFileSync } from "node:fs";
import { NntpClient } from "../protocol/nntp/client.js";
import { startNode } from "../test/helpers/node.js";
import { feed } from "./feeder.js";

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

/** A process's resident memory now and at its peak, in MB. */
export function rss(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

export async function millionArticles(total: number): Promise<void> {
  console.log(`\nMemory: ${fmt(total)} articles of 1 KB into one node, 4 connections`);
  const node = await startNode({ args: ["--log-level", "warn"] });
  const step = Math.max(1, Math.round(total / 5));
  let fed = 0;
  const t0 = performance.now();
  while (fed < total) {
    const n = Math.min(step, total - fed);
    const f = await feed({ host: "127.0.0.1", port: node.port, count: n, bodyBytes: 1024, connections: 4, window: 300, group: "local.test", tag: `m${fed}x${Date.now().toString(36)}` });
    fed += f.accepted;
    const m = rss(node.pid);
    console.log(`  ${fmt(fed)} articles: RSS ${fmt(m.rss)} MB, peak ${fmt(m.peak)} MB, ${fmt(fed / ((performance.now() - t0) / 1000))} art/s overall`);
  }
  const m = rss(node.pid);
  console.log(`after ${fmt(fed)} articles: RSS ${fmt(m.rss)} MB (target < 200 MB), peak ${fmt(m.peak)} MB`);
  const o = await overAll(node.port, node.pid);
  console.log(
    `OVER 1- over the group of ${fmt(fed)}: first line after ${o.firstMs.toFixed(1)} ms (target < 50 ms), ` +
      `${fmt(o.lines)} lines in ${(o.ms / 1000).toFixed(1)} s, node RSS +${o.growthMb.toFixed(1)} MB while streaming (target < 50 MB)`,
  );
  await node.stop();
}

/** OVER 1- on local.test, read as fast as it comes: time to the first overview line, lines, RSS growth. */
async function overAll(port: number, pid: number): Promise<{ firstMs: number; lines: number; ms: number; growthMb: number }> {
  const { client } = await NntpClient.open("127.0.0.1", port);
  const before = rss(pid).rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rss(pid).rss)), 50);
  let lines = 0;
  let firstMs = -1;
  const g = await client.command("GROUP local.test");
  if (!g.startsWith("211")) throw new Error(`GROUP: ${g}`);
  const t0 = performance.now();
  const over = await client.command("OVER 1-");
  if (!over.startsWith("224")) throw new Error(`OVER: ${over}`);
  // each overview line as it arrives, to time the first
  await new Promise<void>((resolve, reject) => {
    client.onClose = reject;
    client.onLine = (line) => {
      if (line === ".") {
        client.onLine = undefined;
        resolve();
      } else {
        if (lines === 0) firstMs = performance.now() - t0;
        lines++;
      }
    };
    for (const l of client.takeBuffered()) client.onLine?.(l);
  });
  const ms = performance.now() - t0;
  clearInterval(sampler);
  client.onClose = undefined;
  client.destroy();
  return { firstMs, lines, ms, growthMb: Math.max(peak, rss(pid).rss) - before };
}

if (process.argv[1] && process.argv[1].endsWith("million.js")) {
  await millionArticles(Math.round(1_000_000 * Number(process.env.BENCH_SCALE ?? 1)));
}
