// Logs a repeated condition once per cause and key, then a summary with the
// count while it lasts and when it ends. A full disk, a flood of refused
// connections or a peer that refuses everything must not drown the log: one
// line when it starts, one line a minute with how many times it happened,
// one line when it stops.
import type { Logger } from "pino";

type Level = "info" | "warn" | "error";

interface Episode {
  level: Level;
  msg: string;
  fields: object;
  first: number;
  last: number;
  count: number;
  reported: number;
  reportedAt: number;
}

export class LogOnce {
  #episodes = new Map<string, Episode>();
  #timer: NodeJS.Timeout;

  /**
   * @param quietMs an episode with no new event for this long is over: its count is logged and the next event starts a new one
   * @param everyMs while an episode lasts, its count so far is logged this often
   */
  constructor(
    private readonly log: Logger,
    private readonly quietMs = 10_000,
    private readonly everyMs = 60_000,
  ) {
    this.#timer = setInterval(() => this.#tick(), Math.min(quietMs, everyMs) / 2);
    this.#timer.unref();
  }

  /**
   * One event of the condition `cause` for `key` (an address, a peer, a file).
   * The first of an episode is logged at once with `fields`; later ones only count.
   */
  event(level: Level, cause: string, key: string, msg: string, fields: object = {}): void {
    const id = `${cause}\u0000${key}`;
    const now = Date.now();
    const e = this.#episodes.get(id);
    if (e) {
      e.count++;
      e.last = now;
      e.fields = fields;
      return;
    }
    this.#episodes.set(id, { level, msg, fields, first: now, last: now, count: 1, reported: 1, reportedAt: now });
    this.log[level]({ ...fields, cause, key }, msg);
  }

  /** How many episodes are running now (for status and tests). */
  get active(): number {
    return this.#episodes.size;
  }

  #tick(): void {
    const now = Date.now();
    for (const [id, e] of this.#episodes) {
      const [cause, key] = id.split("\u0000");
      const since = new Date(e.first).toISOString();
      if (now - e.last >= this.quietMs) {
        this.#episodes.delete(id);
        if (e.count > e.reported) this.log[e.level]({ ...e.fields, cause, key, count: e.count, since }, `${e.msg} (ended; ${e.count} times)`);
      } else if (now - e.reportedAt >= this.everyMs && e.count > e.reported) {
        e.reportedAt = now;
        e.reported = e.count;
        this.log[e.level]({ ...e.fields, cause, key, count: e.count, since }, `${e.msg} (still; ${e.count} times so far)`);
      }
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    for (const [id, e] of this.#episodes) {
      const [cause, key] = id.split("\u0000");
      if (e.count > e.reported) this.log[e.level]({ ...e.fields, cause, key, count: e.count, since: new Date(e.first).toISOString() }, `${e.msg} (${e.count} times)`);
    }
    this.#episodes.clear();
  }
}
