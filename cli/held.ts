// `tidings held`: posts to moderated groups kept for the moderator because no
// mail could take them there (relay/moderation.ts). The moderator lists them,
// prints one (to approve it: post it again with an Approved header), and
// removes it. Reads the node's database directly, as `tidings mailq` does.
import type { Command } from "commander";
import { existsSync, writeSync } from "node:fs";
import { loadConfig } from "../config/load.js";
import { Db, ReadPool } from "../storage/sqlite.js";
import { dropHeld, heldPost, listHeld } from "../storage/held.js";
import { openBeside } from "../storage/soundness.js";

type OrExit = (fn: () => Promise<void>) => Promise<void>;

async function withDb<T>(opts: { config?: string; data?: string }, f: (db: Db) => Promise<T>): Promise<T> {
  const dataDir = loadConfig(opts.config && existsSync(opts.config) ? opts.config : undefined, { dataDir: opts.data }).node.data_dir;
  const db = await openBeside(dataDir);
  try {
    return await f(db);
  } finally {
    await db.close();
  }
}

export function heldCommand(program: Command, orExit2: OrExit): void {
  const held = program.command("held").description("posts to moderated groups kept for the moderator (no moderator address, or no mail route to it)");
  const common = (c: Command) => c.option("-c, --config <file>", "configuration file (to find the data folder)", "tidings.toml").option("--data <dir>", "data folder");
  common(held.command("list").description("list the posts held: id, group, Message-ID, when, why").argument("[group]", "only this group")).action((group, opts) =>
    orExit2(async () => {
      const rows = await withDb(opts, (db) => listHeld(new ReadPool([db]), group));
      const lines = rows.map((r) => `${r.id}  ${r.newsgroup}  ${r.msgid}  ${new Date(r.received).toISOString()}  ${r.bytes} bytes  (${r.reason})`);
      process.stdout.write(lines.length ? lines.join("\n") + `\n-- ${rows.length} held\n` : "nothing held\n");
    }),
  );
  common(held.command("show").description("print a held post as it was posted").argument("<id>", "id from tidings held list")).action((id, opts) =>
    orExit2(async () => {
      const data = await withDb(opts, (db) => heldPost(new ReadPool([db]), Number(id)));
      if (!data) throw new Error(`no held post ${id}`);
      writeSync(1, data);
    }),
  );
  common(held.command("rm").description("remove a held post (approved and posted, or rejected)").argument("<id>", "id from tidings held list")).action((id, opts) =>
    orExit2(async () => {
      if (!(await withDb(opts, (db) => dropHeld(db, Number(id))))) throw new Error(`no held post ${id}`);
      process.stdout.write(`held post ${id} removed\n`);
    }),
  );
}
