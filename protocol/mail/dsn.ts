// Delivery status notifications (bounces and delay warnings): RFC 3464 inside
// an RFC 6522 multipart/report, as an RFC 5322 message with CRLF line ends.
//
// The message has three parts (RFC 6522 §3):
//   1. text/plain for people;
//   2. message/delivery-status (RFC 3464 §2): per-message fields, then one
//      group of per-recipient fields per recipient, groups separated by a
//      blank line;
//   3. the original: message/rfc822 byte for byte, or text/rfc822-headers
//      (RFC 6522 §4) when only its header section is returned.
//
// Internationalized mail (RFC 6531 SMTPUTF8) gets the RFC 6533 forms instead:
// report-type=global-delivery-status, message/global-delivery-status with
// "utf-8;" addresses, and message/global (RFC 6532 §3.7) or
// message/global-headers (RFC 6533 §6.3) for the original. These are body
// parts, so 8BITMIME carries them; SMTPUTF8 is needed only when the DSN's own
// envelope and To: field hold a non-ASCII address, i.e. the sender's.
//
// What is returned (`returned` in the result):
//   - returnFullMessage === true  (RET=FULL, RFC 3461 §4.3): the whole message;
//   - returnFullMessage === false (RET=HDRS): the header section only;
//   - undefined: the whole message when it is at most FULL_RETURN_LIMIT (64 KiB)
//     and at least one recipient failed; otherwise the header section. A delay
//     warning is not a bounce: the message is still queued and will still be
//     delivered, so returning it in full would only cost the sender bandwidth.
//   In every case the header section only when the original cannot be carried
//   as 8bit text over SMTP without BINARYMIME (RFC 2045 §2.8, RFC 5321
//   §4.5.3.1.6): a NUL, a bare CR or LF, or a line over 998 octets. The header
//   section is then returned with its line ends made CRLF, NULs dropped and
//   lines over 998 octets folded.

import { randomBytes } from "node:crypto";
import { formatDateHeader } from "../article/date.js";

export interface FailedRecipient {
  /** envelope address as given in RCPT TO, without angle brackets */
  recipient: string;
  action: "failed" | "delayed";
  /** RFC 3463 enhanced status code, e.g. "5.1.1"; its class follows the action */
  status: string;
  /** e.g. "smtp; 550 5.1.1 no such user"; a bare SMTP reply gets "smtp; " prepended */
  diagnostic?: string;
  /** host name or host:port of the MTA that refused or could not be reached */
  remoteMta?: string;
  /** ms since the epoch */
  lastAttempt?: number;
}

export interface DsnInput {
  /** this node's name (an ASCII host name) */
  reportingMta: string;
  /** the original's envelope sender; never "" (the caller sends no DSN for a DSN) */
  envelopeSender: string;
  /** the message as queued (the bytes received after DATA, dot-unstuffed) */
  originalMessage: Buffer;
  /** when the original arrived, ms since the epoch */
  arrivalDate: number;
  recipients: FailedRecipient[];
  /** ms since the epoch for the Date field; default Date.now() */
  now?: number;
  /** RET=FULL (true) or RET=HDRS (false); undefined: see the top of this file */
  returnFullMessage?: boolean;
  /**
   * the original was received with SMTPUTF8 (RFC 6531). Undefined: taken as
   * true when its header section holds non-ASCII octets. Non-ASCII addresses
   * make the report internationalized whatever this says.
   */
  smtpUtf8?: boolean;
}

export interface Dsn {
  /** the DSN's envelope sender: always the null reverse-path <> (RFC 5321 §4.5.5, RFC 3464 §2) */
  from: "";
  /** the DSN's one envelope recipient: the original's envelope sender */
  to: string;
  /** the whole message, header section and body, CRLF line ends */
  data: Buffer;
  /** data holds octets over 127: send it with BODY=8BITMIME (RFC 6152) */
  eightBit: boolean;
  /** the sender's address is not ASCII: send it with SMTPUTF8 (RFC 6531) */
  smtpUtf8: boolean;
  /** how much of the original the DSN carries */
  returned: "full" | "headers";
}

/** Originals up to this size are returned whole unless the caller says otherwise. */
export const FULL_RETURN_LIMIT = 64 * 1024;

const CRLF = "\r\n";
/** RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF */
const MAX_LINE = 998;

const nonAscii = (s: string) => /[^\x00-\x7f]/.test(s);

function has8bit(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] > 0x7f) return true;
  return false;
}

/** No NUL, every CR followed by LF and every LF preceded by CR, no line over 998 octets. */
export function isSmtpText(b: Buffer): boolean {
  let lineStart = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0) return false;
    if (c === 0x0d) {
      if (b[i + 1] !== 0x0a) return false;
    } else if (c === 0x0a) {
      if (i === 0 || b[i - 1] !== 0x0d) return false;
      if (i - 1 - lineStart > MAX_LINE) return false;
      lineStart = i + 1;
    }
  }
  return b.length - lineStart <= MAX_LINE;
}

/** The header section, up to and including the CRLF that ends its last field (without the blank line). */
export function headerSection(b: Buffer): Buffer {
  if (b.length >= 2 && b[0] === 0x0d && b[1] === 0x0a) return b.subarray(0, 0);
  if (b.length >= 1 && b[0] === 0x0a) return b.subarray(0, 0);
  const crlf = b.indexOf("\r\n\r\n");
  const lf = b.indexOf("\n\n");
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return b.subarray(0, crlf + 2);
  if (lf >= 0) return b.subarray(0, lf + 1);
  return b;
}

/** Text made safe for SMTP: CRLF line ends, no NUL, long lines folded; ends with CRLF unless empty. */
function toSmtpText(b: Buffer): Buffer {
  const lines = b.toString("latin1").replace(/\0/g, "").split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  const out: string[] = [];
  for (let line of lines) {
    while (line.length > MAX_LINE) {
      // a header line folded at any point gains one space when unfolded; this is only for broken input
      out.push(line.slice(0, MAX_LINE));
      line = " " + line.slice(MAX_LINE);
    }
    out.push(line);
  }
  return Buffer.from(out.map((l) => l + CRLF).join(""), "latin1");
}

/** A value safe inside one header field: no control characters (so no CR/LF to inject fields with). */
function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
}

/** Printable ASCII only: message/delivery-status is 7-bit text (RFC 3464 §2.1.1). */
function ascii(s: string): string {
  return Array.from(s, (ch) => (/[\x20-\x7e]/.test(ch) ? ch : "?")).join("");
}

/**
 * Folds a long field so that no line exceeds 998 octets, preferring to break
 * before a space near 78 (RFC 5322 §2.2.3: folding is CRLF before white space).
 */
function fold(field: string): string {
  if (field.length <= 78) return field;
  const out: string[] = [];
  let rest = field;
  while (rest.length > 78) {
    let at = rest.lastIndexOf(" ", 78);
    if (at <= 0) at = rest.indexOf(" ", 79);
    if (at <= 0 || at > MAX_LINE) {
      if (rest.length <= MAX_LINE) break;
      at = MAX_LINE - 1; // no space to fold at: break hard (unfolding adds a space)
      out.push(rest.slice(0, at));
      rest = " " + rest.slice(at);
      continue;
    }
    out.push(rest.slice(0, at));
    rest = rest.slice(at);
  }
  out.push(rest);
  return out.join(CRLF);
}

/**
 * RFC 3463 §2: class.subject.detail. A delay is always 4.X.X. A failure is
 * 5.X.X, or 4.X.X when a transient condition lasted until the message was
 * given up (RFC 3463 §2: "If this code accompanies a delivery failure report,
 * sending in the future may be successful"; Postfix reports expired mail
 * so). A 2.X.X for either is made the action's class, and a text that is not
 * a status at all becomes X.0.0 (undefined status).
 */
function statusFor(action: "failed" | "delayed", status: string): string {
  const m = /^\s*([245])\.(\d{1,3})\.(\d{1,3})\s*$/.exec(status);
  const cls = action === "delayed" ? "4" : m?.[1] === "4" ? "4" : "5";
  return m ? `${cls}.${m[2]}.${m[3]}` : `${cls}.0.0`;
}

/**
 * RFC 3464 §2.3.6: diagnostic-type ";" text. Given text without a type is an
 * SMTP reply when it starts with a reply code, otherwise our own
 * X- type (RFC 3464 §2.3.6 allows "X-" diagnostic types).
 */
function diagnosticCode(d: string): string {
  const lines = d
    .split(/\r\n|\r|\n/)
    .map((l) => ascii(l.replace(/[\x00-\x1f\x7f]/g, " ")).trim())
    .filter((l) => l !== "");
  let v = lines.join(" ");
  if (!/^(smtp|x-[a-z0-9-]+)\s*;/i.test(v)) v = (/^[2-5]\d\d(?:[ -]|$)/.test(v) ? "smtp; " : "X-Tidings; ") + v;
  return v;
}

/** "host", "host:port", "[literal]:port" or a bare IPv6 address -> { host, port }. */
export function splitHostPort(s: string): { host: string; port?: string } {
  const t = s.trim();
  if (t.startsWith("[")) {
    const end = t.indexOf("]");
    if (end > 0) {
      const port = /^:(\d+)$/.exec(t.slice(end + 1))?.[1];
      return { host: t.slice(0, end + 1), port };
    }
    return { host: t };
  }
  const m = /^([^:]+):(\d+)$/.exec(t);
  return m ? { host: m[1], port: m[2] } : { host: t };
}

/**
 * A boundary found in none of the given contents (RFC 2046 §5.1.1: it must not
 * occur in any encapsulated part). "=_" cannot start a line of base64 or
 * quoted-printable text, so a clash needs raw content; we check anyway.
 */
export function pickBoundary(contents: Buffer[], random: () => string = () => randomBytes(12).toString("hex")): string {
  for (let i = 0; i < 100; i++) {
    const b = `=_tidings_${random()}`;
    if (b.length > 70) continue; // RFC 2046 §5.1.1: at most 70 characters
    if (!contents.some((c) => c.includes(b))) return b;
  }
  throw new Error("dsn: no boundary found that is absent from the content");
}

function humanText(i: DsnInput, mta: string, anyFailed: boolean, returned: "full" | "headers", forced: boolean): string {
  const l: string[] = [];
  l.push(`This is the mail system at host ${mta}.`, "");
  const failed = i.recipients.filter((r) => r.action === "failed");
  const delayed = i.recipients.filter((r) => r.action === "delayed");
  if (anyFailed) {
    l.push(
      "I'm sorry to have to inform you that your message could not be",
      `delivered to ${failed.length === 1 ? "one recipient" : `${failed.length} recipients`}. The mail system gave up on ${failed.length === 1 ? "it" : "them"}:`,
      "",
    );
    for (const r of failed) l.push(...recipientLines(r));
  }
  if (delayed.length > 0) {
    if (anyFailed) l.push("");
    l.push(
      `Your message has not yet been delivered to ${delayed.length === 1 ? "one recipient" : `${delayed.length} recipients`}.`,
      "The mail system will keep trying; this is only a warning, you do not",
      "need to send the message again:",
      "",
    );
    for (const r of delayed) l.push(...recipientLines(r));
  }
  l.push("", `The message arrived on ${formatDateHeader(i.arrivalDate)}.`);
  if (returned === "full") l.push("It is attached below.");
  else if (forced) l.push("Its header section is attached below (the message itself is not plain SMTP text).");
  else l.push("Its header section is attached below.");
  return l.join(CRLF) + CRLF;
}

function recipientLines(r: FailedRecipient): string[] {
  const l = [`<${oneLine(r.recipient)}>:`];
  const host = r.remoteMta ? oneLine(r.remoteMta) : undefined;
  const said = r.diagnostic ? diagnosticCode(r.diagnostic).replace(/^[^;]*;\s*/, "") : undefined;
  if (host && said) l.push(...wrap(`host ${host} said: ${said}`, "    "));
  else if (said) l.push(...wrap(said, "    "));
  else if (host) l.push(...wrap(`while talking to host ${host}`, "    "));
  l.push(`    (status ${statusFor(r.action, r.status)})`);
  return l;
}

/** Word-wraps text for people at 76 columns; words longer than that are cut. */
function wrap(s: string, indent: string): string[] {
  const width = 76 - indent.length;
  const out: string[] = [];
  let line = "";
  for (let word of s.split(/\s+/).filter((w) => w !== "")) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = "";
    }
    while (word.length > width) {
      out.push(word.slice(0, width));
      word = word.slice(width);
    }
    line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out.map((l) => indent + l);
}

export function buildDsn(i: DsnInput): Dsn {
  if (i.envelopeSender === "") throw new Error("dsn: no DSN is sent to the null reverse-path (RFC 5321 §4.5.5)");
  if (i.recipients.length === 0) throw new Error("dsn: no recipients to report on");
  const now = i.now ?? Date.now();
  const mta = ascii(oneLine(i.reportingMta)).replace(/[\s<>()"]/g, "") || "localhost";
  const sender = oneLine(i.envelopeSender);
  const anyFailed = i.recipients.some((r) => r.action === "failed");

  // How much of the original goes back.
  const orig = i.originalMessage;
  const headers = headerSection(orig);
  const clean = isSmtpText(orig);
  const wantFull = i.returnFullMessage ?? (anyFailed && orig.length <= FULL_RETURN_LIMIT);
  const returned: "full" | "headers" = wantFull && clean ? "full" : "headers";
  const returnedBytes = returned === "full" ? orig : isSmtpText(headers) ? headers : toSmtpText(headers);

  // RFC 6533: international forms when an address is not ASCII, or the
  // original was (or looks like) an SMTPUTF8 message.
  const utf8Addresses = nonAscii(sender) || i.recipients.some((r) => nonAscii(r.recipient));
  const global = utf8Addresses || (i.smtpUtf8 ?? has8bit(headers));

  // Part 1: for people.
  const text = Buffer.from(humanText(i, mta, anyFailed, returned, wantFull && !clean), "utf8");

  // Part 2: RFC 3464 §2.2 per-message fields, §2.3 per-recipient fields.
  const ds: string[] = [`Reporting-MTA: dns; ${mta}`, `Arrival-Date: ${formatDateHeader(i.arrivalDate)}`];
  for (const r of i.recipients) {
    const rcpt = oneLine(r.recipient);
    ds.push("");
    // RFC 3464 §2.3.2 (rfc822 address type); RFC 6533 §3 "utf-8" type, whose
    // plain UTF-8 form is allowed in message/global-delivery-status.
    ds.push(`Final-Recipient: ${global && nonAscii(rcpt) ? "utf-8" : "rfc822"}; ${global ? rcpt : ascii(rcpt)}`);
    ds.push(`Action: ${r.action}`);
    ds.push(`Status: ${statusFor(r.action, r.status)}`);
    // RFC 3464 §2.3.5: the MTA's name; a port is no part of a DNS name
    if (r.remoteMta) {
      const host = ascii(splitHostPort(oneLine(r.remoteMta)).host);
      if (host) ds.push(`Remote-MTA: dns; ${host}`);
    }
    if (r.diagnostic && oneLine(r.diagnostic)) ds.push(fold(`Diagnostic-Code: ${diagnosticCode(r.diagnostic)}`));
    if (r.lastAttempt !== undefined) ds.push(`Last-Attempt-Date: ${formatDateHeader(r.lastAttempt)}`);
  }
  const status = Buffer.from(ds.join(CRLF) + CRLF, "utf8");

  // Part 3: the original.
  const origType =
    returned === "full"
      ? global
        ? "message/global"
        : "message/rfc822"
      : global
        ? "message/global-headers"
        : "text/rfc822-headers";
  const origHeaders = [
    `Content-Description: ${returned === "full" ? "Undelivered Message" : "Undelivered Message Headers"}`,
    `Content-Type: ${origType}`,
  ];
  // RFC 2045 §6.4 / RFC 2046 §5.2.1: a message part is not encoded, it is
  // labelled with the domain of its octets; 8bit needs 8BITMIME (RFC 6152).
  if (has8bit(returnedBytes)) origHeaders.push("Content-Transfer-Encoding: 8bit");

  const textHeaders = [
    "Content-Description: Notification",
    `Content-Type: text/plain; charset=${has8bit(text) ? "utf-8" : "us-ascii"}`,
  ];
  if (has8bit(text)) textHeaders.push("Content-Transfer-Encoding: 8bit");
  const statusHeaders = [
    `Content-Description: ${anyFailed ? "Delivery report" : "Delay report"}`,
    `Content-Type: message/${global ? "global-" : ""}delivery-status`,
  ];
  if (has8bit(status)) statusHeaders.push("Content-Transfer-Encoding: 8bit");

  const parts: [string[], Buffer][] = [
    [textHeaders, text],
    [statusHeaders, status],
    [origHeaders, returnedBytes],
  ];
  const boundary = pickBoundary([text, status, returnedBytes]);
  const body8bit = has8bit(text) || has8bit(status) || has8bit(returnedBytes);

  const subject = anyFailed ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)";
  const top = [
    `From: Mail Delivery System <MAILER-DAEMON@${mta}>`,
    `To: <${sender}>`, // RFC 6532 §3.2: UTF-8 allowed here when the DSN goes out with SMTPUTF8
    `Subject: ${subject}`,
    `Date: ${formatDateHeader(now)}`,
    `Message-ID: <${now.toString(36)}.${randomBytes(8).toString("hex")}@${mta}>`,
    // RFC 3834 §5: a response generated by software
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    // RFC 6522 §3: report-type is the subtype of the second part
    `Content-Type: multipart/report; report-type=${global ? "global-" : ""}delivery-status;${CRLF}\tboundary="${boundary}"`,
    // RFC 2045 §6.4: a multipart is labelled with the widest domain of its parts
    `Content-Transfer-Encoding: ${body8bit ? "8bit" : "7bit"}`,
  ];

  const chunks: Buffer[] = [
    Buffer.from(top.join(CRLF) + CRLF + CRLF + "This is a MIME-encapsulated message." + CRLF, "utf8"),
  ];
  for (const [h, body] of parts) {
    // RFC 2046 §5.1.1: the CRLF before "--boundary" belongs to the delimiter,
    // so each part's content is exactly `body`, whether or not it ends in CRLF.
    chunks.push(Buffer.from(`${CRLF}--${boundary}${CRLF}${h.join(CRLF)}${CRLF}${CRLF}`, "utf8"), body);
  }
  chunks.push(Buffer.from(`${CRLF}--${boundary}--${CRLF}`, "latin1"));
  const data = Buffer.concat(chunks);
  // the To: field makes the header section 8-bit when the sender is not ASCII
  return { from: "", to: i.envelopeSender, data, eightBit: has8bit(data), smtpUtf8: nonAscii(sender), returned };
}
