// `tidings demo`: five nodes on loopback peered in a ring with one chord (so
// the flood meets cycles), an article posted on one, and when each node has it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { loadConfig } from "../config/load.js";
import { Node } from "../relay/node.js";
import { NntpClient } from "../protocol/nntp/client.js";

export async function demo(out: (s: string) => void = (s) => process.stdout.write(s + "\n")): Promise<void> {
  const n = 5;
  const edges: [number, number][] = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0, 2]];
  const root = mkdtempSync(join(tmpdir(), "tidings-demo-"));
  const log = pino({ level: "silent" });
  const nodes: Node[] = [];
  try {
    // listen first on port 0, then learn the ports: start nodes without peers, stop, restart with peers
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const probe = new Node(loadConfig(undefined, { dataDir: join(root, `n${i}`), nntpListen: "127.0.0.1:0", smtpListen: "off", httpListen: "off" }), log);
      await probe.start();
      ports.push(probe.nntpAddress!.port);
      await probe.stop();
    }
    for (let i = 0; i < n; i++) {
      const peers = edges
        .filter(([a, b]) => a === i || b === i)
        .map(([a, b]) => (a === i ? b : a))
        .map((j) => `[[peer]]\nname = "node${j}"\nhost = "127.0.0.1"\nport = ${ports[j]}\npath_identities = ["node${j}.demo"]\naccept_from = ["127.0.0.1"]\n`)
        .join("\n");
      const file = join(root, `n${i}.toml`);
      writeFileSync(file, `[node]\npathhost = "node${i}.demo"\ndata_dir = "${join(root, `n${i}`)}"\n[nntp]\nlisten = "127.0.0.1:${ports[i]}"\n[smtp]\nlisten = "off"\n[http]\nlisten = "off"\n[feeds]\nreconnect_min = 0.05\n\n${peers}`);
      const node = new Node(loadConfig(file), log);
      await node.start();
      nodes.push(node);
    }
    out(`five nodes on 127.0.0.1 ports ${ports.join(", ")}, peered ${edges.map(([a, b]) => `node${a}–node${b}`).join(", ")}`);
    await new Promise((r) => setTimeout(r, 300)); // let the feeds connect
    const { client: c } = await NntpClient.open("127.0.0.1", ports[0]);
    const msgid = `<demo.${Date.now().toString(36)}@node0.demo>`;
    await c.command("POST");
    const t0 = performance.now();
    c.write(`From: Demo <demo@example.org>\r\nNewsgroups: tidings.general\r\nSubject: Hello, flood\r\nMessage-ID: ${msgid}\r\n\r\nThis article was posted on node0.\r\n.\r\n`);
    const posted = await c.line();
    c.close();
    out(`posted ${msgid} on node0: ${posted}`);
    const seen = new Map<number, number>();
    const deadline = Date.now() + 10_000;
    while (seen.size < n && Date.now() < deadline) {
      for (let i = 0; i < n; i++) {
        if (seen.has(i)) continue;
        if (await nodes[i].storage.articles.exists(msgid)) {
          seen.set(i, performance.now() - t0);
          const a = await nodes[i].storage.articles.byMsgid(msgid);
          const path = /^Path: (.*)$/m.exec(a!.data.toString("latin1", 0, a!.headerLen))?.[1];
          out(`  node${i} has it after ${(performance.now() - t0).toFixed(1)} ms   Path: ${path}`);
        }
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    if (seen.size < n) out(`  only ${seen.size} of ${n} nodes had it after 10 s`);
    await new Promise((r) => setTimeout(r, 300));
    const offers = nodes.map((nd) => [...nd.feeds.values()].reduce((s, f) => s + f.stats.offered, 0));
    const sent = nodes.map((nd) => [...nd.feeds.values()].reduce((s, f) => s + f.stats.accepted, 0));
    out(`offers made ${offers.reduce((a, b) => a + b, 0)}, articles sent ${sent.reduce((a, b) => a + b, 0)} (one per node that lacked it), each node stores it once`);
  } finally {
    for (const nd of nodes) await nd.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
