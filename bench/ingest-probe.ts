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
import { readFileSync, readdirSync } from "node:fs";
import { startNode } from "../test/helpers/node.js";
import { feedProcs } from "./feed-procs.js";
import { feed } from "./feeder.js";

const env = process.env;
/** CPU seconds (user, system) of each thread of a process. */
function threads(pid: number): Map<string, { user: number; sys: number }> {
  const out = new Map<string, { user: number; sys: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      out.set(`${st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"))} ${tid}`, { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}
const io = (pid: number) =>
  Object.fromEntries(readFileSync(`/proc/${pid}/io`, "utf8").trim().split("\n").map((l) => [l.split(": ")[0], Number(l.split(": ")[1])]));
/** The machine's CPU ticks: [busy, iowait, all]. */
function machine(): [number, number, number] {
  const t = readFileSync("/proc/stat", "utf8").split("\n")[0].split(/\s+/).slice(1).map(Number);
  return [t[0] + t[1] + t[2] + t[5] + t[6], t[4], t.reduce((a, b) => a + b, 0)];
}

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
  const [m0, t0, i0] = [machine(), threads(node.pid), io(node.pid)];
  const r = connections > 1 ? await feedProcs(o(count, size, "t")) : await feed(o(count, size, "t"));
  const [m1, t1, i1] = [machine(), threads(node.pid), io(node.pid)];
  const pct = (x: number) => `${Math.round((x / r.seconds) * 100)}%`;
  console.log(`${Math.round(r.accepted / r.seconds).toLocaleString("en-US")} articles/s of ${size} bytes on ${connections} connection(s), ${r.seconds.toFixed(2)} s`);
  for (const [k, v] of t1) {
    const a = t0.get(k) ?? { user: 0, sys: 0 };
    const [user, sys] = [v.user - a.user, v.sys - a.sys];
    if (user + sys > 0.02) console.log(`  ${k.padEnd(24)} user ${pct(user).padStart(4)} sys ${pct(sys).padStart(4)}  ${(((user + sys) * 1e6) / r.accepted).toFixed(1)} µs an article`);
  }
  const per = (k: string) => ((i1[k] - i0[k]) / r.accepted).toFixed(1);
  console.log(`  written ${per("write_bytes")} bytes and ${per("syscw")} write calls an article`);
  console.log(`  machine ${Math.round(((m1[0] - m0[0]) / (m1[2] - m0[2])) * 200)}% busy of 200%, iowait ${Math.round(((m1[1] - m0[1]) / (m1[2] - m0[2])) * 200)}%`);
} finally {
  await node.stop();
}
