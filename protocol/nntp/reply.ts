// Replies on the wire: status lines and dot-stuffed multi-line blocks (RFC 3977 §3.1.1, §3.2).

/**
 * A long multi-line reply written piece by piece as the client takes it
 * (OVER 1-, LISTGROUP, HDR, NEWNEWS over a large group): the session pulls the
 * next piece only when its socket has room, so memory does not grow with the
 * listing. The first piece holds the status line.
 */
export interface Streamed {
  stream: AsyncIterable<string | Buffer>;
}

export type Reply = string | Buffer | (string | Buffer)[] | Streamed;

export function isStreamed(r: Reply | undefined): r is Streamed {
  return typeof r === "object" && r !== null && !Array.isArray(r) && !Buffer.isBuffer(r);
}

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

/**
 * A multi-line reply read in pages: `first` is the first page (already read,
 * so the caller could choose the status code), `more(last)` the page after
 * the row `last`, empty at the end; `line` makes a row a line, or undefined
 * to leave it out. Small listings come back whole.
 */
export function pagedLines<T>(code: number, text: string, first: T[], pageSize: number, more: (last: T) => Promise<T[]>, line: (row: T) => string | undefined): Reply {
  if (first.length < pageSize) return multiline(code, text, first.map(line).filter((l): l is string => l !== undefined));
  async function* pages(): AsyncGenerator<string> {
    let rows = first;
    let head = `${code} ${text}\r\n`;
    while (rows.length > 0) {
      let out = head;
      head = "";
      for (const r of rows) {
        const l = line(r);
        if (l !== undefined) out += (l.charCodeAt(0) === 0x2e ? "." : "") + l + "\r\n";
      }
      yield out;
      if (rows.length < pageSize) break;
      rows = await more(rows[rows.length - 1]);
    }
    yield ".\r\n";
  }
  return { stream: pages() };
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
