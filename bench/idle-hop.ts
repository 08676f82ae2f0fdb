// Where an idle hop's time goes: one node feeding a minimal receiver, 100
// articles offered one at a time by TAKETHIS (after 60 to warm the link into
// no-CHECK mode), with a gap between them; prints the median from the offer to
// the 239 and to the arrival one hop on; then 100 POSTs the same way, timed
// from the POST command (its 340 round trip counts) to the 240 and to the
// arrival. A short gap shows the cost of the commit, a long one adds the cost
// of waking the node's threads.
//   node dist/bench/idle-hop.js [gap ms, 20] [storage.synchronous, full]
import { startNode } from "../test/helpers/node.js";
import { feed, makeArticle } from "./feeder.js";
import { NntpClient } from "../protocol/nntp/client.js";
import { Receiver } from "./receiver.js";

const gap = Number(process.argv[2] ?? 20);
const sync = process.argv[3] ?? "full";
/** Articles flooded through the node (and on to the receiver) before timing, so that its code is compiled as a running node's is. */
const warmFlood = Number(process.argv[4] ?? 0);
const rx = await Receiver.start();
const node = await startNode({
  config: `[storage]\nsynchronous = "${sync}"\n[[peer]]\nname = "rx"\nhost = "127.0.0.1"\nport = ${rx.port}\ngroups = "*"\nwindow = 300\n`,
  // IDLE_HOP_PROFILE=DIR: a CPU profile of the node, sampled every 50 µs
  nodeArgs: process.env.IDLE_HOP_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.IDLE_HOP_PROFILE}`, "--cpu-prof-interval=50"] : [],
});
try {
  if (warmFlood > 0) {
    await feed({ host: "127.0.0.1", port: node.port, count: warmFlood, bodyBytes: 1024, connections: 1, window: 300, group: "local.test", tag: `wf${Date.now().toString(36)}` });
    await rx.waitForCount(warmFlood);
  }
  const { client } = await NntpClient.open("127.0.0.1", node.port);
  await client.command("MODE STREAM");
  const tag = `idle${Date.now().toString(36)}`;
  const toAck: number[] = [];
  const toArrival: number[] = [];
  for (let i = 0; i < 160; i++) {
    const a = makeArticle(tag, i, 1024, "local.test");
    const t0 = performance.now();
    client.write([`TAKETHIS ${a.msgid}\r\n`, a.wire]);
    const r = await client.line();
    const t1 = performance.now();
    if (!r.startsWith("239")) throw new Error(r);
    const t2 = await rx.waitFor(a.msgid, 10_000);
    if (i >= 60) {
      toAck.push(t1 - t0);
      toArrival.push(t2 - t0);
    }
    if (gap > 0) await new Promise((res) => setTimeout(res, gap));
  }
  client.close();
  // the issue's own measure: POST (from the command, so the 340 round trip counts) to arrival one hop on
  const { client: poster } = await NntpClient.open("127.0.0.1", node.port);
  const postToArrival: number[] = [];
  const postToAck: number[] = [];
  for (let i = 0; i < 100; i++) {
    const msgid = `<post${i}.${tag}@bench.example>`;
    const text = `From: Bench <bench@example.org>\r\nNewsgroups: local.test\r\nSubject: idle post ${i}\r\nMessage-ID: ${msgid}\r\n\r\n${"x".repeat(1022)}\r\n`;
    const t0 = performance.now();
    const go = await poster.command("POST");
    if (!go.startsWith("340")) throw new Error(go);
    poster.writeBlock(Buffer.from(text, "latin1"));
    const r = await poster.line();
    const t1 = performance.now();
    if (!r.startsWith("240")) throw new Error(r);
    const t2 = await rx.waitFor(msgid, 10_000);
    if (i >= 20) {
      postToAck.push(t1 - t0);
      postToArrival.push(t2 - t0);
    }
    if (gap > 0) await new Promise((res) => setTimeout(res, gap));
  }
  poster.close();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.log(`gap ${gap} ms, synchronous = ${sync}: offer -> 239 median ${median(toAck).toFixed(2)} ms; offer -> arrival one hop on ${median(toArrival).toFixed(2)} ms`);
  console.log(`gap ${gap} ms, synchronous = ${sync}: POST -> 240 median ${median(postToAck).toFixed(2)} ms; POST -> arrival one hop on ${median(postToArrival).toFixed(2)} ms`);
} finally {
  await node.stop();
  await rx.close();
}
