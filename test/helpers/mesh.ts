// Networks of real tidings nodes on loopback, peered as a graph.
import net from "node:net";
import { readFileSync } from "node:fs";
import { startNode, tempDir, type TestNode } from "./node.js";
import { RawClient, stuff } from "./client.js";
import { rmSync } from "node:fs";

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/**
 * Ports for listeners a test starts later (a node that must come back on its
 * port, a peer configured before it runs). They are taken below the kernel's
 * ephemeral range: a port from that range, freed here and bound a moment
 * later, can meanwhile become the local port of any outgoing connection (a
 * feed, a client), and the node then fails with EADDRINUSE, at random.
 */
export async function freePorts(n: number): Promise<number[]> {
  const low = ephemeralLow();
  const out: number[] = [];
  while (out.length < n) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
    if (out.includes(port)) continue;
    if (await bindable(port)) out.push(port);
  }
  return out;
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (low > 12_000) return low;
  } catch {
    // not Linux: the IANA dynamic range starts at 49152
  }
  return 49_152;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

export interface MeshNode {
  name: string;
  port: number;
  dir: string;
  node: TestNode;
}

/** Configuration text added to every node, or per node. */
export type Extra = string | ((node: number) => string);

export class Mesh {
  constructor(readonly nodes: MeshNode[], readonly edges: [number, number][], readonly ports: number[], private readonly extra: Extra) {}

  static config(i: number, ports: number[], edges: [number, number][], extra: Extra = ""): string {
    const peers = edges
      .filter(([a, b]) => a === i || b === i)
      .map(([a, b]) => (a === i ? b : a))
      .map(
        (j) => `
[[peer]]
name = "n${j}"
host = "127.0.0.1"
port = ${ports[j]}
path_identities = ["n${j}.test"]
groups = "*,!junk"
accept_from = ["127.0.0.1"]
`,
      )
      .join("");
    return `[node]\npathhost = "n${i}.test"\n[nntp]\nlisten = "127.0.0.1:${ports[i]}"\n[feeds]\nreconnect_min = 0.05\nreconnect_max = 0.5\nretry_deferred = 0.2\nstatus_interval = 0.2\n${typeof extra === "function" ? extra(i) : extra}\n${peers}`;
  }

  static async start(n: number, edges: [number, number][], extra: Extra = ""): Promise<Mesh> {
    const ports = await freePorts(n);
    const started = await Promise.allSettled(
      Array.from({ length: n }, async (_, i) => {
        const dir = tempDir(`tidings-mesh-${i}-`);
        const node = await startNode({ dataDir: dir, config: Mesh.config(i, ports, edges, extra), args: ["--nntp", `127.0.0.1:${ports[i]}`] });
        return { name: `n${i}`, port: ports[i], dir, node };
      }),
    );
    const failed = started.find((r) => r.status === "rejected");
    if (failed) {
      // the nodes that did start must not outlive the test: the test file's process would wait on them for ever
      const up = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      await Promise.all(up.map((m) => m.node.stop()));
      throw (failed as PromiseRejectedResult).reason;
    }
    return new Mesh(started.map((r) => (r as PromiseFulfilledResult<MeshNode>).value), edges, ports, extra);
  }

  async restart(i: number): Promise<void> {
    const m = this.nodes[i];
    m.node = await startNode({ dataDir: m.dir, config: Mesh.config(i, this.ports, this.edges, this.extra), args: ["--nntp", `127.0.0.1:${m.port}`] });
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((m) => m.node.stop({ keepData: true })));
    for (const m of this.nodes) rmSync(m.dir, { recursive: true, force: true });
  }
}

export function chain(n: number): [number, number][] {
  return Array.from({ length: n - 1 }, (_, i) => [i, i + 1]);
}
export function ring(n: number): [number, number][] {
  return [...chain(n), [n - 1, 0]];
}
export function fullMesh(n: number): [number, number][] {
  const e: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) e.push([i, j]);
  return e;
}

let seq = 0;
/** Posts one article and returns its Message-ID. */
export async function post(port: number, group = "local.test", body = "hello\r\n"): Promise<string> {
  const { client } = await RawClient.connect(port);
  const msgid = `<mesh.${process.pid}.${Date.now().toString(36)}.${seq++}@test.example>`;
  const r1 = await client.cmd("POST");
  if (!r1.startsWith("340")) throw new Error(`POST: ${r1}`);
  client.send(stuff(`From: Mesh <mesh@example.org>\r\nNewsgroups: ${group}\r\nSubject: mesh ${seq}\r\nMessage-ID: ${msgid}\r\n\r\n${body}`));
  const r2 = await client.line();
  client.close();
  if (!r2.startsWith("240")) throw new Error(`POST: ${r2}`);
  return msgid;
}

/** Waits until every node has every id; returns each node's missing ids if time runs out. */
export async function waitForEverywhere(mesh: Mesh, ids: string[], ms: number): Promise<Map<string, string[]>> {
  const deadline = Date.now() + ms;
  const missing = new Map<string, string[]>();
  const clients = await Promise.all(mesh.nodes.map((m) => RawClient.connect(m.port)));
  try {
    for (;;) {
      missing.clear();
      for (let i = 0; i < mesh.nodes.length; i++) {
        const c = clients[i].client;
        c.send(ids.map((id) => `STAT ${id}\r\n`).join(""));
        const miss: string[] = [];
        for (const id of ids) if (!(await c.line()).startsWith("223")) miss.push(id);
        if (miss.length) missing.set(mesh.nodes[i].name, miss);
      }
      if (missing.size === 0 || Date.now() > deadline) return missing;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    for (const c of clients) c.client.close();
  }
}

/** Message-IDs filed in local.test on a node, with their Path headers. */
export async function groupContents(port: number, group = "local.test"): Promise<{ msgid: string; path: string }[]> {
  const { client } = await RawClient.connect(port);
  const g = await client.cmd(`GROUP ${group}`);
  const [, count, low, high] = g.split(" ").map(Number);
  if (count === 0) {
    client.close();
    return [];
  }
  const ids = (await (async () => (await client.cmd(`XHDR Message-ID ${low}-${high}`), client.lines()))()).map((l) => l.split(" ")[1]);
  const paths = (await (async () => (await client.cmd(`XHDR Path ${low}-${high}`), client.lines()))()).map((l) => l.slice(l.indexOf(" ") + 1));
  client.close();
  return ids.map((msgid, i) => ({ msgid, path: paths[i] }));
}

export async function status(m: MeshNode): Promise<{ articles: { loops: number }; peers: { name: string; backlog: { count: number }; offered: number; accepted: number; refused: number }[] }> {
  const { readFileSync } = await import("node:fs");
  return JSON.parse(readFileSync(`${m.dir}/status.json`, "utf8"));
}
