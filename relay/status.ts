// Per-peer figures: written to data_dir/status.json for `tidings status`, and
// logged when they change.
import { writeFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Node } from "./node.js";
import type { FeedStats } from "./feeds/peer-feed.js";
import type { BacklogStats } from "../storage/backlog.js";
import type { QueueStats } from "../storage/mail-queue.js";
import type { HopStats } from "./mail/outbound.js";

export interface PeerStatus extends FeedStats {
  name: string;
  host: string;
  backlog: BacklogStats;
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
    for (const p of n.config.peer) {
      const id = n.peerIds.get(p.name)!;
      const feed = n.feeds.get(id);
      const backlog = await n.storage.backlog.stats(id);
      const stats: FeedStats = feed?.stats ?? {
        connected: 0, connectedSince: null, mode: null, offered: 0, accepted: 0, refused: 0, rejected: 0,
        deferred: 0, dropped: 0, bytesSent: 0, lastError: null, lastErrorAt: null,
      };
      peers.push({ name: p.name, host: p.host ? `${p.host}:${p.port}` : "(receive only)", backlog, ...stats });
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
      reload: n.lastReload,
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

export function formatStatus(s: NodeStatus, now = Date.now()): string {
  const age = (t: number | null) => (t === null ? "-" : human((now - t) / 1000));
  const lines = [
    `node ${s.pathhost} (pid ${s.pid}, nntp ${s.nntp}), figures from ${age(s.written)} ago`,
    `articles: ${s.articles.accepted} accepted, ${s.articles.duplicate} duplicate, ${s.articles.rejected} rejected, ${s.articles.deferred} deferred, ${s.articles.loops} refused for a Path loop`,
    "",
  ];
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
    lines.push(
      `peer ${p.name} ${p.host}: ${p.connected > 0 ? `connected (${p.mode}) for ${age(p.connectedSince)}` : "not connected"}`,
      `  backlog ${p.backlog.count} articles, ${p.backlog.bytes} bytes, oldest ${p.backlog.oldest ? age(p.backlog.oldest) : "-"}`,
      `  offered ${p.offered}, accepted ${p.accepted}, refused ${p.refused}, rejected ${p.rejected}, deferred ${p.deferred}, dropped as too old ${p.dropped}, bytes sent ${p.bytesSent}`,
      `  last error: ${p.lastError ? `${p.lastError} (${age(p.lastErrorAt)} ago)` : "none"}`,
    );
  }
  return lines.join("\n") + "\n";
}

function human(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
