// Propagation: per-hop latency when idle, and sustained flood throughput, for
// tidings (one hop into a minimal receiver, and a chain of 10 nodes) and for
// INN (innd + innfeed into the same receiver), in one run.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../test/helpers/mesh.js";
import { Receiver } from "./receiver.js";
import { feed, makeArticle } from "./feeder.js";
import { startNode, tempDir } from "../test/helpers/node.js";
import { Mesh, chain } from "../test/helpers/mesh.js";
import { NntpConnection } from "../relay/feeds/connection.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SANDBOX = join(root, "test", "interop", "inn-sandbox.sh");

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}


/** Offers articles one at a time by TAKETHIS to `port` and times each until the receiver has it. */
async function hopLatency(port: number, rx: Receiver, n: number, tag: string): Promise<number[]> {
  const c = await NntpConnection.connect("127.0.0.1", port);
  await c.line();
  const m = await c.command("MODE STREAM");
  if (!m.startsWith("203")) throw new Error(m);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = makeArticle(tag, i, 1024, "local.test");
    c.write([`TAKETHIS ${a.msgid}\r\n`, a.wire]);
    const r = await c.line();
    const t0 = performance.now();
    if (!r.startsWith("239")) throw new Error(r);
    const t1 = await rx.waitFor(a.msgid, 60_000);
    times.push(Math.max(0, t1 - t0));
    await new Promise((r) => setTimeout(r, 20)); // idle between articles
  }
  c.close();
  return times;
}

export interface PropagationResult {
  tidingsHop: number[];
  innHop?: number[];
  chainPerHop: number[];
  chainFlood: number;
  tidingsFlood: number;
  innFlood?: number;
  singleIngest: number;
}

export async function propagation(scale: number, useInn: boolean): Promise<PropagationResult> {
  const samples = Math.max(20, Math.round(100 * scale));
  const floodN = Math.max(2000, Math.round(30_000 * scale));
  const res = {} as PropagationResult;

  // tidings: one hop into the receiver
  {
    const rx = await Receiver.start();
    const node = await startNode({ config: `[[peer]]\nname = "rx"\nhost = "127.0.0.1"\nport = ${rx.port}\ngroups = "*"\nwindow = 300\n` });
    await hopLatency(node.port, rx, 3, `warm${Date.now().toString(36)}`);
    res.tidingsHop = await hopLatency(node.port, rx, samples, `hop${Date.now().toString(36)}`);
    const before = rx.arrivals.size;
    const t0 = performance.now();
    const f = await feed({ host: "127.0.0.1", port: node.port, count: floodN, bodyBytes: 1024, connections: 1, window: 300, group: "local.test", tag: `fl${Date.now().toString(36)}` });
    res.singleIngest = f.accepted / f.seconds;
    await rx.waitForCount(before + floodN);
    res.tidingsFlood = floodN / ((performance.now() - t0) / 1000);
    await node.stop();
    await rx.close();
  }

  // INN: innd accepts, innfeed sends to the receiver
  if (useInn) {
    const rx = await Receiver.start();
    const dir = tempDir("tidings-bench-innfeed-");
    const port = await freePort();
    const r = spawnSync("bash", [SANDBOX, "start", dir, String(port), `127.0.0.1:${rx.port}`], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`INN did not start: ${r.stdout}${r.stderr}`);
    try {
      await hopLatency(port, rx, 3, `iwarm${Date.now().toString(36)}`);
      res.innHop = await hopLatency(port, rx, samples, `ihop${Date.now().toString(36)}`);
      const before = rx.arrivals.size;
      const t0 = performance.now();
      await feed({ host: "127.0.0.1", port, count: floodN, bodyBytes: 1024, connections: 1, window: 300, group: "local.test", tag: `ifl${Date.now().toString(36)}` });
      await rx.waitForCount(before + floodN, 600_000).catch((e) => console.log(`  (INN flood: ${(e as Error).message})`));
      res.innFlood = (rx.arrivals.size - before) / ((performance.now() - t0) / 1000);
    } finally {
      spawnSync("bash", [SANDBOX, "stop", dir]);
      rmSync(dir, { recursive: true, force: true });
      await rx.close();
    }
  }

  // a chain of 10 tidings nodes
  {
    const mesh = await Mesh.start(10, chain(10));
    try {
      const first = mesh.nodes[0].port;
      const last = await NntpConnection.connect("127.0.0.1", mesh.nodes[9].port);
      await last.line();
      const inject = await NntpConnection.connect("127.0.0.1", first);
      await inject.line();
      await inject.command("MODE STREAM");
      const per: number[] = [];
      const tag = `ch${Date.now().toString(36)}`;
      for (let i = 0; i < Math.max(10, Math.round(samples / 2)); i++) {
        const a = makeArticle(tag, i, 1024, "local.test");
        inject.write([`TAKETHIS ${a.msgid}\r\n`, a.wire]);
        const r = await inject.line();
        const t0 = performance.now();
        if (!r.startsWith("239")) throw new Error(r);
        for (;;) {
          const s = await last.command(`STAT ${a.msgid}`);
          if (s.startsWith("223")) break;
        }
        per.push((performance.now() - t0) / 9);
        await new Promise((r) => setTimeout(r, 20));
      }
      res.chainPerHop = per;
      const g0 = Number((await last.command("GROUP local.test")).split(" ")[1]);
      const n = floodN;
      const t0 = performance.now();
      await feed({ host: "127.0.0.1", port: first, count: n, bodyBytes: 1024, connections: 1, window: 300, group: "local.test", tag: `cf${Date.now().toString(36)}` });
      for (;;) {
        const count = Number((await last.command("GROUP local.test")).split(" ")[1]);
        if (count >= g0 + n) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      res.chainFlood = n / ((performance.now() - t0) / 1000);
      inject.close();
      last.close();
    } finally {
      await mesh.stop();
    }
  }
  return res;
}

export function printPropagation(r: PropagationResult): void {
  const f = (n: number, d = 2) => n.toFixed(d);
  console.log("\nPropagation (1 KB articles): time from the sender's 239 to arrival one hop on, idle");
  console.log("| | median | p99 |");
  console.log("|---|---|---|");
  console.log(`| tidings → receiver (1 hop) | ${f(pct(r.tidingsHop, 50))} ms | ${f(pct(r.tidingsHop, 99))} ms |`);
  if (r.innHop) console.log(`| INN innd+innfeed → receiver (1 hop) | ${f(pct(r.innHop, 50))} ms | ${f(pct(r.innHop, 99))} ms |`);
  console.log(`| tidings chain of 10, per hop (STAT polling on the last node) | ${f(pct(r.chainPerHop, 50))} ms | ${f(pct(r.chainPerHop, 99))} ms |`);
  if (r.innHop) console.log(`median per hop tidings/INN: ${f(pct(r.tidingsHop, 50) / pct(r.innHop, 50))}× (lower is faster)`);
  console.log("\nSustained flood, articles/s arriving at the far end");
  console.log("| | art/s |\n|---|---|");
  console.log(`| tidings single node ingest (same run) | ${f(r.singleIngest, 0)} |`);
  console.log(`| tidings → receiver | ${f(r.tidingsFlood, 0)} |`);
  if (r.innFlood !== undefined) console.log(`| INN innd+innfeed → receiver | ${f(r.innFlood, 0)} |`);
  console.log(`| tidings chain of 10, at the last node | ${f(r.chainFlood, 0)} (${f(r.chainFlood / r.singleIngest)}× single-node ingest) |`);
}

if (process.argv[1] && process.argv[1].endsWith("propagation.js")) {
  const scale = Number(process.env.BENCH_SCALE ?? 1);
  printPropagation(await propagation(scale, process.env.BENCH_INN !== "0"));
}
