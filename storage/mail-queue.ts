// The mail queue: messages and their recipients, written through the same
// group commit as articles (group-commit.ts), so a 250 means committed exactly
// as a 239 does; and read through the reader pool for delivery and mailq.
import type { Db, Reader } from "./sqlite.js";
import { chunkSizes, StmtCache } from "./sqlite.js";
import type { Contributor, GroupCommit, Tx } from "./group-commit.js";
import { SeenFilter } from "./seen-filter.js";

export interface NewMail {
  /** Envelope sender, "" for the null sender <>. */
  sender: string;
  rcpts: { rcpt: string; hop: string }[];
  /** The message as it will be sent on (our Received header included). */
  data: Buffer;
  client: string;
  origin: "smtp" | "news" | "dsn";
  /** Message-ID with its angle brackets, or "" when the message has none. */
  msgid: string;
  eightBit: boolean;
  smtputf8: boolean;
  received: number;
}

/** What became of one recipient's delivery attempt. */
export type Settle =
  | { mail: number; rcpt: string; outcome: "sent" }
  | { mail: number; rcpt: string; outcome: "retry"; nextTry: number; error: string }
  /** Given up (refused for good, or too old); the row goes. A bounce, if any, is queued with it. */
  | { mail: number; rcpt: string; outcome: "failed"; error: string };

export interface DueMail {
  id: number;
  sender: string;
  received: number;
  msgid: string;
  eightBit: boolean;
  smtputf8: boolean;
  data: Buffer;
  rcpts: { rcpt: string; attempts: number }[];
}

/** A message just committed for one next hop: what a read of that hop's due mail would return for it. */
export interface Fresh {
  hop: string;
  mail: DueMail;
}

export interface QueueEntry {
  id: number;
  sender: string;
  received: number;
  bytes: number;
  origin: string;
  msgid: string;
  rcpts: { rcpt: string; hop: string; attempts: number; nextTry: number; lastError: string }[];
}

export interface QueueStats {
  messages: number;
  recipients: number;
  oldest: number | null;
  hops: { hop: string; recipients: number; deferred: number; lastError: string; nextTry: number }[];
}

type Item =
  | { enqueue: NewMail }
  | { settle: Settle[]; bounces: NewMail[] }
  | { forget: number };

export type MailResult =
  /** Queued; `looped` are the recipients left out because this message was already relayed to them. */
  | { kind: "queued"; id: number; looped: string[] }
  | { kind: "done"; changed: number };

const SQL = {
  mail: "INSERT INTO mail (id, sender, received, client, origin, msgid, eight_bit, smtputf8, bytes, data) VALUES",
  rcpt: "INSERT OR IGNORE INTO mail_rcpt (mail, rcpt, hop, next_try) VALUES",
  seen: "INSERT OR IGNORE INTO mail_seen (msgid, rcpt, at) VALUES",
  // the rows of every recipient done in a transaction go in one statement
  sent: "DELETE FROM mail_rcpt WHERE (mail, rcpt) IN (VALUES",
  retry: "UPDATE mail_rcpt SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE mail = ? AND rcpt = ?",
  // a recipient given up on was never relayed to: the same message sent to it again is no loop
  unseen: "DELETE FROM mail_seen WHERE rcpt = ? AND msgid = (SELECT msgid FROM mail WHERE id = ?)",
  lastMail: "INSERT INTO meta (key, value) VALUES ('last_mail', ?) ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
  // a message goes with its last recipient row
  emptied: "DELETE FROM mail WHERE NOT EXISTS (SELECT 1 FROM mail_rcpt r WHERE r.mail = mail.id) AND id IN",
};

export class MailQueue implements Contributor<Item, MailResult> {
  #nextId = 1;
  #seen: StmtCache;
  #seenNow = new Set<string>();
  /**
   * The Message-IDs of relayed pairs (mail_seen), in a Bloom filter: a
   * message whose id is surely not there needs no read before its batch is
   * staged. That read was a quarter of a mail transaction's time (a trip to
   * SQLite's thread and back, 0.5 ms of 2 here), and the 250 waits for it.
   * Pairs forgotten or dropped stay in the filter: a "maybe" is read.
   */
  #seenIds = new SeenFilter(0);
  readonly counts = { queued: 0, sent: 0, failed: 0, retried: 0, looped: 0 };
  /**
   * Told, after each COMMIT that queued mail, what it queued, per next hop
   * (delivery starts at once, and a hop that has read all that was due takes
   * these as they are, without reading them back: relay/mail/outbound.ts).
   */
  onQueued?: (fresh: Fresh[]) => void;

  constructor(private readonly engine: GroupCommit, private readonly db: Db, private readonly reader: Reader) {
    this.#seen = new StmtCache(db, (n) => `SELECT msgid || ' ' || rcpt AS k FROM mail_seen WHERE msgid IN (${"?,".repeat(n - 1)}?)`);
  }

  async init(): Promise<void> {
    // ids are never reused, even after the queue empties and the node restarts
    // ("queued as N" stays unique in logs): the newest is kept in meta
    const row = await this.db.get<{ m: number | null }>(
      "SELECT max(coalesce((SELECT max(id) FROM mail), 0), coalesce((SELECT value FROM meta WHERE key = 'last_mail'), 0)) AS m",
    );
    this.#nextId = (row?.m ?? 0) + 1;
    const n = (await this.db.get<{ n: number }>("SELECT count(DISTINCT msgid) AS n FROM mail_seen"))?.n ?? 0;
    this.#seenIds = new SeenFilter(Math.max(1_000_000, n * 2));
    await this.db.each<{ msgid: string }>("SELECT DISTINCT msgid FROM mail_seen", [], (r) => this.#seenIds.add(r.msgid));
  }

  /** The statement that keeps meta.last_mail, once per transaction, its value raised as ids are taken. */
  #lastIdNote?: { tx: Tx; params: unknown[] };

  #takeId(tx: Tx): number {
    const id = this.#nextId++;
    if (this.#lastIdNote?.tx === tx) this.#lastIdNote.params[0] = id;
    else {
      this.#lastIdNote = { tx, params: [id] };
      tx.run(SQL.lastMail, this.#lastIdNote.params);
    }
    return id;
  }

  /** A message's row and its recipients' rows. */
  static #rows(id: number, m: NewMail, rcpts: { rcpt: string; hop: string }[]): { mail: unknown[]; rcpts: unknown[][] } {
    return {
      mail: [id, m.sender, m.received, m.client, m.origin, m.msgid, m.eightBit ? 1 : 0, m.smtputf8 ? 1 : 0, m.data.length, m.data],
      rcpts: rcpts.map((r) => [id, r.rcpt, r.hop, m.received]),
    };
  }

  /** Queues a message for its recipients; resolves after COMMIT (then the 250 may go). */
  enqueue(m: NewMail): Promise<MailResult> {
    return this.engine.submit(this, { enqueue: m }, m.data.length);
  }

  /** Records delivery outcomes, and queues the bounces for failures, in one transaction. */
  settle(settle: Settle[], bounces: NewMail[] = []): Promise<MailResult> {
    return this.engine.submit(this, { settle, bounces }, 0, true);
  }

  /** Forgets relayed (Message-ID, recipient) pairs older than `before` (ms). */
  forget(before: number): Promise<MailResult> {
    return this.engine.submit(this, { forget: before }, 0, true);
  }

  async prepare(items: Item[]): Promise<void> {
    const ids = [...new Set(items.flatMap((i) => ("enqueue" in i && i.enqueue.msgid && this.#seenIds.mayHave(i.enqueue.msgid) ? [i.enqueue.msgid] : [])))];
    const seen = new Set<string>();
    let i = 0;
    for (const n of chunkSizes(ids.length)) {
      for (const r of await (await this.#seen.ready(n)).all<{ k: string }>(ids.slice(i, (i += n)))) seen.add(r.k);
    }
    this.#seenNow = seen;
  }

  stage(items: Item[], tx: Tx): MailResult[] {
    const seen = this.#seenNow;
    const mails: unknown[][] = [];
    const rcpts: unknown[][] = [];
    const seenRows: unknown[][] = [];
    const emptied: number[] = [];
    const done: unknown[][] = [];
    const counts = { queued: 0, sent: 0, failed: 0, retried: 0, looped: 0 };
    const fresh: Fresh[] = [];
    const add = (m: NewMail): MailResult => {
      const looped: string[] = [];
      const keep = m.rcpts.filter(({ rcpt }) => {
        if (!m.msgid) return true;
        const k = `${m.msgid} ${rcpt.toLowerCase()}`;
        if (seen.has(k)) {
          looped.push(rcpt);
          return false;
        }
        seen.add(k);
        seenRows.push([m.msgid, rcpt.toLowerCase(), m.received]);
        return true;
      });
      // at staging, not at COMMIT: a batch that fails leaves a "maybe", which is only a read
      if (m.msgid && keep.length > 0) this.#seenIds.add(m.msgid);
      counts.looped += looped.length;
      if (keep.length === 0) return { kind: "queued", id: 0, looped };
      // ids are taken at once and never given back: a rolled back one is a gap, never a reuse
      const id = this.#takeId(tx);
      tx.weight++;
      const rows = MailQueue.#rows(id, m, keep);
      mails.push(rows.mail);
      rcpts.push(...rows.rcpts);
      fresh.push(...freshFor(id, m, keep));
      counts.queued++;
      return { kind: "queued", id, looped };
    };
    const results = items.map((item): MailResult => {
      if ("enqueue" in item) return add(item.enqueue);
      if ("settle" in item) {
        for (const s of item.settle) {
          if (s.outcome === "retry") {
            tx.run(SQL.retry, [s.nextTry, s.error.slice(0, 500), s.mail, s.rcpt]);
            counts.retried++;
          } else {
            if (s.outcome === "failed") tx.run(SQL.unseen, [s.rcpt.toLowerCase(), s.mail]);
            done.push([s.mail, s.rcpt]);
            emptied.push(s.mail);
            counts[s.outcome]++;
          }
        }
        for (const b of item.bounces) add(b);
        return { kind: "done", changed: item.settle.length };
      }
      tx.run("DELETE FROM mail_seen WHERE at < ?", [item.forget]);
      return { kind: "done", changed: 0 };
    });
    tx.insert(SQL.mail, 10, mails);
    tx.insert(SQL.rcpt, 4, rcpts);
    tx.insert(SQL.seen, 3, seenRows);
    tx.insert(SQL.sent, 2, done, ")");
    const gone = [...new Set(emptied)];
    if (gone.length > 0) tx.inList(`${SQL.emptied}`, [], gone);
    tx.afterCommit(() => {
      for (const k of Object.keys(counts) as (keyof typeof counts)[]) this.counts[k] += counts[k];
      if (fresh.length > 0) this.onQueued?.(fresh);
    });
    return results;
  }

  /**
   * Stages a message inside another contributor's items (news to mail, in
   * the article's transaction). Its Message-ID is new to history, so no
   * loop check is needed.
   */
  stageNew(m: NewMail, tx: Tx): void {
    const id = this.#takeId(tx);
    tx.weight++;
    const rows = MailQueue.#rows(id, m, m.rcpts);
    tx.insert(SQL.mail, 10, [rows.mail]);
    tx.insert(SQL.rcpt, 4, rows.rcpts);
    const fresh = freshFor(id, m, m.rcpts);
    tx.afterCommit(() => {
      this.counts.queued++;
      this.onQueued?.(fresh);
    });
  }

  /** Hops with recipients waiting, and when the first of each is due. */
  async hops(): Promise<{ hop: string; due: number }[]> {
    return this.reader.all("SELECT hop, min(next_try) AS due FROM mail_rcpt GROUP BY hop");
  }

  /**
   * Ids of the messages due on a hop, oldest first, without their bytes: the
   * outbound queue reads these past what it holds already, then only the new
   * ones whole (dueMail), so a hop with many messages in flight does not copy
   * their bytes again at every read.
   */
  async dueIds(hop: string, now: number, limit: number): Promise<number[]> {
    const rows = await this.reader.all<{ mail: number }>("SELECT DISTINCT mail FROM mail_rcpt WHERE hop = ? AND next_try <= ? ORDER BY mail LIMIT ?", [hop, now, limit]);
    return rows.map((r) => r.mail);
  }

  /** The messages `ids` with their recipients due on the hop (a message no longer due is left out). */
  async dueMail(hop: string, now: number, ids: number[]): Promise<DueMail[]> {
    if (ids.length === 0) return [];
    const rows = await this.reader.all<{
      id: number; sender: string; received: number; msgid: string; eight_bit: number; smtputf8: number; data: Buffer; rcpt: string; attempts: number;
    }>(
      `SELECT m.id, m.sender, m.received, m.msgid, m.eight_bit, m.smtputf8, m.data, r.rcpt, r.attempts
       FROM mail m JOIN mail_rcpt r ON r.mail = m.id AND r.hop = ? AND r.next_try <= ?
       WHERE m.id IN (SELECT value FROM json_each(?))
       ORDER BY m.id`,
      [hop, now, JSON.stringify(ids)],
    );
    return groupDue(rows);
  }


  /** The queue for `tidings mailq`: every message with its recipients. */
  list(limit = 1000): Promise<QueueEntry[]> {
    return listQueue(this.reader, limit);
  }

  async stats(): Promise<QueueStats> {
    const m = await this.reader.get<{ n: number; oldest: number | null }>("SELECT count(*) AS n, min(received) AS oldest FROM mail");
    const hops = await this.reader.all<{ hop: string; recipients: number; deferred: number; last_error: string; next_try: number }>(
      `SELECT hop, count(*) AS recipients, sum(attempts > 0) AS deferred, max(last_error) AS last_error, min(next_try) AS next_try
       FROM mail_rcpt GROUP BY hop ORDER BY hop`,
    );
    return {
      messages: m?.n ?? 0,
      recipients: hops.reduce((s, h) => s + h.recipients, 0),
      oldest: m?.oldest ?? null,
      hops: hops.map((h) => ({ hop: h.hop, recipients: h.recipients, deferred: h.deferred, lastError: h.last_error, nextTry: h.next_try })),
    };
  }
}

/** The queue, message by message with its recipients, oldest first (also read by `tidings mailq` beside a running node). */
export async function listQueue(reader: Reader, limit: number): Promise<QueueEntry[]> {
  const rows = await reader.all<{
    id: number; sender: string; received: number; bytes: number; origin: string; msgid: string; rcpt: string; hop: string; attempts: number; next_try: number; last_error: string;
  }>(
    `SELECT m.id, m.sender, m.received, m.bytes, m.origin, m.msgid, r.rcpt, r.hop, r.attempts, r.next_try, r.last_error
     FROM (SELECT id FROM mail ORDER BY id LIMIT ?) l JOIN mail m ON m.id = l.id JOIN mail_rcpt r ON r.mail = m.id ORDER BY m.id, r.rcpt`,
    [limit],
  );
  const out: QueueEntry[] = [];
  for (const r of rows) {
    let last = out[out.length - 1];
    if (!last || last.id !== r.id) {
      last = { id: r.id, sender: r.sender, received: r.received, bytes: r.bytes, origin: r.origin, msgid: r.msgid, rcpts: [] };
      out.push(last);
    }
    last.rcpts.push({ rcpt: r.rcpt, hop: r.hop, attempts: r.attempts, nextTry: r.next_try, lastError: r.last_error });
  }
  return out;
}

/**
 * `tidings mailq retry`: makes one message, or all, due now (next_try 0,
 * which a running node's sweep takes as "try even a hop found down").
 * Written beside a running node on a connection of its own: SQLite
 * serializes it with the node's writer. Returns the recipient rows changed.
 */
export async function retryQueued(db: Db, id: number | "all"): Promise<number> {
  const r = id === "all" ? await db.run("UPDATE mail_rcpt SET next_try = 0") : await db.run("UPDATE mail_rcpt SET next_try = 0 WHERE mail = ?", [id]);
  return r.changes;
}

/**
 * `tidings mailq drop`: removes a message without delivering or bouncing it,
 * and forgets its (Message-ID, recipient) pairs, so that the same message
 * sent again is relayed rather than taken for a loop. Returns whether it was there.
 */
export async function dropQueued(db: Db, id: number): Promise<boolean> {
  await db.exec("BEGIN IMMEDIATE");
  try {
    await db.run("DELETE FROM mail_seen WHERE msgid = (SELECT msgid FROM mail WHERE id = ?) AND rcpt IN (SELECT lower(rcpt) FROM mail_rcpt WHERE mail = ?)", [id, id]);
    await db.run("DELETE FROM mail_rcpt WHERE mail = ?", [id]);
    const r = await db.run("DELETE FROM mail WHERE id = ?", [id]);
    await db.exec("COMMIT");
    return r.changes > 0;
  } catch (err) {
    await db.exec("ROLLBACK").catch(() => {});
    throw err;
  }
}

/**
 * A message's due mail per next hop, as dueMail() would read it back after
 * the commit: a recipient given twice has one row (the first, as INSERT OR
 * IGNORE keeps it), no attempts yet, due at once.
 */
function freshFor(id: number, m: NewMail, rcpts: { rcpt: string; hop: string }[]): Fresh[] {
  const byHop = new Map<string, DueMail>();
  const taken = new Set<string>();
  for (const { rcpt, hop } of rcpts) {
    if (taken.has(rcpt)) continue;
    taken.add(rcpt);
    let due = byHop.get(hop);
    if (!due) {
      due = { id, sender: m.sender, received: m.received, msgid: m.msgid, eightBit: m.eightBit, smtputf8: m.smtputf8, data: m.data, rcpts: [] };
      byHop.set(hop, due);
    }
    due.rcpts.push({ rcpt, attempts: 0 });
  }
  return [...byHop].map(([hop, mail]) => ({ hop, mail }));
}

/** Rows of (message, recipient), ordered by message, as one DueMail per message. */
function groupDue(rows: { id: number; sender: string; received: number; msgid: string; eight_bit: number; smtputf8: number; data: Buffer; rcpt: string; attempts: number }[]): DueMail[] {
  const out: DueMail[] = [];
  for (const r of rows) {
    let last = out[out.length - 1];
    if (!last || last.id !== r.id) {
      last = { id: r.id, sender: r.sender, received: r.received, msgid: r.msgid, eightBit: r.eight_bit === 1, smtputf8: r.smtputf8 === 1, data: r.data, rcpts: [] };
      out.push(last);
    }
    last.rcpts.push({ rcpt: r.rcpt, attempts: r.attempts });
  }
  return out;
}
