// One outgoing NNTP connection: connect with a timeout, read reply lines,
// write commands. Used by peer feeds and `tidings peer check`.
import net from "node:net";

/** Longest reply line we buffer; a peer that sends more without CRLF is cut off, not kept in memory. */
const MAX_LINE = 64 * 1024;

export class NntpConnection {
  #buf = "";
  #lines: string[] = [];
  #waiter?: { resolve: (l: string) => void; reject: (e: Error) => void };
  onLine?: (line: string) => void;
  onClose?: (err: Error) => void;
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding("latin1");
    socket.setNoDelay(true);
    socket.on("data", (d: string) => {
      this.#buf += d;
      let i: number;
      while ((i = this.#buf.indexOf("\r\n")) >= 0) {
        const l = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 2);
        if (this.onLine) this.onLine(l);
        else if (this.#waiter) {
          const w = this.#waiter;
          this.#waiter = undefined;
          w.resolve(l);
        } else this.#lines.push(l);
      }
      if (this.#buf.length > MAX_LINE) socket.destroy(new Error(`reply line over ${MAX_LINE} octets`));
    });
    const gone = (err?: Error) => {
      if (this.closed) return;
      this.closed = true;
      const e = err ?? new Error("connection closed by peer");
      this.#waiter?.reject(e);
      this.#waiter = undefined;
      this.onClose?.(e);
    };
    socket.on("error", (e) => gone(e));
    socket.on("close", () => gone());
  }

  static connect(host: string, port: number, timeoutMs = 10_000): Promise<NntpConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(t);
        resolve(new NntpConnection(s));
      });
      s.once("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  /** The next reply line (only while onLine is unset). */
  line(timeoutMs = 30_000): Promise<string> {
    const l = this.#lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.closed) return Promise.reject(new Error("connection closed"));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#waiter = undefined;
        reject(new Error("no answer from peer"));
      }, timeoutMs);
      this.#waiter = {
        resolve: (v) => (clearTimeout(t), resolve(v)),
        reject: (e) => (clearTimeout(t), reject(e)),
      };
    });
  }

  async command(line: string, timeoutMs?: number): Promise<string> {
    this.write(line + "\r\n");
    return this.line(timeoutMs);
  }

  /** Reads a dot-terminated block of lines (after a 1xx/2xx multi-line status). */
  async block(timeoutMs?: number): Promise<string[]> {
    const out: string[] = [];
    for (;;) {
      const l = await this.line(timeoutMs);
      if (l === ".") return out;
      out.push(l.startsWith("..") ? l.slice(1) : l);
    }
  }

  /** Hands lines that arrived before the switch to event mode. */
  takeBuffered(): string[] {
    return this.#lines.splice(0);
  }

  write(data: string | Buffer | (string | Buffer)[]): void {
    if (this.closed) return;
    if (Array.isArray(data)) {
      this.socket.cork();
      for (const d of data) this.socket.write(d);
      this.socket.uncork();
    } else this.socket.write(data);
  }

  close(): void {
    if (!this.closed) this.socket.end("QUIT\r\n");
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}
