// The one submit path every article takes into the node, whatever its origin
// (NNTP POST, IHAVE, TAKETHIS, mail to a group's address; later the web), as
// INN's ARTpost and Postfix's cleanup(8) take everything that enters. Its
// steps: parse, check (RFC 5536), inject (RFC 5537 §3.5) or relay (§3.2
// Path), route (groups here, peers, subscribers), file (the group commit).
// Only a committed article is "accepted"; each front end maps the outcome
// through a table of its own (protocol/nntp/commands/outcomes.ts, and the
// SMTP server's).
import { randomBytes } from "node:crypto";
import { HeaderError, Headers, parseHeaders, unfold, clip, printable, text, trimWsp } from "../protocol/article/headers.js";
import { mailboxListError } from "../protocol/article/mailbox.js";
import { isMessageId } from "../protocol/article/msgid.js";
import { parseNewsgroups } from "../protocol/article/newsgroups.js";
import { identitiesName, prependPath, isPathIdentity, pathIdentities } from "../protocol/article/path.js";
import { formatDateHeader, parseDateHeader } from "../protocol/article/date.js";
import type { Storage } from "../storage/database.js";
import { WriterBusy } from "../storage/group-commit.js";
import type { NewArticle } from "../storage/writer.js";
import type { NewMail } from "../storage/mail-queue.js";
import { isTransient } from "../storage/sqlite.js";
import type { Bus } from "./bus.js";
import type { Logger } from "pino";
import { wants, type PeerRoute } from "./feeds/routing.js";
import { RefusalLog } from "./refusals.js";
import { LogOnce } from "./log-once.js";
import { controlGroups, parseControl, posterOf, type Control, type ControlMessages, type Stored } from "./control-messages.js";
import type { Moderation } from "./moderation.js";
import type { Group } from "../storage/groups.js";

export type Origin = "nntp-post" | "nntp-ihave" | "nntp-takethis" | "mail" | "web";

/** Origins where this node is the injecting agent (RFC 5537 §3.5). */
const INJECTED: ReadonlySet<Origin> = new Set(["nntp-post", "mail", "web"]);

export interface Source {
  kind: Origin;
  /** Client address, for Injection-Info and logs. */
  client: string;
  /** For mail: the envelope sender, never mailed the article back (the gateway loop). */
  mailFrom?: string;
  /** The Message-ID named by IHAVE or TAKETHIS. */
  offered?: string;
  /** Name of the peer it came from, when known. */
  peer?: string;
  /** The user the client logged in as (RFC 4643): Cancel-Lock and Approved go by it. */
  user?: string;
}

export type Outcome =
  /** `note`: what the poster is told instead (a post sent to a moderator, which is not stored: id 0). */
  | { kind: "accepted"; msgid: string; id: number; peers: number[]; note?: string }
  | { kind: "duplicate"; msgid: string; reason: string }
  | { kind: "rejected"; msgid?: string; reason: string }
  | { kind: "deferred"; msgid?: string; reason: string };

export interface IngestOptions {
  pathhost: string;
  /** Mail subscribers of each group (news to mail). */
  subscribers?: Map<string, string[]>;
  /** Makes the mail that takes an article to a group's subscribers (relay/mail/gateway.ts). */
  newsToMail?: (header: string, body: Buffer, msgid: string, groups: string[], rcpts: string[], now: number) => NewMail;
  maxFutureSeconds: number;
  rememberRefused: boolean;
  peers: PeerRoute[];
  /** Control messages, cancels, supersedes and Cancel-Lock (relay/control-messages.ts). */
  control?: ControlMessages;
  /** Moderated groups (relay/moderation.ts); without it an unapproved post to one is refused. */
  moderation?: Moderation;
}

const REQUIRED = ["message-id", "newsgroups", "from", "subject", "date", "path"];
/**
 * Fields that may occur at most once (RFC 5322 §3.6, RFC 5536 §3): a second
 * copy would let a reader and this node disagree about the article.
 */
const SINGLE = [...REQUIRED, "references", "sender", "control", "approved", "supersedes", "distribution", "followup-to", "expires", "injection-date", "injection-info"];

/** A header value for a reply or a log: clipped, control and 8-bit octets escaped. */
const show = (v: string) => clip(printable(v));

class Refuse extends Error {}

export class Ingest {
  readonly counts = { accepted: 0, duplicate: 0, rejected: 0, deferred: 0, loops: 0 };
  /** Why articles are refused, at info level once per kind and peer or client, with counts. */
  readonly refusals: RefusalLog;

  constructor(
    private readonly storage: Storage,
    private readonly bus: Bus,
    private readonly opts: IngestOptions,
    private readonly log: Logger,
  ) {
    this.refusals = new RefusalLog(log, "article refused");
    this.#trouble = new LogOnce(log);
  }

  /** Storage trouble (a full disk, a read-only file), once per cause with counts: one line an article made 409,000 lines in 25 s. */
  readonly #trouble: LogOnce;

  /** Logs the counts of conditions still going on. */
  stop(): void {
    this.refusals.stop();
    this.#trouble.stop();
  }

  /** The peers' routes after a reload; the next article is routed with them. */
  setPeers(peers: PeerRoute[]): void {
    this.opts.peers = peers;
  }

  /** Told every outcome with its source (relay/metrics.ts keeps tallies per origin and reason); must not throw. */
  onOutcome?: (o: Outcome, source: Source) => void;

  async article(raw: Buffer, source: Source): Promise<Outcome> {
    let msgid: string | undefined = source.offered;
    try {
      const p = this.#prepare(raw, source);
      msgid = p.msgid;
      if ("moderate" in p) return this.#count({ kind: "accepted", msgid, id: 0, peers: [], note: await p.moderate() }, source);
      // handed to the writer as it is (a copy without these two cost a young-generation object per article)
      const prepared: NewArticle = p;
      const { injectedAlready, act } = p;
      if (injectedAlready) {
        // an article a gateway mailed out, come back to a group address: if it is
        // here already it is a duplicate of itself (the list loop), else a second injection
        if (await this.storage.history.has(msgid)) return this.#count({ kind: "duplicate", msgid, reason: "Duplicate Message-ID" }, source);
        throw new Refuse("Article already injected (has Injection-Info)");
      }
      // no history lookup here: the single writer checks history inside the batch, authoritatively
      const r = await this.storage.writer.store(prepared);
      if (r.kind !== "stored") return this.#count({ kind: "duplicate", msgid, reason: "Duplicate Message-ID" }, source);
      if (this.log.isLevelEnabled("debug")) this.log.debug({ msgid, id: r.id, peers: prepared.peers, source: source.kind }, "article accepted");
      this.bus.accepted$.next({ id: r.id, msgid, groups: prepared.groups, bytes: r.data.length, data: r.data, source: source.kind, peers: prepared.peers });
      // a control message or a superseding article acts once stored, before the reply: the poster of a cancel sees it done
      if (act) await this.opts.control?.act(act);
      return this.#count({ kind: "accepted", msgid, id: r.id, peers: prepared.peers }, source);
    } catch (err) {
      if (err instanceof Refuse || err instanceof HeaderError) {
        const reason = err.message;
        if (!INJECTED.has(source.kind) && this.opts.rememberRefused && msgid && isMessageId(msgid)) {
          this.storage.writer.refuse(msgid).catch(() => {});
        }
        this.log.debug({ msgid, source: source.kind, client: source.client, reason }, "article refused");
        this.refusals.event(source.peer ?? source.client, reason, { msgid, source: source.kind, client: source.client });
        return this.#count({ kind: "rejected", msgid, reason }, source);
      }
      if (err instanceof WriterBusy || isTransient(err)) {
        const cause = err instanceof WriterBusy ? "writer queue full" : ((err as { code?: string }).code ?? "storage error");
        this.#trouble.event("warn", `deferred: ${cause}`, "storage", "articles deferred: storage busy", { msgid, err: String(err) });
        return this.#count({ kind: "deferred", msgid, reason: `Storage busy (${(err as Error).message}); try again later` }, source);
      }
      // Unknown failures defer too: a valid article must never be refused for our fault.
      this.#trouble.event("error", `failed: ${(err as Error)?.message ?? String(err)}`.slice(0, 200), "ingest", "ingest failed", { msgid, err });
      return this.#count({ kind: "deferred", msgid, reason: "Internal error; try again later" }, source);
    }
  }

  /** Every outcome passes here once: counted, and told to onOutcome. */
  #count<T extends Outcome>(o: T, source: Source): T {
    this.counts[o.kind]++;
    this.onOutcome?.(o, source);
    return o;
  }

  /** The steps before the group commit; throws Refuse with the reason. */
  #prepare(raw: Buffer, source: Source): (NewArticle & { injectedAlready: boolean; act?: Stored }) | { msgid: string; moderate: () => Promise<string> } {
    const now = Date.now();
    const { parsed, h } = this.#parse(raw);
    const { msgid, groups, newsgroups } = this.#check(h, raw, parsed.bodyStart, parsed.hasSeparator, source, now);
    const { injectedAlready, path } = this.#injectOrRelay(h, source, now);
    // RFC 5537 §5: one header lookup each is all an ordinary article pays for control handling
    const control = parseControl(h.get("control"));
    const supersedes = h.get("supersedes");
    if (INJECTED.has(source.kind) && !injectedAlready) this.opts.control?.inject(h, msgid, posterOf(source.user, h), control);
    const { carried, peers, subscribers, moderated } = this.#route(h, groups, newsgroups, raw.length, source, control, path);
    const body = parsed.hasSeparator ? raw.subarray(parsed.bodyStart) : Buffer.alloc(0);
    const moderation = this.opts.moderation;
    if (moderated && moderation && !injectedAlready) return { msgid, moderate: () => moderation.submit(moderated, h, body, msgid, now) };
    const cancelled = this.opts.control?.refusedOnArrival(msgid, h);
    if (cancelled) throw new Refuse(cancelled);
    const header = h.bytes();
    return {
      msgid,
      header,
      body,
      groups: carried,
      subject: overviewField(h.get("subject")),
      author: overviewField(h.get("from")),
      date: overviewField(h.get("date")),
      refs: overviewField(h.get("references")),
      lines: countLines(body),
      source: source.peer ?? source.kind,
      arrived: now,
      peers,
      mail: subscribers.length > 0 && this.opts.newsToMail ? this.opts.newsToMail(header.toString("latin1"), body, msgid, carried, subscribers, now) : undefined,
      injectedAlready,
      act: control || supersedes ? { msgid, fields: h.fields, body, control, supersedes } : undefined,
    };
  }

  /** parse: the header section as octets, refusing what a reader and this node could read differently. */
  #parse(raw: Buffer) {
    const parsed = parseHeaders(raw);
    const h = new Headers(parsed.fields, raw);
    for (const key of SINGLE) {
      if (h.count(key) > 1) throw new Refuse(`Duplicate header: ${h.all(key)[0].name}`);
    }
    return { parsed, h };
  }

  /** check: the required headers and their syntax (RFC 5536 §3.1); an injecting agent fills in Message-ID and Date. */
  #check(h: Headers, raw: Buffer, bodyStart: number, hasBody: boolean, source: Source, now: number) {
    const post = INJECTED.has(source.kind);
    // RFC 3977 §3.6 forbids NUL anywhere in an article; INN 2.7 refuses it in
    // the body too ("Nul character in body"). A lone CR or bare LF in the body
    // is kept as it came, as INN does: old gateways send them, and the framer
    // and the dot-stuffing treat a bare LF as a line end both ways.
    if (hasBody && raw.indexOf(0, bodyStart) >= 0) throw new Refuse("NUL character in body");

    // Message-ID (RFC 5536 §3.1.3)
    let msgid = h.get("message-id");
    if (msgid === undefined) {
      if (!post) throw new Refuse("Missing required header: Message-ID");
      msgid = `<${now.toString(36)}.${randomBytes(6).toString("hex")}@${this.opts.pathhost}>`;
      h.set("Message-ID", msgid);
    } else if (!isMessageId(msgid)) {
      throw new Refuse(`Invalid Message-ID: ${show(msgid)}`);
    }
    if (source.offered && source.offered !== msgid) {
      throw new Refuse(`Message-ID ${show(msgid)} does not match offered ${show(source.offered)}`);
    }

    // Newsgroups, From, Subject (RFC 5536 §3.1.4, §3.1.2, §3.1.3 of 5322)
    const newsgroups = h.get("newsgroups");
    if (newsgroups === undefined || newsgroups === "") throw new Refuse("Missing required header: Newsgroups");
    let groups: string[];
    try {
      groups = parseNewsgroups(newsgroups);
    } catch (err) {
      throw new Refuse((err as Error).message);
    }
    const from = h.get("from");
    if (!from) throw new Refuse("Missing required header: From");
    // RFC 5536 §3.1.2: From is an RFC 5322 mailbox-list
    const fromError = mailboxListError(from);
    if (fromError) throw new Refuse(`Invalid From header (${fromError}): ${show(from)}`);
    const subject = h.get("subject");
    if (subject === undefined || subject === "") throw new Refuse("Missing required header: Subject");

    // Date (RFC 5536 §3.1.1)
    const date = h.get("date");
    if (date === undefined) {
      if (!post) throw new Refuse("Missing required header: Date");
      h.set("Date", formatDateHeader(now));
    } else {
      const t = parseDateHeader(date);
      if (t === undefined) throw new Refuse(`Invalid Date header: ${show(date)}`);
      if (t > now + this.opts.maxFutureSeconds * 1000) throw new Refuse(`Article dated in the future: ${show(date)}`);
    }
    return { msgid, groups, newsgroups };
  }

  /**
   * inject (RFC 5537 §3.5) for POST and mail: Path, Injection-Date and
   * Injection-Info are added; or, for what a peer relays, the Path check
   * (§3.2): a relay refuses what already passed through it. Returns whether
   * a mail carried an Injection-Info already (an article a gateway mailed
   * out): refused unless history has it, which article() checks first; and,
   * for a relayed article, its new Path's identities (for routing).
   */
  #injectOrRelay(h: Headers, source: Source, now: number): { injectedAlready: boolean; path?: string[] } {
    const pathhost = this.opts.pathhost;
    const path = h.get("path");
    h.remove("xref"); // RFC 5536 §3.2.14: Xref is this server's own
    let injectedAlready = false;
    if (INJECTED.has(source.kind)) {
      if (h.count("injection-info") > 0) {
        if (source.kind !== "mail") throw new Refuse("Article already injected (has Injection-Info)");
        injectedAlready = true;
      }
      // an empty Path is a missing one: replaced in place, never left beside ours
      if (path) h.set("Path", `${pathhost}!.POSTED!${path}`);
      else if (path === "") h.set("Path", `${pathhost}!.POSTED!not-for-mail`);
      else h.prepend("Path", `${pathhost}!.POSTED!not-for-mail`);
      h.set("Injection-Date", formatDateHeader(now));
      h.set("Injection-Info", `${pathhost}; posting-host="${source.client}"`);
    } else {
      if (path === undefined || path === "") throw new Refuse("Missing required header: Path");
      const ids = pathIdentities(path);
      if (ids.length === 0 || !ids.every(isPathIdentity)) throw new Refuse(`Invalid Path header: ${show(path)}`);
      if (identitiesName(ids, pathhost)) {
        this.counts.loops++;
        throw new Refuse(`Article already passed through ${pathhost} (Path loop)`);
      }
      h.set("Path", prependPath(pathhost, path));
      ids.unshift(pathhost);
      return { injectedAlready, path: ids };
    }
    return { injectedAlready };
  }

  /** route: which groups here carry it, which peers get it, and which mail subscribers. */
  #route(h: Headers, groups: string[], newsgroups: string, bytes: number, source: Source, control: Control | undefined, path = pathIdentities(h.get("path")!)) {
    const post = INJECTED.has(source.kind);
    const has = (g: string) => this.storage.groups.get(g) !== undefined;
    // a control message is filed in control.<verb> or control (as INN files it) and goes to
    // peers by its Newsgroups, and to those that take that pseudo-group (INN's innd(8))
    const carried = control ? controlGroups(control, has) : groups.filter(has);
    const distribution = h.get("distribution")?.split(",").map(trimWsp).filter(Boolean);
    const routed = control ? [...groups, carried[0] ?? "control"] : groups;
    const route = { groups: routed, distribution, bytes, path, from: source.peer };
    const peers = this.opts.peers.filter((p) => wants(p, route)).map((p) => p.id);
    // a control message is taken even where no control group is carried: kept only until passed on, but acted on
    if (carried.length === 0 && !control && (post || peers.length === 0)) throw new Refuse(`No carried newsgroups in ${show(newsgroups)}`);
    let moderated: Group | undefined;
    if (post && !control) {
      const here = carried.map((g) => this.storage.groups.get(g)!);
      for (const g of here) if (g.status === "n") throw new Refuse(`Posting to ${g.name} is not allowed`);
      // RFC 5537 §3.5.1: to the moderator unless approved, and approved only by whom the group allows
      const v = this.opts.moderation?.verdict(here, h, source.user);
      if (v?.kind === "refuse") throw new Refuse(v.reason);
      if (v?.kind === "moderate") moderated = v.group;
      const unapproved = !this.opts.moderation && here.find((g) => g.status === "m" && h.count("approved") === 0);
      if (unapproved) throw new Refuse(`Group ${unapproved.name} is moderated and no moderator address is configured`);
    }
    // the gateway loop: mail that came from an address is never mailed back to it
    const sender = source.mailFrom?.toLowerCase();
    const subscribers = new Set<string>();
    for (const g of carried) {
      for (const a of this.opts.subscribers?.get(g) ?? []) if (a.toLowerCase() !== sender) subscribers.add(a);
    }
    return { carried, peers, subscribers: [...subscribers], moderated };
  }
}

/**
 * RFC 3977 §8.3.2: overview fields are unfolded, with TAB, CR and LF made
 * spaces. They are kept as text (UTF-8): octets that are not UTF-8 show as
 * U+FFFD in OVER and HDR, while the article itself keeps them.
 */
function overviewField(v: string | undefined): string {
  return v ? text(unfold(v)).replace(/[\t\r\n]/g, " ") : "";
}

function countLines(body: Buffer): number {
  if (body.length === 0) return 0;
  let n = 0;
  let i = -1;
  while ((i = body.indexOf(0x0a, i + 1)) >= 0) n++;
  if (body[body.length - 1] !== 0x0a) n++;
  return n;
}
