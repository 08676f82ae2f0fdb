// X-PGP-Sig: the signatures Usenet hierarchies put on their control messages
// (made by signcontrol, checked by INN's pgpverify), checked here with
// OpenPGP.js. The signed text is rebuilt exactly as pgpverify 1.31 rebuilds
// it, so a message that pgpverify accepts is accepted here and one it refuses
// is refused: "X-Signed-Headers: LIST\n", then "Name: value\n" for each name
// in LIST (names matched as written, folded values joined with "\n", a name
// the article lacks gives an empty value, a name present twice makes the
// message unverifiable), an empty line, the body with CRLF made LF, and
// white space at the end of every line removed.
import { readFileSync } from "node:fs";
import * as openpgp from "openpgp";
import type { Field } from "../protocol/article/headers.js";

export interface XPgpSig {
  /** The PGP version token (put back as the armor's Version line, as pgpverify does). */
  version: string;
  /** Header names, as written, in signed order. */
  signed: string[];
  /** The radix-64 lines of the signature, checksum line included. */
  lines: string[];
}

/** Why a control message's signature was not accepted; `ok` names the key that made it. */
export type Verdict = { ok: true; signer: string; keyId: string } | { ok: false; why: string };

/**
 * pgpverify's view of a header field's value: what follows "Name:" and one
 * space or tab, with continuation lines joined by "\n" (their leading white
 * space kept). Fields it would not parse ("Name:" with nothing after it) are
 * left out, as its parser leaves them out.
 */
function pgpverifyValue(f: Field): string | undefined {
  const raw = f.raw.replace(/\r\n/g, "\n");
  if (raw[0] !== " " && raw[0] !== "\t") return undefined;
  const v = raw.slice(1);
  const firstLine = v.split("\n", 1)[0];
  return firstLine.length > 0 ? v : undefined;
}

/** Parses the X-PGP-Sig field as pgpverify's regular expression does; undefined when it does not match. */
export function parseXPgpSig(f: Field): XPgpSig | undefined {
  const v = pgpverifyValue(f);
  if (v === undefined) return undefined;
  const sep = "[ \\t]*(?:\\n?[ \\t]+)+";
  const r64 = "[a-zA-Z0-9+/]";
  const m = new RegExp(`^(\\S+)${sep}(\\S+)((?:${sep}${r64}{64})+${sep}${r64}+=?=?${sep}=${r64}{4})$`).exec(v);
  if (!m) return undefined;
  const lines = m[3].split(/[ \t\n]+/).filter(Boolean);
  return { version: m[1], signed: m[2].split(","), lines };
}

/** The text that was signed, as pgpverify rebuilds it; a string of octets (latin1). */
export function signedText(fields: Field[], body: Buffer, signed: string[]): string | { why: string } {
  const values = new Map<string, string>();
  const dup = new Set<string>();
  for (const f of fields) {
    const v = pgpverifyValue(f);
    if (v === undefined) continue;
    if (values.has(f.name)) dup.add(f.name);
    values.set(f.name, v);
  }
  let text = `X-Signed-Headers: ${signed.join(",")}\n`;
  for (const name of signed) {
    if (dup.has(name)) return { why: `duplicate signed ${name} header, can't verify` };
    text += `${name}: ${values.get(name) ?? ""}\n`;
  }
  text += "\n" + body.toString("latin1").replace(/\r\n/g, "\n");
  return text.replace(/[ \t]+\n/g, "\n");
}

/** The armored detached signature pgpverify hands to gpg. */
export function armored(sig: XPgpSig): string {
  return `-----BEGIN PGP SIGNATURE-----\nVersion: ${sig.version}\n\n${sig.lines.join("\n")}\n-----END PGP SIGNATURE-----\n`;
}

// Hierarchy keys are often old: 1024-bit RSA and DSA keys, SHA-1 signatures.
// gpg, which pgpverify runs, takes them (it refuses only MD5 unless told
// otherwise), so OpenPGP.js is told to take what gpg takes.
const VERIFY_CONFIG = {
  minRSABits: 1024,
  rejectHashAlgorithms: new Set([openpgp.enums.hash.md5]),
  rejectMessageHashAlgorithms: new Set([openpgp.enums.hash.md5]),
  rejectPublicKeyAlgorithms: new Set<openpgp.enums.publicKey>(),
};

/** Public keys read from armored key files, once per file. */
export class KeyRing {
  readonly #files = new Map<string, Promise<openpgp.Key[]>>();

  /** The keys of a key file: armored (as hierarchies publish them) or binary (gpg --export), one or more keys. */
  keys(file: string): Promise<openpgp.Key[]> {
    let p = this.#files.get(file);
    if (!p) {
      const data = readFileSync(file);
      p = data.includes("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        ? openpgp.readKeys({ armoredKeys: data.toString("utf8"), config: VERIFY_CONFIG })
        : openpgp.readKeys({ binaryKeys: data, config: VERIFY_CONFIG });
      this.#files.set(file, p);
      p.catch(() => this.#files.delete(file)); // a fixed file is read again
    }
    return p;
  }

  /** Forgets the files read (after a reload: a hierarchy may have published a new key). */
  clear(): void {
    this.#files.clear();
  }
}

/**
 * Checks a control message's X-PGP-Sig against the keys of `keyFile`. With
 * `signer`, one of the signing key's user IDs must contain it (INN's
 * verify-ID action checks the user ID pgpverify reports).
 */
export async function verifyXPgpSig(ring: KeyRing, keyFile: string, fields: Field[], body: Buffer, signer = ""): Promise<Verdict> {
  const sigFields = fields.filter((f) => f.name === "X-PGP-Sig");
  if (sigFields.length === 0) return { ok: false, why: "no X-PGP-Sig" };
  const sig = parseXPgpSig(sigFields[sigFields.length - 1]);
  if (!sig) return { ok: false, why: "X-PGP-Sig not in expected format" };
  const text = signedText(fields, body, sig.signed);
  if (typeof text !== "string") return { ok: false, why: text.why };
  let keys: openpgp.Key[];
  try {
    keys = await ring.keys(keyFile);
  } catch (err) {
    return { ok: false, why: `key file ${keyFile}: ${(err as Error).message}` };
  }
  try {
    const signature = await openpgp.readSignature({ armoredSignature: armored(sig), config: VERIFY_CONFIG });
    const message = await openpgp.createMessage({ binary: Buffer.from(text, "latin1") });
    const { signatures } = await openpgp.verify({ message, signature, verificationKeys: keys, expectSigned: false, config: VERIFY_CONFIG });
    for (const s of signatures) {
      try {
        await s.verified;
      } catch {
        continue;
      }
      const key = keys.find((k) => k.getKeys(s.keyID).length > 0);
      const ids = key?.getUserIDs() ?? [];
      if (signer && !ids.some((u) => u.includes(signer))) return { ok: false, why: `signed by ${ids.join(", ") || s.keyID.toHex()}, not by ${signer}` };
      return { ok: true, signer: ids[0] ?? "", keyId: s.keyID.toHex() };
    }
    return { ok: false, why: signatures.length ? "bad signature, or made by a key not in the key file" : "no signature" };
  } catch (err) {
    return { ok: false, why: `signature unreadable: ${(err as Error).message}` };
  }
}
