// "Seen it?" for Message-IDs (RFC 5537 §3.6), answered in batches: every
// lookup asked within one turn of the event loop shares one query.
import type { Db } from "./sqlite.js";
import { StmtCache, chunkSizes } from "./sqlite.js";
import type { SeenFilter } from "./seen-filter.js";
import { Batched } from "./batched.js";


export class History {
  #lookups: Batched<string, true>;

  constructor(db: Db, private readonly seen: SeenFilter) {
    const stmts = new StmtCache(db, (n) => `SELECT msgid FROM history WHERE msgid IN (${"?,".repeat(n - 1)}?)`);
    this.#lookups = new Batched(async (ids) => {
      const known = new Map<string, true>();
      let i = 0;
      for (const n of chunkSizes(ids.length)) {
        const part = ids.slice(i, (i += n));
        for (const r of await (await stmts.ready(n)).all<{ msgid: string }>(part)) known.set(r.msgid, true);
      }
      return known;
    }, setImmediate);
  }

  /** Whether the Message-ID is in history (accepted, refused or expired). */
  async has(msgid: string): Promise<boolean> {
    if (!this.seen.mayHave(msgid)) return false;
    return (await this.#lookups.get(msgid)) === true;
  }

  async known(ids: readonly string[]): Promise<Set<string>> {
    const found = await Promise.all(ids.map((id) => this.has(id)));
    return new Set(ids.filter((_, i) => found[i]));
  }
}
