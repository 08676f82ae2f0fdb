// npm run bench: tidings and INN side by side, same feeder, same run.
//   BENCH_SCALE=0.1   shorter runs          BENCH_INN=0      skip INN
//   BENCH_MILLION=0   skip the 1,000,000-article memory run
//   BENCH_PROPAGATION=0  skip the propagation (chain, innfeed) part
//   BENCH_ROUNDS=2    rounds of the ingest comparison (server order flips each round)
//   BENCH_INN_UNSIZED=0  skip the reference run of INN with an unsized history
//   INN_SANDBOX=path  test/interop/inn-sandbox.sh, when the build is not in dist/
//   BENCH_DIR=folder  where the ingest servers keep their data (default /var/tmp), deleted at the end
//   BENCH_FS_WAIT=420 seconds to wait, before each round, for file creation to be cheap again
//   BENCH_WEB=0       skip the web reader part (bench/web.ts: pages over a group of 100,000, events to 1,000 browsers)
//   BENCH_MAIL=0      skip the mail relay part (tidings and Postfix into smtp-sink, bench/mail-relay.ts; its MAIL_BENCH_* switches apply)
import { millionArticles } from "./million.js";
import { webBench } from "./web.js";
import { mailRelay, optionsFromEnv as mailOptions } from "./mail-relay.js";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { propagation, printPropagation } from "./propagation.js";
import { SANDBOX } from "./paths.js";
import { runOne, sum, rate, fmt, pct, usPer, cleanup, scratchRootDir, waitForQuietFs, fileCreateProbe, type Case, type Run, type Variant, type Phase } from "./ingest.js";
import type { ReaderPhase } from "./reader.js";

const scale = Number(process.env.BENCH_SCALE ?? 1);
const useInn = process.env.BENCH_INN !== "0";
const million = process.env.BENCH_MILLION !== "0";
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
const unsized = process.env.BENCH_INN_UNSIZED !== "0";
const fsWait = Number(process.env.BENCH_FS_WAIT ?? 420);
const readerSeconds = Math.max(1, 3 * Math.min(1, scale * 2));

function innAvailable(): boolean {
  if (!useInn) return false;
  const r = spawnSync("bash", [SANDBOX, "ensure"], { stdio: "inherit" });
  return r.status === 0;
}

/** What /etc/news ships, as the sandbox copies it: storage methods, overview and history methods. */
function innSetup(): string {
  const v = spawnSync("dpkg-query", ["-W", "-f=${Version}", "inn2"], { encoding: "utf8" }).stdout.trim();
  let methods = "?", ov = "?", his = "?";
  try {
    const st = readFileSync("/etc/news/storage.conf", "utf8").replace(/#.*$/gm, "");
    methods = [...st.matchAll(/^\s*method\s+(\S+)/gm)].map((m) => m[1]).join(", ") || "?";
    const ic = readFileSync("/etc/news/inn.conf", "utf8");
    ov = /^ovmethod:\s*(\S+)/m.exec(ic)?.[1] ?? "?";
    his = /^hismethod:\s*(\S+)/m.exec(ic)?.[1] ?? "?";
  } catch {
    /* not installed */
  }
  return `Debian inn2 ${v}, /etc/news as shipped: storage.conf method ${methods}, ovmethod ${ov}, hismethod ${his}`;
}

const kb = (b: number) => `${b / 1024} KB`;
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(" ");
const cpuCell = (cpu: number, p: { accepted: number; seconds: number }) => `${usPer(cpu, p.accepted)} µs/art (${pct(cpu / p.seconds)})`;
const feederCell = (s: { clientCpu: number; clientMax: number; seconds: number }) => `${pct(s.clientCpu / s.seconds)} (max ${pct(s.clientMax)})`;

const slow = (p: Phase) => (p.slowCommits ? `${p.slowCommits.count}${p.slowCommits.count > 0 ? ` (longest ≤ ${p.slowCommits.longest} s)` : ""}` : "-");

function runLine(c: Case, r: Run): string {
  const ph = (name: string, p: Phase) =>
    `${name} ${fmt(rate(p))}/s (${usPer(p.serverCpu, p.accepted)} µs)` + (p.accepted !== p.count ? ` [accepted ${fmt(p.accepted)} of ${fmt(p.count)}]` : "");
  return (
    `  round ${r.round + 1}  ${kb(c.body)} × ${c.conns}  ${r.variant.padEnd(11)} ${ph("cold", r.cold)}, ${ph("warm", r.warm)}` +
    `  (warm-up to ${fmt(c.w)} in ${r.warmupSeconds.toFixed(1)} s; server CPU ${pct(r.cold.serverCpu / r.cold.seconds)}/${pct(r.warm.serverCpu / r.warm.seconds)}, ` +
    `feeder ${pct(r.cold.clientCpu / r.cold.seconds)}/${pct(r.warm.clientCpu / r.warm.seconds)}; load ${load()})` +
    (r.warm.slowCommits ? `\n      commits over 50 ms: cold ${slow(r.cold)}, warm ${slow(r.warm)}` : "") +
    (r.variant === "tidings" ? "" : `\n      INN: ${r.setup}`)
  );
}

async function main(): Promise<void> {
  const inn = innAvailable();
  console.log(`tidings benchmark — scale ${scale}, INN ${inn ? "on" : "off"}, ${new Date().toISOString()}`);
  console.log(`machine: ${os.cpus().length} cores, load average at start ${load()}`);
  const n1 = Math.max(200, Math.round(20_000 * scale)), w1 = Math.max(1000, Math.round(100_000 * scale));
  // 10 KB phases were 8,000 articles, half a second: one checkpoint or GC in it moved a figure by ±20%
  const n10 = Math.max(100, Math.round(20_000 * scale)), w10 = Math.max(500, Math.round(40_000 * scale));
  const cases: Case[] = [
    { body: 1024, conns: 1, n: n1, w: w1, reader: true },
    { body: 1024, conns: 4, n: n1, w: w1, reader: false },
    { body: 10240, conns: 1, n: n10, w: w10, reader: false },
    { body: 10240, conns: 4, n: n10, w: w10, reader: false },
  ];
  console.log(
    `\nIngest: pipelined CHECK/TAKETHIS, window 300 per connection, one feeder process per connection.\n` +
      `Per case and round, each server is fresh: cold = its first N articles, then fed to W (warm-up), warm = the next N.\n` +
      `Servers alternate; the order flips every round. Rates below are summed over ${rounds} round(s).\n` +
      `tidings: defaults, storage.synchronous = full.\n` +
      `Server data under ${process.env.BENCH_DIR ?? "/var/tmp"}, all of it kept until the run ends: INN stores one file per article, and after a mass\n` +
      `deletion this machine's ext4 (no journal) skips the freed inodes for up to 6 minutes, slowing file creation 20×; each round first\n` +
      `waits (up to ${fsWait} s) until creating a file is cheap.\n` +
      (inn
        ? `INN: ${innSetup()}; newsfeeds = the sandbox's (local ME, one file feed);\n` +
          `     dbz history sized for W + N articles (INN_HISTORY_SIZE → makedbz -s); warm phase after W articles.\n`
        : ""),
  );
  console.log("Runs, in the order they ran: rate (server CPU per article); server CPU and feeder CPU as share of one core, cold/warm:");
  const runs = new Map<string, Run[]>();
  const key = (ci: number, v: Variant) => `${ci}:${v}`;
  for (let round = 0; round < rounds; round++) {
    const fs = await waitForQuietFs(fsWait, console.log);
    console.log(`  round ${round + 1}: creating a file takes ${fs.us.toFixed(0)} µs${fs.waited > 1 ? ` (after waiting ${fs.waited.toFixed(0)} s)` : ""}`);
    for (let ci = 0; ci < cases.length; ci++) {
      const c = cases[ci];
      let order: Variant[] = inn ? ["tidings", "INN"] : ["tidings"];
      if (inn && unsized && ci === 0) order.push("INN-unsized");
      if (round % 2 === 1) order = order.reverse();
      for (const v of order) {
        const r = await runOne(v, c, round, readerSeconds);
        console.log(runLine(c, r));
        runs.set(key(ci, v), [...(runs.get(key(ci, v)) ?? []), r]);
      }
    }
  }
  console.log(`load average at end of ingest: ${load()}; creating a file takes ${fileCreateProbe().toFixed(0)} µs`);

  /** Each case and phase with its runs, summed over rounds, for the tables below. */
  function* phaseRows() {
    for (let ci = 0; ci < cases.length; ci++) {
      const c = cases[ci];
      const t = runs.get(key(ci, "tidings"))!;
      const i = runs.get(key(ci, "INN"));
      for (const phase of ["cold", "warm"] as const) {
        yield { c, t, i, phase, ts: sum(t.map((r) => r[phase])), is: i ? sum(i.map((r) => r[phase])) : undefined };
      }
    }
  }

  // throughput
  console.log(`\nIngest, articles per second (N timed articles per phase; W = articles in the server before the warm phase)`);
  console.log("| body | conns | phase | N | W | tidings art/s | INN art/s | tidings/INN | by round | tidings MB/s | INN MB/s |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const { c, t, i, phase, ts, is } of phaseRows()) {
    const byRound = i ? t.map((r, k) => fmt(rate(r[phase]) / rate(i[k][phase]), 2)).join(", ") : "-";
    console.log(
      `| ${kb(c.body)} | ${c.conns} | ${phase} | ${fmt(c.n)} | ${phase === "cold" ? 0 : fmt(c.w)} | ${fmt(rate(ts))} | ${is ? fmt(rate(is)) : "-"} | ` +
        `${is ? fmt(rate(ts) / rate(is), 2) + "×" : "-"} | ${byRound} | ${fmt(ts.bytes / ts.seconds / 1e6, 1)} | ${is ? fmt(is.bytes / is.seconds / 1e6, 1) : "-"} |`,
    );
  }

  // CPU
  console.log(`\nCPU: server process CPU per article (and as share of one core over the phase); feeder CPU over all its processes (busiest process)`);
  console.log("| body | conns | phase | tidings CPU | INN innd CPU | CPU/art tidings/INN | feeder CPU, tidings runs | feeder CPU, INN runs | peak RSS tidings / innd |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const { c, t, i, phase, ts, is } of phaseRows()) {
    const rssCell = phase === "warm" ? `${fmt(Math.max(...t.map((r) => r.peakRssMb)))} MB / ${i ? fmt(Math.max(...i.map((r) => r.peakRssMb))) + " MB" : "-"}` : "";
    console.log(
      `| ${kb(c.body)} | ${c.conns} | ${phase} | ${cpuCell(ts.serverCpu, ts)} | ${is ? cpuCell(is.serverCpu, is) : "-"} | ` +
        `${is ? fmt(ts.serverCpu / ts.accepted / (is.serverCpu / is.accepted), 2) + "×" : "-"} | ${feederCell(ts)} | ${is ? feederCell(is) : "-"} | ${rssCell} |`,
    );
  }

  // INN with the sandbox's old, unsized history, for reference
  const u = runs.get(key(0, "INN-unsized"));
  const i0 = runs.get(key(0, "INN"));
  if (u && i0) {
    console.log(`\nReference: INN with an unsized history (the sandbox's default, makedbz -i -o: ${u[0].setup.replace(/^.*dbz table /, "")}), ${kb(cases[0].body)} × ${cases[0].conns}`);
    console.log("| phase | INN sized art/s | INN unsized art/s | sized/unsized | tidings/INN unsized |\n|---|---|---|---|---|");
    const t0 = runs.get(key(0, "tidings"))!;
    for (const phase of ["cold", "warm"] as const) {
      const a = rate(sum(i0.map((r) => r[phase]))), b = rate(sum(u.map((r) => r[phase]))), t = rate(sum(t0.map((r) => r[phase])));
      console.log(`| ${phase} | ${fmt(a)} | ${fmt(b)} | ${fmt(a / b, 2)}× | ${fmt(t / b, 2)}× |`);
    }
  }

  // readers
  const readers = (v: Variant) => (runs.get(key(0, v)) ?? []).map((r) => r.reader).filter((r): r is NonNullable<typeof r> => !!r);
  const tr = readers("tidings"), ir = readers("INN");
  for (const r of [...(runs.get(key(0, "tidings")) ?? []), ...(i0 ?? [])]) {
    if (r.readerError) console.log(`\n(round ${r.round + 1}, ${r.variant} reader: ${r.readerError})`);
  }
  const agg = (ps: ReaderPhase[]) => {
    const secs = ps.reduce((a, p) => a + p.seconds, 0);
    const items = ps.reduce((a, p) => a + p.perSecond * p.seconds, 0);
    const client = ps.reduce((a, p) => a + p.clientShare * p.seconds, 0);
    const server = ps.reduce((a, p) => a + (p.serverShare ?? NaN) * p.seconds, 0);
    return { perSecond: items / secs, client: client / secs, server: server / secs, usPer: (server / items) * 1e6 };
  };
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `\nReader, one connection, on the ${kb(cases[0].body)} × ${cases[0].conns} servers after their warm phase (${fmt(cases[0].w + cases[0].n)} articles in the group), ` +
      `${readerSeconds} s per row and round, summed over rounds. Client CPU: this process; server CPU: tidings / INN's nnrpd for the connection.`,
  );
  console.log("| | tidings | INN (nnrpd) | tidings/INN | client CPU, tidings / INN runs | server CPU per item, tidings / nnrpd |\n|---|---|---|---|---|---|");
  type RR = (typeof tr)[0];
  const rows: [string, (r: RR) => ReaderPhase][] = [
    ["OVER 1000 lines, one at a time: lines/s", (r) => r.over],
    ["OVER 1000 lines, 4 in flight: lines/s", (r) => r.overPipelined],
    ["ARTICLE by number, 50 in flight: art/s", (r) => r.article],
  ];
  for (const [name, pick] of rows) {
    if (!tr.length) break;
    const a = agg(tr.map(pick));
    const b = ir.length ? agg(ir.map(pick)) : undefined;
    console.log(
      `| ${name} | ${fmt(a.perSecond)} | ${b ? fmt(b.perSecond) : "-"} | ${b ? fmt(a.perSecond / b.perSecond, 2) + "×" : "-"} | ` +
        `${pct(a.client)} / ${b ? pct(b.client) : "-"} | ${fmt(a.usPer, 1)} µs (${pct(a.server)}) / ${b ? `${fmt(b.usPer, 1)} µs (${pct(b.server)})` : "-"} |`,
    );
  }
  if (tr.length) {
    console.log(
      `median time per OVER command, one at a time: tidings ${fmt(med(tr.map((r) => r.overMedianMs)), 1)} ms, INN ${ir.length ? fmt(med(ir.map((r) => r.overMedianMs)), 1) + " ms" : "-"}`,
    );
  }

  if (process.env.BENCH_PROPAGATION !== "0") printPropagation(await propagation(scale, inn));

  if (process.env.BENCH_MAIL !== "0") await mailRelay(mailOptions(scale));

  if (process.env.BENCH_WEB !== "0") await webBench(scale);
  if (million) await millionArticles(Math.round(1_000_000 * scale));
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping servers, deleting ${scratchRootDir() ?? "nothing"}`);
    void cleanup().finally(() => process.exit(130));
  });
}
try {
  await main();
} finally {
  const root = scratchRootDir();
  if (root) console.log(`\ndeleting ${root} (creating files near it will be slow for a few minutes)`);
  await cleanup();
}
