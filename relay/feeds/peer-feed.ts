// The outgoing feed to one peer. The backlog table is the source of truth;
// the bus only wakes the feed. Offers are pipelined (RFC 4644 CHECK, then
// TAKETHIS for what the peer wants) within a window; a peer without streaming
// gets IHAVE (RFC 3977 §6.3.2). A backlog row goes on 239, 438, 439, 235, 435
// or 437; on 431 or 436 the article is offered again later. A lost connection
// is retried with exponential backoff and jitter, and the backlog drains oldest
// first when the peer returns.
import type { Logger } from "pino";
import type { Storage } from "../../storage/database.js";
import type { BacklogRow } from "../../storage/backlog.js";
import { stuffBlock } from "../../protocol/nntp/reply.js";
import { NNTP, backoffMs, nntpDisposition, type Disposition } from "../outbound/dispositions.js";
import { NntpClient as NntpConnection, type ClientTls } from "../../protocol/nntp/client.js";
import { RefusalLog } from "../refusals.js";

export interface FeedPeer {
  id: number;
  name: string;
  host: string;
  port: number;
  streaming: boolean;
  connections: number;
  window: number;
  maxBacklogAge: number; // seconds
  /** TLS to the peer, its certificate verified (implicit, or STARTTLS after the greeting); none: plain text. */
  tls?: ClientTls;
}

export interface FeedTiming {
  reconnectMin: number; // seconds
  reconnectMax: number;
  retryDeferred: number;
  /** Seconds a peer may sit on offered articles without a word before we drop the connection. */
  replyTimeout: number;
}

export interface FeedStats {
  connected: number;
  connectedSince: number | null;
  mode: "streaming" | "ihave" | null;
  offered: number;
  accepted: number;
  refused: number; // the peer had it or did not want it (438, 435)
  rejected: number; // the peer refused the article itself (439, 437)
  deferred: number; // 431, 436
  dropped: number; // too old to send
  bytesSent: number;
  lastError: string | null;
  lastErrorAt: number | null;
  /** Since when no connection is up (since the feed started, or since the last one closed); null while connected. */
  disconnectedSince: number | null;
  /** The last article the peer refused for itself (437, 439), with its reply: the reason is the peer's to give. */
  lastRefusal: { reply: string; at: number } | null;
  /** Those refusals by kind (relay/refusals.ts). */
  refusals: Record<string, number>;
}

/** Kinds of refusal counted one by one in the figures; the rest go under "other reasons". */
const REFUSAL_KINDS = 20;

export function emptyFeedStats(): FeedStats {
  return {
    connected: 0, connectedSince: null, mode: null, offered: 0, accepted: 0, refused: 0, rejected: 0,
    deferred: 0, dropped: 0, bytesSent: 0, lastError: null, lastErrorAt: null, disconnectedSince: null, lastRefusal: null, refusals: {},
  };
}

const FETCH = 1000;

export class PeerFeed {
  readonly stats: FeedStats = { ...emptyFeedStats(), disconnectedSince: Date.now() };
  #queue: BacklogRow[] = [];
  #inFlight = new Set<number>();
  #deferred = new Map<number, { row: BacklogRow; at: number }>();
  #cursor = 0;
  #caughtUp = false;
  #generation = 0; // bumped by every wake, so a fetch that raced a wake does not declare the backlog empty
  #newest = 0; // the newest article the bus has told of, for this peer or not
  #fetching: Promise<void> | null = null;
  #wakers: (() => void)[] = [];
  #done: number[] = [];
  #doneTimer: NodeJS.Timeout | null = null;
  #stopped = false;
  #conns = new Set<NntpConnection>();
  #loops: Promise<void>[] = [];
  #deferTimer: NodeJS.Timeout | null = null;
  #refusals: RefusalLog;

  constructor(
    readonly peer: FeedPeer,
    private readonly storage: Storage,
    private readonly timing: FeedTiming,
    private readonly log: Logger,
  ) {
    this.#refusals = new RefusalLog(log, "peer refused an article");
  }

  start(): void {
    for (let i = 0; i < this.peer.connections; i++) this.#loops.push(this.#run(i));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const c of this.#conns) c.close();
    this.wake();
    if (this.#deferTimer) clearTimeout(this.#deferTimer);
    await Promise.allSettled(this.#loops);
    await this.#flushDone();
    this.#refusals.stop();
  }

  /**
   * A new article was queued for this peer (the bus). When the feed has read
   * the whole backlog and nothing is pending, the row is taken from the event
   * itself, saving a database read on the idle path: events come in commit
   * order, so nothing between the cursor and this article can be missed.
   */
  announce(row: { article: number; msgid: string; bytes: number; data: Buffer }): void {
    this.#newest = Math.max(this.#newest, row.article);
    if (this.#caughtUp && !this.#fetching && this.#queue.length === 0 && row.article > this.#cursor) {
      this.#cursor = row.article;
      this.#queue.push({ article: row.article, msgid: row.msgid, bytes: row.bytes, arrived: Date.now(), data: row.data });
      for (const w of this.#wakers.splice(0)) w();
      return;
    }
    this.wake();
  }

  /** An article was stored that is not for this peer: the feed only notes how far the store has come. */
  committed(article: number): void {
    this.#newest = Math.max(this.#newest, article);
  }

  /** New work may be in the backlog. */
  wake(): void {
    this.#caughtUp = false;
    this.#generation++;
    for (const w of this.#wakers.splice(0)) w();
  }

  #sleepUntilWoken(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      let t: NodeJS.Timeout | undefined;
      const w = () => {
        if (t) clearTimeout(t);
        resolve();
      };
      this.#wakers.push(w);
      if (ms !== undefined) {
        t = setTimeout(() => {
          const i = this.#wakers.indexOf(w);
          if (i >= 0) this.#wakers.splice(i, 1);
          resolve();
        }, ms);
      }
    });
  }

  /** The next article to offer, fetching from the backlog when the queue runs dry. */
  async #next(): Promise<BacklogRow | undefined> {
    let staleReads = 0;
    for (;;) {
      const now = Date.now();
      for (const [id, d] of this.#deferred) {
        if (d.at <= now) {
          this.#deferred.delete(id);
          this.#queue.unshift(d.row);
        }
      }
      const row = this.#queue.shift();
      if (row) {
        if (this.#inFlight.has(row.article)) continue;
        if (row.arrived < now - this.peer.maxBacklogAge * 1000) {
          this.stats.dropped++;
          this.#markDone(row.article);
          continue;
        }
        return row;
      }
      if (this.#caughtUp || this.#stopped) return undefined;
      if (!this.#fetching) {
        const gen = this.#generation;
        this.#fetching = this.storage.backlog.pending(this.peer.id, this.#cursor, FETCH).then(({ rows, top }) => {
          for (const r of rows) {
            if (r.article > this.#cursor) this.#cursor = r.article;
            if (!this.#inFlight.has(r.article) && !this.#deferred.has(r.article)) this.#queue.push(r);
          }
          // Caught up only if the snapshot holds everything the bus has told of: a
          // read that overlapped another on the reader connection can be older than
          // itself, and the fast path in announce() would then skip what it missed.
          if (rows.length < FETCH && gen === this.#generation && top >= this.#newest) this.#caughtUp = true;
          else if (rows.length < FETCH && top < this.#newest) staleReads++;
          this.log.debug({ fetched: rows.map((r) => r.article), cursor: this.#cursor, caughtUp: this.#caughtUp }, "backlog fetched");
        }).finally(() => (this.#fetching = null));
      }
      await this.#fetching;
      // a stale snapshot is over once the statements it overlapped end; do not spin meanwhile
      if (!this.#caughtUp && staleReads > 0 && this.#queue.length === 0) await new Promise((r) => setTimeout(r, Math.min(50, staleReads)));
    }
  }

  #markDone(article: number): void {
    this.log.debug({ article }, "backlog row done");
    this.#done.push(article);
    if (this.#done.length >= 500) void this.#flushDone();
    else if (!this.#doneTimer) this.#doneTimer = setTimeout(() => void this.#flushDone(), 20);
  }

  async #flushDone(): Promise<void> {
    if (this.#doneTimer) clearTimeout(this.#doneTimer);
    this.#doneTimer = null;
    const ids = this.#done.splice(0);
    if (ids.length === 0) return;
    try {
      await this.storage.writer.backlogDone(this.peer.id, ids);
    } catch (err) {
      // the rows stay; the peer will answer 438 when they are offered again
      this.log.warn({ err: String(err) }, "could not delete backlog rows");
    }
  }

  /** The peer's final word on an article (its reply line): offered again later (retry), or its backlog row goes. */
  #answered(row: BacklogRow, d: Disposition, reply: string): void {
    if (d === "retry") return this.#defer(row);
    if (d === "done") this.stats.accepted++;
    else if (d === "refused") this.stats.refused++; // 438, 435: it has the article already, the everyday case in a flood
    else this.#rejected(reply);
    this.#markDone(row.article);
  }

  /**
   * The peer refused the article itself (437, 439): only its reply says why
   * (a Path loop, a bad header), so the reply is logged, once per kind with
   * counts, and kept for status.
   */
  #rejected(reply: string): void {
    this.stats.rejected++;
    this.stats.lastRefusal = { reply, at: Date.now() };
    let kind = this.#refusals.event(this.peer.name, reply, { peer: this.peer.name });
    const kinds = this.stats.refusals;
    if (!(kind in kinds) && Object.keys(kinds).length >= REFUSAL_KINDS) kind = "other reasons";
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }

  #defer(row: BacklogRow): void {
    this.stats.deferred++;
    this.#deferred.set(row.article, { row, at: Date.now() + this.timing.retryDeferred * 1000 });
    this.#armDeferTimer();
  }

  /** Wakes the feed when the earliest deferred article is due. */
  #armDeferTimer(): void {
    if (this.#deferTimer || this.#deferred.size === 0 || this.#stopped) return;
    let first = Infinity;
    for (const d of this.#deferred.values()) first = Math.min(first, d.at);
    this.#deferTimer = setTimeout(() => {
      this.#deferTimer = null;
      this.wake();
      this.#armDeferTimer();
    }, Math.max(0, first - Date.now()) + 5);
  }

  #error(err: unknown): void {
    this.stats.lastError = err instanceof Error ? err.message : String(err);
    this.stats.lastErrorAt = Date.now();
  }

  async #run(index: number): Promise<void> {
    let failures = 0; // since the last connection that worked
    const log = this.log.child({ conn: index });
    let lastWhy: string | undefined;
    while (!this.#stopped) {
      let conn: NntpConnection | undefined;
      const mine = new Set<BacklogRow>();
      try {
        conn = await NntpConnection.connect(this.peer.host, this.peer.port, { tls: this.peer.tls });
        this.#conns.add(conn);
        const greeting = await conn.line();
        if (!/^20[01]/.test(greeting)) throw new Error(`greeting: ${greeting}`);
        // never a word in plain text when TLS is asked for: a refused STARTTLS or a certificate that does not verify ends here
        if (this.peer.tls?.mode === "starttls") await conn.startTls(this.peer.tls);
        let streaming = false;
        if (this.peer.streaming) {
          const r = await conn.command("MODE STREAM");
          if (r.startsWith("203")) streaming = true;
          else if (r.startsWith("502") || r.startsWith("480")) throw new Error(`peer refuses us: ${r}`);
        }
        this.stats.connected++;
        this.stats.connectedSince ??= Date.now();
        this.stats.disconnectedSince = null;
        this.stats.mode = streaming ? "streaming" : "ihave";
        log.info({ mode: this.stats.mode, tls: conn.encrypted }, "connected to peer");
        failures = 0;
        lastWhy = undefined;
        if (streaming) await this.#stream(conn, mine);
        else await this.#ihave(conn, mine);
      } catch (err) {
        if (!this.#stopped) {
          this.#error(err);
          const why = String((err as Error).message ?? err);
          // the same failure at every retry (a peer down, a certificate that does not verify) is logged once; status keeps it
          if (why !== lastWhy) log.warn({ err: why, failures: failures + 1 }, "feed connection failed");
          lastWhy = why;
        }
      } finally {
        if (conn) {
          if (this.#conns.delete(conn)) {
            this.stats.connected = Math.max(0, this.stats.connected - 1);
            if (this.stats.connected === 0) {
              this.stats.connectedSince = null;
              this.stats.disconnectedSince = Date.now();
            }
          }
          conn.close();
        }
        // what was on the wire goes back to the front of the queue
        for (const row of mine) {
          this.#inFlight.delete(row.article);
          this.#queue.unshift(row);
        }
      }
      if (this.#stopped) break;
      // reconnect_min doubled per failure up to reconnect_max, ±50% so that feeds cut together do not return together
      const kicks = this.#kicks;
      await this.#sleepUntilStopped(backoffMs(failures++, this.timing.reconnectMin, this.timing.reconnectMax, 0.5));
      if (this.#kicks !== kicks) failures = 0;
    }
  }

  /**
   * `tidings peer kick` (INN's `ctlinnd flush`): a connection waiting out its
   * backoff reconnects now, from the shortest backoff again, and articles the
   * peer deferred are offered again now.
   */
  kick(): void {
    this.#kicks++;
    for (const d of this.#deferred.values()) d.at = 0;
    this.wake();
  }

  #kicks = 0;

  #sleepUntilStopped(ms: number): Promise<void> {
    const kicks = this.#kicks;
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      const w = () => {
        if (this.#stopped || this.#kicks !== kicks) {
          clearTimeout(t);
          resolve();
        } else this.#wakers.push(w);
      };
      this.#wakers.push(w);
    });
  }

  /** RFC 4644: CHECK within the window; TAKETHIS once the peer says 238. Replies come in order. */
  #stream(conn: NntpConnection, mine: Set<BacklogRow>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      type Sent = { kind: "check" | "takethis"; row: BacklogRow };
      const fifo: Sent[] = [];
      let head = 0;
      let open = 0; // articles between CHECK and their final answer
      const prefetched = new Map<number, Promise<{ data: Buffer } | undefined>>(); // the bytes to send, read ahead
      let filling = false;
      let finished = false;
      // a peer that takes our offers and then says nothing (hung, or a link that drops
      // packets without closing) would hold the window for ever: time it out, reconnect
      let lastHeard = Date.now();
      const timeoutMs = this.timing.replyTimeout * 1000;
      const watchdog = setInterval(() => {
        if (open > 0 && Date.now() - lastHeard > timeoutMs) {
          finish(new Error(`peer did not answer for ${this.timing.replyTimeout} s with ${open} offers open`));
        }
      }, Math.max(50, Math.min(5000, timeoutMs / 4)));
      const finish = (err?: Error) => {
        if (finished) return;
        finished = true;
        clearInterval(watchdog);
        conn.onLine = undefined;
        if (err) reject(err);
        else resolve();
      };
      conn.onClose = (err) => finish(err);
      const settle = (row: BacklogRow) => {
        prefetched.delete(row.article);
        open--;
        mine.delete(row);
        this.#inFlight.delete(row.article);
      };
      const fill = async () => {
        if (filling || finished) return;
        filling = true;
        try {
          while (!finished && !this.#stopped) {
            if (open >= this.peer.window) break;
            const row = await this.#next();
            if (!row) {
              if (open > 0) break;
              await this.#sleepUntilWoken(30_000);
              if (this.#stopped) break;
              continue;
            }
            if (finished) {
              // the connection went away while we waited: the row goes back
              this.#queue.unshift(row);
              break;
            }
            this.#inFlight.add(row.article);
            mine.add(row);
            if (open === 0) lastHeard = Date.now(); // the silence that counts starts with an offer
            open++;
            const msgid = row.msgid;
            if (!msgid) {
              settle(row);
              this.#markDone(row.article);
              continue;
            }
            fifo.push({ kind: "check", row });
            this.stats.offered++;
            conn.write(`CHECK ${msgid}\r\n`);
            // read the article while the peer answers, so a 238 is followed by TAKETHIS at once
            if (row.data) prefetched.set(row.article, Promise.resolve({ data: row.data }));
            else if (open <= 32) prefetched.set(row.article, this.storage.articles.byId(row.article).catch(() => undefined));
          }
        } catch (err) {
          finish(err as Error);
        } finally {
          filling = false;
        }
        if (this.#stopped) finish();
      };
      const takethis = async (row: BacklogRow) => {
        const early = prefetched.get(row.article);
        prefetched.delete(row.article);
        const a = await (early ?? this.storage.articles.byId(row.article));
        if (!a || finished) {
          if (!a) {
            settle(row);
            this.#markDone(row.article);
            void fill();
          }
          return;
        }
        fifo.push({ kind: "takethis", row });
        this.stats.bytesSent += a.data.length;
        conn.write([`TAKETHIS ${row.msgid}\r\n`, ...stuffBlock(a.data)]);
      };
      conn.onLine = (line) => {
        lastHeard = Date.now();
        const sent = fifo[head++];
        if (head > 1024) {
          fifo.splice(0, head);
          head = 0;
        }
        if (!sent) return finish(new Error(`unexpected reply: ${line}`));
        const row = sent.row;
        // what the reply means: one table per command (relay/outbound/dispositions.ts)
        const d = nntpDisposition(sent.kind === "check" ? NNTP.CHECK : NNTP.TAKETHIS, line);
        if (d === undefined) return finish(new Error(`${sent.kind === "check" ? "CHECK" : "TAKETHIS"} answered: ${line}`));
        if (d === "send") {
          takethis(row).catch((e) => finish(e));
          return;
        }
        settle(row);
        this.#answered(row, d, line);
        // 400: the peer is going away; what it deferred is offered again after the reconnection
        if (line.startsWith("400")) return finish(new Error(`peer: ${line}`));
        void fill();
      };
      for (const l of conn.takeBuffered()) conn.onLine(l);
      void fill();
    });
  }

  /** RFC 3977 §6.3.2, one article at a time. */
  async #ihave(conn: NntpConnection, mine: Set<BacklogRow>): Promise<void> {
    while (!this.#stopped) {
      const row = await this.#next();
      if (!row) {
        await this.#sleepUntilWoken(30_000);
        continue;
      }
      mine.add(row);
      this.#inFlight.add(row.article);
      const release = () => {
        mine.delete(row);
        this.#inFlight.delete(row.article);
      };
      const a = row.data && row.msgid ? { msgid: row.msgid, data: row.data } : await this.storage.articles.byId(row.article);
      if (!a) {
        release();
        this.#markDone(row.article);
        continue;
      }
      this.stats.offered++;
      let r = await conn.command(`IHAVE ${a.msgid}`);
      let d = nntpDisposition(NNTP.IHAVE, r);
      if (d === "send") {
        this.stats.bytesSent += a.data.length;
        conn.write(stuffBlock(a.data));
        r = await conn.line(120_000);
        d = nntpDisposition(NNTP.IHAVE_TRANSFER, r);
        if (d === undefined) {
          release();
          throw new Error(`IHAVE transfer answered: ${r}`);
        }
      }
      release();
      if (d === undefined) {
        this.#queue.unshift(row);
        throw new Error(`IHAVE answered: ${r}`);
      }
      this.#answered(row, d, r);
    }
  }
}
