// Control messages (RFC 5537 §5): newgroup, rmgroup and checkgroups acted on
// as the configuration's rules allow (INN's control.ctl: the last matching
// rule decides; a rule may require an X-PGP-Sig made with a hierarchy's key,
// relay/pgp.ts), and cancels and supersedes (§5.3, §3.x) honoured as the
// cancel policy and Cancel-Lock (RFC 8315) allow (INN's docancels). Control
// messages are stored and flooded like other articles, filed in the control
// or control.<verb> pseudo-group as INN files them; they are acted on only
// once stored. Ingest calls in at three points: inject (Cancel-Lock and
// Cancel-Key on local posts), before storing (a cancel that came first), and
// after COMMIT (act).
import type { Logger } from "pino";
import { Headers, parseHeaders, printable, clip, type Field } from "../protocol/article/headers.js";
import { isMessageId } from "../protocol/article/msgid.js";
import { wildmat, type Matcher } from "../protocol/article/wildmat.js";
import { keyElement, keyMatches, lockElement } from "../protocol/article/cancel-lock.js";
import type { Storage } from "../storage/database.js";
import { Cancels, cancelLockSecret } from "../storage/cancel.js";
import type { Config } from "../config/schema.js";
import type { GroupStatus } from "../storage/groups.js";
import { KeyRing, verifyXPgpSig } from "./pgp.js";

export type CancelPolicy = "require-auth" | "auth" | "all" | "none";
export type Action = "doit" | "log" | "drop";

export interface ControlRuleConfig {
  message: "newgroup" | "rmgroup" | "checkgroups" | "*";
  from: string;
  groups: string;
  action: Action;
  key: string;
  signer: string;
}

interface Rule {
  message: ControlRuleConfig["message"];
  from: Matcher;
  groups: Matcher;
  action: Action;
  key: string;
  signer: string;
}

export interface ControlOptions {
  rules: ControlRuleConfig[];
  policy: CancelPolicy;
  lockPosts: boolean;
}

/** A control message's verb (lower-cased) and arguments (RFC 5537 §5: "Control: verb arguments"). */
export interface Control {
  verb: string;
  args: string[];
}

/** What act() needs of an article just stored. */
export interface Stored {
  msgid: string;
  fields: Field[];
  body: Buffer;
  control?: Control;
  supersedes?: string;
}

const GROUP_NAME = /^[a-z0-9+_-]+(\.[a-z0-9+_-]+)+$/i;
/** INN's /maxdocheckgroups/ default: a checkgroups asking for more changes than this is logged, not applied. */
const MAX_CHECKGROUPS_CHANGES = 10;
/** Cancels kept waiting for their article at most (each is a few hundred bytes of memory). */
const MAX_PENDING_CANCELS = 100_000;

export function parseControl(value: string | undefined): Control | undefined {
  if (value === undefined) return undefined;
  const words = value.trim().split(/[ \t\r\n]+/);
  if (!words[0]) return undefined;
  return { verb: words[0].toLowerCase(), args: words.slice(1) };
}

/**
 * The pseudo-group a control message is filed in here (INN: control.<verb>
 * if carried, else control), or none; never the groups it names, so that
 * readers of a group do not see the cancels of its articles.
 */
export function controlGroups(c: Control, carried: (g: string) => boolean): string[] {
  for (const g of [`control.${c.verb}`, "control"]) if (carried(g)) return [g];
  return [];
}

/** The address in a From or Sender field, lower-cased (INN's cleanaddr): "Name <a@b>" and "a@b (Name)" give "a@b". */
export function addressOf(value: string | undefined): string {
  if (!value) return "";
  let v = value.replace(/\([^()]*\)/g, " ").trim();
  const m = /<([^<>]*)>/.exec(v);
  if (m) v = m[1];
  return v.split(/[ \t,]+/)[0].toLowerCase();
}

/** The poster a Cancel-Lock is made for: the logged-in user, else the From address. */
export function posterOf(user: string | undefined, h: Headers): string {
  return user ? `user:${user}` : `from:${addressOf(h.get("from"))}`;
}

/** RFC 8315 §3.5 under the policy (INN's docancels). */
export function authorized(policy: CancelPolicy, lock: string | undefined, key: string | undefined): boolean {
  if (policy === "none") return false;
  if (policy === "all") return true;
  if (lock) return keyMatches(key, lock);
  return policy === "auth";
}

export class ControlMessages {
  #rules: Rule[] = [];
  readonly #ring = new KeyRing();
  readonly counts = { acted: 0, logged: 0, refusedSignature: 0, cancelled: 0, cancelRefused: 0, remembered: 0, dropped: 0 };

  constructor(
    private readonly storage: Storage,
    private readonly cancels: Cancels,
    private readonly secret: Buffer,
    private opts: ControlOptions,
    private readonly log: Logger,
  ) {
    this.setOptions(opts);
  }

  /** New rules and policy (after a reload); key files are read again. */
  setOptions(opts: ControlOptions): void {
    this.opts = opts;
    this.#rules = opts.rules.map((r) => ({ ...r, from: wildmat(r.from), groups: wildmat(r.groups) }));
    this.#ring.clear();
  }

  /**
   * inject: RFC 8315 §4. What a local user posts gets a Cancel-Lock (not a
   * control message: INN adds none there either), and a cancel or a
   * superseding article gets the Cancel-Key that opens the lock this node
   * made for the same poster on the target. A key made for another poster
   * opens nothing, so adding it is harmless.
   */
  inject(h: Headers, msgid: string, poster: string, control: Control | undefined): void {
    if (!this.opts.lockPosts) return;
    const append = (name: string, element: string) => {
      const had = h.get(name.toLowerCase());
      h.set(name, had ? `${had} ${element}` : element);
    };
    if (!control) append("Cancel-Lock", lockElement(this.secret, msgid, poster));
    const target = control?.verb === "cancel" ? control.args[0] : h.get("supersedes");
    if (target && isMessageId(target)) append("Cancel-Key", keyElement(this.secret, target, poster));
  }

  /** Before storing: a cancel for this article came first; the reason to refuse it, if that cancel holds. */
  refusedOnArrival(msgid: string, h: Headers): string | undefined {
    const p = this.cancels.pending.get(msgid);
    if (!p) return undefined;
    void this.cancels.forget([msgid]).catch(() => {});
    if (!authorized(this.opts.policy, h.get("cancel-lock"), p.key)) {
      this.log.info({ msgid, cancel: p.by }, "article taken although a cancel for it came first: its Cancel-Key does not open the article's Cancel-Lock");
      return undefined;
    }
    this.counts.cancelled++;
    return `Cancelled by ${p.by} before it arrived`;
  }

  /** After COMMIT: what the stored control message or superseding article asks. Never throws. */
  async act(a: Stored): Promise<void> {
    try {
      const c = a.control;
      if (!c) {
        if (a.supersedes) await this.#cancel(a.supersedes, a, "supersede");
        return;
      }
      switch (c.verb) {
        case "cancel":
          return await this.#cancel(c.args[0], a, "cancel");
        case "newgroup":
        case "rmgroup":
          return await this.#group(c, a);
        case "checkgroups":
          return await this.#checkgroups(a);
        default:
          // ihave, sendme, sendsys, version ...: obsolete or abused (RFC 5537 §5.5, §5.6)
          this.log.info({ msgid: a.msgid, control: c.verb, sender: senderOf(a.fields) }, "control message of a kind not acted on");
      }
    } catch (err) {
      this.log.warn({ msgid: a.msgid, err: String(err) }, "control message failed");
    }
  }

  async #cancel(target: string | undefined, a: Stored, how: "cancel" | "supersede"): Promise<void> {
    if (!target || !isMessageId(target)) {
      this.log.info({ msgid: a.msgid, target: target && clip(printable(target)) }, `${how} with no valid Message-ID ignored`);
      return;
    }
    const policy = this.opts.policy;
    if (policy === "none") return;
    const key = new Headers(a.fields).get("cancel-key");
    const t = await this.cancels.target(target);
    if (!t) {
      if (await this.cancels.known(target)) return; // refused, expired or withdrawn already
      // the target may come later (RFC 5537 §5.3): keep the cancel, unless nothing could ever let it hold
      if (policy === "require-auth" && !key) return;
      // a flood of cancels for articles that never come must not fill memory (they are looked up per article)
      if (this.cancels.pending.size >= MAX_PENDING_CANCELS) {
        this.counts.dropped++;
        this.log.debug({ msgid: a.msgid, target, waiting: this.cancels.pending.size }, `${how} for an article not here dropped: too many cancels waiting`);
        return;
      }
      await this.cancels.remember(target, { key: key ?? "", by: a.msgid, at: Date.now() });
      this.counts.remembered++;
      this.log.info({ msgid: a.msgid, target }, `${how} kept: its article has not come yet`);
      return;
    }
    const lock = new Headers(parseHeaders(Buffer.from(t.header + "\r\n", "latin1"), { strict: false }).fields).get("cancel-lock");
    if (!authorized(policy, lock, key)) {
      this.counts.cancelRefused++;
      const why = lock ? (key ? "its Cancel-Key does not open the article's Cancel-Lock" : "the article has a Cancel-Lock and the cancel no Cancel-Key") : "the article has no Cancel-Lock (cancel.policy = require-auth)";
      this.log.info({ msgid: a.msgid, target }, `${how} not honoured: ${why}`);
      return;
    }
    await this.cancels.withdraw(t);
    this.counts.cancelled++;
    this.log.info({ msgid: a.msgid, target, groups: t.filed.map(([g]) => g) }, `article withdrawn (${how})`);
  }

  /** The last rule that matches (INN's control.ctl order); undefined: none, which means log. */
  #rule(verb: string, sender: string, group: string): Rule | undefined {
    let found: Rule | undefined;
    for (const r of this.#rules) if ((r.message === "*" || r.message === verb) && r.from(sender) && r.groups(group)) found = r;
    return found;
  }

  /** Whether the rule's signature requirement is met; logs when not. */
  async #signed(r: Rule, a: Stored, what: string): Promise<boolean> {
    if (!r.key) return true;
    const v = await verifyXPgpSig(this.#ring, r.key, a.fields, a.body, r.signer);
    if (v.ok) {
      this.log.debug({ msgid: a.msgid, signer: v.signer, key: v.keyId }, "control message signature verified");
      return true;
    }
    this.counts.refusedSignature++;
    this.log.warn({ msgid: a.msgid, sender: senderOf(a.fields), why: v.why, key: r.key }, `${what} ignored: the rules want a valid X-PGP-Sig`);
    return false;
  }

  async #group(c: Control, a: Stored): Promise<void> {
    const name = c.args[0] ?? "";
    const sender = senderOf(a.fields);
    const what = `${c.verb} ${name}${c.verb === "newgroup" && c.args[1] ? ` ${c.args[1]}` : ""}`.trim();
    if (!GROUP_NAME.test(name) || name.length > 255 || reserved(name)) {
      this.log.info({ msgid: a.msgid, sender, control: clip(printable(what)) }, "control message naming no valid group ignored");
      return;
    }
    const r = this.#rule(c.verb, sender, name);
    const action = r?.action ?? "log";
    if (action === "drop") return;
    if (r && !(await this.#signed(r, a, what))) return;
    if (action === "log") {
      this.counts.logged++;
      this.log.info({ msgid: a.msgid, sender, control: what }, "control message logged, not acted on (no [[control]] rule says doit)");
      return;
    }
    this.counts.acted++;
    if (c.verb === "rmgroup") {
      const removed = await this.storage.groups.remove(name);
      this.log.info({ msgid: a.msgid, sender, group: name }, removed ? "group removed (rmgroup)" : "rmgroup for a group not carried");
      return;
    }
    const status: GroupStatus = c.args[1]?.toLowerCase() === "moderated" ? "m" : "y";
    const description = groupInfo(a.body, name);
    const had = this.storage.groups.get(name);
    if (had) {
      if (had.status !== status || (description !== undefined && had.description !== description)) {
        await this.storage.groups.set(name, { status, description });
        this.log.info({ msgid: a.msgid, sender, group: name, status, description }, "group changed (newgroup)");
      }
      return;
    }
    await this.storage.groups.add({ name, status, description, creator: sender });
    this.log.info({ msgid: a.msgid, sender, group: name, status, description }, "group created (newgroup)");
  }

  /**
   * RFC 5537 §5.4. Each listed group's rule decides whether this sender is in
   * charge of it; the changes (groups to add, remove or change) are logged,
   * and applied only when every group involved has a doit rule met (key
   * included) and they are few (as INN mails a script rather than run a long
   * one), so that one bad checkgroups cannot empty a hierarchy.
   */
  async #checkgroups(a: Stored): Promise<void> {
    const sender = senderOf(a.fields);
    const { listed, scope } = parseCheckgroups(a.body);
    const inScope = (g: string) => scope.some((s) => g === s || g.startsWith(s + "."));
    const changes: { group: string; change: "add" | "remove" | "status"; status?: GroupStatus; description?: string }[] = [];
    for (const [group, info] of listed) {
      if (!inScope(group)) continue;
      const had = this.storage.groups.get(group);
      if (!had) changes.push({ group, change: "add", status: info.status, description: info.description });
      else if ((had.status === "m") !== (info.status === "m")) changes.push({ group, change: "status", status: info.status });
    }
    for (const g of this.storage.groups.list()) {
      if (inScope(g.name) && !listed.has(g.name) && !reserved(g.name)) changes.push({ group: g.name, change: "remove" });
    }
    if (changes.length === 0) return;
    const rules = changes.map((ch) => this.#rule("checkgroups", sender, ch.group));
    if (rules.every((r) => r?.action === "drop")) return;
    let apply = rules.every((r) => r?.action === "doit") && changes.length <= MAX_CHECKGROUPS_CHANGES;
    for (const r of new Set(rules)) if (apply && r && !(await this.#signed(r, a, "checkgroups"))) apply = false;
    this.log.info({ msgid: a.msgid, sender, scope, changes: changes.map((ch) => `${ch.change} ${ch.group}${ch.status ? ` ${ch.status}` : ""}`) }, apply ? "checkgroups applied" : `checkgroups logged, not applied (needs a doit rule for every group and at most ${MAX_CHECKGROUPS_CHANGES} changes)`);
    if (!apply) return;
    this.counts.acted++;
    for (const ch of changes) {
      if (ch.change === "add") await this.storage.groups.add({ name: ch.group, status: ch.status, description: ch.description, creator: sender });
      else if (ch.change === "remove") await this.storage.groups.remove(ch.group);
      else await this.storage.groups.set(ch.group, { status: ch.status });
    }
  }
}

/**
 * Names no control message may make or remove: the pseudo-groups and the
 * names RFC 5536 §3.1.4 reserves ("all" and "ctl" as components; control.*,
 * example.*, to.*), whatever the rules say.
 */
function reserved(name: string): boolean {
  const parts = name.toLowerCase().split(".");
  return ["control", "example", "to", "junk"].includes(parts[0]) || parts.some((p) => p === "all" || p === "ctl");
}

/** Sender, else From, as an address (the poster of a control message, as INN's controlchan takes it). */
function senderOf(fields: Field[]): string {
  const h = new Headers(fields);
  return addressOf(h.get("sender") || h.get("from"));
}

/**
 * RFC 5537 §5.2.1: the description in a newgroup's body, from the line after
 * "For your newsgroups file:" ("name<TAB>description", in an
 * application/news-groupinfo part or the plain body); undefined when absent.
 */
export function groupInfo(body: Buffer, name: string): string | undefined {
  const lines = body.toString("utf8").split(/\r?\n/);
  const i = lines.findIndex((l) => /^For your newsgroups file:\s*$/.test(l));
  if (i < 0) return undefined;
  const m = /^(\S+)\s+(.*)$/.exec(lines[i + 1] ?? "");
  return m && m[1] === name ? m[2].trim() : undefined;
}

/** A checkgroups body: "name<white space>description" lines, and "#! scope: ..." (RFC 5537 §5.4); scope defaults to the listed hierarchies. */
export function parseCheckgroups(body: Buffer): { listed: Map<string, { status: GroupStatus; description: string }>; scope: string[] } {
  const listed = new Map<string, { status: GroupStatus; description: string }>();
  let scope: string[] | undefined;
  for (const line of body.toString("utf8").split(/\r?\n/)) {
    const s = /^#!.*\bscope[:=]\s*(.*)$/i.exec(line);
    if (s) {
      scope = s[1].split(/[ \t]+/).filter(Boolean).map((x) => x.replace(/\.\*$/, ""));
      continue;
    }
    const m = /^([a-z0-9+_.-]+)\s+(.*)$/i.exec(line);
    if (!m || !GROUP_NAME.test(m[1]) || reserved(m[1])) continue;
    const description = m[2].trim();
    listed.set(m[1], { status: /\(Moderated\)$/.test(description) ? "m" : "y", description });
  }
  return { listed, scope: scope ?? [...new Set([...listed.keys()].map((g) => g.split(".")[0]))] };
}

/** The options of the configuration's [[control]] and [cancel]. */
export function controlOptions(c: Config): ControlOptions {
  return { rules: c.control, policy: c.cancel.policy, lockPosts: c.cancel.lock_posts };
}

/** Control handling for a node: its waiting cancels loaded, its Cancel-Lock secret made or read. */
export async function openControl(storage: Storage, c: Config, log: Logger): Promise<ControlMessages> {
  const cancels = await Cancels.open(storage.writeDb, storage.writer.engine, storage.readers, storage.groups, Date.now() - c.cancel.remember * 1000);
  const secret = await cancelLockSecret(storage.writeDb);
  return new ControlMessages(storage, cancels, secret, controlOptions(c), log);
}
