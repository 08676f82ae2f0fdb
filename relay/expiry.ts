// Expiry (INN's expire and expire.ctl, in the node's own configuration):
// which retention applies to each group, one run (or a dry run) over every
// group the node ever carried, the schedule, and the report that
// `tidings expire` prints. The SQL is storage/expire.ts.
import cron from "node-cron";
import type { Logger } from "pino";
import type { Config } from "../config/schema.js";
import { wildmat, type Matcher } from "../protocol/article/wildmat.js";
import type { Storage } from "../storage/database.js";
import type { ControlServer } from "./control.js";
import { Expirer, type Retention } from "../storage/expire.js";

export type ExpireConfig = Config["expire"];

/** Articles taken out of a group per transaction: small enough that ingest waits at most one batch. */
const BATCH = 500;
/** History rows forgotten per transaction. */
const FORGET_BATCH = 1000;
/** Free pages given back per transaction. */
const VACUUM_PAGES = 2048;

export interface GroupReport {
  name: string;
  /** Removed from the carried groups (tidings group rm, or no longer configured); its articles expire all the same. */
  removed: boolean;
  articles: number;
  bytes: number;
  /** Water marks after the run (before it, for a dry run). */
  low: number;
  high: number;
}

export interface ExpireReport {
  dryRun: boolean;
  at: number;
  ms: number;
  /** Groups that lost (or would lose) articles. */
  groups: GroupReport[];
  /** Articles removed whole, in no group any more, and their bytes. */
  articles: number;
  bytes: number;
  /** History rows forgotten (expired or refused longer ago than expire.remember). */
  forgotten: number;
  /** Days an expired Message-ID stays refused (0: for ever). */
  remember: number;
  /** The database file: bytes in use and free, before and after. */
  file: { before: number; after: number; free: number; gaveBack: number };
}

/** The rule for one group: the last [[expire.rule]] that matches (INN's expire.ctl), key by key over [expire]. */
export function retentionFor(cfg: ExpireConfig, group: string, matchers = compile(cfg)): Retention {
  let days = cfg.days;
  let maxArticles = cfg.max_articles;
  let maxBytes = cfg.max_bytes;
  for (let i = cfg.rule.length - 1; i >= 0; i--) {
    if (!matchers[i](group)) continue;
    const r = cfg.rule[i];
    days = r.days ?? days;
    maxArticles = r.max_articles ?? maxArticles;
    maxBytes = r.max_bytes ?? maxBytes;
    break;
  }
  return { days: days === "never" ? null : days, maxArticles, maxBytes };
}

function compile(cfg: ExpireConfig): Matcher[] {
  return cfg.rule.map((r) => wildmat(r.groups));
}

export class Expiry {
  readonly expirer: Expirer;
  #queue: Promise<unknown> = Promise.resolve();
  #job?: { stop(): unknown };
  #schedule?: string;

  constructor(private readonly storage: Storage, private readonly config: () => ExpireConfig, private readonly log: Logger) {
    this.expirer = new Expirer(storage.writer.engine, storage.writeDb, storage.readers, storage.groups);
  }

  /** Runs one expiry (or a dry run) after any run already going; one at a time. */
  run(opts: { dryRun?: boolean; now?: number } = {}): Promise<ExpireReport> {
    const next = this.#queue.then(() => this.#run(opts.dryRun ?? false, opts.now ?? Date.now())).then((r) => {
      if (!r.dryRun) this.last = r;
      return r;
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /** (Re)starts the scheduled runs from the configuration; called at start and after a reload. */
  schedule(): void {
    const expr = this.config().schedule;
    if (expr === this.#schedule) return;
    this.#job?.stop();
    this.#job = undefined;
    this.#schedule = expr;
    if (expr === "off") return;
    this.#job = cron.schedule(expr, async () => {
      try {
        const r = await this.run();
        if (r.groups.length > 0 || r.forgotten > 0) this.log.info(summary(r), "expiry done");
      } catch (err) {
        this.log.warn({ err: String(err) }, "expiry failed");
      }
    }, { noOverlap: true });
  }

  /** Stops the schedule; a run going on stops after its current batch. */
  async stop(): Promise<void> {
    this.#job?.stop();
    this.#job = undefined;
    this.#schedule = undefined;
    this.#stopping = true;
    await this.#queue;
  }

  #stopping = false;

  /** The last real run (not a dry run) since start, for status. */
  last: ExpireReport | undefined;

  #check(): void {
    if (this.#stopping) throw new Error("the node is stopping; expiry stopped part way (what went, went; a later run does the rest)");
  }

  async #run(dryRun: boolean, now: number): Promise<ExpireReport> {
    const t0 = performance.now();
    const cfg = this.config();
    const ex = this.expirer;
    const matchers = compile(cfg);
    const sizeBefore = await ex.size();
    const report: ExpireReport = {
      dryRun, at: now, ms: 0, groups: [], articles: 0, bytes: 0, forgotten: 0, remember: cfg.remember,
      file: { before: sizeBefore.pages * sizeBefore.pageSize, after: 0, free: 0, gaveBack: 0 },
    };
    // every group ever carried: a removed group's articles expire by the same rules
    const plan = new Map<number, number>();
    for (const g of this.storage.groups.all()) {
      const r = retentionFor(cfg, g.name, matchers);
      if (r.days === null && r.maxArticles === 0 && r.maxBytes === 0) continue;
      const due = await ex.due(g, r, now);
      if (due.articles === 0) continue;
      plan.set(g.id, due.below);
      report.groups.push({ name: g.name, removed: g.removed !== null, articles: due.articles, bytes: due.bytes, low: g.low, high: g.high });
    }
    if (dryRun) {
      const whole = await ex.wouldGo(plan);
      report.articles = whole.articles;
      report.bytes = whole.bytes;
    } else {
      for (const gr of report.groups) {
        const g = this.storage.groups.all().find((x) => x.name === gr.name)!;
        const below = plan.get(g.id)!;
        let left = 0;
        let leftBytes = 0;
        for (;;) {
          this.#check();
          const b = await ex.remove(g, below, BATCH, now);
          left += b.left;
          leftBytes += b.leftBytes;
          report.articles += b.gone;
          report.bytes += b.goneBytes;
          if (!b.more || b.left === 0) break;
        }
        Object.assign(gr, { articles: left, bytes: leftBytes, low: g.low, high: g.high });
      }
    }
    // history rows that hold no article, older than the remember time (INN's /remember/; 0: for ever)
    if (cfg.remember > 0) {
      const before = now - cfg.remember * 86_400_000;
      let after = "";
      let due: string[] = [];
      const flush = async () => {
        for (let i = 0; i < due.length; i += FORGET_BATCH) {
          const part = due.slice(i, i + FORGET_BATCH);
          report.forgotten += dryRun ? part.length : await ex.forget(part, before);
        }
        due = [];
      };
      for (;;) {
        this.#check();
        const page = await ex.forgettable(before, after);
        due.push(...page.msgids);
        if (due.length >= FORGET_BATCH) await flush();
        if (page.next === null) break;
        after = page.next;
      }
      await flush();
    }
    // large articles' spool segments that no row points into any more (storage/spool.ts)
    const spoolFreed = dryRun ? 0 : await this.storage.spool.sweep((seg) => this.storage.articles.segmentUsed(seg));
    if (!dryRun && cfg.vacuum) {
      for (;;) {
        this.#check();
        const freed = await ex.vacuum(VACUUM_PAGES);
        report.file.gaveBack += freed * sizeBefore.pageSize;
        if (freed < VACUUM_PAGES) break;
      }
      if (report.file.gaveBack > 0) await ex.checkpoint();
    }
    report.file.gaveBack += spoolFreed;
    const after = await ex.size();
    report.file.after = after.pages * after.pageSize;
    report.file.free = after.free * after.pageSize;
    report.ms = Math.round(performance.now() - t0);
    return report;
  }
}

/** The figures of a report for a log line. */
export function summary(r: ExpireReport): Record<string, unknown> {
  return {
    dryRun: r.dryRun, groups: r.groups.length, left: r.groups.reduce((n, g) => n + g.articles, 0), articles: r.articles, bytes: r.bytes,
    forgotten: r.forgotten, fileBytes: r.file.after, freeBytes: r.file.free, gaveBack: r.file.gaveBack, ms: r.ms,
  };
}

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

/** What `tidings expire` prints. */
export function formatReport(r: ExpireReport): string {
  const would = r.dryRun;
  const out: string[] = [would ? "dry run: nothing was changed; a run now would remove:" : `expired in ${(r.ms / 1000).toFixed(1)} s:`];
  if (r.groups.length === 0) out.push("  no article is due in any group");
  const w = Math.max(0, ...r.groups.map((g) => g.name.length + (g.removed ? 10 : 0)));
  for (const g of r.groups) {
    const name = (g.name + (g.removed ? " (removed)" : "")).padEnd(w);
    const marks = would ? "" : `  now ${g.low}-${g.high}`;
    out.push(`  ${name}  ${String(g.articles).padStart(7)} articles  ${size(g.bytes).padStart(9)}${marks}`);
  }
  out.push(`  ${would ? "would remove" : "removed"} ${r.articles} articles whole (${size(r.bytes)}): in no group any more; their Message-IDs are kept ${r.remember > 0 ? `${r.remember} days` : "for ever"} (expire.remember) and refused meanwhile`);
  out.push(`  ${would ? "history rows that would be forgotten" : "history rows forgotten"}: ${r.forgotten}`);
  out.push(`  database: ${size(r.file.after)}, ${size(r.file.free)} free${r.file.gaveBack > 0 ? `; ${size(r.file.gaveBack)} given back to the file system` : ""}`);
  return out.join("\n") + "\n";
}

/** `tidings expire` on a running node: {"cmd": "expire", "args": {"dryRun": true}} → the report. */
export function registerExpireControl(control: ControlServer, expiry: Expiry): void {
  control.handle("expire", async (args) => {
    const r = await expiry.run({ dryRun: args.dryRun === true });
    const left = r.groups.reduce((n, g) => n + g.articles, 0);
    return {
      text: `${r.dryRun ? "dry run: would take" : "expired:"} ${left} articles out of ${r.groups.length} groups, ${r.articles} removed whole, ${r.forgotten} history rows forgotten`,
      data: r,
    };
  });
}
