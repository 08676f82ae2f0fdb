// Wires one tidings node: storage, ingest, the bus, the NNTP listener.
import type { Logger } from "pino";
import type { Config } from "../config/schema.js";
import { Storage } from "../storage/database.js";
import { Bus } from "./bus.js";
import { Ingest } from "./ingest.js";
import { InFlight } from "./wip.js";
import { AddressList } from "./access.js";
import { NntpServer } from "./nntp-server.js";
import type { NntpBackend, Permissions } from "../protocol/nntp/backend.js";
import type { Group } from "../storage/groups.js";
import { Backlog } from "../storage/backlog.js";
import { makeRoute, type PeerRoute } from "./feeds/routing.js";
import { PeerFeed } from "./feeds/peer-feed.js";
import { StatusWriter, type ReloadRecord } from "./status.js";
import cron from "node-cron";
import { SmtpServer } from "./mail/smtp-server.js";
import { MailOutbound } from "./mail/outbound.js";
import { newsToMail } from "./mail/gateway.js";
import { configChanges, effectiveConfig, type ConfigChanges } from "./reload.js";

export const VERSION = "0.1.0";

export class Node {
  readonly bus = new Bus();
  readonly wip = new InFlight();
  nntp!: NntpServer;
  storage!: Storage;
  ingest!: Ingest;
  nntpAddress?: { host: string; port: number };
  smtp?: SmtpServer;
  smtpAddress?: { host: string; port: number };
  outbound!: MailOutbound;
  readonly feeds = new Map<number, PeerFeed>();
  routes: PeerRoute[] = [];
  peerIds = new Map<string, number>();
  #status?: StatusWriter;
  #jobs: { stop(): unknown }[] = [];

  constructor(public config: Config, readonly log: Logger) {}

  async start(): Promise<void> {
    const c = this.config;
    this.storage = await Storage.open({
      dataDir: c.node.data_dir,
      synchronous: c.storage.synchronous,
      pathhost: c.node.pathhost,
      maxBatch: c.storage.max_batch,
      maxQueue: c.storage.max_queue,
      maxQueueBytes: c.storage.max_queue_bytes,
    });
    await this.storage.groups.ensure(c.group);
    this.peerIds = await Backlog.peerIds(this.storage.writeDb, c.peer.map((p) => p.name));
    this.routes = c.peer.map((p) => makeRoute(this.peerIds.get(p.name)!, p));
    const hostname = c.smtp.hostname || c.node.pathhost;
    const mailRoutes = c.route.map((r) => ({ domain: r.domain, nextHop: r.next_hop }));
    const postmaster = c.mail.postmaster || `postmaster@${hostname}`;
    this.ingest = new Ingest(
      this.storage,
      this.bus,
      {
        pathhost: c.node.pathhost, maxFutureSeconds: c.articles.max_future, rememberRefused: c.articles.remember_refused, peers: this.routes,
        subscribers: new Map(c.group.filter((g) => g.subscribers.length > 0).map((g) => [g.name, g.subscribers])),
        newsToMail: newsToMail({ hostname, postmaster, routes: mailRoutes, addresses: new Map(c.group.map((g) => [g.name, g.address])) }),
      },
      this.log.child({ part: "ingest" }),
    );
    this.outbound = new MailOutbound(
      this.storage.mail,
      { hostname, dnsServers: c.mail.dns_servers, mxPort: c.mail.mx_port, retryFirst: c.mail.retry_first, retryMax: c.mail.retry_max, maxLifetime: c.mail.max_lifetime, connectionsPerHop: c.mail.connections_per_hop, routes: mailRoutes },
      this.log.child({ part: "mail" }),
    );
    this.storage.mail.onQueued = (hops) => this.outbound.queued(hops);
    if (c.smtp.listen !== "off") {
      const gateways = new Map(c.group.filter((g) => g.address).map((g) => [g.address, g.name]));
      this.smtp = new SmtpServer(
        {
          hostname, relayFrom: c.smtp.relay_from, maxMessageBytes: c.smtp.max_message_bytes, maxRecipients: c.smtp.max_recipients,
          maxLine: c.smtp.max_line, maxConnections: c.smtp.max_connections, maxPerClient: c.smtp.max_connections_per_client,
          idleSeconds: c.smtp.idle_timeout, maxReceived: c.smtp.max_received, tlsCert: c.smtp.tls_cert, tlsKey: c.smtp.tls_key,
          routes: mailRoutes, gateways,
        },
        this.storage.mail,
        this.ingest,
        this.log.child({ part: "smtp" }),
      );
    }
    this.nntp = new NntpServer(
      this.#backend(),
      {
        maxLine: c.nntp.max_line,
        maxArticle: c.nntp.max_article_bytes,
        maxInFlight: c.nntp.max_in_flight,
        maxConnections: c.nntp.max_connections,
        maxPerClient: c.nntp.max_connections_per_client,
        idleSeconds: c.nntp.idle_timeout,
      },
      this.log.child({ part: "nntp" }),
    );
    for (const p of c.peer) {
      if (!p.host) continue;
      const id = this.peerIds.get(p.name)!;
      this.feeds.set(id, this.#makeFeed(id, p, c));
    }
    // the bus is a doorbell: each feed reads its work from the backlog table
    this.bus.accepted$.subscribe((a) => {
      for (const [id, feed] of this.feeds) {
        if (a.peers.includes(id)) feed.announce({ article: a.id, msgid: a.msgid, bytes: a.bytes, data: a.data });
        else feed.committed(a.id);
      }
    });
    for (const f of this.feeds.values()) f.start();
    // scheduled jobs (DESIGN.md): transit-only articles go once no backlog needs them
    this.#jobs.push(
      cron.schedule(c.storage.purge_transit, async () => {
        try {
          const n = await this.storage.writer.purgeTransit();
          if (n > 0) this.log.info({ purged: n }, "transit-only articles removed");
        } catch (err) {
          this.log.warn({ err: String(err) }, "transit purge failed");
        }
      }, { noOverlap: true }),
    );
    this.#jobs.push(
      cron.schedule(c.mail.sweep, () => this.outbound.sweep().catch((err) => this.log.warn({ err: String(err) }, "mail sweep failed")), { noOverlap: true }),
      cron.schedule("0 */10 * * * *", () => {
        this.storage.mail.forget(Date.now() - c.mail.remember_relayed * 1000).catch((err) => this.log.warn({ err: String(err) }, "forgetting relayed mail failed"));
      }, { noOverlap: true }),
    );
    void this.outbound.sweep().catch(() => {}); // mail left queued by an earlier run
    this.#status = new StatusWriter(this, c.feeds.status_interval);
    this.#status.start();
    const [host, port] = splitHostPort(c.nntp.listen);
    const addr = await this.nntp.listen(host, port);
    this.nntpAddress = { host: addr.address, port: addr.port };
    if (this.smtp) {
      const [h, p] = splitHostPort(c.smtp.listen as string);
      const a = await this.smtp.listen(h, p);
      this.smtpAddress = { host: a.address, port: a.port };
    }
    this.log.info(
      { nntp: `${addr.address}:${addr.port}`, smtp: this.smtpAddress ? `${this.smtpAddress.host}:${this.smtpAddress.port}` : "off", data: c.node.data_dir, pathhost: c.node.pathhost },
      "tidings node started",
    );
  }

  #makeFeed(id: number, p: Config["peer"][number], c: Config): PeerFeed {
    return new PeerFeed(
      { id, name: p.name, host: p.host, port: p.port, streaming: p.streaming, connections: p.connections, window: p.window, maxBacklogAge: p.max_backlog_age },
      this.storage,
      { reconnectMin: c.feeds.reconnect_min, reconnectMax: c.feeds.reconnect_max, retryDeferred: c.feeds.retry_deferred, replyTimeout: c.feeds.reply_timeout },
      this.log.child({ peer: p.name }),
    );
  }

  /**
   * Applies a configuration read again (SIGHUP, `tidings reload`): groups,
   * peers, access, limits and TLS change now, without dropping a connection;
   * restart-only keys keep their running value and are named in the log
   * (relay/reload.ts).
   */
  async reload(next: Config): Promise<ConfigChanges> {
    const changes = configChanges(this.config, next);
    const c = effectiveConfig(this.config, next);
    for (const key of changes.restart) this.log.warn({ key }, "configuration key changed; it cannot change while the node runs and takes effect at the next restart");
    await this.storage.groups.ensure(c.group);
    const gone = this.config.group.filter((g) => !c.group.some((n) => n.name === g.name)).map((g) => g.name);
    if (gone.length > 0) this.log.warn({ groups: gone }, "groups left the configuration; they stay carried (removing a group is not built yet)");
    await this.#applyPeers(c);
    this.config = c;
    this.log.level = c.log.level;
    for (const apply of this.reloaders) await apply(c);
    this.log.info({ changed: changes.live, restart: changes.restart }, "configuration reloaded");
    return changes;
  }

  /** The last reload and what came of it, for status. */
  lastReload?: ReloadRecord;

  /** Reloads from a loader; a file that does not load is refused and the running configuration stays. */
  async reloadFrom(load: () => Config): Promise<void> {
    const at = Date.now();
    let next: Config;
    try {
      next = load();
    } catch (err) {
      const error = (err as Error).message;
      this.log.error({ error }, "configuration refused; the running one stays");
      this.lastReload = { at, ok: false, error, changed: [], restart: [] };
      await this.#status?.write().catch(() => {});
      return;
    }
    try {
      const { live, restart } = await this.reload(next);
      this.lastReload = { at, ok: true, changed: live, restart };
    } catch (err) {
      const error = `applying it failed: ${(err as Error).message}`;
      this.log.error({ err }, "configuration reload failed part way");
      this.lastReload = { at, ok: false, error, changed: [], restart: [] };
    }
    await this.#status?.write().catch(() => {});
  }

  /** What parts built from the configuration do to take a new one (access rules, limits, TLS). */
  readonly reloaders: ((c: Config) => void | Promise<void>)[] = [];

  async #applyPeers(c: Config): Promise<void> {
    // peers.id is written outside the group commit, as at start; INSERT OR IGNORE
    // is harmless if it lands inside a batch's transaction
    this.peerIds = await Backlog.peerIds(this.storage.writeDb, c.peer.map((p) => p.name));
    this.routes = c.peer.map((p) => makeRoute(this.peerIds.get(p.name)!, p));
    this.ingest.setPeers(this.routes);
    const before = new Map(this.config.peer.map((p) => [p.name, JSON.stringify(p)]));
    const feedTiming = JSON.stringify(this.config.feeds) !== JSON.stringify(c.feeds);
    const wanted = new Map(c.peer.filter((p) => p.host).map((p) => [this.peerIds.get(p.name)!, p]));
    for (const [id, feed] of [...this.feeds]) {
      const p = wanted.get(id);
      if (p && before.get(p.name) === JSON.stringify(p) && !feedTiming) continue;
      this.feeds.delete(id);
      await feed.stop();
      this.log.info({ peer: feed.peer.name }, p ? "feed restarted with its new settings" : "feed stopped: the peer left the configuration");
    }
    for (const [id, p] of wanted) {
      if (this.feeds.has(id)) continue;
      const feed = this.#makeFeed(id, p, c);
      this.feeds.set(id, feed);
      feed.start();
      this.log.info({ peer: p.name }, "feed started");
    }
  }

  #backend(): NntpBackend {
    const c = this.config;
    const readers = new AddressList(c.nntp.reader_from);
    const posters = new AddressList(c.nntp.posting_from);
    const local = new AddressList(c.nntp.transit_from);
    const peerLists = c.peer.map((p) => ({ name: p.name, list: new AddressList(p.accept_from) }));
    const storage = this.storage;
    const wip = this.wip;
    const ingest = this.ingest;
    return {
      pathhost: c.node.pathhost,
      implementation: `tidings ${VERSION}`,
      permissions(client: string): Permissions {
        // Several peers may share an address (all of them on loopback in tests,
        // or behind one NAT); then the connection names no peer and Path alone
        // keeps articles from going back where they came from.
        // The same holds for addresses that local feeding tools also use.
        const matching = peerLists.filter((p) => p.list.has(client));
        const isLocal = local.has(client);
        const peer = matching.length === 1 && !isLocal ? matching[0].name : undefined;
        const transit = matching.length > 0 || isLocal;
        return {
          read: readers.has(client),
          post: posters.has(client),
          transit,
          peer,
          why: transit ? undefined : "not a configured peer",
        };
      },
      group: (name: string): Group | undefined => storage.groups.get(name),
      groups: () => storage.groups.list(),
      articles: storage.articles,
      seen: (msgid) => storage.history.has(msgid),
      claim: (msgid, owner) => wip.claim(msgid, owner),
      heldByOther: (msgid, owner) => wip.heldByOther(msgid, owner),
      release: (msgid, owner) => wip.release(msgid, owner),
      releaseAll: (owner) => wip.releaseAll(owner),
      ingest: (raw, source) => ingest.article(raw, source),
    };
  }

  async stop(): Promise<void> {
    this.#status?.stop();
    for (const j of this.#jobs) j.stop();
    await this.smtp?.close();
    await Promise.all([...this.feeds.values()].map((f) => f.stop()));
    await this.outbound?.stop();
    await this.#status?.write().catch(() => {});
    this.log.info({ writer: this.storage?.writer.stats, ingest: this.ingest?.counts }, "final statistics");
    await this.nntp?.close();
    await this.storage?.close();
  }
}

export function splitHostPort(s: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`expected HOST:PORT, got ${s}`);
  return [m[1], Number(m[2])];
}
