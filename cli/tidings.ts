#!/usr/bin/env -S node --max-semi-space-size=32 --no-memory-reducer
// The tidings command line.
import { Command } from "commander";
import { loadConfig, ConfigError } from "../config/load.js";
import { KEY_DOCS } from "../config/schema.js";
import { Node, VERSION } from "../relay/node.js";
import { StartRefused } from "../storage/lock.js";
import { formatStatus, type NodeStatus } from "../relay/status.js";
import { readFileSync } from "node:fs";
import { peerAdd, peerCheck } from "./peer.js";
import { demo } from "./demo.js";
import { reloadNode } from "./reload.js";
import { ControlRefusal } from "../relay/control.js";
import { groupCommands, peerHandles } from "./live.js";
import { expireCommand } from "./expire.js";
import { heldCommand } from "./held.js";
import { makeLogger } from "./logger.js";
import { formatMailq, mailqDrop, mailqList, mailqRetry, routeAdd } from "./mail.js";
import { formatUsers, readNewPassword, userAdd, userList, userRemove } from "./user.js";
import { join } from "node:path";
import { describeWritten, writeSelfSigned } from "./cert.js";

// SQLite work runs on libuv's pool; two connections need two threads, and
// each idle thread keeps its own malloc arena (tens of MB of RSS).
process.env.UV_THREADPOOL_SIZE ??= "2";

const program = new Command();
program.name("tidings").description("A store-and-forward news and mail relay").version(VERSION);


/** Runs a command; a failure is one line on standard error and exit status 2. */
async function orExit2(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    process.stderr.write(oneLine(err));
    process.exit(2);
  }
}

/** A failure as the operator reads it: a configuration error as its `file:line: key: ...` lines, anything else one line. */
function oneLine(err: unknown): string {
  if (err instanceof ConfigError) return `${err.message}\n`;
  return `tidings: ${err instanceof Error ? err.message : String(err)}\n`;
}

program
  .command("serve")
  .description("run a node (with no configuration file: loopback, ./data, a few groups)")
  .option("-c, --config <file>", "configuration file (TOML)")
  .option("--data <dir>", "data folder (overrides node.data_dir)")
  .option("--nntp <host:port>", "NNTP listener (overrides nntp.listen)")
  .option("--smtp <host:port|off>", "SMTP listener, or off (overrides smtp.listen)")
  .option("--http <host:port|off>", "HTTP listener for /metrics, or off (overrides http.listen)")
  .option("--nntps <host:port|off>", "implicit-TLS NNTP listener, or off (overrides nntp.tls_listen; needs [tls] cert and key)")
  .option("--pathhost <name>", "path identity (overrides node.pathhost)")
  .option("--log-level <level>", "log level (overrides log.level)")
  .action(async (opts) => {
    let config;
    try {
      config = loadConfig(opts.config, { dataDir: opts.data, nntpListen: opts.nntp, smtpListen: opts.smtp, httpListen: opts.http, nntpsListen: opts.nntps, pathhost: opts.pathhost, logLevel: opts.logLevel });
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`tidings: configuration error\n${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const log = makeLogger(config.log.level, config.node.pathhost);
    const node = new Node(config, log);
    try {
      await node.start();
    } catch (err) {
      // a refusal (data folder in use, a database not sound) is one line for the operator; anything else is logged whole
      if (!(err instanceof StartRefused)) log.fatal({ err }, "cannot start");
      process.stderr.write(`tidings: cannot start: ${(err as Error).message}\n`);
      process.exit(1);
    }
    // one plain line on stdout that scripts and tests read the port from
    const smtp = node.smtpAddress ? `${node.smtpAddress.host}:${node.smtpAddress.port}` : "off";
    const http = node.httpAddress ? `${node.httpAddress.host}:${node.httpAddress.port}` : "off";
    const nntps = node.nntpsAddress ? ` nntps=${node.nntpsAddress.host}:${node.nntpsAddress.port}` : "";
    let stopping = false;
    const stop = async (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ sig }, "stopping");
      await node.stop();
      process.exit(0);
    };
    process.on("SIGINT", () => void stop("SIGINT"));
    process.on("SIGTERM", () => void stop("SIGTERM"));
    // SIGHUP and the control socket's "reload" re-read the configuration (relay/reload.ts), one reload at a time
    let reloading = Promise.resolve();
    const reload = () =>
      (reloading = reloading.then(() =>
        node.reloadFrom(() => loadConfig(opts.config, { dataDir: opts.data, nntpListen: opts.nntp, smtpListen: opts.smtp, httpListen: opts.http, nntpsListen: opts.nntps, pathhost: opts.pathhost, logLevel: opts.logLevel })),
      ));
    process.on("SIGHUP", () => {
      if (stopping) return;
      log.info("SIGHUP: reading the configuration again");
      void reload();
    });
    node.control?.handle("reload", async () => {
      await reload();
      const r = node.lastReload!;
      if (!r.ok) throw new ControlRefusal(`reload refused; the node keeps its running configuration:\n${r.error}`);
      return { text: `reloaded; ${r.changed.length ? `changed now: ${r.changed.join(", ")}` : "nothing changed"}`, data: r };
    });
    // written last: a SIGTERM sent the moment this line is read must find its handler (before it, it killed the node with no cleanup)
    process.stdout.write(`tidings ready nntp=${node.nntpAddress!.host}:${node.nntpAddress!.port} smtp=${smtp} http=${http}${nntps} pathhost=${node.config.node.pathhost}\n`);
  });

program
  .command("status")
  .description("per-peer figures of a node: connected, backlog, offered, accepted, refused, errors")
  .option("-c, --config <file>", "configuration file (to find the data folder)")
  .option("--data <dir>", "data folder")
  .option("--json", "print the raw figures")
  .action(async (opts) => {
    const config = loadConfig(opts.config, { dataDir: opts.data });
    const file = join(config.node.data_dir, "status.json");
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      process.stderr.write(`tidings: no status in ${file}: has a node run with this data folder?\n`);
      process.exit(1);
    }
    const s = JSON.parse(text) as NodeStatus;
    let alive = true;
    try {
      process.kill(s.pid, 0);
    } catch {
      alive = false;
    }
    if (opts.json) process.stdout.write(text + "\n");
    else process.stdout.write((alive ? "" : "(the node is not running; these are its last figures)\n") + formatStatus(s));
  });

program
  .command("reload")
  .description("make a running node read its configuration again (SIGHUP) and say what changed")
  .option("-c, --config <file>", "configuration file (to find the data folder)")
  .option("--data <dir>", "data folder")
  .action((opts) =>
    orExit2(async () => {
      const result = await reloadNode(loadConfig(opts.config, { dataDir: opts.data }).node.data_dir);
      process.stdout.write(result.text + "\n");
      process.exit(result.ok ? 0 : 1);
    }),
  );

groupCommands(program, orExit2);
expireCommand(program, orExit2);
heldCommand(program, orExit2);

const peer = program.command("peer").description("set up and check peerings");
peer
  .command("add")
  .description("write a [[peer]] entry: what we send it, and that it may feed us")
  .argument("<name>")
  .argument("<host:port>")
  .option("-c, --config <file>", "configuration file to add to (created if missing)", "tidings.toml")
  .option("--groups <patterns>", "wildmat list of groups it gets")
  .option("--path-identity <name...>", "how the peer names itself in Path (default: its name)")
  .option("--accept-from <address...>", "addresses it feeds us from (default: what HOST resolves to)")
  .option("--ihave", "use IHAVE instead of streaming")
  .action((name, hostPort, opts) =>
    orExit2(async () => {
      const block = await peerAdd(opts.config, name, hostPort, opts);
      process.stdout.write(`added to ${opts.config}:${block}\nrestart the node, then: tidings peer check ${name} --config ${opts.config}\n`);
    }),
  );
peer
  .command("check")
  .description("connect to a peer and say in plain words what works and what does not")
  .argument("<name>")
  .option("-c, --config <file>", "configuration file", "tidings.toml")
  .action((name, opts) =>
    orExit2(async () => {
      const { report, ok } = await peerCheck(loadConfig(opts.config), name);
      process.stdout.write(report.join("\n") + "\n");
      process.exit(ok ? 0 : 1);
    }),
  );

peerHandles(peer, orExit2);

const route = program.command("route").description("mail routes: which next hop takes mail for a domain");
route
  .command("add")
  .description("write a [[route]] entry: mail for DOMAIN goes to HOST:PORT (or mx: look it up in DNS)")
  .argument("<domain>", "example.org, *.example.org (its subdomains) or * (every other domain, for trusted senders)")
  .argument("<next-hop>", "HOST:PORT or mx")
  .option("-c, --config <file>", "configuration file to add to (created if missing)", "tidings.toml")
  .action((domain, nextHop, opts) =>
    orExit2(async () => {
      const block = routeAdd(opts.config, domain, nextHop);
      process.stdout.write(`added to ${opts.config}:${block}\nrestart the node to use it\n`);
    }),
  );

const mailq = program
  .command("mailq")
  .description("list the mail queue: each message, its recipients, attempts and last error")
  .option("-c, --config <file>", "configuration file (to find the data folder)")
  .option("--data <dir>", "data folder")
  .option("--json", "print the queue as JSON")
  .action((opts) =>
    orExit2(async () => {
      const q = await mailqList(loadConfig(opts.config, { dataDir: opts.data }).node.data_dir);
      process.stdout.write(opts.json ? JSON.stringify(q, null, 2) + "\n" : formatMailq(q));
    }),
  );
mailq
  .command("retry")
  .description("make a queued message (or all) due now; a running node sends it at its next sweep (mail.sweep)")
  .argument("<id>", "message id from tidings mailq, or all")
  .option("-c, --config <file>", "configuration file (to find the data folder)")
  .option("--data <dir>", "data folder")
  .action((id, opts) =>
    orExit2(async () => {
      if (id !== "all" && !/^\d+$/.test(id)) throw new Error(`expected a message id or all, got ${id}`);
      const o = { ...mailq.opts(), ...opts }; // --data may be read as mailq's own option
      const n = await mailqRetry(loadConfig(o.config, { dataDir: o.data }).node.data_dir, id === "all" ? "all" : Number(id));
      process.stdout.write(`${n} recipients due now\n`);
    }),
  );
mailq
  .command("drop")
  .description("remove a queued message without delivering or bouncing it")
  .argument("<id>", "message id from tidings mailq")
  .option("-c, --config <file>", "configuration file (to find the data folder)")
  .option("--data <dir>", "data folder")
  .action((id, opts) =>
    orExit2(async () => {
      if (!/^\d+$/.test(id)) throw new Error(`expected a message id, got ${id}`);
      const o = { ...mailq.opts(), ...opts };
      if (!(await mailqDrop(loadConfig(o.config, { dataDir: o.data }).node.data_dir, Number(id)))) throw new Error(`no message ${id} in the queue`);
      process.stdout.write(`message ${id} dropped\n`);
    }),
  );

// users who may log in (AUTHINFO, SMTP AUTH); a running node sees a change at the next login
const user = program.command("user").description("users who may log in (NNTP AUTHINFO, SMTP AUTH), kept as scrypt hashes");
user
  .command("add")
  .description("add a user; asks for the password (not echoed), or reads it from standard input")
  .argument("<name>")
  .option("-c, --config <file>", "configuration file (to find the data folder)")
  .option("--data <dir>", "data folder")
  .option("--password-stdin", "read the password from the first line of standard input (for scripts)")
  .option("--replace", "set a new password for a user that exists")
  .action((name, opts) =>
    orExit2(async () => {
      const dataDir = loadConfig(opts.config, { dataDir: opts.data }).node.data_dir;
      const password = await readNewPassword(!!opts.passwordStdin);
      const done = await userAdd(dataDir, name, password, !!opts.replace);
      process.stdout.write(done === "added" ? `user ${name} added\n` : `password of ${name} changed\n`);
    }),
  );
user
  .command("rm")
  .description("remove a user; sessions logged in already keep their login until they close")
  .argument("<name>")
  .option("-c, --config <file>", "configuration file (to find the data folder)")
  .option("--data <dir>", "data folder")
  .action((name, opts) =>
    orExit2(async () => {
      if (!(await userRemove(loadConfig(opts.config, { dataDir: opts.data }).node.data_dir, name))) throw new Error(`no user ${name}`);
      process.stdout.write(`user ${name} removed\n`);
    }),
  );
user
  .command("list")
  .description("list the users")
  .option("-c, --config <file>", "configuration file (to find the data folder)")
  .option("--data <dir>", "data folder")
  .action((opts) =>
    orExit2(async () => {
      process.stdout.write(formatUsers(await userList(loadConfig(opts.config, { dataDir: opts.data }).node.data_dir)));
    }),
  );

program
  .command("cert")
  .description("write a TLS certificate and key for testing: DIR/cert.pem and DIR/key.pem (mode 0600)")
  .argument("<dir>", "folder to write them in (created if missing)")
  .requiredOption("--self-signed", "a self-signed certificate (the only kind made here; for the open internet use one from a CA)")
  .option("--days <n>", "days it is valid", "365")
  .option("--name <name...>", "more DNS names or addresses besides localhost, 127.0.0.1, ::1 and the host name")
  .option("--force", "replace cert.pem and key.pem if they are there")
  .action((dir, opts) =>
    orExit2(async () => {
      const days = Number(opts.days);
      if (!Number.isInteger(days) || days < 1) throw new Error(`expected --days to be a whole number of days, got ${opts.days}`);
      process.stdout.write(describeWritten(await writeSelfSigned(dir, { days, names: opts.name, force: opts.force })));
    }),
  );

program
  .command("demo")
  .description("start five peered nodes on loopback, post on one, and show the flood")
  .action(async () => {
    await demo();
    process.exit(0);
  });

program
  .command("config-doc")
  .description("print every configuration key with its default, as a Markdown table")
  .action(() => {
    process.stdout.write("| key | default | meaning |\n|---|---|---|\n");
    for (const k of KEY_DOCS) process.stdout.write(`| \`${k.key}\` | \`${k.default.replace(/\|/g, "\\|")}\` | ${k.doc} |\n`);
  });

program
  .command("check-config")
  .description("validate a configuration file and exit")
  .argument("<file>")
  .action((file) => {
    try {
      loadConfig(file);
      process.stdout.write(`${file}: ok\n`);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(2);
    }
  });

// every subcommand, not only those wrapped in orExit2: an error is its line(s) and status 2, never a stack trace
await program.parseAsync().catch((err) => {
  process.stderr.write(oneLine(err));
  process.exit(2);
});
