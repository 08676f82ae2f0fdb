// The NNTP listener's limits that protect clients from one another (issue 9):
// who gets a connection (admission.ts), how long a command line or an article
// may take to arrive (deadlines.ts), and how fast one session may send
// commands and one user post (rate-limits.ts). Every refusal is logged once
// per cause and address with counts (log-once.ts), never once per event: a
// flood of refused connections must not become a flood of log lines.
//
// NntpServer calls four hooks: admit() before it builds a session, opened()
// once the Connection exists, input() after each chunk went to the session,
// closed() when the socket closes. set() replaces the limits at run time
// (SIGHUP): new connections, and the deadlines and rates of open ones, use the
// new values; each open session keeps the line and article bounds it began with.
import type { Logger } from "pino";
import type { Config } from "../config/schema.js";
import { Admission, type AdmissionLimits } from "./admission.js";
import { InputDeadline, ReadGate, type Overdue } from "./deadlines.js";
import { CommandRate, PostQuota } from "./rate-limits.js";
import { LogOnce } from "./log-once.js";
import type { Connection, ServerLimits } from "./nntp-server.js";

export interface GuardLimits extends AdmissionLimits {
  /** Seconds to finish a command line once its first byte came; an article's grace. */
  commandSeconds: number;
  /** Octets a second an article must arrive at, on average, after its grace. */
  minArticleRate: number;
  /** Commands a second per session (not counting transit sessions); 0: no limit. */
  commandsPerSecond: number;
  /** POSTs per user, or per address without a user, in any hour; 0: no limit. */
  postsPerHour: number;
}

/** The NNTP listener's limits as the configuration states them. */
export function nntpLimits(c: Config): ServerLimits {
  const n = c.nntp;
  return {
    maxLine: n.max_line,
    maxArticle: n.max_article_bytes,
    maxInFlight: n.max_in_flight,
    maxConnections: n.max_connections,
    maxPerClient: n.max_connections_per_client,
    idleSeconds: n.idle_timeout,
    reservedForNew: n.reserved_connections,
    evictIdleAfter: n.evict_idle_after,
    commandSeconds: n.command_timeout,
    minArticleRate: n.min_article_rate,
    commandsPerSecond: n.max_commands_per_second,
    postsPerHour: n.max_posts_per_hour,
  };
}

interface Guarded {
  gate: ReadGate;
  deadline: InputDeadline;
  rate: CommandRate;
  slowTimer?: NodeJS.Timeout;
}

export class ConnectionGuard {
  readonly admission: Admission<Connection>;
  readonly logOnce: LogOnce;
  readonly posts: PostQuota;
  #state = new WeakMap<Connection, Guarded>();
  /** Figures for status and tests: events since start, by cause. */
  readonly counts = { refused: 0, evicted: 0, timedOut: 0, slowed: 0, flooded: 0, postsRefused: 0 };

  constructor(
    private limits: ServerLimits,
    log: Logger,
  ) {
    this.admission = new Admission<Connection>(limits, (c) => ({
      busy: c.socket.writableLength > 0 || c.session.framer.receiving !== undefined,
      peer: c.session.perms.transit && (c.session.streaming || c.session.counts.articles > 0),
    }));
    this.logOnce = new LogOnce(log);
    this.posts = new PostQuota(limits.postsPerHour);
  }

  set(limits: ServerLimits): void {
    this.limits = limits;
    this.admission.limits = limits;
    this.posts.perHour = limits.postsPerHour;
  }

  /**
   * Decides on a new connection from `client`. Returns the reason for a
   * refusal (the caller answers 400 with it), or undefined to admit; a
   * connection dropped to make room has been told 400 already.
   */
  admit(client: string, open: Iterable<Connection>): string | undefined {
    const v = this.admission.decide(client, open);
    if (!v.admit) {
      this.counts.refused++;
      this.logOnce.event("warn", `refused: ${v.cause}`, client, "connection refused", { why: v.text });
      return v.text;
    }
    if (v.evict) {
      const victim = v.evict;
      this.counts.evicted++;
      this.admission.leave(victim);
      this.logOnce.event("warn", "evicted idle", victim.client, "idle connection dropped to make room for a new client", {
        idle: v.idleSeconds,
        for: client,
      });
      victim.cutOff(`400 Connection dropped after ${v.idleSeconds} s idle to make room for another client; try again later\r\n`);
    }
    return undefined;
  }

  opened(conn: Connection, gate: ReadGate): void {
    this.admission.enter(conn);
    const deadline = new InputDeadline(
      () => conn.session.framer,
      gate,
      () => ({ commandSeconds: this.limits.commandSeconds, minArticleRate: this.limits.minArticleRate, maxArticle: this.limits.maxArticle }),
      (o) => this.#overdue(conn, o),
    );
    this.#state.set(conn, { gate, deadline, rate: new CommandRate(() => this.limits.commandsPerSecond) });
  }

  /** After a chunk of input went to the session: deadlines and the command rate. */
  input(conn: Connection): void {
    const g = this.#state.get(conn);
    if (!g || conn.session.closing) return;
    g.deadline.check();
    // command lines, too long ones included; articles are not commands
    const commands = conn.session.framer.framed - conn.session.counts.articles;
    const c = g.rate.charge(commands, conn.session.perms.transit);
    if ("flood" in c) {
      this.counts.flooded++;
      const limit = this.limits.commandsPerSecond;
      this.logOnce.event("warn", "command flood", conn.client, "session closed: commands far over the rate", { limit });
      conn.cutOff(`400 Too many commands (more than ${limit} a second); closing\r\n`);
      return;
    }
    if (c.slow && !g.slowTimer) {
      this.counts.slowed++;
      this.logOnce.event("info", "command rate", conn.client, "session slowed down: commands over the rate", { limit: this.limits.commandsPerSecond });
      g.gate.hold("rate");
      g.slowTimer = setTimeout(() => {
        g.slowTimer = undefined;
        g.gate.release("rate");
      }, c.pauseMs);
    }
  }

  closed(conn: Connection): void {
    this.admission.leave(conn);
    const g = this.#state.get(conn);
    if (!g) return;
    g.deadline.stop();
    clearTimeout(g.slowTimer);
    this.#state.delete(conn);
  }

  /**
   * Counts a POST against the hourly quota of its user, or of its address
   * before AUTHINFO. Returns the text of a 441 when the quota is used.
   * Transit sessions are not counted (see rate-limits.ts).
   */
  takePost(who: { user?: string; client: string; transit: boolean }): string | undefined {
    if (who.transit) return undefined;
    const key = who.user !== undefined ? `user ${who.user}` : `address ${who.client}`;
    const r = this.posts.take(key);
    if (r.ok) return undefined;
    this.counts.postsRefused++;
    const whom = who.user !== undefined ? `user ${who.user}` : who.client;
    this.logOnce.event("info", "post quota", whom, "post refused: hourly quota used", { limit: this.posts.perHour });
    const mins = Math.ceil(r.retryIn / 60);
    return `Posting limit reached (${this.posts.perHour} an hour for ${whom}); try again in ${mins} minute${mins === 1 ? "" : "s"}`;
  }

  stop(): void {
    this.logOnce.stop();
  }

  #overdue(conn: Connection, o: Overdue): void {
    this.counts.timedOut++;
    const what = o.what === "line" ? "command line" : "article";
    this.logOnce.event("warn", `${what} timeout`, conn.client, `connection closed: ${what} not finished in time`, { seconds: o.seconds, octets: o.octets });
    const text =
      o.what === "line"
        ? `400 Command line not finished within ${this.limits.commandSeconds} seconds; closing\r\n`
        : `400 Article not finished in time (${o.octets} octets in ${o.seconds} seconds, under ${this.limits.minArticleRate} a second); closing\r\n`;
    conn.cutOff(text);
  }
}
