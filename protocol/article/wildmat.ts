// Wildmat patterns (RFC 3977 §4.2, INN's uwildmat): "*" any run of characters,
// "?" exactly one character, "[...]" a class ("[^...]" negated, "]" first is
// literal, "-" first or last is literal, "a-z" a range), "\x" the character x
// (inside classes too). A wildmat list is patterns separated by "," (outside
// classes, unescaped) where a leading "!" negates; the last match wins.
//
// Characters are Unicode code points, not UTF-16 units: "?" matches one "é"
// or one emoji. A pattern is compiled once into a token array and matched by
// the iterative glob algorithm that only ever backtracks to the most recent
// "*": O(pattern length × text length) at worst, never exponential, no RegExp.

export type Matcher = (s: string) => boolean;

/** A malformed pattern: reversed range, unclosed "[", trailing "\". */
export class WildmatError extends Error {
  override name = "WildmatError";
}

// Token encoding in an Int32Array: a code point (>= 0) matches itself, STAR is
// any run, ANY is one code point, and -3-k is character class k.
const STAR = -1;
const ANY = -2;
const CLASS0 = -3;

interface Class {
  neg: boolean;
  /** lo, hi pairs, inclusive */
  ranges: Int32Array;
}

interface Compiled {
  tokens: Int32Array;
  classes: Class[];
  /** code points the text needs at least (tokens other than STAR) */
  minLen: number;
  /** index of the first token after the last STAR, -1 if there is no STAR */
  tail: number;
}

interface Item {
  neg: boolean;
  pat: Compiled;
}

const BACKSLASH = 0x5c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const CARET = 0x5e;
const HYPHEN = 0x2d;
const COMMA = 0x2c;
const BANG = 0x21;
const ASTERISK = 0x2a;
const QUESTION = 0x3f;

/** Code points of s; a lone surrogate counts as one (as Array.from does). */
function codePoints(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0)!);
  return out;
}

/** Pattern text for an error message: one line, not too long. */
function show(cps: number[], from: number, to: number): string {
  const MAX = 60;
  const cut = to - from > MAX;
  const s = String.fromCodePoint(...cps.slice(from, cut ? from + MAX : to)).replace(/[\x00-\x1f\x7f]/g, "?");
  return cut ? s + "..." : s;
}

/**
 * Parses one pattern from cps[start..] into a Compiled. In a list (single
 * false) it stops at a top-level unescaped ","; returns the index where it
 * stopped. Throws WildmatError.
 */
function parse(cps: number[], start: number, single: boolean): { pat: Compiled; end: number } {
  const tokens: number[] = [];
  const classes: Class[] = [];
  let minLen = 0;
  let i = start;
  while (i < cps.length) {
    const c = cps[i];
    if (c === COMMA && !single) break;
    if (c === ASTERISK) {
      if (tokens[tokens.length - 1] !== STAR) tokens.push(STAR);
      i++;
    } else if (c === QUESTION) {
      tokens.push(ANY);
      minLen++;
      i++;
    } else if (c === BACKSLASH) {
      if (i + 1 >= cps.length) throw new WildmatError(`Trailing backslash in ${show(cps, start, cps.length)}`);
      tokens.push(cps[i + 1]);
      minLen++;
      i += 2;
    } else if (c === LBRACKET) {
      const open = i;
      let j = i + 1;
      let neg = false;
      if (cps[j] === CARET) {
        neg = true;
        j++;
      }
      const ranges: number[] = [];
      let reversed = false;
      let first = true;
      let closed = false;
      while (j < cps.length) {
        let lo = cps[j];
        if (lo === RBRACKET && !first) {
          closed = true;
          break;
        }
        first = false;
        if (lo === BACKSLASH) {
          if (j + 1 >= cps.length) break; // unclosed
          lo = cps[j + 1];
          j += 2;
        } else j++;
        let hi = lo;
        // "x-y" is a range unless the "-" is last in the class
        if (cps[j] === HYPHEN && j + 1 < cps.length && cps[j + 1] !== RBRACKET) {
          hi = cps[j + 1];
          if (hi === BACKSLASH) {
            if (j + 2 >= cps.length) {
              j = cps.length; // unclosed
              break;
            }
            hi = cps[j + 2];
            j += 3;
          } else j += 2;
          if (hi < lo) reversed = true;
        }
        ranges.push(lo, hi);
      }
      if (!closed) throw new WildmatError(`Unclosed [ in ${show(cps, start, cps.length)}`);
      if (reversed) throw new WildmatError(`Range out of order in ${show(cps, open, j + 1)}`);
      tokens.push(CLASS0 - classes.length);
      classes.push({ neg, ranges: Int32Array.from(ranges) });
      minLen++;
      i = j + 1;
    } else {
      tokens.push(c);
      minLen++;
      i++;
    }
  }
  const tail = tokens.lastIndexOf(STAR);
  return { pat: { tokens: Int32Array.from(tokens), classes, minLen, tail: tail < 0 ? -1 : tail + 1 }, end: i };
}

/** Parses a whole pattern (single) or list into items. Throws WildmatError. */
function parseAll(text: string, single: boolean): Item[] {
  const cps = codePoints(text);
  if (single) return [{ neg: false, pat: parse(cps, 0, true).pat }];
  const items: Item[] = [];
  let i = 0;
  while (i <= cps.length) {
    let neg = false;
    if (cps[i] === BANG) {
      neg = true;
      i++;
    }
    const { pat, end } = parse(cps, i, false);
    // an empty item ("a,,b", a trailing ",") is skipped; a lone "!" is kept
    if (end > i || neg) items.push({ neg, pat });
    i = end + 1;
  }
  return items;
}

// The text being matched, decoded to code points into a reused buffer (the
// matcher never calls out, so one buffer serves every call). Very long texts
// get their own buffer so the shared one does not stay huge.
const SHARED_MAX = 1 << 16;
let shared = new Int32Array(256);
let text = shared;

/** Decodes s into `text` (the shared buffer or, if s is very long, a fresh one); returns its length. */
function decode(s: string): number {
  if (s.length > shared.length) {
    if (s.length > SHARED_MAX) text = new Int32Array(s.length);
    else text = shared = new Int32Array(Math.max(s.length, shared.length * 2));
  } else text = shared;
  const buf = text;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
        i++;
      }
    }
    buf[n++] = c;
  }
  return n;
}

function inClass(k: Class, c: number): boolean {
  const r = k.ranges;
  for (let i = 0; i < r.length; i += 2) if (c >= r[i] && c <= r[i + 1]) return !k.neg;
  return k.neg;
}

/** Does token k (not STAR) match code point c? */
function one(pat: Compiled, k: number, c: number): boolean {
  return k >= 0 ? k === c : k === ANY || inClass(pat.classes[CLASS0 - k], c);
}

/** Does the pattern match text[0..n) exactly? O(tokens × n), no recursion. */
function run(pat: Compiled, text: Int32Array, n: number): boolean {
  if (n < pat.minLen || (pat.tail < 0 && n !== pat.minLen)) return false;
  const tok = pat.tokens;
  let m = tok.length;
  if (pat.tail >= 0) {
    // what follows the last "*" has a fixed length: it must match the end of
    // the text, and the rest of the pattern (ending in "*") the rest
    const len = m - pat.tail;
    for (let j = 0; j < len; j++) if (!one(pat, tok[pat.tail + j], text[n - len + j])) return false;
    m = pat.tail;
    n -= len;
  }
  let p = 0;
  let t = 0;
  let starP = -1; // token index just after the last "*" seen
  let starT = 0; // text index that "*" was last tried to end at
  while (t < n) {
    if (p < m) {
      const k = tok[p];
      if (k === STAR) {
        if (++p === m) return true; // a trailing "*" takes the rest
        starP = p;
        starT = t;
        continue;
      }
      if (one(pat, k, text[t])) {
        p++;
        t++;
        continue;
      }
    }
    // mismatch (or pattern used up before the text): let the last "*" take
    // one more character and retry what follows it
    if (starP < 0) return false;
    p = starP;
    t = ++starT;
  }
  while (p < m && tok[p] === STAR) p++;
  return p === m;
}

/** One wildmat pattern, commas taken literally (XPAT, RFC 2980 §2.9). Throws WildmatError. */
export function pattern(p: string): Matcher {
  const pat = parseAll(p, true)[0].pat;
  return (s: string) => {
    const n = decode(s); // sets text: decode before reading it
    return run(pat, text, n);
  };
}

/** A wildmat list ("comp.*,!comp.os.*"). An empty list matches nothing. Throws WildmatError. */
export function wildmat(list: string): Matcher {
  const items = parseAll(list, false);
  if (items.length === 0) return () => false;
  return (s: string) => {
    const n = decode(s);
    // the last matching pattern decides, so look from the end
    for (let i = items.length - 1; i >= 0; i--) if (run(items[i].pat, text, n)) return !items[i].neg;
    return false;
  };
}

/**
 * Why a wildmat list (or, with single, one pattern with literal commas) is
 * malformed, or undefined if it is fine.
 */
export function wildmatError(list: string, single = false): string | undefined {
  try {
    parseAll(list, single);
    return undefined;
  } catch (err) {
    if (err instanceof WildmatError) return err.message;
    throw err;
  }
}

/** RFC 3977 §4.2: a wildmat argument contains no spaces and no control characters. */
export function isWildmat(s: string): boolean {
  return s.length > 0 && !/[\x00-\x20\x7f]/.test(s);
}
