// The Path header (RFC 5536 §3.1.5, RFC 5537 §3.2).

const IDENTITY = /^[A-Za-z0-9._:\-]+$/;

export function isPathIdentity(s: string): boolean {
  return s.length > 0 && s.length <= 255 && IDENTITY.test(s);
}

/** The path identities named in a Path value, newest first, diagnostics ("!!", ".POSTED", "!.SEEN") dropped. */
export function pathIdentities(value: string): string[] {
  const out: string[] = [];
  for (const raw of value.split(/[!\s]+/)) {
    if (raw.length === 0 || raw.startsWith(".") || raw === "not-for-mail") continue;
    out.push(raw);
  }
  return out;
}

/** RFC 5537 §3.2.1: the relaying agent prepends its own identity and "!". */
export function prependPath(identity: string, value: string): string {
  return `${identity}!${value}`;
}

export function pathNames(value: string, identity: string): boolean {
  return identitiesName(pathIdentities(value), identity);
}

/** Whether `identity` is among `ids` (pathIdentities()), as path identities compare: without case. */
export function identitiesName(ids: readonly string[], identity: string): boolean {
  const want = identity.toLowerCase();
  for (const p of ids) if (p.toLowerCase() === want) return true;
  return false;
}
