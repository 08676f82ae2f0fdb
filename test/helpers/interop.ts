// Where the scripts in test/interop are, for tests and benchmarks built into
// dist/ or into another folder: $ENV_VAR when given, else upward from the
// compiled file, else upward from the working folder (a build elsewhere, run
// from the repository).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export function interopScript(name: string, envVar?: string): string {
  const given = envVar ? process.env[envVar] : undefined;
  if (given) return given;
  for (const start of [here, process.cwd()]) {
    for (let d = start; ; d = dirname(d)) {
      const f = join(d, "test", "interop", name);
      if (existsSync(f)) return f;
      if (dirname(d) === d) break;
    }
  }
  throw new Error(`test/interop/${name} not found above ${here} or ${process.cwd()}${envVar ? `; set ${envVar}` : ""}`);
}
