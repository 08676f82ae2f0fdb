// An SMTP envelope address (the text between "<" and ">" of RCPT TO / MAIL FROM),
// RFC 5321 §4.1.2 with the RFC 6531 §3.3 SMTPUTF8 extension (UTF-8 in atoms,
// quoted strings and domain labels).
//
//   Path        = "<" [ A-d-l ":" ] Mailbox ">"      ; the caller strips < >
//   A-d-l       = At-domain *( "," At-domain )        ; obsolete source route
//   At-domain   = "@" Domain
//   Mailbox     = Local-part "@" ( Domain / address-literal )
//   Local-part  = Dot-string / Quoted-string
//   Dot-string  = Atom *( "." Atom )
//   Quoted-string = DQUOTE *( qtextSMTP / quoted-pairSMTP ) DQUOTE
//   qtextSMTP   = %d32-33 / %d35-91 / %d93-126 / UTF8-non-ascii
//   quoted-pairSMTP = %d92 %d32-126                  ; RFC 6531 does not extend it
//   Domain      = sub-domain *( "." sub-domain )     ; LDH labels or U-labels
//   address-literal = "[" ( IPv4-address-literal / "IPv6:" IPv6-addr ) "]"
//
// Decisions (each is also stated where it is made):
//
// - More than one unquoted "@" (user@other.example@routed.example) is parsed
//   the way Postfix and Sendmail do: the last "@" separates the domain, and the
//   local part keeps the rest ("user@other.example"). RFC 5321 has no such
//   local part; it is accepted only so that routingTrick() can name it and the
//   policy refuse it as relaying (554) rather than as syntax (501).
// - One trailing dot on a domain is removed (Postfix trivial-rewrite: "strip
//   trailing dot at end of domain, but not dot-dot or at-dot"); "a.example.."
//   and any empty label are errors. A trailing dot after an address literal
//   is an error.
// - The limits of RFC 5321 §4.5.3.1 are errors, counted in UTF-8 octets
//   (RFC 6531 §3.3): local part 64 (quotes included), domain 255 (without the
//   removed trailing dot), path 256 including "<" and ">" (so 254 here).
//   DNS labels are at most 63 octets (RFC 1035 §2.3.4), in their A-label form.
// - A domain whose last label is numeric ("127.0.0.1", "a.0x7f") is an error:
//   RFC 1123 §2.1 keeps top-level labels alphabetic so that a name can never
//   be taken for an IP address; an address must be written as [127.0.0.1].
// - IPv4 literals with leading zeros ([127.000.0.1]) are refused (inet_aton
//   would read them as octal); IPv6 literals with a zone ("%eth0") too; the
//   tag "IPv6:" is case-insensitive (ABNF strings are); General-address-literal
//   tags other than IPv6 are refused (none is registered).
// - Non-ASCII text must be well-formed (no lone surrogates, no U+FFFD left by
//   a failed UTF-8 decode) and free of controls, line/paragraph separators,
//   zero-width and bidi-override characters; outside quotes also of spaces.
// - Non-ASCII domains must be IDNA U-labels as they would be looked up: the
//   domain is lower-cased (a non-ASCII letter whose lower case is ASCII, like
//   KELVIN SIGN, is refused), and each label must survive UTS #46 ToASCII and
//   back unchanged, so fullwidth letters, ideographic full stops and non-NFC
//   forms are errors instead of being quietly mapped onto another domain.
//   ASCII "xn--" labels must be valid A-labels that decode to non-ASCII.
//
// The scanner looks at each character a bounded number of times; no regular
// expression runs over the whole input.

import { domainToASCII, domainToUnicode } from "node:url";
import { isIPv6 } from "node:net";
import { isAtextAscii } from "../article/atext.js";

export interface MailAddress {
  /** The local part as given, quotes and backslashes kept. */
  local: string;
  /** Lower-cased, one trailing dot removed; U-labels stay U-labels; a literal keeps its brackets ("[ipv6:::1]"). */
  domain: string;
  /** The domain was an address literal. */
  literal: boolean;
  /** An obsolete source route ("@a,@b:") came before the mailbox. */
  sourceRoute: boolean;
  /** The local part is (or, with several "@", contains) a Quoted-string. */
  quoted: boolean;
}

const MAX_LOCAL = 64; // RFC 5321 §4.5.3.1.1
const MAX_DOMAIN = 255; // RFC 5321 §4.5.3.1.2
const MAX_PATH = 256; // RFC 5321 §4.5.3.1.3, "<" and ">" included
const MAX_LABEL = 63; // RFC 1035 §2.3.4

const octets = (s: string): number => Buffer.byteLength(s, "utf8");

const err = (error: string): { error: string } => ({ error });


/** RFC 5321 qtextSMTP, ASCII part: %d32-33 / %d35-91 / %d93-126. */
function isQtextAscii(c: number): boolean {
  return c === 32 || c === 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126);
}

const UNSAFE = /[\p{Cc}\p{Zl}\p{Zp}\u200B\u2060\uFEFF\uFFFD\u202A-\u202E\u2066-\u2069\u{E0000}-\u{E007F}]/u;
const SPACE = /\p{Zs}/u;

/** Why a non-ASCII code point may not appear, or undefined when it may. */
function nonAsciiProblem(cp: number, inQuotes: boolean): string | undefined {
  if (cp >= 0xd800 && cp <= 0xdfff) return "malformed UTF-8 (lone surrogate)";
  const ch = String.fromCodePoint(cp);
  if (cp === 0xfffd) return "malformed UTF-8 (U+FFFD)";
  if (UNSAFE.test(ch)) return `forbidden character ${u(cp)}`;
  if (!inQuotes && SPACE.test(ch)) return `space character ${u(cp)} outside quotes`;
  return undefined;
}

function u(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** A character named safely for an error message (printable ASCII or U+XXXX). */
function describe(s: string, i: number): string {
  const cp = s.codePointAt(i)!;
  return cp > 0x20 && cp < 0x7f ? `'${s[i]}'` : u(cp);
}

const step = (cp: number): number => (cp > 0xffff ? 2 : 1);

/** Scans a Quoted-string starting at s[i] === '"'; the index after the closing quote, or an error. */
function scanQuoted(s: string, i: number): number | string {
  let j = i + 1;
  for (;;) {
    if (j >= s.length) return "unterminated quoted string";
    const c = s.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (c === 0x5c) {
      const n = s.charCodeAt(j + 1);
      if (!(n >= 32 && n <= 126)) return j + 1 >= s.length ? "unterminated quoted string" : `bad quoted-pair before ${describe(s, j + 1)}`;
      j += 2;
    } else if (c < 0x80) {
      if (!isQtextAscii(c)) return `${describe(s, j)} in quoted string`;
      j++;
    } else {
      const cp = s.codePointAt(j)!;
      const p = nonAsciiProblem(cp, true);
      if (p) return p;
      j += step(cp);
    }
  }
}

/** Scans a Dot-string starting at s[i]; the index of the first character after it, or an error. */
function scanDotString(s: string, i: number): number | string {
  let j = i;
  let atom = 0;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (c === 0x2e) {
      if (atom === 0) return j === i ? "local part starts with a dot" : "two dots in a row in local part";
      atom = 0;
      j++;
    } else if (c < 0x80) {
      if (!isAtextAscii(c)) break;
      atom++;
      j++;
    } else {
      const cp = s.codePointAt(j)!;
      const p = nonAsciiProblem(cp, false);
      if (p) return p;
      atom++;
      j += step(cp);
    }
  }
  if (atom === 0) return j === i ? (j < s.length ? `${describe(s, j)} in local part` : "empty local part") : "local part ends with a dot";
  return j;
}

/** The domain name lower-cased and in A-label form, or why it is not one. `d` has no trailing dot. */
function checkDomain(d: string): { domain: string; ascii: string } | string {
  if (d === "") return "empty domain";
  if (octets(d) > MAX_DOMAIN) return `domain longer than ${MAX_DOMAIN} octets`;
  let lowered = "";
  let idn = false;
  for (let i = 0; i < d.length; ) {
    const c = d.charCodeAt(i);
    if (c < 0x80) {
      if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e) lowered += d[i];
      else if (c >= 0x41 && c <= 0x5a) lowered += String.fromCharCode(c + 0x20);
      else return `${describe(d, i)} in domain`;
      i++;
    } else {
      const cp = d.codePointAt(i)!;
      const p = nonAsciiProblem(cp, false);
      if (p) return p;
      const ch = String.fromCodePoint(cp);
      const low = ch.toLowerCase();
      // KELVIN SIGN -> "k", U+0130 -> "i" + U+0307: not the same name to every reader.
      for (let k = 0; k < low.length; k++) if (low.charCodeAt(k) < 0x80) return `${u(cp)} in domain folds to ASCII`;
      lowered += low;
      idn = true;
      i += step(cp);
    }
  }
  const labels = lowered.split(".");
  for (const l of labels) {
    if (l === "") return "empty label in domain";
    if (l.startsWith("-") || l.endsWith("-")) return "domain label starts or ends with '-'";
    if (l.startsWith("xn--")) idn = true;
  }
  const tld = labels[labels.length - 1];
  if (/^[0-9]+$/.test(tld) || /^0x[0-9a-f]*$/.test(tld)) return "numeric top-level label (RFC 1123 §2.1); write an IP address as [1.2.3.4]";
  let ascii = lowered;
  if (idn) {
    ascii = domainToASCII(lowered);
    if (!ascii) return "not a valid internationalized domain name";
    const al = ascii.split(".");
    const ul = domainToUnicode(ascii).split(".");
    if (al.length !== labels.length || ul.length !== labels.length) return "domain not in IDNA normal form";
    for (let k = 0; k < labels.length; k++) {
      if (labels[k] === al[k]) {
        if (al[k].startsWith("xn--") && !/[^\x00-\x7f]/.test(ul[k])) return "A-label that decodes to ASCII";
      } else if (labels[k] !== ul[k]) return "domain not in IDNA normal form";
    }
    if (octets(ascii) > MAX_DOMAIN) return `domain longer than ${MAX_DOMAIN} octets as A-labels`;
  }
  for (const l of ascii.split(".")) if (l.length > MAX_LABEL) return `domain label longer than ${MAX_LABEL} octets`;
  return { domain: lowered, ascii };
}

/** An address literal "[...]" lower-cased, or why it is not one. */
function checkLiteral(d: string): string | { error: string } {
  if (d.endsWith("].")) return err("trailing dot after address literal");
  if (d.length < 2 || !d.endsWith("]")) return err("unterminated address literal");
  const body = d.slice(1, -1);
  if (body.length >= 5 && body.slice(0, 5).toLowerCase() === "ipv6:") {
    const a = body.slice(5);
    if (!/^[0-9A-Fa-f:.]+$/.test(a) || !isIPv6(a)) return err("bad IPv6 address literal");
    return `[ipv6:${a.toLowerCase()}]`;
  }
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(body);
  if (m) {
    for (const n of m.slice(1)) {
      if (n.length > 1 && n[0] === "0") return err("leading zero in IPv4 address literal");
      if (Number(n) > 255) return err("bad IPv4 address literal");
    }
    return `[${body}]`;
  }
  if (/^[A-Za-z0-9-]*[A-Za-z0-9]:/.test(body)) return err("unsupported address literal tag");
  return err("bad address literal");
}

/**
 * Parses the text between "<" and ">" of a forward- or reverse-path.
 * "" (the null path <>) is an error here; callers handle <> themselves.
 */
export function parseAddress(s: string): MailAddress | { error: string } {
  if (s === "") return err("empty address");
  if (s.length + 2 > MAX_PATH || octets(s) + 2 > MAX_PATH) return err(`path longer than ${MAX_PATH} octets`);
  let i = 0;
  let sourceRoute = false;
  if (s[0] === "@") {
    // A-d-l ":": RFC 5321 §4.1.2 and Appendix C; parsed, checked, then dropped.
    sourceRoute = true;
    for (;;) {
      const start = ++i; // past "@"
      while (i < s.length && s[i] !== "," && s[i] !== ":") i++;
      if (i >= s.length) return err("source route without ':'");
      const d = checkDomain(s.slice(start, i));
      if (typeof d === "string") return err(`source route: ${d}`);
      if (s[i++] === ":") break;
      if (s[i] !== "@") return err("source route: expected '@' after ','");
    }
  }
  const localStart = i;
  const lastAt = s.lastIndexOf("@");
  let quoted = false;
  for (;;) {
    if (i >= s.length) return err("no @domain");
    if (s[i] === '"') quoted = true;
    const r = s[i] === '"' ? scanQuoted(s, i) : scanDotString(s, i);
    if (typeof r === "string") return err(r);
    i = r;
    if (i >= s.length) return err("no @domain");
    if (s[i] !== "@") return err(`${describe(s, i)} in local part`);
    if (i === lastAt) break;
    i++; // an "@" inside the local part (see routingTrick)
  }
  const local = s.slice(localStart, i);
  if (octets(local) > MAX_LOCAL) return err(`local part longer than ${MAX_LOCAL} octets`);
  let d = s.slice(i + 1);
  if (d === "") return err("empty domain");
  if (d[0] === "[") {
    const lit = checkLiteral(d);
    if (typeof lit !== "string") return lit;
    return { local, domain: lit, literal: true, sourceRoute, quoted };
  }
  if (d.endsWith(".")) d = d.slice(0, -1); // one trailing dot, as Postfix strips it
  const dom = checkDomain(d);
  if (typeof dom === "string") return err(dom);
  return { local, domain: dom.domain, literal: false, sourceRoute, quoted };
}

/**
 * The A-label, lower-case form of a domain name ("Bücher.Example." ->
 * "xn--bcher-kva.example"), one trailing dot removed; undefined when it is not
 * a domain name this parser accepts (address literals included).
 */
export function asciiDomain(domain: string): string | undefined {
  const d = domain.endsWith(".") ? domain.slice(0, -1) : domain;
  const r = checkDomain(d);
  return typeof r === "string" ? undefined : r.ascii;
}

/** The local part's text: quotes dropped, quoted-pairs resolved. */
function localText(local: string): string {
  let out = "";
  let inQuotes = false;
  for (let i = 0; i < local.length; i++) {
    const c = local[i];
    if (c === '"') inQuotes = !inQuotes;
    else if (c === "\\" && inQuotes) out += local[++i] ?? "";
    else out += c;
  }
  return out;
}

/**
 * The local part in its simplest form: a quoted local part whose text is a
 * valid Dot-string loses its quotes ("\"a.b\"" -> "a.b", RFC 5321 §4.1.2 says
 * the two SHOULD be treated alike); otherwise it is re-quoted escaping only
 * '"' and '\'. Case is kept.
 */
export function canonicalLocal(a: MailAddress): string {
  if (!a.quoted) return a.local;
  const text = localText(a.local);
  if (text !== "" && scanDotString(text, 0) === text.length) return text;
  return `"${text.replace(/["\\]/g, "\\$&")}"`;
}

/**
 * The key under which two addresses are the same mailbox for this node:
 * canonical local part lower-cased (this node's own addresses are
 * case-insensitive, although RFC 5321 §2.4 lets a host make local parts
 * case-sensitive), "@", the domain in A-label form. The source route is ignored.
 */
export function addressKey(a: MailAddress): string {
  const domain = a.literal ? a.domain : (asciiDomain(a.domain) ?? a.domain);
  return `${canonicalLocal(a).toLowerCase()}@${domain}`;
}

/**
 * Why a local part would route mail elsewhere on a lax MTA, or undefined when
 * it is plain: "@" (RFC 822 route remnant, quoted or not), "%" (the percent
 * hack), "!" (a UUCP bang path), "::" (a DECnet node), or a source route.
 * Like Postfix (trivial-rewrite resolve.c, "we can't know how the next MX
 * host is set up") these count whatever this node would do with them. The
 * text is checked after NFKC as well, so FULLWIDTH PERCENT SIGN and its kin
 * count too.
 */
export function routingTrick(a: MailAddress): string | undefined {
  if (a.sourceRoute) return "source route";
  const text = localText(a.local);
  const folded = text.normalize("NFKC");
  for (const t of folded === text ? [text] : [text, folded]) {
    const how = t === text ? "" : " (after NFKC)";
    if (t.includes("@")) return a.quoted ? `"@" inside a quoted local part${how}` : `"@" in the local part${how}`;
    if (t.includes("%")) return `"%" in the local part (percent hack)${how}`;
    if (t.includes("!")) return `"!" in the local part (UUCP bang path)${how}`;
    if (t.includes("::")) return `"::" in the local part (DECnet)${how}`;
  }
  return undefined;
}
