// node dist/bench/feed-cli.js HOST:PORT COUNT [BODY_BYTES] [CONNECTIONS] [WINDOW]
import { feed } from "./feeder.js";

const [hp, count, body = "1024", conns = "1", window = "200"] = process.argv.slice(2);
const [host, port] = hp.split(":");
const r = await feed({
  host, port: Number(port), count: Number(count), bodyBytes: Number(body), connections: Number(conns),
  window: Number(window), group: process.env.GROUP ?? "local.test", tag: `f${Date.now().toString(36)}`,
});
console.log(JSON.stringify({ ...r, acked: r.acked.length, perSecond: Math.round(r.accepted / r.seconds), mbps: +(r.bytes / r.seconds / 1e6).toFixed(2) }));
