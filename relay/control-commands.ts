// What the control socket can ask of a running node: groups managed live
// (tidings group add/rm/set/list) and handles on peers (list, kick, dropping
// the backlog of a peer that left). Changes to groups are kept in the
// database, so a restart does not undo them (storage/groups.ts).
import type { Node } from "./node.js";
import { ControlRefusal, type ControlServer } from "./control.js";
import { groupName, mailAddress } from "../config/schema.js";
import type { Group, GroupStatus } from "../storage/groups.js";

function str(args: Record<string, unknown>, key: string): string | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new ControlRefusal(`${key}: expected text`);
  return v;
}

function nameOf(args: Record<string, unknown>): string {
  const name = str(args, "name") ?? "";
  if (!groupName.safeParse(name).success) throw new ControlRefusal(`${JSON.stringify(name)} is not a newsgroup name (expected e.g. local.test)`);
  return name;
}

function statusOf(args: Record<string, unknown>): GroupStatus | undefined {
  const s = str(args, "status");
  if (s === undefined) return undefined;
  if (s !== "y" && s !== "n" && s !== "m") throw new ControlRefusal(`status must be y (posting allowed), n (no local posting) or m (moderated), not ${JSON.stringify(s)}`);
  return s;
}

function moderatorOf(args: Record<string, unknown>): string | undefined {
  const m = str(args, "moderator");
  if (m === undefined || m === "") return m;
  if (!mailAddress.safeParse(m).success) throw new ControlRefusal(`moderator must be a mail address such as mod@example.org, not ${JSON.stringify(m)}`);
  return m;
}

export interface GroupInfo {
  name: string;
  status: GroupStatus;
  count: number;
  low: number;
  high: number;
  description: string;
  moderator: string;
  origin: "config" | "live";
}

const info = (g: Group): GroupInfo => ({ name: g.name, status: g.status, count: g.count, low: g.low, high: g.high, description: g.description, moderator: g.moderator, origin: g.origin });

export interface PeerInfo {
  name: string;
  host: string;
  configured: boolean;
  connected: boolean;
  backlog: number;
  backlogBytes: number;
}

/** Every peer with a backlog or a configuration entry, including peers no longer configured. */
export async function peerList(node: Node): Promise<PeerInfo[]> {
  const out: PeerInfo[] = [];
  const configured = new Set(node.config.peer.map((p) => p.name));
  for (const [name, id] of node.peerIds) {
    const p = node.config.peer.find((x) => x.name === name);
    const b = await node.storage.backlog.stats(id);
    if (!p && b.count === 0) continue;
    const feed = node.feeds.get(id);
    out.push({
      name,
      host: p ? (p.host ? `${p.host}:${p.port}` : "(receive only)") : "(no longer configured)",
      configured: configured.has(name),
      connected: (feed?.stats.connected ?? 0) > 0,
      backlog: b.count,
      backlogBytes: b.bytes,
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Deletes a peer's backlog through the writer, in bounded batches beside ingest. Returns how many rows went. */
export async function dropBacklog(node: Node, peer: number): Promise<number> {
  let n = 0;
  for (;;) {
    const { rows } = await node.storage.backlog.pending(peer, 0, 5000);
    if (rows.length === 0) return n;
    await node.storage.writer.backlogDone(peer, rows.map((r) => r.article));
    n += rows.length;
  }
}

export function registerControlCommands(node: Node, control: ControlServer): void {
  const groups = () => node.storage.groups;

  control.handle("group.add", async (args) => {
    const name = nameOf(args);
    const status = statusOf(args) ?? "y";
    const moderator = moderatorOf(args) ?? "";
    const description = str(args, "description") ?? "";
    if (!(await groups().add({ name, status, description, moderator, creator: "tidings group add" }))) {
      throw new ControlRefusal(`${name} is carried already; change it with tidings group set`);
    }
    return { text: `group ${name} added (status ${status})`, data: info(groups().get(name)!) };
  });

  control.handle("group.rm", async (args) => {
    const name = nameOf(args);
    if (!(await groups().remove(name))) throw new ControlRefusal(`no group ${name} is carried`);
    return { text: `group ${name} removed: no longer listed nor posted to; its articles stay until they expire` };
  });

  control.handle("group.set", async (args) => {
    const name = nameOf(args);
    const change = { status: statusOf(args), description: str(args, "description"), moderator: moderatorOf(args) };
    if (change.status === undefined && change.description === undefined && change.moderator === undefined) throw new ControlRefusal("nothing to change: give --status, --description or --moderator");
    const g = await groups().set(name, change);
    if (!g) throw new ControlRefusal(`no group ${name} is carried`);
    return { text: `group ${name} changed`, data: info(g) };
  });

  control.handle("group.list", () => {
    const list = groups().list().map(info);
    return { text: `${list.length} groups`, data: list };
  });

  control.handle("peer.list", async () => {
    const list = await peerList(node);
    return { text: `${list.length} peers`, data: list };
  });

  control.handle("peer.kick", (args) => {
    const name = str(args, "name") ?? "";
    const id = node.peerIds.get(name);
    const feed = id === undefined ? undefined : node.feeds.get(id);
    if (!feed) {
      const p = node.config.peer.find((x) => x.name === name);
      throw new ControlRefusal(p ? `${name} is receive-only (no host): there is no feed to kick` : `no peer named ${name} is configured`);
    }
    feed.kick();
    return { text: `feed to ${name} kicked: it reconnects and sends now` };
  });

  control.handle("peer.drop-backlog", async (args) => {
    const name = str(args, "name") ?? "";
    if (node.config.peer.some((p) => p.name === name)) throw new ControlRefusal(`${name} is still configured; remove it from the configuration first (tidings peer rm)`);
    const id = node.peerIds.get(name);
    if (id === undefined) throw new ControlRefusal(`no backlog is kept for a peer named ${name}`);
    const n = await dropBacklog(node, id);
    return { text: `backlog of ${name} dropped: ${n} articles`, data: { dropped: n } };
  });
}
