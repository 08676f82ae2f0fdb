// Character classes and reply-safe echoes shared by the address parsers of
// articles (mailbox.ts) and of SMTP envelopes (protocol/smtp/address.ts).

/** RFC 5322 §3.2.3 atext, ASCII part: letters, digits and !#$%&'*+-/=?^_`{|}~. */
export function isAtextAscii(c: number): boolean {
  if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)) return true;
  switch (c) {
    case 0x21: // !
    case 0x23: // #
    case 0x24: // $
    case 0x25: // %
    case 0x26: // &
    case 0x27: // '
    case 0x2a: // *
    case 0x2b: // +
    case 0x2d: // -
    case 0x2f: // /
    case 0x3d: // =
    case 0x3f: // ?
    case 0x5e: // ^
    case 0x5f: // _
    case 0x60: // `
    case 0x7b: // {
    case 0x7c: // |
    case 0x7d: // }
    case 0x7e: // ~
      return true;
    default:
      return false;
  }
}

/** Part of a value made safe to quote in a reply line: printable ASCII only ("?" for the rest), clipped to `max` with "...". */
export function echo(s: string, max: number): string {
  let out = "";
  for (let i = 0; i < s.length && out.length < max; i++) {
    const c = s.charCodeAt(i);
    out += c >= 0x20 && c < 0x7f ? s[i] : "?";
  }
  return s.length > out.length ? `${out}...` : out;
}
