// One node per data folder: a lock file, data/tidings.lock, that holds the
// pid of the node using the folder. Two nodes writing one database each keep
// their own group numbers and Bloom filter in memory and disagree with what
// the other wrote (wrong counts, 441 Internal error), so the second refuses.
//
// The file is made whole under a private name and then linked into place, so
// a reader never sees it half written, and link() fails if the name exists:
// of two nodes starting at once, one wins. A lock whose process is gone (a
// SIGKILL, a power cut) is stale and taken over; a pid can be reused after a
// reboot (in a container, the node is often pid 1 each time), so the lock
// also records the process's start time where Linux tells it (/proc), and a
// live process with the same pid but another start time is not the holder.
import { linkSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, unlinkSync, writeFileSync, closeSync, writeSync } from "node:fs";
import { join } from "node:path";

export const LOCK_FILE = "tidings.lock";

/** The node cannot start on this data folder; the message is one line for the operator. */
export class StartRefused extends Error {}

interface Holder {
  pid: number;
  /** Linux: start time of the process, in clock ticks after boot (/proc/PID/stat field 22). */
  start?: string;
}

/** Folders locked by this process: a pid in the file equal to ours means a second Node here, or a stale lock from an earlier process with our pid. */
const heldHere = new Set<string>();

export interface DataLock {
  readonly file: string;
  release(): void;
}

/**
 * Takes the data folder's lock (creating the folder if missing), or throws
 * StartRefused naming the folder and the pid of the node that holds it.
 */
export function lockDataDir(dir: string): DataLock {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new StartRefused(`cannot create the data folder ${dir}: ${reason(err)}`);
  }
  const real = realpathSync(dir);
  const file = join(dir, LOCK_FILE);
  if (heldHere.has(real)) throw new StartRefused(`data folder ${dir} is in use by the node with pid ${process.pid} (this process; ${file})`);
  const me: Holder = { pid: process.pid, start: startTime(process.pid) };
  const content = format(me);
  const tmp = `${file}.${process.pid}.new`;
  try {
    writeFileSync(tmp, content);
  } catch (err) {
    throw new StartRefused(`cannot write the lock file in the data folder ${dir}: ${reason(err)}`);
  }
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (place(tmp, file, content)) {
        heldHere.add(real);
        return {
          file,
          release() {
            heldHere.delete(real);
            try {
              if (readFileSync(file, "utf8") === content) unlinkSync(file);
            } catch {
              // gone already: nothing to release
            }
          },
        };
      }
      const text = readText(file);
      if (text === undefined) continue; // removed meanwhile: try again
      const holder = parse(text);
      if (holder && alive(holder)) throw new StartRefused(`data folder ${dir} is in use by the node with pid ${holder.pid} (${file}); stop that node first`);
      removeStale(file, text);
    }
    throw new StartRefused(`cannot take the lock ${file}: other processes keep taking and leaving it`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}

/** The pid of the node running on a data folder, or undefined when none is. */
export function runningPid(dir: string): number | undefined {
  const text = readText(join(dir, LOCK_FILE));
  const holder = text === undefined ? undefined : parse(text);
  if (!holder) return undefined;
  if (holder.pid === process.pid) return heldHere.has(safeRealpath(dir)) ? holder.pid : undefined;
  return alive(holder) ? holder.pid : undefined;
}

/** Links the finished lock into place; false if a lock is there already. */
function place(tmp: string, file: string, content: string): boolean {
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS") throw new StartRefused(`cannot create the lock file ${file}: ${reason(err)}`);
  }
  // a file system without hard links: an exclusive create, then the content
  let fd: number;
  try {
    fd = openSync(file, "wx");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw new StartRefused(`cannot create the lock file ${file}: ${reason(err)}`);
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Removes a stale lock, but only the one judged stale: it is renamed away
 * first, and if another node took the name meanwhile, its lock is put back.
 */
function removeStale(file: string, judged: string): void {
  const aside = `${file}.${process.pid}.stale`;
  try {
    renameSync(file, aside);
  } catch {
    return; // gone already
  }
  try {
    if (readText(aside) !== judged) {
      try {
        linkSync(aside, file);
      } catch {
        // someone else holds the name now; that node's lock stands
      }
    }
  } finally {
    try {
      unlinkSync(aside);
    } catch {
      // already gone
    }
  }
}

function format(h: Holder): string {
  return `${h.pid}\n${h.start ? `start ${h.start}\n` : ""}`;
}

function parse(text: string): Holder | undefined {
  const m = /^(\d+)\n(?:start (\d+)\n)?/.exec(text);
  if (!m) return undefined; // not a lock we wrote: stale
  return { pid: Number(m[1]), start: m[2] };
}

function alive(h: Holder): boolean {
  if (h.pid === process.pid || h.pid <= 0) return false; // an earlier process that had our pid
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false; // ESRCH: no such process
  }
  const now = statFields(h.pid);
  if (!now) return true; // not Linux, or /proc hidden: the pid is all we know
  if (now[0] === "Z") return false; // killed, not yet reaped
  return h.start === undefined || now[19] === h.start;
}

/** The fields of /proc/PID/stat after the command name (state first), or undefined. */
function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

function startTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function safeRealpath(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const plain: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "the file system is read-only",
    ENOSPC: "no space left on the device",
    ENOTDIR: "a part of the path is not a folder",
    EEXIST: "a file of that name exists",
  };
  return (e.code && plain[e.code]) ?? e.message ?? String(err);
}
