// Large articles' bytes live in append-only spool files beside the database,
// not in its rows. SQLite's WAL writes every byte twice (into the WAL at
// COMMIT, into the database at the checkpoint), as two write calls a page;
// at 10 KB an article that was most of the commit thread's time and the
// bound on ingest (bench/RESULTS-2026-11-26c.md). Here the bytes are written
// once, in one call per batch, and synced before the batch's COMMIT, so a
// row that points at them is never durable before they are. The row keeps
// the header section (cancels, HDR and XPAT read it in SQL) and where the
// whole article lies: segment and offset; its length is the row's `bytes`.
// This is INN's CNFS idea without the cycle: a segment file is deleted once
// no row points into it (expiry, storage/expire.ts).
//
// Bytes written for a batch that then failed, or whose COMMIT a crash
// prevented, are never pointed at: garbage until their segment goes. A node
// starts every run on a new segment, so nothing written before a crash is
// ever written over.
import { close, closeSync, constants, fdatasync, fsyncSync, mkdirSync, openSync, read, readdirSync, readSync, statSync, unlinkSync, writev } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";

/** Articles of at least this many bytes go to the spool by default (storage.spool_min_bytes); smaller ones stay in their row (within a page, read with it). */
export const SPOOL_MIN_BYTES = 4096;

/** A segment is closed once it holds this much by default (storage.spool_segment_bytes); space comes back a whole segment at a time. */
export const SEGMENT_BYTES = 64 * 1024 * 1024;

/** Bytes for one place in a segment; consecutive writes of a batch are joined into one. */
export interface SpoolWrite {
  seg: number;
  at: number;
  bytes: Uint8Array;
  /** The bytes were joined for this write alone: their memory may move to another thread. */
  owned?: boolean;
}

export function spoolDir(dataDir: string): string {
  return join(dataDir, "spool");
}

function segmentFile(dir: string, seg: number): string {
  return join(dir, `${String(seg).padStart(8, "0")}.spool`);
}

const SEGMENT_NAME = /^(\d{8})\.spool$/;

/** readMany joins two articles into one read when at most this many bytes lie between them... */
const JOIN_GAP = 64 * 1024;
/** ...and the read stays within this many bytes. */
const JOIN_MAX = 4 * 1024 * 1024;

/** Segments written last by this run that are read on the main thread (Spool.read): 256 MiB at the default size. */
const HOT_SEGMENTS = 4;

/** The segments on disk, by number. */
export function segmentsOnDisk(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync(dir)) {
    const m = SEGMENT_NAME.exec(name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

/** The spool's files and their bytes together (status, /metrics); none before the folder exists. */
export async function spoolUsage(dataDir: string): Promise<{ files: number; bytes: number }> {
  const dir = spoolDir(dataDir);
  let segs: number[];
  try {
    segs = segmentsOnDisk(dir);
  } catch {
    return { files: 0, bytes: 0 };
  }
  const sizes = await Promise.all(segs.map((seg) => stat(segmentFile(dir, seg)).then((st) => st.size, () => 0)));
  return { files: segs.length, bytes: sizes.reduce((a, b) => a + b, 0) };
}

/** Joins writes that follow each other in one segment into one buffer each (one write call, one transfer between threads). */
export function coalesce(writes: SpoolWrite[]): SpoolWrite[] {
  const out: SpoolWrite[] = [];
  let run: { seg: number; at: number; end: number; parts: Uint8Array[] } | undefined;
  const flush = () => {
    if (!run) return;
    if (run.parts.length === 1) out.push({ seg: run.seg, at: run.at, bytes: run.parts[0] });
    else {
      const bytes = Buffer.concat(run.parts);
      out.push({ seg: run.seg, at: run.at, bytes, owned: bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength });
    }
  };
  for (const w of writes) {
    if (run && run.seg === w.seg && run.end === w.at) {
      run.parts.push(w.bytes);
      run.end += w.bytes.length;
      continue;
    }
    flush();
    run = { seg: w.seg, at: w.at, end: w.at + w.bytes.length, parts: [w.bytes] };
  }
  flush();
  return out;
}

/**
 * Writes batches' bytes into their segments, where the batches' transactions
 * run (the commit thread, or the main thread on the idle path). Keeps the
 * segments it wrote open; a segment made here is synced into its folder
 * before anything in it counts as written.
 */
export class SpoolWriter {
  #fds = new Map<number, number>();

  constructor(
    private readonly dir: string,
    /** "full": the bytes are on disk before the promise resolves (before the COMMIT that points at them). */
    private readonly synchronous: "full" | "normal",
  ) {}

  #fd(seg: number): number {
    let fd = this.#fds.get(seg);
    if (fd !== undefined) return fd;
    // not O_APPEND: Linux's pwrite appends there whatever the offset, and a failed batch leaves a gap
    fd = openSync(segmentFile(this.dir, seg), constants.O_RDWR | constants.O_CREAT, 0o644);
    syncDir(this.dir); // the file's name in the folder must be as durable as the bytes in it
    this.#fds.set(seg, fd);
    return fd;
  }

  /** Writes each run at its offset and, with synchronous full, syncs each file written. */
  async write(writes: SpoolWrite[]): Promise<void> {
    const fds = new Set<number>();
    await Promise.all(
      writes.map((w) => {
        const fd = this.#fd(w.seg);
        fds.add(fd);
        return writeAll(fd, w.bytes, w.at);
      }),
    );
    if (this.synchronous === "full") {
      await Promise.all([...fds].map((fd) => new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())))));
    }
    // places are taken in order: a segment before the newest written here is written no more
    const newest = Math.max(...writes.map((w) => w.seg));
    for (const [seg, fd] of this.#fds) {
      if (seg < newest) {
        this.#fds.delete(seg);
        close(fd, () => {});
      }
    }
  }

  close(): void {
    for (const fd of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array, at: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number) => {
      if (done >= bytes.length) return resolve();
      writev(fd, [bytes.subarray(done)], at + done, (err, n) => (err ? reject(err) : step(done + n)));
    };
    step(0);
  });
}

/**
 * The main thread's side: where the next article goes (the writer places
 * each article as it stages it, in commit order), and reading articles back.
 */
export class Spool {
  #seg: number;
  #at = 0;
  #readFds = new Map<number, ReadHandle>();
  /** Places taken by batches not yet committed or failed, by segment: no sweep may delete those segments. */
  #pending = new Map<number, number>();

  private constructor(
    readonly dir: string,
    /** The segment this run writes first: one past every segment on disk. */
    readonly firstSegment: number,
    private readonly segmentBytes: number,
  ) {
    this.#seg = firstSegment;
  }

  static open(dataDir: string, segmentBytes = SEGMENT_BYTES): Spool {
    const dir = spoolDir(dataDir);
    if (mkdirSync(dir, { recursive: true }) !== undefined) syncDir(dataDir); // the folder's name as durable as what goes in it

    const on = segmentsOnDisk(dir);
    return new Spool(dir, (on.at(-1) ?? 0) + 1, segmentBytes);
  }

  /** Takes the place for `len` bytes: the end of the current segment, or a new one once it is full. */
  place(len: number): { seg: number; at: number } {
    if (this.#at > 0 && this.#at + len > this.segmentBytes) {
      this.#seg++;
      this.#at = 0;
    }
    const at = this.#at;
    this.#at += len;
    this.#pending.set(this.#seg, (this.#pending.get(this.#seg) ?? 0) + 1);
    return { seg: this.#seg, at };
  }

  /** A place taken by place() is settled: its batch committed (a row now points at it) or failed (none ever will). */
  settle(seg: number): void {
    const n = (this.#pending.get(seg) ?? 0) - 1;
    if (n > 0) this.#pending.set(seg, n);
    else this.#pending.delete(seg);
  }

  /**
   * Several articles' bytes, each or undefined as read() gives them. Articles
   * stored one after the other (a group's numbers in order, as a newsreader
   * or a catching-up feed asks for them) are read in one call and handed out
   * as views of it: one trip through the thread pool a batch instead of one
   * an article, which had made ARTICLE of 10 KB articles a quarter slower
   * than from the database's rows.
   */
  async readMany(want: { seg: number; at: number; len: number }[]): Promise<(Buffer | undefined)[]> {
    const out: (Buffer | undefined)[] = new Array(want.length);
    const order = want.map((_, i) => i).sort((x, y) => want[x].seg - want[y].seg || want[x].at - want[y].at);
    const reads: Promise<void>[] = [];
    for (let k = 0; k < order.length; ) {
      const first = want[order[k]];
      let end = first.at + first.len;
      let useful = first.len;
      let j = k + 1;
      // join the next article while the gap before it is small and the read stays bounded
      while (j < order.length) {
        const w = want[order[j]];
        if (w.seg !== first.seg || w.at - end > JOIN_GAP || Math.max(end, w.at + w.len) - first.at > JOIN_MAX) break;
        end = Math.max(end, w.at + w.len);
        useful += w.len;
        j++;
      }
      const members = order.slice(k, j);
      k = j;
      if (members.length === 1 || end - first.at > useful * 2) {
        for (const i of members) reads.push(this.read(want[i].seg, want[i].at, want[i].len).then((b) => void (out[i] = b)));
        continue;
      }
      reads.push(
        this.read(first.seg, first.at, end - first.at).then(async (run) => {
          if (run) {
            for (const i of members) out[i] = run.subarray(want[i].at - first.at, want[i].at - first.at + want[i].len);
            return;
          }
          // the run reaches past what was written (a failed batch's place at the end): each one alone
          for (const i of members) out[i] = await this.read(want[i].seg, want[i].at, want[i].len);
        }),
      );
    }
    await Promise.all(reads);
    return out;
  }

  /**
   * An article's bytes, or undefined if its segment is gone (expired since
   * its row was read). The segments this run wrote last (HOT_SEGMENTS of
   * them) are read at once on this thread: what was just written is in the
   * page cache, and a read there costs a few microseconds, where handing it
   * to the thread pool cost more in waking a pool thread (on this VM, ARTICLE
   * of 10 KB articles took 25-37 µs of CPU an article that way against 20-24
   * read here; bench/RESULTS-2026-11-26f.md). Older segments may have to come
   * from the disk, which must not stop every connection: those are read on
   * the thread pool.
   */
  read(seg: number, at: number, len: number): Promise<Buffer | undefined> {
    let h = this.#readFds.get(seg);
    if (h === undefined) {
      let fd: number;
      try {
        fd = openSync(segmentFile(this.dir, seg), "r");
      } catch (err) {
        if ((err as { code?: string }).code === "ENOENT") return Promise.resolve(undefined);
        return Promise.reject(err);
      }
      // a handful of segments are read at once; the oldest handle goes once its reads are done
      if (this.#readFds.size >= 16) {
        const [first, old] = this.#readFds.entries().next().value as [number, ReadHandle];
        this.#readFds.delete(first);
        release(old, true);
      }
      h = { fd, busy: 0, closing: false };
      this.#readFds.set(seg, h);
    }
    const buf = Buffer.allocUnsafe(len);
    if (seg >= this.firstSegment && seg > this.#seg - HOT_SEGMENTS) {
      try {
        for (let done = 0; done < len; ) {
          const n = readSync(h.fd, buf, done, len - done, at + done);
          if (n === 0) return Promise.resolve(undefined); // shorter than the row says: never written whole
          done += n;
        }
      } catch (err) {
        return Promise.reject(err);
      }
      return Promise.resolve(buf);
    }
    const handle = h;
    handle.busy++;
    return new Promise<Buffer | undefined>((resolve, reject) => {
      const step = (done: number) => {
        if (done >= len) return resolve(buf);
        read(handle.fd, buf, done, len - done, at + done, (err, n) => {
          if (err) return reject(err);
          if (n === 0) return resolve(undefined);
          step(done + n);
        });
      };
      step(0);
    }).finally(() => {
      handle.busy--;
      release(handle, false);
    });
  }

  /**
   * Deletes the segments that no row points into (`used` asks the database)
   * and that nothing will point into: before the current one, and before any
   * a batch still in flight has a place in. A reader that read a row just
   * before its segment went finds no bytes, as if the article had expired a
   * moment sooner. Returns the bytes given back.
   */
  async sweep(used: (seg: number) => Promise<boolean>): Promise<number> {
    let n = 0;
    const written = Math.min(this.#seg, ...this.#pending.keys()); // this segment and those after it may still be pointed into
    for (const seg of segmentsOnDisk(this.dir)) {
      if (seg >= written) break;
      if (await used(seg)) continue;
      const h = this.#readFds.get(seg);
      if (h !== undefined) {
        this.#readFds.delete(seg);
        release(h, true);
      }
      try {
        const size = statSync(segmentFile(this.dir, seg)).size;
        unlinkSync(segmentFile(this.dir, seg));
        n += size;
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOENT") throw err;
      }
    }
    return n;
  }

  close(): void {
    for (const h of this.#readFds.values()) release(h, true);
    this.#readFds.clear();
  }
}

/** A segment open for reading; `busy` reads on the thread pool use it, so it is closed only after them. */
interface ReadHandle {
  fd: number;
  busy: number;
  closing: boolean;
}

function release(h: ReadHandle, closing: boolean): void {
  if (closing) h.closing = true;
  if (h.closing && h.busy === 0 && h.fd >= 0) {
    const fd = h.fd;
    h.fd = -1;
    close(fd, () => {});
  }
}
