// Turns the bytes of an NNTP connection into command lines and dot-terminated
// blocks (RFC 3977 §3.1, §3.1.1). Knows nothing of what the commands mean.

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const LF_DOT = Buffer.from("\n.");

/** What the consumer wants to read next, decided synchronously on each line. */
export type Mode = "line" | "block" | "wait";

export interface FramerSink {
  /** A command line without its CRLF. Returns what follows it on the wire. */
  line(text: string): Mode;
  /** A command line longer than the limit; it has been discarded whole. */
  lineTooLong(octets: number): Mode;
  /**
   * A dot-terminated block, unstuffed, with CRLF line ends as sent. `tooBig` means
   * it exceeded the size bound and `data` is empty: the bytes were read and dropped.
   */
  block(data: Buffer, size: number, tooBig: boolean): Mode;
}

export interface FramerLimits {
  /** Longest command line, CRLF included (RFC 3977 §3.1: 512). */
  maxLine: number;
  /** Largest block kept, in octets after unstuffing. */
  maxBlock: number;
}

export class Framer {
  #mode: Mode = "line";
  #held: Buffer[] = []; // bytes not yet framed (partial line, or all of it while waiting)
  #heldBytes = 0;
  #discarding = false; // inside an over-long command line
  #discarded = 0;
  // block state
  #parts: Buffer[] = [];
  #size = 0;
  #tooBig = false;
  #lineStart = true;
  #inCallback = false;
  #resumed = false;
  #framed = 0;

  constructor(private readonly sink: FramerSink, private readonly limits: FramerLimits) {}

  get mode(): Mode {
    return this.#mode;
  }

  /** Bytes received and not yet framed (a partial line, or everything after a POST/IHAVE awaiting its verdict). */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Command lines (too long ones included) and blocks framed so far: when it moves, a new one has begun. */
  get framed(): number {
    return this.#framed;
  }

  /**
   * What the client is in the middle of sending: part of a command line, part
   * of a block, or nothing. Bytes held in "wait" are not counted: the server
   * owes the next move (340/335 or a refusal), not the client.
   */
  get receiving(): "line" | "block" | undefined {
    if (this.#mode === "line") return this.#heldBytes > 0 || this.#discarding ? "line" : undefined;
    if (this.#mode === "block") return this.#size > 0 || this.#heldBytes > 0 ? "block" : undefined;
    return undefined;
  }

  /** Octets of the block being received so far, after unstuffing (those past the size bound included). */
  get blockOctets(): number {
    return this.#mode === "block" ? this.#size : 0;
  }

  /**
   * Drops every byte received and not yet framed; returns how many. STARTTLS
   * (RFC 4642 §2.2.2): what a client sent after the command in plain text is
   * never run once the connection is encrypted.
   */
  discardHeld(): number {
    const n = this.#heldBytes;
    this.#held = [];
    this.#heldBytes = 0;
    this.#discarding = false;
    this.#discarded = 0;
    return n;
  }

  /** Leaves the "wait" mode (after a 340/335 or a refusal) and frames what was held. */
  resume(mode: Exclude<Mode, "wait">): void {
    if (this.#inCallback) {
      // decided synchronously inside sink.line(): that verdict wins over its return value
      this.#resumed = true;
      this.#setMode(mode);
      return;
    }
    this.#mode = mode;
    if (mode === "block") this.#startBlock();
    const held = this.#takeHeld();
    if (held) this.push(held);
  }

  /** Frames a chunk. Blocks may be views of it: the caller must not write into a chunk once pushed. */
  push(chunk: Buffer): void {
    if (this.#mode === "wait") {
      this.#hold(chunk);
      return;
    }
    if (this.#heldBytes > 0) {
      this.#hold(chunk);
      chunk = this.#takeHeld()!;
    }
    let at = 0;
    while (at < chunk.length) {
      if (this.#mode === "line") at = this.#lines(chunk, at);
      else if (this.#mode === "block") at = this.#block(chunk, at);
      else {
        this.#hold(chunk.subarray(at));
        return;
      }
    }
  }

  #takeHeld(): Buffer | undefined {
    if (this.#heldBytes === 0) return undefined;
    const b = this.#held.length === 1 ? this.#held[0] : Buffer.concat(this.#held, this.#heldBytes);
    this.#held = [];
    this.#heldBytes = 0;
    return b;
  }

  #hold(b: Buffer): void {
    if (b.length === 0) return;
    this.#held.push(b);
    this.#heldBytes += b.length;
  }

  #lines(chunk: Buffer, at: number): number {
    while (at < chunk.length && this.#mode === "line") {
      const lf = chunk.indexOf(LF, at);
      if (lf < 0) {
        const rest = chunk.length - at;
        if (this.#discarding) {
          this.#discarded += rest;
        } else if (rest > this.limits.maxLine) {
          this.#discarding = true;
          this.#discarded = rest;
        } else {
          // a copy of the short tail, so that a waiting partial line does not keep the whole chunk
          this.#hold(Buffer.from(chunk.subarray(at)));
        }
        return chunk.length;
      }
      if (this.#discarding) {
        const octets = this.#discarded + (lf + 1 - at);
        this.#discarding = false;
        this.#discarded = 0;
        at = lf + 1;
        this.#framed++;
        this.#setMode(this.sink.lineTooLong(octets));
        continue;
      }
      const octets = lf + 1 - at;
      if (octets > this.limits.maxLine) {
        at = lf + 1;
        this.#framed++;
        this.#setMode(this.sink.lineTooLong(octets));
        continue;
      }
      const end = lf > at && chunk[lf - 1] === CR ? lf - 1 : lf;
      const text = chunk.toString("utf8", at, end);
      at = lf + 1;
      this.#framed++;
      this.#inCallback = true;
      this.#resumed = false;
      let next: Mode;
      try {
        next = this.sink.line(text);
      } finally {
        this.#inCallback = false;
      }
      if (!this.#resumed) this.#setMode(next);
    }
    return at;
  }

  #setMode(m: Mode): void {
    if (m === "block" && this.#mode !== "block") this.#startBlock();
    this.#mode = m;
  }

  #startBlock(): void {
    this.#parts = [];
    this.#size = 0;
    this.#tooBig = false;
    this.#lineStart = true;
  }

  #append(b: Buffer): void {
    if (b.length === 0) return;
    this.#size += b.length;
    if (this.#tooBig) return;
    if (this.#size > this.limits.maxBlock) {
      this.#tooBig = true;
      this.#parts = [];
      return;
    }
    this.#parts.push(b);
  }

  /** RFC 3977 §3.1.1: a leading "." is doubled on the wire; "." alone ends the block. */
  #block(chunk: Buffer, at: number): number {
    const n = chunk.length;
    while (at < n) {
      if (this.#lineStart) {
        if (chunk[at] === DOT) {
          if (at + 1 >= n) {
            this.#hold(Buffer.from(chunk.subarray(at)));
            return n;
          }
          const c1 = chunk[at + 1];
          if (c1 === LF) return this.#endBlock(at + 2);
          if (c1 === CR) {
            if (at + 2 >= n) {
              this.#hold(Buffer.from(chunk.subarray(at)));
              return n;
            }
            if (chunk[at + 2] === LF) return this.#endBlock(at + 3);
          }
          at += 1; // undo the stuffing
        }
        this.#lineStart = false;
      }
      const j = chunk.indexOf(LF_DOT, at);
      if (j < 0) {
        // no copy: a chunk is the socket's and never written again, and the block's end copies the parts into one
        this.#append(chunk.subarray(at));
        this.#lineStart = chunk[n - 1] === LF;
        return n;
      }
      this.#append(chunk.subarray(at, j + 1));
      at = j + 1;
      this.#lineStart = true;
    }
    return at;
  }

  #endBlock(next: number): number {
    const tooBig = this.#tooBig;
    const size = this.#size;
    // a block within one chunk is a view of it, not a copy: at 10 KB an article the copies'
    // memory, not their time, was the cost (V8 runs a young GC for every so many bytes of
    // new buffers: "external memory pressure" every 30-40 ms under a 10 KB flood)
    const data = tooBig ? Buffer.alloc(0) : this.#parts.length === 1 ? this.#parts[0] : Buffer.concat(this.#parts, size);
    this.#parts = [];
    this.#size = 0;
    this.#mode = "line";
    this.#framed++;
    this.#setMode(this.sink.block(data, size, tooBig));
    return next;
  }
}
