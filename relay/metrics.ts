// /metrics for Prometheus (prom-client, one Registry per node). Nearly every
// figure is read at scrape time from the same collect() that writes
// status.json (relay/status.ts), so /metrics and `tidings status --json` say
// the same thing and the ingest path pays nothing for them. Two things are
// counted as they happen, each at a cost of once per article or once per
// commit: the outcome of each article by origin, peer and reason
// (IncomingTally), and the commit latency histogram.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Outcome, Source } from "./ingest.js";
import type { NodeStatus } from "./status.js";

/** One row of what came in: by origin (post, transit, mail), the peer it came from, the outcome and why. */
export interface IncomingRow {
  origin: string;
  /** The configured peer the connection was, or "" (a client, a local feeder, mail). */
  peer: string;
  outcome: Outcome["kind"];
  /** A short name for why it was not accepted (see reasonOf); "" when accepted. */
  reason: string;
  count: number;
}

/**
 * Refusal texts carry what the article said (a Message-ID, a date, a group),
 * which must not become label values: each known text maps to a fixed name,
 * anything else to "other".
 */
const REASONS: [RegExp, string | ((m: RegExpExecArray) => string)][] = [
  [/^Duplicate Message-ID/, "duplicate"],
  [/\(Path loop\)/, "path_loop"],
  [/^Missing required header: ([A-Za-z-]+)/, (m) => `missing_${m[1].toLowerCase().replace(/-/g, "_")}`],
  [/^Duplicate header/, "duplicate_header"],
  [/^Invalid Message-ID/, "invalid_message_id"],
  [/does not match offered/, "message_id_mismatch"],
  [/^Invalid From/, "invalid_from"],
  [/^Invalid Date/, "invalid_date"],
  [/^Invalid Path/, "invalid_path"],
  [/dated in the future/, "future_date"],
  [/already injected/, "already_injected"],
  [/^No carried newsgroups/, "no_carried_group"],
  [/is moderated/, "moderated"],
  [/^Posting to .* is not allowed/, "posting_not_allowed"],
  [/^NUL character/, "nul_in_body"],
  [/header line|^Malformed header|continuation line|has no headers|^Header section too large/, "malformed_header"],
  [/[Nn]ewsgroups/, "invalid_newsgroups"],
  [/^Storage busy/, "storage_busy"],
  [/^Internal error/, "internal_error"],
];

export function reasonOf(o: Outcome): string {
  if (o.kind === "accepted") return "";
  for (const [re, name] of REASONS) {
    const m = re.exec(o.reason);
    if (m) return typeof name === "string" ? name : name(m);
  }
  return "other";
}

/** Outcomes of ingest by origin, peer and reason: one Map lookup per article (Ingest.onOutcome). */
export class IncomingTally {
  readonly #rows = new Map<string, IncomingRow>();

  observe(o: Outcome, source: Source): void {
    const reason = reasonOf(o);
    const peer = source.peer ?? "";
    const key = `${source.kind}\0${peer}\0${o.kind}\0${reason}`;
    const row = this.#rows.get(key);
    if (row) row.count++;
    else this.#rows.set(key, { origin: source.kind, peer, outcome: o.kind, reason, count: 1 });
  }

  rows(): IncomingRow[] {
    return [...this.#rows.values()].map((r) => ({ ...r }));
  }
}

/** Commit latency buckets in seconds: a quiet commit takes about half a millisecond, a synced batch a few. */
const COMMIT_BUCKETS = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class Metrics {
  readonly registry = new Registry();
  readonly #commit: Histogram;
  #s?: NodeStatus;
  #scrape: Promise<string> = Promise.resolve("");

  /** `figures` is the status collect(); it is asked once per scrape. */
  constructor(private readonly figures: () => Promise<NodeStatus>, version: string) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    this.#commit = new Histogram({
      name: "tidings_commit_seconds",
      help: "Time of each group commit transaction (articles, backlog rows, mail queue), BEGIN to COMMIT",
      buckets: COMMIT_BUCKETS,
      registers: [r],
    });
    const fig = () => this.#s!;
    const gauge = (name: string, help: string, labelNames: string[], set: (g: Gauge, s: NodeStatus) => void) =>
      new Gauge({ name, help, labelNames, registers: [r], collect() { this.reset(); set(this, fig()); } });
    // a counter read from a running total: reset, then set to the total
    const counter = (name: string, help: string, labelNames: string[], set: (c: Counter, s: NodeStatus) => void) =>
      new Counter({ name, help, labelNames, registers: [r], collect() { this.reset(); set(this, fig()); } });

    gauge("tidings_info", "The node: path identity and version", ["pathhost", "version"], (g, s) => g.set({ pathhost: s.pathhost, version }, 1));
    gauge("tidings_start_time_seconds", "When the node started, in seconds since the epoch", [], (g, s) => g.set(s.started / 1000));

    // connections and commands
    gauge("tidings_nntp_connections", "Open NNTP connections, by kind (a configured peer feeding us, or any other client)", ["kind"], (g, s) => {
      const peers = s.clients.filter((c) => c.peer).length;
      g.set({ kind: "peer" }, peers);
      g.set({ kind: "client" }, s.clients.length - peers);
    });
    counter("tidings_nntp_connections_total", "NNTP connections taken since start", [], (c, s) => c.inc(s.nntpTotals.connections));
    counter("tidings_nntp_commands_total", "NNTP command lines received since start", [], (c, s) => c.inc(s.nntpTotals.commands));
    counter(
      "tidings_nntp_limited_total",
      "What the NNTP limits did: connections refused or dropped idle for room, sessions cut off (slow line or article), slowed or closed (commands per second), posts over the hourly limit",
      ["action"],
      (c, s) => {
        if (!s.limits) return;
        for (const [action, n] of Object.entries(s.limits)) c.inc({ action }, n);
      },
    );
    gauge("tidings_smtp_connections", "Open SMTP connections", [], (g, s) => g.set(s.smtpOpen));
    counter("tidings_smtp_connections_total", "SMTP connections, by result", ["result"], (c, s) => {
      c.inc({ result: "accepted" }, s.mail.received.connections);
      c.inc({ result: "refused" }, s.mail.received.refusedConnections);
    });
    counter("tidings_smtp_messages_total", "SMTP messages received and queued or posted", [], (c, s) => c.inc(s.mail.received.messages));
    counter("tidings_smtp_refused_total", "SMTP recipients and messages refused", ["what"], (c, s) => {
      c.inc({ what: "recipient" }, s.mail.received.refusedRcpts);
      c.inc({ what: "message" }, s.mail.received.refusedMessages);
    });

    // articles in
    counter("tidings_articles_total", "Articles offered to this node, by outcome (accepted, duplicate, rejected, deferred)", ["outcome"], (c, s) => {
      for (const k of ["accepted", "duplicate", "rejected", "deferred"] as const) c.inc({ outcome: k }, s.articles[k]);
    });
    counter("tidings_articles_path_loops_total", "Articles rejected because Path already names this node", [], (c, s) => c.inc(s.articles.loops));
    counter(
      "tidings_articles_received_total",
      "Articles offered to this node, by origin, the peer they came from (\"\" for other clients), outcome and reason",
      ["origin", "peer", "outcome", "reason"],
      (c, s) => {
        for (const row of s.incoming) c.inc({ origin: row.origin, peer: row.peer, outcome: row.outcome, reason: row.reason }, row.count);
      },
    );

    // articles out, per peer
    counter("tidings_peer_articles_total", "Articles sent to each peer, by what the peer answered (offered, accepted, refused: it had or did not want it, rejected, deferred, dropped as too old)", ["peer", "outcome"], (c, s) => {
      for (const p of s.peers) for (const k of ["offered", "accepted", "refused", "rejected", "deferred", "dropped"] as const) c.inc({ peer: p.name, outcome: k }, p[k]);
    });
    counter("tidings_peer_sent_bytes_total", "Article bytes sent to each peer", ["peer"], (c, s) => {
      for (const p of s.peers) c.inc({ peer: p.name }, p.bytesSent);
    });
    counter("tidings_peer_rejections_total", "Articles a peer refused for themselves (437, 439), by the kind of its reply (at most about 20 kinds a peer; the rest under \"other reasons\")", ["peer", "kind"], (c, s) => {
      for (const p of s.peers) for (const [kind, n] of Object.entries(p.refusals ?? {})) c.inc({ peer: p.name, kind }, n);
    });
    gauge("tidings_peer_connections", "Open connections of the feed to each peer", ["peer"], (g, s) => {
      for (const p of s.peers) g.set({ peer: p.name }, p.connected);
    });
    gauge("tidings_peer_disconnected_since_seconds", "Since when (seconds since the epoch) no feed connection to the peer has been up; 0 while one is", ["peer"], (g, s) => {
      for (const p of s.peers) g.set({ peer: p.name }, p.disconnectedSince ? p.disconnectedSince / 1000 : 0);
    });
    gauge("tidings_peer_backlog_articles", "Articles waiting to be sent to each peer", ["peer"], (g, s) => {
      for (const p of s.peers) g.set({ peer: p.name }, p.backlog.count);
    });
    gauge("tidings_peer_backlog_bytes", "Bytes of the articles waiting for each peer", ["peer"], (g, s) => {
      for (const p of s.peers) g.set({ peer: p.name }, p.backlog.bytes);
    });
    gauge("tidings_peer_backlog_oldest_seconds", "Age of the oldest article waiting for each peer (0 when none waits)", ["peer"], (g, s) => {
      for (const p of s.peers) g.set({ peer: p.name }, p.backlog.oldest ? Math.max(0, (s.written - p.backlog.oldest) / 1000) : 0);
    });

    // queues and storage
    gauge("tidings_writer_queue_items", "Items (articles, mail, bookkeeping) waiting for the group commit", [], (g, s) => g.set(s.writer.queued));
    counter("tidings_writer_commits_total", "Group commit transactions", [], (c, s) => c.inc(s.writer.batches));
    counter("tidings_writer_items_total", "Items written by the group commit", [], (c, s) => c.inc(s.writer.items));
    gauge("tidings_mail_queue_messages", "Messages in the mail queue", [], (g, s) => g.set(s.mail.messages));
    gauge("tidings_mail_queue_recipients", "Recipients waiting in the mail queue", [], (g, s) => g.set(s.mail.recipients));
    gauge("tidings_mail_queue_oldest_seconds", "Age of the oldest queued message (0 when the queue is empty)", [], (g, s) =>
      g.set(s.mail.oldest ? Math.max(0, (s.written - s.mail.oldest) / 1000) : 0),
    );
    counter("tidings_mail_total", "Mail queue events: recipients queued, sent, bounced (failed), retried, not relayed again (looped)", ["outcome"], (c, s) => {
      for (const k of ["queued", "sent", "failed", "retried", "looped"] as const) c.inc({ outcome: k }, s.mail.counts[k]);
    });
    gauge("tidings_database_bytes", "Size of the SQLite database, by file (main, wal), and of the spool's files together (spool)", ["file"], (g, s) => {
      g.set({ file: "main" }, s.database.bytes);
      g.set({ file: "wal" }, s.database.walBytes);
      g.set({ file: "spool" }, s.database.spoolBytes ?? 0);
    });
  }

  /** For GroupCommit.onCommit: a histogram observation, once per transaction. */
  commit(ms: number): void {
    this.#commit.observe(ms / 1000);
  }

  /** The Prometheus text format, from figures collected now; scrapes run one at a time, so one never reads another's figures. */
  text(): Promise<string> {
    const run = async () => {
      this.#s = await this.figures();
      return this.registry.metrics();
    };
    const p = this.#scrape.then(run, run);
    this.#scrape = p.catch(() => "");
    return p;
  }

  /** The GET /metrics handler (relay/http-server.ts). */
  readonly handler = async (_req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await this.text();
    res.writeHead(200, { "Content-Type": this.registry.contentType, "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  };
}
