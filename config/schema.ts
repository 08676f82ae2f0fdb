// The configuration file's schema: every key with its type, default and a
// sentence of documentation. The README's table is printed from this file
// (`tidings config-doc`).
import { z } from "zod";

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/, "expected HOST:PORT, e.g. 127.0.0.1:1119");

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

const DEFAULT_GROUPS = [
  { name: "local.general", status: "y" as const, description: "General discussion on this node" },
  { name: "local.test", status: "y" as const, description: "Test postings" },
  { name: "tidings.announce", status: "m" as const, description: "Announcements (moderated)" },
  { name: "control", status: "n" as const, description: "Control messages (RFC 5537)" },
  { name: "junk", status: "n" as const, description: "Articles for no carried group" },
];

export const GroupSchema = z.strictObject({
  name: groupName,
  status: z.enum(["y", "n", "m"]).default("y"),
  description: z.string().default(""),
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
  group: doc("[[group]]", z.array(GroupSchema), DEFAULT_GROUPS, "Groups carried: name, status (y posting allowed, n no local posting, m moderated) and description. Listing any replaces the defaults.", DEFAULT_GROUPS.map((g) => `${g.name} (${g.status})`).join(", ")),
});

export type Config = z.infer<typeof ConfigSchema>;
