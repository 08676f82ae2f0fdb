// Cancel-Lock and Cancel-Key (RFC 8315): who may withdraw an article. The
// poster's agent puts locks (hashes of secret keys) in the article; a cancel
// or a superseding article that carries a key whose hash is one of the locks
// proves it comes from whoever made the lock. Pure functions over header
// values; the node's secret and its policy live in relay/.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Hash algorithms of the IANA "Cancel-Lock Hash Algorithms" registry that node:crypto has (RFC 8315 §7). */
const SCHEMES: Record<string, string> = { sha1: "sha1", sha224: "sha224", sha256: "sha256", sha384: "sha384", sha512: "sha512" };

/** The scheme new locks and keys are made with: RFC 8315 §3 says sha1 only for compatibility. */
export const DEFAULT_SCHEME = "sha256";

export interface Element {
  scheme: string;
  value: string;
}

/**
 * The elements of a Cancel-Lock or Cancel-Key field body (RFC 8315 §2.1,
 * §2.2): `scheme:base64` separated by white space, comments ignored.
 * Elements of unknown schemes are kept out: they can never match.
 */
export function parseElements(body: string | undefined): Element[] {
  if (!body) return [];
  const out: Element[] = [];
  const bare = body.replace(/\([^()]*\)/g, " ");
  for (const token of bare.split(/[ \t\r\n]+/)) {
    const m = /^([A-Za-z0-9-]+):([A-Za-z0-9+/]+={0,2})$/.exec(token);
    if (m && SCHEMES[m[1].toLowerCase()]) out.push({ scheme: m[1].toLowerCase(), value: m[2] });
  }
  return out;
}

/** RFC 8315 §3: the lock of a key is the base64 of the hash of the key string as it appears in Cancel-Key. */
export function lockOf(scheme: string, key: string): string {
  return createHash(SCHEMES[scheme]).update(key, "latin1").digest("base64");
}

/**
 * The key this node gives an article, as RFC 8315 §4 recommends: an HMAC of
 * the poster's identity and the Message-ID under the node's secret, so the
 * node keeps no list of keys and can make the key again when the same
 * poster cancels (as libcanlock does, the identity comes before the id).
 */
export function keyFor(secret: Buffer, msgid: string, identity: string, scheme = DEFAULT_SCHEME): string {
  return createHmac(SCHEMES[scheme], secret).update(identity + msgid, "latin1").digest("base64");
}

/** A Cancel-Lock element for an article. */
export function lockElement(secret: Buffer, msgid: string, identity: string, scheme = DEFAULT_SCHEME): string {
  return `${scheme}:${lockOf(scheme, keyFor(secret, msgid, identity, scheme))}`;
}

/** A Cancel-Key element for withdrawing an article. */
export function keyElement(secret: Buffer, msgid: string, identity: string, scheme = DEFAULT_SCHEME): string {
  return `${scheme}:${keyFor(secret, msgid, identity, scheme)}`;
}

/**
 * RFC 8315 §3.5: a withdrawal is authenticated when the hash of one of its
 * keys, with that key's scheme, equals one of the target's locks of the
 * same scheme.
 */
export function keyMatches(cancelKey: string | undefined, cancelLock: string | undefined): boolean {
  const locks = parseElements(cancelLock);
  if (locks.length === 0) return false;
  for (const k of parseElements(cancelKey)) {
    const want = Buffer.from(lockOf(k.scheme, k.value));
    for (const l of locks) {
      if (l.scheme !== k.scheme) continue;
      const have = Buffer.from(l.value);
      if (have.length === want.length && timingSafeEqual(have, want)) return true;
    }
  }
  return false;
}
