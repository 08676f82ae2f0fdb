// Reading articles and their overview, by number in a group or by Message-ID.
import { chunkSizes, type Reader } from "./sqlite.js";
import { Batched } from "./batched.js";
import type { Spool } from "./spool.js";

export interface OverviewRow {
  number: number;
  id: number;
  msgid: string;
  subject: string;
  author: string;
  date: string;
  refs: string;
  bytes: number;
  lines: number;
  xref: string;
  arrived: number;
}

export interface ArrivedRow {
  id: number;
  arrived: number;
  msgid: string;
  /** Groups it is filed in. */
  groups: string[];
}

export interface StoredArticle {
  id: number;
  msgid: string;
  data: Buffer;
  headerLen: number;
}

/**
 * OVER's line (RFC 3977 §8.3.2: the fields of LIST OVERVIEW.FMT, TAB between,
 * Xref:full), made by SQLite as one string: one value a row for the driver
 * to hand over instead of eleven.
 */
function overLine(number: string): string {
  return `${number} || char(9) || a.subject || char(9) || a.author || char(9) || a.date || char(9) || a.msgid
    || char(9) || a.refs || char(9) || a.bytes || char(9) || a.lines || char(9)
    || CASE WHEN a.xref = '' THEN '' ELSE 'Xref: ' || a.xref END`;
}

const OVER_COLS = "a.id, a.msgid, a.subject, a.author, a.date, a.refs, a.bytes, a.lines, a.xref, a.arrived";

/** A row's bytes: the article itself, or its header section with the place of the whole article in the spool (storage/spool.ts). */
interface DataRow {
  data: Buffer;
  header_len: number;
  /** NULL for an article in its row; else "segment offset length". */
  spool: string | null;
}

/**
 * The place in the spool as one column, NULL for the common article kept in
 * its row: node-sqlite3 makes every column of every row a property, and three
 * more columns cost ARTICLE of 1 KB articles 6% (bench/RESULTS-2026-11-26f.md).
 */
const DATA_COLS = "a.data, a.header_len, CASE WHEN a.spool_seg IS NULL THEN NULL ELSE a.spool_seg || ' ' || a.spool_at || ' ' || a.bytes END AS spool";

/** Rows asked for in one statement at most; statement texts exist for powers of two up to it. */
const BATCH = 32;

export class Articles {
  #byMsgid: Batched<string, StoredArticle>;
  #byNumber: Batched<string, StoredArticle & { number: number }>;
  #byId: Batched<number, StoredArticle>;

  constructor(
    private readonly db: Reader,
    private readonly spool?: Spool,
  ) {
    this.#byId = new Batched(async (ids) => {
      const rows = await this.#whole(
        await this.db.all<{ id: number; msgid: string } & DataRow>(
          `SELECT a.id, a.msgid, ${DATA_COLS} FROM articles a WHERE a.id IN (SELECT value FROM json_each(?))`,
          [JSON.stringify(ids)],
        ),
      );
      return new Map(rows.map((r) => [r.id, { id: r.id, msgid: r.msgid, data: r.data, headerLen: r.header_len }]));
    }, setImmediate);
    this.#byMsgid = new Batched(async (ids) => {
      const out = new Map<string, StoredArticle>();
      let i = 0;
      for (const n of chunkSizes(ids.length, BATCH)) {
        const part = ids.slice(i, (i += n));
        const rows = await this.#whole(
          await this.db.all<{ msgid: string; id: number } & DataRow>(
            `SELECT h.msgid, h.article AS id, ${DATA_COLS} FROM history h JOIN articles a ON a.id = h.article
             WHERE h.msgid IN (${"?,".repeat(n - 1)}?) AND h.status = 1`,
            part,
          ),
        );
        for (const r of rows) out.set(r.msgid, { id: r.id, msgid: r.msgid, data: r.data, headerLen: r.header_len });
      }
      return out;
    });
    // keys are "group:number"; one query per group and chunk
    this.#byNumber = new Batched(async (keys) => {
      const out = new Map<string, StoredArticle & { number: number }>();
      const byGroup = new Map<number, number[]>();
      for (const k of keys) {
        const [g, n] = k.split(":").map(Number);
        const list = byGroup.get(g);
        if (list) list.push(n);
        else byGroup.set(g, [n]);
      }
      for (const [g, numbers] of byGroup) {
        let i = 0;
        for (const n of chunkSizes(numbers.length, BATCH)) {
          const part = numbers.slice(i, (i += n));
          const rows = await this.#whole(
            await this.db.all<{ number: number; id: number; msgid: string } & DataRow>(
              `SELECT g.number, a.id, a.msgid, ${DATA_COLS} FROM group_articles g JOIN articles a ON a.id = g.article
               WHERE g.group_id = ? AND g.number IN (${"?,".repeat(n - 1)}?)`,
              [g, ...part],
            ),
          );
          for (const r of rows) out.set(`${g}:${r.number}`, { number: r.number, id: r.id, msgid: r.msgid, data: r.data, headerLen: r.header_len });
        }
      }
      return out;
    });
  }

  /**
   * The rows with each article's bytes whole: those of spooled articles are
   * read from the spool, all at once. A row whose bytes are gone (its
   * segment deleted by expiry after the row was read) is left out, as if
   * the article had expired a moment sooner.
   */
  async #whole<R extends DataRow>(rows: R[]): Promise<R[]> {
    if (!rows.some((r) => r.spool !== null)) return rows;
    const spool = this.spool;
    if (!spool) throw new Error("a spooled article with no spool to read it from");
    const spooled = rows.filter((r) => r.spool !== null);
    const read = await spool.readMany(
      spooled.map((r) => {
        const [seg, at, len] = r.spool!.split(" ").map(Number);
        return { seg, at, len };
      }),
    );
    const out: R[] = [];
    let k = 0; // read[] is in the order of the spooled rows
    for (const r of rows) {
      if (r.spool === null) out.push(r);
      else {
        const data = read[k++];
        if (data) out.push({ ...r, data });
      }
    }
    return out;
  }

  /** Whether any article's bytes are in the spool's segment `seg` (Spool.sweep). */
  async segmentUsed(seg: number): Promise<boolean> {
    return (await this.db.get("SELECT 1 FROM articles WHERE spool_seg = ? LIMIT 1", [seg])) !== undefined;
  }

  byMsgid(msgid: string): Promise<StoredArticle | undefined> {
    return this.#byMsgid.get(msgid);
  }

  async exists(msgid: string): Promise<boolean> {
    const r = await this.db.get("SELECT 1 FROM history h JOIN articles a ON a.id = h.article WHERE h.msgid = ? AND h.status = 1", [msgid]);
    return r !== undefined;
  }

  /**
   * An article by id, bytes and all; asked together with others (Batched):
   * a feed that has fallen behind asks for each article it sends, and one
   * query a turn instead of one an article kept a chain of two nodes from
   * passing on more than it took.
   */
  byId(id: number): Promise<StoredArticle | undefined> {
    return this.#byId.get(id);
  }

  /** The article filed as `number` in the group, with its Message-ID. */
  async atNumber(groupId: number, number: number): Promise<{ id: number; msgid: string } | undefined> {
    return this.db.get(
      "SELECT a.id, a.msgid FROM group_articles g JOIN articles a ON a.id = g.article WHERE g.group_id = ? AND g.number = ?",
      [groupId, number],
    );
  }

  /** The article filed as `number` in the group, bytes and all; asked together with others (Batched). */
  fullAtNumber(groupId: number, number: number): Promise<StoredArticle | undefined> {
    return this.#byNumber.get(`${groupId}:${number}`);
  }

  async msgidOf(id: number): Promise<string | undefined> {
    return (await this.db.get<{ msgid: string }>("SELECT msgid FROM articles WHERE id = ?", [id]))?.msgid;
  }

  /** The overview row of an article by Message-ID (number 0, RFC 3977 §8.3.2), without reading its bytes. */
  async overviewByMsgid(msgid: string): Promise<OverviewRow | undefined> {
    return this.db.get<OverviewRow>(`SELECT 0 AS number, ${OVER_COLS} FROM history h JOIN articles a ON a.id = h.article WHERE h.msgid = ? AND h.status = 1`, [msgid]);
  }

  /** OVER's line for an article by Message-ID. */
  async overviewLineByMsgid(msgid: string): Promise<string | undefined> {
    const r = await this.db.get<{ line: string }>(
      `SELECT ${overLine("0")} AS line FROM history h JOIN articles a ON a.id = h.article WHERE h.msgid = ? AND h.status = 1`,
      [msgid],
    );
    return r?.line;
  }

  /**
   * Overview rows of a range, in number order, at most `limit` of them: long
   * ranges are read page by page (the next page starts after the last number),
   * so no listing is ever held whole.
   */
  async overview(groupId: number, low: number, high: number, limit = -1): Promise<OverviewRow[]> {
    return this.db.all<OverviewRow>(
      `SELECT g.number, ${OVER_COLS} FROM group_articles g JOIN articles a ON a.id = g.article
       WHERE g.group_id = ? AND g.number BETWEEN ? AND ? ORDER BY g.number LIMIT ?`,
      [groupId, low, high, limit],
    );
  }

  /** OVER's lines for a range (overLine()); paged like overview(). */
  async overviewLines(groupId: number, low: number, high: number, limit = -1): Promise<{ number: number; line: string }[]> {
    return this.db.all(
      `SELECT g.number, ${overLine("g.number")} AS line
       FROM group_articles g JOIN articles a ON a.id = g.article
       WHERE g.group_id = ? AND g.number BETWEEN ? AND ? ORDER BY g.number LIMIT ?`,
      [groupId, low, high, limit],
    );
  }

  /**
   * Stored articles of a range, for HDR and XPAT on fields not in the
   * overview; paged like overview(). Only the header section is sure to be
   * there: a spooled article's row holds no more (storage/spool.ts).
   */
  async dataRange(groupId: number, low: number, high: number, limit = -1): Promise<{ number: number; data: Buffer; header_len: number }[]> {
    return this.db.all(
      `SELECT g.number, a.data, a.header_len FROM group_articles g JOIN articles a ON a.id = g.article
       WHERE g.group_id = ? AND g.number BETWEEN ? AND ? ORDER BY g.number LIMIT ?`,
      [groupId, low, high, limit],
    );
  }

  async numbers(groupId: number, low: number, high: number, limit = -1): Promise<number[]> {
    const rows = await this.db.all<{ number: number }>(
      "SELECT number FROM group_articles WHERE group_id = ? AND number BETWEEN ? AND ? ORDER BY number LIMIT ?",
      [groupId, low, high, limit],
    );
    return rows.map((r) => r.number);
  }

  async next(groupId: number, after: number): Promise<{ number: number; msgid: string } | undefined> {
    return this.db.get(
      "SELECT g.number, a.msgid FROM group_articles g JOIN articles a ON a.id = g.article WHERE g.group_id = ? AND g.number > ? ORDER BY g.number LIMIT 1",
      [groupId, after],
    );
  }

  async previous(groupId: number, before: number): Promise<{ number: number; msgid: string } | undefined> {
    return this.db.get(
      "SELECT g.number, a.msgid FROM group_articles g JOIN articles a ON a.id = g.article WHERE g.group_id = ? AND g.number < ? ORDER BY g.number DESC LIMIT 1",
      [groupId, before],
    );
  }

  /**
   * Articles that arrived at or after `since` (ms), oldest first, with the
   * groups they are filed in; a page of at most `limit` after the article
   * (`after`) that ended the previous page. Read by the index on arrival time.
   */
  async arrivedSince(since: number, limit = -1, after?: ArrivedRow): Promise<ArrivedRow[]> {
    const [at, id] = after ? [Math.max(since, after.arrived), after.id] : [since, 0];
    const rows = await this.db.all<{ id: number; arrived: number; msgid: string; xref: string }>(
      // the groups come from Xref ("host group:n group:n"): group_articles has no index by article
      `SELECT a.id, a.arrived, a.msgid, a.xref FROM articles a INDEXED BY articles_arrived
       WHERE a.arrived >= ? AND NOT (a.arrived = ? AND a.id <= ?) AND a.transit_only = 0
       ORDER BY a.arrived, a.id LIMIT ?`,
      // the index seeks to the last page's time; only the few rows sharing it are skipped
      [at, at, id, limit],
    );
    return rows.map((r) => ({ id: r.id, arrived: r.arrived, msgid: r.msgid, groups: groupsOfXref(r.xref) }));
  }

  /**
   * The web's thread view: rows of a group from number `from` on that are the
   * root itself, reference it, or have no References and a subject holding
   * the root's (the caller keeps those whose subject is the root's, "Re:" aside). A scan of the group from the root on, bounded by
   * `limit`; replies come after the article they answer.
   */
  async threadRows(groupId: number, root: string, rootSubject: string, from: number, limit = 2000): Promise<OverviewRow[]> {
    return this.db.all<OverviewRow>(
      `SELECT g.number, ${OVER_COLS} FROM group_articles g JOIN articles a ON a.id = g.article
       WHERE g.group_id = ? AND g.number >= ? AND (a.msgid = ? OR instr(a.refs, ?) > 0 OR (a.refs = '' AND instr(a.subject, ?) > 0))
       ORDER BY g.number LIMIT ?`,
      [groupId, from, root, root, rootSubject, limit],
    );
  }

  async count(): Promise<number> {
    const r = await this.db.get<{ n: number }>("SELECT count(*) AS n FROM articles");
    return r?.n ?? 0;
  }
}

/** The groups named in an Xref value (RFC 5536 §3.2.14: "host group:number ..."). */
function groupsOfXref(xref: string): string[] {
  const out: string[] = [];
  for (const part of xref.split(" ").slice(1)) {
    const colon = part.lastIndexOf(":");
    if (colon > 0) out.push(part.slice(0, colon));
  }
  return out;
}
