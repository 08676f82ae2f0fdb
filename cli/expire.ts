// `tidings expire`: asks the node running on the data folder to expire now
// (control socket, command "expire"), so that its single writer does the
// work in batches beside ingest; with no node running, opens the database
// itself (taking the data folder's lock, as a node would) and runs the same
// code with the rules of the configuration file.
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { loadConfig } from "../config/load.js";
import { askNode, NoNodeRunning } from "./control-client.js";
import { Expiry, formatReport, type ExpireReport } from "../relay/expiry.js";
import { Storage } from "../storage/database.js";
import { lockDataDir } from "../storage/lock.js";

type OrExit = (fn: () => Promise<void>) => Promise<void>;

/** A run over a large spool takes a while; the node answers when it is done. */
const ANSWER_WITHIN_MS = 6 * 3600 * 1000;

export function expireCommand(program: Command, orExit2: OrExit): void {
  program
    .command("expire")
    .description("remove articles past their group's retention ([expire] rules) and forget old history; asks the running node, or works on the database when none runs")
    .option("-c, --config <file>", "configuration file (data folder; the rules when no node runs)", "tidings.toml")
    .option("--data <dir>", "data folder (overrides node.data_dir)")
    .option("-n, --dry-run", "say what would go, change nothing")
    .option("--json", "print the report as JSON")
    .action((opts) =>
      orExit2(async () => {
        const file = opts.config && existsSync(opts.config) ? opts.config : undefined;
        const config = loadConfig(file, { dataDir: opts.data });
        const dryRun = Boolean(opts.dryRun);
        let report: ExpireReport;
        let where: string;
        try {
          const a = await askNode(config.node.data_dir, "expire", { dryRun }, ANSWER_WITHIN_MS);
          if (!a.ok) throw new Error(a.error ?? "expire refused");
          report = a.data as ExpireReport;
          where = "by the running node, with its rules";
        } catch (err) {
          if (!(err instanceof NoNodeRunning)) throw err;
          report = await expireHere(config, dryRun);
          where = `on ${config.node.data_dir} directly (no node is running), with the rules of ${file ?? "the defaults"}`;
        }
        if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
        else process.stdout.write(`(${where})\n` + formatReport(report));
      }),
    );
}

/** Expiry without a node: the data folder's lock keeps a node from starting meanwhile (and refuses if one runs). */
async function expireHere(c: ReturnType<typeof loadConfig>, dryRun: boolean): Promise<ExpireReport> {
  if (!existsSync(join(c.node.data_dir, "tidings.sqlite"))) throw new Error(`no database in ${c.node.data_dir}: nothing to expire`);
  const lock = lockDataDir(c.node.data_dir);
  try {
    const storage = await Storage.open({
      dataDir: c.node.data_dir,
      synchronous: c.storage.synchronous,
      pathhost: c.node.pathhost || "expire",
      maxBatch: c.storage.max_batch,
      maxQueue: c.storage.max_queue,
      maxQueueBytes: c.storage.max_queue_bytes,
      spoolMinBytes: c.storage.spool_min_bytes,
      spoolSegmentBytes: c.storage.spool_segment_bytes,
    });
    try {
      return await new Expiry(storage, () => c.expire, pino({ level: "silent" })).run({ dryRun });
    } finally {
      await storage.close();
    }
  } finally {
    lock.release();
  }
}
