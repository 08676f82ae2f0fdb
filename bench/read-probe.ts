// Readers on large articles: a node fed articles of one size by one
// connection, then pipelined ARTICLE (50 in flight) and OVER over them, with
// the node's CPU per article. The bench's reader part runs on its 1 KB
// servers, whose articles stay in their rows; this one shows the spool's read
// path (articles of 4 KB or more, storage/spool.ts). Builds are alternated.
//   node dist/bench/read-probe.js DIST [DIST ...]
//   READ_SIZE=10240   body bytes
//   READ_COUNT=40000  articles fed
//   READ_ROUNDS=2     rounds, each build once a round
import { join, resolve } from "node:path";

const env = process.env;
const size = Number(env.READ_SIZE ?? 10_240);
const count = Number(env.READ_COUNT ?? 40_000);
const rounds = Number(env.READ_ROUNDS ?? 2);
const dists = process.argv.slice(2).map((d) => resolve(d));
if (dists.length === 0) {
  console.error("usage: node dist/bench/read-probe.js DIST [DIST ...]");
  process.exit(2);
}
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

for (let round = 0; round < rounds; round++) {
  for (const dist of round % 2 ? [...dists].reverse() : dists) {
    const { startNode } = (await import(join(dist, "test", "helpers", "node.js"))) as typeof import("../test/helpers/node.js");
    const { feed } = (await import(join(dist, "bench", "feeder.js"))) as typeof import("./feeder.js");
    const { readBench } = (await import(join(dist, "bench", "reader.js"))) as typeof import("./reader.js");
    const node = await startNode();
    try {
      await feed({ host: "127.0.0.1", port: node.port, count, bodyBytes: size, connections: 1, window: 300, group: "local.test", tag: `r${Date.now().toString(36)}` });
      const r = await readBench("127.0.0.1", node.port, "local.test", { serverPid: () => node.pid });
      const a = r.article;
      console.log(
        `round ${round + 1} ${dist}: ARTICLE ${fmt(a.perSecond)}/s (server ${a.serverUsPerItem?.toFixed(1)} µs an article, ${Math.round((a.serverShare ?? 0) * 100)}%),` +
          ` OVER ${fmt(r.overLinesPerSecond)} lines/s, ${fmt(count)} articles of ${fmt(size)} bytes`,
      );
    } finally {
      await node.stop();
    }
  }
}
