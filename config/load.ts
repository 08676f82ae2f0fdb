// Loads and validates the configuration file. An error names the file, the
// line where the key stands, the key, and what was expected; the node refuses
// to start rather than guess.
import { readFileSync } from "node:fs";
import { parse, TomlError } from "smol-toml";
import { z } from "zod";
import { CheckedConfigSchema, type Config } from "./schema.js";

export class ConfigError extends Error {}

export interface Overrides {
  dataDir?: string;
  nntpListen?: string;
  smtpListen?: string;
  httpListen?: string;
  nntpsListen?: string;
  pathhost?: string;
  logLevel?: string;
}

export function loadConfig(file: string | undefined, overrides: Overrides = {}): Config {
  let raw: Record<string, unknown> = {};
  let source = "";
  if (file) {
    try {
      source = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError(`${file}: cannot read configuration: ${unreadable(err as NodeJS.ErrnoException)}`);
    }
    try {
      raw = parse(source) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof TomlError) {
        const what = firstLine(err.message).replace(/^Invalid TOML document: /, "");
        throw new ConfigError(`${file}:${err.line}: key ${keyAt(source, err.line)}: expected TOML syntax: ${what} (column ${err.column})`);
      }
      throw new ConfigError(`${file}: cannot read configuration: ${(err as Error).message}`);
    }
  }
  const section = (k: string) => ((raw[k] ??= {}) as Record<string, unknown>);
  if (overrides.dataDir) section("node").data_dir = overrides.dataDir;
  if (overrides.pathhost) section("node").pathhost = overrides.pathhost;
  if (overrides.nntpListen) section("nntp").listen = overrides.nntpListen;
  if (overrides.smtpListen) section("smtp").listen = overrides.smtpListen;
  if (overrides.httpListen) section("http").listen = overrides.httpListen;
  if (overrides.nntpsListen) section("nntp").tls_listen = overrides.nntpsListen;
  if (overrides.logLevel) section("log").level = overrides.logLevel;
  const result = CheckedConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(describe(file ?? "(defaults)", source, result.error));
  return result.data;
}

function firstLine(s: string): string {
  return s.split("\n")[0];
}

function unreadable(err: NodeJS.ErrnoException): string {
  const plain: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EISDIR: "it is a folder, not a file",
    ENOTDIR: "a part of the path is not a folder",
  };
  return (err.code && plain[err.code]) ?? err.message;
}

/**
 * The key written on line `n` (1-based) of TOML text, with its table, as the
 * schema's errors name keys (nntp.listen, peer.1.port); a table header names
 * itself. For an error where no key can be read, "(none)".
 */
export function keyAt(source: string, n: number): string {
  const lines = source.split(/\r?\n/);
  let table: string[] = [];
  const arrayCounts = new Map<string, number>();
  for (let i = 0; i < Math.min(n, lines.length); i++) {
    const t = lines[i].trim();
    let m: RegExpExecArray | null;
    if ((m = /^\[\[\s*([^\]]+?)\s*\]\]/.exec(t))) {
      const count = arrayCounts.get(m[1]) ?? 0;
      arrayCounts.set(m[1], count + 1);
      table = [...m[1].split("."), String(count)];
      if (i === n - 1) return table.join(".");
    } else if ((m = /^\[\s*([^\]]+?)\s*\]/.exec(t))) {
      table = m[1].split(".");
      if (i === n - 1) return table.join(".");
    } else if (i === n - 1) {
      if (t.startsWith("[")) return t.replace(/[[\]\s]/g, "") || "(none)";
      if ((m = /^([A-Za-z0-9_\-."]+)\s*=/.exec(t))) return [...table, ...m[1].replace(/"/g, "").split(".")].join(".");
      return table.length > 0 ? table.join(".") : "(none)";
    }
  }
  return table.length > 0 ? table.join(".") : "(none)";
}

function describe(file: string, source: string, error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String);
      let key = path.join(".");
      let message = issue.message;
      if (issue.code === "unrecognized_keys") {
        const extra = (issue as { keys: string[] }).keys;
        key = [...path, extra[0]].join(".");
        message = `unknown key "${extra.join('", "')}"`;
        path.push(extra[0]);
      }
      const line = locate(source, path);
      return `${file}${line ? `:${line}` : ""}: key ${key || "(top)"}: ${message}`;
    })
    .join("\n");
}

/** Finds the line of a key such as ["nntp","listen"] or ["group","2","name"] in TOML text. */
export function locate(source: string, path: string[]): number | undefined {
  if (!source || path.length === 0) return undefined;
  const lines = source.split(/\r?\n/);
  let table: string[] = [];
  const arrayCounts = new Map<string, number>();
  let best: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i].trim();
    let m: RegExpExecArray | null;
    if ((m = /^\[\[\s*([^\]]+?)\s*\]\]/.exec(t))) {
      const name = m[1];
      const n = arrayCounts.get(name) ?? 0;
      arrayCounts.set(name, n + 1);
      table = [...name.split("."), String(n)];
      if (samePrefix(path, table) && table.length <= path.length) best ??= i + 1;
      continue;
    }
    if ((m = /^\[\s*([^\]]+?)\s*\]/.exec(t))) {
      table = m[1].split(".");
      if (samePrefix(path, table)) best ??= i + 1;
      continue;
    }
    if ((m = /^([A-Za-z0-9_\-."]+)\s*=/.exec(t))) {
      const full = [...table, ...m[1].replace(/"/g, "").split(".")];
      if (full.length <= path.length && samePrefix(path, full)) {
        if (full.length === path.length) return i + 1;
        best = i + 1;
      }
    }
  }
  return best;
}

function samePrefix(path: string[], prefix: string[]): boolean {
  return prefix.every((p, i) => path[i] === p);
}
