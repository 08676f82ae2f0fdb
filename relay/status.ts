// The node's figures (peers, who is connected, what came in, queues, the
// database): written to data_dir/status.json for `tidings status`, read by
// /metrics (relay/metrics.ts), and per-peer figures logged when they change.
import { rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { spoolUsage } from "../storage/spool.js";
import type { Node } from "./node.js";
import { emptyFeedStats, type FeedStats } from "./feeds/peer-feed.js";
import type { BacklogStats } from "../storage/backlog.js";
import type { QueueStats } from "../storage/mail-queue.js";
import type { HopStats } from "./mail/outbound.js";
import type { IncomingRow } from "./metrics.js";

/** One open NNTP connection: a client, or a configured peer feeding us. */
export interface ClientStatus {
  id: number;
  client: string;
  /** The configured peer this connection is, or null. */
  peer: string | null;
  /** The user it authenticated as, or null. */
  user: string | null;
  tls: boolean;
  since: number;
  lastInput: number;
  bytesIn: number;
  commands: number;
  articles: number;
}

export interface PeerStatus extends FeedStats {
  name: string;
  host: string;
  backlog: BacklogStats;
  /** Its connections to us now (it feeds us), and since when the oldest is open. */
  feedingUs?: { connections: number; since: number | null };
}

export interface NodeStatus {
  pathhost: string;
  pid: number;
  nntp: string;
  written: number;
  started: number;
  articles: { accepted: number; duplicate: number; rejected: number; deferred: number; loops: number };
  peers: PeerStatus[];
  smtp: string;
  http: string;
  /** Open SMTP connections. */
  smtpOpen: number;
  /** NNTP since start: connections taken, command lines and articles received (the open connections' included). */
  nntpTotals: { connections: number; commands: number; articles: number };
  /** The last expiry run since start (relay/expiry.ts). */
  expiry?: { at: number; ms: number; articles: number; bytes: number; groups: number; forgotten: number; fileBytes: number };
  /** What the limits did since start (relay/limits.ts): connections refused or dropped, sessions cut off or slowed, posts refused. */
  limits?: { refused: number; evicted: number; timedOut: number; slowed: number; flooded: number; postsRefused: number };
  /** The open NNTP connections, oldest first. */
  clients: ClientStatus[];
  /** Articles that came in, by origin, peer, outcome and reason (relay/metrics.ts). */
  incoming: IncomingRow[];
  /** The SQLite database and its write-ahead log, in bytes; the spool's files (storage/spool.ts), how many and their bytes. */
  database: { file: string; bytes: number; walBytes: number; spoolFiles: number; spoolBytes: number };
  /** The group commit: items waiting, transactions and items written since start. */
  writer: { queued: number; batches: number; items: number };
  /** The last configuration reload (SIGHUP, `tidings reload`), if any. */
  reload?: ReloadRecord;
  mail: QueueStats & {
    received: { connections: number; refusedConnections: number; messages: number; refusedRcpts: number; refusedMessages: number };
    counts: { queued: number; sent: number; failed: number; retried: number; looped: number };
    delivery: (HopStats & { hop: string })[];
  };
}

export interface ReloadRecord {
  at: number;
  ok: boolean;
  /** Why the file was refused (the running configuration stayed). */
  error?: string;
  changed: string[];
  restart: string[];
}

export class StatusWriter {
  #timer?: NodeJS.Timeout;
  #last = "";
  readonly started = Date.now();

  constructor(private readonly node: Node, private readonly intervalSeconds: number) {}

  start(): void {
    this.#timer = setInterval(() => void this.write().catch(() => {}), this.intervalSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  async collect(): Promise<NodeStatus> {
    const n = this.node;
    const peers: PeerStatus[] = [];
    const open = n.nntp.list();
    for (const p of n.config.peer) {
      const id = n.peerIds.get(p.name)!;
      const feed = n.feeds.get(id);
      const backlog = await n.storage.backlog.stats(id);
      const stats: FeedStats = feed?.stats ?? emptyFeedStats();
      const inbound = open.filter((c) => c.session.perms.peer === p.name);
      const feedingUs = { connections: inbound.length, since: inbound.length ? Math.min(...inbound.map((c) => c.since)) : null };
      peers.push({ name: p.name, host: p.host ? `${p.host}:${p.port}` : "(receive only)", backlog, ...stats, feedingUs });
    }
    // a peer taken out of the configuration may still have a backlog in the database (tidings peer rm drops it)
    for (const [name, id] of n.peerIds) {
      if (n.config.peer.some((p) => p.name === name)) continue;
      const backlog = await n.storage.backlog.stats(id);
      if (backlog.count > 0) peers.push({ name, host: "(no longer configured)", backlog, ...emptyFeedStats() });
    }
    return {
      pathhost: n.config.node.pathhost,
      pid: process.pid,
      nntp: n.nntpAddress ? `${n.nntpAddress.host}:${n.nntpAddress.port}` : "",
      written: Date.now(),
      started: this.started,
      articles: { ...n.ingest.counts },
      peers,
      smtp: n.smtpAddress ? `${n.smtpAddress.host}:${n.smtpAddress.port}` : "off",
      http: n.httpAddress ? `${n.httpAddress.host}:${n.httpAddress.port}` : "off",
      smtpOpen: n.smtp?.connections ?? 0,
      ...connections(n),
      incoming: n.incoming.rows(),
      database: await databaseSize(n.config.node.data_dir),
      writer: { queued: n.storage.writer.engine.queued, batches: n.storage.writer.engine.stats.batches, items: n.storage.writer.engine.stats.items },
      reload: n.lastReload,
      expiry: n.expiry?.last && {
        at: n.expiry.last.at, ms: n.expiry.last.ms, articles: n.expiry.last.articles, bytes: n.expiry.last.bytes,
        groups: n.expiry.last.groups.length, forgotten: n.expiry.last.forgotten, fileBytes: n.expiry.last.file.after,
      },
      mail: {
        ...(await n.storage.mail.stats()),
        received: n.smtp ? { ...n.smtp.counts } : { connections: 0, refusedConnections: 0, messages: 0, refusedRcpts: 0, refusedMessages: 0 },
        counts: { ...n.storage.mail.counts },
        delivery: [...n.outbound.stats].map(([hop, st]) => ({ hop, ...st })),
      },
    };
  }

  async write(): Promise<void> {
    const s = await this.collect();
    const file = join(this.node.config.node.data_dir, "status.json");
    await writeFile(file + ".tmp", JSON.stringify(s, null, 2));
    await rename(file + ".tmp", file);
    const figures = JSON.stringify(s.peers.map((p) => [p.name, p.connected, p.backlog.count, p.offered, p.accepted, p.refused, p.rejected, p.deferred, p.dropped, p.lastError]));
    if (figures !== this.#last) {
      this.#last = figures;
      for (const p of s.peers) {
        this.node.log.info(
          { peer: p.name, connected: p.connected > 0, backlog: p.backlog.count, backlogBytes: p.backlog.bytes, offered: p.offered, accepted: p.accepted, refused: p.refused, rejected: p.rejected, deferred: p.deferred, dropped: p.dropped, bytesSent: p.bytesSent, lastError: p.lastError },
          "peer status",
        );
      }
    }
  }
}

/** The open connections and the totals, read together so that a connection closing is counted once. */
function connections(n: Node): Pick<NodeStatus, "clients" | "nntpTotals" | "limits"> {
  const open = n.nntp.list();
  const clients = open.map((c) => ({
    id: c.id, client: c.client, peer: c.session.perms.peer ?? null, user: c.session.user ?? null, tls: c.session.secure,
    since: c.since, lastInput: c.lastInput, bytesIn: c.bytesIn, commands: c.session.counts.commands, articles: c.session.counts.articles,
  }));
  const closed = n.nntp.closed;
  return {
    clients,
    limits: { ...n.nntp.guard.counts },
    nntpTotals: {
      connections: closed.connections + open.length,
      commands: clients.reduce((t, c) => t + c.commands, closed.commands),
      articles: clients.reduce((t, c) => t + c.articles, closed.articles),
    },
  };
}

async function databaseSize(dataDir: string): Promise<NodeStatus["database"]> {
  const file = join(dataDir, "tidings.sqlite");
  const size = (f: string) => stat(f).then((st) => st.size, () => 0);
  const spool = await spoolUsage(dataDir);
  return { file, bytes: await size(file), walBytes: await size(file + "-wal"), spoolFiles: spool.files, spoolBytes: spool.bytes };
}

/** Open connections listed one a line in the text; `tidings status --json` has them all. */
const SHOWN_CLIENTS = 20;

export function formatStatus(s: NodeStatus, now = Date.now()): string {
  const age = (t: number | null) => (t === null ? "-" : human((now - t) / 1000));
  const lines = [
    `node ${s.pathhost} (pid ${s.pid}, nntp ${s.nntp}, http ${s.http ?? "off"}), up ${human((s.written - s.started) / 1000)} (since ${clock(s.started)}), figures from ${age(s.written)} ago`,
    `articles: ${s.articles.accepted} accepted, ${s.articles.duplicate} duplicate, ${s.articles.rejected} rejected, ${s.articles.deferred} deferred, ${s.articles.loops} refused for a Path loop`,
    ...formatIncoming(s, age),
    "",
  ];
  if (s.expiry) {
    const e = s.expiry;
    lines.splice(lines.length - 1, 0, `last expiry ${age(e.at)} ago (${e.ms} ms): ${e.articles} articles removed whole (${e.bytes} bytes) from ${e.groups} groups, ${e.forgotten} remembered ids forgotten; database ${e.fileBytes} bytes in use`);
  }
  if (s.reload) {
    const r = s.reload;
    lines.splice(
      lines.length - 1,
      0,
      r.ok
        ? `configuration reloaded ${age(r.at)} ago${r.changed.length ? `: ${r.changed.join(", ")}` : ": nothing changed"}${r.restart.length ? `; waiting for a restart: ${r.restart.join(", ")}` : ""}`
        : `configuration reload refused ${age(r.at)} ago (the running one stays): ${r.error}`,
    );
  }
  const m = s.mail;
  if (m) {
    lines.push(
      `mail (smtp ${s.smtp}): received ${m.received.messages} messages on ${m.received.connections} connections; refused ${m.received.refusedRcpts} recipients, ${m.received.refusedMessages} messages, ${m.received.refusedConnections} connections`,
      `  queue: ${m.messages} messages, ${m.recipients} recipients, oldest ${m.oldest ? age(m.oldest) : "-"}; sent ${m.counts.sent}, bounced ${m.counts.failed}, deferred ${m.counts.retried} times, not relayed again (loops) ${m.counts.looped}`,
    );
    const hops = new Map(m.delivery.map((d) => [d.hop, d]));
    for (const h of m.hops) {
      const d = hops.get(h.hop);
      lines.push(
        `  next hop ${h.hop}: ${h.recipients} recipients waiting, ${h.deferred} deferred, next try ${h.nextTry <= now ? "now" : `in ${human((h.nextTry - now) / 1000)}`}` +
          `; last error: ${d?.lastError ? `${d.lastError} (${age(d.lastErrorAt)} ago)` : h.lastError || "none"}`,
      );
    }
    lines.push("");
  }
  if (s.peers.length === 0) lines.push("no peers configured");
  for (const p of s.peers) {
    // figures written by an older node may lack the newer fields
    const down = p.disconnectedSince ? ` for ${age(p.disconnectedSince)} (since ${clock(p.disconnectedSince)})` : "";
    // an error from before the link came back is history, not the state of the link
    const past = p.connected > 0 && p.lastErrorAt !== null && p.connectedSince !== null && p.lastErrorAt < p.connectedSince;
    const refusals = Object.entries(p.refusals ?? {});
    const inbound = p.feedingUs?.connections ? `; it feeds us on ${plural(p.feedingUs.connections, "connection")}, for ${age(p.feedingUs.since)}` : "";
    const outbound = p.host === "(receive only)" ? (inbound ? "we do not send to it" : "not feeding us now") : p.connected > 0 ? `connected (${p.mode}) for ${age(p.connectedSince)}` : `not connected${down}`;
    lines.push(
      `peer ${p.name} ${p.host}: ${outbound}${inbound}`,
      `  backlog ${p.backlog.count} articles, ${p.backlog.bytes} bytes, oldest ${p.backlog.oldest ? age(p.backlog.oldest) : "-"}`,
      `  offered ${p.offered}, accepted ${p.accepted}, refused ${p.refused}, rejected ${p.rejected}, deferred ${p.deferred}, dropped as too old ${p.dropped}, bytes sent ${p.bytesSent}`,
      `  last error: ${!p.lastError ? "none" : past ? `none since connected (before: ${p.lastError}, ${age(p.lastErrorAt)} ago)` : `${p.lastError} (${age(p.lastErrorAt)} ago)`}`,
      `  last refusal: ${p.lastRefusal ? `${p.lastRefusal.reply} (${age(p.lastRefusal.at)} ago)` : "none"}`,
    );
    if (refusals.length > 1) lines.push(`  refusals by kind: ${refusals.map(([k, n]) => `${n}× ${k}`).join("; ")}`);
  }
  return lines.join("\n") + "\n";
}

/** What came in from each origin, the database size, and who is connected now and what they sent. */
function formatIncoming(s: NodeStatus, age: (t: number | null) => string): string[] {
  const lines: string[] = [];
  // figures written by an older node lack these
  if (s.incoming) {
    // by the peer it came from, or by origin for everyone else
    const by = new Map<string, { outcomes: Map<string, number>; reasons: Map<string, number> }>();
    for (const r of s.incoming) {
      const key = r.peer ? `peer ${r.peer}` : (ORIGINS[r.origin] ?? r.origin);
      let e = by.get(key);
      if (!e) by.set(key, (e = { outcomes: new Map(), reasons: new Map() }));
      e.outcomes.set(r.outcome, (e.outcomes.get(r.outcome) ?? 0) + r.count);
      if (r.reason) e.reasons.set(r.reason, (e.reasons.get(r.reason) ?? 0) + r.count);
    }
    for (const [key, e] of by) {
      const outcomes = ["accepted", "duplicate", "rejected", "deferred"].map((k) => `${e.outcomes.get(k) ?? 0} ${k}`).join(", ");
      const reasons = [...e.reasons].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`).join(", ");
      lines.push(`  from ${key}: ${outcomes}${reasons ? ` (why: ${reasons})` : ""}`);
    }
  }
  if (s.database) {
    const spool = s.database.spoolFiles ? `; spool ${bytes(s.database.spoolBytes ?? 0)} in ${s.database.spoolFiles} file${s.database.spoolFiles === 1 ? "" : "s"}` : "";
    lines.push(`database ${s.database.file}: ${bytes(s.database.bytes)}, write-ahead log ${bytes(s.database.walBytes)}${spool}`);
  }
  if (!s.clients || !s.nntpTotals) return lines;
  const peers = s.clients.filter((c) => c.peer).length;
  const t = s.nntpTotals;
  lines.push(
    `connected now: ${plural(s.clients.length - peers, "client")}, ${plural(peers, "incoming peer")}` +
      ` (since start: ${plural(t.connections, "connection")}, ${plural(t.commands, "command")}, ${plural(t.articles, "article")} received)`,
  );
  if (s.limits) {
    const l = s.limits;
    lines.push(
      `limits since start: ${plural(l.refused, "connection")} refused, ${l.evicted} idle dropped for room, ${plural(l.timedOut, "session")} cut off for slowness, ` +
        `${l.slowed} slowed and ${l.flooded} closed for too many commands, ${plural(l.postsRefused, "post")} over the hourly limit`,
    );
  }
  for (const c of s.clients.slice(0, SHOWN_CLIENTS)) {
    const who = c.peer ? `peer ${c.peer} from ${c.client}` : `client ${c.client}`;
    const extra = [c.user ? `user ${c.user}` : "", c.tls ? "TLS" : ""].filter(Boolean).join(", ");
    lines.push(
      `  ${who}${extra ? ` (${extra})` : ""}: connected for ${age(c.since)} (since ${clock(c.since)}); ` +
        `${plural(c.commands, "command")}, ${plural(c.articles, "article")}, ${bytes(c.bytesIn)} in; last input ${age(c.lastInput)} ago`,
    );
  }
  if (s.clients.length > SHOWN_CLIENTS) lines.push(`  and ${s.clients.length - SHOWN_CLIENTS} more (tidings status --json lists them all)`);
  return lines;
}

/** Origins of articles that came from no configured peer, in words. */
const ORIGINS: Record<string, string> = {
  "nntp-post": "posts (POST)",
  mail: "mail to group addresses",
  "nntp-ihave": "other feeders (IHAVE)",
  "nntp-takethis": "other feeders (TAKETHIS)",
};

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

/** A moment as UTC date and time to the second. */
function clock(t: number): string {
  return new Date(t).toISOString().replace(/\.\d+Z$/, "Z");
}

function human(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
