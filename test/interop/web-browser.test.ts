// The web reader in real browsers: the text browsers w3m and lynx read the
// pages without JavaScript, and Debian's Chromium (driven by playwright-core)
// is used as a person would: open the groups, a group, a thread; post a reply
// from the form; see a reply that arrives from a peer node appear on an open
// group page without a reload; an article holding <script> shown as text; and
// everything again with JavaScript off. The README's screenshots are taken
// here. web-setup.sh installs the browsers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { startNode, type TestNode } from "../helpers/node.js";
import { RawClient, stuff } from "../helpers/client.js";
import { interopScript } from "../helpers/interop.js";

let peer: TestNode; // where articles are posted and flood from
let node: TestNode; // the node whose web pages are read
let client: RawClient;
let peerClient: RawClient;
let browser: Browser;
let base: string;

const GROUPS = `[[group]]\nname = "misc.web"\ndescription = "Read in a browser"\n\n[[group]]\nname = "misc.other"\ndescription = "Another group"\n`;

/**
 * Where screenshots go: a temporary folder, or the folder named by
 * TIDINGS_SCREENSHOTS (the README's come from
 * `TIDINGS_SCREENSHOTS=docs/screenshots node --test dist/test/interop/web-browser.test.js`),
 * so that a test run does not rewrite files of the source tree.
 */
const SHOTS = process.env.TIDINGS_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), "tidings-shots-"));

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  assert.ok(statSync(file).size > 1000, `${file} holds a picture`);
}

before(async () => {
  const setup = spawnSync("bash", [interopScript("web-setup.sh")], { encoding: "utf8", timeout: 900_000 });
  assert.equal(setup.status, 0, `web-setup.sh: ${setup.stdout}${setup.stderr}`);
  node = await startNode({ pathhost: "reader.test", config: GROUPS });
  peer = await startNode({
    pathhost: "peer.test",
    config: GROUPS + `\n[feeds]\nreconnect_min = 0.05\n\n[[peer]]\nname = "reader"\nhost = "127.0.0.1"\nport = ${node.port}\npath_identities = ["reader.test"]\ngroups = "misc.*"\n`,
  });
  ({ client } = await RawClient.connect(node.port));
  ({ client: peerClient } = await RawClient.connect(peer.port));
  base = `http://127.0.0.1:${node.httpPort}`;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
});

after(async () => {
  await browser?.close();
  client?.close();
  peerClient?.close();
  await peer?.stop();
  await node?.stop();
});

let seq = 0;
async function post(c: RawClient, subject: string, opts: { body?: string; refs?: string } = {}): Promise<string> {
  const msgid = `<browser${seq++}.${Date.now()}@browser.test>`;
  assert.match(await c.cmd("POST"), /^340/);
  c.send(stuff(`From: Ann <ann@example.org>\r\nNewsgroups: misc.web\r\nSubject: ${subject}\r\nMessage-ID: ${msgid}\r\n${opts.refs ? `References: ${opts.refs}\r\n` : ""}\r\n${opts.body ?? "Hello from NNTP.\r\n"}`));
  assert.match(await c.line(), /^240/);
  return msgid;
}

test("w3m and lynx read the groups, a group and an article without JavaScript", async () => {
  const msgid = await post(client, "Read in a text browser", { body: "Plain text for w3m.\r\n" });
  for (const cmd of [["w3m", "-dump"], ["lynx", "-dump", "-nolist"]]) {
    const index = spawnSync(cmd[0], [...cmd.slice(1), `${base}/`], { encoding: "utf8", timeout: 60_000 });
    assert.equal(index.status, 0, index.stderr);
    assert.match(index.stdout, /misc\.web\s+Read in a browser/, `${cmd[0]} shows the group list`);
    const group = spawnSync(cmd[0], [...cmd.slice(1), `${base}/misc.web/`], { encoding: "utf8", timeout: 60_000 });
    assert.match(group.stdout, /Read in a text browser/, `${cmd[0]} shows the thread`);
    const article = spawnSync(cmd[0], [...cmd.slice(1), `${base}/misc.web/${msgid.slice(1, -1)}/`], { encoding: "utf8", timeout: 60_000 });
    assert.match(article.stdout, /Plain text for w3m\./, `${cmd[0]} shows the article`);
    assert.doesNotMatch(article.stdout, /EventSource|<script/, "no script text leaks into a text browser's page");
  }
});

test("in Chromium: open the groups, a group and a thread; a reply from a peer node appears without a reload; reply from the form", async () => {
  const root = await post(client, "Welcome to the web reader", { body: "This group is read in a browser.\r\n" });
  await post(client, "Re: Welcome to the web reader", { refs: root, body: "> This group is read in a browser.\r\nAnd it threads.\r\n" });
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  try {
    await page.goto(`${base}/`);
    await shot(page, "groups");
    await page.getByRole("link", { name: "misc.web" }).click();
    await page.waitForURL(`${base}/misc.web/`);
    const loads: string[] = [];
    page.on("load", () => loads.push(page.url()));

    // posted on the peer: it floods to this node, and the open page shows it
    await post(peerClient, "Arrived from a peer", { body: "Sent to peer.test, read on reader.test.\r\n" });
    const fresh = page.locator("li.new", { hasText: "Arrived from a peer" });
    await fresh.waitFor({ timeout: 20_000 });
    assert.equal(loads.length, 0, "the page was not reloaded");
    await shot(page, "group");

    // open a thread, then reply from the form
    await page.getByRole("link", { name: "Welcome to the web reader" }).first().click();
    await page.getByText("This group is read in a browser.").first().waitFor();
    assert.equal(await page.locator("ul.tree li").count(), 2, "the thread shows both articles");
    await shot(page, "article");
    await page.getByRole("link", { name: "reply" }).first().click();
    await page.getByLabel("Name").fill("Bea Browser");
    await page.getByLabel("Mail address").fill("bea@example.org");
    await page.locator("textarea[name=body]").fill("Answered from Chromium.");
    await Promise.all([page.waitForURL(/\/misc\.web\/[^/]+\/$/), page.getByRole("button", { name: "Post" }).click()]);
    await page.getByText("Answered from Chromium.").waitFor();
    assert.match(await page.locator("pre.meta").first().innerText(), /Subject: Re: Welcome to the web reader/);
    assert.equal(await page.locator("ul.tree li").count(), 3, "the reply is in the thread");
  } finally {
    await page.close();
  }
});

test("in Chromium, an article holding <script> is shown as text and runs nothing", async () => {
  const msgid = await post(client, "<script>window.pwned = 1</script> in the subject", { body: "<script>window.pwned = 2</script>\r\n<img src=x onerror=\"window.pwned = 3\">\r\n" });
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("console", (m) => errors.push(m.text()));
  try {
    for (const url of [`${base}/misc.web/`, `${base}/misc.web/${msgid.slice(1, -1)}/`]) {
      await page.goto(url);
      assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, `${url}: no script from the article ran`);
    }
    assert.match(await page.locator("pre").nth(1).innerText(), /<script>window\.pwned = 2<\/script>/, "shown as text");
    assert.equal(await page.locator("img").count(), 0);
  } finally {
    await page.close();
  }
});

test("with JavaScript off, the pages read and a reply posts", async () => {
  const root = await post(client, "No JavaScript needed");
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  try {
    await page.goto(`${base}/`);
    await page.getByRole("link", { name: "misc.web" }).click();
    await page.getByRole("link", { name: "No JavaScript needed" }).click();
    await page.getByText("Hello from NNTP.").first().waitFor();
    await page.getByRole("link", { name: "reply" }).first().click();
    await page.getByLabel("Name").fill("Nojs");
    await page.getByLabel("Mail address").fill("nojs@example.org");
    await page.locator("textarea[name=body]").fill("Posted with scripts off.");
    await Promise.all([page.waitForURL(/\/misc\.web\/[^/]+\/$/), page.getByRole("button", { name: "Post" }).click()]);
    await page.getByText("Posted with scripts off.").waitFor();
    assert.match(await client.cmd(`STAT ${root}`), /^223/);
  } finally {
    await context.close();
  }
});
