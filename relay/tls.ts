// The node's certificate and key as one TLS context, shared by STARTTLS, the
// nntps listener and SMTP. It is read again on reload() (SIGHUP) and when the
// files change on disk, so a renewed certificate is served to the next
// connection without a restart; connections already open keep theirs.
import tls from "node:tls";
import net from "node:net";
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import type { Logger } from "pino";
import type { ClientTls } from "../protocol/nntp/client.js";

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** RFC 8143 §3 (with BCP 195): nothing older than TLS 1.2; TLS compression is never used (OpenSSL in Node has none). */
const MIN_VERSION = "TLSv1.2";
/** How often the files are looked at for a renewed certificate. */
const WATCH_MS = 5_000;
/** A client that has not finished its handshake after this long is cut off. */
export const HANDSHAKE_MS = 30_000;

/** Why a certificate and key pair cannot be used, and which of the two files is at fault. */
export class TlsFileError extends Error {
  constructor(readonly file: "cert" | "key", message: string) {
    super(message);
  }
}

/**
 * Reads and checks a certificate and key pair; the error names the file and
 * what is wrong with it (so check-config and serve say the same).
 */
export function readPair(files: TlsFiles): { pair: TlsPair; context: tls.SecureContext; cert: X509Certificate } {
  const read = (which: "cert" | "key", file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new TlsFileError(which, `cannot read the ${which === "cert" ? "certificate" : "key"} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const pair = { cert: read("cert", files.cert), key: read("key", files.key) };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pair.cert);
  } catch (err) {
    throw new TlsFileError("cert", `${files.cert} is not a PEM certificate (${(err as Error).message})`);
  }
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ ...pair, minVersion: MIN_VERSION });
  } catch (err) {
    const m = (err as Error).message;
    if (/key values mismatch/i.test(m)) throw new TlsFileError("key", `the key in ${files.key} does not belong to the certificate in ${files.cert}`);
    throw new TlsFileError("key", `${files.key} is not a usable PEM private key for ${files.cert} (${m})`);
  }
  return { pair, context, cert };
}

/** A CA (or certificate) file to trust, checked: empty means the system's CAs. */
export function readCa(file: string): Buffer | undefined {
  if (!file) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw new Error(`${file} is not a PEM certificate (${(err as Error).message})`);
  }
  return pem;
}

/** How a feed (and `peer check`) reaches a [[peer]]: its tls, tls_ca and tls_servername keys; undefined for plain text. */
export function peerTls(p: { tls: boolean | "starttls"; tls_ca: string; tls_servername: string }): ClientTls | undefined {
  if (p.tls === false) return undefined;
  return { mode: p.tls === true ? "implicit" : "starttls", ca: readCa(p.tls_ca), servername: p.tls_servername || undefined };
}

function stamp(files: TlsFiles): string {
  const one = (f: string) => {
    try {
      const s = statSync(f);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return "-";
    }
  };
  return `${one(files.cert)}|${one(files.key)}`;
}

export class TlsContexts {
  #context: tls.SecureContext;
  #pair: TlsPair;
  #stamp: string;
  #failedStamp = "";
  #timer?: NodeJS.Timeout;
  #listeners: ((pair: TlsPair) => void)[] = [];
  /** What the certificate in use says of itself (for logs and status). */
  subject = "";
  validTo = "";
  fingerprint = "";
  /** Why the last reload failed, while the previous certificate stays in use; null when it worked. */
  lastError: string | null = null;

  private constructor(
    public files: TlsFiles,
    loaded: ReturnType<typeof readPair>,
    private readonly log: Logger,
  ) {
    this.#context = loaded.context;
    this.#pair = loaded.pair;
    this.#stamp = stamp(files);
    this.#describe(loaded.cert);
  }

  /** Loads the pair; throws (naming the file) when it cannot be used. */
  static load(files: TlsFiles, log: Logger): TlsContexts {
    const t = new TlsContexts(files, readPair(files), log);
    log.info({ cert: files.cert, subject: t.subject, validTo: t.validTo, fingerprint: t.fingerprint }, "TLS certificate loaded");
    return t;
  }

  /** The context new connections get. */
  get context(): tls.SecureContext {
    return this.#context;
  }

  get pair(): TlsPair {
    return this.#pair;
  }

  /** Called with the new pair after each successful reload (SMTP's context follows it). */
  onChange(fn: (pair: TlsPair) => void): void {
    this.#listeners.push(fn);
  }

  /**
   * Reads the files again (those of a reloaded configuration, when given). A
   * pair that cannot be used is refused with a log line that says why, and
   * the one in use stays.
   */
  reload(files: TlsFiles = this.files): boolean {
    if (!files.cert || !files.key) {
      this.log.warn("tls.cert and tls.key cannot be emptied while the node runs: TLS stays on until the next restart");
      files = this.files;
    }
    const now = stamp(files);
    let loaded: ReturnType<typeof readPair>;
    try {
      loaded = readPair(files);
    } catch (err) {
      this.lastError = (err as Error).message;
      // a renewal caught half-written is tried again at the next look; say so once per state of the files
      if (now !== this.#failedStamp) this.log.warn({ err: this.lastError }, "TLS certificate not reloaded; the previous one stays in use");
      this.#failedStamp = now;
      return false;
    }
    const changed = !loaded.pair.cert.equals(this.#pair.cert) || !loaded.pair.key.equals(this.#pair.key);
    this.files = { cert: files.cert, key: files.key };
    this.#stamp = now;
    this.#failedStamp = "";
    this.lastError = null;
    if (!changed) return true;
    this.#context = loaded.context;
    this.#pair = loaded.pair;
    this.#describe(loaded.cert);
    this.log.info({ cert: this.files.cert, subject: this.subject, validTo: this.validTo, fingerprint: this.fingerprint }, "TLS certificate reloaded");
    for (const fn of this.#listeners) {
      try {
        fn(loaded.pair);
      } catch (err) {
        this.log.warn({ err: String(err) }, "TLS certificate reload not taken by a listener");
      }
    }
    return true;
  }

  /** Looks at the files every few seconds and reloads when they changed (a renewal by certbot or by hand). */
  watch(ms = WATCH_MS): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      const now = stamp(this.files);
      if (now !== this.#stamp && now !== this.#failedStamp) this.reload();
    }, ms);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #describe(cert: X509Certificate): void {
    this.subject = cert.subject.replace(/\n/g, ", ");
    this.validTo = cert.validTo;
    this.fingerprint = cert.fingerprint256;
    if (Date.parse(cert.validTo) < Date.now()) this.log.warn({ cert: this.files.cert, validTo: cert.validTo }, "the TLS certificate has expired");
  }
}

/**
 * Implicit TLS (RFC 8143, the nntps port 563): the handshake comes first, on
 * a plain TCP socket just accepted. Resolves with the encrypted socket; a
 * client that fails or stalls the handshake is closed and the promise rejects.
 */
export async function acceptTls(raw: net.Socket, contexts: TlsContexts, handshakeMs = HANDSHAKE_MS): Promise<tls.TLSSocket> {
  // a reset reaches the TLS socket too, which reports it; the raw one must not throw it
  raw.on("error", () => {});
  raw.setNoDelay(true);
  const t = new tls.TLSSocket(raw, { isServer: true, secureContext: contexts.context });
  await handshake(t, handshakeMs);
  return t;
}

/** Waits for a server-side TLS socket's handshake, closing it on failure or after `ms`. */
export function handshake(t: tls.TLSSocket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      t.off("secure", ok);
      t.destroy();
      reject(err);
    };
    const ok = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      t.off("error", fail);
      t.off("close", closed);
      // errors after the handshake are the connection's to handle; keep one listener until it has its own
      t.on("error", () => {});
      resolve();
    };
    const closed = () => fail(new Error("closed during the TLS handshake"));
    const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${ms / 1000} s`)), ms);
    timer.unref();
    t.once("secure", ok);
    t.once("error", fail);
    t.once("close", closed);
  });
}
