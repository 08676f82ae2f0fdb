// Newsgroup names and the Newsgroups header (RFC 5536 §3.1.4, RFC 3977 §4.1).
import { trimWsp } from "./headers.js";

const COMPONENT = /^[A-Za-z0-9+_-]+$/;

export function isNewsgroupName(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  for (const c of name.split(".")) if (!COMPONENT.test(c)) return false;
  return true;
}

/** Parses a Newsgroups value; throws with the offending name. Duplicates removed. */
export function parseNewsgroups(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(",")) {
    const name = trimWsp(part);
    if (!isNewsgroupName(name)) throw new Error(`Invalid newsgroup name "${name}" in Newsgroups`);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}
