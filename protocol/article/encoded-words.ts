// Header text for people: octets read as UTF-8 (or Latin-1 when they are not
// UTF-8), then RFC 2047 encoded-words decoded. For display only; the stored
// article keeps its octets.

/** A header value kept as latin1 (one char per octet) turned into text. */
export function octetsToText(latin1: string): string {
  const buf = Buffer.from(latin1, "latin1");
  const utf8 = buf.toString("utf8");
  return utf8.includes("\uFFFD") ? latin1 : utf8;
}

const WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;

function decodeWord(charset: string, encoding: string, text: string): string | undefined {
  let bytes: Buffer;
  if (encoding.toUpperCase() === "B") bytes = Buffer.from(text, "base64");
  else {
    // RFC 2047 §4.2: "_" is a space; =XX an octet
    const out: number[] = [];
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === "_") out.push(0x20);
      else if (c === "=" && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
        out.push(parseInt(text.slice(i + 1, i + 3), 16));
        i += 2;
      } else out.push(c.charCodeAt(0) & 0xff);
    }
    bytes = Buffer.from(out);
  }
  const cs = charset.toLowerCase().replace(/\*.*$/, ""); // RFC 2231 language suffix
  try {
    return new TextDecoder(cs).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Decodes encoded-words; white space between two adjacent ones goes (RFC 2047 §6.2). */
export function decodeWords(s: string): string {
  const joined = s.replace(/(\?=)\s+(?==\?)/g, "$1");
  return joined.replace(WORD, (whole, charset: string, enc: string, text: string) => decodeWord(charset, enc, text) ?? whole);
}

/** Display text of a header value stored as octets. */
export function headerDisplay(latin1: string): string {
  return decodeWords(octetsToText(latin1));
}
