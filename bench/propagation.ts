// Propagation: per-hop latency when idle, and sustained flood throughput, for
// tidings (one hop into a minimal receiver, and a chain of 10 nodes) and for
// INN (innd + innfeed into the same receiver), in one run.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { SANDBOX } from "./paths.js";
import { freePort } from "../test/helpers/mesh.js";
import { Receiver } from "./receiver.js";
import { feed, makeArticle } from "./feeder.js";
import { startNode, tempDir } from "../test/helpers/node.js";
import { Mesh, chain } from "../test/helpers/mesh.js";
import { NntpClient } from "../protocol/nntp/client.js";


function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}


/**
 * Articles sent through before timing: innfeed and tidings both send
 * TAKETHIS without CHECK once a peer has taken 95% of about 50 offers
 * (innfeed.conf nocheck-on, relay/outbound/no-check.ts), so both are timed
 * in the mode a busy link runs in.
 */
const WARM = 60;

/** Offers articles one at a time by TAKETHIS to `port` and times each until the receiver has it. */
async function hopLatency(port: number, rx: Receiver, n: number, tag: string): Promise<number[]> {
  const { client: c } = await NntpClient.open("127.0.0.1", port);
  const m = await c.command("MODE STREAM");
  if (!m.startsWith("203")) throw new Error(m);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = makeArticle(tag, i, 1024, "local.test");
    // from the offer (the article leaves the poster) to its arrival one hop on:
    // the node takes it and commits it (synced with synchronous = full); an idle
    // node passes it on while the COMMIT is under way.
    // Timed from the 239 instead, a node that forwards in the same turn as it
    // answers shows 0 (the receiver has it before the poster reads the 239).
    const t0 = performance.now();
    c.write([`TAKETHIS ${a.msgid}\r\n`, a.wire]);
    const r = await c.line();
    if (!r.startsWith("239")) throw new Error(r);
    const t1 = await rx.waitFor(a.msgid, 60_000);
    times.push(Math.max(0, t1 - t0));
    await new Promise((r) => setTimeout(r, 20)); // idle between articles
  }
  c.close();
  return times;
}

export interface ChainResult {
  nodes: number;
  sync: "full" | "normal";
  /** Milliseconds per hop, idle: (offer to the first node → arrival past the last) / nodes. */
  perHop: number[];
  /** Articles per second arriving past the last node under a sustained flood into the first. */
  flood: number;
}

/**
 * A chain of tidings nodes, the last of which feeds a minimal receiver, so
 * that arrival is seen without polling the last node (polling took a core).
 * A hop is one node: it takes the article, commits it and passes it on (an
 * idle node passes it on while the COMMIT is under way, relay/node.ts).
 */
async function chainRun(n: number, sync: "full" | "normal", samples: number, floodN: number): Promise<ChainResult> {
  const rx = await Receiver.start();
  const extra = (i: number) =>
    `[storage]\nsynchronous = "${sync}"\n` +
    (i === n - 1 ? `[[peer]]\nname = "rx"\nhost = "127.0.0.1"\nport = ${rx.port}\ngroups = "*"\nwindow = 300\n` : "");
  const mesh = await Mesh.start(n, chain(n), extra);
  try {
    const { client: inject } = await NntpClient.open("127.0.0.1", mesh.nodes[0].port);
    await inject.command("MODE STREAM");
    const tag = `ch${n}${sync}${Date.now().toString(36)}`;
    const perHop: number[] = [];
    for (let i = -WARM; i < samples; i++) {
      const a = makeArticle(tag, i + WARM, 1024, "local.test");
      const t0 = performance.now();
      inject.write([`TAKETHIS ${a.msgid}\r\n`, a.wire]);
      const r = await inject.line();
      if (!r.startsWith("239")) throw new Error(r);
      const t1 = await rx.waitFor(a.msgid, 60_000);
      // n hops: each node takes the article, commits it and passes it on (the last to the receiver)
      if (i >= 0) perHop.push((t1 - t0) / n); // the first WARM warm the links
      await new Promise((r) => setTimeout(r, 20));
    }
    inject.close();
    const before = rx.arrivals.size;
    const t0 = performance.now();
    await feed({ host: "127.0.0.1", port: mesh.nodes[0].port, count: floodN, bodyBytes: 1024, connections: 1, window: 300, group: "local.test", tag: `cf${tag}` });
    await rx.waitForCount(before + floodN, 900_000);
    return { nodes: n, sync, perHop, flood: floodN / ((performance.now() - t0) / 1000) };
  } finally {
    await mesh.stop();
    await rx.close();
  }
}

export interface PropagationResult {
  tidingsHop: number[];
  innHop?: number[];
  chains: ChainResult[];
  tidingsFlood: number;
  innFlood?: number;
  /** Articles INN had not sent when arrivals stopped (in innfeed's backlog). */
  innSpilled?: number;
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
    await hopLatency(node.port, rx, WARM, `warm${Date.now().toString(36)}`);
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
      await hopLatency(port, rx, WARM, `iwarm${Date.now().toString(36)}`);
      res.innHop = await hopLatency(port, rx, samples, `ihop${Date.now().toString(36)}`);
      const before = rx.arrivals.size;
      const t0 = performance.now();
      await feed({ host: "127.0.0.1", port, count: floodN, bodyBytes: 1024, connections: 1, window: 300, group: "local.test", tag: `ifl${Date.now().toString(36)}` });
      // innfeed spills what it cannot send at once to its backlog file and sends
      // that much later: count what arrived until arrivals stop for 5 s
      const arrived = await rx.waitForCountOrStall(before + floodN, 5_000);
      res.innFlood = (arrived.count - before) / ((arrived.at - t0) / 1000);
      res.innSpilled = before + floodN - arrived.count;
    } finally {
      spawnSync("bash", [SANDBOX, "stop", dir]);
      rmSync(dir, { recursive: true, force: true });
      await rx.close();
    }
  }

  res.chains = [];
  for (const [n, sync] of [[10, "full"], [10, "normal"], [2, "full"]] as const) {
    res.chains.push(await chainRun(n, sync, Math.max(10, Math.round(samples / 2)), floodN));
  }
  return res;
}

export function printPropagation(r: PropagationResult): void {
  const f = (n: number, d = 2) => n.toFixed(d);
  console.log("\nPropagation (1 KB articles), idle: time from offering an article to a node to its arrival one hop on (taken, and passed on while it commits; the sender's 239 waits for the COMMIT)");
  console.log("| | median | p99 |");
  console.log("|---|---|---|");
  console.log(`| tidings → receiver (1 hop) | ${f(pct(r.tidingsHop, 50))} ms | ${f(pct(r.tidingsHop, 99))} ms |`);
  if (r.innHop) console.log(`| INN innd+innfeed → receiver (1 hop) | ${f(pct(r.innHop, 50))} ms | ${f(pct(r.innHop, 99))} ms |`);
  for (const c of r.chains) {
    console.log(`| tidings chain of ${c.nodes}, per hop, synchronous = ${c.sync} | ${f(pct(c.perHop, 50))} ms | ${f(pct(c.perHop, 99))} ms |`);
  }
  if (r.innHop) console.log(`median per hop tidings/INN: ${f(pct(r.tidingsHop, 50) / pct(r.innHop, 50))}× (lower is faster)`);
  console.log("\nSustained flood, articles/s arriving at the far end");
  console.log("| | art/s |\n|---|---|");
  console.log(`| tidings single node ingest (same run) | ${f(r.singleIngest, 0)} |`);
  console.log(`| tidings → receiver | ${f(r.tidingsFlood, 0)} |`);
  if (r.innFlood !== undefined) {
    console.log(`| INN innd+innfeed → receiver | ${f(r.innFlood, 0)} (${r.innSpilled ?? 0} left in innfeed's backlog when arrivals stopped for 5 s) |`);
  }
  for (const c of r.chains) {
    console.log(`| tidings chain of ${c.nodes}, synchronous = ${c.sync}, past the last node | ${f(c.flood, 0)} (${f(c.flood / r.singleIngest)}× single-node ingest) |`);
  }
  console.log(
    "\nA chain of 10 runs 10 nodes, each taking and committing every article, on this machine's 2 cores:" +
      "\nits flood rate is bound by the machine, not by the links (see the chain of 2).",
  );
}

if (process.argv[1] && process.argv[1].endsWith("propagation.js")) {
  const scale = Number(process.env.BENCH_SCALE ?? 1);
  printPropagation(await propagation(scale, process.env.BENCH_INN !== "0"));
}
