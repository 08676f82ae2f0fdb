// Expiry's SQL (INN's expire and expireover): which articles leave a group
// under its retention, removing them in bounded batches through the group
// commit, forgetting history rows after the remember time, and giving freed
// pages back to the file system. What the rules are and when they run is
// relay/expiry.ts.
//
// An article leaves each group by that group's own rule (its group_articles
// row goes and the low water mark moves); the article itself, its overview
// (the articles row) and its bytes go when it is in no group any more, and
// its history row then says "expired" (status 3). INN does the same
// (expire.ctl(5): "articles are not completely deleted until they expire out
// of every group to which they were posted").
import { chunkSizes, type Db, type Reader } from "./sqlite.js";
import type { Contributor, GroupCommit, Tx } from "./group-commit.js";
import type { Group, GroupTable } from "./groups.js";

/** How long a group keeps its articles; every bound that is set applies. */
export interface Retention {
  /** Days after arrival (fractions allowed); null: no limit by age. */
  days: number | null;
  /** Most articles kept, the newest; 0: no cap. */
  maxArticles: number;
  /** Most bytes kept, the newest articles' whole sizes; 0: no cap. */
  maxBytes: number;
}

/** What leaves one group: every article numbered below `below`. */
export interface GroupDue {
  below: number;
  articles: number;
  bytes: number;
}

/** What one batch did. */
export interface Removed {
  /** Rows taken out of the group, and the bytes of those articles. */
  left: number;
  leftBytes: number;
  /** Articles removed whole (in no group any more), and their bytes. */
  gone: number;
  goneBytes: number;
  /** Whether the group still has articles below the mark. */
  more: boolean;
}

export interface FileSize {
  pageSize: number;
  pages: number;
  free: number;
}

type Item =
  | { remove: { group: Group; below: number; limit: number; now: number } }
  | { forget: { msgids: string[]; before: number } }
  | { vacuum: number }
  | { checkpoint: true };

type Result = Removed | { forgotten: number } | { freed: number } | { checkpointed: true };

interface Planned {
  group: Group;
  /** Last number removed, the first left after it (null: none below the high mark). */
  last: number;
  next: number | null;
  left: number;
  leftBytes: number;
  goneIds: number[];
  goneMsgids: string[];
  goneBytes: number;
  more: boolean;
}

interface Row {
  number: number;
  id: number | null;
  msgid: string | null;
  bytes: number | null;
  xref: string | null;
}

/** Rows read per page when walking a group or history on a reader connection. */
const PAGE = 1000;

/** The (group, number) pairs an Xref names (RFC 5536 §3.2.14: "host group:number ..."). */
export function xrefPairs(xref: string): [string, number][] {
  const out: [string, number][] = [];
  for (const part of xref.split(" ").slice(1)) {
    const colon = part.lastIndexOf(":");
    const n = Number(part.slice(colon + 1));
    if (colon > 0 && Number.isSafeInteger(n)) out.push([part.slice(0, colon), n]);
  }
  return out;
}

const SQL = {
  // LEFT JOIN: a number whose article row is missing is removed like any other
  rows: `SELECT g.number, a.id, a.msgid, a.bytes, a.xref FROM group_articles g LEFT JOIN articles a ON a.id = g.article
         WHERE g.group_id = ? AND g.number < ? ORDER BY g.number LIMIT ?`,
  after: "SELECT min(number) AS n FROM group_articles WHERE group_id = ? AND number > ?",
  leave: "DELETE FROM group_articles WHERE group_id = ? AND number <= ?",
  // RFC 3977 §6.1.1.2: low is the lowest number still there, high + 1 when none is. Computed by
  // SQLite after the delete, so it holds whatever the writer adds to the group in the same transaction.
  // Run right after `leave`: changes() is what it deleted, which is fewer than planned if a cancel
  // (storage/cancel.ts) took one of the rows first
  marks: "UPDATE groups SET count = max(count - changes(), 0), low = coalesce((SELECT min(number) FROM group_articles WHERE group_id = ?), high + 1) WHERE id = ?",
  articles: "DELETE FROM articles WHERE id IN",
  // RFC 5537 §3.6 keeps the Message-ID; `at` becomes the time of expiry, from which the remember time counts
  expired: "UPDATE history SET status = 3, at = ? WHERE status = 1 AND msgid IN",
  // rows that hold no stored article: refused (2), expired (3), or accepted and since purged (transit only)
  forget: `DELETE FROM history WHERE at < ? AND (status <> 1 OR NOT EXISTS (SELECT 1 FROM articles a WHERE a.id = history.article))
           AND msgid IN`,
};

/**
 * Expiry as a contributor to the group commit: each batch is one item, so it
 * shares transactions with the articles arriving meanwhile, and ingest and
 * readers go on between batches. Planning reads (how far each group goes,
 * which history rows are due) run on the reader pool.
 */
export class Expirer implements Contributor<Item, Result> {
  #planned = new Map<Item, Planned>();
  #freed = new Map<Item, number>();

  constructor(
    private readonly engine: GroupCommit,
    private readonly writeDb: Db,
    private readonly reader: Reader,
    private readonly groups: GroupTable,
  ) {}

  /** What leaves the group under `r` at time `now`, read on the reader pool. */
  async due(g: Group, r: Retention, now: number): Promise<GroupDue> {
    let below = 0;
    let counted: { articles: number; bytes: number } | undefined;
    if (r.days !== null) {
      // numbers are given in arrival order, so the walk stops at the first article young enough
      const cutoff = now - r.days * 86_400_000;
      let from = 0;
      let articles = 0;
      let bytes = 0;
      let last = 0;
      // small pages first: in most groups on most days the walk stops within the first few rows
      for (let size = 32; ; size = Math.min(size * 4, PAGE)) {
        const page = await this.reader.all<{ number: number; arrived: number | null; bytes: number | null }>(
          `SELECT g.number, a.arrived, a.bytes FROM group_articles g LEFT JOIN articles a ON a.id = g.article
           WHERE g.group_id = ? AND g.number >= ? ORDER BY g.number LIMIT ?`,
          [g.id, from, size],
        );
        const keep = page.find((p) => (p.arrived ?? 0) >= cutoff);
        for (const p of page) {
          if (p === keep) break;
          articles++;
          bytes += p.bytes ?? 0;
        }
        if (keep) {
          below = keep.number;
          break;
        }
        if (page.length > 0) last = page[page.length - 1].number;
        if (page.length < size) {
          below = last + 1; // every one is old enough (or the group is empty: 1, which removes nothing)
          break;
        }
        from = last + 1;
      }
      counted = { articles, bytes };
    }
    if (r.maxArticles > 0) {
      const nth = await this.reader.get<{ number: number }>(
        "SELECT number FROM group_articles WHERE group_id = ? ORDER BY number DESC LIMIT 1 OFFSET ?",
        [g.id, r.maxArticles - 1],
      );
      if (nth && nth.number > below) {
        below = nth.number;
        counted = undefined;
      }
    }
    if (r.maxBytes > 0) {
      // the newest articles whose sizes add up to at most maxBytes stay
      let sum = 0;
      let before = Number.MAX_SAFE_INTEGER;
      walk: for (;;) {
        const page = await this.reader.all<{ number: number; bytes: number | null }>(
          `SELECT g.number, a.bytes FROM group_articles g LEFT JOIN articles a ON a.id = g.article
           WHERE g.group_id = ? AND g.number < ? AND g.number >= ? ORDER BY g.number DESC LIMIT ?`,
          [g.id, before, below, PAGE],
        );
        for (const p of page) {
          sum += p.bytes ?? 0;
          if (sum > r.maxBytes) {
            if (p.number + 1 > below) {
              below = p.number + 1;
              counted = undefined;
            }
            break walk;
          }
        }
        if (page.length < PAGE) break;
        before = page[page.length - 1].number;
      }
    }
    if (below <= 0) return { below: 0, articles: 0, bytes: 0 };
    counted ??= await this.reader.get<{ articles: number; bytes: number }>(
      `SELECT count(*) AS articles, coalesce(sum(a.bytes), 0) AS bytes FROM group_articles g LEFT JOIN articles a ON a.id = g.article
       WHERE g.group_id = ? AND g.number < ?`,
      [g.id, below],
    );
    return { below, articles: counted?.articles ?? 0, bytes: counted?.bytes ?? 0 };
  }

  /**
   * For a dry run: of the articles leaving their groups under `plan` (group
   * id → below), those that would then be in no group, and their bytes.
   * Each is counted once, at the first of its groups (Xref order) it leaves.
   */
  async wouldGo(plan: Map<number, number>): Promise<{ articles: number; bytes: number }> {
    let articles = 0;
    let bytes = 0;
    for (const [groupId, below] of plan) {
      let from = 0;
      for (;;) {
        const page = await this.reader.all<Row>(
          `SELECT g.number, a.id, a.msgid, a.bytes, a.xref FROM group_articles g LEFT JOIN articles a ON a.id = g.article
           WHERE g.group_id = ? AND g.number >= ? AND g.number < ? ORDER BY g.number LIMIT ?`,
          [groupId, from, below, PAGE],
        );
        const others = this.#otherPairs(groupId, page);
        const present = await this.#present(this.reader, others.flatMap((o) => o.pairs));
        for (const [i, row] of page.entries()) {
          if (row.id === null) continue;
          const pairs = others[i].pairs;
          // kept if some other group it is still in does not let it go
          if (pairs.some(([g, n]) => present.has(`${g}:${n}`) && !(n < (plan.get(g) ?? 0)))) continue;
          // counted at the first group (in Xref order) where it still is and leaves now
          const first = others[i].all.find(([g, n]) => (g === groupId ? true : present.has(`${g}:${n}`) && n < (plan.get(g) ?? 0)));
          if (first && first[0] !== groupId) continue;
          articles++;
          bytes += row.bytes ?? 0;
        }
        if (page.length < PAGE) break;
        from = page[page.length - 1].number + 1;
      }
    }
    return { articles, bytes };
  }

  /** Removes at most `limit` of the group's articles numbered below `below`; resolves after COMMIT. */
  async remove(group: Group, below: number, limit: number, now = Date.now()): Promise<Removed> {
    return (await this.engine.submit(this, { remove: { group, below, limit, now } }, 0, true)) as Removed;
  }

  /**
   * A page of history rows that hold no stored article and are older than
   * `before` (ms), in Message-ID order after `after`; `next` continues the
   * scan, null at the end. Read on the reader pool: the whole history is
   * walked once a run, a page at a time, as INN's expire rewrites it.
   */
  async forgettable(before: number, after: string, page = PAGE * 5): Promise<{ msgids: string[]; next: string | null }> {
    const rows = await this.reader.all<{ msgid: string; due: number }>(
      `SELECT h.msgid, (h.at < ? AND (h.status <> 1 OR a.id IS NULL)) AS due
       FROM history h LEFT JOIN articles a ON h.status = 1 AND a.id = h.article
       WHERE h.msgid > ? ORDER BY h.msgid LIMIT ?`,
      [before, after, page],
    );
    return { msgids: rows.filter((r) => r.due).map((r) => r.msgid), next: rows.length < page ? null : rows[rows.length - 1].msgid };
  }

  /** Deletes these history rows if they are still due; returns how many went. */
  async forget(msgids: string[], before: number): Promise<number> {
    if (msgids.length === 0) return 0;
    return ((await this.engine.submit(this, { forget: { msgids, before } }, 0, true)) as { forgotten: number }).forgotten;
  }

  /** The database file's pages: all, and free (kept for reuse). */
  async size(): Promise<FileSize> {
    const r = await this.reader.get<FileSize>(
      "SELECT (SELECT page_size FROM pragma_page_size) AS pageSize, (SELECT page_count FROM pragma_page_count) AS pages, (SELECT freelist_count FROM pragma_freelist_count) AS free",
    );
    return r ?? { pageSize: 4096, pages: 0, free: 0 };
  }

  /**
   * Gives up to `pages` free pages back to the file system (PRAGMA
   * incremental_vacuum: a no-op unless the database has auto_vacuum =
   * INCREMENTAL, database.ts). Returns how many went.
   */
  async vacuum(pages: number): Promise<number> {
    return ((await this.engine.submit(this, { vacuum: pages }, 0, true)) as { freed: number }).freed;
  }

  /**
   * Copies the write-ahead log into the database file now, as far as no
   * reader needs it (PASSIVE: never waits), so that the pages given back
   * leave the file at once rather than at the next automatic checkpoint.
   */
  async checkpoint(): Promise<void> {
    await this.engine.submit(this, { checkpoint: true }, 0, true);
  }

  async prepare(items: Item[]): Promise<void> {
    this.#planned.clear();
    this.#freed.clear();
    // pairs removed by earlier items of this batch count as gone already
    const leaving = new Set<string>();
    for (const item of items) {
      if ("remove" in item) this.#planned.set(item, await this.#plan(item.remove, leaving));
      else if ("vacuum" in item) {
        // incremental_vacuum runs only as a statement stepped to its end (exec); a prepared
        // statement run() leaves it unfinished and the COMMIT then fails (SQLITE_BUSY). So it
        // runs here, on the writer connection between transactions, in its own.
        const free = async () => (await this.writeDb.get<{ n: number }>("SELECT freelist_count AS n FROM pragma_freelist_count"))?.n ?? 0;
        const was = await free();
        await this.writeDb.exec(`PRAGMA incremental_vacuum(${Math.max(1, Math.floor(item.vacuum))})`);
        this.#freed.set(item, was - (await free()));
      } else if ("checkpoint" in item) await this.writeDb.all("PRAGMA wal_checkpoint(PASSIVE)");
    }
  }

  /** Reads, on the writer connection before BEGIN (so nothing changes in between), exactly what a batch removes. */
  async #plan(p: { group: Group; below: number; limit: number }, leaving: Set<string>): Promise<Planned> {
    const { group, below, limit } = p;
    const rows = await this.writeDb.all<Row>(SQL.rows, [group.id, below, limit]);
    const others = this.#otherPairs(group.id, rows);
    const present = await this.#present(this.writeDb, others.flatMap((o) => o.pairs));
    for (const k of leaving) present.delete(k);
    const plan: Planned = { group, last: 0, next: null, left: rows.length, leftBytes: 0, goneIds: [], goneMsgids: [], goneBytes: 0, more: false };
    for (const [i, row] of rows.entries()) {
      leaving.add(`${group.id}:${row.number}`);
      plan.leftBytes += row.bytes ?? 0;
      if (row.id === null) continue;
      if (others[i].pairs.some(([g, n]) => present.has(`${g}:${n}`))) continue; // still in another group
      plan.goneIds.push(row.id);
      if (row.msgid) plan.goneMsgids.push(row.msgid);
      plan.goneBytes += row.bytes ?? 0;
    }
    if (rows.length > 0) {
      plan.last = rows[rows.length - 1].number;
      plan.next = (await this.writeDb.get<{ n: number | null }>(SQL.after, [group.id, plan.last]))?.n ?? null;
      plan.more = plan.next !== null && plan.next < below;
    }
    return plan;
  }

  /** For each row, the (group id, number) pairs its Xref names: all of them, and those in other groups. */
  #otherPairs(groupId: number, rows: Row[]): { all: [number, number][]; pairs: [number, number][] }[] {
    const ids = new Map(this.groups.all().map((g) => [g.name, g.id]));
    return rows.map((r) => {
      const all: [number, number][] = [];
      for (const [name, n] of xrefPairs(r.xref ?? "")) {
        const id = ids.get(name);
        if (id !== undefined) all.push([id, n]);
      }
      return { all, pairs: all.filter(([g]) => g !== groupId) };
    });
  }

  /** Which of these (group id, number) pairs still have their group_articles row, as "group:number". */
  async #present(db: Reader, pairs: [number, number][]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < pairs.length; i += 200) {
      const part = pairs.slice(i, i + 200);
      const rows = await db.all<{ k: string }>(
        `SELECT group_id || ':' || number AS k FROM group_articles WHERE (group_id, number) IN (VALUES ${part.map(() => "(?,?)").join(",")})`,
        part.flat(),
      );
      for (const r of rows) out.add(r.k);
    }
    return out;
  }

  stage(items: Item[], tx: Tx): Result[] {
    return items.map((item) => {
      if ("vacuum" in item) return { freed: this.#freed.get(item) ?? 0 };
      if ("checkpoint" in item) return { checkpointed: true };
      if ("forget" in item) {
        const result = { forgotten: 0 };
        const { msgids, before } = item.forget;
        let i = 0;
        // chunks of the few sizes chunkSizes gives, so the writer prepares few statement texts
        for (const n of chunkSizes(msgids.length)) {
          tx.run(`${SQL.forget} (${"?,".repeat(n - 1)}?)`, [before, ...msgids.slice(i, (i += n))], (c) => (result.forgotten += c));
        }
        return result;
      }
      const plan = this.#planned.get(item)!;
      const result: Removed = { left: plan.left, leftBytes: plan.leftBytes, gone: plan.goneIds.length, goneBytes: plan.goneBytes, more: plan.more };
      if (plan.left === 0) return result;
      const g = plan.group;
      const high = g.high; // the committed high: the writer raises it only after COMMIT
      tx.weight += plan.left;
      let deleted = plan.left;
      tx.run(SQL.leave, [g.id, plan.last], (n) => (deleted = n));
      tx.run(SQL.marks, [g.id, g.id]);
      tx.inList(SQL.articles, [], plan.goneIds);
      tx.inList(SQL.expired, [item.remove.now], plan.goneMsgids);
      tx.afterCommit(() => {
        g.count = Math.max(0, g.count - deleted);
        // if the writer filed new articles in this same transaction, its own afterCommit keeps low right
        // either way round: it sets low = high + 1 only when it finds the group empty
        g.low = plan.next ?? high + 1;
      });
      return result;
    });
  }
}
