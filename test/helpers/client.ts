// A small raw NNTP client for tests: send lines, read status lines and blocks exactly.
import net from "node:net";

export class RawClient {
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on("close", () => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on("error", () => {});
  }

  static async connect(port: number, host = "127.0.0.1"): Promise<{ client: RawClient; greeting: string }> {
    const socket = net.connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new RawClient(socket);
    const greeting = await client.line();
    return { client, greeting };
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  async #more(timeoutMs: number): Promise<void> {
    if (this.closed) throw new Error("connection closed");
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for the server (have: ${JSON.stringify(this.#buf.toString("latin1").slice(0, 200))})`)), timeoutMs);
      this.#waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** One line without CRLF. */
  async line(timeoutMs = 10_000): Promise<string> {
    for (;;) {
      const i = this.#buf.indexOf("\r\n");
      if (i >= 0) {
        const l = this.#buf.toString("utf8", 0, i);
        this.#buf = this.#buf.subarray(i + 2);
        return l;
      }
      await this.#more(timeoutMs);
    }
  }

  /** A dot-terminated block, raw (still dot-stuffed), terminator excluded. */
  async rawBlock(timeoutMs = 10_000): Promise<Buffer> {
    for (;;) {
      const start = this.#buf.length >= 3 && this.#buf.subarray(0, 3).toString() === ".\r\n" ? 0 : -1;
      if (start === 0) {
        this.#buf = this.#buf.subarray(3);
        return Buffer.alloc(0);
      }
      const i = this.#buf.indexOf("\r\n.\r\n");
      if (i >= 0) {
        const b = this.#buf.subarray(0, i + 2);
        this.#buf = this.#buf.subarray(i + 5);
        return b;
      }
      await this.#more(timeoutMs);
    }
  }

  /** A block's lines, unstuffed. */
  async lines(): Promise<string[]> {
    const b = (await this.rawBlock()).toString("utf8");
    if (b === "") return [];
    return b.slice(0, -2).split("\r\n").map((l) => (l.startsWith("..") ? l.slice(1) : l));
  }

  /** Sends a command and returns its status line. */
  async cmd(line: string): Promise<string> {
    this.send(line + "\r\n");
    return this.line();
  }

  /** Waits for the server to close; returns what it sent meanwhile. */
  async closedByServer(timeoutMs = 10_000): Promise<string> {
    while (!this.closed) await this.#more(timeoutMs);
    return this.#buf.toString("utf8");
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Dot-stuffs an article given with CRLF lines and adds the terminator. */
export function stuff(article: string | Buffer): Buffer {
  const s = Buffer.isBuffer(article) ? article.toString("latin1") : article;
  const body = s.replace(/(^|\r\n)\./g, "$1..");
  return Buffer.from(body + (body === "" || body.endsWith("\r\n") ? "" : "\r\n") + ".\r\n", "latin1");
}

let seq = 0;
export function makeArticle(opts: { msgid?: string; groups?: string; subject?: string; path?: string; body?: string; extra?: string } = {}): { msgid: string; text: string } {
  const msgid = opts.msgid ?? `<t${Date.now().toString(36)}.${process.pid}.${seq++}@test.example>`;
  const text =
    `Path: ${opts.path ?? "peer.example!not-for-mail"}\r\n` +
    `From: Test Poster <poster@example.org>\r\n` +
    `Newsgroups: ${opts.groups ?? "local.test"}\r\n` +
    `Subject: ${opts.subject ?? "test article"}\r\n` +
    `Date: ${new Date().toUTCString()}\r\n` +
    `Message-ID: ${msgid}\r\n` +
    (opts.extra ?? "") +
    `\r\n` +
    (opts.body ?? "Hello.\r\n");
  return { msgid, text };
}
