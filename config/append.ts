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

/**
 * Removes the `[[table]]` entry whose `name` is `name` (`tidings peer rm`),
 * from its header to the next table header, only if the file still
 * validates afterwards. Returns the removed text, or undefined if no entry
 * has that name.
 */
export function removeValidated(file: string, table: string, name: string): string | undefined {
  const lines = currentText(file).split("\n");
  const header = new RegExp(`^\\s*\\[\\[\\s*${table.replace(/\./g, "\\.")}\\s*\\]\\]`);
  const anyTable = /^\s*\[/;
  for (let i = 0; i < lines.length; i++) {
    if (!header.test(lines[i])) continue;
    let end = i + 1;
    while (end < lines.length && !anyTable.test(lines[end])) end++;
    const block = lines.slice(i, end);
    const named = block.some((l) => {
      const m = /^\s*name\s*=\s*(".*"|'.*')\s*(#.*)?$/.exec(l);
      return m !== null && m[1].slice(1, -1) === name;
    });
    if (!named) continue;
    // blank lines and comments just before the next table belong to it
    while (end - 1 > i && /^\s*(#.*)?$/.test(lines[end - 1]) && end < lines.length) end--;
    const after = [...lines.slice(0, i), ...lines.slice(end)].join("\n");
    writeFileSync(file + ".new", after);
    try {
      loadConfig(file + ".new");
    } catch (err) {
      throw new Error(`the file would not validate without the entry: ${(err as Error).message}`);
    }
    renameSync(file + ".new", file);
    return lines.slice(i, end).join("\n");
  }
  return undefined;
}
