// Two builds of tidings side by side, for a change's before and after:
//   git worktree add /tmp/before <rev> && (cd /tmp/before && npm ci)
//   node dist/bench/ab.js /tmp/before/dist dist [rounds]
// Each round runs both builds in turn, the order flipped every round, each on
// a fresh node fed by the same client (feeder and reader from this build):
// 1 KB and 10 KB ingest after a warm-up, then OVER and pipelined ARTICLE.
import { join, resolve } from "node:path";
import { feed } from "./feeder.js";
import { readBench } from "./reader.js";

const [a, b] = process.argv.slice(2, 4).map((d) => resolve(d));
const rounds = Number(process.argv[4] ?? 2);
if (!a || !b) {
  console.error("usage: node dist/bench/ab.js DIST_A DIST_B [rounds]");
  process.exit(2);
}
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

for (let round = 0; round < rounds; round++) {
  for (const dist of round % 2 ? [b, a] : [a, b]) {
    const { startNode } = (await import(join(dist, "test", "helpers", "node.js"))) as typeof import("../test/helpers/node.js");
    const node = await startNode();
    try {
      const run = (bodyBytes: number, tag: string) =>
        feed({ host: "127.0.0.1", port: node.port, count: 30_000, bodyBytes, connections: 1, window: 300, group: "local.test", tag: `${tag}${Date.now().toString(36)}` });
      await run(1024, "w"); // warm-up
      const k1 = await run(1024, "k");
      const k10 = await run(10_240, "t");
      const r = await readBench("127.0.0.1", node.port, "local.test");
      console.log(
        `round ${round + 1} ${dist === a ? "A" : "B"} ${dist}: ingest 1 KB ${fmt(k1.accepted / k1.seconds)}/s, 10 KB ${fmt(k10.accepted / k10.seconds)}/s; ` +
          `OVER ${fmt(r.overLinesPerSecond)} lines/s, ARTICLE ${fmt(r.articlesPerSecond)}/s`,
      );
    } finally {
      await node.stop();
    }
  }
}
