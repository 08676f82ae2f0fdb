// One outbound queue per destination, for news feeds and mail hops alike:
// Postfix's qmgr in small (scheduling, backoff, a bounded active set), with
// the delivery agents behind one interface (transport.ts). The storage side
// is the source of truth and says what is due (the backlog cursor of a peer,
// the due recipients of a mail hop); the queue holds what it has read, what
// is on the wire (in flight), what the next hop deferred and when it is due,
// and runs the connections: each one opens a session, keeps up to the
// session's window offered, and on a lost connection waits out a backoff with
// jitter. What a reply means is the transport's table (dispositions.ts); what
// a disposition does to a row, and what "too old" does (drop for news, a
// bounce for mail), is the source's.
import type { Logger } from "pino";
import { backoffMs } from "./dispositions.js";
import type { Outcome, Transport, Session } from "./transport.js";

export interface WorkSource<T, R extends Outcome> {
  /** A stable id of one piece of work (an article id, a mail id). */
  key(item: T): number;
  /** When the work was queued (ms), for the maximum age. */
  arrived(item: T): number;
  /**
   * The next work that is due. `held` is how many items the queue holds now
   * (in flight, settling, deferred), which a source without a cursor must
   * read past. `full`: the read stopped at its limit, more may be due.
   * `top`: the newest sequence number the snapshot read holds (Infinity when
   * the source cannot tell): a read older than what announce()/committed()
   * told of is not taken for "caught up".
   */
  read(held: number, holds?: (key: number) => boolean): Promise<{ items: T[]; full: boolean; top: number }>;
  /** An item's size in bytes, for QueueOptions.windowBytes. */
  size?(item: T): number;
  /** An announced item the queue may take without a read (the idle fast path); false: read instead. */
  take?(item: T): boolean;
  /**
   * A connection failed: work it had, and work waiting in memory, will be
   * offered on a later connection, maybe much later. The source may shed
   * what it held in memory for it (an article's bytes, taken from the bus),
   * so that what is sent then is read again, and what was expired or
   * cancelled meanwhile is not sent at all.
   */
  returned?(item: T): T;
  /**
   * The final word on one item, or a retry. For a retry, returns when it is
   * due again (ms). `expired`: the item has outlived the maximum age and
   * this was a retry (maxAge.when = "after-attempt"): give it up.
   */
  settle(item: T, outcome: R, expired: boolean): number | void | Promise<number | void>;
  /** Too old before it was offered (maxAge.when = "before-offer"): drop it. */
  expire?(item: T): void;
  /**
   * The destination is down (a connection failed, backoff under way): work
   * found due meanwhile is handed here rather than held (Postfix's dead
   * destination: mail is deferred at once with the reason, so that the
   * queue listing says why it waits). Without it, work waits in memory.
   */
  suspend?(items: T[], reason: string): Promise<void>;
}

export interface QueueOptions {
  /** Connection loops (sessions at once). */
  connections: number;
  /**
   * Most bytes offered and not yet answered on one session (by the source's
   * size()), on top of the session's window in items; one item is always
   * offered, however large. Bounds the memory a window of large items holds.
   */
  windowBytes?: number;
  /** Reconnection backoff in seconds: `min` doubled per failure up to `max`, ±`jitter`. */
  reconnect: { min: number; max: number; jitter: number };
  /** Oldest work still offered, and when age is checked: before the offer (drop), or after a failed attempt (give up). */
  maxAge?: { ms: number; when: "before-offer" | "after-attempt" };
  /**
   * Retries the source does not keep (it writes the next try down and reads
   * the item again when due): the queue only wakes at that time. Otherwise
   * the queue holds deferred items in memory and offers them again when due.
   */
  retriesInSource?: boolean;
  /** Wait at most this long at stop for offers under way (mail); 0: close at once (news). */
  stopGraceMs?: number;
  /** The log line for a failed connection (logged once per distinct reason; status keeps each). */
  failureMessage?: string;
}

export interface QueueStats {
  connected: number;
  connectedSince: number | null;
  /** Since when no session is up; null while one is. */
  disconnectedSince: number | null;
  /** When the next connection is tried, while backing off after a failure; else null. */
  retryAt: number | null;
  offered: number;
  deferred: number;
  dropped: number;
  lastError: string | null;
  lastErrorAt: number | null;
}

/**
 * Items waiting in memory past which announced work is no longer taken from
 * the event (OutboundQueue.announce). Before, only an empty queue took it:
 * with eight senders a mail hop's queue was seldom empty, and every new
 * message was read back from the database (its id, then its bytes).
 */
const TAKEN_MAX = 64;
/** ...and bytes (the source's size()) past which it is not: taken mail and articles carry their bytes. */
const TAKEN_MAX_BYTES = 8 * 1024 * 1024;

/** The queue of one destination. */
export class OutboundQueue<T, R extends Outcome> {
  readonly stats: QueueStats = {
    connected: 0, connectedSince: null, disconnectedSince: Date.now(), retryAt: null, offered: 0, deferred: 0, dropped: 0, lastError: null, lastErrorAt: null,
  };
  #queue: T[] = [];
  #inFlight = new Set<number>();
  /** Items deferred by the next hop, offered again at `at` (retries kept in memory). */
  #deferred = new Map<number, { item: T; at: number }>();
  /** Times the source said deferred work is due again (retries kept by the source). */
  #wakeAt: number[] = [];
  #caughtUp = false;
  #generation = 0; // bumped by every wake, so a read that raced a wake does not declare the source empty
  #newest = 0; // the newest sequence number announced or committed
  #reading: Promise<void> | null = null;
  #reads = 0;
  /** Keys whose async settle ended, with the read count then: a read begun before may still return them. */
  #settled = new Map<number, number>();
  #wakers: (() => void)[] = [];
  #stopped = false;
  #closing = false;
  #sessions = new Set<Session<T, R>>();
  #loops: Promise<void>[] = [];
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  #kicks = 0;
  #open = 0; // offers under way, all sessions
  #idle: (() => void)[] = [];

  constructor(
    readonly name: string,
    private readonly source: WorkSource<T, R>,
    private readonly transport: Transport<T, R>,
    private readonly opts: QueueOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    for (let i = 0; i < this.opts.connections; i++) this.#loops.push(this.#run(i));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.wake();
    const grace = this.opts.stopGraceMs ?? 0;
    if (grace > 0 && this.#open > 0) {
      const drained = await Promise.race([
        new Promise<true>((r) => this.#idle.push(() => r(true))),
        new Promise<false>((r) => setTimeout(() => r(false), grace).unref()),
      ]);
      if (!drained) this.log.warn({ open: this.#open }, "stopped with offers still waiting for the next hop; they stay queued");
    }
    this.#closing = true;
    for (const s of this.#sessions) s.close();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await Promise.allSettled(this.#loops);
  }

  /**
   * New work was queued for this destination (the bus). When the queue has
   * read everything due (what it read waits in it, or is on the wire), the
   * source may take the item from the event itself, saving a read: events
   * come in commit order, and an event that came while a read ran made the
   * queue read again, so nothing between what was read and this item is
   * missed. Up to TAKEN_MAX items and TAKEN_MAX_BYTES wait in memory this
   * way (one always, into an empty queue); past that the source is read when
   * there is room, so a slow destination does not hold everything new in
   * memory.
   */
  announce(item: T, seq: number): void {
    this.#newest = Math.max(this.#newest, seq);
    if (this.#mayTake(item) && this.source.take?.(item)) {
      this.#queue.push(item);
      for (const w of this.#wakers.splice(0)) w();
      return;
    }
    this.wake();
  }

  /**
   * Work offered before it is committed (the news idle path, relay/node.ts):
   * taken on the terms of announce(), else left alone, with no read and no
   * wake, since a read could not see it yet; announce() or committed()
   * follows once it is committed.
   */
  takeAhead(item: T): boolean {
    if (!this.#mayTake(item) || !this.source.take?.(item)) return false;
    this.#queue.push(item);
    for (const w of this.#wakers.splice(0)) w();
    return true;
  }

  /** Whether announced work may be taken from the event (announce(), takeAhead()). */
  #mayTake(item: T): boolean {
    if (!this.#caughtUp || this.#reading) return false;
    if (this.#queue.length === 0) return true;
    if (this.#queue.length >= TAKEN_MAX) return false;
    const size = (i: T) => this.source.size?.(i) ?? 0;
    let bytes = size(item);
    for (const q of this.#queue) bytes += size(q);
    return bytes <= TAKEN_MAX_BYTES;
  }

  /** Something was committed that is not for this destination: the queue only notes how far the store has come. */
  committed(seq: number): void {
    this.#newest = Math.max(this.#newest, seq);
  }

  /** New work may be due. */
  wake(): void {
    this.#caughtUp = false;
    this.#generation++;
    for (const w of this.#wakers.splice(0)) w();
  }

  /**
   * `tidings peer kick`, `tidings mailq retry` (INN's `ctlinnd flush`): a
   * connection waiting out its backoff reconnects now, from the shortest
   * backoff again, and deferred work is offered again now.
   */
  kick(): void {
    this.#kicks++;
    for (const d of this.#deferred.values()) d.at = 0;
    this.stats.retryAt = null;
    this.wake();
  }

  /** Work the queue holds: read and waiting, in flight, deferred. */
  get held(): { queued: number; inFlight: number; deferred: number } {
    return { queued: this.#queue.length, inFlight: this.#inFlight.size, deferred: this.#deferred.size };
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

  /** The next item to offer, reading from the source when the queue runs dry. */
  async #next(): Promise<T | undefined> {
    let staleReads = 0;
    for (;;) {
      const now = Date.now();
      for (const [k, d] of this.#deferred) {
        if (d.at <= now) {
          this.#deferred.delete(k);
          this.#queue.unshift(d.item);
        }
      }
      const item = this.#queue.shift();
      if (item !== undefined) {
        if (this.#inFlight.has(this.source.key(item))) continue;
        const age = this.opts.maxAge;
        if (age && age.when === "before-offer" && this.source.arrived(item) < now - age.ms) {
          this.stats.dropped++;
          this.source.expire?.(item);
          continue;
        }
        return item;
      }
      if (this.#caughtUp || this.#stopped) return undefined;
      await this.#read(() => staleReads++);
      // a stale snapshot is over once the statements it overlapped end; do not spin meanwhile
      if (!this.#caughtUp && staleReads > 0 && this.#queue.length === 0) await new Promise((r) => setTimeout(r, Math.min(50, staleReads)));
    }
  }

  /** One read at a time; callers that come while it runs wait for it. */
  #read(stale?: () => void): Promise<void> {
    if (!this.#reading) {
      const gen = this.#generation;
      const began = ++this.#reads;
      const held = this.#inFlight.size + this.#deferred.size + this.#queue.length;
      // what the queue holds now, for a source that can skip reading it whole again
      let queuedKeys: Set<number> | undefined;
      const holds = (k: number) =>
        this.#inFlight.has(k) || this.#deferred.has(k) || (queuedKeys ??= new Set(this.#queue.map((i) => this.source.key(i)))).has(k);
      this.#reading = this.source.read(held, holds).then(({ items, full, top }) => {
        // a source without a cursor reads again what the queue already holds
        const queued = this.#queue.length > 0 ? new Set(this.#queue.map((i) => this.source.key(i))) : undefined;
        for (const it of items) {
          const k = this.source.key(it);
          // settled after this read began: the snapshot may predate the settle
          const s = this.#settled.get(k);
          if (s !== undefined && s >= began) continue;
          if (!this.#inFlight.has(k) && !this.#deferred.has(k) && !queued?.has(k)) this.#queue.push(it);
        }
        for (const [k, s] of this.#settled) if (s < began) this.#settled.delete(k);
        // Caught up only if the snapshot holds everything announced: a read that
        // overlapped another on a reader connection can be older than itself, and
        // the fast path in announce() would then skip what it missed.
        if (!full && gen === this.#generation && top >= this.#newest) this.#caughtUp = true;
        else if (!full && top < this.#newest) stale?.();
      }).finally(() => (this.#reading = null));
    }
    return this.#reading;
  }

  /**
   * The next hop's word on an item: settled by the source, deferred when it
   * says retry. Returns when the settle is written, if the source writes it later.
   */
  #settle(item: T, outcome: R): Promise<void> | void {
    const k = this.source.key(item);
    const age = this.opts.maxAge;
    const expired = outcome.disposition === "retry" && !!age && age.when === "after-attempt" && this.source.arrived(item) < Date.now() - age.ms;
    if (outcome.disposition === "retry" && !expired) this.stats.deferred++;
    let r: number | void | Promise<number | void>;
    try {
      r = this.source.settle(item, outcome, expired);
    } catch (err) {
      this.#inFlight.delete(k);
      this.log.warn({ err: String(err) }, "could not settle outbound work; it is offered again");
      this.#offerEnded();
      return;
    }
    if (r instanceof Promise) {
      return r.then(
        (at) => {
          this.#settled.set(k, this.#reads);
          this.#retry(item, at);
        },
        (err) => this.log.warn({ err: String(err) }, "could not settle outbound work; it is offered again"),
      ).finally(() => {
        this.#inFlight.delete(k);
        this.#offerEnded();
      });
    }
    this.#inFlight.delete(k);
    this.#retry(item, r);
    this.#offerEnded();
  }

  #retry(item: T, at: number | void): void {
    if (typeof at !== "number") return;
    if (this.opts.retriesInSource) this.#wakeAt.push(at);
    else this.#deferred.set(this.source.key(item), { item, at });
    this.#armTimer(at);
  }

  /** An offer is over, its settle included (stop waits for these). */
  #offerEnded(): void {
    this.#open--;
    if (this.#open === 0) for (const f of this.#idle.splice(0)) f();
  }

  /** Wakes the queue when the earliest deferred work is due. */
  #armTimer(at: number): void {
    if (this.#stopped || at >= this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      // what is due now is taken by the next offer; the timer is for what is due later
      // (no slack here: an item due a moment from now is not due for #next)
      const now = Date.now();
      let first = Infinity;
      for (const d of this.#deferred.values()) if (d.at > now) first = Math.min(first, d.at);
      this.#wakeAt = this.#wakeAt.filter((t) => t > now);
      for (const t of this.#wakeAt) first = Math.min(first, t);
      this.wake();
      if (first < Infinity) this.#armTimer(first);
    }, Math.max(0, at - Date.now()) + 5);
    this.#timer.unref?.();
  }

  #error(err: unknown): void {
    this.stats.lastError = err instanceof Error ? err.message : String(err);
    this.stats.lastErrorAt = Date.now();
  }

  async #run(index: number): Promise<void> {
    let failures = 0; // since the last session that worked
    const log = this.log.child({ conn: index });
    let lastWhy: string | undefined;
    while (!this.#stopped) {
      let session: Session<T, R> | undefined;
      const mine = new Set<T>();
      let failed = false;
      try {
        session = await this.transport.open();
        if (this.#closing) throw new Error("stopped");
        this.#sessions.add(session);
        this.stats.connected++;
        this.stats.connectedSince ??= Date.now();
        this.stats.disconnectedSince = null;
        this.stats.retryAt = null;
        failures = 0;
        lastWhy = undefined;
        await this.#pump(session, mine);
      } catch (err) {
        if (!this.#stopped) {
          failed = true;
          this.#error(err);
          const why = String((err as Error).message ?? err);
          // the same failure at every retry (a peer down, a certificate that does not verify) is logged once; status keeps it
          if (why !== lastWhy) log.warn({ err: why, failures: failures + 1 }, this.opts.failureMessage ?? "outbound connection failed");
          lastWhy = why;
        }
      } finally {
        if (session) {
          if (this.#sessions.delete(session)) {
            this.stats.connected = Math.max(0, this.stats.connected - 1);
            if (this.stats.connected === 0) {
              this.stats.connectedSince = null;
              this.stats.disconnectedSince = Date.now();
            }
          }
          session.close();
        }
        // what was on the wire goes back to the front of the queue
        for (const item of mine) {
          this.#inFlight.delete(this.source.key(item));
          this.#queue.unshift(item);
        }
        const shed = this.source.returned?.bind(this.source);
        if (shed && !this.#stopped) for (let i = 0; i < this.#queue.length; i++) this.#queue[i] = shed(this.#queue[i]);
      }
      if (this.#stopped) break;
      // reconnect.min doubled per failure up to reconnect.max, with jitter so that queues cut together do not return together
      const ms = backoffMs(failures++, this.opts.reconnect.min, this.opts.reconnect.max, this.opts.reconnect.jitter);
      const kicks = this.#kicks;
      await this.#backoff(ms, failed ? (this.stats.lastError ?? "connection failed") : undefined);
      if (this.#kicks !== kicks) failures = 0;
    }
  }

  /**
   * Waits out a backoff; a kick or stop ends it early. While the destination
   * is down a source that suspends (mail) gets what falls due meanwhile.
   */
  async #backoff(ms: number, why: string | undefined): Promise<void> {
    const kicks = this.#kicks;
    const until = Date.now() + ms;
    if (why !== undefined) this.stats.retryAt = until;
    const suspend = why !== undefined && this.source.suspend ? this.source.suspend.bind(this.source) : undefined;
    while (!this.#stopped && this.#kicks === kicks) {
      if (suspend) {
        const items: T[] = this.#queue.splice(0);
        if (!this.#caughtUp) {
          await this.#read();
          items.push(...this.#queue.splice(0));
        }
        if (items.length > 0) {
          const keys = items.map((i) => this.source.key(i));
          for (const k of keys) this.#inFlight.add(k);
          try {
            await suspend(items, `delivery temporarily suspended: ${why}`);
          } catch (err) {
            this.log.warn({ err: String(err) }, "could not defer work while the destination is down");
          } finally {
            for (const k of keys) {
              this.#inFlight.delete(k);
              this.#settled.set(k, this.#reads);
            }
          }
          continue;
        }
      }
      const left = until - Date.now();
      if (left <= 0) break;
      await this.#sleepUntilWoken(left);
    }
    if (this.#kicks !== kicks || Date.now() >= until) this.stats.retryAt = null;
  }

  /** Keeps up to the session's window offered until the session ends. */
  #pump(session: Session<T, R>, mine: Set<T>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let open = 0;
      let openBytes = 0;
      const maxBytes = this.opts.windowBytes ?? Infinity;
      const size = (item: T) => this.source.size?.(item) ?? 0;
      let filling = false;
      let finished = false;
      const finish = (err?: Error) => {
        if (finished) return;
        finished = true;
        if (err) reject(err);
        else resolve();
      };
      session.closed.then((err) => finish(err ?? (this.#stopped ? undefined : new Error("connection closed"))));
      const fill = async () => {
        if (filling || finished) return;
        filling = true;
        try {
          while (!finished && !this.#stopped) {
            if (open >= session.window || (open > 0 && openBytes >= maxBytes)) break;
            const item = await this.#next();
            if (item === undefined) {
              if (open > 0) break;
              await this.#sleepUntilWoken(30_000);
              continue;
            }
            if (finished) {
              // the session went away while we waited: the item goes back
              this.#queue.unshift(item);
              break;
            }
            const k = this.source.key(item);
            this.#inFlight.add(k);
            mine.add(item);
            open++;
            const bytes = size(item);
            openBytes += bytes;
            this.#open++;
            this.stats.offered++;
            session.offer(item).then(
              (outcome) => {
                if (this.#closing) {
                  open--;
                  openBytes -= bytes;
                  return void this.#open--; // stopped: it stays queued in the source
                }
                mine.delete(item);
                // An item keeps its place in the window until its settle is
                // written. What the next hop took but the source has not yet
                // recorded is sent again after a crash; this keeps that to at
                // most a window, however slow the writes (mail: RFC 5321 §6.1).
                const settled = () => {
                  open--;
                  openBytes -= bytes;
                  void fill();
                };
                const s = this.#settle(item, outcome);
                if (s) void s.then(settled);
                else settled();
              },
              (err) => {
                open--;
                openBytes -= bytes;
                this.#offerEnded();
                finish(err instanceof Error ? err : new Error(String(err)));
              },
            );
          }
        } catch (err) {
          finish(err as Error);
        } finally {
          filling = false;
        }
        if (this.#stopped && open === 0) finish();
      };
      void fill();
    });
  }
}
