// The configuration file's schema: every key with its type, default and a
// sentence of documentation. The README's table is printed from this file
// (`tidings config-doc`).
import { z } from "zod";
import cron from "node-cron";
import { wildmatError } from "../protocol/article/wildmat.js";

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/, "expected HOST:PORT, e.g. 127.0.0.1:1119")
  .refine((s) => Number(s.slice(s.lastIndexOf(":") + 1)) <= 65535, "expected a port from 0 to 65535");

const cidr = z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, "expected an address or CIDR block, e.g. 127.0.0.0/8");

const groupName = z.string().regex(/^[A-Za-z0-9+_-]+(\.[A-Za-z0-9+_-]+)*$/, "expected a newsgroup name such as local.test");

export interface KeyDoc {
  key: string;
  default: string;
  doc: string;
}

/** Documentation of each key, in file order; the README table is made from it. */
export const KEY_DOCS: KeyDoc[] = [];

function doc<T extends z.ZodType>(key: string, schema: T, def: z.infer<T>, text: string, shown?: string) {
  KEY_DOCS.push({ key, default: shown ?? JSON.stringify(def), doc: text });
  return schema.default(def as never);
}

function required<T extends z.ZodType>(key: string, schema: T, text: string) {
  KEY_DOCS.push({ key, default: "(required)", doc: text });
  return schema;
}

const DEFAULT_GROUPS = [
  { name: "local.general", status: "y" as const, description: "General discussion on this node" },
  { name: "local.test", status: "y" as const, description: "Test postings" },
  { name: "tidings.announce", status: "m" as const, description: "Announcements (moderated)" },
  { name: "control", status: "n" as const, description: "Control messages (RFC 5537)" },
  { name: "junk", status: "n" as const, description: "Articles for no carried group" },
];

const mailAddress = z.string().regex(/^[^\s@<>]+@[A-Za-z0-9.-]+$/, "expected a mail address such as local.general@news.example.org");

export const GroupSchema = z.strictObject({
  name: groupName,
  status: z.enum(["y", "n", "m"]).default("y"),
  description: z.string().default(""),
  address: doc("[[group]].address", z.union([z.literal(""), mailAddress]), "", "Mail address of the group: mail to it (from anyone) is posted to the group (mail to news). Empty: none.", "\"\" (none)"),
  subscribers: doc("[[group]].subscribers", z.array(mailAddress), [], "Mail addresses that get each article accepted in the group, through the mail queue, with List-Id, List-Post and List-Unsubscribe headers (news to mail)."),
});

const hostPortOrMx = z.union([z.literal("mx"), hostPort]);

export const RouteSchema = z.strictObject({
  domain: required("[[route]].domain", z.string().regex(/^(\*|(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*)$/, "expected a domain, *.domain (its subdomains) or * (everything else)"), "Mail domain the route is for: example.org, *.example.org (its subdomains), or * (the smarthost for every other domain; used for trusted senders only). Mail for a domain other than * is accepted from anyone."),
  next_hop: required("[[route]].next_hop", hostPortOrMx, "Where mail for the domain goes: HOST:PORT of the next SMTP relay, or mx (look the domain up in DNS; port 25)."),
});

const wildmatList = z
  .string()
  .regex(/^[^\s]+$/, "expected a wildmat list without spaces, e.g. *,!local.*,!junk")
  .superRefine((v, ctx) => {
    const why = wildmatError(v);
    if (why) ctx.addIssue({ code: "custom", message: `expected a wildmat list (${why}), e.g. *,!local.*,!junk` });
  });

export const PeerSchema = z.strictObject({
  name: required("[[peer]].name", z.string().regex(/^[A-Za-z0-9._-]+$/, "expected a short name of letters, digits, '.', '_' or '-'"), "The peer's name, used in logs, status and Path defaults."),
  host: doc("[[peer]].host", z.string().min(1), "", "Host name or address to connect to when sending to this peer; empty means we only receive from it.", "\"\" (receive only)"),
  port: doc("[[peer]].port", z.int().min(1).max(65535), 119, "NNTP port of the peer."),
  path_identities: doc("[[peer]].path_identities", z.array(z.string().regex(/^[A-Za-z0-9._:\-]+$/)), [], "Path identities that mean this peer (RFC 5537 §3.2); an article whose Path names one is never offered to it. Empty means [name].", "[] (= [name])"),
  groups: doc("[[peer]].groups", wildmatList, "*,!local.*,!junk,!control*", "Groups the peer gets, as a wildmat list with negation (RFC 3977 §4); an article goes if any of its groups matches."),
  distributions: doc("[[peer]].distributions", z.array(z.string()), [], "Distribution values the peer takes (RFC 5536 §3.2.4); empty means any. An article without Distribution always goes."),
  max_article_bytes: doc("[[peer]].max_article_bytes", z.int().min(1), 1_048_576, "Largest article offered to the peer."),
  streaming: doc("[[peer]].streaming", z.boolean(), true, "Offer with CHECK/TAKETHIS (RFC 4644) when the peer allows MODE STREAM; otherwise IHAVE."),
  connections: doc("[[peer]].connections", z.int().min(1).max(16), 1, "Connections used to send to the peer."),
  window: doc("[[peer]].window", z.int().min(1).max(10_000), 100, "Articles offered and not yet answered, per connection."),
  accept_from: doc("[[peer]].accept_from", z.array(cidr), [], "Addresses that may feed us as this peer (IHAVE, MODE STREAM, CHECK, TAKETHIS)."),
  max_backlog_age: doc("[[peer]].max_backlog_age", z.int().min(1), 7 * 86400, "Seconds after which an article still queued for the peer is dropped (and counted) instead of sent."),
});

export const ConfigSchema = z.strictObject({
  node: z
    .strictObject({
      pathhost: doc("node.pathhost", z.string().regex(/^[A-Za-z0-9._:\-]+$/, "expected a path identity such as news.example.org"), "tidings.local", "This node's path identity: prepended to Path and named in Xref (RFC 5537 §3.2.1)."),
      data_dir: doc("node.data_dir", z.string().min(1), "./data", "Folder for the SQLite database; created if missing."),
    })
    .prefault({}),
  nntp: z
    .strictObject({
      listen: doc("nntp.listen", hostPort, "127.0.0.1:1119", "Address and port of the NNTP listener; port 0 picks a free port."),
      max_connections: doc("nntp.max_connections", z.int().min(1), 256, "Most NNTP connections at once; beyond it a client gets 400."),
      max_connections_per_client: doc("nntp.max_connections_per_client", z.int().min(1), 64, "Most NNTP connections at once from one address."),
      idle_timeout: doc("nntp.idle_timeout", z.int().min(1), 600, "Seconds of silence after which a session is closed (RFC 3977 §3.1 wants at least 180)."),
      max_line: doc("nntp.max_line", z.int().min(512), 512, "Longest command line in octets, CRLF included (RFC 3977 §3.1); longer ones get 501."),
      max_article_bytes: doc("nntp.max_article_bytes", z.int().min(1024), 1_048_576, "Largest article accepted, in octets; larger ones are refused (441/437/439) and nothing is stored."),
      max_in_flight: doc("nntp.max_in_flight", z.int().min(1), 1024, "Pipelined commands read ahead per connection before reading pauses."),
      posting_from: doc("nntp.posting_from", z.array(cidr), ["127.0.0.0/8", "::1"], "Client addresses that may POST; others are greeted with 201 and get 440."),
      transit_from: doc("nntp.transit_from", z.array(cidr), ["127.0.0.0/8", "::1"], "Client addresses that may use IHAVE, MODE STREAM, CHECK and TAKETHIS; others get 502."),
      reader_from: doc("nntp.reader_from", z.array(cidr), ["0.0.0.0/0", "::/0"], "Client addresses that may read; others get 502 at the greeting."),
    })
    .prefault({}),
  storage: z
    .strictObject({
      synchronous: doc("storage.synchronous", z.enum(["full", "normal"]), "full", "\"full\" syncs each group commit to disk before acknowledging; \"normal\" survives a crash of the process but not of the machine."),
      max_batch: doc("storage.max_batch", z.int().min(1), 2000, "Most articles written in one transaction (group commit)."),
      max_queue: doc("storage.max_queue", z.int().min(1), 20000, "Articles waiting for the writer beyond which new ones are deferred (436/431)."),
      max_queue_bytes: doc("storage.max_queue_bytes", z.int().min(1024), 64 * 1024 * 1024, "Bytes of articles waiting for the writer beyond which new ones are deferred (436/431); bounds memory when articles are large."),
      purge_transit: doc("storage.purge_transit", z.string().refine((s) => cron.validate(s), "expected a node-cron expression, seconds first, e.g. */30 * * * * *"), "*/30 * * * * *", "When (node-cron expression, seconds first) to delete articles kept only to pass on once every peer has them; their Message-IDs stay in history."),
    })
    .prefault({}),
  articles: z
    .strictObject({
      max_future: doc("articles.max_future", z.int().min(0), 86400, "Seconds a Date may lie in the future before the article is refused."),
      remember_refused: doc("articles.remember_refused", z.boolean(), true, "Record refused Message-IDs in history so they are not offered again (RFC 5537 §3.6)."),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: doc("log.level", z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]), "info", "Least severe level written to the log (standard error, JSON lines)."),
    })
    .prefault({}),
  peer: z.array(PeerSchema).default([]),
  smtp: z
    .strictObject({
      listen: doc("smtp.listen", z.union([z.literal("off"), hostPort]), "127.0.0.1:2525", "Address and port of the SMTP listener; port 0 picks a free port; \"off\" turns mail receiving off."),
      hostname: doc("smtp.hostname", z.string().regex(/^([A-Za-z0-9.-]*)$/, "expected a host name such as mail.example.org"), "", "Name in the SMTP greeting, in Received headers and as the reporting MTA of bounces. Empty: node.pathhost.", "\"\" (= node.pathhost)"),
      relay_from: doc("smtp.relay_from", z.array(cidr), ["127.0.0.0/8", "::1"], "Client addresses that may relay mail to any domain (Postfix's mynetworks); others may only send to routed domains and group addresses, and get 554 5.7.1 for anything else."),
      max_message_bytes: doc("smtp.max_message_bytes", z.int().min(1024), 10_240_000, "Largest message accepted, in octets (SIZE, RFC 1870); larger ones get 552 5.3.4, whether declared or sent."),
      max_recipients: doc("smtp.max_recipients", z.int().min(1), 1000, "Most recipients of one message; more get 452 4.5.3 (RFC 5321 §4.5.3.1.8: at least 100)."),
      max_line: doc("smtp.max_line", z.int().min(1000), 32_768, "Longest line of a message, in octets with CRLF; a message with a longer one gets 552 5.3.4 and nothing is queued (RFC 5321 §4.5.3.1.6 asks for at least 1000)."),
      max_connections: doc("smtp.max_connections", z.int().min(1), 100, "Most SMTP connections at once; beyond it a client gets 421 4.7.0."),
      max_connections_per_client: doc("smtp.max_connections_per_client", z.int().min(1), 20, "Most SMTP connections at once from one address; beyond it 421 4.7.0."),
      idle_timeout: doc("smtp.idle_timeout", z.int().min(1), 300, "Seconds of silence after which a session is closed with 421 (RFC 5321 §4.5.3.2.7: 5 minutes)."),
      max_received: doc("smtp.max_received", z.int().min(1), 50, "A message with more Received headers than this is refused as a mail loop (554 5.4.6; Postfix's hopcount_limit)."),
      tls_cert: doc("smtp.tls_cert", z.string(), "", "PEM certificate file; with smtp.tls_key, STARTTLS is offered (RFC 3207). Empty: no STARTTLS.", "\"\" (no TLS)"),
      tls_key: doc("smtp.tls_key", z.string(), "", "PEM private key file for smtp.tls_cert.", "\"\""),
    })
    .prefault({}),
  mail: z
    .strictObject({
      retry_first: doc("mail.retry_first", z.number().min(0.01), 300, "Seconds before the first retry of a deferred recipient; doubles each attempt up to retry_max (Postfix's minimal_backoff_time)."),
      retry_max: doc("mail.retry_max", z.number().min(0.01), 4000, "Longest wait between retries, in seconds (Postfix's maximal_backoff_time)."),
      max_lifetime: doc("mail.max_lifetime", z.number().min(1), 5 * 86400, "Seconds a message may stay queued; then it is bounced to its sender (Postfix's maximal_queue_lifetime)."),
      sweep: doc("mail.sweep", z.string().refine((s) => cron.validate(s), "expected a node-cron expression, seconds first, e.g. */10 * * * * *"), "*/10 * * * * *", "When (node-cron expression) to look for deferred mail that is due; new mail is tried at once."),
      connections_per_hop: doc("mail.connections_per_hop", z.int().min(1).max(64), 8, "Most SMTP connections at once to one next hop (reused between messages)."),
      remember_relayed: doc("mail.remember_relayed", z.number().min(0), 7 * 86400, "Seconds the (Message-ID, recipient) pairs relayed are remembered; the same pair is not relayed again meanwhile (loop protection)."),
      dns_servers: doc("mail.dns_servers", z.array(z.string().regex(/^(\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\])(:\d{1,5})?$/, "expected an address with an optional port, e.g. 192.0.2.53 or 127.0.0.1:5353")), [], "DNS servers for mx routes (MX and address lookups). Empty: the system's resolver.", "[] (the system's)"),
      mx_port: doc("mail.mx_port", z.int().min(1).max(65535), 25, "Port of the hosts an mx route finds in DNS (RFC 5321 §4.5.4: 25)."),
      postmaster: doc("mail.postmaster", z.string(), "", "Envelope sender of mail made here for groups (news to mail) and where List-Unsubscribe points. Empty: postmaster@smtp.hostname.", "\"\" (= postmaster@hostname)"),
    })
    .prefault({}),
  route: doc("[[route]]", z.array(RouteSchema), [], "Mail routes: which next hop takes mail for which domain. None: the node relays no mail (group addresses still work).", "[] (none)"),
  feeds: z
    .strictObject({
      reconnect_min: doc("feeds.reconnect_min", z.number().min(0.01), 0.2, "Seconds before the first reconnection to a peer that failed; doubles up to reconnect_max, with jitter."),
      reconnect_max: doc("feeds.reconnect_max", z.number().min(0.1), 60, "Longest wait between reconnections, in seconds."),
      reply_timeout: doc("feeds.reply_timeout", z.number().min(0.1), 60, "Seconds a peer may leave offered articles unanswered before the connection is dropped and made again (with backoff)."),
      retry_deferred: doc("feeds.retry_deferred", z.number().min(0.01), 2, "Seconds before an article the peer deferred (431/436) is offered again."),
      status_interval: doc("feeds.status_interval", z.number().min(0.1), 2, "Seconds between writes of data_dir/status.json and log lines of per-peer figures (log only when something changed)."),
    })
    .prefault({}),
  group: doc("[[group]]", z.array(GroupSchema), DEFAULT_GROUPS.map((g) => GroupSchema.parse(g)), "Groups carried: name, status (y posting allowed, n no local posting, m moderated) and description. Listing any replaces the defaults.", DEFAULT_GROUPS.map((g) => `${g.name} (${g.status})`).join(", ")),
});

/** Rules that span keys: each names the key at fault, so the error gives its file and line. */
export const CheckedConfigSchema = ConfigSchema.superRefine((c, ctx) => {
  const seen = new Map<string, number>();
  c.route.forEach((r, i) => {
    const d = r.domain.toLowerCase();
    if (seen.has(d)) ctx.addIssue({ code: "custom", path: ["route", i, "domain"], message: `a second route for ${r.domain} (the first is [[route]] number ${seen.get(d)! + 1})` });
    seen.set(d, i);
  });
  const addresses = new Map<string, string>();
  c.group.forEach((g, i) => {
    if (g.address) {
      const a = g.address.toLowerCase();
      if (addresses.has(a)) ctx.addIssue({ code: "custom", path: ["group", i, "address"], message: `${g.address} is already the address of ${addresses.get(a)}` });
      addresses.set(a, g.name);
    }
    g.subscribers.forEach((sub, j) => {
      const domain = sub.slice(sub.lastIndexOf("@") + 1).toLowerCase();
      const routed = c.route.some((r) => r.domain === "*" || r.domain.toLowerCase() === domain || (r.domain.startsWith("*.") && domain.endsWith(r.domain.slice(1).toLowerCase())));
      if (!routed) ctx.addIssue({ code: "custom", path: ["group", i, "subscribers", j], message: `no [[route]] takes mail for ${domain}, so ${sub} would never get the group's articles` });
    });
  });
  if (Boolean(c.smtp.tls_cert) !== Boolean(c.smtp.tls_key)) {
    ctx.addIssue({ code: "custom", path: ["smtp", c.smtp.tls_cert ? "tls_key" : "tls_cert"], message: "STARTTLS needs both smtp.tls_cert and smtp.tls_key" });
  }
});

export type Config = z.infer<typeof ConfigSchema>;
