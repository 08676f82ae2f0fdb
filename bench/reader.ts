// Reader-side benchmark client: OVER in chunks as newsreaders ask, and
// pipelined ARTICLE by number. Works against tidings and INN's nnrpd alike.
//
// Responses are parsed synchronously as data arrives (the NNTP client's
// onReplies(): no promise per response, no string per overview line) and
// ARTICLE keeps a sliding window of commands in flight, so the client stays
// well below a core; its CPU is measured and reported with the figures, as is
// the server's when a pid is given.
import { NntpClient } from "../protocol/nntp/client.js";
import { procCpuSeconds } from "./feed-procs.js";

export interface ReaderPhase {
  /** Lines of overview, or articles, per second. */
  perSecond: number;
  seconds: number;
  /** Client (this process) CPU as a share of one core during the phase. */
  clientShare: number;
  /** Server CPU as a share of one core during the phase, when its pid is known. */
  serverShare?: number;
  /** Server CPU per line / per article, in microseconds. */
  serverUsPerItem?: number;
}

export interface ReaderResult {
  overLinesPerSecond: number;
  articlesPerSecond: number;
  /** OVER, one command at a time (as tin and slrn fetch a group's overview). */
  over: ReaderPhase;
  /** OVER with `overWindow` commands in flight. */
  overPipelined: ReaderPhase;
  /** ARTICLE by number, `window` in flight. */
  article: ReaderPhase;
  /** Median milliseconds per OVER command when one at a time. */
  overMedianMs: number;
}

export interface ReaderOptions {
  /** Seconds per phase. */
  seconds?: number;
  /** ARTICLE commands in flight. */
  window?: number;
  /** OVER commands in flight in the pipelined OVER phase. */
  overWindow?: number;
  /** OVER range per command. */
  overChunk?: number;
  /** The process serving this connection (asked after MODE READER: INN hands the connection to an nnrpd). */
  serverPid?: () => number | undefined;
}

interface Timed {
  items: number;
  wall: number;
  client: number;
  server: number;
}

async function timed(seconds: number, serverPid: number | undefined, body: (deadline: number, done: (items: number) => void) => void): Promise<Timed> {
  const c0 = process.cpuUsage();
  const s0 = serverPid ? procCpuSeconds(serverPid) : NaN;
  const t0 = performance.now();
  const items = await new Promise<number>((res) => body(t0 + seconds * 1000, res));
  const wall = (performance.now() - t0) / 1000;
  const s1 = serverPid ? procCpuSeconds(serverPid) : NaN;
  const c = process.cpuUsage(c0);
  return { items, wall, client: (c.user + c.system) / 1e6, server: s1 - s0 };
}

export async function readBench(host: string, port: number, group: string, opts: ReaderOptions | number = {}): Promise<ReaderResult> {
  const o: ReaderOptions = typeof opts === "number" ? { seconds: opts } : opts;
  const seconds = o.seconds ?? 3;
  const window = o.window ?? 50;
  const overWindow = o.overWindow ?? 4;
  const chunk = o.overChunk ?? 1000;
  const { client: c } = await NntpClient.open(host, port);
  const mr = await c.command("MODE READER");
  if (!/^20[01]/.test(mr)) throw new Error(`MODE READER: ${mr}`);
  const pid = o.serverPid?.();
  const g = (await c.command(`GROUP ${group}`)).split(" ");
  if (g[0] !== "211") throw new Error(`GROUP failed: ${g.join(" ")}`);
  const low = Number(g[2]), high = Number(g[3]);
  const phase = (t: Timed): ReaderPhase => ({
    perSecond: t.items / t.wall,
    seconds: t.wall,
    clientShare: t.client / t.wall,
    serverShare: Number.isFinite(t.server) ? t.server / t.wall : undefined,
    serverUsPerItem: Number.isFinite(t.server) && t.items ? (t.server / t.items) * 1e6 : undefined,
  });

  /**
   * Keeps `inflight` commands outstanding, one more sent per one answered (the
   * commands answered in one read go out in one write), until the deadline;
   * returns the items counted (lines for OVER, articles for ARTICLE).
   */
  const pipelined = (next: () => string, code: string, countLines: boolean, inflight: number, times?: number[]) =>
    timed(seconds, pid, (deadline, done) => {
      let n = 0;
      let out = 0;
      let pending = 0;
      let scheduled = false;
      let stopping = false;
      const sent: number[] = [];
      const send = (k: number) => {
        let s = "";
        for (let i = 0; i < k; i++) {
          s += next();
          if (times) sent.push(performance.now());
        }
        out += k;
        c.write(s);
      };
      const flush = () => {
        scheduled = false;
        if (pending) send(pending);
        pending = 0;
      };
      c.onReplies((status) => status.startsWith(code), (status, block) => {
        const st = status.slice(0, 3);
        const lines = countLines && block ? block.lines() : 0;
        out--;
        if (times) times.push(performance.now() - sent.shift()!);
        if (st === code) n += countLines ? lines : 1;
        if (!stopping && performance.now() >= deadline) stopping = true;
        if (stopping) {
          if (out === 0 && pending === 0) {
            c.offReplies();
            done(n);
          }
          return;
        }
        pending++;
        if (!scheduled) {
          scheduled = true;
          queueMicrotask(flush);
        }
      });
      send(inflight);
    });

  let overAt = low;
  const nextOver = () => {
    const end = Math.min(high, overAt + chunk - 1);
    const cmd = `OVER ${overAt}-${end}\r\n`;
    overAt = end >= high ? low : end + 1;
    return cmd;
  };
  const times: number[] = [];
  const over = phase(await pipelined(nextOver, "224", true, 1, times));
  overAt = low;
  const overPipelined = phase(await pipelined(nextOver, "224", true, overWindow));
  let artAt = low;
  const nextArticle = () => {
    const cmd = `ARTICLE ${artAt}\r\n`;
    artAt = artAt >= high ? low : artAt + 1;
    return cmd;
  };
  const article = phase(await pipelined(nextArticle, "220", false, window));
  times.sort((a, b) => a - b);
  const overMedianMs = times.length ? times[Math.floor(times.length / 2)] : NaN;
  c.close();
  return { overLinesPerSecond: over.perSecond, articlesPerSecond: article.perSecond, over, overPipelined, article, overMedianMs };
}
