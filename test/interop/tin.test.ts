// tin, a real newsreader, against a real node: its batch modes (-Z counts
// unread news, -S saves every article), and a session driven by keys through
// tmux the way a person uses it: list the groups, open one, read an article,
// follow up, start a new thread, and see the follow-up threaded under its
// parent. newsreader-setup.sh installs tin and tmux when they are missing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync, chmodSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startNode, tempDir, type TestNode } from "../helpers/node.js";
import { RawClient, stuff } from "../helpers/client.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SETUP = join(root, "test", "interop", "newsreader-setup.sh");
const SOCKET = `tidings-test-${process.pid}`; // a tmux server of our own

let node: TestNode;
let dir: string;
let rootId: string;
const ROOT_SUBJECT = "Where tin meets tidings";

before(async () => {
  const r = spawnSync("bash", [SETUP], { encoding: "utf8", timeout: 600_000 });
  assert.equal(r.status, 0, `newsreader-setup.sh: ${r.stdout}${r.stderr}`);
  node = await startNode();
  dir = tempDir("tidings-tin-");
  const { client } = await RawClient.connect(node.port);
  assert.match(await client.cmd("POST"), /^340/);
  client.send(stuff(`From: Root Poster <root@example.org>\r\nNewsgroups: local.test\r\nSubject: ${ROOT_SUBJECT}\r\n\r\nroot body line\r\n\xe9t\xe9 is summer\r\n`));
  const r2 = await client.line();
  assert.match(r2, /^240/);
  rootId = r2.split(" ").pop()!;
  client.close();
});

after(async () => {
  spawnSync("tmux", ["-L", SOCKET, "kill-server"]);
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh home for tin: its own ~/.tin with the From address it posts with, and an "editor". */
function home(name: string, newsrc?: string): { home: string; env: Record<string, string> } {
  const h = join(dir, name);
  mkdirSync(join(h, ".tin"), { recursive: true });
  writeFileSync(join(h, ".tin", "tinrc"), "mail_address=Tin Tester <tester@example.org>\n");
  if (newsrc !== undefined) writeFileSync(join(h, ".newsrc"), newsrc);
  // tin notices an edit by the file's time, to the second: wait before writing
  const editor = join(h, "editor.sh");
  writeFileSync(editor, '#!/bin/sh\nsleep 1.1\nfor last; do :; done\nprintf "Written in tin by the test.\\n" >> "$last"\n');
  chmodSync(editor, 0o755);
  return { home: h, env: { HOME: h, NNTPSERVER: "127.0.0.1", VISUAL: editor, EDITOR: editor, TERM: "xterm", LANG: "C.UTF-8", TMPDIR: h } };
}

function tin(env: Record<string, string>, args: string[]): { code: number; out: string } {
  const r = spawnSync("tin", ["-r", "-p", String(node.port), ...args], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? -1, out: (r.stdout ?? "") + (r.stderr ?? "") };
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** tin in a tmux pane: keys in, screen text out. */
class Screen {
  constructor(readonly name: string) {}

  static start(name: string, env: Record<string, string>, args: string[]): Screen {
    const cmd = `env ${Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`).join(" ")} tin -r -p ${node.port} ${args.map(quote).join(" ")}; sleep 600`;
    const r = spawnSync("tmux", ["-L", SOCKET, "new-session", "-d", "-s", name, "-x", "120", "-y", "40", cmd], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return new Screen(name);
  }

  text(): string {
    return spawnSync("tmux", ["-L", SOCKET, "capture-pane", "-p", "-t", this.name], { encoding: "utf8" }).stdout;
  }

  keys(...keys: string[]): void {
    spawnSync("tmux", ["-L", SOCKET, "send-keys", "-t", this.name, ...keys]);
  }

  /** Types text literally (no key names). */
  type(text: string): void {
    spawnSync("tmux", ["-L", SOCKET, "send-keys", "-l", "-t", this.name, text]);
  }

  async waitFor(re: RegExp, what: string, ms = 15_000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const t = this.text();
      if (re.test(t)) return t;
      if (Date.now() > end) assert.fail(`tin never showed ${what} (${re}); the screen:\n${t}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  close(): void {
    spawnSync("tmux", ["-L", SOCKET, "kill-session", "-t", this.name]);
  }
}

interface Over { number: number; subject: string; from: string; msgid: string; refs: string }

async function overview(): Promise<Over[]> {
  const { client } = await RawClient.connect(node.port);
  const g = await client.cmd("GROUP local.test");
  const [, , low, high] = g.split(" ");
  assert.match(await client.cmd(`OVER ${low}-${high}`), /^224/);
  const lines = (await client.lines()).filter((l) => l.length > 0);
  client.close();
  return lines.map((l) => {
    const f = l.split("\t");
    return { number: Number(f[0]), subject: f[1], from: f[2], msgid: f[4], refs: f[5] };
  });
}

async function body(msgid: string): Promise<string> {
  const { client } = await RawClient.connect(node.port);
  assert.match(await client.cmd(`BODY ${msgid}`), /^222/);
  const b = (await client.lines()).join("\n");
  client.close();
  return b;
}

async function waitForArticle(match: (o: Over) => boolean, what: string): Promise<Over> {
  const end = Date.now() + 15_000;
  for (;;) {
    const hit = (await overview()).find(match);
    if (hit) return hit;
    if (Date.now() > end) assert.fail(`the node never got ${what}: ${JSON.stringify(await overview())}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("tin -Z counts the unread news and tin -S saves each article as the node serves it", () => {
  const { home: h, env } = home("batch", "local.test:\n");
  const z = tin(env, ["-Z", "-v"]);
  assert.equal(z.code, 2, `tin -Z exits 2 when there is unread news: ${z.out}`);
  assert.match(z.out, /1 unread .* articles? in local\.test/);
  const saveDir = join(h, "saved");
  const s = tin(env, ["-S", "-s", saveDir]);
  assert.equal(s.code, 0, s.out);
  const files = readdirSync(join(saveDir, "local", "test"));
  assert.deepEqual(files, ["1"]);
  const saved = readFileSync(join(saveDir, "local", "test", "1"));
  assert.match(saved.toString("latin1"), new RegExp(`Message-ID: ${rootId.replace(/[.$]/g, "\\$&")}`));
  assert.ok(saved.includes(Buffer.from("\n\nroot body line\n\xe9t\xe9 is summer\n", "latin1")), `8-bit body as posted: ${saved.toString("latin1")}`);
});

test("in tin: list the groups, open one, read, follow up, start a thread, see the follow-up threaded", async () => {
  const { env } = home("interactive", "");
  const s = Screen.start("reader", env, ["-q"]);
  try {
    await s.waitFor(/Group Selection/, "the group selection screen");
    s.keys("y"); // yank in every group the server lists
    const groups = await s.waitFor(/tidings\.announce/, "the node's groups");
    assert.match(groups, /local\.general\s+General discussion on this node/);
    assert.match(groups, /local\.test\s+Test postings/);
    s.keys("g");
    await s.waitFor(/Go to newsgroup/, "the go-to prompt");
    s.type("local.test");
    s.keys("Enter");
    s.keys("Enter");
    await s.waitFor(new RegExp(`local\\.test \\(.*\\n(.|\\n)*${ROOT_SUBJECT}`), "the group's threads");
    s.keys("Enter");
    await s.waitFor(/root body line/, "the article's body");

    // follow up: tin quotes the article into the editor; our "editor" adds a line
    s.keys("f");
    await s.waitFor(/p=post/, "the post prompt after editing");
    s.keys("p");
    const reply = await waitForArticle((o) => o.subject === `Re: ${ROOT_SUBJECT}`, "tin's follow-up");
    assert.equal(reply.from, "Tin Tester <tester@example.org>");
    assert.equal(reply.refs, rootId, "the follow-up names its parent in References");
    const replyBody = await body(reply.msgid);
    assert.match(replyBody, /^> root body line$/m, "tin quoted the article");
    assert.match(replyBody, /^Written in tin by the test\.$/m);

    // a new thread from the group screen
    await s.waitFor(/root body line/, "the article again after posting");
    s.keys("q");
    await s.waitFor(/w=post/, "the group screen");
    s.keys("w");
    await s.waitFor(/Post subject/, "the subject prompt");
    s.type("A new thread from tin");
    s.keys("Enter");
    await s.waitFor(/p=post/, "the post prompt");
    s.keys("p");
    const fresh = await waitForArticle((o) => o.subject === "A new thread from tin", "tin's new thread");
    assert.equal(fresh.refs, "");
  } finally {
    s.close();
  }

  // a second start reads the group again: the follow-up hangs under its parent
  const again = Screen.start("again", env, ["-q", "local.test"]);
  try {
    await again.waitFor(/A new thread from tin/, "the new thread");
    const screen = again.text();
    const rootLine = screen.split("\n").find((l) => l.includes(ROOT_SUBJECT));
    const index = rootLine?.match(/^\s*(\d+)\s/)?.[1];
    assert.ok(index, `the root's thread on the group screen:\n${screen}`);
    again.type(index); // <n> moves the cursor to thread n
    again.keys("Enter");
    again.keys("l"); // list the thread
    const thread = await again.waitFor(/List Thread/, "the thread's list");
    assert.match(thread, new RegExp(`${ROOT_SUBJECT}\\s+Root Poster`));
    assert.match(thread, /`->\s+Tin Tester/, "the follow-up under its parent");
  } finally {
    again.close();
  }
});
