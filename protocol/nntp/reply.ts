// Replies on the wire: status lines and dot-stuffed multi-line blocks (RFC 3977 §3.1.1, §3.2).

export type Reply = string | Buffer | (string | Buffer)[];

const CRLF = Buffer.from("\r\n");
const TERM = Buffer.from(".\r\n");
const LF_DOT = Buffer.from("\n.");

export function status(code: number, text: string): string {
  return `${code} ${text}\r\n`;
}

/** A status line followed by text lines, each dot-stuffed, and the terminator. */
export function multiline(code: number, text: string, lines: Iterable<string>): string {
  let out = `${code} ${text}\r\n`;
  for (const l of lines) out += (l.charCodeAt(0) === 0x2e ? "." : "") + l + "\r\n";
  return out + ".\r\n";
}

/** Dot-stuffs stored article bytes (CRLF lines) and terminates the block. */
export function stuffBlock(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  if (data.length > 0 && data[0] === 0x2e) {
    out.push(Buffer.from("."));
  }
  for (;;) {
    const j = data.indexOf(LF_DOT, at);
    if (j < 0) break;
    out.push(data.subarray(at, j + 1), Buffer.from("."));
    at = j + 1;
  }
  out.push(data.subarray(at));
  if (data.length > 0 && data[data.length - 1] !== 0x0a) out.push(CRLF);
  out.push(TERM);
  return out;
}
