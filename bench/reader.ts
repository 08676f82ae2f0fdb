// Reader-side benchmark client: OVER in chunks as newsreaders ask, and
// pipelined ARTICLE by number. Works against tidings and INN's nnrpd alike.
import net from "node:net";

class Conn {
  #buf: Buffer = Buffer.alloc(0);
  #wait?: () => void;
  constructor(readonly s: net.Socket) {
    s.on("data", (d: Buffer) => {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
      const w = this.#wait;
      this.#wait = undefined;
      w?.();
    });
  }
  static async open(host: string, port: number): Promise<Conn> {
    const s = net.connect(port, host);
    await new Promise<void>((r, j) => (s.once("connect", r), s.once("error", j)));
    const c = new Conn(s);
    await c.line();
    return c;
  }
  async #more(): Promise<void> {
    await new Promise<void>((r) => (this.#wait = r));
  }
  async line(): Promise<string> {
    for (;;) {
      const i = this.#buf.indexOf("\r\n");
      if (i >= 0) {
        const l = this.#buf.toString("latin1", 0, i);
        this.#buf = this.#buf.subarray(i + 2);
        return l;
      }
      await this.#more();
    }
  }
  /** Reads a dot-terminated block; returns its line count. */
  async block(): Promise<number> {
    for (;;) {
      if (this.#buf.length >= 3 && this.#buf[0] === 0x2e && this.#buf[1] === 0x0d && this.#buf[2] === 0x0a) {
        this.#buf = this.#buf.subarray(3);
        return 0;
      }
      const i = this.#buf.indexOf("\r\n.\r\n");
      if (i >= 0) {
        let n = 1;
        for (let j = this.#buf.indexOf("\r\n"); j >= 0 && j < i; j = this.#buf.indexOf("\r\n", j + 2)) n++;
        this.#buf = this.#buf.subarray(i + 5);
        return n;
      }
      await this.#more();
    }
  }
  send(s: string): void {
    this.s.write(s);
  }
  close(): void {
    this.s.destroy();
  }
}

export interface ReaderResult {
  overLinesPerSecond: number;
  articlesPerSecond: number;
}

export async function readBench(host: string, port: number, group: string, seconds = 3): Promise<ReaderResult> {
  const c = await Conn.open(host, port);
  c.send("MODE READER\r\n");
  await c.line();
  c.send(`GROUP ${group}\r\n`);
  const g = (await c.line()).split(" ");
  if (g[0] !== "211") throw new Error(`GROUP failed: ${g.join(" ")}`);
  const low = Number(g[2]), high = Number(g[3]);
  // OVER in chunks of 1000, as tin and slrn fetch a group's overview
  let lines = 0;
  let t0 = performance.now();
  let at = low;
  while (performance.now() - t0 < seconds * 1000) {
    const end = Math.min(high, at + 999);
    c.send(`OVER ${at}-${end}\r\n`);
    const st = await c.line();
    if (st.startsWith("224")) lines += await c.block();
    at = end >= high ? low : end + 1;
  }
  const overLinesPerSecond = lines / ((performance.now() - t0) / 1000);
  // ARTICLE by number, 50 in flight
  let articles = 0;
  t0 = performance.now();
  at = low;
  while (performance.now() - t0 < seconds * 1000) {
    let cmds = "";
    for (let i = 0; i < 50; i++) {
      cmds += `ARTICLE ${at}\r\n`;
      at = at >= high ? low : at + 1;
    }
    c.send(cmds);
    for (let i = 0; i < 50; i++) {
      const st = await c.line();
      if (st.startsWith("220")) {
        await c.block();
        articles++;
      }
    }
  }
  const articlesPerSecond = articles / ((performance.now() - t0) / 1000);
  c.close();
  return { overLinesPerSecond, articlesPerSecond };
}
