// HTML for the web reader: plain server-rendered pages that work without
// JavaScript and read well in w3m and lynx. Every text from an article is
// escaped here; nothing from an article ever reaches a page unescaped.
import { headerDisplay } from "../../protocol/article/encoded-words.js";
import type { StoredArticle } from "../../storage/articles.js";

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** The path segment for a Message-ID: without angle brackets, percent-encoded (public-inbox's URLs). */
export function msgidSegment(msgid: string): string {
  // "@" may stand in a path segment (RFC 3986 §3.3), and reads better
  return encodeURIComponent(msgid.replace(/^<|>$/g, "")).replace(/%40/g, "@");
}

export function msgidFromSegment(seg: string): string | undefined {
  try {
    const id = decodeURIComponent(seg);
    return /^[^<>\s]+$/.test(id) ? `<${id}>` : undefined;
  } catch {
    return undefined;
  }
}

export function articleUrl(group: string, msgid: string): string {
  return `/${encodeURIComponent(group)}/${msgidSegment(msgid)}/`;
}

/**
 * The one stylesheet and the one script, served from the node itself: the
 * Content-Security-Policy allows nothing inline and nothing from elsewhere.
 */
export const STYLE = `body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;line-height:1.4}
pre{white-space:pre-wrap;font-family:monospace}.meta{color:#555}.here{font-weight:bold}
ul.tree{list-style:none;padding-left:0}li.new{background:#ffd}nav a{margin-right:1em}form.inline{display:inline}
${Array.from({ length: 13 }, (_, d) => `.d${d}{margin-left:${d * 1.5}em}`).join("")}
`;

/** With JavaScript on, new articles appear at the top of a group page without a reload (Server-Sent Events). */
export const SCRIPT = `(function () {
  var list = document.getElementById("threads");
  if (!list || !window.EventSource || !list.dataset.events) return;
  var es = new EventSource(list.dataset.events);
  es.addEventListener("article", function (e) {
    var a = JSON.parse(e.data);
    var li = document.createElement("li");
    li.className = "new";
    var link = document.createElement("a");
    link.href = a.url;
    link.textContent = a.subject || "(no subject)";
    var meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = " " + a.from + ", new";
    li.append(link, meta);
    list.prepend(li);
  });
})();
`;

/** Nothing inline, nothing from elsewhere; forms post only here; no framing. */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The class that indents a reply at this depth in a nested thread. */
export function depthClass(depth: number): string {
  return `d${Math.min(depth, 12)}`;
}

export function page(title: string, body: string, opts: { feeds?: { atom?: string; json?: string }; script?: boolean } = {}): string {
  const links = [
    opts.feeds?.atom ? `<link rel="alternate" type="application/atom+xml" title="Atom" href="${esc(opts.feeds.atom)}">` : "",
    opts.feeds?.json ? `<link rel="alternate" type="application/feed+json" title="JSON Feed" href="${esc(opts.feeds.json)}">` : "",
  ].join("");
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>${links}
<link rel="stylesheet" href="/_/style.css">
</head><body>
${body}
${opts.script ? `<script src="/_/live.js" defer></script>` : ""}
</body></html>
`;
}

/** Header fields of a stored article as display text, by lower-cased name (first occurrence). */
export function headerFields(a: StoredArticle): Map<string, string> {
  const head = a.data.subarray(0, a.headerLen).toString("latin1");
  const out = new Map<string, string>();
  for (const field of head.split(/\r\n(?![ \t])/)) {
    const colon = field.indexOf(":");
    if (colon <= 0) continue;
    const name = field.slice(0, colon).toLowerCase();
    if (!out.has(name)) out.set(name, field.slice(colon + 1).replace(/\r\n/g, "").trim());
  }
  return out;
}

export function displayHeader(fields: Map<string, string>, name: string): string {
  return headerDisplay(fields.get(name) ?? "");
}

/**
 * The body as text: transfer encoding undone, then the charset of
 * Content-Type (UTF-8 when none is named, Latin-1 when the octets are not
 * UTF-8). Multipart bodies are shown as they are.
 */
export function bodyText(a: StoredArticle, fields: Map<string, string>): string {
  let body = a.data.subarray(Math.min(a.headerLen + 2, a.data.length));
  const cte = (fields.get("content-transfer-encoding") ?? "").toLowerCase();
  if (cte === "base64") body = Buffer.from(body.toString("latin1").replace(/[^A-Za-z0-9+/=]/g, ""), "base64");
  else if (cte === "quoted-printable") body = quotedPrintable(body);
  const charset = /charset\s*=\s*"?([A-Za-z0-9._:-]+)"?/i.exec(fields.get("content-type") ?? "")?.[1]?.toLowerCase();
  let text: string;
  try {
    text = new TextDecoder(charset ?? "utf-8", { fatal: !charset }).decode(body);
  } catch {
    text = body.toString("latin1");
  }
  return text.replace(/\r\n/g, "\n");
}

function quotedPrintable(b: Buffer): Buffer {
  const s = b.toString("latin1").replace(/=\r?\n/g, "");
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(s.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}

/** Text safe for XML 1.0 (feeds): characters it forbids are dropped. */
export function xmlSafe(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "");
}

/** "Name <addr>" or "addr (Name)" shown as the name, else the address. */
export function authorName(from: string): string {
  const angle = /^\s*"?([^"<]*?)"?\s*<[^>]*>\s*$/.exec(from);
  if (angle && angle[1]) return angle[1];
  const paren = /^\s*\S+\s*\(([^)]*)\)\s*$/.exec(from);
  if (paren && paren[1]) return paren[1];
  return from.trim();
}

export function authorAddress(from: string): string | undefined {
  return /<([^<>\s]+@[^<>\s]+)>/.exec(from)?.[1] ?? /^\s*([^\s<>()]+@[^\s<>()]+)/.exec(from)?.[1];
}
