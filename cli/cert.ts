// `tidings cert --self-signed DIR`: a certificate and key for trying TLS out
// (STARTTLS, nntps, a feed between two test nodes). A node on the open
// internet wants one from a CA that readers' software trusts.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { isIP } from "node:net";
import { resolve, join } from "node:path";
import { X509Certificate } from "node:crypto";
import selfsigned from "selfsigned";

export interface SelfSignedOptions {
  /** Days the certificate is valid. */
  days: number;
  /** More names (DNS or IP) besides localhost, 127.0.0.1, ::1 and the host name. */
  names?: string[];
  /** Replace cert.pem and key.pem if they are there. */
  force?: boolean;
}

export interface Written {
  cert: string;
  key: string;
  names: string[];
  fingerprint: string;
  validTo: string;
}

export async function writeSelfSigned(dir: string, o: SelfSignedOptions): Promise<Written> {
  const host = hostname();
  const names = [...new Set(["localhost", "127.0.0.1", "::1", host, ...(o.names ?? [])].filter(Boolean))];
  const notBefore = new Date(Date.now() - 60_000); // a little slack for clocks a minute apart
  const pems = await selfsigned.generate([{ name: "commonName", value: host || "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + o.days * 86_400_000),
    extensions: [
      // its own trust anchor: a peer that names this file in tls_ca trusts exactly this certificate
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: names.map((n) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })) },
    ],
  });
  const folder = resolve(dir);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const cert = join(folder, "cert.pem");
  const key = join(folder, "key.pem");
  const flag = o.force ? "w" : "wx";
  try {
    // the key first, readable by its owner only; an existing pair is not replaced without --force
    writeFileSync(key, pems.private, { mode: 0o600, flag });
    chmodSync(key, 0o600);
    writeFileSync(cert, pems.cert, { mode: 0o644, flag });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new Error(`${folder} already holds a certificate or key (cert.pem, key.pem); use --force to replace them`);
    throw err;
  }
  const x = new X509Certificate(pems.cert);
  return { cert, key, names, fingerprint: x.fingerprint256, validTo: x.validTo };
}

/** What to tell the operator: where the files are and the lines to add. */
export function describeWritten(w: Written): string {
  return [
    `wrote ${w.cert}, and ${w.key} readable by its owner only (mode 0600)`,
    `names: ${w.names.join(", ")}`,
    `valid until ${w.validTo}; SHA-256 fingerprint ${w.fingerprint}`,
    ``,
    `for this node (STARTTLS, and nntps with --nntps or nntp.tls_listen):`,
    `[tls]`,
    `cert = ${JSON.stringify(w.cert)}`,
    `key = ${JSON.stringify(w.key)}`,
    ``,
    `for a node that feeds this one over TLS, in its [[peer]] entry:`,
    `tls = true              # or "starttls"`,
    `tls_ca = ${JSON.stringify(w.cert)}`,
    ``,
  ].join("\n");
}
