// npm run bench: tidings and INN side by side, same feeder, same run.
//   BENCH_SCALE=0.1   shorter runs          BENCH_INN=0      skip INN
//   BENCH_MILLION=0   skip the 1,000,000-article memory run
//   BENCH_PROPAGATION=0  skip the propagation (chain, innfeed) part
import { millionArticles, rss } from "./million.js";
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../test/helpers/mesh.js";
import { feed } from "./feeder.js";
import { readBench } from "./reader.js";
import { startNode, tempDir } from "../test/helpers/node.js";
import { propagation, printPropagation } from "./propagation.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SANDBOX = join(root, "test", "interop", "inn-sandbox.sh");
const scale = Number(process.env.BENCH_SCALE ?? 1);
const useInn = process.env.BENCH_INN !== "0";
const million = process.env.BENCH_MILLION !== "0";



function innAvailable(): boolean {
  if (!useInn) return false;
  const r = spawnSync("bash", [SANDBOX, "ensure"], { stdio: "inherit" });
  return r.status === 0;
}

async function withInn<T>(fn: (port: number) => Promise<T>): Promise<T> {
  const dir = tempDir("tidings-bench-inn-");
  const port = await freePort();
  const r = spawnSync("bash", [SANDBOX, "start", dir, String(port)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`INN did not start: ${r.stdout}${r.stderr}`);
  try {
    return await fn(port);
  } finally {
    spawnSync("bash", [SANDBOX, "stop", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

async function main(): Promise<void> {
  const inn = innAvailable();
  console.log(`tidings benchmark — scale ${scale}, INN ${inn ? "on" : "off"}, ${new Date().toISOString()}`);
  const cases = [
    { body: 1024, conns: 1, n: Math.round(60_000 * scale) },
    { body: 1024, conns: 4, n: Math.round(60_000 * scale) },
    { body: 10240, conns: 1, n: Math.round(20_000 * scale) },
    { body: 10240, conns: 4, n: Math.round(20_000 * scale) },
  ];
  console.log("\nIngest: pipelined CHECK/TAKETHIS, window 300 per connection, fresh server per case");
  console.log("| body | conns | articles | tidings art/s | tidings MB/s | tidings peak RSS | INN art/s | INN MB/s | tidings/INN |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  let readerNode: Awaited<ReturnType<typeof startNode>> | undefined;
  for (const c of cases) {
    const node = await startNode({ args: ["--log-level", "warn"] });
    const tag = `b${Date.now().toString(36)}`;
    const t = await feed({ host: "127.0.0.1", port: node.port, count: c.n, bodyBytes: c.body, connections: c.conns, window: 300, group: "local.test", tag });
    const mem = rss(node.pid);
    const tRate = t.accepted / t.seconds;
    let iRate = NaN, iMb = NaN;
    if (inn) {
      const i = await withInn((port) =>
        feed({ host: "127.0.0.1", port, count: c.n, bodyBytes: c.body, connections: c.conns, window: 300, group: "local.test", tag: `i${tag}` }),
      );
      iRate = i.accepted / i.seconds;
      iMb = i.bytes / i.seconds / 1e6;
      if (i.accepted !== c.n) console.log(`  (INN accepted ${i.accepted} of ${c.n})`);
    }
    if (t.accepted !== c.n) console.log(`  (tidings accepted ${t.accepted} of ${c.n})`);
    console.log(
      `| ${c.body / 1024} KB | ${c.conns} | ${fmt(c.n)} | ${fmt(tRate)} | ${fmt(t.bytes / t.seconds / 1e6, 1)} | ${fmt(mem.peak)} MB | ${inn ? fmt(iRate) : "-"} | ${inn ? fmt(iMb, 1) : "-"} | ${inn ? fmt(tRate / iRate, 2) + "×" : "-"} |`,
    );
    if (c.body === 1024 && c.conns === 1) readerNode = node;
    else await node.stop();
  }

  console.log("\nReader: OVER in chunks of 1000; ARTICLE by number, 50 pipelined (3 s each)");
  const r = await readBench("127.0.0.1", readerNode!.port, "local.test");
  let ir: { overLinesPerSecond: number; articlesPerSecond: number } | undefined;
  if (inn) {
    ir = await withInn(async (port) => {
      await feed({ host: "127.0.0.1", port, count: Math.round(60_000 * scale), bodyBytes: 1024, connections: 1, window: 300, group: "local.test", tag: `r${Date.now().toString(36)}` });
      return readBench("127.0.0.1", port, "local.test");
    });
  }
  console.log("| | tidings | INN (nnrpd) | tidings/INN |\n|---|---|---|---|");
  console.log(`| OVER lines/s | ${fmt(r.overLinesPerSecond)} | ${ir ? fmt(ir.overLinesPerSecond) : "-"} | ${ir ? fmt(r.overLinesPerSecond / ir.overLinesPerSecond, 2) + "×" : "-"} |`);
  console.log(`| ARTICLE/s | ${fmt(r.articlesPerSecond)} | ${ir ? fmt(ir.articlesPerSecond) : "-"} | ${ir ? fmt(r.articlesPerSecond / ir.articlesPerSecond, 2) + "×" : "-"} |`);
  await readerNode!.stop();

  if (process.env.BENCH_PROPAGATION !== "0") printPropagation(await propagation(scale, inn));

  if (million) await millionArticles(Math.round(1_000_000 * scale));
}

await main();
