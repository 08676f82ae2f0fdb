// Where one ingest run's time goes in the node, by thread: a node warmed with
// 20,000 1 KB articles is fed more by the bench's feeder, and the probe prints
// the rate, each busy thread's user and system CPU (from /proc; the commit
// thread's SQLite work runs on libuv's pool threads), the bytes the node wrote
// per article (WAL and checkpoints) and how busy the whole machine was.
//   node dist/bench/ingest-probe.js
//   PROBE_SIZE=10240  body bytes of the timed articles
//   PROBE_COUNT=30000 timed articles
//   PROBE_CONNECTIONS=4  one feeder process each when more than one
//   PROBE_WARM=20000  articles fed before timing, PROBE_WARM_SIZE=1024 their body bytes
//   PROBE_PROFILE=DIR the node runs with --cpu-prof into DIR
//   PROBE_CONFIG='[storage]\nmax_batch = 500'  the node's configuration (TOML)
//   PROBE_PORT, PROBE_PID  probe a node already running instead (say, one started with --trace-gc)
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { startNode } from "../test/helpers/node.js";
import { feedProcs, machineCpu, threadCpu } from "./feed-procs.js";
import { feed } from "./feeder.js";

const env = process.env;
/** The process's I/O counters (/proc/PID/io): write_bytes, syscw, ... */
const io = (pid: number) =>
  Object.fromEntries(readFileSync(`/proc/${pid}/io`, "utf8").trim().split("\n").map((l) => [l.split(": ")[0], Number(l.split(": ")[1])]));

const node = env.PROBE_PORT
  ? { port: Number(env.PROBE_PORT), pid: Number(env.PROBE_PID), stop: async () => {} }
  : await startNode({ config: env.PROBE_CONFIG?.replaceAll("\\n", "\n"), nodeArgs: env.PROBE_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${env.PROBE_PROFILE}`] : [] });
try {
  const connections = Number(env.PROBE_CONNECTIONS ?? 4);
  const size = Number(env.PROBE_SIZE ?? 10_240);
  const count = Number(env.PROBE_COUNT ?? 30_000);
  const o = (n: number, bodyBytes: number, tag: string) => ({
    host: "127.0.0.1", port: node.port, count: n, bodyBytes, connections, window: 300, group: "local.test", tag: `${tag}${Date.now().toString(36)}`,
  });
  const warm = o(Number(env.PROBE_WARM ?? 20_000), Number(env.PROBE_WARM_SIZE ?? 1024), "w");
  if (warm.count > 0) await (connections > 1 ? feedProcs(warm) : feed(warm));
  const [m0, t0, i0] = [machineCpu(), threadCpu(node.pid), io(node.pid)];
  const r = connections > 1 ? await feedProcs(o(count, size, "t")) : await feed(o(count, size, "t"));
  const [m1, t1, i1] = [machineCpu(), threadCpu(node.pid), io(node.pid)];
  const pct = (x: number) => `${Math.round((x / r.seconds) * 100)}%`;
  console.log(`${Math.round(r.accepted / r.seconds).toLocaleString("en-US")} articles/s of ${size} bytes on ${connections} connection(s), ${r.seconds.toFixed(2)} s`);
  for (const [k, v] of t1) {
    const a = t0.get(k) ?? { user: 0, sys: 0 };
    const [user, sys] = [v.user - a.user, v.sys - a.sys];
    const name = k === node.pid ? "main thread" : `thread ${k}`;
    if (user + sys > 0.02) console.log(`  ${name.padEnd(24)} user ${pct(user).padStart(4)} sys ${pct(sys).padStart(4)}  ${(((user + sys) * 1e6) / r.accepted).toFixed(1)} µs an article`);
  }
  const per = (k: string) => ((i1[k] - i0[k]) / r.accepted).toFixed(1);
  console.log(`  written ${per("write_bytes")} bytes and ${per("syscw")} write calls an article`);
  const all = cpus().length * 100;
  const share = (x: number) => Math.round((x / (m1.total - m0.total)) * all);
  console.log(`  machine ${share(m1.busy - m0.busy)}% busy of ${all}%, iowait ${share(m1.iowait - m0.iowait)}%`);
} finally {
  await node.stop();
}
