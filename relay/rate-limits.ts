// Rates one client may not exceed: commands a second per session, and POSTs an
// hour per user (or per address before AUTHINFO).
//
// Commands: a token bucket per session, refilled at `perSecond` and holding ten
// seconds' worth, so a newsreader's pipelined burst goes through at once. A
// session past it is slowed down, not refused: the node stops reading from it
// until the bucket is back at zero, so the flood costs the sender time and the
// node nothing (its bytes wait in TCP buffers). Closing would also hurt the
// honest pipelining client that merely sent a big batch. Only a session whose
// debt grows past another full bucket — input arriving faster than the pauses
// can hold it back — gets 400 and is closed (RFC 3977 §3.2.1).
//
// Sessions that may feed us (transit: IHAVE, MODE STREAM, CHECK, TAKETHIS) are
// not counted for either limit: a streaming peer sends thousands of CHECK and
// TAKETHIS a second, its pace is already bounded by nntp.max_in_flight and the
// writer's queue (431/436), and since it may send any number of articles by
// transit, limiting its POSTs or its commands would protect nothing.

/** Seconds' worth of commands a session may send at once before it is slowed. */
export const BURST_SECONDS = 10;

export type Charge = { slow: false } | { slow: true; pauseMs: number } | { flood: true };

export class CommandRate {
  #tokens: number;
  #at: number;
  #seen = 0;

  constructor(
    private perSecond: () => number,
    now = performance.now(),
  ) {
    this.#tokens = perSecond() * BURST_SECONDS;
    this.#at = now;
  }

  /**
   * Charges the commands framed since the last call (`total` is the running
   * count). Returns whether to slow the session down (pause reading that long)
   * or close it as a flood. `exempt` sessions are not charged.
   */
  charge(total: number, exempt: boolean, now = performance.now()): Charge | { slow: false } {
    const n = total - this.#seen;
    this.#seen = total;
    const rate = this.perSecond();
    if (exempt || rate <= 0 || n <= 0) return { slow: false };
    const burst = rate * BURST_SECONDS;
    this.#tokens = Math.min(burst, this.#tokens + ((now - this.#at) / 1000) * rate);
    this.#at = now;
    this.#tokens -= n;
    if (this.#tokens >= 0) return { slow: false };
    if (this.#tokens < -burst) return { flood: true };
    return { slow: true, pauseMs: Math.ceil((-this.#tokens / rate) * 1000) };
  }
}

const HOUR = 3600_000;

/** POSTs per key (a user, or an address) in any hour: a sliding window of the times of the last posts. */
export class PostQuota {
  #times = new Map<string, number[]>();
  #swept = 0;

  constructor(public perHour: number) {}

  /**
   * Counts one POST for `key` unless the hour's quota is used. Every article a
   * client gets to send counts, accepted or not: a flood of refused posts
   * costs the node as much as one of accepted ones.
   */
  take(key: string, now = Date.now()): { ok: true } | { ok: false; retryIn: number } {
    if (this.perHour <= 0) return { ok: true };
    this.#sweep(now);
    let t = this.#times.get(key);
    if (!t) this.#times.set(key, (t = []));
    while (t.length > 0 && t[0] <= now - HOUR) t.shift();
    if (t.length >= this.perHour) {
      // the limit may have been lowered at run time: the oldest one that must age out decides
      const oldest = t[t.length - this.perHour];
      return { ok: false, retryIn: Math.max(1, Math.ceil((oldest + HOUR - now) / 1000)) };
    }
    t.push(now);
    if (t.length > this.perHour) t.splice(0, t.length - this.perHour);
    return { ok: true };
  }

  /** Keys with no post in the last hour are forgotten, at most once a minute. */
  #sweep(now: number): void {
    if (now - this.#swept < 60_000) return;
    this.#swept = now;
    for (const [k, t] of this.#times) if (t.length === 0 || t[t.length - 1] <= now - HOUR) this.#times.delete(k);
  }
}
