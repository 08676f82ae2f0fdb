// Memory: a million 1 KB articles into one node, RSS printed on the way.
// Part of `npm run bench`; `node dist/bench/million.js` runs it alone.
import { readFileSync } from "node:fs";
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
  await node.stop();
}

if (process.argv[1] && process.argv[1].endsWith("million.js")) {
  await millionArticles(Math.round(1_000_000 * Number(process.env.BENCH_SCALE ?? 1)));
}
