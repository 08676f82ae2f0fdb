// The benchmark's feeder: one child process per connection (bench/feed-worker.ts),
// all started together once their articles are made and their connections
// are in streaming mode, so the clock covers only the CHECK/TAKETHIS traffic
// and no connection waits for another's event loop. Reports the feeder's own
// CPU, summed over its processes and for the busiest one, so a run can show
// that the client was not the bottleneck.
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { WorkerJob, WorkerResult } from "./feed-worker.js";
import type { FeedOptions } from "./feeder.js";

const WORKER = join(dirname(fileURLToPath(import.meta.url)), "feed-worker.js");

export type ProcFeedOptions = Omit<FeedOptions, "tolerateClose" | "onAck">;

export interface ProcFeedResult {
  offered: number;
  accepted: number;
  refused: number;
  deferred: number;
  bytes: number;
  /** Wall time from the start signal to the last connection's last reply. */
  seconds: number;
  /** Feeder CPU (user + system) over all its processes, in seconds. */
  clientCpuSeconds: number;
  /** The busiest feeder process's CPU as a share of one core over its own run (1 = a full core). */
  clientMaxShare: number;
  processes: number;
}

interface Child {
  proc: ChildProcess;
  next(): Promise<{ op: string; result?: WorkerResult; message?: string }>;
}

function spawnWorker(): Child {
  const proc = fork(WORKER, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const queue: unknown[] = [];
  let waiter: ((m: unknown) => void) | undefined;
  let exitErr: Error | undefined;
  proc.on("message", (m) => {
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w(m);
    } else queue.push(m);
  });
  proc.on("exit", (code, sig) => {
    exitErr = new Error(`feeder process exited (${code ?? sig})`);
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w({ op: "error", message: exitErr.message });
    }
  });
  return {
    proc,
    next: () =>
      new Promise((res) => {
        if (queue.length) res(queue.shift() as never);
        else if (exitErr) res({ op: "error", message: exitErr.message });
        else waiter = res as never;
      }),
  };
}

export async function feedProcs(o: ProcFeedOptions): Promise<ProcFeedResult> {
  const per = Math.ceil(o.count / o.connections);
  const jobs: WorkerJob[] = [];
  for (let c = 0; c < o.connections; c++) {
    const from = c * per;
    const to = Math.min(o.count, from + per);
    if (to > from) {
      jobs.push({ host: o.host, port: o.port, from, to, bodyBytes: o.bodyBytes, window: o.window, group: o.group, tag: o.tag, timeoutMs: o.timeoutMs ?? 900_000 });
    }
  }
  const children = jobs.map(() => spawnWorker());
  try {
    children.forEach((c, i) => c.proc.send({ op: "prepare", job: jobs[i] }));
    for (const c of children) {
      const m = await c.next();
      if (m.op !== "ready") throw new Error(`feeder: ${m.message ?? m.op}`);
    }
    const t0 = process.hrtime.bigint();
    for (const c of children) c.proc.send({ op: "go" });
    const results = await Promise.all(
      children.map(async (c) => {
        const m = await c.next();
        if (m.op !== "done") throw new Error(`feeder: ${m.message ?? m.op}`);
        return m.result!;
      }),
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const r: ProcFeedResult = { offered: 0, accepted: 0, refused: 0, deferred: 0, bytes: 0, seconds, clientCpuSeconds: 0, clientMaxShare: 0, processes: children.length };
    for (const p of results) {
      r.offered += p.offered;
      r.accepted += p.accepted;
      r.refused += p.refused;
      r.deferred += p.deferred;
      r.bytes += p.bytes;
      const cpu = p.cpuUserSeconds + p.cpuSystemSeconds;
      r.clientCpuSeconds += cpu;
      r.clientMaxShare = Math.max(r.clientMaxShare, cpu / Math.max(1e-9, p.seconds));
    }
    return r;
  } finally {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill();
  }
}

// ---- CPU of server processes, from /proc ----

const TICKS = 100; // USER_HZ on Linux

/** CPU (user + system, all threads) a live process has used, in seconds; NaN if it is gone. */
export function procCpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // after "pid (comm) ": state=0 ppid=1 ... utime=11 stime=12
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch {
    return NaN;
  }
}

/** User and system CPU seconds of each live thread of a process, by thread id (the main thread's id is the pid). */
export function threadCpu(pid: number): Map<number, { user: number; sys: number }> {
  const out = new Map<number, { user: number; sys: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      out.set(Number(tid), { user: Number(f[11]) / TICKS, sys: Number(f[12]) / TICKS });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The whole machine's CPU so far (/proc/stat), in seconds of CPU: busy, waiting for I/O, and all. */
export function machineCpu(): { busy: number; iowait: number; total: number } {
  const l = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const total = l.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = l[3] + l[4];
  return { busy: (total - idle) / TICKS, iowait: l[4] / TICKS, total: total / TICKS };
}

/** Live children of `ppid` whose command name is `comm`. */
export function childPids(ppid: number, comm: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, "utf8");
      const name = s.slice(s.indexOf("(") + 1, s.lastIndexOf(")"));
      const ppidNow = Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppidNow === ppid && name === comm) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}
