// Accepts NNTP connections and gives each a Session: connection caps, idle
// timeout, back-pressure. The protocol itself lives in protocol/nntp.
import net from "node:net";
import type { Logger } from "pino";
import { Session, type SessionLimits } from "../protocol/nntp/session.js";
import type { NntpBackend } from "../protocol/nntp/backend.js";

export interface ServerLimits extends SessionLimits {
  maxConnections: number;
  maxPerClient: number;
  idleSeconds: number;
}

/** One open connection: what status, limits and TLS need to know of it. */
export interface Connection {
  id: number;
  socket: net.Socket;
  client: string;
  /** When it connected (ms since the epoch). */
  since: number;
  session: Session;
  /** When the client last sent a byte (ms since the epoch). */
  lastInput: number;
  bytesIn: number;
}

export class NntpServer {
  readonly server: net.Server;
  #perClient = new Map<string, number>();
  #sockets = new Set<net.Socket>();
  readonly #conns = new Map<net.Socket, Connection>();
  /** Connections closed since start and what they sent; status adds the open ones' to make totals. */
  readonly closed = { connections: 0, commands: 0, articles: 0 };
  #nextId = 1;

  constructor(private readonly backend: NntpBackend, private readonly limits: ServerLimits, private readonly log: Logger) {
    this.server = net.createServer((socket) => this.#accept(socket));
    this.server.on("error", (err) => log.error({ err }, "NNTP listener error"));
  }

  listen(host: string, port: number): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ host, port, backlog: 511 }, () => {
        this.server.off("error", reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  get connections(): number {
    return this.#sockets.size;
  }

  /** The open connections, oldest first. */
  list(): Connection[] {
    return [...this.#conns.values()];
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.#sockets) s.destroy();
    });
  }

  #accept(socket: net.Socket): void {
    const client = socket.remoteAddress ?? "unknown";
    const id = this.#nextId++;
    const log = this.log.child({ session: id, client });
    socket.setNoDelay(true);
    const count = this.#perClient.get(client) ?? 0;
    if (this.#sockets.size >= this.limits.maxConnections || count >= this.limits.maxPerClient) {
      // RFC 3977 §5.1.1: 400 when the service is not available right now
      const why = this.#sockets.size >= this.limits.maxConnections ? "too many connections" : `too many connections from ${client}`;
      log.warn({ why }, "connection refused");
      socket.end(`400 Service temporarily unavailable: ${why}; try again later\r\n`);
      return;
    }
    this.#sockets.add(socket);
    this.#perClient.set(client, count + 1);
    let ended = false;
    const session = new Session(this.backend, client, this.limits, {
      write: (parts) => {
        if (ended || socket.destroyed) return;
        socket.cork();
        for (const p of parts) socket.write(p);
        process.nextTick(() => socket.uncork());
      },
      queued: () => socket.writableLength,
      end: () => {
        ended = true;
        socket.end();
      },
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      log: (level, obj, msg) => log[level](obj, msg),
      tracing: log.isLevelEnabled("trace"),
    });
    log.debug("connected");
    const greeting = session.greeting();
    socket.write(greeting);
    if (greeting.startsWith("502")) {
      socket.end();
    }
    socket.setTimeout(this.limits.idleSeconds * 1000, () => {
      log.info("idle timeout");
      if (!ended) socket.end(`400 Idle timeout after ${this.limits.idleSeconds} seconds; closing\r\n`);
      ended = true;
      setTimeout(() => socket.destroy(), 1000).unref();
    });
    const conn: Connection = { id, socket, client, since: Date.now(), session, lastInput: Date.now(), bytesIn: 0 };
    this.#conns.set(socket, conn);
    socket.on("data", (chunk: Buffer) => {
      conn.lastInput = Date.now();
      conn.bytesIn += chunk.length;
      session.push(chunk);
    });
    socket.on("drain", () => session.drained());
    socket.on("error", (err) => log.debug({ err: err.message }, "socket error"));
    socket.on("close", () => {
      ended = true;
      session.close();
      this.closed.connections++;
      this.closed.commands += session.counts.commands;
      this.closed.articles += session.counts.articles;
      this.#sockets.delete(socket);
      this.#conns.delete(socket);
      const n = (this.#perClient.get(client) ?? 1) - 1;
      if (n <= 0) this.#perClient.delete(client);
      else this.#perClient.set(client, n);
      log.debug("disconnected");
    });
  }
}
