// The outgoing feed to one peer: an outbound queue (relay/outbound/queue.ts)
// whose work is the peer's backlog, read oldest first past a cursor, and
// whose transport is NNTP (relay/outbound/nntp-transport.ts: CHECK/TAKETHIS
// within the window, or IHAVE). The backlog table is the source of truth; the
// bus only wakes the feed. A backlog row goes on 239, 438, 439, 235, 435 or
// 437; on 431 or 436 the article is offered again after feeds.retry_deferred;
// a row older than the peer's max_backlog_age is dropped unsent.
import type { Logger } from "pino";
import type { Storage } from "../../storage/database.js";
import type { BacklogRow } from "../../storage/backlog.js";
import type { ClientTls } from "../../protocol/nntp/client.js";
import { RefusalLog } from "../refusals.js";
import { OutboundQueue, type WorkSource } from "../outbound/queue.js";
import { NntpTransport, type NntpCounters } from "../outbound/nntp-transport.js";
import type { Outcome } from "../outbound/transport.js";

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

/** Bytes of articles offered to a peer and not yet answered, per connection, whatever [[peer]].window allows. */
export const WINDOW_BYTES = 16 * 1024 * 1024;

export class PeerFeed {
  readonly #queue: OutboundQueue<BacklogRow, Outcome>;
  readonly #backlog: BacklogSource;
  readonly #counters: NntpCounters = { mode: null, bytesSent: 0 };

  constructor(
    readonly peer: FeedPeer,
    storage: Storage,
    timing: FeedTiming,
    log: Logger,
  ) {
    this.#backlog = new BacklogSource(peer, storage, timing, log);
    const transport = new NntpTransport(
      { host: peer.host, port: peer.port, streaming: peer.streaming, window: peer.window, tls: peer.tls, replyTimeout: timing.replyTimeout },
      storage.articles,
      this.#counters,
      (mode, tls) => log.info({ mode, tls }, "connected to peer"),
    );
    this.#queue = new OutboundQueue(peer.name, this.#backlog, transport, {
      connections: peer.connections,
      // ±50% so that feeds cut together do not return together
      reconnect: { min: timing.reconnectMin, max: timing.reconnectMax, jitter: 0.5 },
      maxAge: { ms: peer.maxBacklogAge * 1000, when: "before-offer" },
      // a window of large articles, their bytes read and held until the peer answers, stays this small
      windowBytes: WINDOW_BYTES,
      failureMessage: "feed connection failed",
    }, log);
  }

  /** The feed's figures, for status and metrics. */
  get stats(): FeedStats {
    const q = this.#queue.stats;
    const b = this.#backlog.counts;
    return {
      connected: q.connected, connectedSince: q.connectedSince, mode: this.#counters.mode, offered: q.offered,
      accepted: b.accepted, refused: b.refused, rejected: b.rejected, deferred: q.deferred, dropped: q.dropped,
      bytesSent: this.#counters.bytesSent, lastError: q.lastError, lastErrorAt: q.lastErrorAt, disconnectedSince: q.disconnectedSince,
      lastRefusal: b.lastRefusal, refusals: b.refusals,
    };
  }

  start(): void {
    this.#queue.start();
  }

  async stop(): Promise<void> {
    await this.#queue.stop();
    await this.#backlog.stop();
  }

  /** A new article was queued for this peer (the bus); taken from the event itself when the feed is idle. */
  announce(row: { article: number; msgid: string; bytes: number; data: Buffer }): void {
    // the bytes ride along only while a connection is up to send them at once; otherwise the article is read when sent
    const data = this.#queue.stats.connected > 0 ? row.data : undefined;
    this.#queue.announce({ article: row.article, msgid: row.msgid, bytes: row.bytes, arrived: Date.now(), data }, row.article);
  }

  /**
   * An article for this peer on its way to SQLite, not yet committed
   * (relay/node.ts): taken only if the feed is connected and has nothing else
   * to do, exactly as announce() would take it. Its announce after the COMMIT
   * is then replaced by committed().
   */
  takeAhead(row: { article: number; msgid: string; bytes: number; data: Buffer }): boolean {
    if (this.#queue.stats.connected === 0) return false;
    return this.#queue.takeAhead({ article: row.article, msgid: row.msgid, bytes: row.bytes, arrived: Date.now(), data: row.data });
  }

  /** An article was stored that is not for this peer: the feed only notes how far the store has come. */
  committed(article: number): void {
    this.#queue.committed(article);
  }

  /** New work may be in the backlog. */
  wake(): void {
    this.#queue.wake();
  }

  /**
   * `tidings peer kick` (INN's `ctlinnd flush`): a connection waiting out its
   * backoff reconnects now, from the shortest backoff again, and articles the
   * peer deferred are offered again now.
   */
  kick(): void {
    this.#queue.kick();
  }
}

/** The peer's backlog as the queue's work: a cursor over the table, rows deleted in batches once answered. */
class BacklogSource implements WorkSource<BacklogRow, Outcome> {
  readonly counts = { accepted: 0, refused: 0, rejected: 0, lastRefusal: null as FeedStats["lastRefusal"], refusals: {} as Record<string, number> };
  #cursor = 0;
  #refusals: RefusalLog;

  constructor(
    private readonly peer: FeedPeer,
    private readonly storage: Storage,
    private readonly timing: FeedTiming,
    private readonly log: Logger,
  ) {
    this.#refusals = new RefusalLog(log, "peer refused an article");
  }

  key(row: BacklogRow): number {
    return row.article;
  }

  size(row: BacklogRow): number {
    return row.bytes;
  }

  arrived(row: BacklogRow): number {
    return row.arrived;
  }

  async read(): Promise<{ items: BacklogRow[]; full: boolean; top: number }> {
    const { rows, top } = await this.storage.backlog.pending(this.peer.id, this.#cursor, FETCH);
    for (const r of rows) if (r.article > this.#cursor) this.#cursor = r.article;
    this.log.debug({ fetched: rows.length, cursor: this.#cursor }, "backlog fetched");
    return { items: rows, full: rows.length >= FETCH, top };
  }

  /** The idle path: an article past the cursor is taken straight from the bus. */
  take(row: BacklogRow): boolean {
    if (row.article <= this.#cursor) return false;
    this.#cursor = row.article;
    return true;
  }

  /** Bytes taken from the bus are not kept across a lost connection: the article may be expired or cancelled before the peer is back. */
  returned(row: BacklogRow): BacklogRow {
    return row.data ? { ...row, data: undefined } : row;
  }

  /** The peer's final word on an article: offered again later (retry), or its backlog row goes. */
  settle(row: BacklogRow, o: Outcome): number | void {
    if (o.disposition === "retry") return Date.now() + this.timing.retryDeferred * 1000;
    if (o.disposition === "done") this.counts.accepted++;
    else if (o.disposition === "refused") this.counts.refused++; // 438, 435: it has the article already, the everyday case in a flood
    else if (o.disposition === "rejected" || o.disposition === "failed") this.#rejected(o.reply);
    this.#markDone(row.article);
  }

  /** Older than max_backlog_age: dropped unsent. */
  expire(row: BacklogRow): void {
    this.#markDone(row.article);
  }

  /**
   * The peer refused the article itself (437, 439): only its reply says why
   * (a Path loop, a bad header), so the reply is logged, once per kind with
   * counts, and kept for status.
   */
  #rejected(reply: string): void {
    this.counts.rejected++;
    this.counts.lastRefusal = { reply, at: Date.now() };
    let kind = this.#refusals.event(this.peer.name, reply, { peer: this.peer.name });
    const kinds = this.counts.refusals;
    if (!(kind in kinds) && Object.keys(kinds).length >= REFUSAL_KINDS) kind = "other reasons";
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }

  /** The row goes with the next batch the writer stages (storage/writer.ts backlogDoneLater). */
  #markDone(article: number): void {
    this.storage.writer.backlogDoneLater(this.peer.id, article);
  }

  async stop(): Promise<void> {
    await this.storage.writer.flushDoneLater();
    this.#refusals.stop();
  }
}
