// Checks a login (NNTP AUTHINFO, SMTP AUTH) against the users in the
// database, and slows down guessing: each failure from an address is answered
// only after a delay that doubles with every failure from that address, up to
// a cap, and halves for every minute without one. Attempts from one address
// are checked one after another, so parallel connections from it cannot guess
// faster than one attempt a delay; other addresses and other sessions never
// wait for it (the delay is a timer, not a blocked thread).
import type { Logger } from "pino";
import { isIPv6 } from "node:net";
import type { Reader } from "../storage/sqlite.js";
import { dummyHash, userHash, verifyPassword, USER_NAME } from "../storage/users.js";
import type { LogOnce } from "./log-once.js";

export interface LoginDelays {
  /** Seconds before the answer to the first failure from an address. */
  first: number;
  /** Longest delay, in seconds. */
  max: number;
}

/** A delay halves after this long without a failure from its address. */
const HALF_LIFE_MS = 60_000;
/** Addresses remembered at most; the quietest are forgotten first. */
const MAX_ADDRESSES = 50_000;

interface Penalty {
  /** The delay after the last failure, in ms. */
  delay: number;
  /** When that failure was (ms since the epoch). */
  at: number;
}

export class Logins {
  #penalties = new Map<string, Penalty>();
  /** The attempt running or last queued per address (attempts from one address run in turn). */
  #chains = new Map<string, Promise<unknown>>();
  /** scrypt runs on libuv's pool, which SQLite shares (two threads): one check at a time leaves it a thread. */
  #hashing: Promise<unknown> = Promise.resolve();
  readonly counts = { ok: 0, failed: 0 };

  constructor(
    private readonly db: Reader,
    /** Read at each failure, so a reload applies to the next one. */
    private readonly delays: () => LoginDelays,
    private readonly log: Logger,
    private readonly logOnce?: LogOnce,
  ) {
    // made now, so that the first unknown name costs no more than any other
    void dummyHash();
  }

  /** Whether `password` is `user`'s; a false comes only after the address's delay. */
  check(client: string, user: string, password: string, protocol: "nntp" | "smtp" | "web"): Promise<boolean> {
    const key = addressKey(client);
    const prev = this.#chains.get(key) ?? Promise.resolve();
    const run = prev.then(() => this.#attempt(key, client, user, password, protocol));
    const tail = run.catch(() => false);
    this.#chains.set(key, tail);
    void tail.then(() => {
      if (this.#chains.get(key) === tail) this.#chains.delete(key);
    });
    return run;
  }

  /** The delay the next failure from this client would wait, in ms (for status and tests). */
  pendingDelay(client: string, now = Date.now()): number {
    return this.#nextDelay(addressKey(client), now, false);
  }

  async #attempt(key: string, client: string, user: string, password: string, protocol: string): Promise<boolean> {
    const ok = await this.#serially(() => this.#verify(user, password));
    if (ok) {
      this.counts.ok++;
      this.log.info({ client, user, protocol }, "login");
      return true;
    }
    this.counts.failed++;
    const delay = this.#nextDelay(key, Date.now(), true);
    const shown = USER_NAME.test(user) ? user : "(not a user name)";
    if (this.logOnce) this.logOnce.event("info", "login failed", key, "login failed", { client, user: shown, protocol, delayMs: delay });
    else this.log.info({ client, user: shown, protocol, delayMs: delay }, "login failed");
    await new Promise((r) => setTimeout(r, delay));
    return false;
  }

  async #verify(user: string, password: string): Promise<boolean> {
    const stored = USER_NAME.test(user) ? await userHash(this.db, user) : undefined;
    // an unknown name is checked against a hash too, so it answers no faster than a known one
    const ok = await verifyPassword(password, stored ?? (await dummyHash()));
    return ok && stored !== undefined;
  }

  #serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#hashing.then(fn);
    this.#hashing = run.catch(() => undefined);
    return run;
  }

  /** The delay for a failure now; with record, remembers it. */
  #nextDelay(key: string, now: number, record: boolean): number {
    const { first, max } = this.delays();
    const firstMs = first * 1000, maxMs = Math.max(first, max) * 1000;
    const p = this.#penalties.get(key);
    // the last delay, halved for each whole minute without a failure since
    const decayed = p ? p.delay / 2 ** Math.floor((now - p.at) / HALF_LIFE_MS) : 0;
    const delay = decayed < firstMs ? firstMs : Math.min(maxMs, decayed * 2);
    if (record && firstMs > 0) {
      this.#penalties.delete(key); // re-inserted last: the map stays in order of last failure
      this.#penalties.set(key, { delay, at: now });
      if (this.#penalties.size > MAX_ADDRESSES) this.#penalties.delete(this.#penalties.keys().next().value!);
    }
    return delay;
  }
}

/**
 * What the delay is kept by: an IPv4 address, or an IPv6 /64 (one site gets
 * a whole /64, so counting single IPv6 addresses would count nothing).
 */
export function addressKey(client: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(client);
  if (v4) return v4[1];
  if (!isIPv6(client)) return client;
  const [head, tail] = client.split("::");
  const left = head ? head.split(":") : [];
  const right = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, "")).join(":") + "::/64";
}
