// `tidings peer add` and `tidings peer check`: peering without the days lost to
// "502 You have no permission to talk".
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { loadConfig } from "../config/load.js";
import { appendValidated, currentText } from "../config/append.js";
import type { Config } from "../config/schema.js";
import { NntpClient } from "../protocol/nntp/client.js";
import { peerTls } from "../relay/tls.js";
import { storedIdentity } from "../storage/identity.js";

/**
 * This node's path identity: node.pathhost, or the one the node made and
 * keeps in its data folder's database (storage/identity.ts). Undefined when
 * neither is there yet (the node has never started: it will make a new one).
 */
export async function ourIdentity(config: Config): Promise<{ identity: string; from: string } | undefined> {
  if (config.node.pathhost) return { identity: config.node.pathhost, from: "node.pathhost" };
  const kept = await storedIdentity(config.node.data_dir);
  return kept ? { identity: kept, from: `the database in ${config.node.data_dir}` } : undefined;
}

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export async function peerAdd(file: string, name: string, hostPort: string, opts: { groups?: string; pathIdentity?: string[]; acceptFrom?: string[]; ihave?: boolean }): Promise<string> {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(hostPort);
  if (!m) throw new Error(`expected HOST:PORT, got ${hostPort}`);
  const host = m[1].replace(/^\[|\]$/g, "");
  const port = Number(m[2]);
  const config = loadConfig(currentText(file) ? file : undefined);
  if (config.peer.some((p) => p.name === name)) throw new Error(`${file} already has a peer named ${name}`);
  // RFC 5537 §3.2.1: a peer known by our own identity would have every article we
  // inject kept from it (Path names it already) and everything it sends refused as a loop
  const ours = await ourIdentity(config);
  for (const id of [name, ...(opts.pathIdentity ?? [])]) {
    if (ours && same(id, ours.identity)) {
      throw new Error(
        `${id} is this node's own path identity (from ${ours.from}): a peer by that name would be sent nothing, and would have what it sends refused as a loop. ` +
          `Give the peer's own name${opts.pathIdentity ? " and path identity" : ", and its path identity with --path-identity"}; if both nodes really have this identity, give one of them another node.pathhost`,
      );
    }
  }
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
  const ours = await ourIdentity(config);
  const bad = (s: string) => {
    ok = false;
    out.push(`✗ ${s}`);
  };
  const good = (s: string) => out.push(`✓ ${s}`);
  // our side
  if (p.accept_from.length === 0) bad(`we do not accept articles from ${name}: its accept_from is empty (add its addresses)`);
  else good(`we accept feeds from ${name} at ${p.accept_from.join(", ")}`);
  // routing.ts: an empty path_identities means [name]
  const mine = ours && (p.path_identities.length ? p.path_identities : [p.name]).find((id) => same(id, ours.identity));
  if (mine) bad(`${name} is known here by our own path identity ${mine} (its path_identities, or its name when they are empty): every article we post names it in Path, so we would send it nothing. Put its own path identity in path_identities`);
  if (!p.host) {
    out.push(`- ${name} has no host: we only receive from it, nothing to connect to`);
    return { report: out, ok };
  }
  // their side
  let conn: NntpClient;
  const tls = peerTls(p);
  try {
    conn = await NntpClient.connect(p.host, p.port, { connectTimeoutMs: 5000, tls });
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
    if (tls?.mode === "starttls") {
      try {
        await conn.startTls(tls, 10_000);
      } catch (err) {
        bad(`${(err as Error).message}; the feed sends nothing to ${name} until this works`);
        return { report: out, ok };
      }
    }
    if (tls) good(`TLS (${tls.mode === "implicit" ? "implicit" : "STARTTLS"}): the certificate of ${p.host} verifies against ${p.tls_ca || "the system's CAs"}`);
    // servers greet with their name first (tidings and INN with their path identity)
    const theirs = greeting.split(/\s+/)[1] ?? "";
    if (ours && same(theirs, ours.identity)) {
      bad(
        `${name} greets us with our own path identity ${ours.identity} (ours from ${ours.from}): both nodes have the same path identity, so each will refuse the other's articles as a loop. ` +
          `Set node.pathhost to a name of its own on one of them, or leave it unset there so that the node makes one`,
      );
    } else if (!ours) out.push(`- this node has no path identity yet (it makes one at its first start); run peer check again once it has started`);
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
    const probe = `<tidings-peer-check.${Date.now()}@${ours?.identity ?? "tidings.invalid"}>`;
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
