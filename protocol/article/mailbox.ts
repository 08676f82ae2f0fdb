// The From header as an RFC 5322 §3.4 mailbox-list (RFC 5536 §3.1.2), with the
// RFC 6532 §3.2 extension that lets UTF-8 into atoms, quoted strings, comments
// and domain literals.
//
// A hand-written tokenizer and a recursive descent over its tokens: every
// character is looked at a bounded number of times, so the check is linear in
// the length of the value whatever it holds (no regex backtracking).
//
//   mailbox-list = mailbox *("," mailbox)
//   mailbox      = name-addr / addr-spec
//   name-addr    = [display-name] angle-addr
//   angle-addr   = [CFWS] "<" addr-spec ">" [CFWS]
//   display-name = phrase             ; words, and "." after the first (obs-phrase)
//   addr-spec    = local-part "@" domain
//   local-part   = dot-atom / quoted-string
//   domain       = dot-atom / domain-literal
//
// Not accepted, although RFC 5322 §4 (obsolete syntax) lets a reader parse
// them: control characters anywhere (obs-qtext, obs-ctext, obs-dtext),
// obs-local-part and obs-domain ("a . b", "a"."b"), quoted-pairs in domain
// literals, routes (obs-route "<@x,@y:a@b>"), empty list elements
// (obs-mbox-list ",a@b"), and group syntax (not a mailbox-list at all).
import { echo as echoSafe, isAtextAscii } from "./atext.js";

type Kind = "atom" | "qstr" | "dlit" | "<" | ">" | "@" | "," | "." | ":" | ";" | "end";

interface Token {
  kind: Kind;
  /** Offsets of the token in the value (quotes and brackets included). */
  start: number;
  end: number;
  /** Whitespace or a comment came right before this token. */
  gap: boolean;
}

/** Thrown inside the scanner with the reason to return; never escapes mailboxListError. */
class Refusal {
  constructor(readonly reason: string) {}
}

const ECHO_MAX = 40;

/** Part of the value made safe to quote in a reply: printable ASCII only, clipped. */
const echo = (s: string) => echoSafe(s, ECHO_MAX);

function hex2(c: number): string {
  return `0x${c.toString(16).padStart(2, "0")}`;
}

/** RFC 5322 §3.2.3 atext, plus any char >= 0x80 (RFC 6532 UTF8-non-ascii; latin1-decoded octets count too). */
function isAtext(c: number): boolean {
  return c >= 0x80 || isAtextAscii(c);
}

/**
 * Splits the value into tokens, dropping CFWS (noting it on the next token).
 * Assumes control characters were refused already, so every char left is
 * SP, HTAB, printable ASCII or >= 0x80.
 */
function tokenize(v: string): Token[] {
  const out: Token[] = [];
  const n = v.length;
  let i = 0;
  let gap = false;
  while (i < n) {
    const c = v.charCodeAt(i);
    const start = i;
    if (c === 0x20 || c === 0x09) {
      gap = true;
      i++;
      continue;
    }
    if (c === 0x28 /* ( */) {
      // comment = "(" *([FWS] ccontent) [FWS] ")", ccontent = ctext / quoted-pair / comment
      let depth = 1;
      i++;
      while (i < n && depth > 0) {
        const d = v.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else {
          if (d === 0x28) depth++;
          else if (d === 0x29) depth--;
          i++;
        }
      }
      if (depth > 0) throw new Refusal("unbalanced comment");
      gap = true;
      continue;
    }
    if (c === 0x29 /* ) */) throw new Refusal("unbalanced comment");
    if (c === 0x22 /* " */) {
      // quoted-string = DQUOTE *([FWS] qcontent) [FWS] DQUOTE, qcontent = qtext / quoted-pair
      i++;
      for (;;) {
        if (i >= n) throw new Refusal("unterminated quoted string");
        const d = v.charCodeAt(i);
        if (d === 0x22) break;
        i += d === 0x5c ? 2 : 1;
      }
      i++;
      out.push({ kind: "qstr", start, end: i, gap });
      gap = false;
      continue;
    }
    if (c === 0x5b /* [ */) {
      // domain-literal = "[" *([FWS] dtext) [FWS] "]", dtext = %d33-90 / %d94-126
      i++;
      for (;;) {
        if (i >= n) throw new Refusal("unterminated domain literal");
        const d = v.charCodeAt(i);
        if (d === 0x5d) break;
        if (d === 0x5b || d === 0x5c) throw new Refusal(`invalid character in domain literal: ${echo(v.slice(start, i + 1))}`);
        i++;
      }
      i++;
      out.push({ kind: "dlit", start, end: i, gap });
      gap = false;
      continue;
    }
    if (isAtext(c)) {
      while (i < n && isAtext(v.charCodeAt(i))) i++;
      out.push({ kind: "atom", start, end: i, gap });
      gap = false;
      continue;
    }
    switch (c) {
      case 0x3c: // <
      case 0x3e: // >
      case 0x40: // @
      case 0x2c: // ,
      case 0x2e: // .
      case 0x3a: // :
      case 0x3b: // ;
        out.push({ kind: v[i] as Kind, start, end: i + 1, gap });
        gap = false;
        i++;
        continue;
      default:
        // "]" or "\" outside a quoted string, comment or literal
        throw new Refusal(`unexpected '${v[i]}'`);
    }
  }
  out.push({ kind: "end", start: n, end: n, gap });
  return out;
}

class Parser {
  private pos = 0;
  constructor(
    private readonly v: string,
    private readonly toks: Token[],
  ) {}

  private peek(): Token {
    return this.toks[this.pos];
  }

  private next(): Token {
    const t = this.toks[this.pos];
    if (t.kind !== "end") this.pos++;
    return t;
  }

  private show(t: Token): string {
    if (t.kind === "end") return "end of header";
    if (t.kind === "atom" || t.kind === "qstr" || t.kind === "dlit") return `"${echo(this.v.slice(t.start, t.end))}"`;
    return `'${t.kind}'`;
  }

  private unexpected(t: Token, where: string): Refusal {
    if (t.kind === ":" || t.kind === ";") return new Refusal("group syntax not allowed");
    return new Refusal(`unexpected ${this.show(t)} ${where}`);
  }

  list(): void {
    if (this.peek().kind === "end") throw new Refusal("no mailbox");
    for (;;) {
      const t = this.peek();
      if (t.kind === ",") throw new Refusal("empty element in mailbox list");
      if (t.kind === "end") throw new Refusal("trailing comma in mailbox list");
      this.mailbox();
      const after = this.next();
      if (after.kind === "end") return;
      if (after.kind !== ",") throw this.unexpected(after, "after address");
    }
  }

  /** One mailbox; stops before the "," or end that follows it. */
  private mailbox(): void {
    // Both alternatives start with words: the display-name, or the local-part.
    const first = this.pos;
    while (this.peek().kind === "atom" || this.peek().kind === "qstr" || this.peek().kind === ".") this.pos++;
    const words = this.toks.slice(first, this.pos);
    const t = this.peek();
    if (t.kind === "<") {
      this.displayName(words);
      this.angleAddr();
    } else if (t.kind === "@") {
      this.localPart(words);
      this.next();
      this.domain();
    } else if (t.kind === "," || t.kind === "end") {
      throw new Refusal("no address in angle brackets or addr-spec");
    } else {
      throw this.unexpected(t, words.length > 0 ? "after words" : "at start of mailbox");
    }
  }

  /** phrase = 1*word / obs-phrase (word *(word / "." / CFWS)); may be absent. */
  private displayName(words: Token[]): void {
    if (words.length > 0 && words[0].kind === ".") throw new Refusal("display name starts with '.'");
  }

  /** angle-addr = "<" addr-spec ">" (no obs-route). */
  private angleAddr(): void {
    this.next(); // "<"
    const first = this.pos;
    while (this.peek().kind === "atom" || this.peek().kind === "qstr" || this.peek().kind === ".") this.pos++;
    const words = this.toks.slice(first, this.pos);
    const t = this.peek();
    if (t.kind !== "@") {
      if (words.length > 0 && (t.kind === ">" || t.kind === "end" || t.kind === ",")) throw new Refusal("missing '@' in address");
      if (t.kind === ">") throw new Refusal("empty angle brackets");
      if (t.kind === "end") throw new Refusal("unterminated angle bracket");
      throw this.unexpected(t, "in angle brackets");
    }
    this.localPart(words);
    this.next(); // "@"
    this.domain();
    const close = this.next();
    if (close.kind === "end") throw new Refusal("unterminated angle bracket");
    if (close.kind !== ">") throw this.unexpected(close, "in angle brackets");
    const after = this.peek();
    if (after.kind !== "," && after.kind !== "end") {
      throw new Refusal(`text after address: ${echo(this.v.slice(after.start))}`);
    }
  }

  /** local-part = dot-atom / quoted-string; the words seen before "@". */
  private localPart(words: Token[]): void {
    if (words.length === 0) throw new Refusal("empty local part");
    if (words.length === 1 && words[0].kind === "qstr") return;
    const text = () => echo(this.v.slice(words[0].start, words[words.length - 1].end));
    // dot-atom-text = 1*atext *("." 1*atext), no CFWS inside
    for (let k = 0; k < words.length; k++) {
      const w = words[k];
      if (k > 0 && w.gap) throw new Refusal(`unquoted space in local part: ${text()}`);
      if (w.kind !== (k % 2 === 0 ? "atom" : ".")) throw new Refusal(`invalid local part: ${text()}`);
    }
    if (words.length % 2 === 0) throw new Refusal(`invalid local part: ${text()}`);
  }

  /** domain = dot-atom / domain-literal (no obs-domain). */
  private domain(): void {
    const t = this.next();
    if (t.kind === "dlit") return;
    if (t.kind === "end" || t.kind === ">" || t.kind === ",") throw new Refusal("empty domain");
    let bad: Token | undefined = t.kind === "atom" ? undefined : t;
    while (!bad && this.peek().kind === "." && !this.peek().gap) {
      this.next();
      const a = this.next();
      if (a.kind !== "atom" || a.gap) bad = a;
    }
    if (bad) throw new Refusal(`invalid domain: ${echo(this.v.slice(t.start, Math.max(bad.end, t.end)))}`);
  }
}

/**
 * Why `value` (an unfolded header value) is not an RFC 5322 §3.4 mailbox-list,
 * or undefined when it is one. The reason is short ASCII fit for a 441/439 reply.
 */
export function mailboxListError(value: string): string | undefined {
  return SIMPLE_MAILBOX.test(value) ? undefined : fullMailboxListError(value);
}

const ATEXT = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~\\x80-\\xff]";
const DOT_ATOM = `${ATEXT}+(?:\\.${ATEXT}+)*`;
const ADDR_SPEC = `${DOT_ATOM}@${DOT_ATOM}`;
/**
 * The forms nearly every From takes, in one pattern that cannot backtrack
 * (no class in it holds the character that follows it): an addr-spec; atoms
 * or a quoted string, then an angle-addr; an addr-spec and a comment. Each
 * is a mailbox the full parser takes (test/unit/mailbox.test.ts checks that
 * on strings made from the pattern); anything else goes through the parser,
 * which on an ingest flood cost a tenth of the checks.
 */
export const SIMPLE_MAILBOX = new RegExp(
  `^(?:${ADDR_SPEC}|${ATEXT}+(?: ${ATEXT}+)* <${ADDR_SPEC}>|"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]+" <${ADDR_SPEC}>|${ADDR_SPEC} \\([\\x20-\\x27\\x2a-\\x5b\\x5d-\\x7e\\x80-\\xff]*\\))$`,
);

/** mailboxListError() without the shortcut for the common forms. */
export function fullMailboxListError(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return `control character ${hex2(c)}`;
  }
  try {
    new Parser(value, tokenize(value)).list();
    return undefined;
  } catch (e) {
    if (e instanceof Refusal) return e.reason;
    throw e;
  }
}
