// Where the benchmark finds test/interop/inn-sandbox.sh: $INN_SANDBOX if set,
// else next to the compiled tree (dist/bench/ → repository root), else under
// the current directory (for a build compiled elsewhere, run from the repository).
import { existsSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const REL = join("test", "interop", "inn-sandbox.sh");

export function sandboxScript(): string {
  const candidates = [
    process.env.INN_SANDBOX,
    join(here, "..", "..", REL), // dist/bench/x.js → repository root
    join(here, "..", REL), // run from sources by a TS loader
    resolve(process.cwd(), REL),
  ].filter((p): p is string => !!p);
  return candidates.find((p) => existsSync(p)) ?? candidates[candidates.length - 1];
}

export const SANDBOX = sandboxScript();
