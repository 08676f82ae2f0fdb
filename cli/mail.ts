// `tidings route add` and `tidings mailq`: the mail queue from the shell,
// as Postfix's postconf/postqueue do. mailq reads the node's database
// directly (SQLite lets a second process read and write beside the node);
// a running node picks up "retry" at its next sweep (mail.sweep).
import { appendValidated, currentText } from "../config/append.js";
import { loadConfig } from "../config/load.js";
import { ReadPool } from "../storage/sqlite.js";
import { dropQueued, listQueue, retryQueued, type QueueEntry } from "../storage/mail-queue.js";
import { openBeside } from "../storage/soundness.js";

export function routeAdd(file: string, domain: string, nextHop: string): string {
  if (currentText(file) && loadConfig(file).route.some((r) => r.domain.toLowerCase() === domain.toLowerCase())) {
    throw new Error(`${file} already has a route for ${domain}`);
  }
  const block = ["", "[[route]]", `domain = ${JSON.stringify(domain)}`, `next_hop = ${JSON.stringify(nextHop)}`, ""].join("\n");
  appendValidated(file, block);
  return block;
}

export async function mailqList(dataDir: string): Promise<QueueEntry[]> {
  const db = await openBeside(dataDir);
  try {
    return await listQueue(new ReadPool([db]), 100_000);
  } finally {
    await db.close();
  }
}

export function formatMailq(q: QueueEntry[], now = Date.now()): string {
  if (q.length === 0) return "mail queue is empty\n";
  const lines: string[] = [];
  for (const m of q) {
    lines.push(`${m.id}  ${m.bytes} bytes  ${new Date(m.received).toISOString()}  from <${m.sender}>  ${m.msgid}`);
    for (const r of m.rcpts) {
      const when = r.nextTry <= now ? "due now" : `next try in ${Math.ceil((r.nextTry - now) / 1000)} s`;
      lines.push(`    <${r.rcpt}> via ${r.hop}: ${r.attempts} attempts, ${when}${r.lastError ? `; last error: ${r.lastError}` : ""}`);
    }
  }
  lines.push(`-- ${q.length} messages, ${q.reduce((n, m) => n + m.rcpts.length, 0)} recipients`);
  return lines.join("\n") + "\n";
}

/** Makes one message (or all) due now; returns how many recipient rows changed. */
export async function mailqRetry(dataDir: string, id: number | "all"): Promise<number> {
  const db = await openBeside(dataDir);
  try {
    return await retryQueued(db, id);
  } finally {
    await db.close();
  }
}

/** Removes one message without delivering or bouncing it; returns whether it was there. */
export async function mailqDrop(dataDir: string, id: number): Promise<boolean> {
  const db = await openBeside(dataDir);
  try {
    return await dropQueued(db, id);
  } finally {
    await db.close();
  }
}
