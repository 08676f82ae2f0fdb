// Where a chain of two nodes holds a flood back: 5,000 then 20,000 1 KB
// articles by the bench's feeder into the first node of a chain of two, the
// second feeding a minimal receiver. Prints when the feeder was done, when
// the second node had them all (its GROUP count), when the receiver had them
// all, and each node's CPU and main thread's as a share of one core.
//   node dist/bench/chain-flood.js
import { Mesh, chain } from "../test/helpers/mesh.js";
import { Receiver } from "./receiver.js";
import { feed } from "./feeder.js";
import { NntpClient } from "../protocol/nntp/client.js";
import { procCpuSeconds as processCpu, threadCpu } from "./feed-procs.js";

/** CPU seconds of a process's main thread. */
const cpu = (pid: number) => {
  const t = threadCpu(pid).get(pid);
  return t ? t.user + t.sys : NaN;
};

const rx = await Receiver.start();
const extra = (i: number) => `[storage]\nsynchronous = "full"\n` + (i === 1 ? `[[peer]]\nname = "rx"\nhost = "127.0.0.1"\nport = ${rx.port}\ngroups = "*"\nwindow = 300\n` : "");
const mesh = await Mesh.start(2, chain(2), extra);
try {
  const pids = mesh.nodes.map((n) => n.node.pid);
  let inB = 0;
  for (const [n, label] of [[5_000, "warm"], [20_000, "timed"]] as const) {
    const c0 = pids.map(processCpu);
    const m0 = pids.map((p) => cpu(p));
    const before = rx.arrivals.size;
    const t0 = performance.now();
    await feed({ host: "127.0.0.1", port: mesh.nodes[0].port, count: n, bodyBytes: 1024, connections: 1, window: 300, group: "local.test", tag: `cf${label}${Date.now().toString(36)}` });
    const fed = (performance.now() - t0) / 1000;
    const { client } = await NntpClient.open("127.0.0.1", mesh.nodes[1].port);
    inB += n;
    for (;;) {
      const count = Number((await client.command("GROUP local.test")).split(" ")[1]);
      if (count >= inB) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const second = (performance.now() - t0) / 1000;
    client.close();
    await rx.waitForCount(before + n, 900_000);
    const all = (performance.now() - t0) / 1000;
    const share = (i: number) => `${Math.round((100 * (processCpu(pids[i]) - c0[i])) / all)}% (main thread ${Math.round((100 * (cpu(pids[i]) - m0[i])) / all)}%)`;
    console.log(
      `${label}: ${Math.round(n / all).toLocaleString("en-US")}/s at the receiver; fed in ${fed.toFixed(2)} s, the second node had them all after ${second.toFixed(2)} s, ` +
        `the receiver after ${all.toFixed(2)} s; first node ${share(0)}, second ${share(1)}`,
    );
  }
} finally {
  await mesh.stop();
  await rx.close();
}
