// The single writer: group commit. Articles that arrive together share one
// transaction and multi-row statements; each caller's promise resolves only
// after COMMIT, so nothing is acknowledged before it is durable.
import type { Db } from "./sqlite.js";
import { StmtCache, chunkSizes } from "./sqlite.js";
import type { Group, GroupTable } from "./groups.js";
import type { SeenFilter } from "./seen-filter.js";

export interface NewArticle {
  msgid: string;
  /**
   * Header section as it will be stored, each line CRLF-terminated, as a
   * binary string (one char per octet, so 8-bit bytes stay as they came);
   * the writer appends Xref.
   */
  header: string;
  body: Buffer;
  /** Groups carried here, in Newsgroups order, that the article is filed in. */
  groups: string[];
  subject: string;
  author: string;
  date: string;
  refs: string;
  lines: number;
  source: string;
  arrived: number;
  /** Peers to queue it for, written in the same transaction (DESIGN.md flow step 3). */
  peers: number[];
}

export type WriteResult =
  | { kind: "stored"; id: number; xref: string; numbers: [string, number][]; data: Buffer }
  | { kind: "duplicate" }
  /** A refused id remembered, or backlog rows deleted. */
  | { kind: "done" }
  | { kind: "purged"; count: number };

/** Backlog rows the peer has answered for (sent, or refused for good), or that grew too old. */
export interface BacklogDone {
  peer: number;
  articles: number[];
}

interface Pending {
  item: NewArticle | { refused: string; at: number } | { done: BacklogDone } | { purge: true };
  resolve: (r: WriteResult) => void;
  reject: (e: unknown) => void;
  /** Bytes an article holds while queued (0 for the rest), for maxQueueBytes. */
  size: number;
}

export class WriterBusy extends Error {}


export interface WriterOptions {
  pathhost: string;
  /** Most articles in one transaction. */
  maxBatch: number;
  /** Articles waiting beyond which new ones are deferred. */
  maxQueue: number;
  /** Bytes of articles waiting or being written beyond which new ones are deferred. */
  maxQueueBytes: number;
}

export class Writer {
  #queue: Pending[] = [];
  #queuedBytes = 0; // articles queued or in the transaction being written
  #running = false;
  #nextId = 1;
  #closed = false;
  #idle: (() => void)[] = [];
  readonly stats = { batches: 0, articles: 0, largestBatch: 0, commitMs: 0 };

  #history: StmtCache;
  #articles: StmtCache;
  #numbers: StmtCache;
  #backlog: StmtCache;
  #backlogDone: StmtCache;
  #groupHigh: StmtCache;
  #lastArticle: StmtCache;
  #purge: StmtCache;
  #known: StmtCache;

  constructor(
    private readonly db: Db,
    private readonly groups: GroupTable,
    private readonly opts: WriterOptions,
    private readonly seen: SeenFilter,
  ) {
    const values = (cols: number, n: number) => Array(n).fill(`(${"?,".repeat(cols - 1)}?)`).join(",");
    this.#history = new StmtCache(db, (n) => `${SQL.history} ${values(4, n)}`);
    this.#articles = new StmtCache(db, (n) => `${SQL.articles} ${values(14, n)}`);
    this.#numbers = new StmtCache(db, (n) => `${SQL.numbers} ${values(3, n)}`);
    this.#backlog = new StmtCache(db, (n) => `${SQL.backlog} ${values(4, n)}`);
    this.#backlogDone = new StmtCache(db, (n) => `${SQL.backlogDone} (${"?,".repeat(n - 1)}?)`);
    this.#groupHigh = new StmtCache(db, () => SQL.groupHigh);
    this.#lastArticle = new StmtCache(db, () => SQL.lastArticle);
    this.#purge = new StmtCache(
      db,
      () => `DELETE FROM articles WHERE id IN (SELECT a.id FROM articles a WHERE a.transit_only = 1
             AND NOT EXISTS (SELECT 1 FROM backlog b WHERE b.article = a.id) LIMIT 5000)`,
    );
    this.#known = new StmtCache(db, (n) => `SELECT msgid FROM history WHERE msgid IN (${"?,".repeat(n - 1)}?)`);
  }

  async init(): Promise<void> {
    const row = await this.db.get<{ m: number | null }>(
      "SELECT max(coalesce((SELECT max(id) FROM articles), 0), coalesce((SELECT value FROM meta WHERE key = 'last_article'), 0)) AS m",
    );
    this.#nextId = (row?.m ?? 0) + 1;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Stores an article, or reports it a duplicate; resolves after COMMIT. */
  store(a: NewArticle): Promise<WriteResult> {
    return this.#enqueue(a);
  }

  /** Remembers a refused Message-ID so that it is not taken again (RFC 5537 §3.6). */
  refuse(msgid: string, at = Date.now()): Promise<WriteResult> {
    return this.#enqueue({ refused: msgid, at });
  }

  /**
   * Deletes articles kept only to be passed on once no peer's backlog needs
   * them; their Message-IDs stay in history (so they are not taken again).
   * Runs between batches on the writer connection. Returns how many went.
   */
  async purgeTransit(): Promise<number> {
    const r = await this.#enqueue({ purge: true }, true);
    return r.kind === "purged" ? r.count : 0;
  }

  /** Deletes answered backlog rows; batched with the articles being written. */
  backlogDone(peer: number, articles: number[]): Promise<WriteResult> {
    return this.#enqueue({ done: { peer, articles } }, true);
  }

  #enqueue(item: Pending["item"], always = false): Promise<WriteResult> {
    if (this.#closed && !always) return Promise.reject(new WriterBusy("storage is closing"));
    if (!always && this.#queue.length >= this.opts.maxQueue) return Promise.reject(new WriterBusy("storage queue full"));
    const size = "msgid" in item ? item.header.length + item.body.length : 0;
    // memory is bounded in bytes too (many large articles); one article always fits an empty queue
    if (!always && this.#queuedBytes > 0 && this.#queuedBytes + size > this.opts.maxQueueBytes) {
      return Promise.reject(new WriterBusy("storage queue full (bytes)"));
    }
    this.#queuedBytes += size;
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject, size });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#loop());
      }
    });
  }

  async #loop(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.opts.maxBatch);
      try {
        const t0 = performance.now();
        const results = await this.#commit(batch);
        this.stats.commitMs += performance.now() - t0;
        batch.forEach((p, i) => p.resolve(results[i]));
      } catch (err) {
        for (const p of batch) p.reject(err);
      } finally {
        for (const p of batch) this.#queuedBytes -= p.size;
      }
    }
    this.#running = false;
    for (const f of this.#idle.splice(0)) f();
  }

  /** Resolves when everything queued so far has been committed or failed. */
  drain(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.drain();
  }

  async #knownIds(all: string[]): Promise<Set<string>> {
    const known = new Set<string>();
    const ids = all.filter((id) => this.seen.mayHave(id));
    let i = 0;
    for (const n of chunkSizes(ids.length)) {
      const part = ids.slice(i, i + n);
      i += n;
      for (const r of await (await this.#known.ready(n)).all<{ msgid: string }>(part)) known.add(r.msgid);
    }
    return known;
  }

  async #commit(batch: Pending[]): Promise<WriteResult[]> {
    const ids: string[] = [];
    for (const p of batch) {
      if ("refused" in p.item) ids.push(p.item.refused);
      else if ("msgid" in p.item) ids.push(p.item.msgid);
    }
    const known = await this.#knownIds(ids);
    const results: WriteResult[] = [];
    const history: unknown[][] = [];
    const articles: unknown[][] = [];
    const numbers: unknown[][] = [];
    const backlog: unknown[][] = [];
    const done: BacklogDone[] = [];
    const purges: number[] = []; // result indexes of purge requests
    const highs = new Map<Group, number>(); // tentative, applied after COMMIT
    let nextId = this.#nextId;

    for (const p of batch) {
      const item = p.item;
      if ("purge" in item) {
        purges.push(results.length);
        results.push({ kind: "purged", count: 0 });
        continue;
      }
      if ("done" in item) {
        done.push(item.done);
        results.push({ kind: "done" });
        continue;
      }
      if ("refused" in item) {
        if (!known.has(item.refused)) {
          known.add(item.refused);
          history.push([item.refused, 2, item.at, null]);
        }
        results.push({ kind: "done" });
        continue;
      }
      if (known.has(item.msgid)) {
        results.push({ kind: "duplicate" });
        continue;
      }
      known.add(item.msgid);
      const id = nextId++;
      const filed: [string, number][] = [];
      for (const name of item.groups) {
        const g = this.groups.get(name);
        if (!g) continue;
        const n = (highs.get(g) ?? g.high) + 1;
        highs.set(g, n);
        filed.push([name, n]);
        numbers.push([g.id, n, id]);
      }
      // RFC 5536 §3.2.14: Xref names this server and the number in each group
      const xref = `${this.opts.pathhost} ${filed.map(([g, n]) => `${g}:${n}`).join(" ")}`;
      const header = filed.length > 0 ? item.header + `Xref: ${xref}\r\n` : item.header;
      const headBuf = Buffer.from(header, "latin1");
      const bytes = Buffer.concat([headBuf, CRLF, item.body]);
      history.push([item.msgid, 1, item.arrived, id]);
      articles.push([
        id, item.msgid, item.arrived, item.subject, item.author, item.date, item.refs,
        bytes.length, item.lines, filed.length > 0 ? xref : "", headBuf.length, item.source, bytes, filed.length === 0 ? 1 : 0,
      ]);
      for (const peer of item.peers) backlog.push([peer, id, bytes.length, item.arrived]);
      results.push({ kind: "stored", id, xref, numbers: filed, data: bytes });
    }

    if (history.length === 0 && done.length === 0 && purges.length === 0) return results;
    const highRows = [...highs].map(([g, high]) => [high, high - g.high, g.high + 1, g.id]);
    const lastArticle = articles.length > 0 ? nextId - 1 : undefined;
    if (purges.length === 0 && articles.length <= LITERAL_MAX_ARTICLES && done.every((d) => d.articles.length <= 500)) {
      await this.#commitInOneCall(history, articles, numbers, backlog, done, highRows, lastArticle);
    } else {
      await this.#commitStepwise(history, articles, numbers, backlog, done, highRows, lastArticle, purges, results);
    }
    this.#nextId = nextId;
    for (const h of history) this.seen.add(h[0] as string);
    for (const [g, high] of highs) {
      if (g.count === 0) g.low = g.high + 1;
      g.count += high - g.high;
      g.high = high;
    }
    this.stats.batches++;
    this.stats.articles += articles.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    return results;
  }

  /**
   * One article, the idle path: the whole transaction goes to SQLite in one
   * call, values written into the SQL (numbers checked, text and bytes as hex
   * literals, so nothing needs escaping). One trip through the thread pool
   * instead of seven took a commit from 0.9 to 0.5 ms here, and the commit is
   * most of a hop's time (bench/propagation.ts). One call is also atomic by
   * construction: nothing else can run on the connection in between.
   */
  async #commitInOneCall(
    history: unknown[][], articles: unknown[][], numbers: unknown[][], backlog: unknown[][],
    done: BacklogDone[], highRows: unknown[][], lastArticle: number | undefined,
  ): Promise<void> {
    const sql = ["BEGIN IMMEDIATE;"];
    const insert = (head: string, rows: unknown[][]) => {
      if (rows.length > 0) sql.push(`${head} ${rows.map((r) => `(${r.map(literal).join(",")})`).join(",")};`);
    };
    insert(SQL.history, history);
    insert(SQL.articles, articles);
    insert(SQL.numbers, numbers);
    insert(SQL.backlog, backlog);
    for (const d of done) if (d.articles.length > 0) sql.push(`${SQL.backlogDone.replace("?", literal(d.peer))} (${d.articles.map(literal).join(",")});`);
    for (const r of highRows) sql.push(SQL.groupHigh.replace(/\?/g, () => literal(r.shift())) + ";");
    if (lastArticle !== undefined) sql.push(SQL.lastArticle.replace("?", literal(lastArticle)) + ";");
    sql.push("COMMIT;");
    try {
      await this.db.exec(sql.join("\n"));
    } catch (err) {
      // exec stops at the failing statement with the transaction still open
      await this.db.exec("ROLLBACK").catch(() => {});
      throw err;
    }
  }

  async #commitStepwise(
    history: unknown[][], articles: unknown[][], numbers: unknown[][], backlog: unknown[][],
    done: BacklogDone[], highRows: unknown[][], lastArticle: number | undefined, purges: number[], results: WriteResult[],
  ): Promise<void> {
    // every statement shape is prepared before the transaction is queued
    await this.#history.prepareFor(history.length);
    await this.#articles.prepareFor(articles.length);
    await this.#numbers.prepareFor(numbers.length);
    await this.#backlog.prepareFor(backlog.length);
    for (const d of done) await this.#backlogDone.prepareFor(d.articles.length);
    const groupHigh = await this.#groupHigh.ready(1);
    const last = await this.#lastArticle.ready(1);
    const purge = purges.length ? await this.#purge.ready(1) : undefined;
    // Each statement is awaited before the next is sent. Queuing them all at
    // once (node-sqlite3's serialized mode) was measured to let a reader see
    // half a transaction now and then: test/integration/storage-atomic.test.ts.
    await this.db.exec("BEGIN IMMEDIATE");
    try {
      await this.#insert(this.#history, history);
      await this.#insert(this.#articles, articles);
      await this.#insert(this.#numbers, numbers);
      await this.#insert(this.#backlog, backlog);
      for (const d of done) {
        let i = 0;
        for (const n of chunkSizes(d.articles.length)) {
          await this.#backlogDone.get(n).run([d.peer, ...d.articles.slice(i, i + n)]);
          i += n;
        }
      }
      for (const r of highRows) await groupHigh.run(r);
      if (lastArticle !== undefined) await last.run([lastArticle]);
      if (purge) {
        const count = await purge.run([]);
        for (const i of purges) results[i] = { kind: "purged", count };
      }
      await this.db.exec("COMMIT");
    } catch (err) {
      await this.db.exec("ROLLBACK").catch(() => {});
      throw err;
    }
  }

  async #insert(cache: StmtCache, rows: unknown[][]): Promise<void> {
    let i = 0;
    for (const n of chunkSizes(rows.length)) {
      const part = rows.slice(i, i + n);
      i += n;
      await cache.get(n).run(part.flat());
    }
  }
}

const CRLF = Buffer.from("\r\n");

/**
 * Batches of up to this many articles are written in one call
 * (#commitInOneCall). One is the idle case, where latency counts; in a flood,
 * batches of 2 to 8 written this way cost about 10% of the ingest rate
 * (hex and a fresh compile per statement), so they take the prepared path.
 */
const LITERAL_MAX_ARTICLES = 1;

const SQL = {
  history: "INSERT OR IGNORE INTO history (msgid, status, at, article) VALUES",
  articles:
    "INSERT INTO articles (id, msgid, arrived, subject, author, date, refs, bytes, lines, xref, header_len, source, data, transit_only) VALUES",
  numbers: "INSERT INTO group_articles (group_id, number, article) VALUES",
  backlog: "INSERT OR IGNORE INTO backlog (peer, article, bytes, arrived) VALUES",
  backlogDone: "DELETE FROM backlog WHERE peer = ? AND article IN",
  lastArticle: "UPDATE meta SET value = ? WHERE key = 'last_article'",
  groupHigh: "UPDATE groups SET high = ?, count = count + ?, low = CASE WHEN count = 0 THEN ? ELSE low END WHERE id = ?",
};

/** A value as an SQL literal: integers as they are, text and bytes in hex, so no input can change the statement. */
function literal(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new Error(`not an integer: ${v}`);
    return String(v);
  }
  if (typeof v === "string") return `CAST(X'${Buffer.from(v, "utf8").toString("hex")}' AS TEXT)`;
  if (Buffer.isBuffer(v)) return `X'${v.toString("hex")}'`;
  throw new Error(`no literal for ${typeof v}`);
}
