// The client side of NNTP: one outgoing connection that reads the greeting,
// reply lines and dot-terminated blocks, and writes commands and dot-stuffed
// blocks (RFC 3977 §3.1). Used by the peer feeds, `tidings peer check`, the
// demo, the tests' RawClient and the benchmarks' feeders and readers.
//
// Replies are read in one of three ways, in the order they arrive:
// - pulled: line(), block(), rawBlock(), blockLines(), each a promise, queued
//   in order, so commands can be pipelined (write several, read their replies);
// - onLine: every reply line handed over synchronously as it arrives (the feeds'
//   CHECK/TAKETHIS traffic: no promise per reply);
// - onReplies(): every whole reply, its block too when the caller says the status
//   carries one, synchronously, with the block as a view on the receive buffer
//   (the reader benchmark counts a million overview lines without making them).
//
// What has arrived is kept in the form its reader wants: as a latin1 string
// (one char per octet, nothing lost) while lines are read, so a reply line
// costs one slice; as a Buffer while blocks are read, so a block is found with
// one native search for CRLF "." CRLF and never decoded. Writes made in one
// tick go out together: the socket is corked on the first and uncorked on the
// next tick (one writev for a window of CHECKs).
import net from "node:net";
import tls from "node:tls";
import { stuffBlock } from "./reply.js";

/** Longest reply line buffered by default; a peer that sends more without CRLF is cut off, not kept in memory. */
export const MAX_REPLY_LINE = 64 * 1024;

const TERM = Buffer.from("\r\n.\r\n");
const CRLF = Buffer.from("\r\n");
const CRLF_DOT = Buffer.from("\r\n.");
const EMPTY = Buffer.alloc(0);
const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;

/** Where the first CRLF at or after `from` begins, or -1. */
function crlf(b: Buffer, from: number): number {
  for (let j = b.indexOf(LF, from); j >= 0; j = b.indexOf(LF, j + 1)) if (j > from && b[j - 1] === CR) return j - 1;
  return -1;
}

/** TLS towards the server, its certificate verified (RFC 8143). */
export interface ClientTls {
  /** "implicit": TLS from the first byte (nntps); "starttls": after the greeting, by startTls() (RFC 4642). */
  mode: "implicit" | "starttls";
  /** PEM certificates to trust instead of the system's CAs (a private CA, or the server's self-signed certificate). */
  ca?: string | Buffer;
  /** The name the server's certificate must carry, also sent as SNI; default: the host connected to. */
  servername?: string;
}

export interface ClientOptions {
  /** TLS at once (mode "implicit"); with "starttls", call startTls() after the greeting. */
  tls?: ClientTls;
  /** Local address to connect from. */
  localAddress?: string;
  /** Milliseconds to wait for the TCP connection (default 10 s). */
  connectTimeoutMs?: number;
  /** Longest reply line (without CRLF) buffered before the connection is cut off (default 64 KB; Infinity for none). */
  maxLine?: number;
  /** TCP_NODELAY (default true). */
  noDelay?: boolean;
  /** Writes made in one tick go out in one writev (default true). */
  cork?: boolean;
  /** Milliseconds a pulled read waits without a byte arriving (default 30 s); each read may give its own. */
  timeoutMs?: number;
}

type ReadKind = "line" | "block" | "raw" | "close";

interface Read {
  kind: ReadKind;
  resolve: (v: never) => void;
  reject: (e: Error) => void;
  timeoutMs: number;
  since: number;
  timer?: NodeJS.Timeout;
  /** For a block: how far past its start the terminator is known not to begin. */
  scanned: number;
}

/**
 * A block handed to an onReplies() callback: a view on the receive buffer.
 * The view is reused for the next block, so use it during the call; what
 * bytes(), raw() and text() return may be kept.
 */
export class BlockView {
  /** @internal */ src: Buffer = EMPTY;
  /** @internal */ start = 0;
  /** @internal */ end = 0; // after the last line's CRLF

  /** Octets of the block as sent (dot-stuffed, terminator excluded). */
  get size(): number {
    return this.end - this.start;
  }

  /** Number of lines in the block. */
  lines(): number {
    const b = this.src;
    let n = 0;
    for (let j = b.indexOf(LF, this.start); j >= 0 && j < this.end; j = b.indexOf(LF, j + 1)) if (b[j - 1] === CR) n++;
    return n;
  }

  /** The block's octets, unstuffed, CRLF line ends kept (may share memory with what was received: do not write into it). */
  bytes(): Buffer {
    return unstuff(this.src, this.start, this.end);
  }

  /** The block unstuffed, as latin1 text (one char per octet). */
  text(): string {
    return this.bytes().toString("latin1");
  }

  /** The block's octets as sent, still dot-stuffed (shares memory with what was received). */
  raw(): Buffer {
    return this.src.subarray(this.start, this.end);
  }
}

/** Undoes dot-stuffing (RFC 3977 §3.1.1) of b[start, end): a line's leading "." is dropped. */
function unstuff(b: Buffer, start: number, end: number): Buffer {
  let i = b.indexOf(CRLF_DOT, start);
  const lead = end > start && b[start] === DOT;
  if (!lead && (i < 0 || i + 2 >= end)) return b.subarray(start, end);
  const parts: Buffer[] = [];
  let from = lead ? start + 1 : start;
  while (i >= 0 && i + 2 < end) {
    parts.push(b.subarray(from, i + 2));
    from = i + 3;
    i = b.indexOf(CRLF_DOT, from);
  }
  parts.push(b.subarray(from, end));
  return Buffer.concat(parts);
}

/** Options for tls.connect that verify the server's certificate against `o` (an IP address is checked, never sent as SNI). */
function tlsOptions(host: string, o: ClientTls): tls.ConnectionOptions {
  const name = o.servername || host;
  return {
    ca: o.ca,
    servername: net.isIP(name) ? undefined : name,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
    minVersion: "TLSv1.2",
  };
}

/** An error of the TLS handshake said in words: a certificate that does not verify is named as such. */
function tlsError(host: string, port: number, e: Error & { code?: string }): Error {
  const cert = /CERT|SIGNATURE|ISSUER|HOSTNAME|ALTNAME/.test(e.code ?? "");
  return new Error(cert ? `TLS: the certificate of ${host}:${port} does not verify: ${e.message}` : `TLS with ${host}:${port} failed: ${e.message}`);
}

export class NntpClient {
  /** Set once the connection is gone (closed by either side, or failed). */
  closed = false;
  /**
   * Event mode: every reply line (latin1, without CRLF), synchronously as it
   * arrives. Pulled reads wait while it is set.
   */
  onLine?: (line: string) => void;
  /** Called once when the connection goes, with why. */
  onClose?: (err: Error) => void;

  // what has arrived and is not consumed: #str[#at..] while lines are read, #bin[#at..] while blocks are
  #str = "";
  #bin: Buffer = EMPTY;
  #binary = false;
  #at = 0;
  #reads: Read[] = [];
  #pumping = false;
  #lastData = 0;
  #error?: Error;
  #byUs = false;
  #corked = false;
  #replies?: { multi: (status: string) => boolean; fn: (status: string, block: BlockView | undefined) => void; scanned: number };
  readonly #view = new BlockView();
  readonly #maxLine: number;
  readonly #cork: boolean;
  readonly #timeoutMs: number;

  /** The socket read and written: after startTls(), the TLS socket on top of the first one. */
  socket: net.Socket;
  readonly #host: string;
  readonly #port: number;

  private constructor(
    socket: net.Socket,
    opts: ClientOptions,
    host = "",
    port = 0,
  ) {
    this.socket = socket;
    this.#host = host;
    this.#port = port;
    this.#maxLine = opts.maxLine ?? MAX_REPLY_LINE;
    this.#cork = opts.cork ?? true;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    socket.setNoDelay(opts.noDelay ?? true);
    socket.on("data", this.#onData);
    socket.on("error", (e) => this.#gone(e));
    socket.on("close", () => this.#gone());
  }

  #onData = (d: Buffer): void => this.#data(d);

  /** The connection is TLS (implicit, or after startTls()). */
  get encrypted(): boolean {
    return this.socket instanceof tls.TLSSocket;
  }

  /** Opens a TCP connection (a TLS one with tls.mode "implicit"); the greeting is the first line() (or use open()). */
  static connect(host: string, port: number, o: ClientOptions = {}): Promise<NntpClient> {
    const timeoutMs = o.connectTimeoutMs ?? 10_000;
    const implicit = o.tls?.mode === "implicit";
    return new Promise((resolve, reject) => {
      const s = implicit ? tls.connect({ host, port, localAddress: o.localAddress, ...tlsOptions(host, o.tls!) } as tls.ConnectionOptions) : net.connect({ host, port, localAddress: o.localAddress });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      s.once(implicit ? "secureConnect" : "connect", () => {
        clearTimeout(t);
        s.removeListener("error", failed);
        resolve(new NntpClient(s, o, host, port));
      });
      const failed = (e: Error) => {
        clearTimeout(t);
        reject(implicit ? tlsError(host, port, e) : e);
      };
      s.once("error", failed);
    });
  }

  /**
   * STARTTLS (RFC 4642 §2.2.2), after the greeting and before anything else
   * is pipelined: sends it, and on 382 runs the handshake on the same socket,
   * verifying the server's certificate. Anything else is an error and nothing
   * more should be sent in plain text. Afterwards ask CAPABILITIES again.
   */
  async startTls(o: ClientTls, timeoutMs?: number): Promise<void> {
    const r = await this.command("STARTTLS", timeoutMs);
    if (!r.startsWith("382")) throw new Error(`TLS: ${this.#host}:${this.#port} answered STARTTLS with: ${r}`);
    // the server must say nothing after 382 until the handshake: bytes here would be a man in the middle's
    const early = this.#binary ? this.#bin.length - this.#at : this.#str.length - this.#at;
    if (early > 0) {
      this.destroy();
      throw new Error(`TLS: ${this.#host}:${this.#port} sent ${early} bytes in plain text after 382`);
    }
    const raw = this.socket;
    raw.off("data", this.#onData);
    const t = tls.connect({ socket: raw, ...tlsOptions(this.#host, o) });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${(timeoutMs ?? this.#timeoutMs) / 1000} s`)), timeoutMs ?? this.#timeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        t.destroy();
        reject(tlsError(this.#host, this.#port, e));
      };
      t.once("error", fail);
      t.once("secureConnect", () => {
        clearTimeout(timer);
        t.off("error", fail);
        resolve();
      });
    });
    this.socket = t;
    t.setNoDelay(true);
    t.on("data", this.#onData);
    t.on("error", (e) => this.#gone(e));
    t.on("close", () => this.#gone());
  }

  /** Connects and reads the greeting. */
  static async open(host: string, port: number, opts: ClientOptions = {}): Promise<{ client: NntpClient; greeting: string }> {
    const client = await NntpClient.connect(host, port, opts);
    try {
      return { client, greeting: await client.line() };
    } catch (err) {
      client.destroy();
      throw err;
    }
  }

  // ---- reading ----

  #data(d: Buffer): void {
    if (this.#binary) this.#bin = this.#at >= this.#bin.length ? d : Buffer.concat([this.#bin.subarray(this.#at), d]);
    else {
      const t = d.toString("latin1");
      this.#str = this.#at >= this.#str.length ? t : this.#str.slice(this.#at) + t;
    }
    this.#at = 0;
    if (this.#reads.length) this.#lastData = performance.now();
    this.#pump();
    const size = this.#binary ? this.#bin.length : this.#str.length;
    if (size - this.#at > this.#maxLine) {
      // what is left may hold whole lines (a block not yet ended, lines not yet asked for): bound the last one
      const nl = this.#binary ? this.#bin.lastIndexOf(CRLF) : this.#str.lastIndexOf("\r\n");
      const partial = size - (nl < this.#at ? this.#at : nl + 2);
      if (partial > this.#maxLine) this.socket.destroy(new Error(`reply line over ${this.#maxLine} octets`));
    }
  }

  /** Keeps what is unconsumed as a string (for reading lines). */
  #text(): string {
    if (this.#binary) {
      this.#str = this.#bin.toString("latin1", this.#at);
      this.#bin = EMPTY;
      this.#binary = false;
      this.#at = 0;
    }
    return this.#str;
  }

  /** Keeps what is unconsumed as a Buffer (for reading blocks). */
  #bytes(): Buffer {
    if (!this.#binary) {
      this.#bin = Buffer.from(this.#at ? this.#str.slice(this.#at) : this.#str, "latin1");
      this.#str = "";
      this.#binary = true;
      this.#at = 0;
    }
    return this.#bin;
  }

  /** Hands buffered replies to whoever is waiting for them, in order. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (;;) {
        const onLine = this.onLine;
        if (onLine) {
          const s = this.#text();
          const at = this.#at;
          const eol = s.indexOf("\r\n", at);
          if (eol < 0) return;
          this.#at = eol + 2;
          onLine(s.slice(at, eol));
          continue;
        }
        const rs = this.#replies;
        if (rs) {
          const b = this.#bytes();
          const at = this.#at;
          const eol = crlf(b, at);
          if (eol < 0) return;
          const status = b.toString("latin1", at, eol);
          if (!rs.multi(status)) {
            this.#at = eol + 2;
            rs.fn(status, undefined);
            continue;
          }
          // the terminator is searched from the status line's own CRLF, so an empty block is "\r\n.\r\n" there
          const end = b.indexOf(TERM, Math.max(eol, at + rs.scanned));
          if (end < 0) {
            rs.scanned = Math.max(eol - at, b.length - at - 4);
            return;
          }
          rs.scanned = 0;
          const v = this.#view;
          v.src = b;
          v.start = eol + 2;
          v.end = Math.max(eol + 2, end + 2);
          this.#at = end + 5;
          rs.fn(status, v);
          v.src = EMPTY;
          continue;
        }
        const r = this.#reads[0];
        if (!r) return;
        if (!this.#take(r)) return;
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Satisfies the read at the head of the queue from the buffer, if it can be. */
  #take(r: Read): boolean {
    let value: unknown;
    if (r.kind === "line") {
      const s = this.#text();
      const at = this.#at;
      const eol = s.indexOf("\r\n", at);
      if (eol < 0) return false;
      value = s.slice(at, eol);
      this.#at = eol + 2;
    } else if (r.kind === "block" || r.kind === "raw") {
      const b = this.#bytes();
      const start = this.#at;
      let end: number;
      if (b.length - start >= 3 && b[start] === DOT && b[start + 1] === CR && b[start + 2] === LF) {
        end = start;
        this.#at = start + 3;
      } else {
        const t = b.indexOf(TERM, start + r.scanned);
        if (t < 0) {
          r.scanned = Math.max(0, b.length - start - 4);
          return false;
        }
        end = t + 2;
        this.#at = t + 5;
      }
      value = r.kind === "raw" ? b.subarray(start, end) : unstuff(b, start, end);
    } else {
      if (!this.closed) return false;
      value = this.#rest();
    }
    this.#reads.shift();
    if (r.timer) clearTimeout(r.timer);
    r.resolve(value as never);
    return true;
  }

  /** Everything received and not consumed; consumes it. */
  #rest(): Buffer {
    const b = this.#binary ? this.#bin.subarray(this.#at) : Buffer.from(this.#str.slice(this.#at), "latin1");
    this.#bin = EMPTY;
    this.#str = "";
    this.#at = 0;
    return b;
  }

  #read<T>(kind: ReadKind, timeoutMs: number | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const r: Read = { kind, resolve: resolve as (v: never) => void, reject, timeoutMs: timeoutMs ?? this.#timeoutMs, since: performance.now(), scanned: 0 };
      this.#reads.push(r);
      if (this.#reads.length === 1 && !this.onLine && !this.#replies && this.#take(r)) return;
      if (this.closed) {
        this.#reads.splice(this.#reads.indexOf(r), 1);
        reject(this.#closedError());
        return;
      }
      if (Number.isFinite(r.timeoutMs)) this.#arm(r, r.timeoutMs);
    });
  }

  /** A read times out when no byte has come for its timeout (since it was asked, or since the last byte). */
  #arm(r: Read, ms: number): void {
    r.timer = setTimeout(() => {
      const quiet = performance.now() - Math.max(r.since, this.#lastData);
      if (quiet < r.timeoutMs) return this.#arm(r, r.timeoutMs - quiet);
      const i = this.#reads.indexOf(r);
      if (i < 0) return;
      this.#reads.splice(i, 1);
      const have = JSON.stringify(this.#binary ? this.#bin.toString("latin1", this.#at, this.#at + 200) : this.#str.slice(this.#at, this.#at + 200));
      r.reject(new Error(`no answer from the server within ${r.timeoutMs} ms (have: ${have})`));
    }, ms);
  }

  #closedError(): Error {
    return this.#error ?? new Error("connection closed");
  }

  /** The next reply line, latin1, without CRLF. */
  line(timeoutMs?: number): Promise<string> {
    return this.#read("line", timeoutMs);
  }

  /** A dot-terminated block (after a multi-line status), unstuffed, CRLF line ends kept, terminator excluded. */
  block(timeoutMs?: number): Promise<Buffer> {
    return this.#read("block", timeoutMs);
  }

  /** A dot-terminated block's lines (latin1), unstuffed. */
  async blockLines(timeoutMs?: number): Promise<string[]> {
    const b = await this.#read<Buffer>("block", timeoutMs);
    return b.length === 0 ? [] : b.toString("latin1", 0, b.length - 2).split("\r\n");
  }

  /** A dot-terminated block as sent: still dot-stuffed, terminator excluded. */
  rawBlock(timeoutMs?: number): Promise<Buffer> {
    return this.#read("raw", timeoutMs);
  }

  /** Waits for the server to close; returns the bytes it sent that were not read. */
  closedByPeer(timeoutMs?: number): Promise<Buffer> {
    return this.#read("close", timeoutMs);
  }

  /** Hands over the reply lines already received and not read (before switching to onLine). */
  takeBuffered(): string[] {
    const out: string[] = [];
    const s = this.#text();
    for (let eol = s.indexOf("\r\n", this.#at); eol >= 0; eol = s.indexOf("\r\n", this.#at)) {
      out.push(s.slice(this.#at, eol));
      this.#at = eol + 2;
    }
    return out;
  }

  /**
   * Event mode for pipelined commands whose replies may carry a block: `fn`
   * gets each whole reply in order, its status line and, when `multi(status)`
   * says that status carries one, its block as a view valid during the call.
   * offReplies() returns to pulled reads.
   */
  onReplies(multi: (status: string) => boolean, fn: (status: string, block: BlockView | undefined) => void): void {
    this.#replies = { multi, fn, scanned: 0 };
    this.#pump();
  }

  offReplies(): void {
    this.#replies = undefined;
  }

  // ---- writing ----

  /** Writes as is (strings as UTF-8). An array goes out in one piece; so does everything written in one tick. */
  write(data: string | Buffer | readonly (string | Buffer)[]): void {
    if (this.closed) return;
    const s = this.socket;
    if (this.#cork && !this.#corked) {
      this.#corked = true;
      s.cork();
      process.nextTick(this.#uncork);
    }
    if (typeof data === "string" || Buffer.isBuffer(data)) s.write(data);
    else if (this.#corked) for (const d of data) s.write(d);
    else {
      s.cork();
      for (const d of data) s.write(d);
      s.uncork();
    }
  }

  #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.socket.uncork();
  };

  /** Sends a command line and reads its status line. */
  command(line: string, timeoutMs?: number): Promise<string> {
    this.write(line + "\r\n");
    return this.line(timeoutMs);
  }

  /** Pipelining: sends the command lines together and reads their status lines, in order. */
  commands(lines: readonly string[], timeoutMs?: number): Promise<string[]> {
    this.write(lines.map((l) => l + "\r\n").join(""));
    return Promise.all(lines.map(() => this.line(timeoutMs)));
  }

  /** Sends a block of CRLF lines (an article as stored): dot-stuffed and terminated. */
  writeBlock(data: Buffer): void {
    this.write(stuffBlock(data));
  }

  // ---- closing ----

  #gone(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.#error = err ?? new Error(this.#byUs ? "connection closed" : "connection closed by peer");
    this.#corked = false;
    // what arrived before the end is still read; the rest fails
    this.#pump();
    for (const r of this.#reads.splice(0)) {
      if (r.timer) clearTimeout(r.timer);
      if (r.kind === "close") r.resolve(this.#rest() as never);
      else r.reject(this.#error);
    }
    this.onClose?.(this.#error);
  }

  /** Says QUIT and closes; the socket is destroyed a second later if the server has not closed it. */
  close(): void {
    this.#byUs = true;
    if (!this.closed) this.socket.end("QUIT\r\n");
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Closes at once (what was written in this tick is sent first). */
  destroy(): void {
    this.#byUs = true;
    this.#uncork();
    this.socket.destroy();
  }
}
