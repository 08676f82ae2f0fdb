// SMTP envelope addresses (RFC 5321 §4.1.2, RFC 6531) and the relay decision at
// RCPT TO: every known way to make a relay forward mail for a stranger.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  addressKey,
  asciiDomain,
  canonicalLocal,
  parseAddress,
  routingTrick,
  type MailAddress,
} from "../../protocol/smtp/address.js";
import { rcptVerdict, routeFor, type PolicyInput, type RoutePattern } from "../../relay/mail/policy.js";

function parsed(s: string): MailAddress {
  const a = parseAddress(s);
  if ("error" in a) assert.fail(`${JSON.stringify(s)}: ${a.error}`);
  return a;
}

function bad(s: string, why?: RegExp): void {
  const a = parseAddress(s);
  assert.ok("error" in a, `${JSON.stringify(s)} parsed as ${JSON.stringify(a)}`);
  if (why) assert.match(a.error, why, JSON.stringify(s));
}

// ---------------------------------------------------------------- parsing

test("plain addresses", () => {
  assert.deepEqual(parsed("user@example.org"), {
    local: "user",
    domain: "example.org",
    literal: false,
    sourceRoute: false,
    quoted: false,
  });
  assert.deepEqual(parsed("First.Last+tag@Mail.Example.ORG"), {
    local: "First.Last+tag",
    domain: "mail.example.org",
    literal: false,
    sourceRoute: false,
    quoted: false,
  });
  assert.equal(parsed("!#$%&'*+-/=?^_`{|}~@x.example").local, "!#$%&'*+-/=?^_`{|}~");
  assert.equal(parsed("u@localhost").domain, "localhost");
  assert.equal(parsed("u@a-b.c-d.example").domain, "a-b.c-d.example");
});

test("quoted local parts, with escapes", () => {
  const a = parsed('"john doe"@example.org');
  assert.equal(a.local, '"john doe"');
  assert.equal(a.quoted, true);
  assert.equal(parsed('"a\\"b\\\\c"@example.org').local, '"a\\"b\\\\c"');
  assert.equal(parsed('"a\\ b"@example.org').local, '"a\\ b"');
  assert.equal(parsed('""@example.org').local, '""'); // *QcontentSMTP may be empty
  assert.equal(parsed('"a.b"@example.org').quoted, true);
  assert.equal(canonicalLocal(parsed('"local.general"@x.example')), "local.general");
  assert.equal(canonicalLocal(parsed('"local\\.general"@x.example')), "local.general");
  assert.equal(canonicalLocal(parsed('"a b"@x.example')), '"a b"');
  assert.equal(canonicalLocal(parsed('"a\\ b"@x.example')), '"a b"');
  assert.equal(canonicalLocal(parsed('"a\\"b"@x.example')), '"a\\"b"');
  assert.equal(canonicalLocal(parsed('"a..b"@x.example')), '"a..b"');
  assert.equal(canonicalLocal(parsed('""@x.example')), '""');
  bad('"abc@example.org', /unterminated/);
  bad('"abc\\"@example.org', /unterminated/);
  bad('"a\tb"@example.org'); // TAB is not qtextSMTP
  bad('"a\\\tb"@example.org', /quoted-pair/); // quoted-pairSMTP is %d32-126 only
  bad('"a\rb"@example.org');
  bad('"a"b@example.org');
  bad('a"b"@example.org');
  bad('"a".b@example.org'); // RFC 5322 obs-local-part, not RFC 5321
});

test("UTF-8 (SMTPUTF8, RFC 6531)", () => {
  const a = parsed("θσερ@παράδειγμα.δοκιμή");
  assert.equal(a.local, "θσερ");
  assert.equal(a.domain, "παράδειγμα.δοκιμή");
  assert.equal(parsed("用户@例子.广告").local, "用户");
  assert.equal(parsed('"δ δ"@example.org').local, '"δ δ"');
  assert.equal(parsed("😀@example.org").local, "😀");
  assert.equal(parsed("u@BÜCHER.example").domain, "bücher.example");
  assert.equal(parsed("u@XN--BCHER-KVA.example").domain, "xn--bcher-kva.example");
  assert.equal(asciiDomain("Bücher.Example."), "xn--bcher-kva.example");
  assert.equal(asciiDomain("xn--bcher-kva.example"), "xn--bcher-kva.example");
  bad("u\u0085@example.org", /forbidden/); // C1 control
  bad("u\u202e@example.org", /forbidden/); // bidi override
  bad("u\u200b@example.org", /forbidden/); // zero width space
  bad("u\ufffd@example.org", /U\+FFFD/); // what a failed UTF-8 decode leaves
  bad("u\ud800@example.org", /surrogate/);
  bad("a\u00a0b@example.org", /space/); // NBSP outside quotes
  bad("u@ｅｘａｍｐｌｅ.org", /IDNA/); // fullwidth: would be mapped onto example.org
  bad("u@example。org", /IDNA/); // ideographic full stop
  bad("u@\u212Aexample.org", /folds to ASCII/); // KELVIN SIGN
  bad("u@xn--example-.org"); // punycode for plain "example"
  bad("u@xn--a.org", /internationalized/);
  bad("u@exa mple.org");
});

test("domains, trailing dot, literals", () => {
  assert.equal(parsed("u@example.org.").domain, "example.org"); // one dot stripped, as Postfix
  bad("u@example.org..", /empty label/);
  bad("u@.example.org", /empty label/);
  bad("u@example..org", /empty label/);
  bad("u@.", /empty domain/);
  bad("u@", /empty domain/);
  bad("u@-a.example", /'-'/);
  bad("u@a-.example", /'-'/);
  bad("u@ex_ample.org", /'_'/);
  bad("u@exa%mple.org");
  bad("u@127.0.0.1", /numeric/); // must be written [127.0.0.1]
  bad("u@a.0x7f", /numeric/);
  assert.deepEqual(parsed("u@[127.0.0.1]"), { local: "u", domain: "[127.0.0.1]", literal: true, sourceRoute: false, quoted: false });
  assert.equal(parsed("u@[IPv6:::1]").domain, "[ipv6:::1]");
  assert.equal(parsed("u@[ipv6:2001:DB8::1]").domain, "[ipv6:2001:db8::1]");
  assert.equal(parsed("u@[IPv6:::ffff:127.0.0.1]").literal, true);
  bad("u@[127.0.0.1].", /trailing dot/);
  bad("u@[127.0.0.1", /unterminated/);
  bad("u@[127.0.0.256]");
  bad("u@[127.000.0.1]", /leading zero/);
  bad("u@[127.1]");
  bad("u@[IPv6:fe80::1%eth0]");
  bad("u@[IPv6:1.2.3.4]");
  bad("u@[x-tag:stuff]", /tag/);
  bad("u@[]");
});

test("local part syntax", () => {
  bad("", /empty/);
  bad("user", /@domain/);
  bad("@example.org");
  bad(".u@example.org", /starts with a dot/);
  bad("u.@example.org", /ends with a dot/);
  bad("u..v@example.org", /two dots/);
  bad("u v@example.org");
  bad("<u@example.org>");
  bad("u@example.org>");
  bad("u(comment)@example.org");
  bad("u\\@example.org");
  bad("u,v@example.org");
  bad("u:v@example.org");
});

test("limits of RFC 5321 §4.5.3.1", () => {
  const l64 = "a".repeat(64);
  assert.equal(parsed(`${l64}@example.org`).local, l64);
  bad(`${l64}a@example.org`, /64/);
  bad(`"${"a".repeat(63)}"@example.org`, /64/); // quotes count
  bad(`${"é".repeat(33)}@example.org`, /64/); // octets, not characters
  assert.equal(parsed(`${"é".repeat(32)}@example.org`).local.length, 32);
  // path: "<" + local + "@" + domain + ">" at most 256 octets
  const dom252 = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(56), "org"].join(".");
  assert.equal(dom252.length, 252);
  const exact = `u@${dom252}`;
  assert.equal(exact.length, 254);
  assert.ok(!("error" in parseAddress(exact)), JSON.stringify(parseAddress(exact)));
  bad(`uu@${dom252}`, /256/);
  bad(`u@${dom252.slice(1)}x.`, /256/); // the stripped dot still counts in the path
  bad(`u@${"a".repeat(64)}.org`, /63/);
  assert.equal(parsed(`u@${"a".repeat(63)}.org`).literal, false);
  bad(`u@${"é".repeat(130)}.org`); // 260 octets of domain
  bad("x".repeat(100_000), /256/);
});

test("source routes (A-d-l)", () => {
  const a = parsed("@relay.example:user@example.org");
  assert.equal(a.sourceRoute, true);
  assert.equal(a.local, "user");
  assert.equal(a.domain, "example.org");
  assert.equal(parsed("@a,@b.example:user@example.org").sourceRoute, true);
  assert.equal(parsed("user@example.org").sourceRoute, false);
  bad("@a.example,user@example.org");
  bad("@a.example,b:user@example.org", /'@' after ','/);
  bad("@:user@example.org", /empty domain/);
  bad("@a..b:user@example.org");
  bad("@a.example", /':'/);
});

test("several unquoted @ parse as a routed local part", () => {
  const a = parsed("user@other.example@routed.example");
  assert.equal(a.local, "user@other.example");
  assert.equal(a.domain, "routed.example");
  assert.equal(routingTrick(a), '"@" in the local part');
  bad("user@other.example@", /empty domain/);
  bad("user@@routed.example");
  bad("user@[1.2.3.4]@routed.example");
});

test("routingTrick", () => {
  const t = (s: string): string | undefined => routingTrick(parsed(s));
  assert.equal(t("user@example.org"), undefined);
  assert.equal(t('"local.general"@example.org'), undefined);
  assert.equal(t('"john doe"@example.org'), undefined);
  assert.match(t("user%other.example@example.org")!, /percent/);
  assert.match(t("other.example!user@example.org")!, /bang/);
  assert.match(t('"user@other"@example.org')!, /quoted/);
  assert.match(t('"user\\@other"@example.org')!, /@/);
  assert.match(t('"user%other"@example.org')!, /percent/);
  assert.match(t("@a,@b:user@example.org")!, /source route/);
  assert.match(t('"node::user"@example.org')!, /DECnet/);
  assert.match(t("user\uff05other@example.org")!, /NFKC/); // FULLWIDTH PERCENT SIGN
  assert.match(t("user\ufe6bother@example.org")!, /NFKC/); // SMALL COMMERCIAL AT
  assert.match(t("USER%OTHER.EXAMPLE@EXAMPLE.ORG")!, /percent/);
});

test("addressKey ignores case, plain quotes and the source route", () => {
  const k = (s: string): string => addressKey(parsed(s));
  assert.equal(k("Local.General@NEWS.Example."), "local.general@news.example");
  assert.equal(k('"local.general"@news.example'), "local.general@news.example");
  assert.equal(k("@x.example:local.general@news.example"), "local.general@news.example");
  assert.equal(k("u@Bücher.example"), "u@xn--bcher-kva.example");
  assert.notEqual(k("local.general@news.example"), k("local.generalx@news.example"));
});

// ---------------------------------------------------------------- routing

test("routeFor: exact, then longest *.suffix, then *", () => {
  const exact = { domain: "example.org" };
  const sub = { domain: "*.example.org" };
  const deep = { domain: "*.lists.example.org" };
  const any = { domain: "*" };
  const routes = [any, sub, deep, exact];
  assert.equal(routeFor("example.org", routes), exact);
  assert.equal(routeFor("EXAMPLE.ORG.", routes), exact);
  assert.equal(routeFor("a.example.org", routes), sub);
  assert.equal(routeFor("a.b.example.org", routes), sub);
  assert.equal(routeFor("x.lists.example.org", routes), deep);
  assert.equal(routeFor("lists.example.org", routes), sub);
  assert.equal(routeFor("evilexample.org", routes), any);
  assert.equal(routeFor("example.org.evil", routes), any);
  assert.equal(routeFor("[127.0.0.1]", routes), any);
  assert.equal(routeFor("example.org", [sub]), undefined); // subdomains only
  assert.equal(routeFor("evilexample.org", [exact, sub]), undefined);
  assert.equal(routeFor("x.example.org", [{ domain: "*.EXAMPLE.org." }])?.domain, "*.EXAMPLE.org.");
  assert.equal(routeFor("bücher.example", [{ domain: "xn--bcher-kva.example" }])?.domain, "xn--bcher-kva.example");
  assert.equal(routeFor("xn--bcher-kva.example", [{ domain: "Bücher.example" }])?.domain, "Bücher.example");
  for (const p of ["", "*example.org", "ex*ample.org", "*.", "*.*", " example.org", "[127.0.0.1]"]) {
    assert.equal(routeFor("example.org", [{ domain: p }]), undefined, JSON.stringify(p));
  }
});

// ---------------------------------------------------------------- the verdict

const routed: RoutePattern = { domain: "example.org" };
const routedSubs: RoutePattern = { domain: "*.routed.example" };
const routedExact: RoutePattern = { domain: "routed.example" };
const smarthost: RoutePattern = { domain: "*" };
const base: PolicyInput = {
  routes: [routed, routedSubs, routedExact, smarthost],
  gatewayAddresses: ["local.general@news.example", "Local.Test@News.Example"],
  trusted: false,
};
const untrusted = base;
const trusted: PolicyInput = { ...base, trusted: true };

function refusedAsRelay(rcpt: string, input: PolicyInput = untrusted): void {
  const v = rcptVerdict(rcpt, input);
  assert.deepEqual(
    v.ok ? v : { ok: v.ok, code: v.code, enhanced: v.enhanced },
    { ok: false, code: 554, enhanced: "5.7.1" },
    `${JSON.stringify(rcpt)} -> ${JSON.stringify(v)}`,
  );
  if (!v.ok) assert.match(v.message, /^<.*>: Relay access denied$/);
}

function accepted(rcpt: string, input: PolicyInput, kind: "gateway" | "routed" | "relay", route?: RoutePattern): void {
  const v = rcptVerdict(rcpt, input);
  assert.ok(v.ok, `${JSON.stringify(rcpt)} -> ${JSON.stringify(v)}`);
  assert.equal(v.kind, kind, JSON.stringify(rcpt));
  assert.equal(v.route, route, JSON.stringify(rcpt));
}

test("untrusted: every trick is refused with 554 5.7.1", () => {
  const tricks = [
    "user@other.example", // another domain (only "*" matches it)
    "user%other.example@routed.example", // percent hack via a routed domain
    "user%other.example@example.org",
    "user@other.example@routed.example", // RFC 822 route remnant
    '"user@other"@routed.example', // quoted "@"
    '"user@other.example"@example.org',
    '"user\\@other"@routed.example',
    '"user%other"@routed.example',
    "@routed.example:user@other.example", // source route to elsewhere
    "@a,@b:user@other", // source route, single-label domain
    "@a.example,@b.example:user@routed.example", // source route even to a routed domain
    "other.example!user@routed.example", // UUCP bang path
    "other.example!user@a.routed.example",
    '"other::user"@routed.example', // DECnet
    "user\uff05other.example@routed.example", // FULLWIDTH PERCENT SIGN
    "user\uff20other.example@routed.example", // FULLWIDTH COMMERCIAL AT
    "USER@OTHER.EXAMPLE", // upper case, another site
    "user@Other.Example",
    "USER%OTHER.EXAMPLE@ROUTED.EXAMPLE",
    "OTHER.EXAMPLE!USER@ROUTED.EXAMPLE",
    "user@other.example.", // trailing dot
    "user@[127.0.0.1]", // address literals are never routed
    "user@[IPv6:::1]",
    "user@[ipv6:::ffff:127.0.0.1]",
    "user@[10.0.0.1]",
    "user@evilexample.org", // suffix of a route, not a subdomain
    "user@example.org.evil",
    "user@anexample.org",
    "user@org",
    "user@routed.example.other.example",
    "user@xrouted.example",
    "user@localhost",
    "local.general@news.example.evil", // a gateway address's domain, extended
    "local.general%other.example@news.example", // a gateway domain with a trick
  ];
  for (const t of tricks) refusedAsRelay(t);
  // "*.example.org" does not cover example.org itself
  refusedAsRelay("user@example.org", { ...untrusted, routes: [{ domain: "*.example.org" }, smarthost] });
  refusedAsRelay("user@a.example.org", { ...untrusted, routes: [{ domain: "example.org" }, smarthost] });
  // nothing routed at all
  refusedAsRelay("user@example.org", { ...untrusted, routes: [smarthost] });
  refusedAsRelay("user@example.org", { ...untrusted, routes: [] });
  // a route pattern that is not a domain matches nothing
  refusedAsRelay("user@example.org", { ...untrusted, routes: [{ domain: "*example.org" }, smarthost] });
});

test("a trick never gets through by changing case, anywhere", () => {
  const words = ["user%other.example@routed.example", "other.example!user@routed.example", "user@other.example", "user@[ipv6:::1]"];
  for (const w of words) {
    // every combination of upper/lower case on the first 12 letters
    const letters = [...w].map((c, i) => ({ c, i })).filter((x) => /[a-z]/.test(x.c)).slice(0, 12);
    for (let mask = 0; mask < 1 << letters.length; mask += 7) {
      const chars = [...w];
      letters.forEach((x, b) => {
        if (mask & (1 << b)) chars[x.i] = x.c.toUpperCase();
      });
      refusedAsRelay(chars.join(""));
    }
  }
});

test("routed domains are accepted from anyone, in any case, with a trailing dot", () => {
  for (const r of ["user@example.org", "USER@EXAMPLE.ORG", "User@Example.Org.", "user@routed.example", "user@ROUTED.EXAMPLE."]) {
    accepted(r, untrusted, "routed", r.toLowerCase().includes("routed") ? routedExact : routed);
  }
  accepted("user@a.routed.example", untrusted, "routed", routedSubs);
  accepted("user@A.B.ROUTED.EXAMPLE.", untrusted, "routed", routedSubs);
  accepted('"john doe"@example.org', untrusted, "routed", routed);
  accepted('"local.general"@example.org', untrusted, "routed", routed);
  accepted("用户@example.org", untrusted, "routed", routed);
  const idn: PolicyInput = { ...untrusted, routes: [{ domain: "bücher.example" }, smarthost] };
  accepted("u@xn--bcher-kva.example", idn, "routed", idn.routes[0]);
  accepted("u@BÜCHER.example", idn, "routed", idn.routes[0]);
  const v = rcptVerdict("User@Example.Org.", untrusted);
  assert.ok(v.ok);
  assert.equal(v.address.domain, "example.org");
  assert.equal(v.address.local, "User");
});

test("gateway addresses are accepted from anyone, in any case", () => {
  for (const g of [
    "local.general@news.example",
    "LOCAL.GENERAL@NEWS.EXAMPLE",
    "Local.General@News.Example.",
    '"local.general"@news.example',
    "@relay.example:local.general@news.example", // the source route is ignored
  ]) {
    accepted(g, untrusted, "gateway");
    accepted(g, trusted, "gateway");
    const v = rcptVerdict(g, untrusted);
    assert.ok(v.ok);
    assert.equal(v.gateway, "local.general@news.example", g); // the configured entry, for the group lookup
  }
  const t = rcptVerdict("LOCAL.TEST@news.example", untrusted);
  assert.ok(t.ok);
  assert.equal(t.gateway, "Local.Test@News.Example");
});

test("the gateway domain's other users: relay rules as for any domain", () => {
  refusedAsRelay("local.other@news.example");
  accepted("local.other@news.example", trusted, "relay", smarthost);
  // a routed gateway domain passes its other users to the route
  const both: PolicyInput = { ...untrusted, routes: [{ domain: "news.example" }] };
  accepted("someone@news.example", both, "routed", both.routes[0]);
  accepted("local.general@news.example", both, "gateway");
});

test("trusted clients relay through the smarthost, tricks and literals included", () => {
  accepted("user@other.example", trusted, "relay", smarthost);
  accepted("USER@OTHER.EXAMPLE.", trusted, "relay", smarthost);
  accepted("user@[127.0.0.1]", trusted, "relay", smarthost);
  accepted("user@[IPv6:::1]", trusted, "relay", smarthost);
  accepted("user%other.example@routed.example", trusted, "routed", routedExact);
  accepted("@a,@b:user@other.example", trusted, "relay", smarthost);
  accepted("user@example.org", trusted, "routed", routed);
  // without a "*" route a trusted client still cannot reach other domains
  const noSmarthost: PolicyInput = { ...trusted, routes: [routed] };
  for (const r of ["user@other.example", "user@[127.0.0.1]"]) {
    const v = rcptVerdict(r, noSmarthost);
    assert.deepEqual(v.ok ? v : [v.code, v.enhanced, v.message], [550, "5.1.2", `<${r}>: No route to domain`]);
  }
  accepted("user@example.org", noSmarthost, "routed", routed);
});

test("a malformed address is 501 5.1.3, trusted or not", () => {
  for (const r of ["", "user", "user@", "user@exa mple.org", "a..b@example.org", "u@[1.2.3.999]", "u@example.org..", `${"a".repeat(65)}@example.org`]) {
    for (const input of [untrusted, trusted]) {
      const v = rcptVerdict(r, input);
      assert.ok(!v.ok, JSON.stringify(r));
      assert.equal(v.code, 501, JSON.stringify(r));
      assert.equal(v.enhanced, "5.1.3");
      assert.match(v.message, /^Bad recipient address syntax/);
    }
  }
});

test("replies echo the recipient as printable ASCII only", () => {
  const v = rcptVerdict("θ@other.example", untrusted);
  assert.ok(!v.ok);
  assert.equal(v.message, "<?@other.example>: Relay access denied");
  const w = rcptVerdict("u\u0085@x.example", untrusted);
  assert.ok(!w.ok);
  assert.match(w.message, /^[\x20-\x7e]+$/);
});

test("property: an untrusted client only ever reaches a routed domain or the gateway", () => {
  const input: PolicyInput = {
    routes: [{ domain: "example.org" }, { domain: "*.routed.example" }, smarthost],
    gatewayAddresses: ["gw@news.example"],
    trusted: false,
  };
  const bits = ["a", "B", "gw", "GW", ".", "@", "%", "!", '"', "\\", ":", "::", ",", "[", "]", "1", "-", " ", "\uff20", "\uff05", "\uff01", "ü", "xn--", "ipv6"];
  const domains = ["example.org", "EXAMPLE.ORG.", "routed.example", "a.Routed.Example", "other.example", "news.example", "news.example.", "[127.0.0.1]", "evilexample.org", "example.org.evil", "org"];
  const junk = fc.array(fc.constantFrom(...bits), { maxLength: 12 }).map((a) => a.join(""));
  const rcpt = fc.oneof(
    junk,
    fc.tuple(junk, fc.constantFrom(...domains)).map(([l, d]) => `${l}@${d}`),
    fc.tuple(fc.constantFrom("", "@a:", "@a,@b:", "@x.example:"), junk, junk, fc.constantFrom(...domains)).map(([r, l, m, d]) => `${r}${l}@${m}@${d}`),
  );
  fc.assert(
    fc.property(rcpt, (r) => {
      const v = rcptVerdict(r, input);
      if (!v.ok) return [501, 554].includes(v.code);
      // an oracle that knows nothing of the parser: the text after the last "@"
      const at = r.lastIndexOf("@");
      let domain = r.slice(at + 1).toLowerCase();
      if (domain.endsWith(".")) domain = domain.slice(0, -1);
      if (v.kind === "gateway") return domain === "news.example";
      if (v.kind !== "routed") return false;
      const local = r.slice(0, at).normalize("NFKC");
      return (
        !r.startsWith("@") &&
        !/[@%!]|::/.test(local) &&
        (domain === "example.org" || (domain.endsWith(".routed.example") && /^[a-z0-9.-]+$/.test(domain)))
      );
    }),
    { numRuns: 3000 },
  );
});
