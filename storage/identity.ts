// This node's path identity when the configuration names none: made once, on
// the data folder's first start, from the machine's host name and a random
// part, and kept in the meta table so that every restart uses the same one.
// RFC 5537 §3.2.1: a relaying agent prepends its identity to Path and refuses
// what already names it, so two nodes sharing one identity drop each other's
// articles as loops; the random part keeps two nodes on one machine apart.
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Db } from "./sqlite.js";

const KEY = "pathhost";

/**
 * RFC 5536 §3.1.5: path-identity = ( ALPHA / DIGIT ) *( ALPHA / DIGIT / "-" / "." / ":" / "_" ).
 * The random part goes after the host's first label ("box.example.org" gives
 * "box-k3j9x2.example.org"), so the name still reads as the machine's.
 */
export function makeIdentity(host = hostname(), random = randomPart()): string {
  const labels = host
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .split(".")
    .map((l) => l.replace(/^-+|-+$/g, "").slice(0, 40))
    .filter((l) => l.length > 0);
  const first = labels[0] ?? "tidings";
  const rest = labels.slice(1).join(".").slice(0, 150);
  return `${first}-${random}${rest ? "." + rest : ""}`;
}

/** Six letters and digits: enough that two nodes never draw the same, short enough to read in a Path. */
function randomPart(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...randomBytes(6)].map((b) => alphabet[b % alphabet.length]).join("");
}

/**
 * The identity kept in this database, made and stored now if there is none.
 * Runs on the writer connection at start, before anything else writes.
 */
export async function nodeIdentity(db: Db): Promise<{ identity: string; made: boolean }> {
  const kept = await read(db);
  if (kept) return { identity: kept, made: false };
  // meta.value has INTEGER affinity; a name with a letter or a dash stays TEXT
  await db.run("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", [KEY, makeIdentity()]);
  const identity = await read(db);
  if (!identity) throw new Error(`could not keep the path identity in ${db.file}`);
  return { identity, made: true };
}

/**
 * The identity a node made on this data folder, for the commands that run
 * beside it (`tidings peer add`, `peer check`): undefined when no node has
 * started there yet.
 */
export async function storedIdentity(dataDir: string): Promise<string | undefined> {
  const file = join(dataDir, "tidings.sqlite");
  if (!existsSync(file)) return undefined;
  let db: Db | undefined;
  try {
    db = await Db.open(file, true);
    return await read(db);
  } catch {
    return undefined; // no meta table yet, or not a database of ours: nothing to compare with
  } finally {
    await db?.close().catch(() => {});
  }
}

async function read(db: Db): Promise<string | undefined> {
  const row = await db.get<{ value: unknown }>("SELECT value FROM meta WHERE key = ?", [KEY]);
  return typeof row?.value === "string" && row.value.length > 0 ? row.value : undefined;
}
