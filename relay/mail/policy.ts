// The relay decision at RCPT TO: may this client give this node mail for this
// recipient? Pure: the SMTP front end parses the command, decides whether the
// client is trusted (smtp.relay_from) and turns the verdict into a reply.
//
// The order, first match wins:
//
//  1. Not an address (parseAddress)          -> 501 5.1.3 Bad recipient address syntax
//  2. One of the gateway addresses           -> ok "gateway", from anyone. Compared by
//     addressKey(): local part case-insensitive, quotes around a plain
//     Dot-string ignored, domain case-insensitive and in A-label form, a
//     source route ignored (RFC 5321 §4.1.1.3: servers SHOULD ignore
//     source routes, or MAY decline the relaying they imply).
//  3. A routing trick (routingTrick: "@", "%", "!", "::" in the local part,
//     or a source route), client not trusted -> 554 5.7.1 Relay access denied.
//     Postfix's allow_untrusted_routing = no: a next hop that honours the trick
//     would relay onward for us. Checked before the domain, so it holds for
//     every domain, routed or not.
//  4. An address literal ([127.0.0.1], [IPv6:::1]) is never "routed": trusted
//     -> "relay" (through the "*" route), else 554 5.7.1.
//  5. A domain matched by a route other than "*" -> ok "routed", from anyone.
//  6. Client not trusted -> 554 5.7.1 <rcpt>: Relay access denied (Postfix's
//     reject_unauth_destination wording). This includes other local parts at
//     a gateway address's domain: that domain may have other users elsewhere,
//     so they are neither "unknown" here nor routed.
//  7. Trusted, and "*" exists -> ok "relay" with that route; no "*" ->
//     550 5.1.2 <rcpt>: No route to domain (RFC 3463: 5.1.2 bad destination
//     system address; permanent, since a config change is needed).
//
// Upper case never changes a verdict: domains, patterns and gateway addresses
// are all compared lower-cased (and as A-labels), tricks are found in any case.

import { addressKey, asciiDomain, parseAddress, routingTrick, type MailAddress } from "../../protocol/smtp/address.js";
import { echo as echoSafe } from "../../protocol/article/atext.js";

/** "example.org" (that domain only), "*.example.org" (its subdomains only), or "*" (catch-all: the smarthost; never makes a domain "routed"). */
export interface RoutePattern {
  domain: string;
}

export interface PolicyInput {
  routes: RoutePattern[];
  /** Full addresses like "local.general@news.example", case-insensitive. */
  gatewayAddresses: string[];
  /** The client is in smtp.relay_from (the caller decides with its address list). */
  trusted: boolean;
}

export type Verdict =
  | {
      ok: true;
      kind: "gateway" | "routed" | "relay";
      address: MailAddress;
      /** The route taken (kinds "routed" and "relay"). */
      route?: RoutePattern;
      /**
       * Kind "gateway": the entry of gatewayAddresses that matched, exactly as
       * configured. Look the group up with this, not with the recipient text:
       * "Local.General@News.Example.", "\"local.general\"@news.example" and
       * "@x:local.general@news.example" all match "local.general@news.example".
       */
      gateway?: string;
    }
  | { ok: false; code: number; enhanced: string; message: string };

const ECHO_MAX = 300;

/** The recipient as given, safe for a reply line: printable ASCII only, clipped. */
const echo = (s: string) => echoSafe(s, ECHO_MAX);

const refuse = (code: number, enhanced: string, message: string): Verdict => ({ ok: false, code, enhanced, message });
const denied = (rcpt: string): Verdict => refuse(554, "5.7.1", `<${echo(rcpt)}>: Relay access denied`);

/** A pattern in comparable form: "*", { exact } or { suffix } (A-labels), or undefined when it can match nothing. */
function pattern(p: string): "*" | { exact: string } | { suffix: string } | undefined {
  if (p === "*") return "*";
  if (p.startsWith("*.")) {
    const s = asciiDomain(p.slice(2));
    return s === undefined ? undefined : { suffix: s };
  }
  const e = asciiDomain(p);
  return e === undefined ? undefined : { exact: e };
}

/**
 * The most specific route for a domain: an exact pattern, else the longest
 * "*.suffix" (subdomains only: "*.example.org" never matches "example.org"),
 * else "*". The domain and the patterns are compared lower-cased, without one
 * trailing dot and as A-labels. An address literal ("[...]") matches only "*".
 * A pattern that is not a valid domain name matches nothing.
 */
export function routeFor(domain: string, routes: RoutePattern[]): RoutePattern | undefined {
  const d = domain.startsWith("[") ? undefined : asciiDomain(domain);
  let catchAll: RoutePattern | undefined;
  let best: RoutePattern | undefined;
  let bestLen = -1;
  for (const r of routes) {
    const p = pattern(r.domain);
    if (p === undefined) continue;
    if (p === "*") {
      catchAll ??= r;
      continue;
    }
    if (d === undefined) continue;
    if ("exact" in p) {
      if (p.exact === d) return r;
    } else if (d.length > p.suffix.length + 1 && d.endsWith(`.${p.suffix}`) && p.suffix.length > bestLen) {
      best = r;
      bestLen = p.suffix.length;
    }
  }
  return best ?? catchAll;
}

/** The verdict on one RCPT TO address, given exactly as the client sent it inside < >. */
export function rcptVerdict(rcpt: string, input: PolicyInput): Verdict {
  const address = parseAddress(rcpt);
  if ("error" in address) return refuse(501, "5.1.3", `Bad recipient address syntax: ${address.error}`);

  const key = addressKey(address);
  for (const g of input.gatewayAddresses) {
    const ga = parseAddress(g);
    if ("error" in ga) continue; // a config error; it can match nothing
    if (addressKey(ga) === key) return { ok: true, kind: "gateway", address, gateway: g };
  }

  if (routingTrick(address) !== undefined && !input.trusted) return denied(rcpt);

  const route = routeFor(address.domain, input.routes);
  if (address.literal) {
    if (!input.trusted) return denied(rcpt);
  } else {
    if (route !== undefined && route.domain !== "*") return { ok: true, kind: "routed", address, route };
    if (!input.trusted) return denied(rcpt);
  }
  if (route === undefined) return refuse(550, "5.1.2", `<${echo(rcpt)}>: No route to domain`);
  return { ok: true, kind: "relay", address, route };
}
