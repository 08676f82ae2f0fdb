// Measures the storage writer alone: articles/s through group commit, no network.
import { Storage } from "../storage/database.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const n = Number(process.argv[2] ?? 50000);
const batch = Number(process.argv[3] ?? 1000);
const dir = mkdtempSync(join(tmpdir(), "tidings-wm-"));
const st = await Storage.open({ dataDir: dir, synchronous: "full", pathhost: "bench", maxBatch: batch, maxQueue: 1e9, maxQueueBytes: 1e12 });
await st.groups.ensure([{ name: "local.test" }]);
const body = Buffer.alloc(1024, 0x61);
const t0 = performance.now();
const ps = [];
for (let i = 0; i < n; i++) {
  ps.push(st.writer.store({
    msgid: `<m${i}@x>`, header: `Path: a!b\r\nMessage-ID: <m${i}@x>\r\nSubject: s ${i}\r\n`, body, groups: ["local.test"],
    subject: `s ${i}`, author: "a@b", date: "d", refs: "", lines: 10, source: "x", arrived: Date.now(), peers: [],
  }));
}
await Promise.all(ps);
const s = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ n, batch, perSecond: Math.round(n / s), batches: st.writer.stats.batches }));
await st.close();
rmSync(dir, { recursive: true });
