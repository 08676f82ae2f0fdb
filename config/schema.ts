// The configuration file's schema: every key with its type, default and a
// sentence of documentation. The README's table is printed from this file
// (`tidings config-doc`).
import { z } from "zod";
import cron from "node-cron";
import { wildmatError } from "../protocol/article/wildmat.js";
import { USER_NAME } from "../storage/users.js";
import { dnsServerError, hostPortError, parseAddressEntry } from "./net.js";
import { checkNames } from "./checks.js";
import { checkTls } from "./tls.js";
import { checkControl } from "./control.js";

/** A string checked by `why` (config/net.ts, which the node parses with too): what it returns is the error. */
const checked = (why: (s: string) => string | undefined) =>
  z.string().superRefine((s, ctx) => {
    const message = why(s);
    if (message) ctx.addIssue({ code: "custom", message });
  });

const hostPort = checked(hostPortError);

const cidr = checked((s) => {
  const r = parseAddressEntry(s);
  return typeof r === "string" ? r : undefined;
});

export const groupName = z.string().regex(/^[A-Za-z0-9+_-]+(\.[A-Za-z0-9+_-]+)*$/, "expected a newsgroup name such as local.test");

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
  // not local.*: `tidings peer add` sends it (groups "*,!local.*,!junk,!control*"), so stock nodes that peer share it
  { name: "tidings.general", status: "y" as const, description: "General discussion, shared with peers" },
  { name: "tidings.announce", status: "m" as const, description: "Announcements (moderated)" },
  { name: "control", status: "n" as const, description: "Control messages (RFC 5537)" },
  { name: "junk", status: "n" as const, description: "Articles for no carried group" },
];

export const mailAddress = z.string().regex(/^[^\s@<>]+@[A-Za-z0-9.-]+$/, "expected a mail address such as local.general@news.example.org");

export const GroupSchema = z.strictObject({
  name: groupName,
  status: z.enum(["y", "n", "m"]).default("y"),
  description: z.string().default(""),
  moderator: doc("[[group]].moderator", z.union([z.literal(""), mailAddress]), "", "Mail address of the moderator of a moderated group (status m): posts without Approved go there (RFC 5537 §3.5.1). Empty: none.", "\"\" (none)"),
  address: doc("[[group]].address", z.union([z.literal(""), mailAddress]), "", "Mail address of the group: mail to it (from anyone) is posted to the group (mail to news). Empty: none.", "\"\" (none)"),
  subscribers: doc("[[group]].subscribers", z.array(mailAddress), [], "Mail addresses that get each article accepted in the group, through the mail queue, with List-Id, List-Post and List-Unsubscribe headers (news to mail)."),
  approvers: doc("[[group]].approvers", z.array(z.string().min(1)), [], "Who may post to the moderated group with an Approved header (RFC 5537 §3.5.1): user names (a poster logged in as one), and mail addresses (a poster not logged in whose From is one; as strong as nntp.posting_from). The moderator address always may. Anyone else's Approved post is refused with 441."),
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

const wildmatOrNone = z.union([z.literal(""), wildmatList]);

/** What the node does with newgroup, rmgroup and checkgroups messages (INN's control.ctl; relay/control-messages.ts). */
export const ControlRuleSchema = z.strictObject({
  message: doc("[[control]].message", z.enum(["newgroup", "rmgroup", "checkgroups", "*"]), "*", "Control message the rule is for: newgroup, rmgroup, checkgroups, or * (all three). Cancels are governed by [cancel]."),
  from: doc("[[control]].from", wildmatList, "*", "Sender addresses (Sender, else From; lower-cased) the rule is for, as a wildmat list, e.g. \"group-admin@isc.org\"."),
  groups: doc("[[control]].groups", wildmatList, "*", "Groups the message names (the group made or removed; each group a checkgroups lists), as a wildmat list, e.g. \"comp.*,humanities.*\"."),
  action: doc("[[control]].action", z.enum(["doit", "log", "drop"]), "log", "doit: act on it; log: log what it asks and do nothing; drop: ignore it silently. Of the rules that match, the last one applies; none matching: log."),
  key: doc("[[control]].key", z.string(), "", "Armored OpenPGP public key file of the hierarchy: when set, the message is acted on only if its X-PGP-Sig (as signcontrol makes it and pgpverify checks it) verifies with a key of the file; otherwise it is logged and ignored. Empty: no signature needed.", "\"\" (none)"),
  signer: doc("[[control]].signer", z.string(), "", "With key: text that one of the signing key's user IDs must contain (INN's verify-<id>). Empty: any key of the file.", "\"\" (any)"),
});

/** Who may do what over NNTP, by address and user (relay/access-rules.ts); the first entry that applies decides. */
export const AccessSchema = z.strictObject({
  from: doc("[[access]].from", z.array(cidr).min(1), ["0.0.0.0/0", "::/0"], "Client addresses the entry is for (addresses or CIDR blocks)."),
  users: doc("[[access]].users", z.array(z.union([z.literal("*"), z.string().regex(USER_NAME, "expected a user name (letters, digits, . _ @ + -) or *")])), [], "Users the entry is for once they have logged in (AUTHINFO; \"*\": any user). Empty: anyone from `from`, logged in or not."),
  read: doc("[[access]].read", wildmatOrNone, "*", "Groups that may be read, as a wildmat list; the others are not listed and answer as missing (411, 430). \"\": no reading (502, or 480 where logging in would allow it)."),
  post: doc("[[access]].post", wildmatOrNone, "", "Groups that may be posted to, as a wildmat list; an article for another group is refused with 441 and the reason. \"\": no posting (440, or 480 where logging in would allow it)."),
  transit: doc("[[access]].transit", z.boolean(), false, "May feed us articles (IHAVE, MODE STREAM, CHECK, TAKETHIS) as nntp.transit_from allows; a [[peer]]'s accept_from may always."),
  auth_required: doc("[[access]].auth_required", z.boolean(), false, "A client that has not logged in gets 480 to every command but AUTHINFO, STARTTLS, CAPABILITIES, HELP, DATE and QUIT; once logged in, this entry's read, post and transit apply to it."),
});

/** Days as a number (fractions allowed), or "never". */
const retentionDays = z.union([z.number().positive('expected more than 0 days (e.g. 14 or 0.5), or "never"'), z.literal("never")], { error: 'expected a number of days (e.g. 14 or 0.5) or "never"' });

/** A rule key left out takes its value from [expire] (the default rule). */
function inherited<T extends z.ZodType>(key: string, schema: T, text: string) {
  KEY_DOCS.push({ key, default: "(from [expire])", doc: text });
  return schema.optional();
}

/** Retention for the groups a pattern matches (INN's expire.ctl lines; relay/expiry.ts). */
export const ExpireRuleSchema = z.strictObject({
  groups: required("[[expire.rule]].groups", wildmatList, "Groups the rule is for, as a wildmat list (e.g. \"local.*,!local.archive\"); of the rules that match a group, the last one applies (as in INN's expire.ctl)."),
  days: inherited("[[expire.rule]].days", retentionDays, "Days an article stays in these groups after it arrived, or \"never\"."),
  max_articles: inherited("[[expire.rule]].max_articles", z.int().min(0), "Most articles kept in each of these groups (the newest); 0: no cap."),
  max_bytes: inherited("[[expire.rule]].max_bytes", z.int().min(0), "Most bytes of articles kept in each of these groups (the newest); 0: no cap."),
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
  window: doc("[[peer]].window", z.int().min(1).max(10_000), 300, "Articles offered and not yet answered, per connection (and at most 16 MiB of them)."),
  accept_from: doc("[[peer]].accept_from", z.array(cidr), [], "Addresses that may feed us as this peer (IHAVE, MODE STREAM, CHECK, TAKETHIS)."),
  max_backlog_age: doc("[[peer]].max_backlog_age", z.int().min(1), 7 * 86400, "Seconds after which an article still queued for the peer is dropped (and counted) instead of sent."),
  tls: doc("[[peer]].tls", z.union([z.boolean(), z.literal("starttls")]), false, "Send to the peer over TLS, its certificate verified: true connects with TLS at once (the peer's nntps port, usually 563); \"starttls\" upgrades a plain connection with STARTTLS (RFC 4642) and never sends in plain text if the peer does not offer it; false sends in plain text."),
  tls_ca: doc("[[peer]].tls_ca", z.string(), "", "PEM file of the CA (or the peer's own self-signed certificate) that the peer's certificate must verify against. Empty: the system's CAs.", "\"\" (system CAs)"),
  tls_servername: doc("[[peer]].tls_servername", z.string().regex(/^[A-Za-z0-9.:\-]*$/, "expected a host name such as news.example.org"), "", "Name the peer's certificate must carry (and sent as SNI). Empty: host.", "\"\" (= host)"),
});

export const ConfigSchema = z.strictObject({
  node: z
    .strictObject({
      pathhost: doc("node.pathhost", z.string().regex(/^([A-Za-z0-9][A-Za-z0-9._:\-]*)?$/, "expected a path identity such as news.example.org (RFC 5536 §3.1.5)").max(255), "", "This node's path identity: prepended to Path and named in Xref (RFC 5537 §3.2.1); it must differ from every other node's. Empty: made once from the host name and a random part, kept in the database.", "\"\" (made once, kept)"),
      data_dir: doc("node.data_dir", z.string().min(1), "./data", "Folder for the SQLite database; created if missing."),
    })
    .prefault({}),
  nntp: z
    .strictObject({
      listen: doc("nntp.listen", hostPort, "127.0.0.1:1119", "Address and port of the NNTP listener; port 0 picks a free port."),
      tls_listen: doc("nntp.tls_listen", z.union([z.literal("off"), hostPort]), "off", "Address and port of the implicit-TLS (nntps) listener, 563 by convention (RFC 8143): TLS from the first byte, with the [tls] certificate; port 0 picks a free port. STARTTLS on nntp.listen works either way."),
      max_connections: doc("nntp.max_connections", z.int().min(1), 256, "Most NNTP connections at once; beyond it a client gets 400."),
      max_connections_per_client: doc("nntp.max_connections_per_client", z.int().min(1), 64, "Most NNTP connections at once from one address."),
      idle_timeout: doc("nntp.idle_timeout", z.int().min(1), 600, "Seconds of silence after which a session is closed (RFC 3977 §3.1 wants at least 180)."),
      reserved_connections: doc("nntp.reserved_connections", z.int().min(0), 16, "Connections kept for addresses that have none yet (at most a quarter of nntp.max_connections): an address that already has c connections gets another only while 2c is less than the free connections minus this many."),
      evict_idle_after: doc("nntp.evict_idle_after", z.int().min(1), 180, "When every connection is taken, a client from a new address takes the place of the one silent longest, if it has been silent this many seconds; that one gets 400."),
      command_timeout: doc("nntp.command_timeout", z.number().min(1), 30, "Seconds a client has to finish a command line once its first byte came, however slowly it trickles (then 400 and close); also an article's grace before nntp.min_article_rate counts."),
      min_article_rate: doc("nntp.min_article_rate", z.int().min(1), 2048, "Slowest average rate, in octets a second, an article may arrive at: it may take nntp.command_timeout plus a second per this many octets (up to nntp.max_article_bytes), then 400 and close. 1 MiB gets about 9 minutes."),
      max_commands_per_second: doc("nntp.max_commands_per_second", z.number().min(0), 100, "Commands a second one session may send on average, ten seconds' worth at once; beyond it the node reads its commands more slowly, and 400 and close if far beyond. Transit sessions are not counted. 0: no limit."),
      max_posts_per_hour: doc("nntp.max_posts_per_hour", z.int().min(0), 60, "POSTs one user, or one address before AUTHINFO, may send in any hour; beyond it 441. Transit sessions are not counted. 0: no limit."),
      max_line: doc("nntp.max_line", z.int().min(512), 512, "Longest command line in octets, CRLF included (RFC 3977 §3.1); longer ones get 501."),
      max_article_bytes: doc("nntp.max_article_bytes", z.int().min(1024), 1_048_576, "Largest article accepted, in octets; larger ones are refused (441/437/439) and nothing is stored."),
      max_in_flight: doc("nntp.max_in_flight", z.int().min(1), 1024, "Pipelined commands read ahead per connection before reading pauses."),
      posting_from: doc("nntp.posting_from", z.array(cidr), ["127.0.0.0/8", "::1"], "Client addresses that may POST; others are greeted with 201 and get 440."),
      transit_from: doc("nntp.transit_from", z.array(cidr), ["127.0.0.0/8", "::1"], "Client addresses that may use IHAVE, MODE STREAM, CHECK and TAKETHIS; others get 502."),
      reader_from: doc("nntp.reader_from", z.array(cidr), ["0.0.0.0/0", "::/0"], "Client addresses that may read; others get 502 at the greeting."),
    })
    .prefault({}),
  tls: z
    .strictObject({
      cert: doc("tls.cert", z.string(), "", "PEM certificate file (with its chain) for STARTTLS and the nntps listener (RFC 4642, RFC 8143), and for SMTP STARTTLS unless smtp.tls_cert is set. Read again on SIGHUP and when the file changes. Empty: no TLS.", "\"\" (no TLS)"),
      key: doc("tls.key", z.string(), "", "PEM private key file for tls.cert (keep it mode 0600).", "\"\""),
    })
    .prefault({}),
  auth: z
    .strictObject({
      allow_plaintext: doc("auth.allow_plaintext", z.boolean(), false, "Take passwords over connections without TLS (NNTP AUTHINFO, SMTP AUTH), loopback included. Off: a login before STARTTLS or off the TLS port gets 483 (NNTP, RFC 4643 §2.2) or 538 (SMTP)."),
      failure_delay: doc("auth.failure_delay", z.number().min(0).max(60), 1, "Seconds before a failed login is answered (481, 535); the delay doubles with each further failure from the same address (IPv6: the same /64) and halves for every minute without one."),
      failure_delay_max: doc("auth.failure_delay_max", z.number().min(0).max(3600), 30, "Longest delay before a failed login is answered, in seconds."),
    })
    .prefault({}),
  access: doc("[[access]]", z.array(AccessSchema), [], "Access rules by client address and user: which groups may be read and posted to, transit, and whether logging in comes first. The first entry that applies decides; with none, nntp.reader_from, posting_from and transit_from decide.", "[] (the nntp.*_from lists decide)"),
  storage: z
    .strictObject({
      synchronous: doc("storage.synchronous", z.enum(["full", "normal"]), "full", "\"full\" syncs each group commit to disk before acknowledging; \"normal\" survives a crash of the process but not of the machine."),
      max_batch: doc("storage.max_batch", z.int().min(1), 2000, "Most articles written in one transaction (group commit)."),
      max_queue: doc("storage.max_queue", z.int().min(1), 20000, "Articles waiting for the writer beyond which new ones are deferred (436/431)."),
      max_queue_bytes: doc("storage.max_queue_bytes", z.int().min(1024), 64 * 1024 * 1024, "Bytes of articles waiting for the writer beyond which new ones are deferred (436/431); bounds memory when articles are large."),
      spool_min_bytes: doc("storage.spool_min_bytes", z.int().min(0), 4096, "Articles of at least this many bytes are written once to append-only spool files in DATA/spool, synced before the commit that points at them, instead of into the database (whose write-ahead log writes every byte twice); their rows keep the header. 0 spools every article; a value above nntp.max_article_bytes spools none."),
      spool_segment_bytes: doc("storage.spool_segment_bytes", z.int().min(65536), 64 * 1024 * 1024, "Size at which a spool file is closed and the next begun. Space comes back a whole file at a time: expiry deletes a file once no article in it is left."),
      purge_transit: doc("storage.purge_transit", z.string().refine((s) => cron.validate(s), "expected a node-cron expression, seconds first, e.g. */30 * * * * *"), "*/30 * * * * *", "When (node-cron expression, seconds first) to delete articles kept only to pass on once every peer has them; their Message-IDs stay in history."),
    })
    .prefault({}),
  articles: z
    .strictObject({
      max_future: doc("articles.max_future", z.int().min(0), 86400, "Seconds a Date may lie in the future before the article is refused."),
      remember_refused: doc("articles.remember_refused", z.boolean(), true, "Record refused Message-IDs in history so they are not offered again (RFC 5537 §3.6)."),
    })
    .prefault({}),
  expire: z
    .strictObject({
      schedule: doc("expire.schedule", z.union([z.literal("off"), z.string().refine((s) => cron.validate(s), "expected a node-cron expression, seconds first, e.g. 0 15 3 * * * (03:15 every day), or off")]), "0 15 3 * * *", "When (node-cron expression, seconds first) expiry runs; \"off\": only by `tidings expire`."),
      remember: doc("expire.remember", z.number().min(0), 11, "Days a Message-ID is still refused after its article expired (and a refused one after it was refused); then its history row is forgotten and the article would be taken again. INN's /remember/:11; 0: remember for ever."),
      days: doc("expire.days", retentionDays, "never", "Default rule: days an article stays in a group after it arrived, or \"never\". A cross-posted article leaves each group by that group's rule, and is removed when it is in none."),
      max_articles: doc("expire.max_articles", z.int().min(0), 0, "Default rule: most articles kept in a group (the newest); 0: no cap."),
      max_bytes: doc("expire.max_bytes", z.int().min(0), 0, "Default rule: most bytes of articles kept in a group (the newest); 0: no cap."),
      vacuum: doc("expire.vacuum", z.boolean(), true, "After each run, give the database pages it freed back to the file system (incremental vacuum); false: keep them in the file for new articles."),
      rule: doc("[[expire.rule]]", z.array(ExpireRuleSchema), [], "Retention rules by group pattern, overriding the default rule key by key.", "[] (the default rule for every group)"),
    })
    .prefault({}),
  http: z
    .strictObject({
      listen: doc("http.listen", z.union([z.literal("off"), hostPort]), "127.0.0.1:8119", "Address and port of the HTTP listener (/metrics for Prometheus, and the web reader); port 0 picks a free port; \"off\" turns it off. Loopback by default: the figures name peers and clients."),
      max_connections: doc("http.max_connections", z.int().min(1), 2048, "Most HTTP connections at once; each browser with a group page open holds one for its live updates (Server-Sent Events)."),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: doc("log.level", z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]), "info", "Least severe level written to the log on standard error: JSON lines, or readable lines (pino-pretty) when standard error is a terminal."),
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
      tls_cert: doc("smtp.tls_cert", z.string(), "", "PEM certificate file; with smtp.tls_key, STARTTLS is offered (RFC 3207). Empty: the node's certificate (tls.cert), if any.", "\"\" (= tls.cert)"),
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
      dns_servers: doc("mail.dns_servers", z.array(checked(dnsServerError)), [], "DNS servers for mx routes (MX and address lookups). Empty: the system's resolver.", "[] (the system's)"),
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
  control: doc("[[control]]", z.array(ControlRuleSchema), [], "Rules for newgroup, rmgroup and checkgroups messages (RFC 5537 §5.2-5.4), like INN's control.ctl. None: every such message is logged and nothing is done.", "[] (log only)"),
  cancel: z
    .strictObject({
      policy: doc("cancel.policy", z.enum(["require-auth", "auth", "all", "none"]), "require-auth", "Which cancels and supersedes withdraw an article (INN's docancels): require-auth only those whose Cancel-Key opens the article's Cancel-Lock (RFC 8315); auth those too, and any for an article without Cancel-Lock; all every one; none none."),
      lock_posts: doc("cancel.lock_posts", z.boolean(), true, "Add a Cancel-Lock to what local users post (made from a secret kept in the database), and a matching Cancel-Key to their own cancels and supersedes: the poster is the logged-in user, or the From address when not logged in."),
      remember: doc("cancel.remember", z.number().min(0), 30 * 86400, "Seconds a cancel that came before its article is kept, so that the article is refused if it comes meanwhile."),
    })
    .prefault({}),
  group: doc("[[group]]", z.array(GroupSchema), DEFAULT_GROUPS.map((g) => GroupSchema.parse(g)), "Groups carried: name, status (y posting allowed, n no local posting, m moderated) and description. Listing any replaces the defaults.", DEFAULT_GROUPS.map((g) => `${g.name} (${g.status})`).join(", ")),
});

/** Rules that span keys: each names the key at fault, so the error gives its file and line. */
export const CheckedConfigSchema = ConfigSchema.superRefine((c, ctx) => {
  checkNames(c, ctx);
  checkTls(c, ctx);
  checkControl(c, ctx);
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
