// Rules for the TLS keys, run by check-config and serve alike (schema.ts,
// CheckedConfigSchema): a certificate needs its key, a listener or a feed
// that needs TLS needs what it uses, and the files must be a usable pair
// now, not at the first connection.
import type { z } from "zod";
import type { Config } from "./schema.js";
import { readCa, readPair, TlsFileError } from "../relay/tls.js";

type Ctx = z.RefinementCtx;

export function checkTls(c: Config, ctx: Ctx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
  if (Boolean(c.tls.cert) !== Boolean(c.tls.key)) {
    issue(["tls", c.tls.cert ? "key" : "cert"], "expected both tls.cert and tls.key (a certificate and its private key, PEM files)");
  } else if (c.tls.cert) {
    try {
      readPair(c.tls);
    } catch (err) {
      issue(["tls", err instanceof TlsFileError ? err.file : "cert"], `expected a usable certificate and key: ${(err as Error).message}`);
    }
  }
  if (c.nntp.tls_listen !== "off" && !c.tls.cert) {
    issue(["nntp", "tls_listen"], "expected [tls] cert and key: an nntps listener needs a certificate (or set nntp.tls_listen = \"off\")");
  }
  c.peer.forEach((p, i) => {
    if (p.tls === false) {
      if (p.tls_ca) issue(["peer", i, "tls_ca"], `expected tls = true or "starttls" with tls_ca: the feed to ${p.name} is plain text, so the CA would never be used`);
      if (p.tls_servername) issue(["peer", i, "tls_servername"], `expected tls = true or "starttls" with tls_servername: the feed to ${p.name} is plain text`);
      return;
    }
    if (p.tls_ca) {
      try {
        readCa(p.tls_ca);
      } catch (err) {
        issue(["peer", i, "tls_ca"], `expected a PEM certificate file to trust: ${(err as Error).message}`);
      }
    }
  });
}
