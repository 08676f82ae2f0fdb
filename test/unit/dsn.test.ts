// Delivery status notifications (protocol/mail/dsn.ts), read back two ways:
// by Python's email package (a real MIME parser, policy=default) for the
// structure and fields, and by a small byte-level split here for what Python
// would not show exactly (the original's bytes, line lengths, line ends).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { buildDsn, pickBoundary, headerSection, isSmtpText, splitHostPort, FULL_RETURN_LIMIT, type DsnInput } from "../../protocol/mail/dsn.js";
import { parseDateHeader } from "../../protocol/article/date.js";

const PARSE = String.raw`
import sys, json, base64, email
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
def hdrs(msg): return [[k, str(v)] for k, v in msg.items()]
out = {"type": m.get_content_type(), "params": [list(p) for p in (m.get_params() or [])],
       "headers": hdrs(m), "defects": [], "parts": []}
for part in m.walk():
    out["defects"] += [type(d).__name__ for d in part.defects]
for p in m.iter_parts():
    d = {"type": p.get_content_type(), "headers": hdrs(p)}
    ct = p.get_content_type()
    if ct == "message/delivery-status":
        d["groups"] = [hdrs(g) for g in p.get_payload()]
    elif ct == "message/rfc822":
        sub = p.get_payload(0)
        d["inner_headers"] = hdrs(sub)
        d["inner_body"] = base64.b64encode(sub.get_payload(decode=True)).decode()
    elif p.get_content_maintype() == "text":
        d["text"] = p.get_content()
    out["parts"].append(d)
print(json.dumps(out))
`;

interface PyPart {
  type: string;
  headers: [string, string][];
  groups?: [string, string][][];
  inner_headers?: [string, string][];
  inner_body?: string;
  text?: string;
}
interface PyMsg {
  type: string;
  params: [string, string][];
  headers: [string, string][];
  defects: string[];
  parts: PyPart[];
}

function pyParse(data: Buffer): PyMsg {
  const out = execFileSync("python3", ["-c", PARSE], { input: data, encoding: "utf8", timeout: 20_000 });
  return JSON.parse(out) as PyMsg;
}

const field = (h: [string, string][], name: string) => h.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const one = (h: [string, string][], name: string) => {
  const v = field(h, name);
  assert.equal(v.length, 1, `exactly one ${name} field, got ${JSON.stringify(v)}`);
  return v[0];
};

/** A MIME split at the octet level: the top header block and each part's header block and exact content. */
function rawSplit(data: Buffer): { top: string; parts: { headers: string; content: Buffer }[] } {
  const sep = data.indexOf("\r\n\r\n");
  assert.ok(sep > 0, "the DSN has a header section");
  const top = data.subarray(0, sep + 2).toString("latin1");
  const m = /boundary="([^"]+)"/.exec(top.replace(/\r\n[ \t]/g, " "));
  assert.ok(m, "the DSN names its boundary");
  const delim = Buffer.from(`\r\n--${m[1]}`);
  const body = data.subarray(sep + 2); // keep the CRLF before the first delimiter (RFC 2046 §5.1.1)
  const parts: { headers: string; content: Buffer }[] = [];
  let at = body.indexOf(delim);
  assert.ok(at >= 0, "the body has a first delimiter");
  for (;;) {
    const after = at + delim.length;
    const tail = body.subarray(after, after + 2).toString("latin1");
    if (tail === "--") {
      assert.equal(body.subarray(after + 2).toString("latin1"), "\r\n", "nothing but CRLF after the close delimiter");
      break;
    }
    assert.equal(tail, "\r\n", "a delimiter line ends at CRLF");
    const next = body.indexOf(delim, after);
    assert.ok(next > 0, "every part is followed by a delimiter");
    const part = body.subarray(after + 2, next);
    const hsep = part.indexOf("\r\n\r\n");
    parts.push({ headers: part.subarray(0, hsep + 2).toString("utf8"), content: part.subarray(hsep + 4) });
    at = next;
  }
  return { top, parts };
}

function assertWellFormedLines(data: Buffer): void {
  const s = data.toString("latin1");
  assert.doesNotMatch(s, /\r(?!\n)|(?<!\r)\n/, "only CRLF line ends");
  assert.doesNotMatch(s, /\0/, "no NUL");
  for (const line of s.split("\r\n")) assert.ok(line.length <= 998, `line of ${line.length} octets`);
}

const NOW = Date.UTC(2024, 2, 5, 10, 20, 30);
const ARRIVED = Date.UTC(2024, 2, 5, 9, 0, 0);
const TRIED = Date.UTC(2024, 2, 5, 10, 20, 0);

const ORIGINAL = Buffer.from(
  "Return-Path: <alice@example.org>\r\n" +
    "From: Alice <alice@example.org>\r\n" +
    "To: bob@example.net\r\n" +
    "Subject: lunch\r\n" +
    "Message-ID: <lunch.1@example.org>\r\n" +
    "\r\n" +
    "From the kitchen: are we on?\r\n" +
    ".a line that began with a dot\r\n" +
    "..and two\r\n" +
    "--=_tidings_ not a boundary\r\n" +
    "\r\n" +
    "-- \r\n" +
    "Alice\r\n",
  "latin1",
);

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: "relay.tidings.test",
    envelopeSender: "alice@example.org",
    originalMessage: ORIGINAL,
    arrivalDate: ARRIVED,
    now: NOW,
    recipients: [
      {
        recipient: "bob@example.net",
        action: "failed",
        status: "5.1.1",
        diagnostic: "smtp; 550 5.1.1 <bob@example.net>: no such user",
        remoteMta: "mx.example.net:2525",
        lastAttempt: TRIED,
      },
    ],
    ...over,
  };
}

test("a bounce is a multipart/report a real MIME parser reads: fields, parts, and the original byte for byte", () => {
  const d = buildDsn(input());
  assert.equal(d.from, "");
  assert.equal(d.to, "alice@example.org");
  assert.equal(d.eightBit, false);
  assert.equal(d.smtpUtf8, false);
  assert.equal(d.returned, "full");
  assertWellFormedLines(d.data);

  const py = pyParse(d.data);
  assert.deepEqual(py.defects, [], "Python's parser found no defects");
  assert.equal(py.type, "multipart/report");
  assert.deepEqual(py.params.find(([k]) => k === "report-type"), ["report-type", "delivery-status"]);
  assert.equal(one(py.headers, "From"), "Mail Delivery System <MAILER-DAEMON@relay.tidings.test>");
  assert.equal(one(py.headers, "To"), "alice@example.org");
  assert.equal(one(py.headers, "Subject"), "Undelivered Mail Returned to Sender");
  assert.equal(one(py.headers, "Auto-Submitted"), "auto-replied");
  assert.equal(one(py.headers, "MIME-Version"), "1.0");
  assert.equal(parseDateHeader(one(py.headers, "Date")), NOW);
  assert.match(one(py.headers, "Message-ID"), /^<[^<>@\s]+@relay\.tidings\.test>$/);

  assert.deepEqual(py.parts.map((p) => p.type), ["text/plain", "message/delivery-status", "message/rfc822"]);
  const [text, status, orig] = py.parts;
  assert.match(text.text!, /bob@example\.net/);
  assert.match(text.text!, /550 5\.1\.1/);

  const [msgFields, rcpt] = status.groups!;
  assert.equal(status.groups!.length, 2, "one per-message group and one per-recipient group");
  assert.equal(one(msgFields, "Reporting-MTA"), "dns; relay.tidings.test");
  assert.equal(parseDateHeader(one(msgFields, "Arrival-Date")), ARRIVED);
  assert.equal(one(rcpt, "Final-Recipient"), "rfc822; bob@example.net");
  assert.equal(one(rcpt, "Action"), "failed");
  assert.equal(one(rcpt, "Status"), "5.1.1");
  assert.equal(one(rcpt, "Remote-MTA"), "dns; mx.example.net", "the port is no part of the MTA's DNS name");
  assert.equal(one(rcpt, "Diagnostic-Code"), "smtp; 550 5.1.1 <bob@example.net>: no such user");
  assert.equal(parseDateHeader(one(rcpt, "Last-Attempt-Date")), TRIED);

  const body = ORIGINAL.subarray(ORIGINAL.indexOf("\r\n\r\n") + 4);
  assert.deepEqual(Buffer.from(orig.inner_body!, "base64"), body, "Python sees the original body");
  assert.equal(one(orig.inner_headers!, "Message-ID"), "<lunch.1@example.org>");

  const raw = rawSplit(d.data);
  assert.equal(raw.parts.length, 3);
  assert.ok(raw.parts[2].content.equals(ORIGINAL), "the message/rfc822 part is the original, byte for byte");
  assert.doesNotMatch(raw.parts[2].headers, /Content-Transfer-Encoding/i, "7-bit original: no 8bit label");
  assert.match(raw.top, /^Content-Transfer-Encoding: 7bit\r$/m);
});

test("8-bit original: message/rfc822 labelled 8bit, the whole report 8bit, eightBit set, bytes exact", () => {
  const orig = Buffer.concat([
    Buffer.from("From: a@example.org\r\nSubject: caf", "latin1"),
    Buffer.from([0xc3, 0xa9]),
    Buffer.from("\r\n\r\nbody \xff\xfe\x80 octets\r\n", "latin1"),
  ]);
  const d = buildDsn(input({ originalMessage: orig, smtpUtf8: false }));
  assert.equal(d.eightBit, true);
  assert.equal(d.smtpUtf8, false);
  const raw = rawSplit(d.data);
  assert.match(raw.top, /^Content-Transfer-Encoding: 8bit\r$/m);
  assert.match(raw.parts[2].headers, /^Content-Type: message\/rfc822\r$/m);
  assert.match(raw.parts[2].headers, /^Content-Transfer-Encoding: 8bit\r$/m);
  assert.ok(raw.parts[2].content.equals(orig));
  const py = pyParse(d.data);
  assert.deepEqual(py.defects, []);
  assert.deepEqual(Buffer.from(py.parts[2].inner_body!, "base64"), orig.subarray(orig.indexOf("\r\n\r\n") + 4));
});

test("an original that does not end in CRLF comes back exactly, without one added", () => {
  const orig = Buffer.from("Subject: x\r\n\r\nno newline at the end", "latin1");
  const d = buildDsn(input({ originalMessage: orig }));
  assert.ok(rawSplit(d.data).parts[2].content.equals(orig));
  assertWellFormedLines(d.data);
});

test("large originals come back as headers only unless RET=FULL; RET=HDRS always headers", () => {
  const big = Buffer.concat([ORIGINAL, Buffer.from("x".repeat(70) + "\r\n").subarray(0, 72)]);
  const large = Buffer.concat([big, Buffer.alloc(FULL_RETURN_LIMIT, "y\r\n")]);
  assert.ok(isSmtpText(large));
  const hdrs = headerSection(ORIGINAL);
  assert.equal(hdrs.toString("latin1"), ORIGINAL.toString("latin1").split("\r\n\r\n")[0] + "\r\n");

  const d = buildDsn(input({ originalMessage: large }));
  assert.equal(d.returned, "headers");
  const raw = rawSplit(d.data);
  assert.match(raw.parts[2].headers, /^Content-Type: text\/rfc822-headers\r$/m);
  assert.ok(raw.parts[2].content.equals(hdrs));
  assert.ok(d.data.length < 4096, "the body stayed behind");
  const py = pyParse(d.data);
  assert.deepEqual(py.defects, []);
  assert.equal(py.parts[2].type, "text/rfc822-headers");

  const full = buildDsn(input({ originalMessage: large, returnFullMessage: true }));
  assert.equal(full.returned, "full");
  assert.ok(rawSplit(full.data).parts[2].content.equals(large));

  const small = buildDsn(input({ returnFullMessage: false }));
  assert.equal(small.returned, "headers");
  assert.ok(rawSplit(small.data).parts[2].content.equals(hdrs));
});

test("a delay warning: Action delayed, a 4.X.X status (the class follows the action), headers only", () => {
  const d = buildDsn(
    input({
      recipients: [
        { recipient: "carol@example.net", action: "delayed", status: "5.4.7", diagnostic: "connect to mx.example.net: Connection refused" },
      ],
    }),
  );
  assert.equal(d.returned, "headers");
  const py = pyParse(d.data);
  assert.deepEqual(py.defects, []);
  assert.equal(one(py.headers, "Subject"), "Delayed Mail (still being retried)");
  const rcpt = py.parts[1].groups![1];
  assert.equal(one(rcpt, "Action"), "delayed");
  assert.equal(one(rcpt, "Status"), "4.4.7");
  assert.equal(one(rcpt, "Diagnostic-Code"), "X-Tidings; connect to mx.example.net: Connection refused");
  assert.deepEqual(field(rcpt, "Remote-MTA"), []);
  assert.deepEqual(field(rcpt, "Last-Attempt-Date"), []);
  assert.match(py.parts[0].text!, /will keep trying/);
});

test("several recipients: one group each, in order; a bare SMTP reply gets the smtp type; bad status becomes X.0.0", () => {
  const d = buildDsn(
    input({
      recipients: [
        { recipient: "a@x.test", action: "failed", status: "5.2.2", diagnostic: "552 5.2.2 mailbox full", remoteMta: "[192.0.2.1]:25" },
        { recipient: "b@x.test", action: "delayed", status: "4.4.1", remoteMta: "mx.x.test" },
        { recipient: "c@x.test", action: "failed", status: "bogus" },
      ],
    }),
  );
  const py = pyParse(d.data);
  assert.deepEqual(py.defects, []);
  const groups = py.parts[1].groups!;
  assert.equal(groups.length, 4);
  assert.deepEqual(groups.slice(1).map((g) => one(g, "Final-Recipient")), ["rfc822; a@x.test", "rfc822; b@x.test", "rfc822; c@x.test"]);
  assert.deepEqual(groups.slice(1).map((g) => one(g, "Action")), ["failed", "delayed", "failed"]);
  assert.deepEqual(groups.slice(1).map((g) => one(g, "Status")), ["5.2.2", "4.4.1", "5.0.0"]);
  assert.equal(one(groups[1], "Diagnostic-Code"), "smtp; 552 5.2.2 mailbox full");
  assert.equal(one(groups[1], "Remote-MTA"), "dns; [192.0.2.1]");
  assert.equal(one(py.headers, "Subject"), "Undelivered Mail Returned to Sender");
  assert.equal(d.returned, "full");
});

test("multi-line and very long diagnostics: folded, no line over 998 octets, value kept", () => {
  const long = "550 5.7.1 " + "blocked ".repeat(300);
  const d = buildDsn(
    input({
      recipients: [
        { recipient: "a@x.test", action: "failed", status: "5.7.1", diagnostic: "550-5.7.1 first line\r\n550 5.7.1 second line" },
        { recipient: "b@x.test", action: "failed", status: "5.7.1", diagnostic: long + "z".repeat(1500) },
      ],
    }),
  );
  assertWellFormedLines(d.data);
  const groups = pyParse(d.data).parts[1].groups!;
  assert.equal(one(groups[1], "Diagnostic-Code"), "smtp; 550-5.7.1 first line 550 5.7.1 second line");
  const v = one(groups[2], "Diagnostic-Code").replace(/\s+/g, " ");
  assert.ok(v.startsWith("smtp; 550 5.7.1 blocked blocked"), v.slice(0, 40));
  assert.equal(v.replace(/ /g, ""), ("smtp;" + long + "z".repeat(1500)).replace(/ /g, ""));
});

test("CR/LF in addresses cannot inject header fields or report fields", () => {
  const d = buildDsn(
    input({
      envelopeSender: "alice@example.org\r\nBcc: eve@evil.test",
      recipients: [{ recipient: "bob@x.test\r\nAction: delivered", action: "failed", status: "5.1.1", remoteMta: "h\r\nX: y" }],
    }),
  );
  const s = d.data.toString("latin1");
  assert.doesNotMatch(s, /^Bcc:/m);
  assert.doesNotMatch(s, /^Action: delivered/m);
  assert.doesNotMatch(s, /^X: y/m);
  assertWellFormedLines(d.data);
});

test("internationalized (RFC 6533): UTF-8 recipient -> global-delivery-status and utf-8 address type; 8BITMIME suffices", () => {
  const orig = Buffer.from("From: a@example.org\r\nTo: jürgen@bücher.example\r\nSubject: Grüße\r\n\r\nHallo\r\n", "utf8");
  const d = buildDsn(
    input({
      originalMessage: orig,
      recipients: [{ recipient: "jürgen@bücher.example", action: "failed", status: "5.1.1", diagnostic: "smtp; 550 5.1.1 unknown ü" }],
    }),
  );
  assert.equal(d.eightBit, true);
  assert.equal(d.smtpUtf8, false, "the DSN's own envelope and header fields are ASCII");
  const raw = rawSplit(d.data);
  assert.match(raw.top, /report-type=global-delivery-status;/);
  assert.match(raw.parts[0].headers, /charset=utf-8/);
  assert.match(raw.parts[1].headers, /^Content-Type: message\/global-delivery-status\r$/m);
  assert.match(raw.parts[1].content.toString("utf8"), /^Final-Recipient: utf-8; jürgen@bücher\.example\r$/m);
  assert.match(raw.parts[1].content.toString("utf8"), /^Diagnostic-Code: smtp; 550 5\.1\.1 unknown \?\r$/m, "diagnostics are kept ASCII");
  assert.match(raw.parts[2].headers, /^Content-Type: message\/global\r$/m);
  assert.match(raw.parts[2].headers, /^Content-Transfer-Encoding: 8bit\r$/m);
  assert.ok(raw.parts[2].content.equals(orig));
  assert.deepEqual(pyParse(d.data).defects, []);

  // UTF-8 headers and nothing said about SMTPUTF8: taken as an SMTPUTF8 message
  const guessed = buildDsn(input({ originalMessage: orig }));
  assert.match(rawSplit(guessed.data).parts[2].headers, /^Content-Type: message\/global\r$/m);
  // explicitly legacy 8-bit headers: message/rfc822 8bit
  const legacy = buildDsn(input({ originalMessage: orig, smtpUtf8: false }));
  assert.match(rawSplit(legacy.data).parts[2].headers, /^Content-Type: message\/rfc822\r$/m);
});

test("a UTF-8 sender needs SMTPUTF8 for the DSN itself", () => {
  const d = buildDsn(input({ envelopeSender: "josé@exämple.org" }));
  assert.equal(d.smtpUtf8, true);
  assert.equal(d.eightBit, true);
  assert.equal(d.to, "josé@exämple.org");
  assert.match(d.data.toString("utf8"), /^To: <josé@exämple\.org>\r$/m);
  assert.match(rawSplit(d.data).top, /report-type=global-delivery-status/);
});

test("an original that is not SMTP text (bare LF, NUL) comes back as its header section made CRLF, even with RET=FULL", () => {
  const orig = Buffer.from("Subject: bare\nFrom: a@b.test\n\nline\0one\nline two\n", "latin1");
  assert.equal(isSmtpText(orig), false);
  const d = buildDsn(input({ originalMessage: orig, returnFullMessage: true }));
  assert.equal(d.returned, "headers");
  assertWellFormedLines(d.data);
  assert.equal(rawSplit(d.data).parts[2].content.toString("latin1"), "Subject: bare\r\nFrom: a@b.test\r\n");
  assert.match(pyParse(d.data).parts[0].text!, /not plain SMTP text/);
});

test("the boundary never occurs in the content", () => {
  const taken = "=_tidings_aaaa";
  const seq = ["aaaa", "aaaa", "bbbb"];
  const b = pickBoundary([Buffer.from(`x\r\n--${taken}\r\n`)], () => seq.shift()!);
  assert.equal(b, "=_tidings_bbbb");
  assert.throws(() => pickBoundary([Buffer.from(taken)], () => "aaaa"));
  // and in a real report
  const d = buildDsn(input());
  const boundary = /boundary="([^"]+)"/.exec(d.data.toString("latin1"))![1];
  assert.ok(!ORIGINAL.includes(boundary));
});

test("host:port forms", () => {
  assert.deepEqual(splitHostPort("mx.example:25"), { host: "mx.example", port: "25" });
  assert.deepEqual(splitHostPort("mx.example"), { host: "mx.example" });
  assert.deepEqual(splitHostPort("[IPv6:2001:db8::1]:587"), { host: "[IPv6:2001:db8::1]", port: "587" });
  assert.deepEqual(splitHostPort("2001:db8::1"), { host: "2001:db8::1" });
});

test("no DSN to the null sender, and none without recipients", () => {
  assert.throws(() => buildDsn(input({ envelopeSender: "" })), /null reverse-path/);
  assert.throws(() => buildDsn(input({ recipients: [] })));
});
