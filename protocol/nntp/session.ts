// One NNTP connection's protocol state: reads frames, runs each command's
// handler, and writes replies in the order the commands came (RFC 3977 §3.5
// pipelining). CHECK and TAKETHIS run concurrently so a streaming peer is
// limited by group commit, not by round trips; every other command waits for
// the ones before it, so state such as the current group stays exact.
import { Framer, type Mode } from "./framer.js";
import type { Reply } from "./reply.js";
import { status } from "./reply.js";
import { C } from "./codes.js";
import type { NntpBackend, Permissions } from "./backend.js";
import type { Group } from "../../storage/groups.js";
import { COMMANDS, type Command } from "./commands/index.js";

export interface SessionLimits {
  maxLine: number;
  maxArticle: number;
  maxInFlight: number;
}

export interface SessionIo {
  write(data: (string | Buffer)[]): void;
  end(): void;
  pause(): void;
  resume(): void;
  log(level: "trace" | "debug" | "info" | "warn" | "error", obj: object, msg: string): void;
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
  /** The framer waits on this command's verdict (POST, IHAVE). */
  holdsFramer?: boolean;
  run: () => Reply | Promise<Reply>;
  started: boolean;
  done: boolean;
  reply?: Reply;
}

export class Session {
  readonly framer: Framer;
  readonly perms: Permissions;
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
  #paused = false;
  /** Pending block waiters for commands followed by an article. */
  #blocks: ((b: Block) => void)[] = [];
  /** Blocks that arrived before their command started (it waits behind a serial one). */
  #ready: Block[] = [];

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
          this.#enqueue(false, () => status(C.SYNTAX, `Line too long (${n} > ${this.limits.maxLine} octets)`));
          return "line";
        },
        block: (data, size, tooBig) => {
          const w = this.#blocks.shift();
          if (w) w({ data, size, tooBig });
          else this.#ready.push({ data, size, tooBig });
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
    if (!this.perms.read && !this.perms.transit) return status(C.DENIED, `Access denied to ${this.client}`);
    return this.perms.post
      ? status(C.POSTING_OK, `${this.backend.pathhost} tidings NNTP service ready (posting ok)`)
      : status(C.NO_POSTING, `${this.backend.pathhost} tidings NNTP service ready (no posting)`);
  }

  push(chunk: Buffer): void {
    if (this.closing) return;
    this.framer.push(chunk);
  }

  /** The next dot-terminated block on the wire. */
  nextBlock(): Promise<Block> {
    const b = this.#ready.shift();
    if (b) return Promise.resolve(b);
    return new Promise((resolve) => this.#blocks.push(resolve));
  }

  /** Sends a reply at once: for 340/335, which the client awaits before sending the article. */
  interim(text: string): void {
    this.io.write([text]);
  }

  close(): void {
    this.closing = true;
    this.backend.releaseAll(this);
  }

  #onLine(text: string): Mode {
    if (this.io.tracing) this.io.log("trace", { line: text.slice(0, 200) }, "command");
    const line = text.trim();
    if (line.length === 0) {
      this.#enqueue(false, () => status(C.UNKNOWN, "Empty command"));
      return "line";
    }
    const sp = line.search(/[ \t]/);
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const args = sp < 0 ? [] : line.slice(sp + 1).trim().split(/[ \t]+/);
    const cmd: Command | undefined = COMMANDS[verb];
    if (!cmd) {
      this.#enqueue(false, () => status(C.UNKNOWN, `Unknown command ${verb.slice(0, 40)}`));
      return "line";
    }
    // The article after TAKETHIS follows at once; after POST and IHAVE only once we said 340/335.
    const next: Mode = cmd.block === "always" ? "block" : cmd.block === "after-reply" ? "wait" : "line";
    const concurrent = typeof cmd.concurrent === "function" ? cmd.concurrent(args) : !!cmd.concurrent;
    const seq = ++this.#seq;
    this.#enqueue(!concurrent, () => ((this.runningSeq = seq), cmd.run(this, args, verb)), next === "wait");
    return next;
  }

  #enqueue(serial: boolean, run: () => Reply | Promise<Reply>, holdsFramer = false): void {
    this.#slots.push({ serial, run, started: false, done: false, holdsFramer });
    if (this.#slots.length >= this.limits.maxInFlight && !this.#paused) {
      this.#paused = true;
      this.io.pause();
    }
    this.#pump();
  }

  #pump(): void {
    const out: (string | Buffer)[] = [];
    for (;;) {
      while (this.#slots.length > 0 && this.#slots[0].done) {
        const s = this.#slots.shift()!;
        this.#started--;
        const r = s.reply!;
        if (Array.isArray(r)) out.push(...r);
        else out.push(r);
      }
      if (this.closing) break;
      while (this.#started < this.#slots.length) {
        const s = this.#slots[this.#started];
        // a serial command waits for all before it; nothing passes a serial command still running
        if (this.#started > 0 && (s.serial || (this.#slots[0].serial && !this.#slots[0].done))) break;
        this.#start(s);
        this.#started++;
        if (s.serial) break;
      }
      if (!(this.#slots.length > 0 && this.#slots[0].done)) break;
    }
    if (out.length > 0) {
      if (this.io.tracing) this.io.log("trace", { out: out.map((o) => o.toString().slice(0, 120)) }, "replies");
      this.io.write(out);
    }
    if (this.#paused && this.#slots.length < this.limits.maxInFlight / 2) {
      this.#paused = false;
      this.io.resume();
    }
  }

  #start(s: Slot): void {
    s.started = true;
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
      s.done = true;
      s.reply = r;
    }
  }

  #finish(s: Slot, r: Reply): void {
    // a handler that failed before deciding must not leave the connection deaf
    if (s.holdsFramer && this.framer.mode === "wait") this.framer.resume("line");
    s.done = true;
    s.reply = r;
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
