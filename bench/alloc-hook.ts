// Heap allocated by function, in a running node: V8's sampling heap profiler,
// counting the objects that collections took as well (the churn a flood
// makes, which --heap-prof leaves out). Load it into the node:
//   node --max-semi-space-size=32 --no-memory-reducer --import ./dist/bench/alloc-hook.js \
//     dist/cli/tidings.js serve --data DIR --nntp 127.0.0.1:PORT
// The first SIGUSR2 starts sampling, the second stops it and writes
// ALLOC_OUT (/tmp/tidings-alloc.txt): the bytes allocated in all, then by
// function (self), most first. Divide by the articles fed in between
// (bench/RESULTS-2026-11-26g.md, "To run again").
import { Session } from "node:inspector";
import { writeFileSync } from "node:fs";

interface SampleNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SampleNode[];
}

const session = new Session();
session.connect();
session.post("HeapProfiler.enable");
let sampling = false;

process.on("SIGUSR2", () => {
  if (!sampling) {
    sampling = true;
    session.post("HeapProfiler.startSampling", { samplingInterval: 2048, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    return;
  }
  sampling = false;
  session.post("HeapProfiler.stopSampling", (err, r) => {
    if (err) return console.error(`alloc-hook: ${err.message}`);
    const bySelf = new Map<string, number>();
    const walk = (n: SampleNode) => {
      const f = n.callFrame;
      const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}:${f.lineNumber}`;
      if (n.selfSize) bySelf.set(name, (bySelf.get(name) ?? 0) + n.selfSize);
      for (const c of n.children) walk(c);
    };
    walk((r as unknown as { profile: { head: SampleNode } }).profile.head);
    const total = [...bySelf.values()].reduce((a, b) => a + b, 0);
    const lines = [...bySelf].sort((a, b) => b[1] - a[1]).map(([name, bytes]) => `${bytes}\t${name}`);
    writeFileSync(process.env.ALLOC_OUT ?? "/tmp/tidings-alloc.txt", `${total}\ttotal bytes\n${lines.join("\n")}\n`);
  });
});
