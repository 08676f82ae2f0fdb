// "Seen it?" for Message-IDs (RFC 5537 §3.6), answered in batches: every
// lookup asked within one turn of the event loop shares one query.
import type { Db } from "./sqlite.js";
import { StmtCache, chunkSizes } from "./sqlite.js";
import type { SeenFilter } from "./seen-filter.js";


export class History {
  #waiting = new Map<string, ((known: boolean) => void)[]>();
  #failed: ((err: unknown) => void)[] = [];
  #scheduled = false;
  #stmts: StmtCache;

  constructor(db: Db, private readonly seen: SeenFilter) {
    this.#stmts = new StmtCache(db, (n) => `SELECT msgid FROM history WHERE msgid IN (${"?,".repeat(n - 1)}?)`);
  }

  /** Whether the Message-ID is in history (accepted, refused or expired). */
  has(msgid: string): Promise<boolean> {
    if (!this.seen.mayHave(msgid)) return Promise.resolve(false);
    return new Promise((resolve, reject) => {
      const list = this.#waiting.get(msgid);
      if (list) list.push(resolve);
      else this.#waiting.set(msgid, [resolve]);
      this.#failed.push(reject);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => void this.#run());
      }
    });
  }

  async known(ids: readonly string[]): Promise<Set<string>> {
    const found = await Promise.all(ids.map((id) => this.has(id)));
    return new Set(ids.filter((_, i) => found[i]));
  }

  async #run(): Promise<void> {
    const waiting = this.#waiting;
    const failed = this.#failed;
    this.#waiting = new Map();
    this.#failed = [];
    this.#scheduled = false;
    try {
      const ids = [...waiting.keys()];
      const known = new Set<string>();
      let i = 0;
      for (const n of chunkSizes(ids.length)) {
        const part = ids.slice(i, i + n);
        i += n;
        for (const r of await (await this.#stmts.ready(n)).all<{ msgid: string }>(part)) known.add(r.msgid);
      }
      for (const [id, fns] of waiting) for (const f of fns) f(known.has(id));
    } catch (err) {
      for (const f of failed) f(err);
    }
  }
}
