// The mail-news gateways (INN's mailpost and news2mail in one place).
// Mail to news: the message becomes an article for the group(s) its
// recipients name, keeping its Message-ID and every header a reader needs;
// the submit path (ingest, origin "mail") then injects it like a POST.
// News to mail: an accepted article goes to the group's subscribers through
// the mail queue, with the list headers of RFC 2369 and RFC 2919.
import { Headers, parseHeaders } from "../../protocol/article/headers.js";
import type { NewMail } from "../../storage/mail-queue.js";
import { routeFor, type RoutePattern } from "./policy.js";
import { asciiDomain, parseAddress } from "../../protocol/smtp/address.js";

/**
 * The article for a mail to group addresses: Newsgroups names the groups
 * (replacing any the mail had: the envelope decides where it goes, as with
 * INN's mailpost), and a mail without Subject gets one, since RFC 5536 §3.1
 * requires it. Everything else stays: the submit path checks From, Date and
 * Message-ID, and adds Path and Injection-* (RFC 5537 §3.5).
 */
export function mailToArticle(mail: Buffer, groups: string[]): Buffer {
  const parsed = parseHeaders(mail);
  const h = new Headers(parsed.fields);
  h.set("Newsgroups", groups.join(","));
  if (!h.get("subject")) h.set("Subject", "(no subject)");
  // Xref and Path are a news server's own; a mail that has them is a copy of an article
  h.remove("xref");
  const body = parsed.hasSeparator ? mail.subarray(parsed.bodyStart) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from(h.serialize(), "latin1"), Buffer.from("\r\n"), body]);
}

export interface NewsToMailOptions {
  hostname: string;
  /** Envelope sender of list mail, and where List-Unsubscribe points. */
  postmaster: string;
  routes: (RoutePattern & { nextHop: string })[];
  /** Group name → its mail address ("" when none). */
  addresses: Map<string, string>;
}

/** The queue name of a route's next hop for a domain: HOST:PORT, or mx:DOMAIN (A-labels: DNS wants them; smtp-server hands IDNs over as U-labels). */
export function hopName(route: RoutePattern & { nextHop: string }, domain: string): string {
  return route.nextHop === "mx" ? `mx:${asciiDomain(domain) ?? domain}` : route.nextHop;
}

/** The next hop for a recipient's domain, or undefined when no route takes it. */
export function hopFor(address: string, routes: (RoutePattern & { nextHop: string })[]): string | undefined {
  const a = parseAddress(address);
  if ("error" in a) return undefined;
  const r = routeFor(a.domain, routes) as (RoutePattern & { nextHop: string }) | undefined;
  return r && hopName(r, a.domain);
}

/**
 * Makes the mail that carries an article to a group's subscribers: the
 * article's header section as stored (its news fields too: a mail reader
 * shows what it knows and ignores the rest) plus List-Id (RFC 2919),
 * List-Post and List-Unsubscribe (RFC 2369). The envelope sender is the postmaster, never
 * the author, so bounces reach the operator and not the poster.
 */
export function newsToMail(o: NewsToMailOptions) {
  return (header: string, body: Buffer, msgid: string, groups: string[], rcpts: string[], now: number): NewMail => {
    const g = groups[0];
    const address = o.addresses.get(g) ?? "";
    const list = [
      `List-Id: <${g}.${o.hostname}>`,
      `List-Post: ${address ? `<mailto:${address}>` : "NO"}`,
      `List-Unsubscribe: <mailto:${o.postmaster}?subject=unsubscribe%20${encodeURIComponent(g)}>`,
      `Precedence: list`,
    ].join("\r\n");
    const data = Buffer.concat([Buffer.from(`${header}${list}\r\n\r\n`, "latin1"), body]);
    const routed = rcpts.flatMap((rcpt) => {
      const hop = hopFor(rcpt, o.routes);
      return hop ? [{ rcpt, hop }] : [];
    });
    return newsMail(o.postmaster, routed, data, msgid, now);
  };
}

/** Mail made here from an article (list mail, a post for a moderator): from the postmaster, queued with origin "news". */
export function newsMail(sender: string, rcpts: { rcpt: string; hop: string }[], data: Buffer, msgid: string, now: number): NewMail {
  return { sender, rcpts, data, client: "news", origin: "news", msgid, eightBit: data.some((b) => b > 0x7f), smtputf8: false, received: now };
}
