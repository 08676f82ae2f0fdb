// Sends one message to one next hop with nodemailer's pooled SMTP transport
// (connections reused between messages), and reports what the hop said, as
// plain data. The node runs it in a worker thread (sender-worker.ts): SMTP
// client work and its socket writes were about a third of the relay's busy
// time on the main thread, which also runs the SMTP server and the writer.
import SMTPPool from "nodemailer/lib/smtp-pool";
import MimeNode from "nodemailer/lib/mime-node";
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { Readable } from "node:stream";
import { Worker } from "node:worker_threads";

// The envelope as received includes SMTPUTF8 (RFC 6531 §3.4) when the client
// gave it: the message may have UTF-8 in its header section even when every
// address is ASCII. nodemailer adds the keyword only for non-ASCII addresses;
// an envelope flag `smtputf8` makes it add it whenever the hop offers it.
const sendCommand = (SMTPConnection.prototype as unknown as { _sendCommand: (s: string) => void })._sendCommand;
(SMTPConnection.prototype as unknown as { _sendCommand: (s: string) => void })._sendCommand = function (this: {
  _envelope?: { smtputf8?: boolean }; _supportedExtensions: string[]; _usingSmtpUtf8?: boolean;
}, str: string) {
  if (this._envelope?.smtputf8 && str.startsWith("MAIL FROM:") && !/ SMTPUTF8\b/.test(str) && this._supportedExtensions.includes("SMTPUTF8")) {
    str += " SMTPUTF8";
    this._usingSmtpUtf8 = true;
  }
  return sendCommand.call(this, str);
};

export interface Target {
  host: string;
  port: number;
  /** The host's name when `host` is an address found for it (TLS server name). */
  servername?: string;
}

export interface Envelope {
  from: string;
  to: string[];
  eightBit: boolean;
  smtputf8: boolean;
}

export interface Refusal {
  recipient: string;
  responseCode?: number;
  response?: string;
}

/**
 * What the hop said: the transaction went through (some recipients may be
 * refused), or it failed. Recipients are named as nodemailer sent them;
 * `wire` is each of the envelope's recipients so spelled, in order.
 */
export type SendResult =
  | { ok: true; accepted: string[]; rejected: Refusal[]; wire: string[] }
  | { ok: false; responseCode?: number; response?: string; code?: string; message: string; rejected: Refusal[]; wire?: string[] };

export interface SenderOptions {
  hostname: string;
  connectionsPerHop: number;
}

export interface Sender {
  send(hop: string, target: Target, envelope: Envelope, data: Buffer): Promise<SendResult>;
  /** Forgets a hop's connections (it stopped answering; the next send connects afresh). */
  reset(hop: string): void;
  close(): Promise<void>;
}

/** The sender in this thread. */
export class LocalSender implements Sender {
  #pools = new Map<string, Pool>();
  constructor(private readonly opts: SenderOptions) {}

  async send(hop: string, target: Target, envelope: Envelope, data: Buffer): Promise<SendResult> {
    let p = this.#pools.get(hop);
    if (!p) {
      p = {
        inFlight: 0,
        retired: false,
        t: new SMTPPool({
          host: target.host,
          port: target.port,
          secure: false,
          maxConnections: this.opts.connectionsPerHop,
          maxMessages: Infinity,
          name: this.opts.hostname,
          // STARTTLS when the hop offers it; a relay on loopback or inside a site rarely has a public certificate
          tls: { rejectUnauthorized: false, ...(target.servername ? { servername: target.servername } : {}) },
          connectionTimeout: 30_000,
          greetingTimeout: 30_000,
          socketTimeout: 120_000,
        }),
      };
      this.#pools.set(hop, p);
    }
    p.inFlight++;
    const wire = envelope.to.map(wireAddress);
    try {
      // the envelope as received: MAIL FROM (<> stays <>), each RCPT, BODY=8BITMIME, SIZE; the bytes untouched
      const info = await sendRaw(p.t, { from: envelope.from || undefined, to: envelope.to, use8BitMime: envelope.eightBit, smtputf8: envelope.smtputf8, size: data.length }, data);
      return {
        ok: true,
        accepted: ((info.accepted ?? []) as (string | { address: string })[]).map((a) => (typeof a === "string" ? a : a.address)),
        rejected: refusals((info as { rejectedErrors?: Refusal[] }).rejectedErrors),
        wire,
      };
    } catch (err) {
      const e = err as Error & { responseCode?: number; response?: string; code?: string; rejectedErrors?: Refusal[] };
      return { ok: false, responseCode: e.responseCode, response: e.response, code: e.code, message: e.message, rejected: refusals(e.rejectedErrors), wire };
    } finally {
      if (--p.inFlight === 0 && p.retired) p.t.close();
    }
  }

  /** New sends get a new pool; the old one closes once the sends it has finish (closing it at once would abort them). */
  reset(hop: string): void {
    const p = this.#pools.get(hop);
    if (!p) return;
    this.#pools.delete(hop);
    p.retired = true;
    if (p.inFlight === 0) p.t.close();
  }

  async close(): Promise<void> {
    for (const p of this.#pools.values()) p.t.close();
    this.#pools.clear();
  }
}

interface Pool {
  t: SMTPPool;
  inFlight: number;
  retired: boolean;
}

/**
 * An envelope address as nodemailer puts it in RCPT TO, and names it in its
 * replies (domain lower-cased, U-labels to A-labels, needless quotes
 * dropped). One MimeNode serves every call (setEnvelope replaces what the
 * last call set): a new one per recipient drew random bytes for a boundary
 * each time.
 */
const envelopeNode = new MimeNode();
function wireAddress(address: string): string {
  return envelopeNode.setEnvelope({ to: [address] }).getEnvelope().to[0] ?? address;
}

/**
 * Hands a message to the pool as a transport's `send(mail, callback)` gets it
 * from nodemailer's Mailer (the interface every nodemailer transport has):
 * the envelope as MimeNode normalises it, and the bytes as a stream. Going
 * through Mailer.sendMail({ raw }) instead built a MimeNode and a stream
 * pipeline with an AbortController for each message, only to pass the same
 * bytes on: a quarter of the sender thread's time. The pool keeps all it
 * does: reused connections, a message retried on a new connection when a
 * reused one was closed by the hop before a byte of it went, RSET after a
 * refused envelope.
 */
function sendRaw(pool: SMTPPool, envelope: Record<string, unknown>, data: Buffer): Promise<SMTPPool.SentMessageInfo> {
  // setEnvelope makes a new envelope object each time: one MimeNode serves every call (see wireAddress)
  const env = envelopeNode.setEnvelope(envelope as never).getEnvelope();
  const mail = {
    data: {},
    message: {
      getEnvelope: () => env,
      // never sent (the message goes as it is): the pool only logs it
      messageId: () => "<relayed@tidings.invalid>",
      getHeader: () => undefined,
      createReadStream: () => {
        const r = new Readable({ read() {} });
        r.push(data);
        r.push(null);
        return r;
      },
    },
  };
  return new Promise((resolve, reject) => pool.send(mail as never, (err, info) => (err ? reject(err) : resolve(info!))));
}

function refusals(list: Refusal[] | undefined): Refusal[] {
  return (list ?? []).map((r) => ({ recipient: r.recipient, responseCode: r.responseCode, response: r.response }));
}

/** The sender in a worker thread: the same calls, passed as messages. */
export class WorkerSender implements Sender {
  #worker: Worker | undefined;
  #next = 1;
  #waiting = new Map<number, (r: SendResult) => void>();
  #closed = false;

  constructor(private readonly opts: SenderOptions) {}

  /** The worker, started on first use and again after one that died. */
  #get(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(new URL("./sender-worker.js", import.meta.url), { workerData: this.opts });
    w.on("message", (m: { id: number; result: SendResult }) => {
      const done = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      done?.(m.result);
      if (this.#waiting.size === 0) w.unref();
    });
    // a sender that died answers every open send with no reply: the mail is retried, never lost
    const gone = (why: string) => {
      if (this.#worker === w) this.#worker = undefined;
      for (const done of this.#waiting.values()) done({ ok: false, message: why, rejected: [] });
      this.#waiting.clear();
    };
    w.on("error", (err) => gone(`mail sender failed: ${err.message}`));
    w.on("exit", () => gone("mail sender stopped"));
    w.unref();
    this.#worker = w;
    return w;
  }

  send(hop: string, target: Target, envelope: Envelope, data: Buffer): Promise<SendResult> {
    if (this.#closed) return Promise.resolve({ ok: false, message: "mail sender stopped", rejected: [] });
    const w = this.#get();
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      w.ref(); // a send in flight keeps the process up
      // A Buffer from SQLite may be a view on a larger pool: structured clone
      // would copy the whole pool. Copy just the message and hand that over.
      const bytes = new Uint8Array(data);
      w.postMessage({ kind: "send", id, hop, target, envelope, data: bytes }, [bytes.buffer]);
    });
  }

  reset(hop: string): void {
    this.#worker?.postMessage({ kind: "reset", hop });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#worker?.terminate();
  }
}
