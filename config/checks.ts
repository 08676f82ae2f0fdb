// Rules across [[peer]] and [[group]] entries, run by check-config and serve
// alike (schema.ts, CheckedConfigSchema). Each issue names the second entry,
// so the error gives its line: a second [[peer]] of one name would share the
// first one's backlog rows, and a second [[group]] of one name would be
// created once with whichever description came last.
import type { z } from "zod";
import type { Config } from "./schema.js";

type Ctx = z.RefinementCtx;

export function checkNames(c: Config, ctx: Ctx): void {
  const peers = new Map<string, number>();
  c.peer.forEach((p, i) => {
    const first = peers.get(p.name);
    if (first !== undefined) ctx.addIssue({ code: "custom", path: ["peer", i, "name"], message: `expected a name no other [[peer]] has: ${p.name} is already the name of [[peer]] number ${first + 1}` });
    else peers.set(p.name, i);
  });

  const groups = new Map<string, number>();
  c.group.forEach((g, i) => {
    const first = groups.get(g.name);
    if (first !== undefined) ctx.addIssue({ code: "custom", path: ["group", i, "name"], message: `expected a group listed once: ${g.name} is already [[group]] number ${first + 1}` });
    else groups.set(g.name, i);
  });

  // RFC 5537 §3.2: a path identity names one site; two peers with one identity
  // would each be taken for the other, and ours on a peer makes its articles loops
  const ours = c.node.pathhost.toLowerCase();
  const identities = new Map<string, string>();
  c.peer.forEach((p, i) => {
    const list = p.path_identities.length > 0 ? p.path_identities.map((id, j) => ({ id, path: ["peer", i, "path_identities", j] })) : [{ id: p.name, path: ["peer", i, "name"] }];
    for (const { id, path } of list) {
      const key = id.toLowerCase();
      if (ours && key === ours) {
        ctx.addIssue({ code: "custom", path, message: `expected the peer's own path identity: ${id} is this node's (node.pathhost), so every article from the peer would look like a loop` });
        continue;
      }
      const other = identities.get(key);
      if (other !== undefined && other !== p.name) ctx.addIssue({ code: "custom", path, message: `expected a path identity no other peer has: ${id} is already peer ${other}'s` });
      else identities.set(key, p.name);
    }
  });
}
