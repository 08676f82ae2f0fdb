// Asks the node running on a data folder through its control socket
// (relay/control.ts): one JSON request line, one JSON reply line.
import net from "node:net";
import { existsSync } from "node:fs";
import { controlSocketPath } from "../relay/control.js";

export class NoNodeRunning extends Error {}

export interface ControlAnswer {
  ok: boolean;
  text?: string;
  error?: string;
  data?: unknown;
}

export async function askNode(dataDir: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<ControlAnswer> {
  const path = controlSocketPath(dataDir);
  if (!existsSync(path)) throw new NoNodeRunning(`no node is running on the data folder ${dataDir} (no ${path})`);
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let buf = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the node on ${dataDir} did not answer ${cmd} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(JSON.stringify({ cmd, args }) + "\n"));
    socket.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as ControlAnswer);
      } catch {
        reject(new Error(`the node answered something that is not JSON: ${buf.slice(0, 200)}`));
      }
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") reject(new NoNodeRunning(`no node is running on the data folder ${dataDir} (${path} does not answer)`));
      else reject(err);
    });
    // the node went away before it answered (it was stopped meanwhile): say so rather than wait out the timeout
    socket.on("close", () => {
      clearTimeout(timer);
      reject(new Error(`the node on ${dataDir} closed the control connection before it answered ${cmd} (was it stopped?)`));
    });
  });
}

/** Asks, and turns a refusal into an error whose message is the node's reason. */
export async function command(dataDir: string, cmd: string, args: Record<string, unknown> = {}): Promise<ControlAnswer> {
  const a = await askNode(dataDir, cmd, args);
  if (!a.ok) throw new Error(a.error ?? `${cmd} refused`);
  return a;
}
