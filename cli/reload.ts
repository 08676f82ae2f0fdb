// `tidings reload`: signals the node that holds a data folder's lock and
// reports what its reload did, read back from the status file it writes at once.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { NodeStatus } from "../relay/status.js";
import { runningPid } from "../storage/lock.js";

async function readStatus(dataDir: string): Promise<NodeStatus | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, "status.json"), "utf8")) as NodeStatus;
  } catch {
    return undefined;
  }
}

export async function reloadNode(dataDir: string, waitMs = 15_000): Promise<{ ok: boolean; text: string }> {
  // the data folder's lock names the running node (and knows a pid reused by another process); status.json may be old
  const pid = runningPid(dataDir);
  if (pid === undefined) throw new Error(`no node is running on the data folder ${dataDir}`);
  const sent = Date.now();
  process.kill(pid, "SIGHUP");
  const deadline = sent + waitMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const s = await readStatus(dataDir);
    const r = s?.reload;
    if (!r || r.at < sent) continue;
    if (!r.ok) return { ok: false, text: `reload refused; the node keeps its running configuration:\n${r.error}` };
    const changed = r.changed.length ? `changed now: ${r.changed.join(", ")}` : "nothing changed";
    const restart = r.restart.length ? `\nchanged, but only at the next restart: ${r.restart.join(", ")}` : "";
    return { ok: true, text: `reloaded (pid ${pid}); ${changed}${restart}` };
  }
  return { ok: false, text: `sent SIGHUP to pid ${pid}, but it reported no reload within ${waitMs / 1000} s: see its log` };
}
