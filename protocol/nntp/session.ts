// One NNTP connection's protocol state: reads frames, runs each command's
// handler, and writes replies in the order the commands came (RFC 3977 §3.5
// pipelining). CHECK and TAKETHIS run concurrently so a streaming peer is
// limited by group commit, not by round trips; every other command waits for
// the ones before it, so state such as the current group stays exact.
import { Framer, type Mode } from "./framer.js";
import type { Reply } from "./reply.js";
import { status, isStreamed, type Streamed } from "./reply.js";
import { C } from "./codes.js";
import type { NntpBackend, Permissions } from "./backend.js";
import type { Group } from "../../storage/groups.js";
import { COMMANDS, type Command } from "./commands/index.js";

export interface SessionLimits {
  maxLine: number;
  maxArticle: number;
  maxInFlight: number;
  /**
   * Reply bytes a session may have queued (on its socket, or finished and
   * waiting behind an earlier command) before it starts no new command and
   * reads no more: a client that does not read is held here, not in memory.
   */
  maxOutput?: number;
}

export interface SessionIo {
  write(data: (string | Buffer)[]): void;
  /** Bytes written and not yet taken by the network; the session calls drained() when it falls. */
  queued(): number;
  end(): void;
  pause(): void;
  resume(): void;
  log(level: "trace" | "debug" | "info" | "warn" | "error", obj: object, msg: string): void;
  /**
   * STARTTLS (RFC 4642), present when the connection can be upgraded: writes
   * `reply` (382) in plain text after everything before it, calls `onWrapped`
   * once no plain-text byte can reach the session any more, and resolves when
   * the handshake is done; rejects, with the connection closed, if it failed.
   */
  startTls?(reply: string, onWrapped: () => void): Promise<void>;
  /** Whether command and reply lines are logged. */
  readonly tracing: boolean;
}

export interface Block {
  data: Buffer;
  size: number;
  tooBig: boolean;
}

interface Slot {
  serial: boolean;
  /** Reads a whole article into its reply (ARTICLE, HEAD, BODY): few run at once. */
  heavy: boolean;
  run: () => Reply | Promise<Reply>;
  done: boolean;
  reply?: Reply;
  replyBytes: number;
}

/** Articles read at once by one session's pipelined ARTICLE/HEAD/BODY. */
const MAX_HEAVY = 32;
const DEFAULT_MAX_OUTPUT = 1 << 20;
/** Bytes held while waiting to answer POST/IHAVE (a client that sends the article early) before reading pauses. */
const MAX_HELD_WHILE_WAITING = 64 * 1024;
/** Bytes of articles read ahead of their TAKETHIS (which waits behind a serial command) before reading pauses. */
const MAX_READY_BYTES = 16 << 20;

export class Session {
  readonly framer: Framer;
  /** What this client may do; recomputed when it authenticates (AUTHINFO, RFC 4643). */
  perms: Permissions;
  /** The connection is encrypted (implicit TLS, or after STARTTLS, RFC 4642). */
  secure = false;
  /** The user this session authenticated as (RFC 4643), if any. */
  user: string | undefined;
  /** A handler that takes the client's next line as data, not as a command (AUTHINFO SASL after 383, RFC 4643 §2.4). */
  nextLine: ((line: string) => void) | undefined;
  /** Command lines received, and articles sent to us (for status and limits). */
  readonly counts = { commands: 0, articles: 0 };
  group: Group | undefined;
  article: number | undefined; // current article number (RFC 3977 §6.1.1)
  streaming = false;
  closing = false;
  #slots: Slot[] = [];
  #seq = 0;
  #articleSeq = 0;
  /** Sequence number of the command whose handler is being started (read it synchronously). */
  runningSeq = 0;
  #started = 0; // slots[0 .. #started) have started
  #runningHeavy = 0;
  #heldReplyBytes = 0; // replies finished but waiting behind an earlier command
  #pumping = false;
  #again = false;
  #readingPaused = false;
  #inFlightFull = false;
  /** The POST or IHAVE the framer is waiting on (it holds the bytes after it until the verdict). */
  #framerHolder: Slot | undefined;
  /** A streamed reply (reply.ts) is being written; nothing after it is flushed meanwhile. */
  #streaming = false;
  #drainWaiter: (() => void) | undefined;
  /** Pending block waiters for commands followed by an article. */
  #blocks: ((b: Block) => void)[] = [];
  /** Blocks that arrived before their command started (it waits behind a serial one). */
  #ready: Block[] = [];
  #readyBytes = 0;

  constructor(
    readonly backend: NntpBackend,
    readonly client: string,
    readonly limits: SessionLimits,
    readonly io: SessionIo,
  ) {
    this.perms = backend.permissions(client);
    this.framer = new Framer(
      {
        line: (t) => this.#onLine(t),
        lineTooLong: (n) => {
          if (this.nextLine) return this.#onLine(""); // the awaited response is answered (not base64), not left hanging
          this.#enqueue(false, false, () => status(C.SYNTAX, `Line too long (${n} > ${this.limits.maxLine} octets)`));
          return "line";
        },
        block: (data, size, tooBig) => {
          this.counts.articles++;
          const w = this.#blocks.shift();
          if (w) w({ data, size, tooBig });
          else {
            this.#ready.push({ data, size, tooBig });
            this.#readyBytes += data.length;
          }
          return "line";
        },
      },
      { maxLine: limits.maxLine, maxBlock: limits.maxArticle },
    );
  }

  /**
   * Sets the current article number on behalf of command `seq`. Reads by
   * number run concurrently; the pointer ends where the last of them in wire
   * order put it, as if they had run one by one (RFC 3977 §6.2.1).
   */
  setArticle(n: number, seq: number): void {
    if (seq < this.#articleSeq) return;
    this.#articleSeq = seq;
    this.article = n;
  }

  greeting(): string {
    // a client that must log in first is greeted, so that it can (RFC 4643 §2.2: then 480)
    const login = !!this.backend.auth && (this.perms.authRequired || this.perms.afterLogin?.read);
    if (!this.perms.read && !this.perms.transit && !login) return status(C.DENIED, `Access denied to ${this.client}`);
    if (this.perms.authRequired) return status(C.NO_POSTING, `${this.backend.pathhost} tidings NNTP service ready (authentication required)`);
    return this.perms.post
      ? status(C.POSTING_OK, `${this.backend.pathhost} tidings NNTP service ready (posting ok)`)
      : status(C.NO_POSTING, `${this.backend.pathhost} tidings NNTP service ready (no posting)`);
  }

  push(chunk: Buffer): void {
    if (this.closing) return;
    this.framer.push(chunk);
    this.#updateReading();
  }

  /** The socket took what was queued: go on with commands held back by back-pressure. */
  drained(): void {
    this.#wakeStream();
    this.#pump();
  }

  /** A streamed reply waiting for room on the socket goes on (or, when closing, ends). */
  #wakeStream(): void {
    const w = this.#drainWaiter;
    this.#drainWaiter = undefined;
    if (w) w();
  }

  /** The next dot-terminated block on the wire. */
  nextBlock(): Promise<Block> {
    const b = this.#ready.shift();
    if (b) {
      this.#readyBytes -= b.data.length;
      this.#updateReading();
      return Promise.resolve(b);
    }
    return new Promise((resolve) => this.#blocks.push(resolve));
  }

  /**
   * POST and IHAVE decide here what follows their command line: the article
   * ("block", after a 340/335) or the next command ("line", after a refusal).
   * The bytes held meanwhile are framed now.
   */
  resumeFramer(mode: "line" | "block"): void {
    this.#framerHolder = undefined;
    this.framer.resume(mode);
    // reading may have paused on what was held meanwhile: the article's rest is still to come
    this.#updateReading();
  }

  /** Sends a reply at once: for 340/335, which the client awaits before sending the article. */
  interim(text: string): void {
    // every reply before this command's is out already: a serial command
    // starts only once those before it are done and flushed (#pump)
    this.io.write([text]);
  }

  close(): void {
    this.closing = true;
    this.backend.releaseAll(this);
    this.#wakeStream();
  }

  #onLine(text: string): Mode {
    const taker = this.nextLine;
    if (taker) {
      this.nextLine = undefined;
      taker(text);
      return "line";
    }
    this.counts.commands++;
    // a password never reaches the log
    if (this.io.tracing) this.io.log("trace", { line: /^\s*authinfo\s+(pass|sasl)\b/i.test(text) ? "AUTHINFO (credentials hidden)" : text.slice(0, 200) }, "command");
    const line = text.trim();
    if (line.length === 0) {
      this.#enqueue(false, false, () => status(C.UNKNOWN, "Empty command"));
      return "line";
    }
    const sp = line.search(/[ \t]/);
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const rest = sp < 0 ? "" : line.slice(sp + 1).trim();
    // one argument (CHECK, TAKETHIS, ARTICLE...) is the common case: no pattern to run for it
    const args = sp < 0 ? [] : rest.indexOf(" ") < 0 && rest.indexOf("\t") < 0 ? [rest] : rest.split(/[ \t]+/);
    const cmd: Command | undefined = COMMANDS[verb];
    if (!cmd) {
      this.#enqueue(false, false, () => status(C.UNKNOWN, `Unknown command ${printableVerb(verb)}`));
      return "line";
    }
    // The article after TAKETHIS follows at once; after POST and IHAVE only once we said 340/335.
    const next: Mode = cmd.block === "always" ? "block" : cmd.block === "after-reply" ? "wait" : "line";
    const concurrent = typeof cmd.concurrent === "function" ? cmd.concurrent(args) : !!cmd.concurrent;
    const heavy = typeof cmd.heavy === "function" ? cmd.heavy(args) : !!cmd.heavy;
    const seq = ++this.#seq;
    const slot = this.#enqueue(!concurrent, heavy, () => ((this.runningSeq = seq), cmd.run(this, args, verb, line)), next === "wait");
    // if the command started and decided at once, resumeFramer() has already run
    if (next === "wait" && this.#framerHolder !== slot) return this.framer.mode;
    return next;
  }

  #enqueue(serial: boolean, heavy: boolean, run: () => Reply | Promise<Reply>, holdsFramer = false): Slot {
    const slot: Slot = { serial, heavy, run, done: false, replyBytes: 0 };
    if (holdsFramer) this.#framerHolder = slot;
    this.#slots.push(slot);
    this.#pump();
    return slot;
  }

  get #maxOutput(): number {
    return this.limits.maxOutput ?? DEFAULT_MAX_OUTPUT;
  }

  #outputFull(): boolean {
    return this.io.queued() + this.#heldReplyBytes > this.#maxOutput;
  }

  /**
   * Writes finished replies in command order and starts what may start. Never
   * re-entered: a handler that resumes the framer frames new commands
   * synchronously, and those only queue; this loop then goes round again.
   */
  #pump(): void {
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#again = false;
        this.#flush();
        if (this.closing) break;
        this.#startMore();
      } while (this.#again || this.#headDone());
    } finally {
      this.#pumping = false;
    }
    this.#updateReading();
  }

  #headDone(): boolean {
    return this.#slots.length > 0 && this.#slots[0].done && !this.#streaming;
  }

  #flush(): void {
    const out: (string | Buffer)[] = [];
    while (this.#headDone()) {
      const head = this.#slots[0];
      if (isStreamed(head.reply)) {
        if (out.length > 0) this.io.write(out.splice(0));
        this.#stream(head, head.reply);
        break;
      }
      const s = this.#slots.shift()!;
      this.#started--;
      this.#heldReplyBytes -= s.replyBytes;
      const r = s.reply as Exclude<Reply, Streamed>;
      if (Array.isArray(r)) out.push(...r);
      else out.push(r);
    }
    if (out.length > 0) {
      if (this.io.tracing) this.io.log("trace", { out: out.map((o) => o.toString().slice(0, 120)) }, "replies");
      this.io.write(out);
    }
  }

  #startMore(): void {
    while (this.#started < this.#slots.length) {
      const s = this.#slots[this.#started];
      // a serial command waits for all before it; nothing passes a serial command still running
      if (this.#started > 0 && (s.serial || this.#slots[0].serial)) break;
      // back-pressure: a client that does not read its replies gets no more work done for it
      if (this.#outputFull()) break;
      if (s.heavy && this.#runningHeavy >= MAX_HEAVY) break;
      this.#started++;
      this.#start(s);
      if (s.serial) break;
    }
  }

  /** Writes a streamed reply piece by piece, waiting for the socket to drain between pieces; then goes on. */
  async #stream(s: Slot, r: Streamed): Promise<void> {
    this.#streaming = true;
    try {
      for await (const piece of r.stream) {
        if (this.closing) break;
        this.io.write([piece]);
        if (this.io.queued() > this.#maxOutput) await new Promise<void>((resolve) => (this.#drainWaiter = resolve));
      }
    } catch (err) {
      // the status line is out: the only honest end is to close the connection
      this.io.log("error", { err, client: this.client }, "streamed reply failed; closing the connection");
      this.closing = true;
      this.io.end();
    } finally {
      this.#streaming = false;
      this.#slots.shift();
      this.#started--;
      this.#heldReplyBytes -= s.replyBytes;
      this.#pump();
    }
  }

  #updateReading(): void {
    if (this.closing) return;
    const n = this.#slots.length;
    if (n >= this.limits.maxInFlight) this.#inFlightFull = true;
    else if (n < this.limits.maxInFlight / 2) this.#inFlightFull = false;
    const pause =
      this.#inFlightFull ||
      this.#outputFull() ||
      this.#readyBytes > MAX_READY_BYTES ||
      (this.framer.mode === "wait" && this.framer.heldBytes > MAX_HELD_WHILE_WAITING);
    if (pause !== this.#readingPaused) {
      this.#readingPaused = pause;
      if (pause) this.io.pause();
      else this.io.resume();
    }
  }

  #start(s: Slot): void {
    if (s.heavy) this.#runningHeavy++;
    let r: Reply | Promise<Reply>;
    try {
      r = s.run();
    } catch (err) {
      r = this.#internal(err);
    }
    if (r instanceof Promise) {
      r.then(
        (v) => this.#finish(s, v),
        (err) => this.#finish(s, this.#internal(err)),
      );
    } else {
      this.#done(s, r);
    }
  }

  #done(s: Slot, r: Reply): void {
    if (s.heavy) this.#runningHeavy--;
    // a handler that failed before deciding must not leave the connection deaf
    if (this.#framerHolder === s) this.resumeFramer("line");
    s.done = true;
    s.reply = r;
    s.replyBytes = replyBytes(r);
    this.#heldReplyBytes += s.replyBytes;
  }

  #finish(s: Slot, r: Reply): void {
    this.#done(s, r);
    this.#pump();
  }

  #internal(err: unknown): Reply {
    this.io.log("error", { err, client: this.client }, "command failed");
    return status(C.INTERNAL, "Internal fault; the session goes on");
  }

  /** Called by QUIT: ends the connection after the replies before it are out. */
  quit(): void {
    queueMicrotask(() => {
      this.closing = true;
      this.io.end();
    });
  }
}

function replyBytes(r: Reply): number {
  if (isStreamed(r)) return 0;
  if (Array.isArray(r)) {
    let n = 0;
    for (const p of r) n += p.length;
    return n;
  }
  return r.length;
}

/** An unknown verb echoed back: short, and nothing that is not printable ASCII. */
function printableVerb(verb: string): string {
  return verb.slice(0, 40).replace(/[^\x21-\x7e]/g, "?");
}
