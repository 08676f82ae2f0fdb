// The database schema as numbered migrations; later issues append to MIGRATIONS.
import type { Db } from "./sqlite.js";

export const MIGRATIONS: string[] = [
  // 1: the news store
  `
  CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    low INTEGER NOT NULL DEFAULT 1,
    high INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'y',
    created INTEGER NOT NULL,
    creator TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT ''
  );
  -- every Message-ID seen; status 1 accepted, 2 refused, 3 expired (RFC 5537 §3.6)
  CREATE TABLE history (
    msgid TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    at INTEGER NOT NULL,
    article INTEGER
  ) WITHOUT ROWID;
  -- one row an article: overview fields and metadata; bytes in article_data
  CREATE TABLE articles (
    id INTEGER PRIMARY KEY,
    msgid TEXT NOT NULL,
    arrived INTEGER NOT NULL,
    subject TEXT NOT NULL,
    author TEXT NOT NULL,
    date TEXT NOT NULL,
    refs TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    xref TEXT NOT NULL,
    header_len INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    -- the article as stored, last so that overview reads stop before it
    data BLOB NOT NULL
  );
  CREATE INDEX articles_arrived ON articles(arrived);
  -- article numbers per group (RFC 3977 §6.1.1)
  CREATE TABLE group_articles (
    group_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    article INTEGER NOT NULL,
    PRIMARY KEY (group_id, number)
  ) WITHOUT ROWID;
  `,
  // 2: peers and what is queued for each (written in the article's transaction)
  `
  CREATE TABLE peers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
  );
  CREATE TABLE backlog (
    peer INTEGER NOT NULL,
    article INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    arrived INTEGER NOT NULL,
    PRIMARY KEY (peer, article)
  ) WITHOUT ROWID;
  `,
  // 3: articles kept only to pass on (no carried group); purged once no backlog row needs them
  `
  ALTER TABLE articles ADD COLUMN transit_only INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX articles_transit_only ON articles(id) WHERE transit_only = 1;
  `,
  // 4: the newest article id ever given, kept apart from the articles (which
  // can be purged): ids are never reused, and feeds read it as the mark of a
  // snapshot (backlog.ts)
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO meta (key, value) SELECT 'last_article', coalesce(max(id), 0) FROM articles;
  `,
  // 5: running totals of each peer's backlog, kept by SQLite itself inside the
  // writer's transactions: counting a backlog of millions of rows took 0.2 s
  // per 2 million on every status write, holding the reader connection
  `
  CREATE TABLE backlog_totals (peer INTEGER PRIMARY KEY, count INTEGER NOT NULL, bytes INTEGER NOT NULL);
  INSERT INTO backlog_totals (peer, count, bytes) SELECT peer, count(*), sum(bytes) FROM backlog GROUP BY peer;
  CREATE TRIGGER backlog_added AFTER INSERT ON backlog BEGIN
    INSERT INTO backlog_totals (peer, count, bytes) VALUES (NEW.peer, 1, NEW.bytes)
      ON CONFLICT (peer) DO UPDATE SET count = count + 1, bytes = bytes + excluded.bytes;
  END;
  CREATE TRIGGER backlog_removed AFTER DELETE ON backlog BEGIN
    UPDATE backlog_totals SET count = count - 1, bytes = bytes - OLD.bytes WHERE peer = OLD.peer;
  END;
  `,
  // 6: the mail queue. A message and one row per recipient commit together
  // before the 250 (RFC 5321 §6.1: the relay is then responsible for it); a
  // recipient row goes when its next hop took the message or it bounced, the
  // message when no recipient row is left. mail_seen remembers each
  // (Message-ID, recipient) relayed, so that a looping message is not
  // relayed to the same recipient twice.
  `
  CREATE TABLE mail (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,            -- envelope MAIL FROM, '' for the null sender <>
    received INTEGER NOT NULL,       -- ms, when queued
    client TEXT NOT NULL,            -- address it came from, or 'news', 'dsn'
    origin TEXT NOT NULL,            -- smtp | news | dsn
    msgid TEXT NOT NULL DEFAULT '',
    eight_bit INTEGER NOT NULL DEFAULT 0,
    smtputf8 INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL,
    data BLOB NOT NULL
  );
  CREATE TABLE mail_rcpt (
    mail INTEGER NOT NULL,
    rcpt TEXT NOT NULL,
    hop TEXT NOT NULL,               -- next hop: HOST:PORT, or mx:DOMAIN
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try INTEGER NOT NULL,       -- ms
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (mail, rcpt)
  ) WITHOUT ROWID;
  CREATE INDEX mail_rcpt_due ON mail_rcpt(hop, next_try);
  CREATE TABLE mail_seen (
    msgid TEXT NOT NULL,
    rcpt TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (msgid, rcpt)
  ) WITHOUT ROWID;
  `,
  // 7: users who may log in (AUTHINFO, RFC 4643; SMTP AUTH). Only a scrypt
  // hash is kept, in one self-describing string (storage/users.ts), so that
  // the cost parameters can be raised later without a migration.
  `
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    created INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 8: groups managed live (tidings group add/rm/set, control messages). A
  // removed group keeps its row, so that its numbers are never given again if
  // it comes back (RFC 3977 §6.1.1.2); origin says who manages it: the
  // configuration file, or the control socket and control messages, whose
  // changes a restart must not undo.
  `
  ALTER TABLE groups ADD COLUMN moderator TEXT NOT NULL DEFAULT '';
  ALTER TABLE groups ADD COLUMN origin TEXT NOT NULL DEFAULT 'config';
  ALTER TABLE groups ADD COLUMN removed INTEGER;
  `,
  // 9: cancels (RFC 5537 §5.3) that came before their target, with the
  // Cancel-Key they carried (RFC 8315), so that the target is refused when it
  // comes only if the key opens its Cancel-Lock (storage/cancel.ts); and posts
  // to moderated groups kept for the moderator when no mail can take them
  // (RFC 5537 §3.5.1; relay/moderation.ts).
  `
  CREATE TABLE cancels (
    target TEXT PRIMARY KEY,
    cancel_key TEXT NOT NULL,
    by_msgid TEXT NOT NULL,
    at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE held (
    id INTEGER PRIMARY KEY,
    newsgroup TEXT NOT NULL,
    msgid TEXT NOT NULL,
    received INTEGER NOT NULL,
    reason TEXT NOT NULL,
    data BLOB NOT NULL
  );
  `,
  // 10: large articles' bytes in spool files beside the database (storage/spool.ts):
  // the row keeps the header section in data, and the segment and offset of
  // the whole article (its length is bytes). Small articles keep NULL here and
  // their bytes in data. The index finds whether a segment is still used.
  `
  ALTER TABLE articles ADD COLUMN spool_seg INTEGER;
  ALTER TABLE articles ADD COLUMN spool_at INTEGER;
  CREATE INDEX articles_spool ON articles(spool_seg) WHERE spool_seg IS NOT NULL;
  `,
];

export async function migrate(db: Db): Promise<number> {
  const row = await db.get<{ user_version: number }>("PRAGMA user_version");
  let version = row?.user_version ?? 0;
  while (version < MIGRATIONS.length) {
    await db.exec("BEGIN IMMEDIATE");
    try {
      await db.exec(MIGRATIONS[version]);
      version++;
      await db.exec(`PRAGMA user_version = ${version}`);
      await db.exec("COMMIT");
    } catch (err) {
      await db.exec("ROLLBACK").catch(() => {});
      throw err;
    }
  }
  return version;
}
