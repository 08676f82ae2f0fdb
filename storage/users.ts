// Users who may log in (NNTP AUTHINFO, SMTP AUTH): each kept as a scrypt hash
// of the password, never the password, and the only SQL that touches them.
// The node reads a user's row at each login, so a user that `tidings user`
// adds or removes from another process (same database, WAL) counts from the
// next login attempt on.
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import type { Db, Reader } from "./sqlite.js";

/**
 * scrypt cost as log2(N), r, p: 2^14 × 8 × 1 takes 16 MiB and some 50 ms a
 * check. Each hash names the parameters it was made with (a PHC string,
 * `$scrypt$ln=14,r=8,p=1$salt$key`), so a later release can raise them
 * and old hashes still verify.
 */
const LN = 14, R = 8, P = 1;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Hashes with a larger cost than this are refused rather than computed (a doctored row must not eat the memory). */
const MAX_LN = 20;

/** What a user name may be: it travels as one word in AUTHINFO USER and inside SASL PLAIN. */
export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;

function derive(password: string, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** ln;
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, KEY_BYTES, { N, r, p, maxmem: 256 * N * r * p }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** A new hash of the password with a random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, LN, R, P);
  return `$scrypt$ln=${LN},r=${R},p=${P}$${salt.toString("base64url")}$${key.toString("base64url")}`;
}

/** Whether the password matches the stored hash; compared in constant time. A malformed hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  if (!m) return false;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 1 || ln > MAX_LN || r < 1 || p < 1) return false;
  const want = Buffer.from(m[5], "base64url");
  const got = await derive(password, Buffer.from(m[4], "base64url"), ln, r, p);
  return got.length === want.length && timingSafeEqual(got, want);
}

let dummy: Promise<string> | undefined;
/**
 * A hash no password matches, to check against when the user does not
 * exist: an unknown name then costs as long as a wrong password, so the
 * time of a reply does not tell which names exist.
 */
export function dummyHash(): Promise<string> {
  return (dummy ??= hashPassword(randomBytes(24).toString("base64")));
}

export interface UserRow {
  name: string;
  /** When it was added or its password last set (ms since the epoch). */
  created: number;
}

/** The stored hash of a user, or undefined. */
export async function userHash(db: Reader, name: string): Promise<string | undefined> {
  return (await db.get<{ hash: string }>("SELECT hash FROM users WHERE name = ?", [name]))?.hash;
}

/** Adds a user; with replace, sets the password of one that exists. Returns false if it existed and replace was not asked. */
export async function putUser(db: Db, name: string, hash: string, replace: boolean): Promise<boolean> {
  const sql = replace
    ? "INSERT INTO users (name, hash, created) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created = excluded.created"
    : "INSERT INTO users (name, hash, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING";
  return (await db.run(sql, [name, hash, Date.now()])).changes > 0;
}

/** Removes a user; returns whether there was one. */
export async function removeUser(db: Db, name: string): Promise<boolean> {
  return (await db.run("DELETE FROM users WHERE name = ?", [name])).changes > 0;
}

export async function listUsers(db: Reader): Promise<UserRow[]> {
  return db.all<UserRow>("SELECT name, created FROM users ORDER BY name");
}
