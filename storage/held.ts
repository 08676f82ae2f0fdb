// Posts to moderated groups kept for the moderator (RFC 5537 §3.5.1) when no
// mail can take them there: no moderator address, or no mail route to it.
// Written through the group commit, so the poster's 240 follows the COMMIT;
// read and removed by `tidings held` (cli/held.ts).
import type { Db, Reader } from "./sqlite.js";
import type { Contributor, GroupCommit, Tx } from "./group-commit.js";

export interface HeldPost {
  newsgroup: string;
  msgid: string;
  received: number;
  /** Why it is held and not mailed. */
  reason: string;
  data: Buffer;
}

export interface HeldRow extends Omit<HeldPost, "data"> {
  id: number;
  bytes: number;
}

export class Held implements Contributor<HeldPost, number> {
  constructor(private readonly engine: GroupCommit) {}

  /** Keeps a post; resolves after COMMIT. */
  hold(p: HeldPost): Promise<number> {
    return this.engine.submit(this, p, p.data.length);
  }

  stage(items: HeldPost[], tx: Tx): number[] {
    tx.insert("INSERT INTO held (newsgroup, msgid, received, reason, data) VALUES", 5, items.map((p) => [p.newsgroup, p.msgid, p.received, p.reason, p.data]));
    return items.map(() => 0);
  }
}

/** The posts held, oldest first. */
export function listHeld(db: Reader, group?: string): Promise<HeldRow[]> {
  return db.all<HeldRow>(
    `SELECT id, newsgroup, msgid, received, reason, length(data) AS bytes FROM held ${group ? "WHERE newsgroup = ?" : ""} ORDER BY id`,
    group ? [group] : [],
  );
}

/** One held post as it was posted (the moderator approves it by posting it again with Approved). */
export async function heldPost(db: Reader, id: number): Promise<Buffer | undefined> {
  return (await db.get<{ data: Buffer }>("SELECT data FROM held WHERE id = ?", [id]))?.data;
}

/** Removes a held post (approved and posted, or rejected). */
export async function dropHeld(db: Db, id: number): Promise<boolean> {
  return (await db.run("DELETE FROM held WHERE id = ?", [id])).changes > 0;
}
