// Moderated groups (RFC 5537 §3.5.1): what a local poster sends to a
// moderated group without Approved is not stored as an article; it goes by
// mail to the moderator of the first moderated group in Newsgroups, through
// the mail queue, or, when no mail can take it there (no moderator address,
// no route to it), is kept in the held table for the moderator (`tidings
// held`). Approved is honoured only from the group's approvers and its
// moderator; from anyone else the post is refused, as INN refuses it
// ("You are not allowed to approve postings"), since the poster would
// otherwise bypass the moderator. Moderation is enforced at injection only:
// what peers relay with Approved is taken as before.
import type { Logger } from "pino";
import type { Headers } from "../protocol/article/headers.js";
import type { Group } from "../storage/groups.js";
import type { MailQueue } from "../storage/mail-queue.js";
import type { Held } from "../storage/held.js";
import type { RoutePattern } from "./mail/policy.js";
import { hopFor, newsMail } from "./mail/gateway.js";
import { addressOf } from "./control-messages.js";
import type { Config } from "../config/schema.js";

export interface ModerationOptions {
  /** Envelope sender of mail to moderators (bounces go to the operator, not the poster). */
  postmaster: string;
  routes: (RoutePattern & { nextHop: string })[];
  /** [[group]].approvers by group name: user names and mail addresses. */
  approvers: Map<string, string[]>;
}

export type Verdict = { kind: "post" } | { kind: "moderate"; group: Group } | { kind: "refuse"; reason: string };

export class Moderation {
  readonly counts = { mailed: 0, held: 0, refused: 0 };

  constructor(
    private readonly mail: MailQueue,
    private readonly held: Held,
    private opts: ModerationOptions,
    private readonly log: Logger,
  ) {}

  setOptions(opts: ModerationOptions): void {
    this.opts = opts;
  }

  /**
   * What becomes of an injected article for the carried groups `groups`:
   * posted, sent to a moderator (the first moderated group without
   * approval, RFC 5537 §3.5.1 step 1), or refused (Approved from a poster
   * who may not approve).
   */
  verdict(groups: Group[], h: Headers, user: string | undefined): Verdict {
    const moderated = groups.filter((g) => g.status === "m");
    if (moderated.length === 0) return { kind: "post" };
    if (h.count("approved") === 0) return { kind: "moderate", group: moderated[0] };
    const from = addressOf(h.get("from"));
    for (const g of moderated) {
      const approvers = this.opts.approvers.get(g.name) ?? [];
      const ok = user ? approvers.includes(user) : from !== "" && (from === g.moderator.toLowerCase() || approvers.some((a) => a.toLowerCase() === from));
      if (!ok) {
        this.counts.refused++;
        return { kind: "refuse", reason: `You are not allowed to approve postings to ${g.name}${g.moderator ? `; its moderator is ${g.moderator}` : ""}` };
      }
    }
    return { kind: "post" };
  }

  /**
   * Sends the article to the group's moderator, or keeps it; resolves after
   * COMMIT with the text the poster is told. The injection fields are taken
   * off: the article is not injected until the moderator approves it (INN
   * adds them only then too).
   */
  async submit(g: Group, h: Headers, body: Buffer, msgid: string, now: number): Promise<string> {
    for (const name of ["path", "injection-info", "injection-date"]) h.remove(name);
    const hop = g.moderator ? hopFor(g.moderator, this.opts.routes) : undefined;
    if (!hop) {
      const reason = g.moderator ? `no mail route to its moderator ${g.moderator}` : "no moderator address is configured";
      const data = Buffer.concat([Buffer.from(h.serialize() + "\r\n", "latin1"), body]);
      await this.held.hold({ newsgroup: g.name, msgid, received: now, reason, data });
      this.counts.held++;
      this.log.info({ msgid, group: g.name, reason }, "post to a moderated group kept for the moderator");
      return `Article kept for the moderator of ${g.name} (${reason}) ${msgid}`;
    }
    // RFC 5537 §3.5.1 (b): the article as it stands, with a To field for the mail
    h.prepend("To", g.moderator);
    const data = Buffer.concat([Buffer.from(h.serialize() + "\r\n", "latin1"), body]);
    await this.mail.enqueue(newsMail(this.opts.postmaster, [{ rcpt: g.moderator, hop }], data, msgid, now));
    this.counts.mailed++;
    this.log.info({ msgid, group: g.name, moderator: g.moderator }, "post to a moderated group mailed to its moderator");
    return `Article mailed to the moderator of ${g.name} (${g.moderator}) ${msgid}`;
  }
}

/** The options of the configuration's groups and mail routes. */
export function moderationOptions(c: Config, postmaster: string): ModerationOptions {
  return {
    postmaster,
    routes: c.route.map((r) => ({ domain: r.domain, nextHop: r.next_hop })),
    approvers: new Map(c.group.filter((g) => g.approvers.length > 0).map((g) => [g.name, g.approvers])),
  };
}
