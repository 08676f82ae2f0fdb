// The tests' face on the NNTP client (protocol/nntp/client.ts): send lines,
// read status lines and blocks exactly. Strings read are UTF-8; each send()
// goes out as written (no corking, no TCP_NODELAY), replies of any length are
// kept, and a read gives up after 10 s without a byte.
import { NntpClient, type ClientOptions } from "../../protocol/nntp/client.js";

const OPTIONS: ClientOptions = { maxLine: Infinity, noDelay: false, cork: false, timeoutMs: 10_000 };
const utf8 = (latin1: string) => Buffer.from(latin1, "latin1").toString("utf8");

export class RawClient {
  private constructor(readonly nntp: NntpClient) {}

  get socket() {
    return this.nntp.socket;
  }

  get closed(): boolean {
    return this.nntp.closed;
  }

  static async connect(port: number, host = "127.0.0.1"): Promise<{ client: RawClient; greeting: string }> {
    const { client, greeting } = await NntpClient.open(host, port, OPTIONS);
    return { client: new RawClient(client), greeting: utf8(greeting) };
  }

  send(data: string | Buffer): void {
    this.nntp.write(data);
  }

  /** One line without CRLF. */
  async line(timeoutMs = 10_000): Promise<string> {
    return utf8(await this.nntp.line(timeoutMs));
  }

  /** A dot-terminated block, raw (still dot-stuffed), terminator excluded. */
  rawBlock(timeoutMs = 10_000): Promise<Buffer> {
    return this.nntp.rawBlock(timeoutMs);
  }

  /** A block's lines, unstuffed. */
  async lines(): Promise<string[]> {
    return (await this.nntp.blockLines()).map(utf8);
  }

  /** Sends a command and returns its status line. */
  async cmd(line: string): Promise<string> {
    this.send(line + "\r\n");
    return this.line();
  }

  /** Waits for the server to close; returns what it sent meanwhile. */
  async closedByServer(timeoutMs = 10_000): Promise<string> {
    return (await this.nntp.closedByPeer(timeoutMs)).toString("utf8");
  }

  close(): void {
    this.nntp.destroy();
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

/** One command on a connection of its own; its status line. */
export async function commandOn(port: number, line: string): Promise<string> {
  const { client } = await RawClient.connect(port);
  try {
    return await client.cmd(line);
  } finally {
    client.close();
  }
}

/**
 * One POST on a connection of its own, after AUTHINFO when a login is given:
 * the reply to the article, or the refusal of POST itself.
 */
export async function postOn(port: number, text: string, login?: [string, string]): Promise<string> {
  const { client } = await RawClient.connect(port);
  try {
    if (login) {
      await client.cmd(`AUTHINFO USER ${login[0]}`);
      await client.cmd(`AUTHINFO PASS ${login[1]}`);
    }
    const r = await client.cmd("POST");
    if (!r.startsWith("340")) return r;
    client.send(stuff(text));
    return await client.line();
  } finally {
    client.close();
  }
}

/** Polls `f` every 50 ms until it gives a value; fails the test after `ms`. */
export async function until<T>(f: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
