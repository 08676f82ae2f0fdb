// Promise wrappers over the sqlite3 package; the only file that touches its callbacks.
import sqlite3 from "sqlite3";

export type Params = unknown[];

export class Db {
  #stmts: Stmt[] = [];
  private constructor(readonly raw: sqlite3.Database, readonly file: string) {}

  static open(file: string, readOnly = false): Promise<Db> {
    return new Promise((resolve, reject) => {
      const mode = readOnly ? sqlite3.OPEN_READONLY : sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE;
      const raw = new sqlite3.Database(file, mode, (err) => (err ? reject(namingFile(err, file)) : resolve(new Db(raw, file))));
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.raw.exec(sql, (err) => (err ? reject(err) : resolve())));
  }

  run(sql: string, params: Params = []): Promise<{ changes: number; lastID: number }> {
    return new Promise((resolve, reject) =>
      this.raw.run(sql, params, function (err) {
        if (err) reject(err);
        else resolve({ changes: this.changes, lastID: this.lastID });
      }),
    );
  }

  all<T>(sql: string, params: Params = []): Promise<T[]> {
    return new Promise((resolve, reject) => this.raw.all(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[]))));
  }

  /**
   * The first row. Read to the end, never stopped at the row: sqlite3's own
   * get() leaves its statement open until finalized, and meanwhile every other
   * read on the connection shares that statement's snapshot, so a client could
   * get 430 for an article it was just told was stored (bench: 7 of 300 POSTs
   * followed by STAT, with readers busy).
   */
  async get<T>(sql: string, params: Params = []): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  /** Prepares without waiting: the statement is usable at once, errors surface on first use. */
  prepareNow(sql: string): Stmt {
    const s = new Stmt(this.raw.prepare(sql));
    this.#stmts.push(s);
    return s;
  }

  prepare(sql: string): Promise<Stmt> {
    return new Promise((resolve, reject) => {
      const st = this.raw.prepare(sql, (err) => {
        if (err) return reject(err);
        const s = new Stmt(st);
        this.#stmts.push(s);
        resolve(s);
      });
    });
  }

  /** Calls `fn` for each row without holding them all in memory. */
  each<T>(sql: string, params: Params, fn: (row: T) => void): Promise<number> {
    return new Promise((resolve, reject) =>
      this.raw.each(sql, params, (err, row) => (err ? undefined : fn(row as T)), (err, n) => (err ? reject(err) : resolve(n))),
    );
  }

  async close(): Promise<void> {
    for (const s of this.#stmts.splice(0)) await new Promise<void>((r) => s.raw.finalize(() => r()));
    return new Promise((resolve, reject) => this.raw.close((err) => (err ? reject(err) : resolve())));
  }
}

/** What the read side needs: whole results, so no statement stays open. */
export interface Reader {
  all<T>(sql: string, params?: Params): Promise<T[]>;
  get<T>(sql: string, params?: Params): Promise<T | undefined>;
}

/**
 * Reader connections, each running one statement at a time, whole (all()).
 * Statements that step in turns on one SQLite connection share its read
 * transaction, so a read could start from a snapshot older than a COMMIT
 * that finished before it was asked (sqlite3's get() and each() step in
 * turns; its all() holds the connection's mutex to the last row). Here a
 * statement starts only on an idle connection, so its snapshot holds every
 * commit made before it was asked, whatever else is reading; and two reads
 * can run at once, one per thread of the pool.
 */
export class ReadPool implements Reader {
  #idle: Db[];
  #waiting: ((db: Db) => void)[] = [];
  /** Each connection's statements, prepared once: the reads use a few fixed texts. */
  #prepared = new Map<Db, Map<string, Promise<Stmt>>>();

  constructor(readonly dbs: Db[]) {
    this.#idle = [...dbs];
    for (const db of dbs) this.#prepared.set(db, new Map());
  }

  async all<T>(sql: string, params: Params = []): Promise<T[]> {
    const db = this.#idle.pop() ?? (await new Promise<Db>((resolve) => this.#waiting.push(resolve)));
    try {
      // only this caller uses the connection (and so its statements) until it is given back
      const stmts = this.#prepared.get(db)!;
      let st = stmts.get(sql);
      if (!st) {
        st = db.prepare(sql);
        stmts.set(sql, st);
        st.catch(() => stmts.delete(sql));
      }
      return await (await st).all<T>(params);
    } finally {
      const next = this.#waiting.shift();
      if (next) next(db);
      else this.#idle.push(db);
    }
  }

  async get<T>(sql: string, params: Params = []): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  async close(): Promise<void> {
    for (const db of this.dbs) await db.close();
  }
}

export class Stmt {
  constructor(readonly raw: sqlite3.Statement) {}

  run(params: Params): Promise<number> {
    return new Promise((resolve, reject) =>
      this.raw.run(params, function (err) {
        if (err) reject(err);
        else resolve(this.changes);
      }),
    );
  }

  all<T>(params: Params): Promise<T[]> {
    return new Promise((resolve, reject) => this.raw.all(params, (err, rows) => (err ? reject(err) : resolve(rows as T[]))));
  }

  /** The first row, read to the end for the reason given at Db.get. */
  async get<T>(params: Params): Promise<T | undefined> {
    return (await this.all<T>(params))[0];
  }
}

/**
 * Splits `n` rows into chunks whose sizes are powers of two up to `max`, so a
 * multi-row statement is prepared for at most log2(max)+1 shapes: a prepared
 * 128-row INSERT holds a large program, and one per batch size would grow
 * memory without bound.
 */
export function chunkSizes(n: number, max = 128): number[] {
  const out: number[] = [];
  while (n >= max) {
    out.push(max);
    n -= max;
  }
  for (let p = max >> 1; p >= 1; p >>= 1) {
    if (n >= p) {
      out.push(p);
      n -= p;
    }
  }
  return out;
}

/** Statements whose text depends only on a row count, prepared once per count. */
export class StmtCache {
  #cache = new Map<number, Promise<Stmt>>();
  #ready = new Map<number, Stmt>();
  constructor(private readonly db: Db, private readonly build: (rows: number) => string) {}

  /**
   * The statement for `rows` rows, prepared. A statement still being prepared
   * would run only after its preparation, behind commands queued later (a
   * COMMIT, say): the writer awaits this before it queues a transaction.
   */
  async ready(rows: number): Promise<Stmt> {
    const have = this.#ready.get(rows);
    if (have) return have;
    let p = this.#cache.get(rows);
    if (!p) {
      p = this.db.prepare(this.build(rows));
      this.#cache.set(rows, p);
    }
    const st = await p;
    this.#ready.set(rows, st);
    return st;
  }

  /** A statement made ready before (see ready()). */
  get(rows: number): Stmt {
    const st = this.#ready.get(rows);
    if (!st) throw new Error(`statement for ${rows} rows used before it was prepared`);
    return st;
  }

  /** Prepares the shapes that `counts` rows will be split into. */
  async prepareFor(...counts: number[]): Promise<void> {
    for (const n of counts) for (const size of new Set(chunkSizes(n))) await this.ready(size);
  }
}

/**
 * SQLite's messages name no file ("SQLITE_CANTOPEN: unable to open database
 * file"); the operator needs to know which. The code stays for isTransient.
 */
export function namingFile(err: Error, file: string): Error {
  if (!err.message.includes(file)) err.message = `${file}: ${err.message}`;
  return err;
}

/** SQLite's own codes that mean "try again later" rather than "this input is bad". */
export function isTransient(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? "";
  return /SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|NOMEM|INTERRUPT|PROTOCOL)/.test(code);
}
