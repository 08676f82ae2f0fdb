// The news store's rows: articles that arrive together share one transaction
// (the group commit engine in group-commit.ts) and multi-row statements; each
// caller's promise resolves only after COMMIT, so nothing is acknowledged
// before it is durable.
import type { Db } from "./sqlite.js";
import { StmtCache, chunkSizes } from "./sqlite.js";
import { GroupCommit, type Contributor, type EngineOptions, type Tx } from "./group-commit.js";
import type { Group, GroupTable } from "./groups.js";
import type { SeenFilter } from "./seen-filter.js";
import type { NewMail } from "./mail-queue.js";
import type { Spool } from "./spool.js";

export interface NewArticle {
  msgid: string;
  /**
   * Header section as it will be stored, each line CRLF-terminated: bytes,
   * or a binary string (one char per octet, so 8-bit bytes stay as they
   * came); the writer appends Xref.
   */
  header: Buffer | string;
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
  /** Mail to the groups' subscribers, queued in the same transaction (news to mail). */
  mail?: NewMail;
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

export interface WriterOptions extends EngineOptions {
  pathhost: string;
}

type NewsItem = NewArticle | { refused: string; at: number } | { done: BacklogDone } | { purge: true };

/**
 * The news store's writer: articles, their history, group numbers and backlog
 * rows, as one contributor to the group commit (group-commit.ts), which the
 * mail queue shares. Each caller's promise resolves after COMMIT.
 */
export class Writer implements Contributor<NewsItem, WriteResult> {
  #nextId = 1;
  /** The group commit this writer contributes to (the mail queue shares it). */
  readonly engine: GroupCommit;
  #articles = 0;
  #known: StmtCache;
  #knownNow = new Set<string>();
  /** The group commit may stage a batch while the one before is being written (GroupCommit, `pipelines`). */
  readonly pipelines = true;
  /**
   * What batches staged and not yet committed have taken, on top of the
   * committed state: the next id, each group's newest number, the
   * Message-IDs. Forgotten when nothing is in flight or a batch failed.
   */
  #staged = { batches: 0, nextId: 0, highs: new Map<Group, number>(), ids: new Set<string>() };
  #extra: ((a: NewArticle, id: number, data: Buffer, tx: Tx) => void)[] = [];
  /** Where large articles' bytes go (storage/spool.ts); without one, every article is kept whole in its row. */
  #spool: Spool | undefined;
  #spoolMin = Infinity;
  /** Answered backlog rows per peer, deleted with the next batch (`backlogDoneLater`). */
  #doneLater = new Map<number, number[]>();
  #doneLaterCount = 0;
  #doneLaterTimer: NodeJS.Timeout | undefined;
  /**
   * Told of an article written alone (the idle path) when its transaction is
   * staged, just before it is handed to SQLite (which waits for the next turn
   * of the event loop, so that the offer goes out first). `after` is the
   * newest article id given out before it (committed, or lost with a failed
   * batch). An idle feed may offer it to a peer meanwhile (relay/node.ts).
   * Nothing is acknowledged to the sender before the COMMIT, so this gives
   * away nothing promised; if the transaction fails, the peer holds an
   * article this node does not, as a peer may after any sender's retry. Ids
   * are never reused after a failed batch, so a peer's answer for this one
   * can never settle another's backlog row.
   */
  onStagedAlone?: (a: NewArticle, id: number, data: Buffer, after: number) => void;

  constructor(
    private readonly db: Db,
    private readonly groups: GroupTable,
    private readonly opts: WriterOptions,
    private readonly seen: SeenFilter,
  ) {
    this.engine = new GroupCommit(db, opts);
    this.#known = new StmtCache(db, (n) => `SELECT msgid FROM history WHERE msgid IN (${"?,".repeat(n - 1)}?)`);
  }

  async init(): Promise<void> {
    const row = await this.db.get<{ m: number | null }>(
      "SELECT max(coalesce((SELECT max(id) FROM articles), 0), coalesce((SELECT value FROM meta WHERE key = 'last_article'), 0)) AS m",
    );
    this.#nextId = (row?.m ?? 0) + 1;
  }

  /** Articles of `minBytes` or more are written to `spool` from now on, their rows pointing at them. */
  useSpool(spool: Spool, minBytes: number): void {
    this.#spool = spool;
    this.#spoolMin = minBytes;
  }

  /** Rows another part stages with each stored article, in its transaction (news to mail). */
  withEachArticle(f: (a: NewArticle, id: number, data: Buffer, tx: Tx) => void): void {
    this.#extra.push(f);
  }

  get queued(): number {
    return this.engine.queued;
  }

  /** The group commit's figures (all items: articles, mail, bookkeeping) and the articles stored. */
  get stats(): GroupCommit["stats"] & { articles: number } {
    return { ...this.engine.stats, articles: this.#articles };
  }

  /** Stores an article, or reports it a duplicate; resolves after COMMIT. */
  store(a: NewArticle): Promise<WriteResult> {
    return this.engine.submit(this, a, a.header.length + a.body.length);
  }

  /** Remembers a refused Message-ID so that it is not taken again (RFC 5537 §3.6). */
  refuse(msgid: string, at = Date.now()): Promise<WriteResult> {
    return this.engine.submit(this, { refused: msgid, at });
  }

  /**
   * Deletes articles kept only to be passed on once no peer's backlog needs
   * them; their Message-IDs stay in history (so they are not taken again).
   * Runs between batches on the writer connection. Returns how many went.
   */
  async purgeTransit(): Promise<number> {
    const r = await this.engine.submit(this, { purge: true }, 0, true);
    return r.kind === "purged" ? r.count : 0;
  }

  /** Deletes answered backlog rows; batched with the articles being written. */
  backlogDone(peer: number, articles: number[]): Promise<WriteResult> {
    return this.engine.submit(this, { done: { peer, articles } }, 0, true);
  }

  /**
   * An answered backlog row, deleted with the next batch staged, whatever it
   * holds, rather than in a transaction (and a sync) of its own: on an idle
   * link that transaction was still syncing when the next article came, and
   * the article waited for it (issue 12, the idle hop). Rows that wait
   * `DONE_LINGER_MS` with no batch to go with, or 500 of them, are written
   * in a batch of their own. Rows of a batch that failed wait again. A row
   * not yet deleted when the process dies is offered again after the restart
   * and answered as a duplicate.
   */
  backlogDoneLater(peer: number, article: number): void {
    // at the bound, not past it: rows a failing database gave back (#doneAgain) wait for the timer
    if (this.#keepDone(peer, article) === DONE_LATER_MAX) void this.flushDoneLater();
    else this.#doneTimer();
  }

  /** Writes the answered rows waiting (`backlogDoneLater`) now; resolves once they are deleted, or have failed and wait again. */
  async flushDoneLater(): Promise<void> {
    const waiting = this.#takeDoneLater();
    await Promise.allSettled(waiting.map((d) => this.backlogDone(d.peer, d.articles)));
  }

  #takeDoneLater(): BacklogDone[] {
    clearTimeout(this.#doneLaterTimer);
    this.#doneLaterTimer = undefined;
    const out = [...this.#doneLater].map(([peer, articles]) => ({ peer, articles }));
    this.#doneLater.clear();
    this.#doneLaterCount = 0;
    return out;
  }

  /**
   * Rows a failed batch was to delete wait again: for the next batch, or the
   * timer. Never written at once from here, whatever their number: while the
   * database refuses every transaction (a full disk), that would be a loop.
   */
  #doneAgain(done: BacklogDone[]): void {
    for (const d of done) for (const a of d.articles) this.#keepDone(d.peer, a);
    this.#doneTimer();
  }

  /** Keeps an answered row for later; returns how many wait. */
  #keepDone(peer: number, article: number): number {
    let ids = this.#doneLater.get(peer);
    if (!ids) this.#doneLater.set(peer, (ids = []));
    ids.push(article);
    return ++this.#doneLaterCount;
  }

  #doneTimer(): void {
    this.#doneLaterTimer ??= setTimeout(() => void this.flushDoneLater(), DONE_LINGER_MS).unref();
  }

  drain(): Promise<void> {
    return this.engine.drain();
  }

  async close(): Promise<void> {
    await this.flushDoneLater();
    return this.engine.close();
  }

  /** Staging starts again from the committed state (nothing in flight, or a batch failed and those on top of it with it). */
  #forgetStaged(): void {
    this.#staged.batches = 0;
    this.#staged.highs.clear();
    this.#staged.ids.clear();
  }

  async prepare(items: NewsItem[]): Promise<void> {
    const ids: string[] = [];
    for (const item of items) {
      if ("refused" in item) ids.push(item.refused);
      else if ("msgid" in item) ids.push(item.msgid);
    }
    // Staged ids are taken before the history read, not after: a batch in flight can
    // commit while the read runs on a snapshot from before its COMMIT, and its ids
    // leave the staged set then, found in neither place (two peers flooding one
    // article stored it twice). Nothing is staged during the read: the engine
    // stages one batch at a time.
    const staged = ids.filter((id) => this.#staged.ids.has(id));
    this.#knownNow = await this.#knownIds(ids);
    for (const id of staged) this.#knownNow.add(id);
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

  stage(items: NewsItem[], tx: Tx): WriteResult[] {
    const known = this.#knownNow;
    const results: WriteResult[] = [];
    const history: unknown[][] = [];
    const articles: unknown[][] = [];
    const numbers: unknown[][] = [];
    const backlog: unknown[][] = [];
    const done: BacklogDone[] = [];
    const purges: number[] = []; // result indexes of purge requests
    const highs = new Map<Group, number>(); // tentative, applied after COMMIT
    const stored: [NewArticle, number, Buffer][] = [];
    const spooled: number[] = []; // the segment of each place taken in the spool
    const staged = this.#staged;
    const firstId = staged.batches > 0 ? staged.nextId : this.#nextId;
    let nextId = firstId;
    /** Each group's newest number before this batch: committed, or staged by a batch still in flight. */
    const base = (g: Group) => (staged.batches > 0 ? staged.highs.get(g) : undefined) ?? g.high;
    // rows a feed has had answered ride along (backlogDoneLater)
    if (this.#doneLaterCount > 0) done.push(...this.#takeDoneLater());

    for (const item of items) {
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
        const n = (highs.get(g) ?? base(g)) + 1;
        highs.set(g, n);
        filed.push([name, n]);
        numbers.push([g.id, n, id]);
      }
      // RFC 5536 §3.2.14: Xref names this server and the number in each group
      const xref = `${this.opts.pathhost} ${filed.map(([g, n]) => `${g}:${n}`).join(" ")}`;
      const xrefLine = filed.length > 0 ? `Xref: ${xref}\r\n` : "";
      // one buffer written in place
      const bytes = Buffer.allocUnsafe(item.header.length + xrefLine.length + 2 + item.body.length);
      let headLen = typeof item.header === "string" ? bytes.write(item.header, 0, "latin1") : item.header.copy(bytes, 0);
      if (xrefLine) headLen += bytes.write(xrefLine, headLen, "latin1");
      bytes[headLen] = 0x0d;
      bytes[headLen + 1] = 0x0a;
      item.body.copy(bytes, headLen + 2);
      history.push([item.msgid, 1, item.arrived, id]);
      // a large article's row keeps its header section (and the empty line); the whole article goes to the spool
      let row: Buffer = bytes;
      let place: { seg: number; at: number } | undefined;
      if (this.#spool && bytes.length >= this.#spoolMin) {
        place = this.#spool.place(bytes.length);
        spooled.push(place.seg);
        tx.spool(place.seg, place.at, bytes);
        row = bytes.subarray(0, headLen + 2);
      }
      articles.push([
        id, item.msgid, item.arrived, item.subject, item.author, item.date, item.refs,
        bytes.length, item.lines, filed.length > 0 ? xref : "", headLen, item.source, row, filed.length === 0 ? 1 : 0,
        place?.seg ?? null, place?.at ?? null,
      ]);
      for (const peer of item.peers) backlog.push([peer, id, bytes.length, item.arrived]);
      results.push({ kind: "stored", id, xref, numbers: filed, data: bytes });
      stored.push([item, id, bytes]);
    }

    tx.weight += articles.length;
    tx.articles += articles.length;
    tx.insert(SQL.history, 4, history);
    tx.insert(SQL.articles, 16, articles);
    tx.insert(SQL.numbers, 3, numbers);
    tx.insert(SQL.backlog, 4, backlog);
    for (const d of done) tx.inList(SQL.backlogDone, [d.peer], d.articles);
    for (const [g, high] of highs) tx.run(SQL.groupHigh, [high, high - base(g), base(g) + 1, g.id]);
    if (articles.length > 0) tx.run(SQL.lastArticle, [nextId - 1]);
    if (purges.length > 0) {
      tx.run(SQL.purge, [], (count) => {
        for (const i of purges) results[i] = { kind: "purged", count };
      });
    }
    for (const [a, id, data] of stored) for (const f of this.#extra) f(a, id, data, tx);
    const alone = this.onStagedAlone;
    if (alone && stored.length === 1 && staged.batches === 0) {
      const [a, id, data] = stored[0];
      tx.onSentAlone(() => alone(a, id, data, firstId - 1));
    }

    staged.batches++;
    staged.nextId = nextId;
    for (const [g, high] of highs) staged.highs.set(g, high);
    for (const h of history) staged.ids.add(h[0] as string);
    const spool = this.#spool;
    if (spool && spooled.length > 0) {
      const settle = () => spooled.forEach((seg) => spool.settle(seg));
      tx.onFail(settle);
      tx.afterCommit(settle);
    }
    if (done.length > 0) tx.onFail(() => this.#doneAgain(done));
    tx.onFail(() => {
      // ids handed out are never handed out again: a batch written alone may have been offered to peers already
      this.#nextId = Math.max(this.#nextId, nextId);
      this.#forgetStaged();
    });
    tx.afterCommit(() => {
      if (staged.batches > 0) staged.batches--;
      if (staged.batches === 0) this.#forgetStaged();
      else for (const h of history) staged.ids.delete(h[0] as string);
      this.#nextId = nextId;
      for (const h of history) this.seen.add(h[0] as string);
      for (const [g, high] of highs) {
        if (g.count === 0) g.low = g.high + 1;
        g.count += high - g.high;
        g.high = high;
      }
      this.#articles += articles.length;
    });
    return results;
  }
}

/**
 * How long answered backlog rows may wait for a batch to go with before they
 * are written in one of their own, and how many may wait. A longer wait
 * makes that lone transaction, which an article arriving meanwhile must wait
 * out, rarer on a quiet link; the rows cost nothing while they wait.
 */
const DONE_LINGER_MS = 1000;
const DONE_LATER_MAX = 500;

const SQL = {
  history: "INSERT OR IGNORE INTO history (msgid, status, at, article) VALUES",
  articles:
    "INSERT INTO articles (id, msgid, arrived, subject, author, date, refs, bytes, lines, xref, header_len, source, data, transit_only, spool_seg, spool_at) VALUES",
  numbers: "INSERT INTO group_articles (group_id, number, article) VALUES",
  backlog: "INSERT OR IGNORE INTO backlog (peer, article, bytes, arrived) VALUES",
  backlogDone: "DELETE FROM backlog WHERE peer = ? AND article IN",
  lastArticle: "UPDATE meta SET value = ? WHERE key = 'last_article'",
  groupHigh: "UPDATE groups SET high = ?, count = count + ?, low = CASE WHEN count = 0 THEN ? ELSE low END WHERE id = ?",
  purge: `DELETE FROM articles WHERE id IN (SELECT a.id FROM articles a WHERE a.transit_only = 1
          AND NOT EXISTS (SELECT 1 FROM backlog b WHERE b.article = a.id) LIMIT 5000)`,
};
