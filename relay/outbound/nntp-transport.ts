// The NNTP transports of the outbound queue: a session to one peer that
// offers backlog rows by RFC 4644 streaming (CHECK within the window, TAKETHIS
// once the peer says 238; replies come in order) or, to a peer without
// streaming, by IHAVE (RFC 3977 §6.3.2), one article at a time. Each reply is
// read through the command's table (dispositions.ts).
import type { Storage } from "../../storage/database.js";
import type { BacklogRow } from "../../storage/backlog.js";
import { stuffBlock } from "../../protocol/nntp/reply.js";
import { NntpClient, type ClientTls } from "../../protocol/nntp/client.js";
import { NNTP, nntpDisposition } from "./dispositions.js";
import type { FinalDisposition, Outcome, Session, Transport } from "./transport.js";
import { NoCheck } from "./no-check.js";

export interface NntpDestination {
  host: string;
  port: number;
  /** Ask for MODE STREAM; a peer that does not offer it gets IHAVE. */
  streaming: boolean;
  /** Offers outstanding at once when streaming. */
  window: number;
  /** TLS to the peer, its certificate verified (implicit, or STARTTLS after the greeting); none: plain text. */
  tls?: ClientTls;
  /** Seconds a peer may sit on offered articles without a word before the session is dropped. */
  replyTimeout: number;
}

/** What the transport tells its owner as it goes (for the feed's figures and log). */
export interface NntpCounters {
  mode: "streaming" | "ihave" | null;
  bytesSent: number;
  /** Whether this peer is offered TAKETHIS without CHECK (kept across its sessions). */
  noCheck?: NoCheck;
}

type Articles = Pick<Storage["articles"], "byId">;

export class NntpTransport implements Transport<BacklogRow, Outcome> {
  constructor(
    private readonly dest: NntpDestination,
    private readonly articles: Articles,
    private readonly counters: NntpCounters,
    private readonly onConnected?: (mode: "streaming" | "ihave", encrypted: boolean) => void,
  ) {}

  async open(): Promise<Session<BacklogRow, Outcome>> {
    const conn = await NntpClient.connect(this.dest.host, this.dest.port, { tls: this.dest.tls });
    try {
      const greeting = await conn.line();
      if (!/^20[01]/.test(greeting)) throw new Error(`greeting: ${greeting}`);
      // never a word in plain text when TLS is asked for: a refused STARTTLS or a certificate that does not verify ends here
      if (this.dest.tls?.mode === "starttls") await conn.startTls(this.dest.tls);
      let streaming = false;
      if (this.dest.streaming) {
        const r = await conn.command("MODE STREAM");
        if (r.startsWith("203")) streaming = true;
        else if (r.startsWith("502") || r.startsWith("480")) throw new Error(`peer refuses us: ${r}`);
      }
      this.counters.mode = streaming ? "streaming" : "ihave";
      this.onConnected?.(this.counters.mode, conn.encrypted);
      return streaming ? new StreamSession(conn, this.dest, this.articles, this.counters) : new IhaveSession(conn, this.articles, this.counters);
    } catch (err) {
      conn.close();
      throw err;
    }
  }
}

interface Waiting {
  resolve: (o: Outcome) => void;
  reject: (e: Error) => void;
}

/** RFC 4644: CHECK for each offer; TAKETHIS once the peer says 238. */
class StreamSession implements Session<BacklogRow, Outcome> {
  readonly window: number;
  readonly closed: Promise<Error | undefined>;
  #end!: (e: Error | undefined) => void;
  /** `direct`: a TAKETHIS sent without CHECK (no-CHECK mode). */
  #fifo: { kind: "check" | "takethis"; row: BacklogRow; direct?: boolean }[] = [];
  readonly #noCheck: NoCheck;
  #head = 0;
  #waiting = new Map<BacklogRow, Waiting>();
  /** The bytes to send, read ahead while the peer answers CHECK, so a 238 is followed by TAKETHIS at once. */
  #prefetched = new Map<BacklogRow, Promise<{ data: Buffer } | undefined>>();
  #finished = false;
  #lastHeard = Date.now();
  #watchdog: NodeJS.Timeout;

  constructor(
    private readonly conn: NntpClient,
    private readonly dest: NntpDestination,
    private readonly articles: Articles,
    private readonly counters: NntpCounters,
  ) {
    this.window = dest.window;
    this.#noCheck = counters.noCheck ??= new NoCheck();
    this.closed = new Promise((r) => (this.#end = r));
    // a peer that takes our offers and then says nothing (hung, or a link that drops
    // packets without closing) would hold the window for ever: time it out, reconnect
    const timeoutMs = dest.replyTimeout * 1000;
    this.#watchdog = setInterval(() => {
      if (this.#waiting.size > 0 && Date.now() - this.#lastHeard > timeoutMs) {
        this.#finish(new Error(`peer did not answer for ${dest.replyTimeout} s with ${this.#waiting.size} offers open`));
      }
    }, Math.max(50, Math.min(5000, timeoutMs / 4)));
    conn.onClose = (err) => this.#finish(err ?? new Error("connection closed"));
    conn.onLine = (line) => this.#reply(line);
    for (const l of conn.takeBuffered()) this.#reply(l);
  }

  offer(row: BacklogRow): Promise<Outcome> {
    if (this.#finished) return Promise.reject(new Error("session closed"));
    if (!row.msgid) return Promise.resolve({ disposition: "gone", reply: "article gone" });
    return new Promise((resolve, reject) => {
      if (this.#waiting.size === 0) this.#lastHeard = Date.now(); // the silence that counts starts with an offer
      this.#waiting.set(row, { resolve, reject });
      // an article goes at once when the peer takes nearly all (no-check.ts): in hand, or
      // read first (a feed that has fallen behind reads its backlog without the bytes)
      if (this.#noCheck.on) {
        if (row.data) this.#send(row, row.data, true);
        else this.#takethis(row, true).catch((e) => this.#finish(e));
        return;
      }
      this.#fifo.push({ kind: "check", row });
      this.conn.write(`CHECK ${row.msgid}\r\n`);
      if (row.data) this.#prefetched.set(row, Promise.resolve({ data: row.data }));
      else if (this.#waiting.size <= 32) this.#prefetched.set(row, this.articles.byId(row.article).catch(() => undefined));
    });
  }

  #answer(row: BacklogRow, disposition: FinalDisposition, reply: string): void {
    this.#prefetched.delete(row);
    const w = this.#waiting.get(row);
    this.#waiting.delete(row);
    w?.resolve({ disposition, reply });
  }

  /** TAKETHIS after the peer's 238, or `direct` in no-CHECK mode (its answer then counts for no-check.ts). */
  async #takethis(row: BacklogRow, direct = false): Promise<void> {
    const early = this.#prefetched.get(row);
    this.#prefetched.delete(row);
    const a = await (early ?? this.articles.byId(row.article));
    if (this.#finished) return;
    if (!a) return this.#answer(row, "gone", "article gone");
    this.#send(row, a.data, direct);
  }

  /** Writes a TAKETHIS; its reply is matched by the order the commands went out in. */
  #send(row: BacklogRow, data: Buffer, direct: boolean): void {
    this.#fifo.push({ kind: "takethis", row, direct });
    this.counters.bytesSent += data.length;
    this.conn.write([`TAKETHIS ${row.msgid}\r\n`, ...stuffBlock(data)]);
  }

  #reply(line: string): void {
    this.#lastHeard = Date.now();
    const sent = this.#fifo[this.#head++];
    if (this.#head > 1024) {
      this.#fifo.splice(0, this.#head);
      this.#head = 0;
    }
    if (!sent) return this.#finish(new Error(`unexpected reply: ${line}`));
    const cmd = sent.kind === "check" ? NNTP.CHECK : NNTP.TAKETHIS;
    const d = nntpDisposition(cmd, line);
    if (d === undefined) return this.#finish(new Error(`${sent.kind === "check" ? "CHECK" : "TAKETHIS"} answered: ${line}`));
    if (sent.kind === "check" || sent.direct) this.#noCheck.sample(d === "send" || d === "done");
    if (d === "send") {
      this.#takethis(sent.row).catch((e) => this.#finish(e));
      return;
    }
    this.#answer(sent.row, d, line);
    // 400: the peer is going away; what it deferred is offered again after the reconnection
    if (line.startsWith("400")) this.#finish(new Error(`peer: ${line}`));
  }

  #finish(err: Error | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    clearInterval(this.#watchdog);
    this.conn.onLine = undefined;
    const e = err ?? new Error("session closed");
    for (const w of this.#waiting.values()) w.reject(e);
    this.#waiting.clear();
    this.#prefetched.clear();
    this.conn.close();
    this.#end(err);
  }

  close(): void {
    this.#finish(undefined);
  }
}

/** RFC 3977 §6.3.2, one article at a time. */
class IhaveSession implements Session<BacklogRow, Outcome> {
  readonly window = 1;
  readonly closed: Promise<Error | undefined>;
  #end!: (e: Error | undefined) => void;
  #finished = false;

  constructor(
    private readonly conn: NntpClient,
    private readonly articles: Articles,
    private readonly counters: NntpCounters,
  ) {
    this.closed = new Promise((r) => (this.#end = r));
    conn.onClose = (err) => this.#finish(err ?? new Error("connection closed"));
  }

  async offer(row: BacklogRow): Promise<Outcome> {
    if (this.#finished) throw new Error("session closed");
    try {
      const a = row.data && row.msgid ? { msgid: row.msgid, data: row.data } : row.msgid ? await this.articles.byId(row.article) : undefined;
      if (!a) return { disposition: "gone", reply: "article gone" };
      let r = await this.conn.command(`IHAVE ${a.msgid}`);
      let d = nntpDisposition(NNTP.IHAVE, r);
      if (d === "send") {
        this.counters.bytesSent += a.data.length;
        this.conn.write(stuffBlock(a.data));
        r = await this.conn.line(120_000);
        d = nntpDisposition(NNTP.IHAVE_TRANSFER, r);
        if (d === undefined) throw new Error(`IHAVE transfer answered: ${r}`);
      }
      if (d === undefined || d === "send") throw new Error(`IHAVE answered: ${r}`);
      return { disposition: d, reply: r };
    } catch (err) {
      this.#finish(err as Error);
      throw err;
    }
  }

  #finish(err: Error | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    this.conn.close();
    this.#end(err);
  }

  close(): void {
    this.#finish(undefined);
  }
}
