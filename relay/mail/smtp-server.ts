// Receives mail (RFC 5321) with the smtp-server package: connection limits,
// the relay policy at RCPT (policy.ts), size and line limits on DATA, our
// Received header (§4.4), then the shared submit paths: mail for a group's
// address becomes an article (ingest, origin "mail"), the rest is queued
// (storage/mail-queue.ts). The 250 is sent only after the commit.
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerAuthenticationResponse, type SMTPServerDataStream, type SMTPServerSession } from "smtp-server";
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { AddressList } from "../access.js";
import { rcptVerdict, routeFor, type RoutePattern } from "./policy.js";
import { formatDateHeader } from "../../protocol/article/date.js";
import type { MailQueue } from "../../storage/mail-queue.js";
import { WriterBusy } from "../../storage/group-commit.js";
import { isTransient } from "../../storage/sqlite.js";
import type { Ingest, Outcome } from "../ingest.js";
import { Admission, type Occupant } from "../admission.js";
import { hopName, mailToArticle } from "./gateway.js";
import { headerText, messageIdOf, receivedCount } from "../../protocol/mail/fields.js";

export interface SmtpOptions {
  hostname: string;
  relayFrom: string[];
  maxMessageBytes: number;
  maxRecipients: number;
  maxLine: number;
  maxConnections: number;
  maxPerClient: number;
  idleSeconds: number;
  maxReceived: number;
  tlsCert?: string;
  tlsKey?: string;
  routes: (RoutePattern & { nextHop: string })[];
  /** Group address, as configured → group name. */
  gateways: Map<string, string>;
  /**
   * SMTP AUTH PLAIN and LOGIN (RFC 4954) against the node's users
   * (relay/login.ts); a client that logged in may relay as smtp.relay_from
   * allows. plaintext(): auth.allow_plaintext, read at each AUTH.
   */
  auth?: { check(client: string, user: string, password: string): Promise<boolean>; plaintext(): boolean };
}

/** What RCPT decided for each accepted recipient of a transaction. */
interface Rcpt {
  address: string;
  /** The group it is posted to, or the next hop it is queued for. */
  group?: string;
  hop?: string;
}

// smtp-server gives every reply an enhanced status code chosen by the reply
// code alone (554 → 5.6.0). Our refusals carry their own (554 5.7.1 for relay
// access, RFC 3463), so a reply text that starts with one is sent as it is.
const send = SMTPConnection.prototype.send;
SMTPConnection.prototype.send = function (this: unknown, code: number, data: string | string[] | null | undefined, context?: unknown) {
  if (context === undefined && typeof data === "string" && /^[245]\.\d{1,3}\.\d{1,3} /.test(data)) context = false;
  return (send as (...a: unknown[]) => unknown).call(this, code, data, context);
} as typeof send;

// smtp-server (3.21, strict or lenient) answers RCPT with its own "501 Bad
// recipient address syntax" for addresses with other than one unquoted "@",
// which includes valid ones (a quoted "@", RFC 5321 §4.1.2) and the classic
// relay tricks. The relay policy should judge those, so that a trick gets
// 554 5.7.1 and bad syntax 501 5.1.3 from one place (policy.ts).
const parseAddressCommand = SMTPConnection.prototype._parseAddressCommand;
SMTPConnection.prototype._parseAddressCommand = function (this: unknown, name: string, command: string) {
  const parsed = (parseAddressCommand as (...a: unknown[]) => unknown).call(this, name, command);
  if (parsed || String(name).toUpperCase() !== "RCPT TO") return parsed;
  const m = /^\s*RCPT\s+TO\s*:\s*<([^<>]*)>\s*$/i.exec(String(command));
  return m && m[1] && !/[\x00-\x1f\x7f]/.test(m[1]) ? { address: m[1], args: false } : parsed;
} as typeof parseAddressCommand;

// smtp-server waits a fixed 100 ms before every greeting, to catch clients
// that talk first. Postfix greets at once unless postscreen is set up for it;
// here the wait would cap a sender that opens a connection per message (as
// smtp-source does by default) at ten messages a second. Greet at once; a
// client that talks before the greeting is still answered in order.
const Connection = SMTPConnection.prototype as unknown as {
  init(this: Conn): void;
  _setListeners(this: Conn, ready: () => void): void;
  connectionReady(this: Conn): void;
  send(this: Conn, code: number, text: string, context?: unknown): void;
};
type Conn = { _server: { options: { maxClients?: number }; connections: Set<unknown> }; name: string };
Connection.init = function (this: Conn) {
  Connection._setListeners.call(this, () => {
    if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {
      return Connection.send.call(this, 421, `${this.name} Too many connected clients, try again in a moment`, false);
    }
    setImmediate(() => Connection.connectionReady.call(this));
  });
};

// RFC 4954 §4: AUTH over a connection without TLS, where auth.allow_plaintext
// (allowInsecureAuth) does not allow it, is refused before any name or
// password is asked for. smtp-server checks this only where it offers
// STARTTLS, and then with 5.7.0; the rule here holds either way, as 538 5.7.11.
type AuthConn = { secure: boolean; _server: { options: { allowInsecureAuth?: boolean } } };
const handlerAuth = (SMTPConnection.prototype as unknown as { handler_AUTH(this: AuthConn, command: Buffer, cb: () => void): void }).handler_AUTH;
(SMTPConnection.prototype as unknown as { handler_AUTH(this: AuthConn, command: Buffer, cb: () => void): void }).handler_AUTH = function (this: AuthConn, command: Buffer, cb: () => void) {
  if (!this.secure && !this._server.options.allowInsecureAuth) {
    Connection.send.call(this as unknown as Conn, 538, "5.7.11 Encryption required for requested authentication mechanism");
    return cb();
  }
  return handlerAuth.call(this, command, cb);
};

/** An error whose text smtp-server sends after the reply code. */
function reply(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

export class SmtpServer {
  readonly server: SMTPServer;
  #trusted: AddressList;
  /** Per-address shares of the cap, with room kept for new addresses, as for NNTP (relay/admission.ts); no idle eviction here. */
  #admission: Admission<Occupant>;
  #occupants = new WeakMap<SMTPServerSession, Occupant>();
  #rcpts = new WeakMap<SMTPServerSession, Rcpt[]>();
  #gatewayAddresses: string[];
  readonly counts = { connections: 0, refusedConnections: 0, messages: 0, refusedRcpts: 0, refusedMessages: 0 };

  constructor(
    private readonly opts: SmtpOptions,
    private readonly queue: MailQueue,
    private readonly ingest: Ingest,
    private readonly log: Logger,
  ) {
    this.#trusted = new AddressList(opts.relayFrom);
    // the NNTP side's default reserve (nntp.reserved_connections), at most a quarter of the cap
    this.#admission = new Admission({ maxConnections: opts.maxConnections, maxPerClient: opts.maxPerClient, reservedForNew: 16, evictIdleAfter: Infinity }, () => ({ busy: false, peer: false }));
    this.#gatewayAddresses = [...opts.gateways.keys()];
    const tls = opts.tlsCert && opts.tlsKey ? { cert: readFileSync(opts.tlsCert), key: readFileSync(opts.tlsKey) } : undefined;
    this.server = new SMTPServer({
      name: opts.hostname,
      banner: "tidings ESMTP",
      size: opts.maxMessageBytes,
      authOptional: true,
      disabledCommands: [...(opts.auth ? [] : ["AUTH"]), ...(tls ? [] : ["STARTTLS"])],
      authMethods: ["PLAIN", "LOGIN"],
      // smtp-server's own TLS rule (538 before STARTTLS), read at each AUTH so that it follows
      // auth.allow_plaintext after a reload; #auth applies the same rule where no STARTTLS is offered
      get allowInsecureAuth() {
        return opts.auth?.plaintext() ?? false;
      },
      onAuth: (auth, session, cb) => this.#auth(auth, session, cb),
      hideSTARTTLS: !tls,
      ...(tls ?? {}),
      hideENHANCEDSTATUSCODES: false,
      hideSMTPUTF8: false,
      hide8BITMIME: false,
      hidePIPELINING: false,
      socketTimeout: opts.idleSeconds * 1000,
      closeTimeout: 1000,
      logger: false,
      // the client's name is what it says in EHLO; a DNS lookup per connection would stall on a closed network
      disableReverseLookup: true,
      onConnect: (session, cb) => this.#connect(session, cb),
      onClose: (session) => this.#closed(session),
      onMailFrom: (address, session, cb) => this.#mailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.#rcptTo(address, session, cb),
      onData: (stream, session, cb) => void this.#data(stream, session, cb),
    });
    this.server.on("error", (err) => log.debug({ err: String(err) }, "SMTP connection error"));
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.server.off("error", reject);
        resolve(this.server.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  get connections(): number {
    return this.#admission.open;
  }

  #connect(session: SMTPServerSession, cb: (err?: Error) => void): void {
    const client = session.remoteAddress;
    const v = this.#admission.decide(client, []);
    if (!v.admit) {
      this.counts.refusedConnections++;
      // RFC 5321 §3.8: 421 and close when the service cannot take the client now
      const why = v.cause === "full" ? "Too many connections" : v.cause === "per-address" ? `Too many connections from ${client}` : `Too many connections from ${client} while the server is busy`;
      return cb(reply(421, `4.7.0 ${why}; try again later`));
    }
    const o = { client, lastInput: 0 };
    this.#occupants.set(session, o);
    this.#admission.enter(o);
    this.counts.connections++;
    cb();
  }

  #closed(session: SMTPServerSession): void {
    const o = this.#occupants.get(session);
    if (o) this.#admission.leave(o);
  }

  /** SMTP AUTH (RFC 4954): the node's users, the same TLS rule and failure delay as NNTP's AUTHINFO. */
  #auth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
    const a = this.opts.auth!;
    // RFC 4954 §4: no password over a connection without TLS unless auth.allow_plaintext says so
    if (!session.secure && !a.plaintext()) return cb(reply(538, "5.7.11 Encryption required for requested authentication mechanism"));
    // RFC 4616: acting as another user (an authzid other than the authcid) is not offered
    if (auth.method === "PLAIN" && auth.authcid && auth.authzid && auth.authzid !== auth.authcid) {
      return cb(reply(535, "5.7.8 Authentication credentials invalid"));
    }
    a.check(session.remoteAddress, auth.username ?? "", auth.password ?? "").then(
      (ok) => (ok ? cb(null, { user: auth.username }) : cb(reply(535, "5.7.8 Authentication credentials invalid"))),
      (err) => {
        this.log.error({ err, client: session.remoteAddress }, "login check failed");
        cb(reply(454, "4.7.0 Temporary authentication failure"));
      },
    );
  }

  #mailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error) => void): void {
    this.#rcpts.set(session, []);
    // RFC 1870 §6.2 (smtp-server checks SIZE= against `size` itself; kept here so the reply names the limit)
    const args = (address.args || {}) as Record<string, string>;
    const declared = Number(args["SIZE"] ?? 0);
    if (declared > this.opts.maxMessageBytes) {
      return cb(reply(552, `5.3.4 Message size exceeds fixed maximum message size (${this.opts.maxMessageBytes} octets)`));
    }
    cb();
  }

  #rcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error) => void): void {
    const list = this.#rcpts.get(session) ?? [];
    if (list.length >= this.opts.maxRecipients) {
      this.counts.refusedRcpts++;
      // RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client sends the rest later
      return cb(reply(452, `4.5.3 Too many recipients (at most ${this.opts.maxRecipients} a message)`));
    }
    // a client that logged in (SMTP AUTH) relays as an address in smtp.relay_from does
    const trusted = this.#trusted.has(session.remoteAddress) || !!session.user;
    const v = rcptVerdict(address.address, { routes: this.opts.routes, gatewayAddresses: this.#gatewayAddresses, trusted });
    if (!v.ok) {
      this.counts.refusedRcpts++;
      this.log.info({ client: session.remoteAddress, rcpt: address.address, code: v.code, why: v.message }, "recipient refused");
      return cb(reply(v.code, `${v.enhanced} ${v.message}`));
    }
    if (v.kind === "gateway") {
      list.push({ address: address.address, group: this.opts.gateways.get(v.gateway!) });
    } else {
      const route = (v.route ?? routeFor(v.address.domain, this.opts.routes)) as (RoutePattern & { nextHop: string }) | undefined;
      if (!route) return cb(reply(550, `5.1.2 <${address.address}>: No route to domain ${v.address.domain}`));
      list.push({ address: address.address, hop: hopName(route, v.address.domain) });
    }
    this.#rcpts.set(session, list);
    cb();
  }

  async #data(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    let lineLen = 0;
    let longest = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size <= this.opts.maxMessageBytes) chunks.push(chunk);
        // longest line, counted across chunks (CRLF included)
        let from = 0;
        for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) {
          longest = Math.max(longest, lineLen + i - from + 1);
          lineLen = 0;
          from = i + 1;
        }
        lineLen += chunk.length - from;
      }
      longest = Math.max(longest, lineLen);
    } catch (err) {
      return cb(reply(451, `4.3.0 Error reading message: ${(err as Error).message}`));
    }
    const client = session.remoteAddress;
    const refuse = (code: number, text: string) => {
      this.counts.refusedMessages++;
      this.log.info({ client, code, why: text }, "message refused");
      cb(reply(code, text));
    };
    if (stream.sizeExceeded || size > this.opts.maxMessageBytes) {
      return refuse(552, `5.3.4 Message size exceeds fixed maximum message size (${this.opts.maxMessageBytes} octets)`);
    }
    if (longest > this.opts.maxLine) return refuse(552, `5.3.4 Message has a line of ${longest} octets (most ${this.opts.maxLine})`);
    const rcpts = this.#rcpts.get(session) ?? [];
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
    const args = (session.envelope.mailFrom && (session.envelope.mailFrom.args as Record<string, string> | false)) || {};
    const smtputf8 = "SMTPUTF8" in args;
    const eightBit = String(args["BODY"] ?? "").toUpperCase() === "8BITMIME";
    // our Received in front, and the message after it, in one copy
    const trace = Buffer.from(this.#received(session, rcpts, smtputf8), "utf8");
    const stamped = Buffer.concat([trace, ...chunks], trace.length + size);
    const head = headerText(stamped.subarray(trace.length));
    const hops = receivedCount(head);
    // RFC 5321 §6.3: a loop shows as a growing trail of Received headers
    if (hops > this.opts.maxReceived) return refuse(554, `5.4.6 Too many hops (${hops} Received headers): mail loop?`);
    const msgid = messageIdOf(head);

    // Mail to a group first: posting is idempotent (history), so if queuing
    // the rest fails below and the client sends again, nothing is posted twice.
    const groups = [...new Set(rcpts.flatMap((r) => (r.group ? [r.group] : [])))];
    if (groups.length > 0) {
      const o = await this.ingest.article(mailToArticle(stamped, groups), { kind: "mail", client, mailFrom: from });
      const a = (SMTP_ANSWER[o.kind] as (o: Outcome) => { code: number; text: string } | null)(o);
      if (a) return refuse(a.code, a.text);
    }
    const relay = rcpts.filter((r) => r.hop);
    let queuedAs = "";
    if (relay.length > 0) {
      try {
        const r = await this.queue.enqueue({
          sender: from, rcpts: relay.map((r) => ({ rcpt: r.address, hop: r.hop! })), data: stamped, client, origin: "smtp",
          msgid, eightBit, smtputf8, received: Date.now(),
        });
        if (r.kind === "queued") {
          queuedAs = r.id ? ` as ${r.id}` : "";
          if (r.looped.length > 0) this.log.info({ msgid, rcpts: r.looped }, "already relayed to these recipients: not relayed again (loop)");
          // Nothing left to relay. If our own Received is in the trail, the message
          // came back round a routing loop: refuse it, so that the hop before
          // bounces it (a 250 would lose it, RFC 5321 §6.1). Without our trace it
          // is a client sending again after a lost reply: the 250 is right.
          if (r.id === 0 && relayedHere(head, this.opts.hostname)) {
            return refuse(554, `5.4.6 Mail loop: already relayed to ${r.looped.map((a) => `<${a}>`).join(", ")} by ${this.opts.hostname}`);
          }
        }
      } catch (err) {
        if (err instanceof WriterBusy || isTransient(err)) return refuse(451, `4.3.0 Queue busy (${(err as Error).message}); try again later`);
        this.log.error({ err }, "queuing failed");
        return refuse(451, "4.3.0 Internal error; try again later");
      }
    }
    this.counts.messages++;
    this.log.debug({ client, from, rcpts: rcpts.map((r) => r.address), bytes: stamped.length }, "message accepted");
    cb(null, `Ok: queued${queuedAs}`);
  }

  /** RFC 5321 §4.4 trace: from the client's name and address, by us, with the protocol (RFC 3848) and, for one recipient, for whom. */
  #received(session: SMTPServerSession, rcpts: Rcpt[], smtputf8: boolean): string {
    const helo = (session.hostNameAppearsAs || "unknown").replace(/[^\x21-\x7e]/g, "?").slice(0, 255);
    const esmtp = session.transmissionType.startsWith("E") || session.openingCommand === "EHLO";
    // RFC 6531 §3.7.3: UTF8SMTP(S) when SMTPUTF8 was used; RFC 3848: ESMTP, ESMTPS
    let proto = smtputf8 ? "UTF8SMTP" : esmtp ? "ESMTP" : "SMTP";
    if (session.secure) proto += "S";
    if (session.user) proto += "A"; // RFC 3848: ESMTPA, ESMTPSA
    const addr = session.remoteAddress.includes(":") ? `IPv6:${session.remoteAddress}` : session.remoteAddress;
    const rcpt = rcpts.length === 1 ? `\r\n\tfor <${rcpts[0].address}>` : "";
    return `Received: from ${helo} ([${addr}])\r\n\tby ${this.opts.hostname} (tidings) with ${proto}${rcpt};\r\n\t${formatDateHeader(Date.now())}\r\n`;
  }
}

/** How the SMTP front end answers the submit path's outcome for mail to a group (null: taken). */
const SMTP_ANSWER: { [K in Outcome["kind"]]: (o: Extract<Outcome, { kind: K }>) => { code: number; text: string } | null } = {
  accepted: () => null,
  // the article is there already (a retried DATA, or the same mail to a group twice)
  duplicate: () => null,
  rejected: (o) => ({ code: 554, text: `5.6.0 Article refused: ${o.reason}` }),
  deferred: (o) => ({ code: 451, text: `4.3.0 ${o.reason}` }),
};

/** Whether a Received field in the header section says this node passed the message on (our own trace format). */
function relayedHere(head: string, hostname: string): boolean {
  const by = `\tby ${hostname} (tidings) `;
  return head.split(/\r?\n(?=\S)/).some((f) => /^received:/i.test(f) && f.includes(by));
}
