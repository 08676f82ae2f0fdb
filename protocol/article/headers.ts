// The header section of an article (RFC 5536 §2, RFC 5322 §2.2): fields in
// order, folded lines kept as sent so an article is served back byte for byte.

export interface Field {
  /** Name as sent. */
  name: string;
  /** Lower-cased name for lookups. */
  key: string;
  /** Raw value after the colon, folding kept, CRLFs inside, no trailing CRLF. */
  raw: string;
}

export interface ParsedArticle {
  fields: Field[];
  /** Offset of the body (just after the empty line), or data.length if none. */
  bodyStart: number;
  /** Whether the header section ended with an empty line. */
  hasSeparator: boolean;
}

export class HeaderError extends Error {}

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/; // printable US-ASCII except ":" (RFC 5322 §2.2)

/** Splits the header section. Header text is read as UTF-8 (RFC 5536 §2.2 allows it). */
export function parseHeaders(data: Buffer, maxHeaderBytes = 256 * 1024): ParsedArticle {
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
  const text = data.toString("utf8", 0, end);
  const fields: Field[] = [];
  for (const line of text.split("\r\n")) {
    if (line.length === 0) continue;
    const c = line.charCodeAt(0);
    if (c === 0x20 || c === 0x09) {
      const last = fields[fields.length - 1];
      if (!last) throw new HeaderError("Article starts with a continuation line");
      last.raw += "\r\n" + line;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HeaderError(`Malformed header line: ${clip(line)}`);
    const name = line.slice(0, colon);
    if (!FIELD_NAME.test(name)) throw new HeaderError(`Malformed header name: ${clip(name)}`);
    fields.push({ name, key: name.toLowerCase(), raw: line.slice(colon + 1) });
  }
  return { fields, bodyStart, hasSeparator };
}

/** The value as a single line: unfolded (RFC 5322 §2.2.3) and trimmed. */
export function unfold(raw: string): string {
  return raw.replace(/\r\n(?=[ \t])/g, "").trim();
}

export function clip(s: string, n = 60): string {
  return s.length > n ? s.slice(0, n) + "..." : s;
}

export class Headers {
  constructor(public readonly fields: Field[]) {}

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
    const field = { name, key, raw: " " + value };
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

  /** The header section as sent, ending with the CRLF of its last line (no separator). */
  serialize(): string {
    let s = "";
    for (const f of this.fields) s += f.name + ":" + f.raw + "\r\n";
    return s;
  }
}
