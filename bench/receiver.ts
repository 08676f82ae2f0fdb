// A minimal streaming receiver (RFC 4644): wants everything, stores nothing,
// notes when each article arrived. The far end of propagation benchmarks, for
// tidings and INN's innfeed alike.
import net from "node:net";

export class Receiver {
  readonly arrivals = new Map<string, number>();
  #waiters = new Map<string, () => void>();
  #countWaiters: { n: number; resolve: () => void }[] = [];
  /** How each article came: by TAKETHIS or by IHAVE. */
  readonly via = new Map<string, "takethis" | "ihave">();
  connections = 0;
  private constructor(
    readonly server: net.Server,
    readonly port: number,
    readonly streaming: boolean,
    private readonly silentFirst: number,
  ) {}

  /**
   * `streaming: false` plays a peer without RFC 4644: MODE STREAM gets 500, so
   * senders must use IHAVE. `silentFirst: n` plays a hung peer on the first n
   * connections: greeting and MODE STREAM answered, then nothing.
   */
  static async start(port = 0, opts: { streaming?: boolean; silentFirst?: number } = {}): Promise<Receiver> {
    let self!: Receiver;
    const server = net.createServer((s) => self.#serve(s));
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    self = new Receiver(server, (server.address() as net.AddressInfo).port, opts.streaming ?? true, opts.silentFirst ?? 0);
    return self;
  }

  #serve(s: net.Socket): void {
    const silent = ++this.connections <= this.silentFirst;
    s.setNoDelay(true);
    s.write("200 bench receiver ready\r\n");
    let buf = "";
    let inArticle: string | null = null;
    s.setEncoding("latin1");
    s.on("error", () => {});
    s.on("data", (d: string) => {
      buf += d;
      let out = "";
      for (;;) {
        const i = buf.indexOf("\r\n");
        if (i < 0) break;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inArticle !== null) {
          if (line === ".") {
            this.#arrived(inArticle);
            out += (inArticle.startsWith("I:") ? `235 ok\r\n` : `239 ${inArticle} ok\r\n`);
            inArticle = null;
          }
          continue;
        }
        const [verb, arg] = line.split(" ");
        if (silent && verb.toUpperCase() !== "MODE") continue;
        switch (verb.toUpperCase()) {
          case "MODE": out += this.streaming ? "203 streaming ok\r\n" : "500 Unknown command\r\n"; break;
          case "CAPABILITIES": out += `101 caps\r\nVERSION 2\r\nIHAVE\r\n${this.streaming ? "STREAMING\r\n" : ""}.\r\n`; break;
          case "CHECK": out += `238 ${arg}\r\n`; break;
          case "TAKETHIS": inArticle = arg; break;
          case "IHAVE": out += "335 send\r\n"; inArticle = "I:" + arg; break;
          case "QUIT": out += "205 bye\r\n"; break;
          default: out += "500 what\r\n";
        }
      }
      if (out) s.write(out);
    });
  }

  #arrived(msgid: string): void {
    const id = msgid.startsWith("I:") ? msgid.slice(2) : msgid;
    if (!this.arrivals.has(id)) this.arrivals.set(id, performance.now());
    this.via.set(id, msgid.startsWith("I:") ? "ihave" : "takethis");
    this.#waiters.get(id)?.();
    this.#waiters.delete(id);
    for (const w of [...this.#countWaiters]) {
      if (this.arrivals.size >= w.n) {
        this.#countWaiters.splice(this.#countWaiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  waitFor(msgid: string, timeoutMs = 30_000): Promise<number> {
    const at = this.arrivals.get(msgid);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${msgid} did not arrive`)), timeoutMs);
      this.#waiters.set(msgid, () => {
        clearTimeout(t);
        resolve(this.arrivals.get(msgid)!);
      });
    });
  }

  waitForCount(n: number, timeoutMs = 300_000): Promise<void> {
    if (this.arrivals.size >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${this.arrivals.size} of ${n} arrived`)), timeoutMs);
      this.#countWaiters.push({ n, resolve: () => (clearTimeout(t), resolve()) });
    });
  }

  /** Waits for `n` arrivals, or until none has come for `stallMs`; says how many came and when the last did. */
  async waitForCountOrStall(n: number, stallMs: number): Promise<{ count: number; at: number }> {
    let last = -1;
    let lastAt = performance.now();
    for (;;) {
      if (this.arrivals.size >= n) break;
      if (this.arrivals.size !== last) {
        last = this.arrivals.size;
        lastAt = performance.now();
      } else if (performance.now() - lastAt > stallMs) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    let at = 0;
    for (const t of this.arrivals.values()) at = Math.max(at, t);
    return { count: this.arrivals.size, at };
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}
