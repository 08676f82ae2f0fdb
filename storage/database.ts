// Opens the node's SQLite database: one writer connection (group commit), a
// pool of reader connections for articles, overview and backlogs (one
// statement at a time each, so every read sees every earlier commit), and one
// for batched history lookups. Readers see only committed data and never
// block the writer (WAL).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Db, ReadPool } from "./sqlite.js";
import { migrate } from "./schema.js";
import { GroupTable } from "./groups.js";
import { History } from "./history.js";
import { Articles } from "./articles.js";
import { Writer, type WriterOptions } from "./writer.js";
import { SeenFilter } from "./seen-filter.js";
import { Backlog } from "./backlog.js";
import { MailQueue } from "./mail-queue.js";

/** Reader connections in the pool: libuv's thread pool runs two statements at once (cli/tidings.ts). */
const READERS = 2;

export interface StorageOptions extends WriterOptions {
  dataDir: string;
  /** PRAGMA synchronous: "full" syncs every commit to disk, "normal" survives a process crash but maybe not power loss. */
  synchronous: "full" | "normal";
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
  ) {}

  static async open(opts: StorageOptions): Promise<Storage> {
    mkdirSync(opts.dataDir, { recursive: true });
    const file = join(opts.dataDir, "tidings.sqlite");
    const w = await Db.open(file);
    w.raw.serialize(); // statements on the writer connection run strictly in order (see writer.ts)
    await w.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${opts.synchronous === "full" ? "FULL" : "NORMAL"};
      PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -8000; PRAGMA wal_autocheckpoint = 4000;`);
    await migrate(w);
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
    const mail = new MailQueue(writer.engine, w, pool);
    await mail.init();
    writer.withEachArticle((a, _id, _data, tx) => a.mail && mail.stageNew(a.mail, tx));
    return new Storage(w, r, pool, groups, new History(r, seen), new Articles(pool), writer, new Backlog(pool), mail);
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.readers.close();
    await this.readDb.close();
    await this.writeDb.close();
  }
}
