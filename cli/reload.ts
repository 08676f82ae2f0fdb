// `tidings reload`: signals the node running on a data folder and reports
// what its reload did, read back from the status file it writes at once.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { NodeStatus } from "../relay/status.js";

async function readStatus(dataDir: string): Promise<NodeStatus | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, "status.json"), "utf8")) as NodeStatus;
  } catch {
    return undefined;
  }
}

export async function reloadNode(dataDir: string, waitMs = 15_000): Promise<{ ok: boolean; text: string }> {
  const before = await readStatus(dataDir);
  if (!before) throw new Error(`no node has run with the data folder ${dataDir} (no status.json)`);
  const pid = before.pid;
  try {
    process.kill(pid, 0);
  } catch {
    throw new Error(`the node of ${dataDir} (pid ${pid}) is not running`);
  }
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
