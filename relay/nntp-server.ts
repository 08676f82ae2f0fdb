// Accepts NNTP connections and gives each a Session: connection caps, idle
// timeout, back-pressure. The protocol itself lives in protocol/nntp.
import net from "node:net";
import tls from "node:tls";
import type { Logger } from "pino";
import { acceptTls, type TlsContexts } from "./tls.js";
import { upgradeToTls } from "./starttls.js";
import { Session, type SessionLimits } from "../protocol/nntp/session.js";
import type { NntpBackend } from "../protocol/nntp/backend.js";
import { ConnectionGuard, type GuardLimits } from "./limits.js";
import { ReadGate } from "./deadlines.js";

export interface ServerLimits extends SessionLimits, GuardLimits {
  maxConnections: number;
  maxPerClient: number;
  idleSeconds: number;
}

/** TLS handshakes under way at once from one address on the implicit-TLS listener. */
const MAX_HANDSHAKES_PER_ADDRESS = 8;
/** Reply text held for the end of the turn beyond this is written at once (a long listing, say). */
const OUT_TEXT_MAX = 64 * 1024;

/** One open connection: what status, limits and TLS need to know of it. */
export interface Connection {
  id: number;
  /** The socket the session reads and writes: after STARTTLS, the TLS socket on top of the first one. */
  socket: net.Socket;
  client: string;
  /** When it connected (ms since the epoch). */
  since: number;
  session: Session;
  /** When the client last sent a byte (ms since the epoch). */
  lastInput: number;
  bytesIn: number;
  /** Sends `reply` (a 400 line) and closes; nothing the session writes after it goes out. */
  cutOff(reply: string): void;
}

export class NntpServer {
  readonly server: net.Server;
  #sockets = new Set<net.Socket>();
  readonly #conns = new Map<net.Socket, Connection>();
  /** Connections closed since start and what they sent; status adds the open ones' to make totals. */
  readonly closed = { connections: 0, commands: 0, articles: 0 };
  #nextId = 1;
  /** The certificate for STARTTLS and the nntps listener (relay/tls.ts); unset: no TLS. */
  tls?: TlsContexts;
  /** The implicit-TLS listener (RFC 8143, port 563 by convention), when one is open. */
  tlsServer?: net.Server;
  #handshaking = new Set<net.Socket>();

  /** Admission, deadlines and rates (relay/limits.ts). */
  readonly guard: ConnectionGuard;

  constructor(private readonly backend: NntpBackend, private limits: ServerLimits, private readonly log: Logger) {
    this.guard = new ConnectionGuard(limits, log);
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

  /**
   * Opens the implicit-TLS listener: the TLS handshake comes first, then the
   * connection is admitted and served like any other, with the session secure.
   */
  listenTls(host: string, port: number): Promise<net.AddressInfo> {
    const contexts = this.tls;
    if (!contexts) throw new Error("an nntps listener needs a certificate ([tls] cert and key)");
    const server = net.createServer((raw) => {
      // a handshake holds a socket too: bounded in all and per address, so that
      // connections that never finish it cannot take the room of real clients
      const from = raw.remoteAddress ?? "unknown";
      let mine = 0;
      for (const h of this.#handshaking) if (h.remoteAddress === from) mine++;
      if (mine >= MAX_HANDSHAKES_PER_ADDRESS || this.#handshaking.size + this.#sockets.size >= this.limits.maxConnections) {
        this.guard.logOnce.event("info", "TLS handshakes", from, "connection refused before its TLS handshake: too many at once", { handshaking: this.#handshaking.size });
        raw.destroy();
        return;
      }
      this.#handshaking.add(raw);
      acceptTls(raw, contexts).then(
        (t) => {
          this.#handshaking.delete(raw);
          this.#accept(t);
        },
        (err) => {
          this.#handshaking.delete(raw);
          this.log.debug({ client: raw.remoteAddress, err: (err as Error).message }, "TLS handshake failed");
        },
      );
    });
    server.on("error", (err) => this.log.error({ err }, "NNTPS listener error"));
    this.tlsServer = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port, backlog: 511 }, () => {
        server.off("error", reject);
        resolve(server.address() as net.AddressInfo);
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

  /**
   * New limits (a reload): connections opened from now on get all of them;
   * open ones keep their line and article bounds and idle timeout, and take
   * the new deadlines, rates and shares at once.
   */
  setLimits(limits: ServerLimits): void {
    this.limits = limits;
    this.guard.set(limits);
  }

  /** Counts a POST against its user's or address's hourly quota; the text of a 441 when it is used. */
  takePost(who: { user?: string; client: string; transit: boolean }): string | undefined {
    return this.guard.takePost(who);
  }

  async close(): Promise<void> {
    this.guard.stop();
    const tlsClosed = new Promise<void>((resolve) => (this.tlsServer ? this.tlsServer.close(() => resolve()) : resolve()));
    for (const s of this.#handshaking) s.destroy();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.#sockets) s.destroy();
    });
    await tlsClosed;
  }

  #accept(socket: net.Socket): void {
    const client = socket.remoteAddress ?? "unknown";
    const id = this.#nextId++;
    const log = this.log.child({ session: id, client });
    socket.setNoDelay(true);
    // per-address shares and idle eviction (relay/admission.ts); logged once per cause and address
    const why = this.guard.admit(client, this.#conns.values());
    if (why) {
      // RFC 3977 §5.1.1: 400 when the service is not available right now
      socket.on("error", () => {});
      socket.end(`400 Service temporarily unavailable: ${why}; try again later\r\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    this.#sockets.add(socket);
    let ended = false;
    const gate = new ReadGate(() => conn.socket);
    const out = {
      text: "",
      corked: false,
      // at the end of the turn, and before STARTTLS writes its 382 on the plain socket (the replies before it go first)
      flush: () => {
        const s = conn.socket;
        out.corked = false;
        if (out.text && !s.destroyed) s.write(out.text);
        out.text = "";
        s.uncork();
      },
    };
    const session = new Session(this.backend, client, this.limits, {
      // conn.socket, not socket: after STARTTLS it is the TLS socket
      write: (parts) => {
        const s = conn.socket;
        if (ended || s.destroyed) return;
        // Reply lines of one turn of the event loop go as one string: a chunk each made
        // the corked writev convert and pass every 239 of a TAKETHIS stream on its own, and
        // the replies of a batch's articles, which complete one by one, come in many calls.
        // Bytes (articles) keep their place in the order; text never waits past the turn.
        if (!out.corked) {
          out.corked = true;
          s.cork();
          process.nextTick(out.flush);
        }
        for (const p of parts) {
          if (typeof p === "string") out.text += p;
          else {
            if (out.text) s.write(out.text);
            out.text = "";
            s.write(p);
          }
        }
        if (out.text.length >= OUT_TEXT_MAX) {
          s.write(out.text);
          out.text = "";
        }
      },
      queued: () => conn.socket.writableLength,
      end: () => {
        ended = true;
        out.flush(); // the last replies (205, 400) before the end
        conn.socket.end();
      },
      pause: () => gate.hold("session"),
      resume: () => gate.release("session"),
      startTls: this.tls && !(socket instanceof tls.TLSSocket) ? (reply, onWrapped) => (out.flush(), this.#startTls(conn, reply, onWrapped, wire, unwire)) : undefined,
      log: (level, obj, msg) => log[level](obj, msg),
      tracing: log.isLevelEnabled("trace"),
    });
    // implicit TLS (listenTls): encrypted from the first byte
    session.secure = socket instanceof tls.TLSSocket;
    log.debug("connected");
    const greeting = session.greeting();
    socket.write(greeting);
    if (greeting.startsWith("502")) {
      socket.end();
    }
    const idleSeconds = this.limits.idleSeconds;
    const onIdle = () => {
      log.info("idle timeout");
      if (!ended) conn.socket.end(`400 Idle timeout after ${idleSeconds} seconds; closing\r\n`);
      ended = true;
      setTimeout(() => conn.socket.destroy(), 1000).unref();
    };
    const cutOff = (reply: string) => {
      if (!ended) conn.socket.end(reply);
      ended = true;
      session.closing = true;
      setTimeout(() => conn.socket.destroy(), 1000).unref();
    };
    const conn: Connection = { id, socket, client, since: Date.now(), session, lastInput: Date.now(), bytesIn: 0, cutOff };
    this.#conns.set(socket, conn);
    this.guard.opened(conn, gate);
    const onData = (chunk: Buffer) => {
      conn.lastInput = Date.now();
      conn.bytesIn += chunk.length;
      session.push(chunk);
      this.guard.input(conn);
    };
    const onDrain = () => session.drained();
    // what feeds the session from a socket; STARTTLS moves it to the TLS socket
    const wire = (s: net.Socket) => {
      s.setTimeout(idleSeconds * 1000, onIdle);
      s.on("data", onData);
      s.on("drain", onDrain);
      s.on("error", (err) => log.debug({ err: err.message }, "socket error"));
    };
    const unwire = (s: net.Socket) => {
      s.setTimeout(0, onIdle);
      s.off("data", onData);
      s.off("drain", onDrain);
    };
    wire(socket);
    // the first socket's close ends the connection, with TLS on top of it or not
    socket.on("close", () => {
      ended = true;
      session.close();
      this.closed.connections++;
      this.closed.commands += session.counts.commands;
      this.closed.articles += session.counts.articles;
      this.#sockets.delete(socket);
      this.#conns.delete(socket);
      this.guard.closed(conn);
      log.debug("disconnected");
    });
  }

  /** STARTTLS (relay/starttls.ts): the connection's socket becomes the TLS socket on top of it. */
  async #startTls(conn: Connection, reply: string, onWrapped: () => void, wire: (s: net.Socket) => void, unwire: (s: net.Socket) => void): Promise<void> {
    const raw = conn.socket;
    try {
      await upgradeToTls(raw, reply, this.tls!.context, {
        detach: () => unwire(raw),
        attach: (t) => {
          onWrapped();
          conn.socket = t;
          wire(t);
        },
      });
      this.log.debug({ session: conn.id, client: conn.client }, "TLS started");
    } catch (err) {
      this.log.info({ session: conn.id, client: conn.client, err: (err as Error).message }, "STARTTLS handshake failed; connection closed");
      throw err;
    }
  }
}
