// Withdrawing articles (cancels and supersedes, RFC 5537 §5.3 and §3.x) and
// remembering cancels that came before their target. A withdrawn article
// loses its rows (article, group numbers) in one group-commit transaction;
// its Message-ID stays in history with status 4 (cancelled), so that it is
// not taken again. A cancel for an article not here yet is kept in the
// cancels table with its Cancel-Key (RFC 8315), and in memory, so that ingest
// can refuse the target when it comes, if the key opens its lock. Also keeps
// the node's Cancel-Lock secret (meta, made once).
import { randomBytes } from "node:crypto";
import type { Db, Reader } from "./sqlite.js";
import type { Contributor, GroupCommit, Tx } from "./group-commit.js";
import type { GroupTable } from "./groups.js";

/** History status of a withdrawn article (1 accepted, 2 refused, 3 expired: schema.ts). */
export const CANCELLED = 4;

/** A stored article a cancel may withdraw. */
export interface Target {
  id: number;
  msgid: string;
  /** Header section as stored (binary string). */
  header: string;
  /** Group names and numbers it is filed under (from Xref). */
  filed: [string, number][];
}

export interface PendingCancel {
  /** The Cancel-Key field body the cancel carried, or "". */
  key: string;
  /** Message-ID of the cancel (or of the superseding article). */
  by: string;
  at: number;
}

type Item =
  | { withdraw: Target; at: number }
  | { remember: string; pending: PendingCancel }
  | { forget: string[] };

const SQL = {
  target: `SELECT a.id, a.msgid, a.xref, substr(a.data, 1, a.header_len) AS head FROM history h JOIN articles a ON a.id = h.article
           WHERE h.msgid = ? AND h.status = 1`,
  status: "SELECT status FROM history WHERE msgid = ?",
  number: "DELETE FROM group_articles WHERE group_id = ? AND number = ?",
  count: "UPDATE groups SET count = CASE WHEN count > 0 THEN count - 1 ELSE 0 END WHERE id = ?",
  article: "DELETE FROM articles WHERE id = ?",
  // remembered from now, as an expired article is (storage/expire.ts forgets it after the remember time)
  history: `UPDATE history SET status = ${CANCELLED}, at = ?, article = NULL WHERE msgid = ?`,
  remember: "INSERT INTO cancels (target, cancel_key, by_msgid, at) VALUES (?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET cancel_key = excluded.cancel_key || ' ' || cancel_key",
  forget: "DELETE FROM cancels WHERE target IN",
};

export class Cancels implements Contributor<Item, boolean> {
  /** Cancels waiting for their target, by target Message-ID (few: checked for every article at one Map lookup). */
  readonly pending = new Map<string, PendingCancel>();

  private constructor(
    private readonly engine: GroupCommit,
    private readonly reader: Reader,
    private readonly groups: GroupTable,
  ) {}

  /** Loads the cancels still waiting, forgetting those older than `before` (ms). */
  static async open(db: Db, engine: GroupCommit, reader: Reader, groups: GroupTable, before: number): Promise<Cancels> {
    const c = new Cancels(engine, reader, groups);
    await db.run("DELETE FROM cancels WHERE at < ?", [before]);
    for (const r of await db.all<{ target: string; cancel_key: string; by_msgid: string; at: number }>("SELECT * FROM cancels")) {
      c.pending.set(r.target, { key: r.cancel_key, by: r.by_msgid, at: r.at });
    }
    return c;
  }

  /** The stored article with this Message-ID, or undefined (not here, refused, expired or cancelled already). */
  async target(msgid: string): Promise<Target | undefined> {
    const r = await this.reader.get<{ id: number; msgid: string; xref: string; head: Buffer }>(SQL.target, [msgid]);
    if (!r) return undefined;
    const filed: [string, number][] = [];
    for (const part of r.xref.split(" ").slice(1)) {
      const i = part.lastIndexOf(":");
      if (i > 0) filed.push([part.slice(0, i), Number(part.slice(i + 1))]);
    }
    return { id: r.id, msgid: r.msgid, header: Buffer.from(r.head).toString("latin1"), filed };
  }

  /** Whether history knows the Message-ID at all (accepted, refused, expired or cancelled). */
  async known(msgid: string): Promise<boolean> {
    return (await this.reader.get(SQL.status, [msgid])) !== undefined;
  }

  /** Removes the article, its overview and group numbers; its Message-ID stays in history as cancelled. */
  withdraw(t: Target, at = Date.now()): Promise<boolean> {
    return this.engine.submit(this, { withdraw: t, at }, 0, true);
  }

  /** Keeps a cancel whose target is not here yet (a second one for the same target adds its key). */
  remember(target: string, pending: PendingCancel): Promise<boolean> {
    return this.engine.submit(this, { remember: target, pending }, 0, true);
  }

  /** Drops waiting cancels that have been settled (their target came). */
  forget(targets: string[]): Promise<boolean> {
    return this.engine.submit(this, { forget: targets }, 0, true);
  }

  stage(items: Item[], tx: Tx): boolean[] {
    return items.map((item) => {
      if ("withdraw" in item) {
        const t = item.withdraw;
        const counted: number[] = [];
        for (const [name, number] of t.filed) {
          const g = this.groups.all().find((x) => x.name === name);
          if (!g) continue;
          tx.run(SQL.number, [g.id, number]);
          tx.run(SQL.count, [g.id]);
          counted.push(g.id);
        }
        tx.run(SQL.article, [t.id]);
        tx.run(SQL.history, [item.at, t.msgid]);
        tx.afterCommit(() => {
          for (const id of counted) {
            const g = this.groups.byId.get(id);
            if (g && g.count > 0) g.count--;
          }
        });
      } else if ("remember" in item) {
        const p = item.pending;
        tx.run(SQL.remember, [item.remember, p.key, p.by, p.at]);
        tx.afterCommit(() => {
          const had = this.pending.get(item.remember);
          this.pending.set(item.remember, had ? { ...p, key: `${p.key} ${had.key}`.trim() } : p);
        });
      } else {
        tx.inList(SQL.forget, [], item.forget);
        tx.afterCommit(() => {
          for (const t of item.forget) this.pending.delete(t);
        });
      }
      return true;
    });
  }
}

/**
 * The secret this node makes its Cancel-Lock keys from (RFC 8315 §4), made
 * once and kept in the database's meta table (as text: base64 is never read
 * as a number), so that a key made at the cancel matches the lock made at
 * the post across restarts.
 */
export async function cancelLockSecret(db: Db): Promise<Buffer> {
  const read = async () => (await db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'cancel_lock_secret'"))?.value;
  let v = await read();
  if (typeof v !== "string") {
    await db.run("INSERT INTO meta (key, value) VALUES ('cancel_lock_secret', ?) ON CONFLICT (key) DO NOTHING", [randomBytes(32).toString("base64")]);
    v = await read();
  }
  if (typeof v !== "string") throw new Error("could not keep the Cancel-Lock secret in the database");
  return Buffer.from(v, "base64");
}
