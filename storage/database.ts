// Opens the node's SQLite database: two writer connections (the group
// commit's batches on a thread of their own, commit-thread.ts; its idle path
// and the node's other writes on the main thread), a
// pool of reader connections for articles, overview and backlogs (one
// statement at a time each, so every read sees every earlier commit), and one
// for batched history lookups. Readers see only committed data and never
// block the writer (WAL).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Db, ReadPool, namingFile } from "./sqlite.js";
import { cannotWrite, checkFile, createDatabase, identify, provenWritable } from "./soundness.js";
import { StartRefused } from "./lock.js";
import { GroupTable } from "./groups.js";
import { History } from "./history.js";
import { Articles } from "./articles.js";
import { Writer, type WriterOptions } from "./writer.js";
import { SeenFilter } from "./seen-filter.js";
import { Backlog } from "./backlog.js";
import { MailQueue } from "./mail-queue.js";
import { CommitThread } from "./commit-thread.js";
import { writerPragmas } from "./pragmas.js";
import { SEGMENT_BYTES, SPOOL_MIN_BYTES, Spool, SpoolWriter } from "./spool.js";

/** Reader connections in the pool: libuv's thread pool runs two statements at once (cli/tidings.ts). */
const READERS = 2;

export interface StorageOptions extends WriterOptions {
  dataDir: string;
  /** PRAGMA synchronous: "full" syncs every commit to disk, "normal" survives a process crash but maybe not power loss. */
  synchronous: "full" | "normal";
  /** Articles of at least this many bytes go to the spool (spool.ts; storage.spool_min_bytes). */
  spoolMinBytes?: number;
  /** A spool file is closed at this size (storage.spool_segment_bytes). */
  spoolSegmentBytes?: number;
}

export class Storage {
  private constructor(
    readonly writeDb: Db,
    /** History lookups (batched, prepared); a stale answer there only costs a transfer the writer then refuses. */
    readonly readDb: Db,
    readonly readers: ReadPool,
    readonly groups: GroupTable,
    readonly history: History,
    readonly articles: Articles,
    readonly writer: Writer,
    readonly backlog: Backlog,
    /** The mail queue, written through the writer's group commit. */
    readonly mail: MailQueue,
    /** Runs the group commit's batches on a connection of its own (commit-thread.ts). */
    readonly commitThread: CommitThread,
    /** Large articles' bytes (spool.ts). */
    readonly spool: Spool,
    readonly spoolWriter: SpoolWriter,
  ) {}

  /**
   * Opens the data folder's database, or makes one where there is none. A
   * file that is there must be a tidings database this node can write to;
   * otherwise StartRefused says, in one line naming the file, what is wrong
   * (soundness.ts). Never is an empty or foreign file taken for a new node.
   */
  static async open(opts: StorageOptions): Promise<Storage> {
    mkdirSync(opts.dataDir, { recursive: true });
    const file = join(opts.dataDir, "tidings.sqlite");
    if (checkFile(file) === "absent") await createDatabase(file, (db) => prepareWriter(db, opts.synchronous));
    let w: Db | undefined;
    try {
      w = await Db.open(file);
      await prepareWriter(w, opts.synchronous);
      await identify(w, file);
      await provenWritable(w, file);
    } catch (err) {
      await w?.close().catch(() => {});
      if (err instanceof StartRefused) throw err;
      if ((err as { code?: string }).code === "SQLITE_READONLY") throw cannotWrite(err, file);
      throw new StartRefused(namingFile(err as Error, file).message);
    }
    return Storage.#openRest(w, file, opts);
  }

  static async #openRest(w: Db, file: string, opts: StorageOptions): Promise<Storage> {
    const openReader = async (cacheKb: number) => {
      const r = await Db.open(file);
      await r.exec(`PRAGMA busy_timeout = 5000; PRAGMA cache_size = -${cacheKb}; PRAGMA query_only = ON;`);
      return r;
    };
    const r = await openReader(4000);
    const pool = new ReadPool(await Promise.all(Array.from({ length: READERS }, () => openReader(8000))));
    const groups = await GroupTable.load(w);
    const count = (await w.get<{ n: number }>("SELECT count(*) AS n FROM history"))?.n ?? 0;
    const seen = new SeenFilter(Math.max(4_000_000, count * 2));
    await w.each<{ msgid: string }>("SELECT msgid FROM history", [], (row) => seen.add(row.msgid));
    const writer = new Writer(w, groups, opts, seen);
    await writer.init();
    const spool = Spool.open(opts.dataDir, opts.spoolSegmentBytes ?? SEGMENT_BYTES);
    const spoolWriter = new SpoolWriter(spool.dir, opts.synchronous);
    writer.useSpool(spool, opts.spoolMinBytes ?? SPOOL_MIN_BYTES);
    writer.engine.useSpool(spoolWriter);
    const thread = await CommitThread.start(file, opts.synchronous, spool.dir);
    writer.engine.useThread(thread);
    const mail = new MailQueue(writer.engine, w, pool);
    await mail.init();
    writer.withEachArticle((a, _id, _data, tx) => a.mail && mail.stageNew(a.mail, tx));
    return new Storage(w, r, pool, groups, new History(r, seen), new Articles(pool, spool), writer, new Backlog(pool), mail, thread, spool, spoolWriter);
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.commitThread.close();
    await this.readers.close();
    await this.readDb.close();
    await this.writeDb.close();
    this.spoolWriter.close();
    this.spool.close();
  }
}

const PAGE_SIZE = 8192;

/** The writer connection's settings, and the schema brought up to date. */
async function prepareWriter(w: Db, synchronous: StorageOptions["synchronous"]): Promise<void> {
  w.raw.serialize(); // statements on the writer connection run strictly in order (see writer.ts)
  // Pages freed by expiry can go back to the file system (storage/expire.ts, incremental_vacuum).
  // This takes only on a database with no table yet, and only before journal_mode = WAL (tried:
  // after it, a new file stays at NONE); an older database keeps NONE and reuses its free pages.
  // 8 KB pages, set before the first table (a database made before keeps its own). Against
  // SQLite's 4 KB: a 10 KB article is two pages, not three, and the WAL is written with half
  // the syscalls (two per page). With the commit thread the bound at 10 KB, a probe run
  // went from 14,653 to 18,578 articles/s, 1 KB from 40,297 to 43,017 (bench/RESULTS-2026-11-26c.md).
  // 16 KB did worse at 10 KB: one article a page, the rest of the page empty.
  await w.exec(`PRAGMA page_size = ${PAGE_SIZE}; PRAGMA auto_vacuum = INCREMENTAL`);
  await w.exec(`PRAGMA journal_mode = WAL; ${writerPragmas(synchronous)}`);
}
