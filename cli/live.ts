// Commands that act on a running node through its control socket (the role
// of INN's ctlinnd): groups managed live, and handles on peers.
import type { Command } from "commander";
import { createInterface } from "node:readline/promises";
import { existsSync } from "node:fs";
import { loadConfig } from "../config/load.js";
import { removeValidated } from "../config/append.js";
import { askNode, command, NoNodeRunning } from "./control-client.js";
import type { GroupInfo, PeerInfo } from "../relay/control-commands.js";

type OrExit = (fn: () => Promise<void>) => Promise<void>;

/** The data folder from --data, or from the configuration file when it exists. */
function dataDir(opts: { config?: string; data?: string }): string {
  const file = opts.config && existsSync(opts.config) ? opts.config : undefined;
  return loadConfig(file, { dataDir: opts.data }).node.data_dir;
}

function withData(c: Command): Command {
  return c.option("-c, --config <file>", "configuration file (to find the data folder)", "tidings.toml").option("--data <dir>", "data folder");
}

const STATUS: Record<string, string> = { y: "posting allowed", n: "no local posting", m: "moderated" };

function formatGroups(list: GroupInfo[]): string {
  if (list.length === 0) return "no groups\n";
  const w = Math.max(...list.map((g) => g.name.length));
  return (
    list
      .map((g) =>
        `${g.name.padEnd(w)}  ${g.status}  ${String(g.count).padStart(7)} articles  ${g.origin === "live" ? "live  " : "config"}  ${g.description}${g.moderator ? `  (moderator ${g.moderator})` : ""}`,
      )
      .join("\n") + "\n"
  );
}

export function groupCommands(program: Command, orExit2: OrExit): void {
  const group = program.command("group").description("groups of a running node: add, remove, change, list (kept across restarts)");
  withData(
    group
      .command("add")
      .description("carry a new group now")
      .argument("<name>")
      .option("--status <y|n|m>", "y posting allowed, n no local posting, m moderated", "y")
      .option("--description <text>", "one line for LIST NEWSGROUPS", "")
      .option("--moderator <address>", "where posts to a moderated group go"),
  ).action((name, opts) =>
    orExit2(async () => {
      const a = await command(dataDir(opts), "group.add", { name, status: opts.status, description: opts.description, moderator: opts.moderator });
      process.stdout.write(a.text + "\n");
    }),
  );
  withData(group.command("rm").description("stop carrying a group: no longer listed nor posted to; its articles expire by the rules").argument("<name>")).action((name, opts) =>
    orExit2(async () => {
      process.stdout.write((await command(dataDir(opts), "group.rm", { name })).text + "\n");
    }),
  );
  withData(
    group
      .command("set")
      .description("change a group's status, description or moderator")
      .argument("<name>")
      .option("--status <y|n|m>", "y posting allowed, n no local posting, m moderated")
      .option("--description <text>", "one line for LIST NEWSGROUPS")
      .option("--moderator <address>", "where posts to a moderated group go"),
  ).action((name, opts) =>
    orExit2(async () => {
      const a = await command(dataDir(opts), "group.set", { name, status: opts.status, description: opts.description, moderator: opts.moderator });
      const g = a.data as GroupInfo;
      process.stdout.write(`${a.text}: ${g.status} (${STATUS[g.status] ?? g.status})${g.description ? `, "${g.description}"` : ""}${g.moderator ? `, moderator ${g.moderator}` : ""}\n`);
    }),
  );
  withData(group.command("list").description("the groups carried now").option("--json", "print JSON")).action((opts) =>
    orExit2(async () => {
      const list = (await command(dataDir(opts), "group.list")).data as GroupInfo[];
      process.stdout.write(opts.json ? JSON.stringify(list, null, 2) + "\n" : formatGroups(list));
    }),
  );
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export function peerHandles(peer: Command, orExit2: OrExit): void {
  withData(peer.command("list").description("every peer: configured or not, connected, backlog").option("--json", "print JSON")).action((opts) =>
    orExit2(async () => {
      let list: PeerInfo[];
      try {
        list = (await command(dataDir(opts), "peer.list")).data as PeerInfo[];
      } catch (err) {
        if (!(err instanceof NoNodeRunning)) throw err;
        // no node: what the configuration says, without live figures
        const file = opts.config && existsSync(opts.config) ? opts.config : undefined;
        list = loadConfig(file, { dataDir: opts.data }).peer.map((p) => ({ name: p.name, host: p.host ? `${p.host}:${p.port}` : "(receive only)", configured: true, connected: false, backlog: -1, backlogBytes: -1 }));
        process.stdout.write("(no node is running: the configured peers, without figures)\n");
      }
      if (opts.json) process.stdout.write(JSON.stringify(list, null, 2) + "\n");
      else if (list.length === 0) process.stdout.write("no peers\n");
      else
        for (const p of list)
          process.stdout.write(`${p.name}  ${p.host}  ${p.connected ? "connected" : "not connected"}${p.backlog >= 0 ? `  backlog ${p.backlog} articles, ${p.backlogBytes} bytes` : ""}\n`);
    }),
  );
  withData(peer.command("kick").description("make the feed to a peer reconnect and send now (INN's ctlinnd flush)").argument("<name>")).action((name, opts) =>
    orExit2(async () => {
      process.stdout.write((await command(dataDir(opts), "peer.kick", { name })).text + "\n");
    }),
  );
  withData(
    peer
      .command("rm")
      .description("remove a peer from the configuration (and from the running node), then drop its backlog after asking")
      .argument("<name>")
      .option("-y, --yes", "drop the backlog without asking")
      .option("--keep-backlog", "keep the backlog (it shows in status; tidings peer rm again drops it)"),
  ).action((name, opts) =>
    orExit2(async () => {
      const removed = existsSync(opts.config) ? removeValidated(opts.config, "peer", name) : undefined;
      if (removed) process.stdout.write(`removed from ${opts.config}:\n${removed}\n`);
      const dir = dataDir(opts);
      let running = true;
      try {
        if (removed) process.stdout.write((await command(dir, "reload")).text + "\n");
      } catch (err) {
        if (!(err instanceof NoNodeRunning)) throw err;
        running = false;
      }
      if (!running) {
        if (!removed) throw new Error(`no peer named ${name} in ${opts.config}`);
        process.stdout.write("no node is running; its backlog is dropped when you run tidings peer rm again with the node up\n");
        return;
      }
      const list = ((await command(dir, "peer.list")).data as PeerInfo[]).filter((p) => p.name === name);
      const backlog = list[0]?.backlog ?? 0;
      if (!removed && list.length === 0) throw new Error(`no peer named ${name} in ${opts.config}, and no backlog kept for one`);
      if (backlog === 0 || opts.keepBacklog) {
        process.stdout.write(backlog === 0 ? "no backlog to drop\n" : `backlog of ${backlog} articles kept\n`);
        return;
      }
      const drop = opts.yes || (process.stdin.isTTY && (await confirm(`drop its backlog of ${backlog} articles (${list[0].backlogBytes} bytes)? [y/N] `)));
      if (!drop) {
        process.stdout.write(`backlog of ${backlog} articles kept${process.stdin.isTTY ? "" : " (not a terminal: give --yes to drop it)"}\n`);
        return;
      }
      const a = await askNode(dir, "peer.drop-backlog", { name });
      if (!a.ok) throw new Error(a.error);
      process.stdout.write(a.text + "\n");
    }),
  );
}
