// Re-reading the configuration in a running node (SIGHUP, `tidings reload`).
// What can change live is applied without dropping a connection; what cannot
// (listeners, the data folder, the identity, storage and mail settings) is
// named in the log and keeps its running value until the next restart. A file
// that does not load is refused whole, and the running configuration stays.
import type { Config } from "../config/schema.js";

/**
 * Keys, or whole sections, whose new value takes effect only at the next
 * start: the listeners are bound, the database is open, the identity is in
 * every Path already written, and the mail half is wired once.
 */
const RESTART_ONLY = [
  "node.data_dir",
  "node.pathhost",
  "nntp.listen",
  "nntp.tls_listen",
  "http.listen",
  "http.max_connections",
  "storage",
  "articles",
  "smtp",
  "mail",
  "route",
  "group.address",
  "group.subscribers",
];

export interface ConfigChanges {
  /** Keys whose new value is applied now. */
  live: string[];
  /** Keys whose new value waits for a restart (the running value is kept). */
  restart: string[];
}

/** Flattens a configuration to `section.key` → JSON text; arrays of tables stay whole under their section name. */
function flatten(c: Config): Map<string, string> {
  const out = new Map<string, string>();
  for (const [section, value] of Object.entries(c)) {
    if (Array.isArray(value) || value === null || typeof value !== "object") out.set(section, JSON.stringify(value));
    else for (const [k, v] of Object.entries(value)) out.set(`${section}.${k}`, JSON.stringify(v));
  }
  return out;
}

function restartOnly(key: string): boolean {
  return RESTART_ONLY.some((r) => key === r || key.startsWith(r + "."));
}

/** Groups' gateway addresses and subscribers are wired into the mail half at start. */
function groupMailText(c: Config): string {
  return JSON.stringify(c.group.filter((g) => g.address || g.subscribers.length > 0).map((g) => [g.name, g.address, g.subscribers]));
}

export function configChanges(running: Config, next: Config): ConfigChanges {
  const a = flatten(running);
  const b = flatten(next);
  const live: string[] = [];
  const restart: string[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(key) === b.get(key)) continue;
    (restartOnly(key) ? restart : live).push(key);
  }
  if (groupMailText(running) !== groupMailText(next)) restart.push("group.address/subscribers");
  return { live, restart };
}

/**
 * The configuration to run with after a reload: the new one, except that
 * every restart-only key keeps its running value, so what the node reports
 * is what it really does.
 */
export function effectiveConfig(running: Config, next: Config): Config {
  const out = structuredClone(next) as Record<string, unknown>;
  const old = running as unknown as Record<string, unknown>;
  for (const key of RESTART_ONLY) {
    const [section, sub] = key.split(".");
    if (section === "group") continue;
    if (!(section in old)) continue;
    if (sub === undefined) out[section] = structuredClone(old[section]);
    else if (old[section] && typeof old[section] === "object") {
      const s = (out[section] ??= {}) as Record<string, unknown>;
      const v = (old[section] as Record<string, unknown>)[sub];
      if (v === undefined) delete s[sub];
      else s[sub] = structuredClone(v);
    }
  }
  // a group's mail wiring is kept as it runs; its name, status and description change now
  const mail = new Map(running.group.map((g) => [g.name, g]));
  (out as unknown as Config).group = (out as unknown as Config).group.map((g) => {
    const was = mail.get(g.name);
    return was ? { ...g, address: was.address, subscribers: was.subscribers } : { ...g, address: "", subscribers: [] };
  });
  return out as unknown as Config;
}
