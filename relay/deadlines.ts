// Time limits on what a client is in the middle of sending. The idle timeout
// (nntp.idle_timeout) is reset by any byte, so a client trickling one byte
// every few minutes would hold its connection for ever; these limits count
// from the first byte of a command line or an article to its end instead:
//
// - a command line must be complete within `commandSeconds`;
// - an article gets `commandSeconds` plus one second for every
//   `minArticleRate` octets that have arrived (counting at most
//   `maxArticle`), so an honest slow link is never cut off while an article
//   sent at one byte a second is, after about `commandSeconds`.
//
// Time during which the node itself is not reading (back-pressure, or a
// session slowed for its command rate) does not count: the client cannot
// finish what we do not read.
import type net from "node:net";
import type { Framer } from "../protocol/nntp/framer.js";

export interface DeadlineLimits {
  /** Seconds to finish a command line; also an article's grace. */
  commandSeconds: number;
  /** Octets a second an article must arrive at, on average, after the grace. */
  minArticleRate: number;
  maxArticle: number;
}

/**
 * Pauses reading from a socket while any reason holds (the session's
 * back-pressure, a rate limit), and counts the time spent paused. Always acts
 * on the connection's current socket: STARTTLS replaces it.
 */
export class ReadGate {
  #reasons = new Set<string>();
  #pausedAt = 0;
  #pausedMs = 0;

  constructor(private readonly socket: () => net.Socket) {}

  hold(reason: string): void {
    if (this.#reasons.has(reason)) return;
    if (this.#reasons.size === 0) {
      this.#pausedAt = performance.now();
      this.socket().pause();
    }
    this.#reasons.add(reason);
  }

  release(reason: string): void {
    if (!this.#reasons.delete(reason)) return;
    if (this.#reasons.size === 0) {
      this.#pausedMs += performance.now() - this.#pausedAt;
      this.socket().resume();
    }
  }

  get paused(): boolean {
    return this.#reasons.size > 0;
  }

  /** Milliseconds spent paused so far (up to `now`, a performance.now() time). */
  pausedMs(now = performance.now()): number {
    return this.#pausedMs + (this.#reasons.size > 0 ? now - this.#pausedAt : 0);
  }
}

export type Overdue = { what: "line" | "block"; seconds: number; octets: number };

/**
 * The deadline of the command line or article a connection is receiving.
 * check() runs after each chunk of input; one timer is armed while something
 * is being received, and when it fires it looks again and re-arms if the
 * deadline moved (a new unit began, or more of an article came).
 */
export class InputDeadline {
  #timer: NodeJS.Timeout | undefined;
  #active = false;
  #framed = -1;
  #start = 0;
  #pausedAtStart = 0;
  #stopped = false;

  constructor(
    private readonly framer: () => Framer,
    private readonly gate: ReadGate,
    private readonly limits: () => DeadlineLimits,
    private readonly onOverdue: (o: Overdue) => void,
  ) {}

  /** After input was framed: notes when the unit being received began, and arms the timer. */
  check(now = performance.now()): void {
    if (this.#stopped) return;
    const f = this.framer();
    if (!f.receiving) {
      this.#active = false;
      return;
    }
    if (!this.#active || f.framed !== this.#framed) this.#begin(f, now);
    if (!this.#timer) this.#arm(this.#allowanceMs(f) - this.#elapsed(now));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #begin(f: Framer, now: number): void {
    this.#active = true;
    this.#framed = f.framed;
    this.#start = now;
    this.#pausedAtStart = this.gate.pausedMs(now);
  }

  #elapsed(now: number): number {
    return now - this.#start - (this.gate.pausedMs(now) - this.#pausedAtStart);
  }

  #allowanceMs(f: Framer): number {
    const l = this.limits();
    const grace = l.commandSeconds * 1000;
    if (f.receiving !== "block") return grace;
    return grace + (Math.min(f.blockOctets, l.maxArticle) / l.minArticleRate) * 1000;
  }

  #arm(ms: number): void {
    // a little late rather than early: the check on firing decides
    this.#timer = setTimeout(() => this.#fire(), Math.max(ms, 0) + 50);
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#stopped) return;
    const now = performance.now();
    const f = this.framer();
    if (!f.receiving) {
      this.#active = false;
      return;
    }
    // the framer may have moved on without new input (held bytes framed after a 340)
    if (!this.#active || f.framed !== this.#framed) this.#begin(f, now);
    const left = this.#allowanceMs(f) - this.#elapsed(now);
    if (left > 0 || this.gate.paused) {
      this.#arm(Math.max(left, 1000));
      return;
    }
    this.stop();
    this.onOverdue({ what: f.receiving, seconds: Math.round((now - this.#start) / 1000), octets: f.receiving === "block" ? f.blockOctets : 0 });
  }
}
