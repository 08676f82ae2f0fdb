// The header section of an article (RFC 5536 §2, RFC 5322 §2.2): fields in
// order, folded lines kept as sent so an article is served back byte for byte.
// Header text is held as a binary string, one char per octet (latin1), so
// that 8-bit bytes in any charset, or none, go back out exactly as they came;
// text(), not the raw value, is what to show a person.

export interface Field {
  /** Name as sent. */
  name: string;
  /** Lower-cased name for lookups. */
  key: string;
  /** Raw value after the colon as a binary string (one char per octet), folding kept, CRLFs inside, no trailing CRLF. */
  raw: string;
  /** Where the field's lines are in the bytes it was parsed from (without the last CRLF); absent for a field set here. */
  at?: number;
  to?: number;
}

export interface ParsedArticle {
  fields: Field[];
  /** Offset of the body (just after the empty line), or data.length if none. */
  bodyStart: number;
  /** Whether the header section ended with an empty line. */
  hasSeparator: boolean;
}

export class HeaderError extends Error {}

export interface ParseOptions {
  /** Largest header section accepted, in octets. */
  maxHeaderBytes?: number;
  /**
   * Refuse control characters inside header lines (the default, for what
   * comes in). Reading back what is already stored passes false.
   */
  strict?: boolean;
}

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/; // printable US-ASCII except ":" (RFC 5322 §2.2)
// Anything below 0x20 but HTAB, and DEL. CR and LF only ever appear as the CRLF
// that ends a line; one alone would be a line end to some readers and not to
// others (Python's nntplib splits on LF), which is how headers get smuggled.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Splits the header section, refusing what RFC 5322 §2.2 and RFC 3977 §3.6 do not allow in it. */
export function parseHeaders(data: Buffer, opts: ParseOptions = {}): ParsedArticle {
  const maxHeaderBytes = opts.maxHeaderBytes ?? 256 * 1024;
  const strict = opts.strict ?? true;
  let end = data.indexOf("\r\n\r\n");
  let bodyStart: number;
  let hasSeparator = true;
  if (end >= 0) {
    bodyStart = end + 4;
  } else if (data.length >= 2 && data[0] === 0x0d && data[1] === 0x0a) {
    throw new HeaderError("Article has no headers");
  } else {
    end = data.length;
    if (end >= 2 && data[end - 2] === 0x0d && data[end - 1] === 0x0a) end -= 2;
    bodyStart = data.length;
    hasSeparator = false;
  }
  if (end > maxHeaderBytes) throw new HeaderError(`Header section too large (${end} octets)`);
  const text = data.toString("latin1", 0, end);
  const fields: Field[] = [];
  // lines found by position, not split(): a field keeps where its bytes are (Headers.bytes)
  for (let pos = 0, eol = 0; pos < text.length; pos = eol + 2) {
    eol = text.indexOf("\r\n", pos);
    if (eol < 0) eol = text.length;
    if (eol === pos) continue;
    const line = text.slice(pos, eol);
    if (strict) {
      const bad = CONTROL.exec(line);
      if (bad) throw new HeaderError(`${controlName(bad[0])} in header line: ${clip(printable(line))}`);
    }
    const c = line.charCodeAt(0);
    if (c === 0x20 || c === 0x09) {
      const last = fields[fields.length - 1];
      if (!last) throw new HeaderError("Article starts with a continuation line");
      last.raw += "\r\n" + line;
      last.to = eol;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HeaderError(`Malformed header line: ${clip(printable(line))}`);
    const name = line.slice(0, colon);
    if (!FIELD_NAME.test(name)) throw new HeaderError(`Malformed header name: ${clip(printable(name))}`);
    fields.push({ name, key: name.toLowerCase(), raw: line.slice(colon + 1), at: pos, to: eol });
  }
  return { fields, bodyStart, hasSeparator };
}

function controlName(c: string): string {
  if (c === "\n") return "Bare LF";
  if (c === "\r") return "Lone CR";
  if (c === "\0") return "NUL";
  return `Control character 0x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
}

/** A binary header string made safe to put in a reply or a log line: controls and 8-bit octets escaped. */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** A binary header value as text for people and indexes: its octets read as UTF-8 (RFC 5536 §2.2 allows UTF-8). */
export function text(binary: string): string {
  // pure ASCII is the common case and needs no copy
  return /[\x80-\xff]/.test(binary) ? Buffer.from(binary, "latin1").toString("utf8") : binary;
}

/** The value as a single line: unfolded (RFC 5322 §2.2.3) and trimmed. */
export function unfold(raw: string): string {
  // most values are on one line: no pattern to run for them (a tenth of ingest's header work)
  return trimWsp(raw.indexOf("\r\n") < 0 ? raw : raw.replace(/\r\n(?=[ \t])/g, ""));
}

/**
 * Trims RFC 5322 white space only. String.prototype.trim() would also take
 * U+00A0, which in a binary header string is the octet 0xA0: the last byte
 * of a UTF-8 "à" (C3 A0).
 */
export function trimWsp(s: string): string {
  let from = 0;
  let to = s.length;
  while (from < to && isWsp(s.charCodeAt(from))) from++;
  while (to > from && isWsp(s.charCodeAt(to - 1))) to--;
  return from === 0 && to === s.length ? s : s.slice(from, to);
}

function isWsp(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

export function clip(s: string, n = 60): string {
  return s.length > n ? s.slice(0, n) + "..." : s;
}

export class Headers {
  /** `source`: the bytes the fields were parsed from, which bytes() copies unchanged fields out of. */
  constructor(
    public readonly fields: Field[],
    private readonly source?: Buffer,
  ) {}

  all(key: string): Field[] {
    return this.fields.filter((f) => f.key === key);
  }

  /** Unfolded value of the single field named `key`, or undefined. */
  get(key: string): string | undefined {
    for (const f of this.fields) if (f.key === key) return unfold(f.raw);
    return undefined;
  }

  count(key: string): number {
    let n = 0;
    for (const f of this.fields) if (f.key === key) n++;
    return n;
  }

  remove(key: string): void {
    for (let i = this.fields.length - 1; i >= 0; i--) if (this.fields[i].key === key) this.fields.splice(i, 1);
  }

  set(name: string, value: string): void {
    const key = name.toLowerCase();
    const i = this.fields.findIndex((f) => f.key === key);
    const field: Field = { name, key, raw: " " + value };
    if (i >= 0) {
      this.fields[i] = field;
      this.remove2(key, i);
    } else this.fields.push(field);
  }

  private remove2(key: string, keep: number): void {
    for (let i = this.fields.length - 1; i > keep; i--) if (this.fields[i].key === key) this.fields.splice(i, 1);
  }

  prepend(name: string, value: string): void {
    this.fields.unshift({ name, key: name.toLowerCase(), raw: " " + value });
  }

  /** The header section as sent (binary string), ending with the CRLF of its last line (no separator). */
  serialize(): string {
    let s = "";
    for (const f of this.fields) s += f.name + ":" + f.raw + "\r\n";
    return s;
  }

  /**
   * serialize() as bytes: the fields that came in are copied from the bytes
   * they came in (no string built and encoded again, a tenth of the ingest
   * path's header work); those set here are written.
   */
  bytes(): Buffer {
    const src = this.source;
    let n = 0;
    for (const f of this.fields) n += (src && f.at !== undefined ? f.to! - f.at : f.name.length + 1 + f.raw.length) + 2;
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    // fields that lie one after another in the source go in one copy (most of them), with the CRLFs between them
    let runAt = -1;
    let runTo = -1;
    const crlf = () => {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    };
    const flush = () => {
      if (runAt < 0) return;
      o += src!.copy(out, o, runAt, runTo);
      crlf();
      runAt = -1;
    };
    for (const f of this.fields) {
      if (src && f.at !== undefined) {
        if (runAt >= 0 && f.at === runTo + 2) runTo = f.to!;
        else {
          flush();
          runAt = f.at;
          runTo = f.to!;
        }
        continue;
      }
      flush();
      o += out.write(f.name + ":" + f.raw, o, "latin1");
      crlf();
    }
    flush();
    return out;
  }
}
