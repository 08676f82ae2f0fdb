// An SMTP sink for tests: the receiving end of a relay, on 127.0.0.1 and a
// port of the system's choosing. It keeps every message it accepts, exactly
// as smtp-server hands it over (the bytes after DATA, dot-unstuffed, up to and
// including the CRLF before the final "."), and can be told to refuse given
// recipients at RCPT or messages at the end of DATA, e.g. only on the first
// attempt, to exercise retries and bounces.
// It announces PIPELINING, 8BITMIME and SMTPUTF8; no AUTH, no TLS, no DSN.
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from "smtp-server";

export interface Received {
  /** MAIL FROM address, "" for the null reverse-path */
  from: string;
  /** the recipients accepted in this transaction, in RCPT order */
  to: string[];
  data: Buffer;
  /** ms since the epoch, when the end of DATA was answered */
  at: number;
  /** BODY= of MAIL FROM ("7bit" or "8bitmime"; smtp-server's default "7bit") */
  bodyType: string;
  /** MAIL FROM carried SMTPUTF8 */
  smtpUtf8: boolean;
}

export interface Reply {
  code: number;
  /** the reply text after the code, e.g. "5.1.1 no such user" */
  message: string;
}

export interface Refusal {
  stage: "rcpt" | "data";
  /** the recipient (rcpt) or the transaction's recipients (data) */
  to: string[];
  code: number;
  at: number;
}

export interface SinkOptions {
  /**
   * Called at each RCPT TO; attempt counts the RCPTs for that address so far,
   * from 1. Return a reply to refuse it (4xx or 5xx), undefined to accept.
   */
  reply?: (rcpt: string, attempt: number) => Reply | undefined;
  /**
   * Called at the end of DATA; attempt counts the transactions that carried
   * the same bytes so far (a relay's retry sends the same bytes), from 1.
   */
  dataReply?: (m: { from: string; to: string[]; data: Buffer }, attempt: number) => Reply | undefined;
  /**
   * Called at each MAIL FROM with its count on this sink, from 1. Return
   * "drop" to close the connection there and then, with no reply, as a hop
   * does that ends a connection it thinks idle just as the client uses it.
   */
  mailFrom?: (n: number) => "drop" | undefined;
  /** SIZE limit in octets (announced; larger messages get 552) */
  size?: number;
  /** the name in the greeting and EHLO reply */
  name?: string;
}

function smtpError(r: Reply): Error & { responseCode: number } {
  return Object.assign(new Error(r.message), { responseCode: r.code });
}

export class SmtpSink {
  readonly messages: Received[] = [];
  readonly refusals: Refusal[] = [];
  /** Errors of client connections (a reset in the middle of a transaction). */
  readonly socketErrors: Error[] = [];
  private server: SMTPServer;
  /** Connections accepted so far. */
  connections = 0;
  private mailFroms = 0;
  private rcptAttempts = new Map<string, number>();
  private dataAttempts = new Map<string, number>();
  private waiters: (() => void)[] = [];

  constructor(private readonly opts: SinkOptions = {}) {
    this.server = new SMTPServer({
      name: opts.name ?? "sink.tidings.test",
      banner: "tidings test sink",
      size: opts.size,
      rejectOversized: opts.size !== undefined,
      authOptional: true,
      disabledCommands: ["AUTH", "STARTTLS"],
      hideSTARTTLS: true,
      disableReverseLookup: true,
      logger: false,
      closeTimeout: 500,
      onConnect: (_session, cb) => {
        this.connections++;
        cb();
      },
      onMailFrom: (_address, session, cb) => {
        if (this.opts.mailFrom?.(++this.mailFroms) === "drop") {
          const conns = (this.server as unknown as { connections: Set<{ id: string; _socket: { destroy(): void } }> }).connections;
          for (const c of conns) if (c.id === session.id) c._socket.destroy();
          return;
        }
        cb();
      },
      onRcptTo: (address, _session, cb) => {
        const n = (this.rcptAttempts.get(address.address) ?? 0) + 1;
        this.rcptAttempts.set(address.address, n);
        const r = this.opts.reply?.(address.address, n);
        if (r) {
          this.refusals.push({ stage: "rcpt", to: [address.address], code: r.code, at: Date.now() });
          return cb(smtpError(r));
        }
        cb();
      },
      onData: (stream, session, cb) => this.onData(stream, session, cb),
    });
    // A client that dies mid-transaction (a node killed with SIGKILL) resets its
    // connection, and smtp-server reports that as the server's 'error' event: with
    // no listener it was an uncaught exception in the test. A real MTA logs it and
    // goes on; so does the sink, keeping it for a test to look at.
    this.server.on("error", (err) => this.socketErrors.push(err));
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", (e) => cb(e));
    stream.on("end", () => {
      const env = session.envelope;
      const m = {
        from: env.mailFrom ? env.mailFrom.address : "",
        to: env.rcptTo.map((r) => r.address),
        data: Buffer.concat(chunks),
      };
      if (stream.sizeExceeded) {
        this.refusals.push({ stage: "data", to: m.to, code: 552, at: Date.now() });
        return cb(smtpError({ code: 552, message: "5.3.4 message too big" }));
      }
      const key = createHash("sha256").update(m.data).digest("hex");
      const n = (this.dataAttempts.get(key) ?? 0) + 1;
      this.dataAttempts.set(key, n);
      const r = this.opts.dataReply?.(m, n);
      if (r) {
        this.refusals.push({ stage: "data", to: m.to, code: r.code, at: Date.now() });
        return cb(smtpError(r));
      }
      this.messages.push({ ...m, at: Date.now(), bodyType: env.bodyType ?? "7bit", smtpUtf8: env.smtpUtf8 === true });
      for (const w of this.waiters.splice(0)) w();
      cb();
    });
  }

  /** Listens on 127.0.0.1, a free port; resolves to the port. */
  /** Listens on 127.0.0.1:port (0: a free port); resolves with the port. */
  start(port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve((this.server.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops listening; connections still open get 421 after half a second. */
  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Resolves with the messages once at least n have been accepted; rejects after timeoutMs. */
  async waitFor(n: number, timeoutMs: number): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`smtp-sink: ${this.messages.length} of ${n} messages after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== wake);
          resolve();
        }, left);
        this.waiters.push(wake);
      });
    }
    return this.messages.slice();
  }
}
