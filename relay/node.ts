// Wires one tidings node: storage, ingest, the bus, the NNTP listener.
import type { Logger } from "pino";
import type { Config } from "../config/schema.js";
import { Storage } from "../storage/database.js";
import { Bus } from "./bus.js";
import { Ingest } from "./ingest.js";
import { InFlight } from "./wip.js";
import { buildAccessRules, type AccessRules } from "./access-rules.js";
import { Logins } from "./login.js";
import { NntpServer } from "./nntp-server.js";
import { nntpLimits } from "./limits.js";
import type { NntpBackend } from "../protocol/nntp/backend.js";
import type { Group } from "../storage/groups.js";
import { Backlog } from "../storage/backlog.js";
import { makeRoute, type PeerRoute } from "./feeds/routing.js";
import { PeerFeed } from "./feeds/peer-feed.js";
import { StatusWriter, type ReloadRecord } from "./status.js";
import cron from "node-cron";
import { SmtpServer } from "./mail/smtp-server.js";
import { MailOutbound } from "./mail/outbound.js";
import { newsToMail } from "./mail/gateway.js";
import { controlOptions, openControl } from "./control-messages.js";
import { Moderation, moderationOptions } from "./moderation.js";
import { Held } from "../storage/held.js";
import { TlsContexts, peerTls } from "./tls.js";
import { configChanges, effectiveConfig, type ConfigChanges } from "./reload.js";
import { ControlServer, controlSocketPath } from "./control.js";
import { registerControlCommands } from "./control-commands.js";
import { Expiry, registerExpireControl } from "./expiry.js";
import { nodeIdentity } from "../storage/identity.js";
import { lockDataDir, StartRefused, type DataLock } from "../storage/lock.js";
import { HttpServer } from "./http-server.js";
import { Web } from "./web/web.js";
import { IncomingTally, Metrics } from "./metrics.js";
import type { NodeStatus } from "./status.js";

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
  /** The node's certificate ([tls]; relay/tls.ts) for STARTTLS, nntps and SMTP; reloaded on SIGHUP and when its files change. */
  tls?: TlsContexts;
  /** The implicit-TLS listener's address, unless nntp.tls_listen is off. */
  nntpsAddress?: { host: string; port: number };
  /** The HTTP listener (/metrics; later the web reader), unless http.listen is off. */
  http?: HttpServer;
  /** The web reader on the HTTP listener (relay/web/). */
  web?: Web;
  httpAddress?: { host: string; port: number };
  /** What came in, by origin, peer, outcome and reason (status and /metrics). */
  readonly incoming = new IncomingTally();
  metrics!: Metrics;
  outbound!: MailOutbound;
  readonly feeds = new Map<number, PeerFeed>();
  /** Who may do what over NNTP (relay/access-rules.ts); a reload assigns a new set, which the next permissions() reads. */
  access!: AccessRules;
  /** Checks logins for NNTP and SMTP, with the growing delay after failures (relay/login.ts). */
  logins!: Logins;
  control?: ControlServer;
  expiry?: Expiry;
  routes: PeerRoute[] = [];
  peerIds = new Map<string, number>();
  #status?: StatusWriter;
  #jobs: { stop(): unknown }[] = [];
  /** The data folder's lock (storage/lock.ts): one node per folder. */
  #lock?: DataLock;
  /** The path identity made on this data folder's first start, when node.pathhost is not set. */
  #madeIdentity?: string;

  constructor(public config: Config, readonly log: Logger) {}

  async start(): Promise<void> {
    const c = this.config;
    // one node per data folder, taken before the database is opened (storage/lock.ts)
    this.#lock = lockDataDir(c.node.data_dir);
    this.storage = await Storage.open({
      dataDir: c.node.data_dir,
      synchronous: c.storage.synchronous,
      // read at each commit: an unset node.pathhost is filled in just below, before anything is written
      get pathhost() {
        return c.node.pathhost;
      },
      maxBatch: c.storage.max_batch,
      maxQueue: c.storage.max_queue,
      maxQueueBytes: c.storage.max_queue_bytes,
      spoolMinBytes: c.storage.spool_min_bytes,
      spoolSegmentBytes: c.storage.spool_segment_bytes,
    }).catch((err) => {
      this.#lock?.release();
      throw err;
    });
    this.storage.commitThread.onRestart = (err, inMs) =>
      this.log.error({ err: err.message, restartInMs: inMs }, "the commit thread died; the batches it held are deferred, and it starts again");
    if (!c.node.pathhost) {
      // no node.pathhost: the identity made once and kept in the database (storage/identity.ts);
      // every part below (Path, Xref, greeting, SMTP name, logs) reads this one value
      const { identity, made } = await nodeIdentity(this.storage.writeDb);
      c.node.pathhost = this.#madeIdentity = identity;
      this.log.setBindings({ node: identity });
      if (made) this.log.info({ pathhost: identity }, "path identity made and kept in the database; set node.pathhost to choose one");
    }
    const groups = await this.storage.groups.ensure(c.group);
    if (groups.removed.length > 0) this.log.info({ groups: groups.removed }, "groups no longer in the configuration removed (no longer listed nor posted to; their articles stay until they expire)");
    this.peerIds = await Backlog.peerIds(this.storage.writeDb, c.peer.map((p) => p.name));
    this.routes = c.peer.map((p) => makeRoute(this.peerIds.get(p.name)!, p));
    const hostname = c.smtp.hostname || c.node.pathhost;
    const mailRoutes = c.route.map((r) => ({ domain: r.domain, nextHop: r.next_hop }));
    const postmaster = c.mail.postmaster || `postmaster@${hostname}`;
    // control messages, cancels, Cancel-Lock (relay/control-messages.ts) and moderation (relay/moderation.ts)
    const control = await openControl(this.storage, c, this.log.child({ part: "control" }));
    const moderation = new Moderation(this.storage.mail, new Held(this.storage.writer.engine), moderationOptions(c, postmaster), this.log.child({ part: "moderation" }));
    this.reloaders.push((n) => {
      control.setOptions(controlOptions(n));
      moderation.setOptions(moderationOptions(n, n.mail.postmaster || `postmaster@${n.smtp.hostname || n.node.pathhost}`));
    });
    this.ingest = new Ingest(
      this.storage,
      this.bus,
      {
        pathhost: c.node.pathhost, maxFutureSeconds: c.articles.max_future, rememberRefused: c.articles.remember_refused, peers: this.routes,
        subscribers: new Map(c.group.filter((g) => g.subscribers.length > 0).map((g) => [g.name, g.subscribers])),
        newsToMail: newsToMail({ hostname, postmaster, routes: mailRoutes, addresses: new Map(c.group.map((g) => [g.name, g.address])) }),
        control, moderation,
      },
      this.log.child({ part: "ingest" }),
    );
    this.ingest.onOutcome = (o, source) => this.incoming.observe(o, source);
    this.metrics = new Metrics(() => this.figures(), VERSION);
    this.storage.writer.engine.onCommit = (ms) => this.metrics.commit(ms);
    this.outbound = new MailOutbound(
      this.storage.mail,
      { hostname, dnsServers: c.mail.dns_servers, mxPort: c.mail.mx_port, retryFirst: c.mail.retry_first, retryMax: c.mail.retry_max, maxLifetime: c.mail.max_lifetime, connectionsPerHop: c.mail.connections_per_hop, routes: mailRoutes },
      this.log.child({ part: "mail" }),
    );
    this.storage.mail.onQueued = (fresh) => this.outbound.queued(fresh);
    if (c.tls.cert) {
      this.tls = TlsContexts.load({ cert: c.tls.cert, key: c.tls.key }, this.log.child({ part: "tls" }));
      this.tls.watch();
      this.reloaders.push((next) => void this.tls!.reload(next.tls));
    }
    // SMTP's STARTTLS uses the node's certificate unless smtp.tls_cert names its own
    const smtpSharesTls = !c.smtp.tls_cert && !!this.tls;
    // Users and access (RFC 4643): the NNTP backend and SMTP read this.access
    // and this.config.auth at each use, so a reload swaps in the new rules
    this.access = buildAccessRules(c);
    this.reloaders.push((next) => void (this.access = buildAccessRules(next)));
    this.logins = new Logins(this.storage.readers, () => ({ first: this.config.auth.failure_delay, max: this.config.auth.failure_delay_max }), this.log.child({ part: "auth" }));
    if (c.smtp.listen !== "off") {
      const gateways = new Map(c.group.filter((g) => g.address).map((g) => [g.address, g.name]));
      this.smtp = new SmtpServer(
        {
          hostname, relayFrom: c.smtp.relay_from, maxMessageBytes: c.smtp.max_message_bytes, maxRecipients: c.smtp.max_recipients,
          maxLine: c.smtp.max_line, maxConnections: c.smtp.max_connections, maxPerClient: c.smtp.max_connections_per_client,
          idleSeconds: c.smtp.idle_timeout, maxReceived: c.smtp.max_received, tlsCert: c.smtp.tls_cert || c.tls.cert, tlsKey: c.smtp.tls_key || c.tls.key,
          routes: mailRoutes, gateways,
          auth: { check: (client, user, password) => this.logins.check(client, user, password, "smtp"), plaintext: () => this.config.auth.allow_plaintext },
        },
        this.storage.mail,
        this.ingest,
        this.log.child({ part: "smtp" }),
      );
    }
    const backend = this.#backend();
    this.nntp = new NntpServer(backend, nntpLimits(c), this.log.child({ part: "nntp" }));
    this.reloaders.push((next) => this.nntp.setLimits(nntpLimits(next)));
    this.nntp.tls = this.tls;
    if (smtpSharesTls && this.smtp) {
      const smtp = this.smtp;
      this.tls!.onChange((pair) => smtp.server.updateSecureContext(pair));
    }
    for (const p of c.peer) {
      if (!p.host) continue;
      const id = this.peerIds.get(p.name)!;
      this.feeds.set(id, this.#makeFeed(id, p, c));
    }
    // the bus is a doorbell: each feed reads its work from the backlog table
    let announced = 0; // the newest article the feeds were told of after its COMMIT
    const takenAhead = new Map<number, Set<PeerFeed>>(); // articles idle feeds took before their COMMIT
    this.bus.accepted$.subscribe((a) => {
      announced = Math.max(announced, a.id);
      const ahead = takenAhead.get(a.id);
      // ids only grow: older entries are of transactions that failed
      if (takenAhead.size > 0) for (const k of takenAhead.keys()) if (k <= a.id) takenAhead.delete(k);
      for (const [id, feed] of this.feeds) {
        if (a.peers.includes(id) && !ahead?.has(feed)) feed.announce({ article: a.id, msgid: a.msgid, bytes: a.bytes, data: a.data });
        else feed.committed(a.id);
      }
    });
    // The idle path: an article written alone is offered by a feed with nothing
    // else to do while its transaction commits, so that the sync is not part of
    // the hop (issue 12: an idle hop under 1 ms with synchronous = full). Only
    // once every article committed before it has been announced: a feed's
    // cursor must never pass one it has not been told of.
    this.storage.writer.onStagedAlone = (a, id, data, after) => {
      if (after > announced || a.peers.length === 0) return;
      let took: Set<PeerFeed> | undefined;
      for (const peer of a.peers) {
        const feed = this.feeds.get(peer);
        if (feed?.takeAhead({ article: id, msgid: a.msgid, bytes: data.length, data })) (took ??= new Set()).add(feed);
      }
      if (took) takenAhead.set(id, took);
    };
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
    // the control socket (tidings group, peer kick, ...): after storage, before the listeners
    this.control = new ControlServer(controlSocketPath(c.node.data_dir), this.log.child({ part: "control" }));
    registerControlCommands(this, this.control);
    // expiry ([expire], relay/expiry.ts): on its schedule, and on demand by `tidings expire`
    this.expiry = new Expiry(this.storage, () => this.config.expire, this.log.child({ part: "expire" }));
    this.expiry.schedule();
    this.reloaders.push(() => this.expiry!.schedule());
    registerExpireControl(this.control, this.expiry);
    await this.control.listen();
    this.#status = new StatusWriter(this, c.feeds.status_interval);
    this.#status.start();
    const [host, port] = splitHostPort(c.nntp.listen);
    const addr = await this.nntp.listen(host, port).catch((err: Error) => {
      throw new StartRefused(`NNTP listener ${c.nntp.listen} (nntp.listen, --nntp): ${err.message}`);
    });
    this.nntpAddress = { host: addr.address, port: addr.port };
    if (c.nntp.tls_listen !== "off") {
      const [h, p] = splitHostPort(c.nntp.tls_listen);
      const a = await this.nntp.listenTls(h, p).catch((err: Error) => {
        throw new Error(`NNTPS listener ${c.nntp.tls_listen} (nntp.tls_listen, --nntps): ${err.message}`);
      });
      this.nntpsAddress = { host: a.address, port: a.port };
    }
    if (this.smtp) {
      const [h, p] = splitHostPort(c.smtp.listen as string);
      const a = await this.smtp.listen(h, p).catch((err: Error) => {
        throw new StartRefused(`SMTP listener ${c.smtp.listen} (smtp.listen, --smtp; "off" for none): ${err.message}`);
      });
      this.smtpAddress = { host: a.address, port: a.port };
    }
    if (c.http.listen !== "off") {
      this.http = new HttpServer(this.log.child({ part: "http" }), c.http.max_connections);
      this.http.route("GET", "/metrics", this.metrics.handler);
      // the web reader reads what NNTP readers read, and posts through the same ingest
      this.web = new Web(
        {
          pathhost: c.node.pathhost,
          groups: () => backend.groups(),
          group: (name) => backend.group(name),
          articles: this.storage.articles,
          permissions: (client, user) => backend.permissions(client, user),
          login: (client, user, password) => this.logins.check(client, user, password, "web"),
          plaintextLogin: () => this.config.auth.allow_plaintext,
          takePost: (who) => backend.takePost?.(who),
          ingest: (raw, source) => this.ingest.article(raw, source),
          accepted$: this.bus.accepted$,
        },
        this.log.child({ part: "web" }),
      );
      this.web.register(this.http);
      const [h, p] = splitHostPort(c.http.listen);
      // the default port is fixed, so a second node on this machine meets it taken: say which key moves it
      const a = await this.http.listen(h, p).catch((err: Error) => {
        throw new Error(`HTTP listener ${c.http.listen} (http.listen, --http; "off" for none): ${err.message}`);
      });
      this.httpAddress = { host: a.address, port: a.port };
    }
    this.log.info(
      { nntp: `${addr.address}:${addr.port}`, nntps: this.nntpsAddress ? `${this.nntpsAddress.host}:${this.nntpsAddress.port}` : "off", smtp: this.smtpAddress ? `${this.smtpAddress.host}:${this.smtpAddress.port}` : "off", http: this.httpAddress ? `${this.httpAddress.host}:${this.httpAddress.port}` : "off", data: c.node.data_dir, pathhost: c.node.pathhost },
      "tidings node started",
    );
  }

  #makeFeed(id: number, p: Config["peer"][number], c: Config): PeerFeed {
    return new PeerFeed(
      {
        id, name: p.name, host: p.host, port: p.port, streaming: p.streaming, connections: p.connections, window: p.window, maxBacklogAge: p.max_backlog_age,
        tls: peerTls(p),
      },
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
    if (!next.node.pathhost && this.#madeIdentity) next.node.pathhost = this.#madeIdentity; // still unset: not a change
    const changes = configChanges(this.config, next);
    const c = effectiveConfig(this.config, next);
    for (const key of changes.restart) this.log.warn({ key }, "configuration key changed; it cannot change while the node runs and takes effect at the next restart");
    const groups = await this.storage.groups.ensure(c.group);
    if (groups.created.length + groups.removed.length > 0) this.log.info(groups, "groups changed by the configuration");
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
    const node = this;
    const storage = this.storage;
    const wip = this.wip;
    const ingest = this.ingest;
    return {
      pathhost: c.node.pathhost,
      implementation: `tidings ${VERSION}`,
      // the rules in force now (relay/access-rules.ts): a reload replaces node.access
      permissions: (client, user) => node.access.permissions(client, user),
      auth: {
        get plaintext() {
          return node.config.auth.allow_plaintext;
        },
        check: (client, user, password) => node.logins.check(client, user, password, "nntp"),
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
      takePost: (who) => this.nntp.takePost(who),
    };
  }

  /** The figures of `tidings status`, collected now (/metrics reads the same). */
  figures(): Promise<NodeStatus> {
    return this.#status!.collect();
  }

  async stop(): Promise<void> {
    this.#status?.stop();
    await this.control?.close();
    this.web?.close();
    await this.http?.close();
    for (const j of this.#jobs) j.stop();
    await this.expiry?.stop();
    await this.smtp?.close();
    await Promise.all([...this.feeds.values()].map((f) => f.stop()));
    await this.outbound?.stop();
    await this.#status?.write().catch(() => {});
    this.ingest?.stop(); // counts of conditions still going on (log-once.ts)
    this.log.info({ writer: this.storage?.writer.stats, ingest: this.ingest?.counts }, "final statistics");
    await this.nntp?.close();
    this.tls?.close();
    await this.storage?.close();
    this.#lock?.release();
  }
}

export function splitHostPort(s: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`expected HOST:PORT, got ${s}`);
  return [m[1], Number(m[2])];
}
