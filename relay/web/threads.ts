// Threads from overview rows: References first (RFC 5322 §3.6.4, RFC 5536
// §3.2.10), the Subject where References are missing ("Re: x" joins the
// thread whose root is "x"), as newsreaders do.
import type { OverviewRow } from "../../storage/articles.js";
import { headerDisplay } from "../../protocol/article/encoded-words.js";

export function refsOf(refs: string): string[] {
  return refs.match(/<[^<>\s]+>/g) ?? [];
}

/** The subject a thread is known by: "Re:", "Fwd:" and the like, and white space, taken off. */
export function baseSubject(subject: string): string {
  let s = headerDisplay(subject).trim();
  for (;;) {
    const t = s.replace(/^((re|aw|sv|fwd?)(\[\d+\])?:\s*)/i, "").trim();
    if (t === s) return s.toLowerCase();
    s = t;
  }
}

export interface Thread {
  /** Message-ID of the thread's first article (it may be gone or elsewhere). */
  root: string;
  subject: string;
  rows: OverviewRow[];
  /** The newest article's number in the group. */
  last: number;
  lastArrived: number;
}

/** Groups rows (any order) into threads, newest activity first. */
export function threadsOf(rows: OverviewRow[]): Thread[] {
  const sorted = [...rows].sort((a, b) => a.number - b.number);
  const bySubject = new Map<string, string>(); // base subject -> root of the first thread with it
  const threads = new Map<string, Thread>();
  const rootOf = new Map<string, string>(); // msgid -> root
  for (const r of sorted) {
    const refs = refsOf(r.refs);
    let root: string;
    if (refs.length > 0) root = rootOf.get(refs[0]) ?? refs[0];
    else root = bySubject.get(baseSubject(r.subject)) ?? r.msgid;
    rootOf.set(r.msgid, root);
    const base = baseSubject(r.subject);
    if (!bySubject.has(base)) bySubject.set(base, root);
    let t = threads.get(root);
    if (!t) {
      t = { root, subject: headerDisplay(r.subject), rows: [], last: r.number, lastArrived: r.arrived };
      threads.set(root, t);
    }
    t.rows.push(r);
    if (r.msgid === root) t.subject = headerDisplay(r.subject);
    t.last = Math.max(t.last, r.number);
    t.lastArrived = Math.max(t.lastArrived, r.arrived);
  }
  return [...threads.values()].sort((a, b) => b.last - a.last);
}

export interface TreeNode {
  row: OverviewRow;
  depth: number;
}

/**
 * A thread's rows as a tree in reading order: each reply under the nearest
 * article it references that is in the thread, siblings by number.
 */
export function tree(rows: OverviewRow[]): TreeNode[] {
  const sorted = [...rows].sort((a, b) => a.number - b.number);
  const present = new Set(sorted.map((r) => r.msgid));
  const children = new Map<string, OverviewRow[]>();
  const tops: OverviewRow[] = [];
  for (const r of sorted) {
    const parent = refsOf(r.refs).reverse().find((m) => present.has(m) && m !== r.msgid);
    if (parent) {
      const list = children.get(parent) ?? [];
      list.push(r);
      children.set(parent, list);
    } else tops.push(r);
  }
  const out: TreeNode[] = [];
  const walk = (r: OverviewRow, depth: number) => {
    out.push({ row: r, depth });
    for (const c of children.get(r.msgid) ?? []) walk(c, depth + 1);
  };
  for (const t of tops) walk(t, 0);
  return out;
}
