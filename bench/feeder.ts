// A streaming feeder (RFC 4644): offers synthetic valid articles with
// pipelined CHECK and sends the wanted ones with TAKETHIS, over one or more
// connections, and reports what was accepted. Talks to any NNTP transit
// server, so tidings and INN are measured by the same client.
import { NntpClient } from "../protocol/nntp/client.js";

export interface FeedOptions {
  host: string;
  port: number;
  count: number;
  bodyBytes: number;
  connections: number;
  /** CHECKs in flight per connection. */
  window: number;
  group: string;
  /** Distinguishes runs so Message-IDs never collide with history. */
  tag: string;
  timeoutMs?: number;
  /** Resolve with what was acknowledged so far if the server goes away (crash tests). */
  tolerateClose?: boolean;
  /** Called on every 239. */
  onAck?: (msgid: string) => void;
}

export interface FeedResult {
  offered: number;
  accepted: number;
  refused: number;
  deferred: number;
  seconds: number;
  bytes: number;
  /** Message-IDs that got 239, in order of acknowledgement. */
  acked: string[];
}

export function makeArticle(tag: string, i: number, bodyBytes: number, group: string): { msgid: string; wire: Buffer } {
  const msgid = `<${tag}.${i}@bench.example>`;
  const head =
    `Path: feeder.example!not-for-mail\r\nFrom: Bench <bench@example.org>\r\nNewsgroups: ${group}\r\n` +
    `Subject: bench article ${i}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: ${msgid}\r\n\r\n`;
  const line = "The quick brown fox jumps over the lazy dog, article " + i + " of the benchmark.";
  let body = "";
  while (body.length < bodyBytes) body += line.slice(0, Math.min(line.length, bodyBytes - body.length)) + "\r\n";
  return { msgid, wire: Buffer.from(head + body + ".\r\n") };
}

export async function feed(o: FeedOptions): Promise<FeedResult> {
  const per = Math.ceil(o.count / o.connections);
  // make the articles and open the connections first: the clock covers the feed only
  const ready = await Promise.all(
    Array.from({ length: o.connections }, (_, c) => {
      const from = c * per;
      const to = Math.min(o.count, from + per);
      return openFeed(o, from, to);
    }),
  );
  const started = process.hrtime.bigint();
  const parts = await Promise.all(ready.map((go) => go()));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const r: FeedResult = { offered: 0, accepted: 0, refused: 0, deferred: 0, seconds, bytes: 0, acked: [] };
  for (const p of parts) {
    r.offered += p.offered;
    r.accepted += p.accepted;
    r.refused += p.refused;
    r.deferred += p.deferred;
    r.bytes += p.bytes;
    for (const id of p.acked) r.acked.push(id); // not push(...): over ~120,000 ids that overflows the stack
  }
  return r;
}

/**
 * Makes articles [from, to) and opens one connection in streaming mode; the
 * function returned feeds them (pipelined CHECK, TAKETHIS on 238). Used for
 * each connection of feed() and in each process of feed-procs.ts.
 */
export async function openFeed(o: Omit<FeedOptions, "count" | "connections">, from: number, to: number): Promise<() => Promise<Omit<FeedResult, "seconds">>> {
  const r = { offered: 0, accepted: 0, refused: 0, deferred: 0, bytes: 0, acked: [] as string[] };
  if (to <= from) return async () => r;
  const articles = new Map<string, Buffer>();
  const order: string[] = [];
  for (let i = from; i < to; i++) {
    const a = makeArticle(o.tag, i, o.bodyBytes, o.group);
    articles.set(a.msgid, a.wire);
    order.push(a.msgid);
  }
  // the client corks what is written in one tick: the TAKETHIS and CHECK written for one batch of replies go out in one writev
  const { client, greeting } = await NntpClient.open(o.host, o.port, { timeoutMs: o.timeoutMs ?? 600_000 });
  if (!/^20[01]/.test(greeting)) throw new Error(`greeting: ${greeting}`);
  const mode = await client.command("MODE STREAM");
  if (!mode.startsWith("203")) throw new Error(`MODE STREAM refused: ${mode}`);

  return async () => {
    await new Promise<void>((resolve, reject) => {
      let nextIndex = 0;
      let outstanding = 0;
      let done = 0;
      const total = order.length;
      const timer = setTimeout(() => reject(new Error(`feed timed out after ${done}/${total}`)), o.timeoutMs ?? 600_000);
      const gone = () => {
        clearTimeout(timer);
        if (o.tolerateClose) resolve();
        else reject(new Error(`connection closed after ${done}/${total}`));
      };
      client.onClose = gone;
      const offerMore = () => {
        let out = "";
        while (outstanding < o.window && nextIndex < total) {
          out += `CHECK ${order[nextIndex++]}\r\n`;
          outstanding++;
          r.offered++;
        }
        if (out) client.write(out);
      };
      const finishOne = () => {
        done++;
        if (done === total) {
          clearTimeout(timer);
          client.onClose = undefined;
          resolve();
        }
      };
      client.onLine = (l) => {
        const code = l.slice(0, 3);
        const id = l.split(" ")[1];
        switch (code) {
          case "238": {
            const wire = articles.get(id)!;
            client.write(`TAKETHIS ${id}\r\n`);
            client.write(wire);
            r.bytes += wire.length;
            break;
          }
          case "239":
            r.accepted++;
            r.acked.push(id);
            o.onAck?.(id);
            outstanding--;
            finishOne();
            break;
          case "438":
          case "439":
            r.refused++;
            outstanding--;
            finishOne();
            break;
          case "431":
            r.deferred++;
            outstanding--;
            finishOne();
            break;
          default:
            clearTimeout(timer);
            reject(new Error(`unexpected reply: ${l}`));
            return;
        }
        offerMore();
      };
      offerMore();
    });
    client.onLine = undefined;
    client.close();
    return r;
  };
}
