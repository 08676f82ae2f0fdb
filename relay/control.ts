// The control socket: the role `ctlinnd` plays for INN. A unix socket in the
// data folder, usable only by the node's owner, takes one JSON request per
// line ({"cmd": "group.add", "args": {...}}) and answers one JSON line
// ({"ok": true, "text": "...", "data": ...} or {"ok": false, "error": "..."}).
// The CLI (cli/control-client.ts) is its client; what each command does is
// registered by the part of the node that owns it.
import net from "node:net";
import { chmodSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";

export interface ControlReply {
  text: string;
  data?: unknown;
}

export type ControlHandler = (args: Record<string, unknown>) => Promise<ControlReply> | ControlReply;

/** A request the handler refuses with a reason meant for the operator, not a fault. */
export class ControlRefusal extends Error {}

/** Longest request line: requests are small; anything longer is not ours. */
const MAX_REQUEST = 64 * 1024;

export function controlSocketPath(dataDir: string): string {
  return join(dataDir, "control.sock");
}

export class ControlServer {
  readonly #handlers = new Map<string, ControlHandler>();
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  constructor(readonly path: string, private readonly log: Logger) {
    this.#server = net.createServer((s) => this.#accept(s));
  }

  handle(cmd: string, handler: ControlHandler): void {
    this.#handlers.set(cmd, handler);
  }

  async listen(): Promise<void> {
    // a socket left by a node that was killed: the data folder's lock says no other node runs here
    rmSync(this.path, { force: true });
    // owner-only from the moment it exists, not just after a chmod
    const mask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        this.#server.once("error", reject);
        this.#server.listen(this.path, () => {
          this.#server.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(mask);
    }
    chmodSync(this.path, 0o600);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  #accept(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => {});
    let buf = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        socket.end(JSON.stringify({ ok: false, error: "request too long" }) + "\n");
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void this.#answer(line).then((reply) => {
          if (!socket.destroyed) socket.write(JSON.stringify(reply) + "\n");
        });
      }
    });
  }

  async #answer(line: string): Promise<object> {
    let req: { cmd?: unknown; args?: unknown };
    try {
      req = JSON.parse(line);
    } catch {
      return { ok: false, error: "expected one JSON object per line" };
    }
    const handler = typeof req.cmd === "string" ? this.#handlers.get(req.cmd) : undefined;
    if (!handler) return { ok: false, error: `unknown command ${JSON.stringify(req.cmd)}; known: ${[...this.#handlers.keys()].sort().join(", ")}` };
    const args = req.args && typeof req.args === "object" ? (req.args as Record<string, unknown>) : {};
    try {
      const r = await handler(args);
      this.log.info({ cmd: req.cmd, args }, r.text);
      return { ok: true, ...r };
    } catch (err) {
      if (err instanceof ControlRefusal) return { ok: false, error: err.message };
      this.log.error({ err, cmd: req.cmd }, "control command failed");
      return { ok: false, error: `${req.cmd} failed: ${(err as Error).message}` };
    }
  }
}
