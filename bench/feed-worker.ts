// One streaming feeder connection in its own process (forked by feed-procs.ts),
// so that the feeder's CPU is measured on its own and several connections do
// not share one Node event loop. The articles are made before the start
// signal; only CHECK/TAKETHIS traffic is timed.
//
// parent → child: {op:"prepare", job}  then  {op:"go"}
// child → parent: {op:"ready"}  then  {op:"done", result}  (or {op:"error", message})
import net from "node:net";
import { makeArticle } from "./feeder.js";

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

async function prepare(job: WorkerJob): Promise<{ socket: net.Socket; order: string[]; articles: Map<string, Buffer>; leftover: string }> {
  const articles = new Map<string, Buffer>();
  const order: string[] = [];
  for (let i = job.from; i < job.to; i++) {
    const a = makeArticle(job.tag, i, job.bodyBytes, job.group);
    articles.set(a.msgid, a.wire);
    order.push(a.msgid);
  }
  const socket = net.connect(job.port, job.host);
  socket.setNoDelay(true);
  await new Promise<void>((res, rej) => {
    socket.once("connect", res);
    socket.once("error", rej);
  });
  socket.setEncoding("latin1");
  // handshake: greeting, MODE STREAM
  let buf = "";
  const lines: string[] = [];
  let waiter: (() => void) | undefined;
  const onData = (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf("\r\n")) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
    const w = waiter;
    waiter = undefined;
    w?.();
  };
  socket.on("data", onData);
  const next = async (): Promise<string> => {
    while (!lines.length) await new Promise<void>((r) => (waiter = r));
    return lines.shift()!;
  };
  const greeting = await next();
  if (!/^20[01]/.test(greeting)) throw new Error(`greeting: ${greeting}`);
  socket.write("MODE STREAM\r\n");
  const mode = await next();
  if (!mode.startsWith("203")) throw new Error(`MODE STREAM refused: ${mode}`);
  socket.off("data", onData);
  return { socket, order, articles, leftover: buf };
}

function run(job: WorkerJob, p: Awaited<ReturnType<typeof prepare>>): Promise<WorkerResult> {
  const { socket, order, articles } = p;
  const r = { offered: 0, accepted: 0, refused: 0, deferred: 0, bytes: 0 };
  const total = order.length;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  return new Promise<WorkerResult>((resolve, reject) => {
    let buf = p.leftover;
    let nextIndex = 0;
    let outstanding = 0;
    let done = 0;
    const timer = setTimeout(() => reject(new Error(`feed timed out after ${done}/${total}`)), job.timeoutMs);
    const finish = () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      clearTimeout(timer);
      socket.off("close", gone);
      socket.end("QUIT\r\n");
      resolve({ ...r, seconds, cpuUserSeconds: cpu.user / 1e6, cpuSystemSeconds: cpu.system / 1e6 });
    };
    const gone = () => {
      clearTimeout(timer);
      reject(new Error(`connection closed after ${done}/${total}`));
    };
    socket.on("close", gone);
    socket.on("error", () => {});
    // All writes of one batch of replies go out in one writev (cork/uncork).
    const offerMore = () => {
      let out = "";
      while (outstanding < job.window && nextIndex < total) {
        out += `CHECK ${order[nextIndex++]}\r\n`;
        outstanding++;
        r.offered++;
      }
      if (out) socket.write(out, "latin1");
    };
    const onLine = (l: string): void => {
      const code = l.slice(0, 3);
      const sp = l.indexOf(" ", 4);
      const id = sp < 0 ? l.slice(4) : l.slice(4, sp);
      switch (code) {
        case "238": {
          const wire = articles.get(id);
          if (!wire) throw new Error(`238 for unknown ${id}`);
          socket.write(`TAKETHIS ${id}\r\n`, "latin1");
          socket.write(wire);
          r.bytes += wire.length;
          return;
        }
        case "239":
          r.accepted++;
          break;
        case "438":
        case "439":
          r.refused++;
          break;
        case "431":
          r.deferred++;
          break;
        default:
          throw new Error(`unexpected reply: ${l}`);
      }
      outstanding--;
      done++;
    };
    socket.on("data", (d: string) => {
      buf += d;
      socket.cork();
      try {
        let i: number;
        let start = 0;
        while ((i = buf.indexOf("\r\n", start)) >= 0) {
          onLine(buf.slice(start, i));
          start = i + 2;
        }
        buf = start ? buf.slice(start) : buf;
        if (done === total) {
          socket.uncork();
          finish();
          return;
        }
        offerMore();
      } catch (e) {
        clearTimeout(timer);
        reject(e);
      } finally {
        socket.uncork();
      }
    });
    if (total === 0) finish();
    else offerMore();
  });
}

if (process.send) {
  let prepared: Awaited<ReturnType<typeof prepare>> | undefined;
  let job: WorkerJob | undefined;
  process.on("message", (m: Msg) => {
    if (m.op === "prepare") {
      job = m.job;
      prepare(job).then(
        (p) => ((prepared = p), send({ op: "ready" })),
        (e) => send({ op: "error", message: String(e?.message ?? e) }),
      );
    } else if (m.op === "go") {
      run(job!, prepared!).then(
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
