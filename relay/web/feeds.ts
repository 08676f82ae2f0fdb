// Atom (RFC 4287, with the threading extension of RFC 4685) and JSON Feed 1.1
// for a group or a thread. XML is built by xmlbuilder2, never by templates.
import { create } from "xmlbuilder2";
import type { StoredArticle, OverviewRow } from "../../storage/articles.js";
import { headerDisplay } from "../../protocol/article/encoded-words.js";
import { articleUrl, authorAddress, authorName, bodyText, headerFields, xmlSafe } from "./render.js";
import { refsOf } from "./threads.js";

export interface FeedEntry {
  row: OverviewRow;
  article: StoredArticle;
}

export interface FeedInfo {
  /** Absolute URL of the site, without a trailing slash. */
  base: string;
  group: string;
  title: string;
  /** Absolute URL of the feed itself. */
  self: string;
  /** Absolute URL of the page it follows. */
  html: string;
  updated: Date;
}

/** Longest text of a body in a feed entry; the page has the rest. */
const MAX_CONTENT = 64 * 1024;

function dateOf(row: OverviewRow): Date {
  const d = new Date(headerDisplay(row.date));
  return Number.isNaN(d.getTime()) ? new Date(row.arrived) : d;
}

function content(e: FeedEntry): string {
  const t = bodyText(e.article, headerFields(e.article));
  return t.length > MAX_CONTENT ? t.slice(0, MAX_CONTENT) + "\n[…]" : t;
}

export function atom(info: FeedInfo, entries: FeedEntry[]): string {
  const feed = create({ version: "1.0", encoding: "UTF-8" }).ele("feed", { xmlns: "http://www.w3.org/2005/Atom", "xmlns:thr": "http://purl.org/syndication/thread/1.0" });
  feed.ele("id").txt(xmlSafe(info.self)).up();
  feed.ele("title").txt(xmlSafe(info.title)).up();
  feed.ele("updated").txt(info.updated.toISOString()).up();
  feed.ele("link", { rel: "self", type: "application/atom+xml", href: info.self }).up();
  feed.ele("link", { rel: "alternate", type: "text/html", href: info.html }).up();
  feed.ele("generator").txt("tidings").up();
  for (const e of entries) {
    const url = info.base + articleUrl(info.group, e.row.msgid);
    const from = headerDisplay(e.row.author);
    const entry = feed.ele("entry");
    entry.ele("id").txt(xmlSafe(url)).up();
    entry.ele("title").txt(xmlSafe(headerDisplay(e.row.subject))).up();
    entry.ele("updated").txt(dateOf(e.row).toISOString()).up();
    const author = entry.ele("author");
    author.ele("name").txt(xmlSafe(authorName(from))).up();
    const addr = authorAddress(from);
    if (addr) author.ele("email").txt(xmlSafe(addr)).up();
    author.up();
    entry.ele("link", { rel: "alternate", type: "text/html", href: url }).up();
    // RFC 4685 §3: the entry this one answers, by the id its own entry would have
    const parent = refsOf(e.row.refs).pop();
    if (parent) {
      const ref = info.base + articleUrl(info.group, parent);
      entry.ele("thr:in-reply-to", { ref, href: ref, type: "text/html" }).up();
    }
    entry.ele("content", { type: "text" }).txt(xmlSafe(content(e))).up();
    entry.up();
  }
  return feed.end({ prettyPrint: true }) + "\n";
}

/** JSON Feed 1.1 (https://jsonfeed.org/version/1.1). */
export function jsonFeed(info: FeedInfo, entries: FeedEntry[]): string {
  return (
    JSON.stringify(
      {
        version: "https://jsonfeed.org/version/1.1",
        title: info.title,
        home_page_url: info.html,
        feed_url: info.self,
        items: entries.map((e) => {
          const url = info.base + articleUrl(info.group, e.row.msgid);
          const from = headerDisplay(e.row.author);
          const parent = refsOf(e.row.refs).pop();
          return {
            id: url,
            url,
            title: headerDisplay(e.row.subject),
            content_text: content(e),
            date_published: dateOf(e.row).toISOString(),
            authors: [{ name: authorName(from) }],
            _tidings: { message_id: e.row.msgid, in_reply_to: parent ?? null, number: e.row.number },
          };
        }),
      },
      null,
      2,
    ) + "\n"
  );
}
