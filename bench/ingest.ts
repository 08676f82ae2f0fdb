// Ingest, tidings against INN, cold and warm, with the same feeder in the same run.
//
// For each case (body size × connections) and round, each server gets a
// fresh instance: the first N articles into it are timed (cold), more are
// fed until it holds W (warm-up, not timed), and the next N are timed again
// (warm). Servers alternate within a case, and the order flips every round
// (tidings, INN | INN, tidings | ...) so that drift in the machine's load
// falls on both. Rates are summed over rounds (articles / seconds).
//
// INN is Debian's inn2 in its stock configuration (storage.conf tradspool,
// ovmethod tradindexed, hisv6 history, as shipped in /etc/news), run by
// test/interop/inn-sandbox.sh; its dbz history is sized for the articles the
// run will feed (INN_HISTORY_SIZE → makedbz -s). tidings runs with its
// defaults (storage.synchronous = full).
import { spawnSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/helpers/mesh.js";
import { startNode } from "../test/helpers/node.js";
import { rss } from "./million.js";
import { SANDBOX } from "./paths.js";
import { feedProcs, procCpuSeconds, childPids, type ProcFeedResult } from "./feed-procs.js";
import { readBench, type ReaderResult } from "./reader.js";

export const fmt = (n: number, d = 0) =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }) : "-";

// ---- where the servers keep their data ----
//
// All servers' data goes under one scratch folder that is deleted only when
// the run ends. Deleting a server's data between cases slowed the next INN
// 15-20×: tradspool stores one file per article, and on an ext4 without a
// journal (this machine's root file system) the kernel will not reuse an
// inode freed in the last 1-6 minutes, scanning past each such inode when it
// creates a file (perf on innd: __ext4_new_inode → find_inode_bit →
// recently_deleted). /var/tmp by default: away from the churn other tests
// make in /tmp. BENCH_DIR=folder to choose.

let scratchRoot: string | undefined;
let scratchCount = 0;

export function scratchDir(prefix: string): string {
  if (!scratchRoot) {
    const base = scratchBase();
    mkdirSync(base, { recursive: true });
    scratchRoot = mkdtempSync(join(base, "tidings-bench-"));
    chmodSync(scratchRoot, 0o755); // INN runs as news
  }
  const d = join(scratchRoot, `${prefix}${++scratchCount}`);
  mkdirSync(d);
  return d;
}

/** Microseconds to create one empty file in the scratch folder (the files stay until cleanup()). */
export function fileCreateProbe(n = 2000): number {
  return timeFileCreation(scratchDir("probe-"), n);
}

/** Microseconds to create one empty file in `dir`, an empty folder of the caller's (the files stay). */
export function timeFileCreation(dir: string, n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) closeSync(openSync(join(dir, `f${i}`), "w"));
  return ((performance.now() - t0) * 1000) / n;
}

/**
 * Probes until file creation costs at most `limitUs` µs, or `maxMs` has
 * passed since `from` (performance.now()); calls `onSlow` before each wait
 * of `pollMs`. Returns the last probe.
 */
export async function untilFilesCheap(probe: () => number, limitUs: number, from: number, maxMs: number, pollMs: number, onSlow?: (us: number) => void): Promise<number> {
  let us = probe();
  while (us > limitUs && performance.now() - from < maxMs) {
    onSlow?.(us);
    await new Promise((r) => setTimeout(r, pollMs));
    us = probe();
  }
  return us;
}

/**
 * Waits (up to `maxSeconds`) until creating a file is cheap again, so that no
 * server is timed while the file system still holds inodes deleted in the
 * last minutes (by an earlier run's clean-up, or by anyone else on the
 * machine). Returns the last probe, in µs per file, and the seconds waited.
 */
export async function waitForQuietFs(maxSeconds: number, log: (s: string) => void, limitUs = 100): Promise<{ us: number; waited: number }> {
  const t0 = performance.now();
  // An earlier run's clean-up freed far more inodes, over many block groups,
  // than a probe of one folder sees: wait out the kernel's window for those.
  const since = sinceLastCleanup();
  if (since < RECENTLY_DELETED_SECONDS) {
    const wait = Math.min(maxSeconds, RECENTLY_DELETED_SECONDS - since);
    log(`  an earlier benchmark run deleted its data ${since.toFixed(0)} s ago: waiting ${wait.toFixed(0)} s before timing anything`);
    await new Promise((r) => setTimeout(r, wait * 1000));
  }
  const us = await untilFilesCheap(() => fileCreateProbe(), limitUs, t0, (maxSeconds + RECENTLY_DELETED_SECONDS) * 1000, 15_000, (slow) =>
    log(`  file creation is slow (${slow.toFixed(0)} µs per file; recently deleted inodes?): waiting 15 s`),
  );
  return { us, waited: (performance.now() - t0) / 1000 };
}

export function scratchRootDir(): string | undefined {
  return scratchRoot;
}

const scratchBase = () => process.env.BENCH_DIR ?? (existsSync("/var/tmp") ? "/var/tmp" : tmpdir());
const STAMP = ".tidings-bench-cleanup";
/** ext4 keeps a freed inode out of reuse for 60 s, or 360 s while its inode table block is dirty. */
export const RECENTLY_DELETED_SECONDS = 390;

/** Stops what is still running and deletes the scratch folder, noting when (see waitForQuietFs). */
export async function cleanup(): Promise<void> {
  for (const s of [...live]) await s.stop().catch(() => {});
  if (scratchRoot) {
    rmSync(scratchRoot, { recursive: true, force: true });
    try {
      writeFileSync(join(scratchBase(), STAMP), `${Date.now()}\n`);
    } catch {
      /* best effort */
    }
  }
  scratchRoot = undefined;
}

/** Seconds since an earlier run of this benchmark deleted its data in the same place (Infinity if unknown). */
function sinceLastCleanup(): number {
  try {
    return (Date.now() - Number(readFileSync(join(scratchBase(), STAMP), "utf8").trim())) / 1000;
  } catch {
    return Infinity;
  }
}

const live = new Set<Server>();

// ---- servers ----

export type Variant = "tidings" | "INN" | "INN-unsized";

export interface Server {
  variant: Variant;
  port: number;
  /** The process that takes the feed. */
  pid: number;
  /** The process that serves a reader connection once MODE READER has been answered. */
  readerPid(): number | undefined;
  peakRssMb(): number;
  /** How it was set up, for the report. */
  setup: string;
  /** tidings: its commit latency histogram from /metrics (cumulative counts by upper bound in seconds). */
  commits?(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

export async function startTidings(): Promise<Server> {
  const node = await startNode({ dataDir: scratchDir("tidings-"), args: ["--log-level", "warn"] });
  return track({
    variant: "tidings",
    port: node.port,
    pid: node.pid,
    readerPid: () => node.pid,
    peakRssMb: () => rss(node.pid).peak,
    setup: "defaults (storage.synchronous = full)",
    commits: async () => {
      const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
      const m = new Map<string, number>();
      for (const [, le, n] of text.matchAll(/^tidings_commit_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)) m.set(le, Number(n));
      return m;
    },
    stop: () => node.stop({ keepData: true }),
  });
}

function track(s: Server): Server {
  const stop = s.stop;
  live.add(s);
  s.stop = async () => {
    live.delete(s);
    await stop();
  };
  return s;
}

/** INN from the sandbox; `historySize` sizes its dbz history (makedbz -s), undefined leaves the sandbox's default. */
export async function startInn(historySize?: number): Promise<Server> {
  const dir = scratchDir("inn-");
  const port = await freePort();
  const env = { ...process.env };
  delete env.INN_HISTORY_SIZE;
  if (historySize) env.INN_HISTORY_SIZE = String(historySize);
  const r = spawnSync("bash", [SANDBOX, "start", dir, String(port)], { encoding: "utf8", env });
  if (r.status !== 0) throw new Error(`INN did not start: ${r.stdout}${r.stderr}`);
  const pidFile = existsSync(join(dir, "run", "innd.pid")) ? join(dir, "run", "innd.pid") : join(dir, "run", "sandbox.pid");
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  const dbz = readFileSync(join(dir, "db", "history.dir"), "utf8").split(/\s+/)[2];
  return track({
    variant: historySize ? "INN" : "INN-unsized",
    port,
    pid,
    readerPid: () => childPids(pid, "nnrpd")[0],
    peakRssMb: () => rss(pid).peak,
    setup: `${historySize ? `history sized for ${fmt(historySize)} (makedbz -s)` : "history not sized (makedbz -i -o)"}, dbz table ${fmt(Number(dbz))} slots`,
    stop: async () => {
      spawnSync("bash", [SANDBOX, "stop", dir]); // the data stays until cleanup()
    },
  });
}

// ---- measurement ----

export interface Phase {
  count: number;
  accepted: number;
  seconds: number;
  bytes: number;
  /** Feeder CPU, all its processes, seconds. */
  clientCpu: number;
  /** Busiest feeder process, share of a core. */
  clientMax: number;
  /** Server process CPU, seconds. */
  serverCpu: number;
  /** tidings: commits of the phase that took over 50 ms, and the bound of the slowest one's bucket. */
  slowCommits?: { count: number; longest: string };
}

export interface Case {
  body: number;
  conns: number;
  /** Articles per timed phase. */
  n: number;
  /** Articles in the server when the warm phase starts (cold phase included). */
  w: number;
  reader: boolean;
}

export interface Run {
  round: number;
  variant: Variant;
  setup: string;
  cold: Phase;
  warmupSeconds: number;
  warm: Phase;
  peakRssMb: number;
  reader?: ReaderResult;
  readerError?: string;
}

const WINDOW = 300;

async function timedFeed(s: Server, count: number, c: Case, tag: string): Promise<Phase> {
  const h0 = await s.commits?.();
  const s0 = procCpuSeconds(s.pid);
  const f: ProcFeedResult = await feedProcs({ host: "127.0.0.1", port: s.port, count, bodyBytes: c.body, connections: c.conns, window: WINDOW, group: "local.test", tag });
  const s1 = procCpuSeconds(s.pid);
  const h1 = await s.commits?.();
  const phase: Phase = { count, accepted: f.accepted, seconds: f.seconds, bytes: f.bytes, clientCpu: f.clientCpuSeconds, clientMax: f.clientMaxShare, serverCpu: s1 - s0 };
  if (h0 && h1) {
    // a round where the node waited instead of computing: were its commits (each waits for a sync) slow?
    const d = (le: string) => (h1.get(le) ?? 0) - (h0.get(le) ?? 0);
    let longest = "";
    let below = d("0.05");
    for (const le of h1.keys()) if (d(le) > below && Number(le) > 0.05) (longest = le), (below = d(le));
    phase.slowCommits = { count: d("+Inf") - d("0.05"), longest };
  }
  return phase;
}

export async function runOne(variant: Variant, c: Case, round: number, readerSeconds: number): Promise<Run> {
  const s = variant === "tidings" ? await startTidings() : await startInn(variant === "INN" ? c.w + c.n : undefined);
  try {
    const tag = `${variant === "tidings" ? "t" : variant === "INN" ? "i" : "u"}${round}${Date.now().toString(36)}`;
    const cold = await timedFeed(s, c.n, c, `${tag}c`);
    const t0 = performance.now();
    const chunk = Math.max(1000, Math.floor(100e6 / (c.body + 400)));
    for (let fed = c.n, k = 0; fed < c.w; k++) {
      const n = Math.min(chunk, c.w - fed);
      const f = await feedProcs({ host: "127.0.0.1", port: s.port, count: n, bodyBytes: c.body, connections: c.conns, window: WINDOW, group: "local.test", tag: `${tag}u${k}` });
      if (f.accepted !== n) throw new Error(`${variant} accepted ${f.accepted} of ${n} warm-up articles`);
      fed += n;
    }
    const warmupSeconds = (performance.now() - t0) / 1000;
    const warm = await timedFeed(s, c.n, c, `${tag}w`);
    const peakRssMb = s.peakRssMb();
    let reader: ReaderResult | undefined, readerError: string | undefined;
    if (c.reader && variant !== "INN-unsized") {
      // nnrpd refuses readers when the load average is above inn.conf's nnrpdloadlimit (16 as shipped)
      try {
        reader = await readBench("127.0.0.1", s.port, "local.test", { seconds: readerSeconds, serverPid: () => s.readerPid() });
      } catch (e) {
        readerError = (e as Error).message;
      }
    }
    return { round, variant, setup: s.setup, cold, warmupSeconds, warm, peakRssMb, reader, readerError };
  } finally {
    await s.stop();
  }
}

// ---- summing up ----

/** Phases of the same case added up over rounds. */
export type Sum = Omit<Phase, "count">;

export function sum(ps: Phase[]): Sum {
  const s: Sum = { accepted: 0, seconds: 0, bytes: 0, clientCpu: 0, clientMax: 0, serverCpu: 0 };
  for (const p of ps) {
    s.accepted += p.accepted;
    s.seconds += p.seconds;
    s.bytes += p.bytes;
    s.clientCpu += p.clientCpu;
    s.clientMax = Math.max(s.clientMax, p.clientMax);
    s.serverCpu += p.serverCpu;
  }
  return s;
}

export const rate = (s: Sum | Phase) => s.accepted / s.seconds;
export const pct = (x: number) => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : "-");
export const usPer = (cpu: number, n: number) => (Number.isFinite(cpu) && n ? fmt((cpu / n) * 1e6) : "-");
