// One streaming feeder connection in its own process (forked by feed-procs.ts),
// so that the feeder's CPU is measured on its own and several connections do
// not share one Node event loop. The articles are made before the start
// signal; only CHECK/TAKETHIS traffic is timed.
//
// parent → child: {op:"prepare", job}  then  {op:"go"}
// child → parent: {op:"ready"}  then  {op:"done", result}  (or {op:"error", message})
import { openFeed } from "./feeder.js";

export interface WorkerJob {
  host: string;
  port: number;
  /** Article numbers [from, to) of the run tagged `tag`. */
  from: number;
  to: number;
  bodyBytes: number;
  window: number;
  group: string;
  tag: string;
  timeoutMs: number;
}

export interface WorkerResult {
  offered: number;
  accepted: number;
  refused: number;
  deferred: number;
  bytes: number;
  /** Wall time from "go" to the last reply, in this process. */
  seconds: number;
  /** CPU this process used between "go" and the last reply. */
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
}

type Msg = { op: "prepare"; job: WorkerJob } | { op: "go" };

function send(m: unknown): void {
  process.send!(m);
}

/** Feeds with the same connection code as feed() (feeder.ts), timing this process's own CPU. */
async function run(go: Awaited<ReturnType<typeof openFeed>>): Promise<WorkerResult> {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const { offered, accepted, refused, deferred, bytes } = await go();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { offered, accepted, refused, deferred, bytes, seconds, cpuUserSeconds: cpu.user / 1e6, cpuSystemSeconds: cpu.system / 1e6 };
}

if (process.send) {
  let prepared: Awaited<ReturnType<typeof openFeed>> | undefined;
  process.on("message", (m: Msg) => {
    if (m.op === "prepare") {
      openFeed(m.job, m.job.from, m.job.to).then(
        (go) => ((prepared = go), send({ op: "ready" })),
        (e) => send({ op: "error", message: String(e?.message ?? e) }),
      );
    } else if (m.op === "go") {
      run(prepared!).then(
        (result) => {
          send({ op: "done", result });
          process.disconnect();
        },
        (e) => {
          send({ op: "error", message: String(e?.message ?? e) });
          process.disconnect();
        },
      );
    }
  });
}
