// Mail delivery, Postfix's qmgr and smtp(8) in small: one outbound queue per
// next hop (relay/outbound/queue.ts) whose work is the hop's due recipients in
// the mail queue, and whose transport is SMTP (relay/outbound/smtp-transport.ts:
// nodemailer's pooled transport, connections reused between messages, the
// envelope handed on as received). The retry schedule is kept in the database:
// 4xx or no answer retry (backoff with jitter, up to a lifetime), 5xx failed,
// with a DSN (RFC 3464) to the sender unless the sender is <>.
import { WorkerSender, type Sender } from "./sender.js";
import type { Logger } from "pino";
import type { DueMail, Fresh, MailQueue, NewMail, Settle } from "../../storage/mail-queue.js";
import { buildDsn, type FailedRecipient } from "../../protocol/mail/dsn.js";
import { headerText, messageIdOf } from "../../protocol/mail/fields.js";
import { hopFor } from "./gateway.js";
import { backoffMs } from "../outbound/dispositions.js";
import { OutboundQueue, type WorkSource } from "../outbound/queue.js";
import { SmtpTransport, type MailOutcome, type RcptDisposition } from "../outbound/smtp-transport.js";
import type { RoutePattern } from "./policy.js";

export interface OutboundOptions {
  hostname: string;
  /** DNS servers for mx hops ([] = the system's). */
  dnsServers?: string[];
  /** Port of the hosts an mx hop finds (25). */
  mxPort?: number;
  retryFirst: number; // seconds
  retryMax: number;
  maxLifetime: number;
  connectionsPerHop: number;
  routes: (RoutePattern & { nextHop: string })[];
}

export interface HopStats {
  sent: number;
  deferred: number;
  failed: number;
  lastError: string | null;
  lastErrorAt: number | null;
  downUntil: number | null;
}

export class MailOutbound {
  #hops = new Map<string, OutboundQueue<DueMail, MailOutcome>>();
  #stopped = false;
  readonly stats = new Map<string, HopStats>();
  readonly #sender: Sender;

  constructor(
    private readonly queue: MailQueue,
    private readonly opts: OutboundOptions,
    private readonly log: Logger,
  ) {
    this.#sender = new WorkerSender({ hostname: opts.hostname, connectionsPerHop: opts.connectionsPerHop });
  }

  /** New mail was committed: try it at once (a hop that has read all that was due takes it as it is). */
  queued(fresh: Fresh[]): void {
    for (const f of fresh) this.#hop(f.hop)?.announce(f.mail, f.mail.id);
  }

  /** Looks for recipients that are due (the node-cron sweep). */
  async sweep(): Promise<void> {
    if (this.#stopped) return;
    const now = Date.now();
    // due = 0 is `tidings mailq retry`: try now even if the hop was found down
    for (const { hop, due } of await this.queue.hops()) {
      if (due === 0) this.#hop(hop)?.kick();
      else if (due <= now) this.#hop(hop)?.wake();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#hops.values()].map((h) => h.stop()));
    await this.#sender.close();
  }

  #hop(name: string): OutboundQueue<DueMail, MailOutcome> | undefined {
    if (this.#stopped) return undefined;
    let h = this.#hops.get(name);
    if (!h) {
      const log = this.log.child({ hop: name });
      const source = new HopSource(name, this.queue, this.opts, log);
      const window = this.opts.connectionsPerHop * 4;
      const q = new OutboundQueue(name, source, new SmtpTransport(name, this.#sender, { dnsServers: this.opts.dnsServers, mxPort: this.opts.mxPort, window }), {
        connections: 1, // one session; nodemailer's pool holds the hop's connections
        reconnect: { min: this.opts.retryFirst, max: this.opts.retryMax, jitter: 0.25 },
        maxAge: { ms: this.opts.maxLifetime * 1000, when: "after-attempt" },
        retriesInSource: true,
        // a next hop that stalls must not hold a shutdown: what it had not answered stays queued
        stopGraceMs: 3000,
        failureMessage: "next hop unreachable; mail deferred",
      }, log);
      const st = source.stats;
      this.stats.set(name, {
        get sent() { return st.sent; },
        get deferred() { return st.deferred; },
        get failed() { return st.failed; },
        get lastError() { return st.lastError; },
        get lastErrorAt() { return st.lastErrorAt; },
        // Postfix's dead destination: until then its mail is deferred without a try
        get downUntil() { return q.stats.retryAt; },
      });
      h = q;
      this.#hops.set(name, h);
      h.start();
    }
    return h;
  }
}

/** One hop's due recipients as the queue's work, a message with its recipients for the hop at a time. */
class HopSource implements WorkSource<DueMail, MailOutcome> {
  readonly stats = { sent: 0, deferred: 0, failed: 0, lastError: null as string | null, lastErrorAt: null as number | null };

  constructor(
    readonly hop: string,
    private readonly queue: MailQueue,
    private readonly opts: OutboundOptions,
    private readonly log: Logger,
  ) {}

  key(m: DueMail): number {
    return m.id;
  }

  arrived(m: DueMail): number {
    return m.received;
  }

  /** A message's bytes, which it holds while it waits in the queue. */
  size(m: DueMail): number {
    return m.data.length;
  }

  /**
   * Mail just committed, taken without reading it back. The queue offers it
   * only when it had read everything due (OutboundQueue.announce), so nothing
   * due is passed over. It saves reading each new message back (its ids, then
   * its rows and bytes).
   */
  take(): boolean {
    return true;
  }

  /** Due now; the queue's own items are read past (they are due until settled). */
  async read(held: number, holds?: (key: number) => boolean): Promise<{ items: DueMail[]; full: boolean; top: number }> {
    const limit = held + this.opts.connectionsPerHop * 4;
    const now = Date.now();
    // the ids first, then only the messages the queue does not hold already, whole: re-reading the
    // bytes of every message in flight at each read cost a quarter of the node's CPU per message
    const ids = await this.queue.dueIds(this.hop, now, limit);
    const items = await this.queue.dueMail(this.hop, now, holds ? ids.filter((id) => !holds(id)) : ids);
    // every read sees every commit made before it was asked (storage/sqlite.ts, ReadPool)
    return { items, full: ids.length >= limit, top: Infinity };
  }

  /**
   * Each message is settled as soon as its own delivery is over, not with
   * the rest: a message the hop has taken but that is still queued here is
   * sent again after a crash, so that window is kept to the one commit (the
   * group commit joins these settles). Returns when the first retry is due.
   */
  async settle(m: DueMail, o: MailOutcome, expired: boolean): Promise<number | void> {
    const settle: Settle[] = [];
    const bounces: NewMail[] = [];
    const next = this.#settle(m, o.rcpts, expired, settle, bounces);
    await this.queue.settle(settle, bounces);
    return next;
  }

  /** The hop is down: deferred at once with the reason, each as after a try (attempts, next try, lifetime). */
  async suspend(items: DueMail[], reason: string): Promise<void> {
    const settle: Settle[] = [];
    const bounces: NewMail[] = [];
    const now = Date.now();
    for (const m of items) {
      const expired = now - m.received > this.opts.maxLifetime * 1000;
      this.#settle(m, m.rcpts.map(() => ({ kind: "retry", error: reason, suspended: true })), expired, settle, bounces);
    }
    await this.queue.settle(settle, bounces);
  }

  #settle(m: DueMail, results: RcptDisposition[], expired: boolean, settle: Settle[], bounces: NewMail[]): number | undefined {
    const now = Date.now();
    const failed: FailedRecipient[] = [];
    let next: number | undefined;
    m.rcpts.forEach((r, i) => {
      const d = results[i];
      if (d.kind === "sent") {
        this.stats.sent++;
        settle.push({ mail: m.id, rcpt: r.rcpt, outcome: "sent" });
        return;
      }
      if (!(d.kind === "retry" && d.suspended)) {
        this.stats.lastError = d.error;
        this.stats.lastErrorAt = now;
      }
      if (d.kind === "retry" && !expired) {
        this.stats.deferred++;
        // exponential backoff from retry_first to retry_max, with ±25% jitter so retries do not come in waves
        const nextTry = now + backoffMs(r.attempts, this.opts.retryFirst, this.opts.retryMax);
        next = Math.min(next ?? Infinity, nextTry);
        settle.push({ mail: m.id, rcpt: r.rcpt, outcome: "retry", nextTry, error: d.error });
        return;
      }
      this.stats.failed++;
      settle.push({ mail: m.id, rcpt: r.rcpt, outcome: "failed", error: d.error });
      failed.push(
        d.kind === "failed"
          ? { recipient: r.rcpt, action: "failed", status: d.status, diagnostic: d.error, remoteMta: d.remote, lastAttempt: now }
          // Given up after mail.max_lifetime. RFC 3463 X.4.7 (delivery time expired) asks for the
          // code of the actual problem where there is one: the last reply's, as Postfix does
          : {
              recipient: r.rcpt, action: "failed", lastAttempt: now,
              status: /\b4\.\d{1,3}\.\d{1,3}\b/.exec(d.error)?.[0] ?? "4.4.7",
              diagnostic: d.error.startsWith("smtp;") ? d.error : `X-Tidings; gave up after ${Math.round((now - m.received) / 1000)} s: ${d.error}`,
            },
      );
    });
    if (failed.length > 0) this.#bounce(m, failed, now, bounces);
    return next;
  }

  #bounce(m: DueMail, failed: FailedRecipient[], now: number, bounces: NewMail[]): void {
    this.log.info({ mail: m.id, msgid: m.msgid, rcpts: failed.map((f) => f.recipient), error: failed[0].diagnostic }, "mail undeliverable");
    // RFC 3464 §2 / RFC 5321 §4.5.5: never a DSN for mail from the null sender
    if (m.sender === "") return;
    const hop = hopFor(m.sender, this.opts.routes);
    if (!hop) {
      this.log.warn({ mail: m.id, sender: m.sender }, "no route to the sender's domain: bounce dropped");
      return;
    }
    const dsn = buildDsn({ reportingMta: this.opts.hostname, envelopeSender: m.sender, originalMessage: m.data, arrivalDate: m.received, recipients: failed, now, smtpUtf8: m.smtputf8 });
    bounces.push({
      sender: "", rcpts: [{ rcpt: dsn.to, hop }], data: dsn.data, client: "dsn", origin: "dsn",
      msgid: messageIdOf(headerText(dsn.data)), eightBit: dsn.eightBit, smtputf8: dsn.smtpUtf8, received: now,
    });
  }
}
