// The web reader as a reader, a feed reader and a poster use it: pages by
// Message-ID, threads (References, and Subject where they are missing), the
// raw article and the thread as mbox, Atom and JSON feeds with cheap polling,
// Server-Sent Events that resume, and posting from a form with its CSRF guard.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { create } from "xmlbuilder2";
import { startNode, type TestNode } from "../helpers/node.js";
import { RawClient, stuff } from "../helpers/client.js";

let node: TestNode;
let client: RawClient;

const CONFIG = `[nntp]\nposting_from = ["127.0.0.1"]\n\n[[group]]\nname = "local.web"\ndescription = "Web reader tests"\n\n[[group]]\nname = "local.quiet"\n`;

before(async () => {
  node = await startNode({ pathhost: "web.test", config: CONFIG });
  ({ client } = await RawClient.connect(node.port));
});

after(async () => {
  client.close();
  await node.stop();
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: node.httpPort, path, method: opts.method ?? "GET", headers: opts.headers, localAddress: opts.localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

let seq = 0;
async function post(subject: string, opts: { refs?: string; body?: string; group?: string } = {}): Promise<string> {
  const msgid = `<web${seq++}.${Date.now()}@web.test>`;
  const text =
    `From: Ann Example <ann@example.org>\r\nNewsgroups: ${opts.group ?? "local.web"}\r\nSubject: ${subject}\r\nMessage-ID: ${msgid}\r\n` +
    (opts.refs ? `References: ${opts.refs}\r\n` : "") +
    `\r\n${opts.body ?? "Hello.\r\n"}`;
  assert.match(await client.cmd("POST"), /^340/);
  client.send(stuff(text));
  assert.match(await client.line(), /^240/);
  return msgid;
}

const seg = (msgid: string) => encodeURIComponent(msgid.slice(1, -1)).replace(/%40/g, "@");

test("pages: groups, threads newest first, an article in its thread, flat and nested threads, escaped text", async () => {
  const root = await post("Threads on the web");
  const reply = await post("Re: Threads on the web", { refs: root, body: "> Hello.\r\nA reply.\r\n" });
  const deeper = await post("Re: Threads on the web", { refs: `${root} ${reply}`, body: "A reply to the reply.\r\n" });
  // no References: the Subject joins it to the thread
  const bySubject = await post("Re: Threads on the web", { body: "From a reader that sends no References.\r\n" });
  const other = await post("=?UTF-8?Q?Caf=C3=A9_<script>alert(1)</script>?=");

  const index = await request("/");
  assert.equal(index.status, 200);
  assert.match(index.body, /<a href="\/local\.web\/">local\.web<\/a><\/td><td>Web reader tests<\/td><td>5<\/td>/);

  const group = await request("/local.web/");
  assert.equal(group.status, 200);
  const order = [...group.body.matchAll(/<li><a href="([^"]+)">([^<]*)<\/a> <span class="meta">[^<]*?(\d+) articles?/g)].map((m) => [m[1], m[2], m[3]]);
  assert.deepEqual(order[0], [`/local.web/${seg(other)}/`, "Café &lt;script&gt;alert(1)&lt;/script&gt;", "1"], "newest thread first, subject decoded and escaped");
  assert.deepEqual(order[1], [`/local.web/${seg(root)}/`, "Threads on the web", "4"], "References and Subject put four articles in one thread");
  assert.doesNotMatch(group.body, /<script>alert/);

  const page = await request(`/local.web/${seg(deeper)}/`);
  assert.equal(page.status, 200);
  assert.match(page.body, /A reply to the reply\./);
  const tree = [...page.body.matchAll(/<li class="d(\d+)/g)].map((m) => Number(m[1]));
  assert.deepEqual(tree, [0, 1, 2, 0], "root, reply, its reply, and the reply without References at the top level");

  const flat = await request(`/local.web/${seg(root)}/T/`);
  assert.equal(flat.status, 200);
  for (const text of ["A reply.", "A reply to the reply.", "From a reader that sends no References."]) assert.ok(flat.body.includes(text), text);
  const nested = await request(`/local.web/${seg(root)}/t/`);
  assert.match(nested.body, /<div class="d2">/);
  assert.ok(bySubject);

  assert.equal((await request(`/local.web/${seg("<nope@nowhere>")}/`)).status, 404);
  assert.equal((await request("/no.such.group/")).status, 404);
  assert.equal((await request("/%E0%A4%A/")).status, 404, "a malformed escape is a missing page, not a fault");
  assert.equal((await request("/local.web/%E0%A4%A/")).status, 404);
  assert.equal((await request("/", { headers: { Cookie: "tidings_session=%E0%A4%A" } })).status, 200);
  assert.equal((await request(`/local.quiet/${seg(root)}/`)).status, 404, "an article is shown only under a group it is in");
});

test("raw is the article's exact bytes, and t.mbox holds the thread", async () => {
  const root = await post("Raw and mbox", { body: "From the start of a line.\r\n.A dot line.\r\n" });
  const reply = await post("Re: Raw and mbox", { refs: root });
  const raw = await request(`/local.web/${seg(root)}/raw`);
  assert.equal(raw.status, 200);
  assert.match(raw.headers["content-type"]!, /^text\/plain/);
  assert.match(await client.cmd(`ARTICLE ${root}`), /^220/);
  const lines = await client.lines();
  assert.equal(raw.body, lines.join("\r\n") + "\r\n", "the same bytes as NNTP ARTICLE");

  const mbox = await request(`/local.web/${seg(reply)}/t.mbox`);
  assert.equal(mbox.status, 200);
  assert.equal(mbox.headers["content-type"], "application/mbox");
  assert.equal(mbox.body.match(/^From mboxrd@z /gm)?.length, 2);
  assert.match(mbox.body, /^>From the start of a line\.$/m, "a body line starting with From is quoted (mboxrd)");
  assert.ok(mbox.body.includes(`Message-ID: ${root}`) && mbox.body.includes(`Message-ID: ${reply}`));
});

test("feeds: Atom with threading, JSON Feed 1.1, ETag and Last-Modified for cheap polling", async () => {
  const root = await post("Feed me");
  const reply = await post("Re: Feed me", { refs: root, body: "Fed.\r\n" });
  const a = await request("/local.web/new.atom");
  assert.equal(a.status, 200);
  assert.match(a.headers["content-type"]!, /^application\/atom\+xml/);
  const doc = create(a.body).end({ format: "object" }) as { feed: { entry: { id: string; title: string; "thr:in-reply-to"?: { "@ref": string } }[] } };
  const entries = doc.feed.entry;
  assert.equal(entries[0].title, "Re: Feed me", "newest first");
  assert.ok(entries[0].id.endsWith(`/local.web/${seg(reply)}/`));
  assert.ok(entries[0]["thr:in-reply-to"]!["@ref"].endsWith(`/local.web/${seg(root)}/`), "RFC 4685 in-reply-to names the parent");
  assert.equal(entries[1]["thr:in-reply-to"], undefined);

  const j = await request("/local.web/feed.json");
  const feed = JSON.parse(j.body);
  assert.equal(feed.version, "https://jsonfeed.org/version/1.1");
  assert.equal(feed.items[0].title, "Re: Feed me");
  assert.equal(feed.items[0].content_text, "Fed.\n");

  const thread = await request(`/local.web/${seg(root)}/t.atom`);
  assert.equal(thread.status, 200);
  assert.equal((thread.body.match(/<entry>/g) ?? []).length, 2);

  const etag = a.headers.etag!;
  assert.ok(etag && a.headers["last-modified"]);
  assert.equal((await request("/local.web/new.atom", { headers: { "If-None-Match": etag } })).status, 304);
  assert.equal((await request("/local.web/new.atom", { headers: { "If-Modified-Since": a.headers["last-modified"]! } })).status, 304);
  await post("Something new");
  const changed = await request("/local.web/new.atom", { headers: { "If-None-Match": etag } });
  assert.equal(changed.status, 200, "a new article changes the feed");
  assert.notEqual(changed.headers.etag, etag);
});

/** Reads SSE events from a stream until `want` have come or the deadline passes. */
function events(path: string, want: number, headers: Record<string, string> = {}): { done: Promise<{ id: string; data: { msgid: string } }[]>; ready: Promise<void>; close: () => void } {
  let close = () => {};
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  const done = new Promise<{ id: string; data: { msgid: string } }[]>((resolve, reject) => {
    const got: { id: string; data: { msgid: string } }[] = [];
    const req = http.get({ host: "127.0.0.1", port: node.httpPort, path, headers }, (res) => {
      assert.equal(res.headers["content-type"], "text/event-stream; charset=utf-8");
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        buf += d;
        if (buf.includes("retry:")) ready();
        let end: number;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id && data) got.push({ id, data: JSON.parse(data) });
          if (got.length >= want) {
            req.destroy();
            resolve(got);
          }
        }
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`only ${got.length} of ${want} events in 20 s`));
    }, 20_000);
    close = () => {
      clearTimeout(timer);
      req.destroy();
    };
    req.on("error", () => {});
    req.on("close", () => clearTimeout(timer));
  });
  return { done, ready: readyP, close };
}

test("events: each new article is pushed once committed, and Last-Event-ID resumes", async () => {
  const live = events("/local.web/events", 1);
  await live.ready;
  const first = await post("Pushed");
  const [e] = await live.done;
  assert.equal(e.data.msgid, first);
  const lastId = e.id;
  // away for two articles, then back
  const missed = [await post("Missed one"), await post("Missed two")];
  const again = events("/local.web/events", 2, { "Last-Event-ID": lastId });
  const got = await again.done;
  assert.deepEqual(got.map((x) => x.data.msgid), missed);
  assert.deepEqual(got.map((x) => Number(x.id)), [Number(lastId) + 1, Number(lastId) + 2]);
});

async function formToken(path: string): Promise<string> {
  const form = await request(path);
  assert.equal(form.status, 200, form.body);
  return /name="csrf" value="([^"]+)"/.exec(form.body)![1];
}

const formBody = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

test("posting from the web: a new thread and a reply go through the same rules as POST; CSRF and strangers are refused", async () => {
  const csrf = await formToken("/local.web/new");
  const made = await request("/local.web/new", { method: "POST", headers: FORM, body: formBody({ csrf, name: "Zoë Web", email: "zoe@example.org", subject: "From the form", body: "Typed in a browser.\n" }) });
  assert.equal(made.status, 303, made.body);
  const where = made.headers.location!;
  assert.match(where, /^\/local\.web\/[^/]+\/$/);
  const shown = await request(where);
  assert.match(shown.body, /Typed in a browser\./);
  assert.match(shown.body, /From: Zoë Web &lt;zoe@example\.org&gt;/);
  const msgid = `<${decodeURIComponent(where.split("/")[2])}>`;
  assert.match(await client.cmd(`HEAD ${msgid}`), /^221/);
  const head = (await client.lines()).join("\n");
  assert.match(head, /^Injection-Info: /m, "injected by this node, as a POST is");
  assert.match(head, /^Newsgroups: local\.web$/m);

  const replyToken = await formToken(`${where}reply`);
  const replied = await request(`${where}reply`, { method: "POST", headers: FORM, body: formBody({ csrf: replyToken, name: "Bo", email: "bo@example.org", subject: "Re: From the form", body: "> Typed in a browser.\nAnswered.\n" }) });
  assert.equal(replied.status, 303);
  const replyId = `<${decodeURIComponent(replied.headers.location!.split("/")[2])}>`;
  assert.match(await client.cmd(`HDR References ${replyId}`), /^225/);
  assert.deepEqual(await client.lines(), [`0 ${msgid}`]);

  // refused: no token, a token from elsewhere, a form sent from another site, a stranger's address, bad fields
  assert.equal((await request("/local.web/new", { method: "POST", headers: FORM, body: formBody({ name: "x", email: "x@example.org", subject: "s", body: "b" }) })).status, 403);
  assert.equal((await request("/local.web/new", { method: "POST", headers: FORM, body: formBody({ csrf: "forged", name: "x", email: "x@example.org", subject: "s", body: "b" }) })).status, 403);
  const cross = await request("/local.web/new", { method: "POST", headers: { ...FORM, Origin: "http://evil.example" }, body: formBody({ csrf, name: "x", email: "x@example.org", subject: "s", body: "b" }) });
  assert.equal(cross.status, 403);
  assert.match(cross.body, /not sent from this site/);
  const stranger = await request("/local.web/new", { localAddress: "127.0.0.2" });
  assert.equal(stranger.status, 403, "127.0.0.2 is not in nntp.posting_from");
  const injected = await request("/local.web/new", { method: "POST", headers: FORM, body: formBody({ csrf, name: "x", email: "x@example.org", subject: "s\r\nNewsgroups: local.quiet", body: "b" }) });
  assert.equal(injected.status, 400);
  assert.match(injected.body, /one line each/);
  assert.match(await client.cmd("GROUP local.quiet"), /^211 0 /, "nothing was posted by the header injection");
});

test("signing in on the web: a user the rules let post may post from an address that may not; the same rules hide groups", async () => {
  const { spawnSync } = await import("node:child_process");
  const { CLI } = await import("../helpers/node.js");
  // strangers (127.0.0.2 here) read local.web but not local.quiet and post nothing; the user bea posts to local.web
  const rules = `[auth]\nallow_plaintext = true\n\n[[access]]\nfrom = ["127.0.0.2"]\nusers = ["bea"]\nread = "*"\npost = "local.web"\n\n[[access]]\nfrom = ["127.0.0.2"]\nread = "*,!local.quiet"\npost = ""\n\n` + CONFIG;
  const web = await startNode({ pathhost: "signin.test", config: rules });
  try {
    const add = spawnSync(process.execPath, [CLI, "user", "add", "bea", "--data", web.dataDir, "--password-stdin"], { input: "correct horse\n", encoding: "utf8" });
    assert.equal(add.status, 0, add.stderr);
    const at = (path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
      new Promise<Reply>((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port: web.httpPort, path, method: opts.method ?? "GET", headers: opts.headers, localAddress: "127.0.0.2" }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        });
        req.on("error", reject);
        req.end(opts.body);
      });
    const index = await at("/");
    assert.doesNotMatch(index.body, /local\.quiet/, "a group the rules hide is not listed");
    assert.equal((await at("/local.quiet/")).status, 404);
    const refused = await at("/local.web/new");
    assert.equal(refused.status, 403);
    assert.match(refused.body, /needs signing in/);

    const loginForm = await at("/login");
    const csrf = /name="csrf" value="([^"]+)"/.exec(loginForm.body)![1];
    const wrong = await at("/login", { method: "POST", headers: FORM, body: formBody({ csrf, user: "bea", password: "wrong" }) });
    assert.equal(wrong.status, 403);
    assert.match(wrong.body, /wrong password/);
    const ok = await at("/login", { method: "POST", headers: FORM, body: formBody({ csrf, user: "bea", password: "correct horse" }) });
    assert.equal(ok.status, 303);
    const cookie = (ok.headers["set-cookie"] ?? [])[0].split(";")[0];
    assert.match(cookie, /^tidings_session=/);
    assert.match(ok.headers["set-cookie"]![0], /HttpOnly/);

    const form = await at("/local.web/new", { headers: { Cookie: cookie } });
    assert.equal(form.status, 200);
    const token = /name="csrf" value="([^"]+)"/.exec(form.body)![1];
    const made = await at("/local.web/new", { method: "POST", headers: { ...FORM, Cookie: cookie }, body: formBody({ csrf: token, name: "Bea", email: "bea@example.org", subject: "Signed in", body: "Posted as bea.\n" }) });
    assert.equal(made.status, 303, made.body);
    // a forged cookie is no sign-in
    const forged = cookie.replace(/bea/, "eve");
    assert.equal((await at("/local.web/new", { headers: { Cookie: forged } })).status, 403);
  } finally {
    await web.stop();
  }
});

test("safety: a strict Content-Security-Policy, nothing inline, Message-IDs with / % ? round-trip, long threads cut into pages", async () => {
  const odd = `<a/b%c?d.${Date.now()}@web.test>`;
  assert.match(await client.cmd("POST"), /^340/);
  client.send(stuff(`From: Odd <odd@example.org>\r\nNewsgroups: local.web\r\nSubject: Odd id\r\nMessage-ID: ${odd}\r\n\r\n<b>not bold</b>\r\n`));
  assert.match(await client.line(), /^240/);
  const path = `/local.web/${seg(odd)}/`;
  assert.match(path, /%2F.*%25.*%3F/);
  const page = await request(path);
  assert.equal(page.status, 200);
  assert.ok(page.body.includes("&lt;b&gt;not bold&lt;/b&gt;"), "HTML in an article is shown as text");
  assert.ok(page.body.includes(`href="${path}raw"`), "links to it are encoded the same way");
  assert.equal((await request(`${path}raw`)).body.includes(`Message-ID: ${odd}`), true);
  const csp = String(page.headers["content-security-policy"]);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  for (const p of ["/", "/local.web/", path, `${path}t/`]) {
    const body = (await request(p)).body;
    assert.doesNotMatch(body, /<script>|<script [^>]*>[^<]|style="/, `${p} has no inline script or style`);
  }
  assert.equal((await request("/_/live.js")).status, 200);

  // a thread longer than a page: the rest is a link away
  const root = await post("A long thread");
  for (let i = 0; i < 104; i++) await post("Re: A long thread", { refs: root, body: `Reply ${i}.\r\n` });
  const first = await request(`/local.web/${seg(root)}/T/`);
  assert.match(first.body, /105 articles, flat, 1 to 100 here/);
  assert.equal((first.body.match(/<hr>/g) ?? []).length, 100);
  assert.match(first.body, /<a href="\?page=1">next 5<\/a>/);
  const second = await request(`/local.web/${seg(root)}/T/?page=1`);
  assert.equal((second.body.match(/<hr>/g) ?? []).length, 5);
  assert.match(second.body, /Reply 103\./);
});

test("feeds hold their specs' required elements, and an article posted over NNTP is in both", async () => {
  const msgid = await post("Required elements", { body: "Checked against RFC 4287 and JSON Feed 1.1.\r\n" });
  const atomDoc = create((await request("/local.web/new.atom")).body).end({ format: "object" }) as Record<string, Record<string, unknown>>;
  const feed = atomDoc.feed;
  // RFC 4287 §4.1.1: atom:feed has exactly one id, title and updated; author here or in every entry
  for (const k of ["id", "title", "updated"]) assert.equal(typeof feed[k], "string", `feed ${k}`);
  assert.ok(!Number.isNaN(Date.parse(feed.updated as string)));
  const entries = feed.entry as Record<string, unknown>[];
  for (const e of entries) {
    // §4.1.2: id, title, updated; a link alternate or content
    for (const k of ["id", "title", "updated", "author", "content"]) assert.ok(e[k] !== undefined, `entry ${k}`);
    assert.ok((e.author as Record<string, unknown>).name, "author name");
  }
  assert.ok(entries.some((e) => (e.id as string).endsWith(`/${seg(msgid)}/`)), "the NNTP post is in the Atom feed");
  const json = JSON.parse((await request("/local.web/feed.json")).body);
  assert.equal(json.version, "https://jsonfeed.org/version/1.1");
  assert.equal(typeof json.title, "string");
  assert.ok(Array.isArray(json.items));
  for (const it of json.items) {
    assert.equal(typeof it.id, "string");
    assert.ok(typeof it.content_text === "string" || typeof it.content_html === "string");
  }
  assert.ok(json.items.some((it: { _tidings: { message_id: string } }) => it._tidings.message_id === msgid), "and in the JSON Feed");
});

test("events reach 1,000 connected clients, each in commit order", async () => {
  const N = 1000;
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const streams: { got: string[]; req: http.ClientRequest }[] = [];
  let connected = 0;
  let allConnected!: () => void;
  const ready = new Promise<void>((r) => (allConnected = r));
  for (let i = 0; i < N; i++) {
    const s = { got: [] as string[], req: undefined as unknown as http.ClientRequest };
    s.req = http.get({ host: "127.0.0.1", port: node.httpPort, path: "/local.web/events", agent }, (res) => {
      let buf = "";
      let counted = false;
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        buf += d;
        if (!counted && buf.includes("retry:")) {
          counted = true;
          if (++connected === N) allConnected();
        }
        let end: number;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const data = /^data: (.*)$/m.exec(buf.slice(0, end))?.[1];
          buf = buf.slice(end + 2);
          if (data) s.got.push(JSON.parse(data).msgid);
        }
      });
    });
    s.req.on("error", () => {});
    streams.push(s);
  }
  try {
    await ready;
    const sent = [await post("To everyone 1"), await post("To everyone 2"), await post("To everyone 3")];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && streams.some((s) => s.got.length < sent.length)) await new Promise((r) => setTimeout(r, 50));
    const short = streams.filter((s) => s.got.length < sent.length).length;
    assert.equal(short, 0, `${short} of ${N} clients missed an event`);
    for (const s of streams) assert.deepEqual(s.got, sent);
  } finally {
    for (const s of streams) s.req.destroy();
    agent.destroy();
  }
});
