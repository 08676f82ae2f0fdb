// Mail delivery, Postfix's qmgr and smtp(8) in small: one queue per next hop
// reading due recipients from the mail queue, a bounded set of connections
// per hop (nodemailer's pooled SMTP transport, reused between messages), the
// envelope handed on as received, and each reply mapped to a disposition:
// 2xx sent, 4xx or no answer retry (backoff with jitter, up to a lifetime),
// 5xx failed, with a DSN (RFC 3464) to the sender unless the sender is <>.
import MimeNode from "nodemailer/lib/mime-node";
import { WorkerSender, type Sender, type Target } from "./sender.js";
import { promises as dns } from "node:dns";
import { isIP } from "node:net";
import type { Logger } from "pino";
import type { DueMail, MailQueue, NewMail, Settle } from "../../storage/mail-queue.js";
import { buildDsn, type FailedRecipient } from "../../protocol/mail/dsn.js";
import { headerText, messageIdOf } from "../../protocol/mail/fields.js";
import { hopFor } from "./gateway.js";
import { backoffMs, smtpDisposition } from "../outbound/dispositions.js";
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

/** A reply or failure for one recipient, as a disposition. */
type Disposition = { kind: "sent" } | { kind: "retry"; error: string; unreachable?: boolean; suspended?: boolean } | { kind: "failed"; error: string; status: string; remote?: string };

export class MailOutbound {
  #hops = new Map<string, Hop>();
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

  /** New mail for these hops was committed: try it at once. */
  queued(hops: Iterable<string>): void {
    for (const h of hops) this.#hop(h).kick();
  }

  /** Looks for recipients that are due (the node-cron sweep). */
  async sweep(): Promise<void> {
    if (this.#stopped) return;
    const now = Date.now();
    // due = 0 is `tidings mailq retry`: try now even if the hop was found down
    for (const { hop, due } of await this.queue.hops()) if (due <= now) this.#hop(hop).kick(due === 0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#hops.values()].map((h) => h.stop()));
    await this.#sender.close();
  }

  #hop(name: string): Hop {
    let h = this.#hops.get(name);
    if (!h) {
      const stats: HopStats = { sent: 0, deferred: 0, failed: 0, lastError: null, lastErrorAt: null, downUntil: null };
      this.stats.set(name, stats);
      h = new Hop(name, this.queue, this.#sender, this.opts, stats, this.log.child({ hop: name }), () => this.#stopped);
      this.#hops.set(name, h);
    }
    return h;
  }
}

class Hop {
  #running = false;
  #again = false;
  /** Where this hop's mail goes now (resolved once, again after the hop stops answering). */
  #where: Target | undefined;
  #dns: InstanceType<typeof dns.Resolver> | undefined;
  /** An mx hop's hosts, in preference order, and the one to try next. */
  #mx: string[] = [];
  #mxNext = 0;
  #idle: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly queue: MailQueue,
    private readonly sender: Sender,
    private readonly opts: OutboundOptions,
    private readonly stats: HopStats,
    private readonly log: Logger,
    private readonly stopped: () => boolean,
  ) {}

  kick(force = false): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (force) this.stats.downUntil = null;
    // while the hop is down, new mail is deferred at once with the reason (Postfix's
    // "delivery temporarily suspended"), so mailq and status say why it waits
    const suspended = this.stats.downUntil !== null && this.stats.downUntil > Date.now();
    this.#running = true;
    // a failed settle (storage error) would otherwise be an unhandled rejection, which ends the process
    this.#idle = this.#run(suspended)
      .catch((err) => this.log.error({ err: String(err) }, "mail delivery stopped; the next sweep tries again"))
      .finally(() => (this.#running = false));
  }

  /**
   * Stops after the deliveries under way, waiting at most a few seconds: a
   * next hop that stalls must not hold a shutdown (what it had not answered
   * stays queued and is sent again after the restart).
   */
  async stop(): Promise<void> {
    const waited = await Promise.race([this.#idle.then(() => true, () => true), new Promise<false>((r) => setTimeout(() => r(false), 3000).unref())]);
    if (!waited) this.log.warn("stopped with a delivery still waiting for the next hop; it stays queued");
  }

  async #run(suspended: boolean): Promise<void> {
    do {
      this.#again = false;
      for (;;) {
        if (this.stopped()) return;
        let due: DueMail[];
        try {
          due = await this.queue.due(this.name, Date.now(), this.opts.connectionsPerHop * 4);
        } catch (err) {
          this.log.warn({ err: String(err) }, "cannot read the mail queue");
          return;
        }
        if (due.length === 0) break;
        let down = suspended;
        // Each message is settled as soon as its own delivery is over, not
        // with the rest of the batch: a message the hop has taken but that is
        // still queued here is sent again after a crash, so that window is
        // kept to the one commit (the group commit joins these settles).
        await Promise.all(
          due.map(async (m) => {
            const results = down ? m.rcpts.map(() => ({ kind: "retry", error: `delivery temporarily suspended: ${this.stats.lastError ?? "hop down"}`, suspended: true }) as Disposition) : await this.#deliver(m);
            if (results.some((r) => r.kind === "retry" && r.unreachable)) down = true;
            const settle: Settle[] = [];
            const bounces: NewMail[] = [];
            this.#settle(m, results, settle, bounces);
            await this.queue.settle(settle, bounces);
          }),
        );
        if (down) {
          if (!suspended) {
            // Postfix's dead destination: the rest waits for the retry time instead of each trying and failing
            this.stats.downUntil = Date.now() + this.opts.retryFirst * 1000;
            this.log.info({ error: this.stats.lastError, retryIn: this.opts.retryFirst }, "next hop unreachable; mail deferred");
          }
          break;
        }
        this.stats.downUntil = null;
      }
    } while (this.#again && !this.stopped());
  }

  #settle(m: DueMail, results: Disposition[], settle: Settle[], bounces: NewMail[]): void {
    const now = Date.now();
    const failed: FailedRecipient[] = [];
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
      const expired = d.kind === "retry" && now - m.received > this.opts.maxLifetime * 1000;
      if (d.kind === "retry" && !expired) {
        this.stats.deferred++;
        // exponential backoff from retry_first to retry_max, with ±25% jitter so retries do not come in waves
        settle.push({ mail: m.id, rcpt: r.rcpt, outcome: "retry", nextTry: now + backoffMs(r.attempts, this.opts.retryFirst, this.opts.retryMax), error: d.error });
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
    if (failed.length === 0) return;
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

  async #deliver(m: DueMail): Promise<Disposition[]> {
    let where: Target;
    try {
      where = await this.#connect();
    } catch (err) {
      const e = `no address for ${this.name}: ${(err as Error).message}`;
      const permanent = (err as { permanent?: string }).permanent;
      if (permanent) return m.rcpts.map(() => ({ kind: "failed", error: `X-Tidings; ${e}`, status: permanent }));
      return m.rcpts.map(() => ({ kind: "retry", error: e, unreachable: true }));
    }
    const to = m.rcpts.map((r) => r.rcpt);
    // nodemailer rewrites envelope addresses (domain lower-cased, U-labels to
    // A-labels, needless quotes dropped) and names refused recipients as it
    // sent them; matched by our own spelling, a refusal of Bob@Example.ORG
    // was taken for a delivery, and the recipient lost without a bounce
    const wire = to.map(wireAddress);
    const r = await this.sender.send(this.name, where, { from: m.sender, to, eightBit: m.eightBit, smtputf8: m.smtputf8 }, m.data);
    const refused = new Map(r.rejected.map((e) => [e.recipient, e]));
    if (r.ok) {
      const accepted = new Set(r.accepted);
      return wire.map((rcpt): Disposition => {
        const e = refused.get(rcpt);
        if (e) return this.#fromReply(e.responseCode, e.response ?? "refused");
        // neither accepted nor refused: not known to be delivered, so tried again (a duplicate at worst, never a loss)
        return accepted.has(rcpt) ? { kind: "sent" } : { kind: "retry", error: `no reply reported for <${rcpt}>` };
      });
    }
    if (refused.size > 0 && r.code === "EENVELOPE") {
      return wire.map((rcpt) => {
        const e = refused.get(rcpt);
        return e ? this.#fromReply(e.responseCode, e.response ?? r.message) : this.#fromReply(r.responseCode, r.response ?? r.message);
      });
    }
    if (r.responseCode === undefined) {
      // no reply at all: the hop is unreachable or went away (RFC 5321 §4.2.1: transient)
      this.#unreachable(where);
      return to.map(() => ({ kind: "retry", error: `${r.code ?? "error"}: ${r.message}`, unreachable: true }));
    }
    return to.map(() => this.#fromReply(r.responseCode, r.response ?? r.message));
  }

  /** RFC 5321 §4.2.1: 4yz is transient, 5yz permanent; no reply at all (a lost connection) is transient. */
  #fromReply(code: number | undefined, text: string): Disposition {
    const line = text.replace(/\s+/g, " ").trim().slice(0, 400);
    switch (smtpDisposition(code)) {
      case "done":
        return { kind: "sent" };
      case "failed":
        return { kind: "failed", error: `smtp; ${line}`, status: /\b5\.\d{1,3}\.\d{1,3}\b/.exec(line)?.[0] ?? "5.0.0", remote: this.#where && `${this.#where.servername ?? this.#where.host}:${this.#where.port}` };
      default:
        return { kind: "retry", error: code ? `smtp; ${line}` : line };
    }
  }

  /** The hop did not answer: the next attempt connects afresh, to the next MX host for an mx hop. */
  #unreachable(failed: Target): void {
    if (this.#where !== failed) return; // another delivery of the batch saw it first
    this.sender.reset(this.name);
    this.#where = undefined;
    this.#mxNext++;
  }

  /**
   * RFC 5321 §5.1: the domain's MX hosts in order of preference; no MX
   * record: the domain itself (the implicit MX). A domain that does not
   * exist is a permanent failure, a lookup that fails is a transient one.
   */
  async #mxHosts(domain: string): Promise<string[]> {
    const r = this.#resolver();
    try {
      const mx = await r.resolveMx(domain);
      if (mx.length > 0) return mx.sort((a, b) => a.priority - b.priority).map((m) => m.exchange);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "ENOTFOUND") throw Object.assign(new Error(`domain ${domain} not found (DNS)`), { permanent: "5.1.2" });
      if (code !== "ENODATA") throw err;
    }
    return [domain];
  }

  /** A host's address through the same resolver, falling back to the system's lookup (/etc/hosts). */
  async #address(host: string): Promise<string> {
    if (isIP(host)) return host;
    const r = this.#resolver();
    for (const f of [() => r.resolve4(host), () => r.resolve6(host)]) {
      const a = await f().catch(() => []);
      if (a.length > 0) return a[0];
    }
    return (await dns.lookup(host)).address;
  }

  #resolver(): InstanceType<typeof dns.Resolver> {
    if (!this.#dns) {
      this.#dns = new dns.Resolver();
      if (this.opts.dnsServers?.length) this.#dns.setServers(this.opts.dnsServers);
    }
    return this.#dns;
  }

  /** Where to send: HOST:PORT, or the next of the domain's MX hosts for mx:DOMAIN. */
  async #connect(): Promise<Target> {
    if (this.#where) return this.#where;
    let where: Target;
    if (this.name.startsWith("mx:")) {
      if (this.#mxNext >= this.#mx.length) {
        this.#mx = await this.#mxHosts(this.name.slice(3));
        this.#mxNext = 0;
      }
      const servername = this.#mx[this.#mxNext];
      where = { host: await this.#address(servername), port: this.opts.mxPort ?? 25, servername };
    } else {
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(this.name)!;
      where = { host: m[1], port: Number(m[2]) };
    }
    this.#where = where;
    return where;
  }
}

/**
 * An envelope address as nodemailer puts it in RCPT TO, and names it in its
 * replies. One MimeNode serves every call (setEnvelope replaces what the last
 * call set): a new one per recipient drew random bytes for a boundary each time.
 */
const envelopeNode = new MimeNode();
function wireAddress(address: string): string {
  return envelopeNode.setEnvelope({ to: [address] }).getEnvelope().to[0] ?? address;
}
