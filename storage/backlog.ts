// What is queued for each peer: read side. Rows are written with the article
// (writer.ts) and deleted through the writer when the peer has answered.
import type { Db, Reader } from "./sqlite.js";

export interface BacklogRow {
  article: number;
  /** null when the article itself is gone (expired). */
  msgid: string | null;
  bytes: number;
  arrived: number;
  /** The stored bytes, when the row came straight from the bus rather than the table. */
  data?: Buffer;
}

export interface BacklogStats {
  count: number;
  bytes: number;
  oldest: number | null;
}

export class Backlog {
  constructor(private readonly db: Reader) {}

  /** Peer ids by name, creating rows for new names. Uses the writer connection once at start. */
  static async peerIds(writeDb: Db, names: string[]): Promise<Map<string, number>> {
    for (const n of names) await writeDb.run("INSERT OR IGNORE INTO peers (name) VALUES (?)", [n]);
    const rows = await writeDb.all<{ id: number; name: string }>("SELECT id, name FROM peers");
    return new Map(rows.map((r) => [r.name, r.id]));
  }

  /**
   * Oldest first: article ids grow with arrival. `top` is the newest article
   * id in the snapshot the rows were read from (meta.last_article). It can
   * be older than the read: statements that overlap on one SQLite connection
   * share its read transaction, so a read can miss a commit that finished
   * before it began. The feed compares `top` with what the bus has announced.
   */
  async pending(peer: number, after: number, limit: number): Promise<{ rows: BacklogRow[]; top: number }> {
    const got = await this.db.all<BacklogRow & { top: number }>(
      `WITH t(top) AS (SELECT value FROM meta WHERE key = 'last_article')
       SELECT t.top, p.article, p.msgid, p.bytes, p.arrived FROM t LEFT JOIN (
         SELECT b.article, a.msgid, b.bytes, b.arrived FROM backlog b LEFT JOIN articles a ON a.id = b.article
         WHERE b.peer = ? AND b.article > ? ORDER BY b.article LIMIT ?) p`,
      [peer, after, limit],
    );
    const rows = got
      .filter((r) => r.article !== null)
      .map(({ article, msgid, bytes, arrived }) => ({ article, msgid, bytes, arrived }))
      .sort((x, y) => x.article - y.article);
    return { rows, top: got[0]?.top ?? 0 };
  }

  /** Count and bytes from the totals the triggers keep (schema.ts, migration 5); the oldest row by index. */
  async stats(peer: number): Promise<BacklogStats> {
    const r = await this.db.get<BacklogStats>(
      `SELECT coalesce((SELECT count FROM backlog_totals WHERE peer = ?1), 0) AS count,
              coalesce((SELECT bytes FROM backlog_totals WHERE peer = ?1), 0) AS bytes,
              (SELECT arrived FROM backlog WHERE peer = ?1 ORDER BY article LIMIT 1) AS oldest`,
      [peer],
    );
    return r ?? { count: 0, bytes: 0, oldest: null };
  }
}
