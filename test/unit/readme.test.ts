import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { KEY_DOCS } from "../../config/schema.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

test("the README documents every configuration key with its default", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  for (const k of KEY_DOCS) {
    const row = readme.split("\n").find((l) => l.startsWith(`| \`${k.key}\` |`));
    assert.ok(row, `README lacks a row for ${k.key}`);
    assert.ok(row.includes(k.default.replace(/\|/g, "\\|")), `README shows a stale default for ${k.key}`);
  }
});

test(".ci/run runs exactly the README's install and test commands", () => {
  const ci = readFileSync(join(root, ".ci", "run"), "utf8");
  const readme = readFileSync(join(root, "README.md"), "utf8");
  assert.match(readme, /^ {4}npm ci /m);
  assert.match(readme, /^ {4}npm test$/m);
  assert.match(ci, /^npm ci$/m);
  assert.match(ci, /^npm test$/m);
});

test("every way of starting a node passes the same V8 flags (cli/node-flags.ts)", async () => {
  const { NODE_FLAGS } = await import("../../cli/node-flags.js");
  const flags = NODE_FLAGS.join(" ");
  const shebang = readFileSync(join(root, "cli", "tidings.ts"), "utf8").split("\n")[0];
  assert.equal(shebang, `#!/usr/bin/env -S node ${flags}`);
  const start = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts.start as string;
  assert.equal(start, `node ${flags} dist/cli/tidings.js serve`);
  const unit = readFileSync(join(root, "contrib", "tidings.service"), "utf8");
  assert.match(unit, new RegExp(`^ExecStart=/usr/bin/node ${flags} /`, "m"));
});
