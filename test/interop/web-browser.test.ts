// The web reader in real browsers: the text browsers w3m and lynx read the
// pages without JavaScript, and Debian's Chromium (driven by playwright-core)
// sees a new article appear on the group page without a reload, then posts a
// reply through the form as a person would. web-setup.sh installs them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chromium, type Browser } from "playwright-core";
import { startNode, type TestNode } from "../helpers/node.js";
import { RawClient, stuff } from "../helpers/client.js";
import { interopScript } from "../helpers/interop.js";

let node: TestNode;
let client: RawClient;
let browser: Browser;
let base: string;

before(async () => {
  const setup = spawnSync("bash", [interopScript("web-setup.sh")], { encoding: "utf8", timeout: 900_000 });
  assert.equal(setup.status, 0, `web-setup.sh: ${setup.stdout}${setup.stderr}`);
  node = await startNode({ pathhost: "browser.test", config: `[[group]]\nname = "local.web"\ndescription = "Read in a browser"\n` });
  ({ client } = await RawClient.connect(node.port));
  base = `http://127.0.0.1:${node.httpPort}`;
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
});

after(async () => {
  await browser?.close();
  client?.close();
  await node?.stop();
});

let seq = 0;
async function post(subject: string, body = "Hello from NNTP.\r\n"): Promise<string> {
  const msgid = `<browser${seq++}.${Date.now()}@browser.test>`;
  assert.match(await client.cmd("POST"), /^340/);
  client.send(stuff(`From: Ann <ann@example.org>\r\nNewsgroups: local.web\r\nSubject: ${subject}\r\nMessage-ID: ${msgid}\r\n\r\n${body}`));
  assert.match(await client.line(), /^240/);
  return msgid;
}

test("w3m and lynx read the groups, a group and an article without JavaScript", async () => {
  const msgid = await post("Read in a text browser", "Plain text for w3m.\r\n");
  for (const cmd of [["w3m", "-dump"], ["lynx", "-dump", "-nolist"]]) {
    const index = spawnSync(cmd[0], [...cmd.slice(1), `${base}/`], { encoding: "utf8", timeout: 60_000 });
    assert.equal(index.status, 0, index.stderr);
    assert.match(index.stdout, /local\.web\s+Read in a browser/, `${cmd[0]} shows the group list`);
    const group = spawnSync(cmd[0], [...cmd.slice(1), `${base}/local.web/`], { encoding: "utf8", timeout: 60_000 });
    assert.match(group.stdout, /Read in a text browser/, `${cmd[0]} shows the thread`);
    const article = spawnSync(cmd[0], [...cmd.slice(1), `${base}/local.web/${msgid.slice(1, -1)}/`], { encoding: "utf8", timeout: 60_000 });
    assert.match(article.stdout, /Plain text for w3m\./, `${cmd[0]} shows the article`);
    assert.doesNotMatch(article.stdout, /EventSource|<script/, "no script text leaks into a text browser's page");
  }
});

test("in Chromium, a new article appears on the group page without a reload, and a reply is posted through the form", async () => {
  await post("Already there");
  const page = await browser.newPage();
  try {
    await page.goto(`${base}/local.web/`);
    await page.getByText("Already there").waitFor();
    const loads: string[] = [];
    page.on("load", () => loads.push(page.url()));
    // the page listens on its event stream; an article posted over NNTP shows up
    // posted at once: the page's stream starts after the newest article the page shows, so even
    // an article committed before the EventSource connects is pushed
    await post("Arrived while you were reading");
    const fresh = page.locator("li.new", { hasText: "Arrived while you were reading" });
    await fresh.waitFor({ timeout: 15_000 });
    assert.equal(loads.length, 0, "the page was not reloaded");

    // follow it and reply through the form
    await fresh.locator("a").click();
    await page.getByText("Hello from NNTP.").waitFor();
    await page.getByRole("link", { name: "reply" }).first().click();
    await page.getByLabel("Name").fill("Bea Browser");
    await page.getByLabel("Mail address").fill("bea@example.org");
    await page.locator("textarea[name=body]").fill("Answered from Chromium.");
    await Promise.all([page.waitForURL(/\/local\.web\/[^/]+\/$/), page.getByRole("button", { name: "Post" }).click()]);
    await page.getByText("Answered from Chromium.").waitFor();
    assert.match(await page.locator("pre.meta").first().innerText(), /Subject: Re: Arrived while you were reading/);
  } finally {
    await page.close();
  }
});
