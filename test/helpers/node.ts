// Starts real tidings nodes as child processes on port 0 and talks to them.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../../cli/node-flags.js";

const here = dirname(fileURLToPath(import.meta.url));
export const CLI = join(here, "..", "..", "cli", "tidings.js");

export interface StartOptions {
  /** TOML text written to a config file in the data folder. */
  config?: string;
  dataDir?: string;
  pathhost?: string;
  args?: string[];
  env?: Record<string, string>;
  /** Options for node itself, such as --cpu-prof. */
  nodeArgs?: string[];
}

export class TestNode {
  stderr = "";
  /** The SMTP listener's port, or 0 when it is off. */
  smtpPort = 0;
  /** The HTTP listener's port (/metrics), or 0 when it is off. */
  httpPort = 0;
  /** The implicit-TLS (nntps) listener's port, or 0 when it is off. */
  nntpsPort = 0;
  /** The node's path identity, as its ready line names it (configured, or made by the node). */
  pathhost = "";
  constructor(readonly proc: ChildProcess, readonly port: number, readonly dataDir: string, readonly ownsDir: boolean) {}

  get pid(): number {
    return this.proc.pid!;
  }

  /** SIGKILL: no chance to flush anything. */
  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGKILL");
    await exited;
  }

  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      const t = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    if (this.ownsDir && !opts.keepData) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export function tempDir(prefix = "tidings-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startNode(opts: StartOptions = {}): Promise<TestNode> {
  const ownsDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? tempDir();
  const args = [...NODE_FLAGS, ...(opts.nodeArgs ?? []), CLI, "serve", "--data", dataDir, "--nntp", "127.0.0.1:0", "--log-level", process.env.TIDINGS_TEST_LOG ?? "warn"];
  if (!opts.args?.includes("--smtp")) args.push("--smtp", "127.0.0.1:0");
  // many nodes at once: never the fixed default port 8119
  if (!opts.args?.includes("--http")) args.push("--http", "127.0.0.1:0");
  if (opts.pathhost) args.push("--pathhost", opts.pathhost);
  if (opts.config !== undefined) {
    const file = join(dataDir, "tidings.toml");
    writeFileSync(file, opts.config);
    args.push("--config", file);
  }
  args.push(...(opts.args ?? []));
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  let stderr = "";
  proc.stderr!.on("data", (d) => (stderr += d));
  let smtpPort = 0;
  let httpPort = 0;
  let nntpsPort = 0;
  let pathhost = "";
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`node did not start in 20 s: ${stderr}`)), 20_000);
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /nntp=[^:\s]+:(\d+)[^\n]*\n/.exec(out); // the whole ready line
      if (m) {
        pathhost = /pathhost=(\S+)/.exec(out)?.[1] ?? "";
        smtpPort = Number(/smtp=[^\s]+:(\d+)/.exec(out)?.[1] ?? 0);
        httpPort = Number(/http=[^\s]+:(\d+)/.exec(out)?.[1] ?? 0);
        nntpsPort = Number(/nntps=[^\s]+:(\d+)/.exec(out)?.[1] ?? 0);
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before ready: ${stderr}`));
    });
  });
  const node = new TestNode(proc, port, dataDir, ownsDir);
  node.smtpPort = smtpPort;
  node.httpPort = httpPort;
  node.nntpsPort = nntpsPort;
  node.pathhost = pathhost;
  node.stderr = stderr; // what it logged before its ready line, too
  proc.stderr!.on("data", (d) => (node.stderr += d));
  return node;
}

/** What an operator sees of `tidings serve`: whether it got ready, its exit status, its standard error. */
export interface ServeAttempt {
  ready: boolean;
  code: number | null;
  stderr: string;
}

/** Runs `tidings serve ARGS` until it is ready (then it is killed) or exits by itself. */
export async function tryServe(args: string[]): Promise<ServeAttempt> {
  const proc = spawn(process.execPath, [CLI, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  proc.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 30_000);
    proc.stdout!.on("data", (d) => {
      stdout += d;
      if (/tidings ready/.test(stdout)) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (proc.exitCode === null) proc.kill("SIGKILL");
  return { ready, code: await exited, stderr };
}
