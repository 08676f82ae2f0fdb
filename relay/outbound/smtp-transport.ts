// The SMTP transport of the outbound queue: Postfix's smtp(8) in small. A
// session to one next hop sends each message offered with all its recipients
// for that hop through nodemailer's pooled transport (in a worker thread,
// relay/mail/sender.ts), the envelope as received, and reads each recipient's
// reply through RFC 5321's reply classes (dispositions.ts): 2yz sent, 4yz or
// no answer retry, 5yz failed. A hop that does not answer at all ends the
// session (the queue then backs off, and defers the hop's mail at once
// meanwhile); an mx hop tries the domain's next MX host at the next session.
import { promises as dns } from "node:dns";
import { isIP } from "node:net";
import type { DueMail } from "../../storage/mail-queue.js";
import type { Sender, Target } from "../mail/sender.js";
import { smtpDisposition } from "./dispositions.js";
import type { Outcome, Session, Transport } from "./transport.js";

/** What became of one recipient. */
export type RcptDisposition =
  | { kind: "sent" }
  | { kind: "retry"; error: string; unreachable?: boolean; suspended?: boolean }
  | { kind: "failed"; error: string; status: string; remote?: string };

/** A message's outcome: one disposition per recipient, in the order of DueMail.rcpts. */
export interface MailOutcome extends Outcome {
  rcpts: RcptDisposition[];
}

/** The outcome's summary for the queue: retry if any recipient waits, else failed if any failed, else done. */
export function mailOutcome(rcpts: RcptDisposition[]): MailOutcome {
  const retry = rcpts.find((r) => r.kind === "retry");
  const failed = rcpts.find((r) => r.kind === "failed");
  const worst = retry ?? failed;
  return { disposition: retry ? "retry" : failed ? "failed" : "done", reply: worst && "error" in worst ? worst.error : "sent", rcpts };
}

export interface SmtpHopOptions {
  /** DNS servers for mx hops ([] = the system's). */
  dnsServers?: string[];
  /** Port of the hosts an mx hop finds (25). */
  mxPort?: number;
  /** Messages sent at once on the hop (nodemailer's pool spreads them on its connections). */
  window: number;
}

/** One next hop: HOST:PORT, or mx:DOMAIN. Where it goes is kept across sessions (resolved again after the hop stops answering). */
export class SmtpTransport implements Transport<DueMail, MailOutcome> {
  #where: Target | undefined;
  #dns: InstanceType<typeof dns.Resolver> | undefined;
  /** An mx hop's hosts, in preference order, and the one to try next. */
  #mx: string[] = [];
  #mxNext = 0;

  constructor(
    readonly hop: string,
    private readonly sender: Sender,
    private readonly opts: SmtpHopOptions,
  ) {}

  async open(): Promise<Session<DueMail, MailOutcome>> {
    return new SmtpSession(this, this.opts.window);
  }

  async deliver(m: DueMail): Promise<{ rcpts: RcptDisposition[]; unreachable?: string }> {
    let where: Target;
    try {
      where = await this.#connect();
    } catch (err) {
      const e = `no address for ${this.hop}: ${(err as Error).message}`;
      const permanent = (err as { permanent?: string }).permanent;
      if (permanent) return { rcpts: m.rcpts.map(() => ({ kind: "failed", error: `X-Tidings; ${e}`, status: permanent })) };
      return { rcpts: m.rcpts.map(() => ({ kind: "retry", error: e, unreachable: true })), unreachable: e };
    }
    const to = m.rcpts.map((r) => r.rcpt);
    const r = await this.sender.send(this.hop, where, { from: m.sender, to, eightBit: m.eightBit, smtputf8: m.smtputf8 }, m.data);
    // nodemailer rewrites envelope addresses and names refused recipients as it
    // sent them; matched by our own spelling, a refusal of Bob@Example.ORG was
    // taken for a delivery, and the recipient lost without a bounce. The sender
    // says how it spelled each (sender.ts, in its thread: the parsing was 3%
    // of the main thread's time).
    const wire = r.wire ?? to;
    const refused = new Map(r.rejected.map((e) => [e.recipient, e]));
    if (r.ok) {
      const accepted = new Set(r.accepted);
      return {
        rcpts: wire.map((rcpt): RcptDisposition => {
          const e = refused.get(rcpt);
          if (e) return this.#fromReply(e.responseCode, e.response ?? "refused");
          // neither accepted nor refused: not known to be delivered, so tried again (a duplicate at worst, never a loss)
          return accepted.has(rcpt) ? { kind: "sent" } : { kind: "retry", error: `no reply reported for <${rcpt}>` };
        }),
      };
    }
    if (refused.size > 0 && r.code === "EENVELOPE") {
      return {
        rcpts: wire.map((rcpt) => {
          const e = refused.get(rcpt);
          return e ? this.#fromReply(e.responseCode, e.response ?? r.message) : this.#fromReply(r.responseCode, r.response ?? r.message);
        }),
      };
    }
    if (r.responseCode === undefined) {
      // no reply at all: the hop is unreachable or went away (RFC 5321 §4.2.1: transient)
      this.#unreachable(where);
      const e = `${r.code ?? "error"}: ${r.message}`;
      return { rcpts: to.map(() => ({ kind: "retry", error: e, unreachable: true })), unreachable: e };
    }
    return { rcpts: to.map(() => this.#fromReply(r.responseCode, r.response ?? r.message)) };
  }

  /** RFC 5321 §4.2.1: 4yz is transient, 5yz permanent; no reply at all (a lost connection) is transient. */
  #fromReply(code: number | undefined, text: string): RcptDisposition {
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
    this.sender.reset(this.hop);
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
    if (this.hop.startsWith("mx:")) {
      if (this.#mxNext >= this.#mx.length) {
        this.#mx = await this.#mxHosts(this.hop.slice(3));
        this.#mxNext = 0;
      }
      const servername = this.#mx[this.#mxNext];
      where = { host: await this.#address(servername), port: this.opts.mxPort ?? 25, servername };
    } else {
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(this.hop)!;
      where = { host: m[1], port: Number(m[2]) };
    }
    this.#where = where;
    return where;
  }
}

/**
 * Messages on one hop through the sender's pool. When the hop does not
 * answer, what is offered after is deferred at once with the reason
 * (Postfix's "delivery temporarily suspended"), and the session ends once
 * the sends under way have their answers.
 */
class SmtpSession implements Session<DueMail, MailOutcome> {
  readonly closed: Promise<Error | undefined>;
  #end!: (e: Error | undefined) => void;
  #open = 0;
  #down: string | undefined;
  #ended = false;

  constructor(
    private readonly t: SmtpTransport,
    readonly window: number,
  ) {
    this.closed = new Promise((r) => (this.#end = r));
  }

  async offer(m: DueMail): Promise<MailOutcome> {
    if (this.#down !== undefined || this.#ended) {
      const error = `delivery temporarily suspended: ${this.#down ?? "hop down"}`;
      return mailOutcome(m.rcpts.map(() => ({ kind: "retry", error, suspended: true })));
    }
    this.#open++;
    try {
      const r = await this.t.deliver(m);
      if (r.unreachable !== undefined) this.#down ??= r.unreachable;
      return mailOutcome(r.rcpts);
    } finally {
      this.#open--;
      // after the answers of this turn are settled
      if (this.#down !== undefined && this.#open === 0) setImmediate(() => this.#finish(new Error(this.#down)));
    }
  }

  #finish(err: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#end(err);
  }

  close(): void {
    this.#finish(undefined);
  }
}
