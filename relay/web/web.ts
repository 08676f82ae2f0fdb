// The web reader on the HTTP listener: the groups, threads and articles that
// NNTP readers see, read through the same storage reads; Atom and JSON feeds;
// Server-Sent Events for new articles; and posting from a form through the
// same submit path as NNTP POST. URLs follow public-inbox's, so a Message-ID
// is enough to build a link: /GROUP/MSGID/, /GROUP/MSGID/T/, /t/, /raw,
// /t.mbox, /t.atom; /GROUP/new.atom, /GROUP/feed.json, /GROUP/events.
import type http from "node:http";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Logger } from "pino";
import type { Observable, Subscription } from "rxjs";
import type { HttpServer } from "../http-server.js";
import { plain } from "../http-server.js";
import type { Group } from "../../storage/groups.js";
import type { Articles, OverviewRow, StoredArticle } from "../../storage/articles.js";
import type { Outcome, Source } from "../ingest.js";
import type { Permissions } from "../../protocol/nntp/backend.js";
import type { AcceptedArticle } from "../bus.js";
import { headerDisplay } from "../../protocol/article/encoded-words.js";
import { articleUrl, authorName, bodyText, CSP, depthClass, displayHeader, esc, headerFields, msgidFromSegment, msgidSegment, page, SCRIPT, STYLE } from "./render.js";
import { baseSubject, refsOf, threadsOf, tree, type Thread } from "./threads.js";
import { atom, jsonFeed, type FeedEntry, type FeedInfo } from "./feeds.js";
import { encodeWords } from "nodemailer/lib/mime-funcs";

export interface WebBackend {
  pathhost: string;
  groups(): Group[];
  group(name: string): Group | undefined;
  readonly articles: Articles;
  /** What a client at this address, signed in as `user` or not, may do: the access rules NNTP readers meet. */
  permissions(client: string, user?: string): Permissions;
  /** Checks a password (with the growing delay after failures); undefined when logins are off. */
  login?(client: string, user: string, password: string): Promise<boolean>;
  /** Signing in over plain HTTP is allowed (auth.allow_plaintext, the rule AUTHINFO follows). */
  plaintextLogin(): boolean;
  /** The hourly posting limit; the reason when it is reached. */
  takePost?(who: { user?: string; client: string; transit: boolean }): string | undefined;
  ingest(raw: Buffer, source: Source): Promise<Outcome>;
  accepted$: Observable<AcceptedArticle>;
}

/** Articles looked at to make a group's thread list, newest first. */
const WINDOW = 1000;
const THREADS_PER_PAGE = 25;
/** A subject that says it answers another ("Re: x"): only such an article without References is threaded by subject. */
const REPLY_SUBJECT = /^\s*(re|aw|sv|fwd?)(\[\d+\])?:/i;
/** Articles of a thread shown whole on one page (T/, t/); more go on the next. */
const THREAD_PAGE = 100;
const FEED_ENTRIES = 25;
/** Articles replayed to an event stream that resumes (Last-Event-ID). */
const MAX_REPLAY = 500;
const MAX_FORM_BYTES = 256 * 1024;
const HEARTBEAT_MS = 20_000;
const COOKIE = "tidings_session";
/** How long a web sign-in lasts. */
const SESSION_MS = 12 * 3600 * 1000;

type Res = http.ServerResponse;

export class Web {
  readonly #secret = randomBytes(32);
  readonly #streams = new Set<Res>();

  constructor(private readonly b: WebBackend, private readonly log: Logger) {}

  register(http: HttpServer): void {
    http.route("GET", "/", (req, res, url) => this.#get(req, res, url));
    http.route("POST", "/", (req, res, url) => this.#post(req, res, url));
  }

  /** Ends the event streams (the node is stopping). */
  close(): void {
    this.#subscription?.unsubscribe();
    for (const r of this.#streams) r.end();
  }

  async #get(req: http.IncomingMessage, res: Res, url: URL): Promise<void> {
    const parts = url.pathname.split("/").slice(1);
    const who = this.#who(req);
    if (url.pathname === "/_/style.css") return send(res, 200, STYLE, "text/css; charset=utf-8");
    if (url.pathname === "/_/live.js") return send(res, 200, SCRIPT, "text/javascript; charset=utf-8");
    if (url.pathname === "/login") return this.#loginForm(req, res);
    const perms = this.b.permissions(who.client, who.user);
    if (!perms.read) return send(res, 403, page("Not permitted", `<h1>Not permitted</h1><p>Reading is not permitted from ${esc(who.client)}${who.user ? ` for ${esc(who.user)}` : ""}.</p><p><a href="/login">Sign in</a></p>`), "text/html; charset=utf-8");
    if (url.pathname === "/") return this.#index(res, perms, who.user);
    const g = this.b.group(decoded(parts[0]));
    // a group this reader may not read is not there for it, as LIST and GROUP say over NNTP
    if (!g || !(perms.readable?.(g.name) ?? true)) return this.#notFound(res, `No group ${parts[0]} is carried here.`);
    if (parts.length === 1) return redirect(res, `/${encodeURIComponent(g.name)}/`);
    const rest = parts.slice(1);
    if (rest.length === 1) {
      switch (rest[0]) {
        case "":
          return this.#group(res, g, url);
        case "new.atom":
          return this.#groupFeed(req, res, g, "atom");
        case "feed.json":
          return this.#groupFeed(req, res, g, "json");
        case "events":
          return this.#events(req, res, g, url);
        case "new":
          return this.#form(req, res, g);
      }
    }
    const msgid = msgidFromSegment(rest[0]);
    if (!msgid) return this.#notFound(res, "That is not a Message-ID.");
    const found = await this.#inGroup(g, msgid);
    if (!found) return this.#notFound(res, `No article ${msgid} in ${g.name}.`);
    const what = rest.slice(1).join("/");
    switch (what) {
      case "":
        return this.#article(res, g, found.row, found.article);
      case "T/":
        return this.#thread(res, g, found.row, "flat", url);
      case "t/":
        return this.#thread(res, g, found.row, "nested", url);
      case "raw":
        return send(res, 200, found.article.data, "text/plain; charset=utf-8");
      case "t.mbox":
        return this.#mbox(res, g, found.row);
      case "t.atom":
        return this.#threadFeed(req, res, g, found.row);
      case "reply":
        return this.#form(req, res, g, found.row, found.article);
    }
    if (what === "T" || what === "t") return redirect(res, `${url.pathname}/`);
    return this.#notFound(res, "No such page.");
  }

  #notFound(res: Res, why: string): void {
    send(res, 404, page("Not found", `<h1>Not found</h1><p>${esc(why)}</p><p><a href="/">All groups</a></p>`), "text/html; charset=utf-8");
  }

  async #index(res: Res, perms: Permissions, user?: string): Promise<void> {
    const rows: string[] = [];
    for (const g of this.b.groups()) {
      if (!(perms.readable?.(g.name) ?? true)) continue;
      const last = g.count > 0 ? (await this.b.articles.overview(g.id, g.high, g.high, 1))[0] : undefined;
      rows.push(
        `<tr><td><a href="/${encodeURIComponent(g.name)}/">${esc(g.name)}</a></td><td>${esc(g.description)}</td>` +
          `<td>${g.count}</td><td>${last ? esc(new Date(last.arrived).toISOString().slice(0, 16).replace("T", " ")) : "-"}</td></tr>`,
      );
    }
    send(
      res,
      200,
      page(
        `${this.b.pathhost}: groups`,
        `<p>${user ? `Signed in as ${esc(user)}. <form method="post" action="/logout" class="inline"><button>Sign out</button></form>` : `<a href="/login">Sign in</a>`}</p>` +
          `<h1>Groups on ${esc(this.b.pathhost)}</h1>\n<table><tr><th>group</th><th>description</th><th>articles</th><th>last activity (UTC)</th></tr>\n${rows.join("\n")}\n</table>`,
      ),
      "text/html; charset=utf-8",
    );
  }

  /** The newest WINDOW articles below `before`, as threads, newest activity first. */
  async #threads(g: Group, before: number): Promise<{ threads: Thread[]; lowest: number }> {
    const high = Math.min(g.high, before - 1);
    const low = Math.max(g.low, high - WINDOW + 1);
    if (high < low) return { threads: [], lowest: low };
    const rows = await this.b.articles.overview(g.id, low, high, WINDOW);
    return { threads: threadsOf(rows), lowest: rows[0]?.number ?? low };
  }

  async #group(res: Res, g: Group, url: URL): Promise<void> {
    const before = Number(url.searchParams.get("before") ?? g.high + 1) || g.high + 1;
    const pageNo = Math.max(0, Number(url.searchParams.get("page") ?? 0) || 0);
    const { threads, lowest } = await this.#threads(g, before);
    const shown = threads.slice(pageNo * THREADS_PER_PAGE, (pageNo + 1) * THREADS_PER_PAGE);
    const base = `/${encodeURIComponent(g.name)}/`;
    const items = shown.map((t) => {
      const first = t.rows[0];
      const url = articleUrl(g.name, t.rows.find((r) => r.msgid === t.root)?.msgid ?? first.msgid);
      const n = t.rows.length;
      return `<li><a href="${esc(url)}">${esc(t.subject || "(no subject)")}</a> <span class="meta">${esc(authorName(headerDisplay(first.author)))}, ${n} article${n === 1 ? "" : "s"}, last ${esc(new Date(t.lastArrived).toISOString().slice(0, 16).replace("T", " "))}</span></li>`;
    });
    const nav: string[] = [];
    if (pageNo > 0) nav.push(`<a href="${base}?${before <= g.high ? `before=${before}&` : ""}page=${pageNo - 1}">newer</a>`);
    if ((pageNo + 1) * THREADS_PER_PAGE < threads.length) nav.push(`<a href="${base}?${before <= g.high ? `before=${before}&` : ""}page=${pageNo + 1}">older</a>`);
    else if (lowest > g.low) nav.push(`<a href="${base}?before=${lowest}">older</a>`);
    const post = `<a href="${base}new">new thread</a>`;
    const live = pageNo === 0 && before > g.high;
    const body =
      `<p><a href="/">all groups</a></p><h1>${esc(g.name)}</h1><p>${esc(g.description)}</p>` +
      `<nav>${post} <a href="${base}new.atom">Atom</a> <a href="${base}feed.json">JSON Feed</a></nav>\n` +
      // the newest page listens for new articles (SCRIPT in render.ts); its stream starts after the
      // newest article the page shows, so one that arrives while the page loads is not missed
      `<ul id="threads"${live ? ` data-events="events?last=${g.high}"` : ""}>\n${items.join("\n")}\n</ul>\n<nav>${nav.join(" ")}</nav>`;
    send(res, 200, page(g.name, body, { feeds: { atom: `${base}new.atom`, json: `${base}feed.json` }, script: live }), "text/html; charset=utf-8");
  }

  async #inGroup(g: Group, msgid: string): Promise<{ row: OverviewRow; article: StoredArticle } | undefined> {
    const row = await this.b.articles.overviewByMsgid(msgid);
    if (!row) return undefined;
    const number = numberIn(row.xref, g.name);
    if (number === undefined) return undefined;
    const article = await this.b.articles.byMsgid(msgid);
    if (!article) return undefined;
    return { row: { ...row, number }, article };
  }

  /** The thread an article belongs to, as rows of this group. */
  async #threadOf(g: Group, row: OverviewRow): Promise<{ root: string; rows: OverviewRow[] }> {
    const refs = refsOf(row.refs);
    let root = refs[0] ?? row.msgid;
    let rootRow = root === row.msgid ? row : await this.#rowIn(g, root);
    if (!rootRow && refs.length === 0) rootRow = row;
    // no References, but a reply's subject: an earlier article with the same subject roots it
    if (refs.length === 0 && REPLY_SUBJECT.test(headerDisplay(row.subject))) {
      const base = baseSubject(row.subject);
      const earlier = await this.b.articles.overview(g.id, Math.max(g.low, row.number - WINDOW), row.number - 1, WINDOW);
      const first = earlier.find((r) => baseSubject(r.subject) === base && refsOf(r.refs).length === 0);
      if (first) {
        root = first.msgid;
        rootRow = first;
      }
    }
    const from = rootRow?.number ?? row.number;
    const base = baseSubject(rootRow?.subject ?? row.subject);
    const rootSubject = (rootRow?.subject ?? row.subject).replace(/^((re|aw|sv|fwd?)(\[\d+\])?:\s*)+/i, "");
    const rows = (await this.b.articles.threadRows(g.id, root, rootSubject, from)).filter((r) => r.msgid === root || refsOf(r.refs).includes(root) || (r.refs === "" && baseSubject(r.subject) === base));
    // replies to articles of the thread that do not name the root (a broken References chain)
    const known = new Set(rows.map((r) => r.msgid));
    if (!known.has(row.msgid)) rows.push(row);
    return { root, rows: rows.sort((a, b) => a.number - b.number) };
  }

  async #rowIn(g: Group, msgid: string): Promise<OverviewRow | undefined> {
    const row = await this.b.articles.overviewByMsgid(msgid);
    const number = row ? numberIn(row.xref, g.name) : undefined;
    return row && number !== undefined ? { ...row, number } : undefined;
  }

  #articleHtml(g: Group, a: StoredArticle, here = false): string {
    const f = headerFields(a);
    const url = articleUrl(g.name, a.msgid);
    const head = ["from", "newsgroups", "subject", "date", "message-id", "references"]
      .filter((n) => f.has(n))
      .map((n) => `${n.replace(/(^|-)./g, (c) => c.toUpperCase())}: ${esc(displayHeader(f, n))}`)
      .join("\n");
    return (
      `<div id="${esc(msgidSegment(a.msgid))}"${here ? ' class="here"' : ""}><pre class="meta">${head}</pre>\n<pre>${esc(bodyText(a, f))}</pre>\n` +
      `<nav><a href="${esc(url)}">permalink</a> <a href="${esc(url)}raw">raw</a> <a href="${esc(url)}reply">reply</a></nav></div>`
    );
  }

  async #article(res: Res, g: Group, row: OverviewRow, a: StoredArticle): Promise<void> {
    const { rows } = await this.#threadOf(g, row);
    const url = articleUrl(g.name, row.msgid);
    const items = tree(rows).map(
      (n) =>
        `<li class="${depthClass(n.depth)}${n.row.msgid === row.msgid ? " here" : ""}">${n.row.msgid === row.msgid ? "" : `<a href="${esc(articleUrl(g.name, n.row.msgid))}">`}` +
        `${esc(headerDisplay(n.row.subject) || "(no subject)")}${n.row.msgid === row.msgid ? "" : "</a>"} <span class="meta">${esc(authorName(headerDisplay(n.row.author)))}</span></li>`,
    );
    const body =
      `<p><a href="/">all groups</a> / <a href="/${encodeURIComponent(g.name)}/">${esc(g.name)}</a></p>\n${this.#articleHtml(g, a, true)}\n` +
      `<h2>Thread</h2><nav><a href="${esc(url)}T/">flat</a> <a href="${esc(url)}t/">nested</a> <a href="${esc(url)}t.mbox">mbox</a> <a href="${esc(url)}t.atom">Atom</a></nav>\n<ul class="tree">\n${items.join("\n")}\n</ul>`;
    send(res, 200, page(headerDisplay(row.subject) || g.name, body, { feeds: { atom: `${url}t.atom` } }), "text/html; charset=utf-8");
  }

  /**
   * The rows' articles, asked together so that storage answers them in one
   * query (storage/batched.ts); a row whose article is gone meanwhile is left out.
   */
  async #stored(rows: OverviewRow[]): Promise<FeedEntry[]> {
    const got = await Promise.all(rows.map((r) => this.b.articles.byMsgid(r.msgid)));
    return rows.flatMap((row, i) => (got[i] ? [{ row, article: got[i]! }] : []));
  }

  /** A whole thread on one page, THREAD_PAGE articles at most; a longer one goes on with a link. */
  async #thread(res: Res, g: Group, row: OverviewRow, how: "flat" | "nested", url: URL): Promise<void> {
    const { rows } = await this.#threadOf(g, row);
    const order = how === "flat" ? rows.map((r) => ({ row: r, depth: 0 })) : tree(rows);
    const pageNo = Math.max(0, Number(url.searchParams.get("page") ?? 0) || 0);
    const slice = order.slice(pageNo * THREAD_PAGE, (pageNo + 1) * THREAD_PAGE);
    const stored = new Map((await this.#stored(slice.map((n) => n.row))).map((e) => [e.row.msgid, e.article]));
    const parts = slice
      .filter((n) => stored.has(n.row.msgid))
      .map((n) => `<div class="${depthClass(n.depth)}">${this.#articleHtml(g, stored.get(n.row.msgid)!, n.row.msgid === row.msgid)}</div><hr>`);
    const title = headerDisplay(rows[0]?.subject ?? row.subject);
    const nav: string[] = [];
    if (pageNo > 0) nav.push(`<a href="?page=${pageNo - 1}">previous ${THREAD_PAGE}</a>`);
    if ((pageNo + 1) * THREAD_PAGE < order.length) nav.push(`<a href="?page=${pageNo + 1}">next ${Math.min(THREAD_PAGE, order.length - (pageNo + 1) * THREAD_PAGE)}</a>`);
    const shown = order.length > THREAD_PAGE ? `, ${pageNo * THREAD_PAGE + 1} to ${pageNo * THREAD_PAGE + slice.length} here` : "";
    const body = `<p><a href="/">all groups</a> / <a href="/${encodeURIComponent(g.name)}/">${esc(g.name)}</a></p><h1>${esc(title)}</h1><p>${rows.length} articles, ${how}${shown}</p>\n${parts.join("\n")}\n<nav>${nav.join(" ")}</nav>`;
    send(res, 200, page(title, body), "text/html; charset=utf-8");
  }

  /** The thread as an mboxrd file (lines starting with ">*From " get one more ">"). */
  async #mbox(res: Res, g: Group, row: OverviewRow): Promise<void> {
    const { rows } = await this.#threadOf(g, row);
    const chunks: Buffer[] = [];
    for (const { article: a } of await this.#stored(rows)) {
      const text = a.data.toString("latin1").replace(/\r\n/g, "\n").replace(/^(>*From )/gm, ">$1");
      chunks.push(Buffer.from(`From mboxrd@z Thu Jan  1 00:00:00 1970\n${text}${text.endsWith("\n") ? "" : "\n"}\n`, "latin1"));
    }
    res.setHeader("Content-Disposition", `inline; filename="${msgidSegment(row.msgid).replace(/[^A-Za-z0-9._-]/g, "_")}.mbox"`);
    send(res, 200, Buffer.concat(chunks), "application/mbox");
  }

  #feedInfo(req: http.IncomingMessage, g: Group, path: string, html: string, updated: number, title: string): FeedInfo {
    const base = `http://${req.headers.host ?? "localhost"}`;
    return { base, group: g.name, title, self: base + path, html: base + html, updated: new Date(updated || Date.now()) };
  }

  async #groupFeed(req: http.IncomingMessage, res: Res, g: Group, kind: "atom" | "json"): Promise<void> {
    const rows = g.count > 0 ? await this.b.articles.overview(g.id, Math.max(g.low, g.high - FEED_ENTRIES * 4), g.high) : [];
    const newest = rows.slice(-FEED_ENTRIES).reverse();
    const lastArrived = newest[0]?.arrived ?? g.created * 1000;
    // a feed changes only when the group does: readers that poll get 304 cheaply
    const etag = `W/"${g.id}-${g.low}-${g.high}-${g.count}-${kind}"`;
    if (notModified(req, res, etag, lastArrived)) return;
    const entries = await this.#stored(newest);
    const path = `/${encodeURIComponent(g.name)}/${kind === "atom" ? "new.atom" : "feed.json"}`;
    const info = this.#feedInfo(req, g, path, `/${encodeURIComponent(g.name)}/`, lastArrived, g.description ? `${g.name}: ${g.description}` : g.name);
    send(res, 200, kind === "atom" ? atom(info, entries) : jsonFeed(info, entries), kind === "atom" ? "application/atom+xml; charset=utf-8" : "application/feed+json; charset=utf-8");
  }

  async #threadFeed(req: http.IncomingMessage, res: Res, g: Group, row: OverviewRow): Promise<void> {
    const { rows } = await this.#threadOf(g, row);
    const newest = rows.slice(-FEED_ENTRIES).reverse();
    const lastArrived = Math.max(...rows.map((r) => r.arrived));
    const etag = `W/"t-${g.id}-${rows.length}-${newest[0]?.number ?? 0}"`;
    if (notModified(req, res, etag, lastArrived)) return;
    const entries = await this.#stored(newest);
    const url = articleUrl(g.name, row.msgid);
    const info = this.#feedInfo(req, g, `${url}t.atom`, url, lastArrived, headerDisplay(rows[0]?.subject ?? row.subject));
    send(res, 200, atom(info, entries), "application/atom+xml; charset=utf-8");
  }

  /**
   * Server-Sent Events: each article accepted in the group, from any source,
   * as soon as it is committed. The event id is the article number, so a
   * client that comes back with Last-Event-ID gets what it missed first.
   * One subscription to the bus serves every stream: an article is looked up
   * and its event text made once, then written to each stream of its groups.
   */
  async #events(req: http.IncomingMessage, res: Res, g: Group, url: URL): Promise<void> {
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", Connection: "keep-alive", "X-Accel-Buffering": "no" });
    res.write("retry: 3000\n\n");
    req.socket.setTimeout(0);
    this.#streams.add(res);
    const header = Number(req.headers["last-event-id"] ?? url.searchParams.get("last") ?? NaN);
    const stream: Stream = { res, sent: Number.isFinite(header) ? header : g.high, held: [] };
    // listen before reading what was missed, so nothing falls between the two
    this.#listen(g.name, stream);
    this.#ensureSubscribed();
    const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
    res.on("close", () => {
      clearInterval(heartbeat);
      this.#streams.delete(res);
      this.#listeners.get(g.name)?.delete(stream);
      if (this.#listeners.get(g.name)?.size === 0) this.#listeners.delete(g.name);
    });
    if (stream.sent < g.high) {
      const missed = await this.b.articles.overview(g.id, Math.max(stream.sent + 1, g.high - MAX_REPLAY + 1), g.high, MAX_REPLAY);
      for (const r of missed) this.#deliver(stream, r.number, eventText(g.name, r));
    }
    for (const e of stream.held!) this.#deliver(stream, e.number, e.text);
    stream.held = undefined;
  }

  readonly #listeners = new Map<string, Set<Stream>>();
  #subscription?: Subscription;

  #listen(group: string, s: Stream): void {
    let set = this.#listeners.get(group);
    if (!set) this.#listeners.set(group, (set = new Set()));
    set.add(s);
  }

  #ensureSubscribed(): void {
    // the event is made from the committed article itself, synchronously, so events leave in commit order
    this.#subscription ??= this.b.accepted$.subscribe((a) => {
      let fields: Map<string, string> | undefined;
      for (const group of a.groups) {
        const streams = this.#listeners.get(group);
        if (!streams) continue;
        fields ??= headerFields({ id: a.id, msgid: a.msgid, data: a.data, headerLen: headerLength(a.data) });
        const number = numberIn(fields.get("xref") ?? "", group);
        if (number === undefined) continue;
        const row = { number, msgid: a.msgid, subject: fields.get("subject") ?? "", author: fields.get("from") ?? "", date: fields.get("date") ?? "", refs: fields.get("references") ?? "" } as OverviewRow;
        const text = eventText(group, row);
        for (const s of streams) {
          if (s.held) s.held.push({ number, text });
          else this.#deliver(s, number, text);
        }
      }
    });
  }

  /** Writes an event once, in order: one the stream has had (a replay that met a live one) is skipped. */
  #deliver(s: Stream, number: number, text: string): void {
    if (number <= s.sent) return;
    s.sent = number;
    s.res.write(text);
  }

  // --- posting ---------------------------------------------------------------

  /** Who is asking: the client's address, and the user its session cookie names, if the cookie is sound and fresh. */
  #who(req: http.IncomingMessage): { client: string; user?: string } {
    const client = req.socket.remoteAddress ?? "";
    const cookie = /(?:^|;\s*)tidings_session=([^;]+)/.exec(req.headers.cookie ?? "")?.[1];
    if (!cookie) return { client };
    const [user, expires, mac] = decoded(cookie).split("|");
    if (!user || !mac || Number(expires) < Date.now()) return { client };
    const want = Buffer.from(this.#sessionMac(user, expires));
    const got = Buffer.from(mac);
    return want.length === got.length && timingSafeEqual(want, got) ? { client, user } : { client };
  }

  #sessionMac(user: string, expires: string): string {
    return createHmac("sha256", this.#secret).update(`session|${user}|${expires}`).digest("base64url");
  }

  /** Why this client (and user) may not post to the group, or undefined when it may: the rules NNTP POST follows. */
  #mayNotPost(client: string, user: string | undefined, g: Group): string | undefined {
    const p = this.b.permissions(client, user);
    if (!p.post) return p.afterLogin?.post && !user ? "Posting here needs signing in." : `Posting from ${client}${user ? ` as ${user}` : ""} is not permitted here.`;
    if (!(p.postable?.(g.name) ?? true)) return `Posting to ${g.name} is not permitted${user ? ` for ${user}` : ""}.`;
    if (g.status !== "y") return `${g.name} takes no posts from here${g.status === "m" ? " (it is moderated)" : ""}.`;
    return undefined;
  }

  #loginForm(req: http.IncomingMessage, res: Res, error?: string, status = 200): void {
    const { client, user } = this.#who(req);
    const body = this.b.login
      ? `<h1>Sign in</h1>${error ? `<p><strong>${esc(error)}</strong></p>` : ""}${user ? `<p>Signed in as ${esc(user)}.</p>` : ""}` +
        `<form method="post" action="/login"><input type="hidden" name="csrf" value="${esc(this.#token(client, undefined))}">` +
        `<p><label>User <input name="user" autocomplete="username" required></label></p>` +
        `<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>` +
        `<p><button type="submit">Sign in</button></p></form>`
      : `<h1>Sign in</h1><p>This node has no users.</p>`;
    send(res, status, page("Sign in", `<p><a href="/">all groups</a></p>${body}`), "text/html; charset=utf-8");
  }

  async #login(req: http.IncomingMessage, res: Res, form: URLSearchParams): Promise<void> {
    const { client } = this.#who(req);
    if (!this.#tokenOk(client, undefined, form.get("csrf") ?? "")) return plain(res, 403, "Refused: the form's token is missing or expired; load the form again\n");
    // the rule AUTHINFO follows (RFC 4643 §2.2 and 483): no password over a connection anyone can read
    if (!this.b.plaintextLogin()) return this.#loginForm(req, res, "Signing in over plain HTTP is not allowed here (auth.allow_plaintext); use NNTP over TLS.", 403);
    const user = form.get("user") ?? "";
    const ok = this.b.login ? await this.b.login(client, user, form.get("password") ?? "") : false;
    if (!ok) return this.#loginForm(req, res, "Unknown user or wrong password.", 403);
    const expires = String(Date.now() + SESSION_MS);
    const value = encodeURIComponent(`${user}|${expires}|${this.#sessionMac(user, expires)}`);
    res.setHeader("Set-Cookie", `${COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${SESSION_MS / 1000}`);
    redirect(res, "/", 303);
  }

  /** A token bound to the client's address and the hour: a form from elsewhere cannot post (CSRF). */
  #token(client: string, user: string | undefined, hour = Math.floor(Date.now() / 3_600_000)): string {
    return createHmac("sha256", this.#secret).update(`csrf|${client}|${user ?? ""}|${hour}`).digest("base64url");
  }

  #tokenOk(client: string, user: string | undefined, token: string): boolean {
    const hour = Math.floor(Date.now() / 3_600_000);
    const got = Buffer.from(token);
    return [hour, hour - 1].some((h) => {
      const want = Buffer.from(this.#token(client, user, h));
      return want.length === got.length && timingSafeEqual(want, got);
    });
  }

  async #form(req: http.IncomingMessage, res: Res, g: Group, parent?: OverviewRow, parentArticle?: StoredArticle, error?: string, values: Record<string, string> = {}): Promise<void> {
    const { client, user } = this.#who(req);
    const why = this.#mayNotPost(client, user, g);
    if (why) return send(res, 403, page("Posting not allowed", `<h1>Posting not allowed</h1><p>${esc(why)}</p>${user ? "" : `<p><a href="/login">Sign in</a></p>`}`), "text/html; charset=utf-8");
    if (g.status !== "y") return send(res, 403, page("Posting not allowed", `<h1>Posting not allowed</h1><p>${esc(g.name)} takes no posts from here${g.status === "m" ? " (it is moderated)" : ""}.</p>`), "text/html; charset=utf-8");
    const subject = values.subject ?? (parent ? `Re: ${headerDisplay(parent.subject).replace(/^(re:\s*)+/i, "")}` : "");
    const quoted = parentArticle && !values.body ? bodyText(parentArticle, headerFields(parentArticle)).split("\n").map((l) => `> ${l}`).join("\n") + "\n\n" : "";
    const body =
      `<p><a href="/${encodeURIComponent(g.name)}/">${esc(g.name)}</a></p><h1>${parent ? "Reply" : "New thread"} in ${esc(g.name)}</h1>` +
      (error ? `<p class="error"><strong>${esc(error)}</strong></p>` : "") +
      `<form method="post"><input type="hidden" name="csrf" value="${esc(this.#token(client, user))}">` +
      `<p><label>Name <input name="name" value="${esc(values.name ?? "")}" required></label></p>` +
      `<p><label>Mail address <input name="email" type="email" value="${esc(values.email ?? "")}" required></label></p>` +
      `<p><label>Subject <input name="subject" size="60" value="${esc(subject)}" required></label></p>` +
      `<p><textarea name="body" rows="16" cols="72" required>${esc(values.body ?? quoted)}</textarea></p>` +
      `<p><button type="submit">Post</button></p></form>`;
    send(res, error ? 400 : 200, page(parent ? "Reply" : "New thread", body), "text/html; charset=utf-8");
  }

  async #post(req: http.IncomingMessage, res: Res, url: URL): Promise<void> {
    const parts = url.pathname.split("/").slice(1);
    const g = this.b.group(decoded(parts[0] ?? ""));
    const isNew = parts.length === 2 && parts[1] === "new";
    const isReply = parts.length === 3 && parts[2] === "reply";
    if (url.pathname !== "/login" && url.pathname !== "/logout" && (!g || !(isNew || isReply))) return plain(res, 404, "Not found\n");
    const { client, user } = this.#who(req);
    // a browser says where a request comes from; a form posted from another site is refused
    const site = req.headers["sec-fetch-site"];
    const origin = req.headers.origin;
    if ((site && site !== "same-origin" && site !== "none") || (origin && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`)) {
      return plain(res, 403, "Refused: the form was not sent from this site\n");
    }
    let form: URLSearchParams;
    try {
      form = new URLSearchParams(await readBody(req, MAX_FORM_BYTES));
    } catch (err) {
      return plain(res, 413, `${(err as Error).message}\n`);
    }
    if (url.pathname === "/login") return this.#login(req, res, form);
    if (url.pathname === "/logout") {
      res.setHeader("Set-Cookie", `${COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
      return redirect(res, "/", 303);
    }
    if (!g || !(isNew || isReply)) return plain(res, 404, "Not found\n");
    if (!this.#tokenOk(client, user, form.get("csrf") ?? "")) return plain(res, 403, "Refused: the form's token is missing or expired; load the form again\n");
    let parent: { row: OverviewRow; article: StoredArticle } | undefined;
    if (isReply) {
      const msgid = msgidFromSegment(parts[1]);
      parent = msgid ? await this.#inGroup(g!, msgid) : undefined;
      if (!parent) return plain(res, 404, "No such article to reply to\n");
    }
    const values = { name: form.get("name") ?? "", email: form.get("email") ?? "", subject: form.get("subject") ?? "", body: form.get("body") ?? "" };
    const problem = checkForm(values);
    if (problem) return this.#form(req, res, g!, parent?.row, parent?.article, problem, values);
    const why = this.#mayNotPost(client, user, g!);
    if (why) return plain(res, 403, `${why}\n`);
    const limited = this.b.takePost?.({ user, client, transit: false });
    if (limited) return this.#form(req, res, g!, parent?.row, parent?.article, `Not posted: ${limited}`, values);
    const raw = compose(g!.name, values, parent?.row);
    const outcome = await this.b.ingest(raw, { kind: "web", client });
    if (outcome.kind !== "accepted") {
      this.log.info({ client, user, group: g!.name, outcome: outcome.kind, reason: outcome.reason }, "web post refused");
      return this.#form(req, res, g!, parent?.row, parent?.article, `Not posted: ${outcome.reason}`, values);
    }
    redirect(res, articleUrl(g!.name, outcome.msgid), 303);
  }
}

interface Stream {
  res: Res;
  /** The number of the last article this stream has had. */
  sent: number;
  /** Live events that came while the missed ones were read; undefined once live. */
  held?: { number: number; text: string }[];
}

/** Octets before the blank line that ends the header section. */
function headerLength(data: Buffer): number {
  const end = data.indexOf("\r\n\r\n");
  return end < 0 ? data.length : end + 2;
}

function eventText(group: string, r: OverviewRow): string {
  const data = JSON.stringify({ number: r.number, msgid: r.msgid, subject: headerDisplay(r.subject), from: authorName(headerDisplay(r.author)), date: headerDisplay(r.date), references: refsOf(r.refs), url: articleUrl(group, r.msgid) });
  return `id: ${r.number}\nevent: article\ndata: ${data}\n\n`;
}

function checkForm(v: { name: string; email: string; subject: string; body: string }): string | undefined {
  if (!v.name.trim() || !v.email.trim() || !v.subject.trim() || !v.body.trim()) return "Name, mail address, subject and text are all needed.";
  if (!/^[^\s@<>()",;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/.test(v.email.trim())) return "The mail address does not look like one (name@example.org).";
  // header injection: a line break in a one-line field would start a new header
  if (/[\r\n]/.test(v.name + v.email + v.subject)) return "Name, address and subject must be one line each.";
  if (v.body.split(/\r?\n/).some((l) => Buffer.byteLength(l) > 990)) return "A line of the text is longer than 990 octets (RFC 5322 §2.1.1); break it.";
  return undefined;
}

/** The article as a newsreader would post it; ingest adds Message-ID, Date, Path and Injection-Info (RFC 5537 §3.5). */
function compose(group: string, v: { name: string; email: string; subject: string; body: string }, parent?: OverviewRow): Buffer {
  const name = v.name.trim().replace(/["\\]/g, "");
  const lines = [
    `From: ${/^[\x20-\x7e]*$/.test(name) ? `"${name}"` : encodeWords(name, "Q", 52, true)} <${v.email.trim()}>`,
    `Newsgroups: ${group}`,
    `Subject: ${/^[\x20-\x7e]*$/.test(v.subject) ? v.subject.trim() : encodeWords(v.subject.trim(), "Q", 52, true)}`,
  ];
  if (parent) {
    // RFC 5537 §3.4.4: the parent's References, then the parent (trimmed to keep the field short)
    const refs = [...refsOf(parent.refs), parent.msgid];
    while (refs.length > 20) refs.splice(1, 1);
    lines.push(`References: ${refs.join(" ")}`);
  }
  lines.push("MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit", "User-Agent: tidings web");
  const body = v.body.replace(/\r\n?/g, "\n").replace(/\n*$/, "\n").split("\n").slice(0, -1).join("\r\n") + "\r\n";
  return Buffer.from(lines.join("\r\n") + "\r\n\r\n" + body, "utf8");
}

/** A path segment or cookie decoded; a malformed %-escape is no name at all (a 404, not a fault). */
function decoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return "";
  }
}

function numberIn(xref: string, group: string): number | undefined {
  for (const part of xref.split(" ").slice(1)) {
    const colon = part.lastIndexOf(":");
    if (part.slice(0, colon) === group) return Number(part.slice(colon + 1));
  }
  return undefined;
}

function notModified(req: http.IncomingMessage, res: Res, etag: string, lastModified: number): boolean {
  const lm = new Date(Math.floor(lastModified / 1000) * 1000);
  res.setHeader("ETag", etag);
  res.setHeader("Last-Modified", lm.toUTCString());
  res.setHeader("Cache-Control", "no-cache");
  const inm = req.headers["if-none-match"];
  const ims = req.headers["if-modified-since"];
  // RFC 9110 §13.1.2: If-None-Match wins over If-Modified-Since
  const fresh = inm !== undefined ? inm.split(/\s*,\s*/).includes(etag) : ims !== undefined && !Number.isNaN(Date.parse(ims)) && Date.parse(ims) >= lm.getTime();
  if (fresh) {
    res.writeHead(304);
    res.end();
  }
  return fresh;
}

function send(res: Res, status: number, body: string | Buffer, type: string): void {
  const data = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  res.writeHead(status, { "Content-Type": type, "Content-Length": data.length, "X-Content-Type-Options": "nosniff", "Content-Security-Policy": CSP, "Referrer-Policy": "same-origin" });
  res.end(data);
}

function redirect(res: Res, to: string, status = 301): void {
  res.writeHead(status, { Location: to, "Content-Length": 0 });
  res.end();
}

function readBody(req: http.IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on("data", (c: Buffer) => {
      n += c.length;
      if (n > max) {
        reject(new Error(`Form too large (over ${max} octets)`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
