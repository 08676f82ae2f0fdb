// Message-ID syntax (RFC 5536 §3.1.3, RFC 3977 §3.6).

/**
 * RFC 5536 §3.1.3: "<" id-left "@" id-right ">", printable US-ASCII with no
 * spaces, at most 250 octets; ">" may not appear inside, and RFC 3977 §3.6
 * forbids "<" inside too. Relaxed like INN on the right part (no-fold-literal
 * allowed) so real feeds are not refused over bracket forms.
 */
const MSGID = /^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$/;

export function isMessageId(s: string): boolean {
  return s.length >= 5 && s.length <= 250 && MSGID.test(s);
}

export function looksLikeMessageId(s: string): boolean {
  return s.startsWith("<");
}
