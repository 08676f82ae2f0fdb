// Adds a block to a configuration file only if the whole file still
// validates afterwards (`tidings peer add`, `tidings route add`): a command
// that writes the configuration must never leave it broken.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { loadConfig } from "./load.js";

/** The file's text now ("" when it does not exist yet). */
export function currentText(file: string): string {
  return existsSync(file) ? readFileSync(file, "utf8") : "";
}

export function appendValidated(file: string, block: string): void {
  const before = currentText(file);
  const after = (before && !before.endsWith("\n") ? before + "\n" : before) + block;
  writeFileSync(file + ".new", after);
  try {
    loadConfig(file + ".new");
  } catch (err) {
    throw new Error(`the new entry would not validate: ${(err as Error).message}`);
  }
  renameSync(file + ".new", file);
}
