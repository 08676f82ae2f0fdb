// Memory: a million 1 KB articles into one node, RSS printed on the way.
// Part of `npm run bench`; `node dist/bench/million.js` runs it alone.
import { readFileSync } from "node:fs";
import net from "node:net";
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
  const sock = net.connect(port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  const before = rss(pid).rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rss(pid).rss)), 50);
  let text = "";
  let stage = 0; // 0 greeting, 1 GROUP's 211, 2 OVER's 224, 3 lines
  let lines = 0;
  let firstMs = -1;
  let t0 = 0;
  await new Promise<void>((resolve, reject) => {
    sock.on("error", reject);
    sock.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      let i: number;
      while ((i = text.indexOf("\r\n")) >= 0) {
        const line = text.slice(0, i);
        text = text.slice(i + 2);
        if (stage === 0) {
          stage = 1;
          sock.write("GROUP local.test\r\n");
        } else if (stage === 1) {
          stage = 2;
          t0 = performance.now();
          sock.write("OVER 1-\r\n");
        } else if (stage === 2) {
          if (!line.startsWith("224")) return reject(new Error(`OVER: ${line}`));
          stage = 3;
        } else if (line === ".") {
          resolve();
          return;
        } else {
          if (lines === 0) firstMs = performance.now() - t0;
          lines++;
        }
      }
    });
  });
  const ms = performance.now() - t0;
  clearInterval(sampler);
  sock.destroy();
  return { firstMs, lines, ms, growthMb: Math.max(peak, rss(pid).rss) - before };
}

if (process.argv[1] && process.argv[1].endsWith("million.js")) {
  await millionArticles(Math.round(1_000_000 * Number(process.env.BENCH_SCALE ?? 1)));
}
