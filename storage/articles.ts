// Reading articles and their overview, by number in a group or by Message-ID.
import type { Db } from "./sqlite.js";

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

export interface StoredArticle {
  id: number;
  msgid: string;
  data: Buffer;
  headerLen: number;
}

const OVER_COLS = "a.id, a.msgid, a.subject, a.author, a.date, a.refs, a.bytes, a.lines, a.xref, a.arrived";

export class Articles {
  constructor(private readonly db: Db) {}

  async byMsgid(msgid: string): Promise<StoredArticle | undefined> {
    const r = await this.db.get<{ id: number; data: Buffer; header_len: number }>(
      "SELECT h.article AS id, a.data, a.header_len FROM history h JOIN articles a ON a.id = h.article WHERE h.msgid = ? AND h.status = 1",
      [msgid],
    );
    return r && { id: r.id, msgid, data: r.data, headerLen: r.header_len };
  }

  async exists(msgid: string): Promise<boolean> {
    const r = await this.db.get("SELECT 1 FROM history h JOIN articles a ON a.id = h.article WHERE h.msgid = ? AND h.status = 1", [msgid]);
    return r !== undefined;
  }

  async byId(id: number): Promise<StoredArticle | undefined> {
    const r = await this.db.get<{ msgid: string; data: Buffer; header_len: number }>(
      "SELECT a.msgid, a.data, a.header_len FROM articles a WHERE a.id = ?",
      [id],
    );
    return r && { id, msgid: r.msgid, data: r.data, headerLen: r.header_len };
  }

  /** The article filed as `number` in the group, with its Message-ID. */
  async atNumber(groupId: number, number: number): Promise<{ id: number; msgid: string } | undefined> {
    return this.db.get(
      "SELECT a.id, a.msgid FROM group_articles g JOIN articles a ON a.id = g.article WHERE g.group_id = ? AND g.number = ?",
      [groupId, number],
    );
  }

  /** The article filed as `number` in the group, bytes and all, in one query. */
  async fullAtNumber(groupId: number, number: number): Promise<StoredArticle | undefined> {
    const r = await this.db.get<{ id: number; msgid: string; data: Buffer; header_len: number }>(
      "SELECT a.id, a.msgid, a.data, a.header_len FROM group_articles g JOIN articles a ON a.id = g.article WHERE g.group_id = ? AND g.number = ?",
      [groupId, number],
    );
    return r && { id: r.id, msgid: r.msgid, data: r.data, headerLen: r.header_len };
  }

  async msgidOf(id: number): Promise<string | undefined> {
    return (await this.db.get<{ msgid: string }>("SELECT msgid FROM articles WHERE id = ?", [id]))?.msgid;
  }

  async overviewById(id: number): Promise<OverviewRow | undefined> {
    return this.db.get<OverviewRow>(`SELECT 0 AS number, ${OVER_COLS} FROM articles a WHERE a.id = ?`, [id]);
  }

  async overview(groupId: number, low: number, high: number): Promise<OverviewRow[]> {
    return this.db.all<OverviewRow>(
      `SELECT g.number, ${OVER_COLS} FROM group_articles g JOIN articles a ON a.id = g.article
       WHERE g.group_id = ? AND g.number BETWEEN ? AND ? ORDER BY g.number`,
      [groupId, low, high],
    );
  }

  /** Article bodies for a range, for HDR and XPAT on fields not in the overview. */
  async dataRange(groupId: number, low: number, high: number): Promise<{ number: number; data: Buffer; header_len: number }[]> {
    return this.db.all(
      `SELECT g.number, a.data, a.header_len FROM group_articles g JOIN articles a ON a.id = g.article
       WHERE g.group_id = ? AND g.number BETWEEN ? AND ? ORDER BY g.number`,
      [groupId, low, high],
    );
  }

  async numbers(groupId: number, low: number, high: number): Promise<number[]> {
    const rows = await this.db.all<{ number: number }>(
      "SELECT number FROM group_articles WHERE group_id = ? AND number BETWEEN ? AND ? ORDER BY number",
      [groupId, low, high],
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

  /** Articles that arrived at or after `since` (ms), with the groups they are filed in. */
  async arrivedSince(since: number): Promise<{ msgid: string; groups: string }[]> {
    return this.db.all(
      `SELECT a.msgid, group_concat(gr.name, ',') AS groups FROM articles a
       JOIN group_articles g ON g.article = a.id JOIN groups gr ON gr.id = g.group_id
       WHERE a.arrived >= ? GROUP BY a.id ORDER BY a.arrived, a.id`,
      [since],
    );
  }

  async count(): Promise<number> {
    const r = await this.db.get<{ n: number }>("SELECT count(*) AS n FROM articles");
    return r?.n ?? 0;
  }
}
