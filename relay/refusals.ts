// Refusals of articles, logged at info level once per kind and key (a peer or
// a client address) with counts while they go on (log-once.ts): both the node
// that refuses and the node that is refused say why, without one log line an
// article.
import type { Logger } from "pino";
import { LogOnce } from "./log-once.js";

/** Kinds with a line of their own in one minute; past it the rest are counted as "other reasons". */
const KINDS_PER_MINUTE = 32;

/**
 * The kind of a refusal: its reason without Message-IDs and without what
 * follows a colon, so that "439 <a@x> Invalid Date header: Mon" and
 * "439 <b@x> Invalid Date header: Tue" are one kind.
 */
export function refusalKind(reason: string): string {
  const kind = reason
    .replace(/<[^>\s]*>/g, "")
    .split(":")[0]
    .replace(/\s+/g, " ")
    .trim();
  return kind.length > 80 ? kind.slice(0, 80) + "…" : kind;
}

export class RefusalLog {
  #once: LogOnce;
  #kinds = new Set<string>();
  #since = Date.now();

  constructor(log: Logger, private readonly what: string) {
    this.#once = new LogOnce(log);
  }

  /** One refusal for `key`; returns its kind as counted. */
  event(key: string, reason: string, fields: object = {}): string {
    const now = Date.now();
    if (now - this.#since > 60_000) {
      this.#kinds.clear();
      this.#since = now;
    }
    let kind = refusalKind(reason);
    // reasons that name something new each time (a group, an address) must not make a line each
    if (!this.#kinds.has(kind)) {
      if (this.#kinds.size >= KINDS_PER_MINUTE) kind = "other reasons";
      else this.#kinds.add(kind);
    }
    this.#once.event("info", kind, key, `${this.what}: ${kind}`, { ...fields, reason });
    return kind;
  }

  stop(): void {
    this.#once.stop();
  }
}
