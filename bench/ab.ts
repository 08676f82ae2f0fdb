// Two builds of tidings side by side, for a change's before and after:
//   git worktree add /tmp/before <rev> && (cd /tmp/before && npm ci)
//   node dist/bench/ab.js /tmp/before/dist dist [rounds]
// Each round runs both builds in turn, the order flipped every round, each on
// a fresh node fed by the same client (feeder and reader from this build):
// 1 KB and 10 KB ingest after a warm-up, then OVER and pipelined ARTICLE.
// Each ingest line gives the node's CPU per article (from /proc).
//   AB_CONNECTIONS=1  feeding connections; more than one: one feeder process each (bench/feed-procs.ts)
//   AB_WARM=30000     1 KB articles before timing
//   AB_COUNT=30000    1 KB articles timed
//   AB_COUNT_10K=30000  10 KB articles timed
//   AB_READ=1         0: no reader part
import { join, resolve } from "node:path";
import { feed } from "./feeder.js";
import { feedProcs, procCpuSeconds } from "./feed-procs.js";
import { readBench } from "./reader.js";

const [a, b] = process.argv.slice(2, 4).map((d) => resolve(d));
const rounds = Number(process.argv[4] ?? 2);
if (!a || !b) {
  console.error("usage: node dist/bench/ab.js DIST_A DIST_B [rounds]");
  process.exit(2);
}
const env = process.env;
const connections = Number(env.AB_CONNECTIONS ?? 1);
const warm = Number(env.AB_WARM ?? 30_000);
const count1 = Number(env.AB_COUNT ?? 30_000);
const count10 = Number(env.AB_COUNT_10K ?? 30_000);
const read = env.AB_READ !== "0";
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

for (let round = 0; round < rounds; round++) {
  for (const dist of round % 2 ? [b, a] : [a, b]) {
    const { startNode } = (await import(join(dist, "test", "helpers", "node.js"))) as typeof import("../test/helpers/node.js");
    const node = await startNode();
    try {
      const run = async (count: number, bodyBytes: number, tag: string) => {
        const o = { host: "127.0.0.1", port: node.port, count, bodyBytes, connections, window: 300, group: "local.test", tag: `${tag}${Date.now().toString(36)}` };
        const c0 = procCpuSeconds(node.pid);
        const r = connections > 1 ? await feedProcs(o) : await feed(o);
        return `${fmt(r.accepted / r.seconds)}/s (${(((procCpuSeconds(node.pid) - c0) * 1e6) / r.accepted).toFixed(1)} µs/article)`;
      };
      await run(warm, 1024, "w");
      const k1 = await run(count1, 1024, "k");
      const k10 = await run(count10, 10_240, "t");
      let reads = "";
      if (read) {
        const r = await readBench("127.0.0.1", node.port, "local.test");
        reads = `; OVER ${fmt(r.overLinesPerSecond)} lines/s, ARTICLE ${fmt(r.articlesPerSecond)}/s`;
      }
      console.log(`round ${round + 1} ${dist === a ? "A" : "B"} ${dist}: ingest × ${connections} 1 KB ${k1}, 10 KB ${k10}${reads}`);
    } finally {
      await node.stop();
    }
  }
}
