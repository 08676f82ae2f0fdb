// A real client: Python's nntplib lists, posts a thread, and reads it back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startNode } from "../helpers/node.js";

const script = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test", "fixtures", "nntplib_client.py");

test("Python's nntplib posts a thread and reads it back", async (t) => {
  const py = spawnSync("python3", ["-c", "import nntplib"], { encoding: "utf8" });
  if (py.status !== 0) return t.skip("python3 with nntplib is not available");
  const node = await startNode();
  try {
    const r = spawnSync("python3", ["-W", "ignore", script, String(node.port)], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.match(out.welcome, /^200 /);
    assert.ok(out.groups.includes("local.general"));
    const [first, reply] = out.ids;
    assert.deepEqual(out.group, [2, 1, 2, "local.general"]);
    assert.equal(out.over.length, 2);
    assert.equal(out.over[1].references, first, "the reply's References names the first article");
    assert.equal(out.over[1]["message-id"], reply);
    assert.equal(out.over[0].subject, "threads in python");
    assert.deepEqual(out.body_first, [".leading dot", "second line"]);
    assert.ok(out.article_reply_by_number.includes("I agree."));
    assert.deepEqual(out.xhdr, [["1", "threads in python"], ["2", "Re: threads in python"]]);
    assert.ok(out.newnews.includes(first) && out.newnews.includes(reply));
  } finally {
    await node.stop();
  }
});
