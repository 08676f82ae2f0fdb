// `tidings peer add` and `tidings peer check`: peering without the days lost to
// "502 You have no permission to talk".
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { loadConfig } from "../config/load.js";
import { appendValidated, currentText } from "../config/append.js";
import type { Config } from "../config/schema.js";
import { NntpClient } from "../protocol/nntp/client.js";

export async function peerAdd(file: string, name: string, hostPort: string, opts: { groups?: string; pathIdentity?: string[]; acceptFrom?: string[]; ihave?: boolean }): Promise<string> {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(hostPort);
  if (!m) throw new Error(`expected HOST:PORT, got ${hostPort}`);
  const host = m[1].replace(/^\[|\]$/g, "");
  const port = Number(m[2]);
  if (currentText(file) && loadConfig(file).peer.some((p) => p.name === name)) throw new Error(`${file} already has a peer named ${name}`);
  // who may feed us as this peer: the addresses its name resolves to
  let accept = opts.acceptFrom ?? [];
  if (accept.length === 0) {
    if (isIP(host)) accept = [host];
    else {
      try {
        accept = (await lookup(host, { all: true })).map((a) => a.address);
      } catch {
        throw new Error(`cannot resolve ${host}; give --accept-from ADDRESS`);
      }
    }
  }
  const q = (s: string) => JSON.stringify(s);
  const block = [
    "",
    "[[peer]]",
    `name = ${q(name)}`,
    `host = ${q(host)}            # we send to it here`,
    `port = ${port}`,
    `path_identities = [${(opts.pathIdentity ?? [name]).map(q).join(", ")}]   # how it names itself in Path`,
    `groups = ${q(opts.groups ?? "*,!local.*,!junk,!control*")}`,
    `streaming = ${opts.ihave ? "false" : "true"}`,
    `accept_from = [${accept.map(q).join(", ")}]   # it may feed us from these addresses`,
    "",
  ].join("\n");
  appendValidated(file, block);
  return block;
}

/** Connects to the peer and says in plain words what works. Returns the report and whether all is well. */
export async function peerCheck(config: Config, name: string): Promise<{ report: string[]; ok: boolean }> {
  const p = config.peer.find((x) => x.name === name);
  if (!p) throw new Error(`no peer named ${name} in the configuration (have: ${config.peer.map((x) => x.name).join(", ") || "none"})`);
  const out: string[] = [];
  let ok = true;
  const bad = (s: string) => {
    ok = false;
    out.push(`✗ ${s}`);
  };
  const good = (s: string) => out.push(`✓ ${s}`);
  // our side
  if (p.accept_from.length === 0) bad(`we do not accept articles from ${name}: its accept_from is empty (add its addresses)`);
  else good(`we accept feeds from ${name} at ${p.accept_from.join(", ")}`);
  if (!p.host) {
    out.push(`- ${name} has no host: we only receive from it, nothing to connect to`);
    return { report: out, ok };
  }
  // their side
  let conn: NntpClient;
  try {
    conn = await NntpClient.connect(p.host, p.port, { connectTimeoutMs: 5000 });
  } catch (err) {
    bad(`cannot connect to ${p.host}:${p.port}: ${(err as Error).message}`);
    return { report: out, ok };
  }
  try {
    const greeting = await conn.line(10_000);
    if (greeting.startsWith("502") || greeting.startsWith("400")) {
      bad(`${name} refuses the connection: "${greeting}". Ask its operator to let our address feed it (INN: a peer entry in incoming.conf; tidings: accept_from)`);
      return { report: out, ok };
    }
    good(`connected to ${p.host}:${p.port}: "${greeting}"`);
    const caps = await conn.command("CAPABILITIES");
    let list: string[] = [];
    if (caps.startsWith("101")) list = (await conn.blockLines()).map((l) => l.toUpperCase());
    else out.push(`- ${name} does not answer CAPABILITIES (${caps}); an older server`);
    const has = (c: string) => list.some((l) => l === c || l.startsWith(c + " "));
    if (list.length) {
      out.push(`- it advertises: ${list.join(", ")}`);
      if (!has("IHAVE") && !has("STREAMING")) bad(`${name} advertises neither IHAVE nor STREAMING to us: it does not see us as a peer (it may be in reader mode for our address)`);
    }
    const mode = await conn.command("MODE STREAM");
    if (mode.startsWith("203")) good(`streaming (RFC 4644) works: "${mode}"`);
    else if (p.streaming) out.push(`- MODE STREAM answered "${mode}": the feed will fall back to IHAVE`);
    const probe = `<tidings-peer-check.${Date.now()}@${config.node.pathhost}>`;
    const r = mode.startsWith("203") ? await conn.command(`CHECK ${probe}`) : await conn.command(`IHAVE ${probe}`);
    if (/^(238|335)/.test(r)) {
      good(`${name} would take a new article from us ("${r}")`);
      if (r.startsWith("335")) {
        conn.write(".\r\n"); // an empty article: it will refuse it, which is fine
        await conn.line(10_000).catch(() => "");
      }
    } else if (/^(431|436|438|435)/.test(r)) good(`${name} takes offers from us ("${r}")`);
    else if (/^(502|480|500)/.test(r)) bad(`${name} does not let us feed it: "${r}". Its operator must list our address as a peer`);
    else bad(`unexpected answer to an offer: "${r}"`);
  } catch (err) {
    bad(`the conversation broke off: ${(err as Error).message}`);
  } finally {
    conn.close();
  }
  return { report: out, ok };
}
