// tin, a real newsreader, against a real node: its batch modes (-Z counts
// unread news, -S saves every article), and a session driven by keys through
// tmux the way a person uses it: list the groups, open one, read an article,
// follow up, start a new thread, and see the follow-up threaded under its
// parent. newsreader-setup.sh installs tin and tmux when they are missing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync, chmodSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startNode, tempDir, type TestNode } from "../helpers/node.js";
import { RawClient, stuff } from "../helpers/client.js";

// the script stays in the source tree: beside dist/ when compiled there, or
// under the working folder when compiled elsewhere (tsc --outDir /tmp/...)
const here = dirname(fileURLToPath(import.meta.url));
const SETUP = [join(here, "..", "..", "..", "test", "interop"), join(process.cwd(), "test", "interop"), here]
  .map((d) => join(d, "newsreader-setup.sh"))
  .find((f) => existsSync(f)) ?? join(here, "..", "..", "..", "test", "interop", "newsreader-setup.sh");

// tmux is driven through a server of our own: its socket and configuration in
// the test's folder, so neither ~/.tmux.conf nor /tmp/tmux-UID nor another
// server has a say. The server is started once, before the tests, and lives
// until after() kills it: with tmux's default (exit-empty on) it exits as soon
// as its last session ends, and a client that connects while it is exiting is
// dropped with "server exited unexpectedly". That is what made this test fail
// at random: close() killed the only session and the next start() met the
// dying server (issue 12).
let SOCKET: string;
let CONF: string;
const TMUX_CONF = [
  "set -s exit-empty off", // the server stays up with no session; after() ends it
  "set -wg remain-on-exit on", // a pane whose tin exited stays, to be read
  "set -wg alternate-screen off", // and tin's last words stay on it (tin clears an alternate screen on exit)
  "",
].join("\n");

function tmux(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("tmux", ["-S", SOCKET, "-f", CONF, ...args], { encoding: "utf8", timeout: 10_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

let node: TestNode;
let dir: string;
let rootId: string;
const ROOT_SUBJECT = "Where tin meets tidings";

before(async () => {
  const r = spawnSync("bash", [SETUP], { encoding: "utf8", timeout: 600_000 });
  assert.equal(r.status, 0, `newsreader-setup.sh: ${r.stdout}${r.stderr}`);
  node = await startNode();
  dir = tempDir("tidings-tin-");
  SOCKET = join(dir, "tmux.sock");
  CONF = join(dir, "tmux.conf");
  writeFileSync(CONF, TMUX_CONF);
  const started = tmux(["start-server"]);
  assert.equal(started.status, 0, `tmux start-server: ${started.stderr}`);
  // the server answers, with our configuration in force
  const shown = tmux(["show-options", "-s", "exit-empty"]);
  assert.equal(shown.stdout.trim(), "exit-empty off", `tmux server at ${SOCKET} did not answer as configured: ${shown.stdout}${shown.stderr}`);
  const { client } = await RawClient.connect(node.port);
  assert.match(await client.cmd("POST"), /^340/);
  client.send(stuff(`From: Root Poster <root@example.org>\r\nNewsgroups: local.test\r\nSubject: ${ROOT_SUBJECT}\r\n\r\nroot body line\r\n\xe9t\xe9 is summer\r\n`));
  const r2 = await client.line();
  assert.match(r2, /^240/);
  rootId = r2.split(" ").pop()!;
  client.close();
});

after(async () => {
  if (SOCKET) tmux(["kill-server"]);
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

/** A screen for a message: without the blank lines around what is on it. */
const trim = (screen: string) => screen.replace(/^\s*\n/, "").trimEnd();

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** tin in a tmux pane: keys in, screen text out. */
class Screen {
  constructor(readonly name: string) {}

  static start(name: string, env: Record<string, string>, args: string[]): Screen {
    // exec: the pane's process is tin itself, so the pane dies with tin's own status
    const cmd = `exec env ${Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`).join(" ")} tin -r -p ${node.port} ${args.map(quote).join(" ")}`;
    const r = tmux(["new-session", "-d", "-s", name, "-x", "120", "-y", "40", cmd]);
    assert.equal(r.status, 0, `tmux new-session for tin (${name}): ${r.stderr}`);
    return new Screen(name);
  }

  /** Runs a tmux command on this pane; a tmux failure fails the test with tmux's words. */
  private run(args: string[], what: string): string {
    const r = tmux(args);
    assert.equal(r.status, 0, `tmux ${what} on ${this.name}: ${r.stderr}`);
    return r.stdout;
  }

  text(): string {
    return this.run(["capture-pane", "-p", "-t", this.name], "capture-pane");
  }

  /** tin's exit status once it has exited, else null. */
  exitStatus(): string | null {
    const [dead, status] = this.run(["display-message", "-p", "-t", this.name, "#{pane_dead} #{pane_dead_status}"], "display-message").trim().split(" ");
    return dead === "1" ? status ?? "?" : null;
  }

  keys(...keys: string[]): void {
    this.run(["send-keys", "-t", this.name, ...keys], "send-keys");
  }

  /** Types text literally (no key names). */
  type(text: string): void {
    this.run(["send-keys", "-l", "-t", this.name, text], "send-keys -l");
  }

  async waitFor(re: RegExp, what: string, ms = 15_000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const exited = this.exitStatus();
      const t = this.text();
      if (re.test(t)) return t;
      if (exited !== null) assert.fail(`tin exited with status ${exited} before it showed ${what} (${re}); its last screen:\n${trim(t)}`);
      if (Date.now() > end) assert.fail(`tin never showed ${what} (${re}); the screen:\n${trim(t)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Ends the session; a tin that outlives the hangup (it can, while still connecting) is killed. */
  async close(): Promise<void> {
    const pid = Number(tmux(["display-message", "-p", "-t", this.name, "#{?pane_dead,,#{pane_pid}}"]).stdout.trim());
    tmux(["kill-session", "-t", this.name]);
    if (!pid) return;
    const end = Date.now() + 2_000;
    for (;;) {
      try {
        process.kill(pid, 0);
      } catch {
        return; // gone
      }
      if (Date.now() > end) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone after all
        }
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
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
    await s.close();
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
    await again.close();
  }
});
