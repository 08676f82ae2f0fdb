// Whether the database file in a data folder is one this node may use: a new
// node is made only where there is no file at all; a file that is there must
// be a tidings database (application_id, or the tables of one made before it
// was set) that this process can write to. Anything else is refused with one
// line that names the file and what is wrong: a zero-byte file taken for a
// new node would silently lose a history, and a read-only one would serve
// reads and answer every write with an internal error for as long as it ran.
import { closeSync, existsSync, fstatSync, linkSync, mkdirSync, openSync, readSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Db, namingFile } from "./sqlite.js";
import { MIGRATIONS, migrate } from "./schema.js";
import { StartRefused } from "./lock.js";

/** PRAGMA application_id of a tidings database: "TDNG". */
export const TIDINGS_APPLICATION_ID = 0x54444e47;

const MAGIC = "SQLite format 3\u0000";
const FRESH = "a new node starts only where there is no database file";

/** Checks the file as a file: absent (a new node), or there, readable, writable and a SQLite database. */
export function checkFile(file: string): "absent" | "present" {
  let fd: number;
  try {
    fd = openSync(file, "r+");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") {
      for (const side of ["-wal", "-shm", "-journal"]) {
        if (existsSync(file + side)) {
          throw new StartRefused(`${file}: missing, but ${file}${side} is there: the database was moved or deleted without it; move ${file}${side} away too (a new node will then start), or put the database back`);
        }
      }
      return "absent";
    }
    if (e.code === "EISDIR") throw new StartRefused(`${file}: is a folder, not a tidings database`);
    throw new StartRefused(`${file}: cannot open the database for writing: ${why(e)}`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) throw new StartRefused(`${file}: the file is empty (0 bytes), not a tidings database; ${FRESH}: move it away to start a new node, or put the real database back`);
    const head = Buffer.alloc(MAGIC.length);
    readSync(fd, head, 0, head.length, 0);
    if (head.toString("latin1") !== MAGIC) throw new StartRefused(`${file}: not a SQLite database (it does not start with "SQLite format 3"); ${FRESH}`);
  } finally {
    closeSync(fd);
  }
  return "present";
}

/**
 * Makes a new database under a private name and links it into place once
 * its schema is committed, so that a start killed half way never leaves an
 * empty file that the next start would have to refuse. link() does not
 * replace: if another process (a node, `tidings user add`) made one
 * meanwhile, that one stays and this one is dropped.
 */
export async function createDatabase(file: string, prepare: (db: Db) => Promise<void>): Promise<void> {
  const tmp = `${file}.new-${process.pid}`;
  const leftovers = () => {
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`, `${tmp}-journal`]) rmSync(f, { force: true });
  };
  leftovers();
  let db: Db | undefined;
  try {
    db = await Db.open(tmp);
    await prepare(db);
    await migrate(db);
    await db.exec(`PRAGMA application_id = ${TIDINGS_APPLICATION_ID}`);
    await db.close();
    db = undefined;
    try {
      linkSync(tmp, file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EEXIST") {
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS") throw err;
        renameSync(tmp, file); // a file system without hard links
      }
    }
  } catch (err) {
    await db?.close().catch(() => {});
    throw new StartRefused(`cannot make a new database ${file}: ${namingFile(err as Error, tmp).message}`);
  } finally {
    leftovers();
  }
}

/**
 * Refuses a database that is not a tidings one, or is from a newer tidings;
 * then brings its schema up to date and marks it (databases made before
 * application_id was set are known by their tables).
 */
export async function identify(db: Db, file: string): Promise<void> {
  const app = (await db.get<{ application_id: number }>("PRAGMA application_id"))?.application_id ?? 0;
  const version = (await db.get<{ user_version: number }>("PRAGMA user_version"))?.user_version ?? 0;
  if (app === TIDINGS_APPLICATION_ID) {
    if (version > MIGRATIONS.length) throw new StartRefused(`${file}: made by a newer tidings (schema ${version}; this one knows up to ${MIGRATIONS.length}); run that version`);
  } else if (app !== 0) {
    throw new StartRefused(`${file}: not a tidings database: a SQLite database of another program (application_id 0x${(app >>> 0).toString(16)}); ${FRESH}`);
  } else {
    const tables = (await db.all<{ name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")).map((t) => t.name);
    if (tables.length === 0) throw new StartRefused(`${file}: an empty SQLite database (no tables), not a tidings database; ${FRESH}`);
    const missing = ["groups", "history", "articles"].filter((t) => !tables.includes(t));
    if (version < 1 || missing.length > 0) {
      const has = tables.slice(0, 5).join(", ") + (tables.length > 5 ? ", ..." : "");
      throw new StartRefused(`${file}: not a tidings database: a SQLite database with tables ${has}${missing.length ? ` and no ${missing.join(", ")}` : ""}; ${FRESH}`);
    }
  }
  try {
    await migrate(db);
    if (app !== TIDINGS_APPLICATION_ID) await db.exec(`PRAGMA application_id = ${TIDINGS_APPLICATION_ID}`);
  } catch (err) {
    throw cannotWrite(err, file);
  }
}

/**
 * A real write, committed: a database that opens and reads but cannot be
 * written (a read-only file, file system or folder, another owner) is
 * refused now rather than found out by every client that posts.
 */
export async function provenWritable(db: Db, file: string): Promise<void> {
  try {
    await db.run("INSERT INTO meta (key, value) VALUES ('last_start', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [Date.now()]);
  } catch (err) {
    throw cannotWrite(err, file);
  }
}

export function cannotWrite(err: unknown, file: string): StartRefused {
  const e = err as Error & { code?: string };
  const plain: Record<string, string> = {
    SQLITE_READONLY: "it is read-only (the file, its folder or the file system is read-only, or it belongs to another user)",
    SQLITE_FULL: "the disk is full",
    SQLITE_CANTOPEN: "a file beside it (-wal or -shm) cannot be made or opened; is the folder writable?",
  };
  const code = /SQLITE_[A-Z_]+/.exec(e.code ?? e.message)?.[0];
  const what = (code && plain[code]) ?? e.message;
  return new StartRefused(`${file}: cannot write to the database: ${what}${code && plain[code] ? ` (${code})` : ""}`);
}

function why(e: NodeJS.ErrnoException): string {
  const plain: Record<string, string> = {
    EACCES: "permission denied (it belongs to another user, or its mode forbids writing)",
    EPERM: "operation not permitted (is it immutable? see lsattr)",
    EROFS: "the file system is read-only",
  };
  return (e.code && plain[e.code]) ?? e.message;
}

/**
 * The data folder's database for a command run beside the node (`tidings
 * mailq`, `user`, `held`): checked as the node checks it at start, waiting
 * for the node's writer rather than failing (SQLite lets a second process
 * read and write beside it). With `create`, a folder with no database gets a
 * new one, so that users can be added before the node first starts.
 */
export async function openBeside(dataDir: string, opts: { create?: boolean } = {}): Promise<Db> {
  const file = join(dataDir, "tidings.sqlite");
  if (checkFile(file) === "absent") {
    if (!opts.create) throw new Error(`no database at ${file}: has a node run with this data folder?`);
    mkdirSync(dataDir, { recursive: true });
    await createDatabase(file, (db) => db.exec("PRAGMA journal_mode = WAL"));
  }
  const db = await Db.open(file);
  try {
    await db.exec("PRAGMA busy_timeout = 5000");
    await identify(db, file);
    return db;
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
}
