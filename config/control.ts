// Checks of [[control]] rules that span keys or look at files: each names the
// key at fault, so the error gives its file and line (config/schema.ts).
import { readFileSync } from "node:fs";
import type { z } from "zod";
import type { Config } from "./schema.js";

type Ctx = z.RefinementCtx;

export function checkControl(c: Config, ctx: Ctx): void {
  c.control.forEach((r, i) => {
    if (r.signer && !r.key) ctx.addIssue({ code: "custom", path: ["control", i, "signer"], message: "signer needs key (the key file the signature is checked with)" });
    if (!r.key) return;
    let text: string;
    try {
      text = readFileSync(r.key, "latin1");
    } catch (err) {
      ctx.addIssue({ code: "custom", path: ["control", i, "key"], message: `cannot read the key file ${r.key}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return;
    }
    // armored as hierarchies publish keys, or binary as gpg --export writes them (a key packet starts with 0x99 or 0xC6)
    const armored = text.includes("-----BEGIN PGP PUBLIC KEY BLOCK-----");
    const binary = text.length > 0 && (text.charCodeAt(0) === 0x99 || text.charCodeAt(0) === 0xc6 || text.charCodeAt(0) === 0x98);
    if (!armored && !binary) ctx.addIssue({ code: "custom", path: ["control", i, "key"], message: `${r.key} is not an OpenPGP public key file (expected gpg --armor --export output)` });
  });
}
