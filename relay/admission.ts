// Who gets an NNTP connection when the node is busy, and whom to drop to make
// room. A few addresses must not be able to fill the global cap and lock
// everyone else out (issue 9), so the cap is shared out by address:
//
// - An address may hold at most `maxPerClient` connections.
// - An address that already has c connections gets another only while
//   2c < free − reserve, where `free` is the number of connections not
//   in use: it may take at most about a third of what is left above the
//   reserve, so its share shrinks as the node fills. Repeated by any number of
//   greedy addresses, this leaves the last `reserve` slots free. The reserve
//   is `reservedForNew`, but at most a quarter of the cap.
// - An address with no connection yet may always take a free slot, the
//   reserved ones included: the reserve is kept for newcomers.
// - When no slot is free, a newcomer takes the place of the connection that
//   has sent nothing for the longest, if that is at least `evictIdleAfter`
//   seconds (180 by default: the least RFC 3977 §3.1 allows an inactivity
//   timeout); that one is told 400 and closed (§3.2.1: 400 when the server
//   has to end the connection). Connections in the middle of something
//   (replies still going out, or a command or article half received) and
//   peers that have fed us are the last to be chosen.
//
// IPv6 addresses are counted by their /64: one host usually holds a whole
// /64, and would otherwise have more addresses than the node has slots.
import { isIPv6 } from "node:net";

export interface AdmissionLimits {
  maxConnections: number;
  maxPerClient: number;
  /** Connections only addresses with none yet may take. */
  reservedForNew: number;
  /** Seconds without input after which a connection may be dropped for a newcomer when the node is full. */
  evictIdleAfter: number;
}

/** What admission needs to know of an open connection (relay/nntp-server.ts `Connection`). */
export interface Occupant {
  client: string;
  /** When the client last sent a byte (ms since the epoch). */
  lastInput: number;
}

/** How far along a connection is, to choose whom to drop last. */
export interface Traits {
  /** Replies are being written to it, or it is in the middle of sending a command or an article. */
  busy: boolean;
  /** It has fed us articles as a peer (IHAVE, TAKETHIS). */
  peer: boolean;
}

export type Cause = "per-address" | "share" | "full";

export type Verdict<T> = { admit: true; evict?: T; idleSeconds?: number } | { admit: false; cause: Cause; text: string };

/** The key an address is counted under: IPv4 as it is, IPv6 by its /64. */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!isIPv6(address)) return address;
  return `${expand6(address).slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, as hex without leading zeros. */
function expand6(a: string): string[] {
  const bare = a.replace(/%.*$/, "");
  const [head, tail] = bare.split("::");
  const part = (s: string | undefined) => (s ? s.split(":") : []);
  let h = part(head);
  let t = part(tail);
  // an embedded IPv4 tail (::1.2.3.4) counts as two groups
  const v4 = (xs: string[]) => {
    const last = xs[xs.length - 1];
    if (!last?.includes(".")) return xs;
    const o = last.split(".").map(Number);
    return [...xs.slice(0, -1), ((o[0] << 8) | o[1]).toString(16), ((o[2] << 8) | o[3]).toString(16)];
  };
  if (tail === undefined) h = v4(h);
  else t = v4(t);
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill("0");
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16).toString(16));
}

export class Admission<T extends Occupant> {
  #open = 0;
  #perKey = new Map<string, number>();
  /** Connections counted and not yet let go (a dropped one leaves at once, before its socket closes). */
  #counted = new WeakSet<T>();

  constructor(
    public limits: AdmissionLimits,
    private readonly traits: (o: T) => Traits,
  ) {}

  /** The reserve, never more than a quarter of the cap: a small cap still lets an address have a few. */
  get reserve(): number {
    return Math.min(this.limits.reservedForNew, Math.floor(this.limits.maxConnections / 4));
  }

  get open(): number {
    return this.#open;
  }

  /** Connections counted for an address (its /64 for IPv6). */
  countFor(address: string): number {
    return this.#perKey.get(addressKey(address)) ?? 0;
  }

  /**
   * Decides on a new connection from `address`, given the open ones. When it
   * says `evict`, the caller drops that connection (and calls leave() for it)
   * before it calls enter() for the new one.
   */
  decide(address: string, open: Iterable<T>, now = Date.now()): Verdict<T> {
    const l = this.limits;
    const c = this.countFor(address);
    if (c >= l.maxPerClient) {
      return { admit: false, cause: "per-address", text: `too many connections from ${address} (at most ${l.maxPerClient})` };
    }
    const free = l.maxConnections - this.#open;
    if (c > 0 && 2 * c >= free - this.reserve) {
      return {
        admit: false,
        cause: "share",
        text: `too many connections from ${address} while the node is busy (${c} open, ${Math.max(free, 0)} free)`,
      };
    }
    if (free > 0) return { admit: true };
    const victim = this.#victim(open, now);
    if (victim) return { admit: true, evict: victim, idleSeconds: Math.floor((now - victim.lastInput) / 1000) };
    return { admit: false, cause: "full", text: `too many connections (${l.maxConnections}), none idle for ${l.evictIdleAfter} s` };
  }

  /** The connection to drop for a newcomer: idle long enough, and then the one idle longest, sparing those being served and peers. */
  #victim(open: Iterable<T>, now: number): T | undefined {
    const minIdle = this.limits.evictIdleAfter * 1000;
    let best: T | undefined;
    let bestRank = Infinity;
    for (const o of open) {
      if (!this.#counted.has(o)) continue;
      const idle = now - o.lastInput;
      if (idle < minIdle) continue;
      // lower is dropped first: plain idle readers, then ones whose replies are still going out, then peers
      const t = this.traits(o);
      const rank = (t.peer ? 2 : t.busy ? 1 : 0) * 1e15 - idle;
      if (rank < bestRank) {
        bestRank = rank;
        best = o;
      }
    }
    return best;
  }

  enter(conn: T): void {
    if (this.#counted.has(conn)) return;
    this.#counted.add(conn);
    this.#open++;
    const k = addressKey(conn.client);
    this.#perKey.set(k, (this.#perKey.get(k) ?? 0) + 1);
  }

  /** Lets a connection go; calling it again (a dropped connection's socket closing later) does nothing. */
  leave(conn: T): void {
    if (!this.#counted.has(conn)) return;
    this.#counted.delete(conn);
    this.#open--;
    const k = addressKey(conn.client);
    const n = (this.#perKey.get(k) ?? 1) - 1;
    if (n <= 0) this.#perKey.delete(k);
    else this.#perKey.set(k, n);
  }
}
