// Byte fixtures for the framer and the article syntax, including the cases that break naive code.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Framer, type Mode } from "../../protocol/nntp/framer.js";
import { stuffBlock } from "../../protocol/nntp/reply.js";
import { isMessageId } from "../../protocol/article/msgid.js";
import { isNewsgroupName, parseNewsgroups } from "../../protocol/article/newsgroups.js";
import { pathIdentities, pathNames } from "../../protocol/article/path.js";
import { parseDateHeader, parseNntpDate } from "../../protocol/article/date.js";
import { parseHeaders, Headers, HeaderError } from "../../protocol/article/headers.js";
import { stuff } from "../helpers/client.js";

type Ev = { line?: string; tooLong?: number; block?: string; tooBig?: boolean; size?: number };

function framer(opts: { maxLine?: number; maxBlock?: number; after?: (e: Ev) => Mode } = {}) {
  const events: Ev[] = [];
  const f = new Framer(
    {
      line: (t) => {
        const e = { line: t };
        events.push(e);
        return opts.after?.(e) ?? (t.startsWith("TAKETHIS") || t === "BLOCK" ? "block" : t === "WAIT" ? "wait" : "line");
      },
      lineTooLong: (n) => (events.push({ tooLong: n }), "line"),
      block: (d, size, tooBig) => (events.push({ block: d.toString("latin1"), size, tooBig }), "line"),
    },
    { maxLine: opts.maxLine ?? 512, maxBlock: opts.maxBlock ?? 1 << 20 },
  );
  return { f, events };
}

test("a block's terminator split across two chunks at every offset", () => {
  const wire = Buffer.from("TAKETHIS <a@b>\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\nDATE\r\n");
  for (let cut = 1; cut < wire.length; cut++) {
    const { f, events } = framer();
    f.push(wire.subarray(0, cut));
    f.push(wire.subarray(cut));
    assert.deepEqual(events, [
      { line: "TAKETHIS <a@b>" },
      { block: "Subject: x\r\n\r\n.dot\r\nbody\r\n", size: 26, tooBig: false },
      { line: "DATE" },
    ], `cut at ${cut}`);
  }
});

test("one byte at a time, a bare LF line end, an empty block and 8-bit bytes", () => {
  const wire = Buffer.concat([Buffer.from("BLOCK\r\n.\r\nBLOCK\nline\n\xe9\xff\x00\r\n.\nQUIT\n", "latin1")]);
  const { f, events } = framer();
  for (const b of wire) f.push(Buffer.from([b]));
  assert.deepEqual(events, [
    { line: "BLOCK" },
    { block: "", size: 0, tooBig: false },
    { line: "BLOCK" },
    { block: "line\n\xe9\xff\x00\r\n", size: 10, tooBig: false },
    { line: "QUIT" },
  ]);
});

test("a command line over the limit is reported once and the next one is read", () => {
  const { f, events } = framer();
  f.push(Buffer.from("X".repeat(300)));
  f.push(Buffer.from("Y".repeat(300) + "\r\nDATE\r\n"));
  assert.deepEqual(events, [{ tooLong: 602 }, { line: "DATE" }]);
});

test("a block over the bound is read to its end, kept nowhere, and reported too big", () => {
  const { f, events } = framer({ maxBlock: 100 });
  f.push(Buffer.from("BLOCK\r\n" + "x".repeat(70) + "\r\n" + "y".repeat(70) + "\r\n.\r\nDATE\r\n"));
  assert.deepEqual(events, [{ line: "BLOCK" }, { block: "", size: 144, tooBig: true }, { line: "DATE" }]);
});

test("wait mode holds bytes until resume", () => {
  const { f, events } = framer();
  f.push(Buffer.from("WAIT\r\nSubject: held\r\n\r\nbody\r\n.\r\nDATE\r\n"));
  assert.deepEqual(events, [{ line: "WAIT" }]);
  f.resume("block");
  assert.deepEqual(events.slice(1), [{ block: "Subject: held\r\n\r\nbody\r\n", size: 23, tooBig: false }, { line: "DATE" }]);
});

test("property: any body, stuffed and cut anywhere, comes back byte for byte", () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constantFrom(".", "..", ".\r", "", " .", "\xff\xe9"), fc.string({ maxLength: 20 }).map((s) => s.replace(/[\r\n]/g, ""))), { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (lines, cuts) => {
        const body = lines.map((l) => l + "\r\n").join("");
        const wire = Buffer.concat([Buffer.from("BLOCK\r\n"), stuff(Buffer.from(body, "latin1")), Buffer.from("DATE\r\n")]);
        const { f, events } = framer();
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        let at = 0;
        for (const p of [...points, wire.length]) {
          f.push(wire.subarray(at, p));
          at = p;
        }
        assert.equal(events[1].block, body);
        assert.deepEqual(events[2], { line: "DATE" });
        // and what we send back is what we were sent
        assert.equal(Buffer.concat(stuffBlock(Buffer.from(body, "latin1"))).toString("latin1"), stuff(Buffer.from(body, "latin1")).toString("latin1"));
      },
    ),
    { numRuns: 300 },
  );
});

test("Message-ID, newsgroup name and Path syntax", () => {
  assert.ok(isMessageId("<abc@example.org>"));
  for (const bad of ["abc@example.org", "<abc>", "<a b@c>", "<a@b", "<>", `<${"x".repeat(250)}@y>`, "<a<b@c>"]) assert.ok(!isMessageId(bad), bad);
  assert.ok(isNewsgroupName("comp.lang.c++"));
  for (const bad of ["", "a..b", ".a", "a b", "a,b"]) assert.ok(!isNewsgroupName(bad), bad);
  assert.deepEqual(parseNewsgroups("a.b, c.d,a.b"), ["a.b", "c.d"]);
  assert.throws(() => parseNewsgroups("a.b,,c"), /Invalid newsgroup name/);
  assert.deepEqual(pathIdentities("n2.test!n1.test!.POSTED!not-for-mail"), ["n2.test", "n1.test"]);
  assert.ok(pathNames("a!B.example!c!not-for-mail", "b.example"));
  assert.ok(!pathNames("a!bb.example!not-for-mail", "b.example"));
});

test("dates: RFC 5322 forms and NNTP arguments", () => {
  assert.equal(parseDateHeader("Tue, 24 Nov 2026 10:00:00 +0100"), Date.UTC(2026, 10, 24, 9, 0, 0));
  assert.equal(parseDateHeader("24 Nov 26 10:00 GMT"), Date.UTC(2026, 10, 24, 10, 0, 0));
  assert.equal(parseDateHeader("Wed, 25 Nov 2026 03:41:26 -0000 (UTC)"), Date.UTC(2026, 10, 25, 3, 41, 26));
  assert.equal(parseDateHeader("yesterday"), undefined);
  assert.equal(parseNntpDate("20261124", "235959"), Date.UTC(2026, 10, 24, 23, 59, 59));
  assert.equal(parseNntpDate("261124", "000000"), Date.UTC(2026, 10, 24));
  assert.equal(parseNntpDate("2026124", "000000"), undefined);
  assert.equal(parseNntpDate("20261324", "000000"), undefined);
});

test("headers: folded values, order kept, malformed lines refused", () => {
  const raw = Buffer.from("Subject: a\r\n\tfolded\r\nX-Y: z\r\n\r\nbody\r\n");
  const p = parseHeaders(raw);
  const h = new Headers(p.fields);
  assert.equal(h.get("subject"), "a\tfolded");
  assert.equal(raw.subarray(p.bodyStart).toString(), "body\r\n");
  assert.equal(h.serialize(), "Subject: a\r\n\tfolded\r\nX-Y: z\r\n");
  assert.throws(() => parseHeaders(Buffer.from("no colon here\r\n\r\nb")), HeaderError);
  assert.throws(() => parseHeaders(Buffer.from(" starts folded\r\n\r\nb")), HeaderError);
});

test("Headers.bytes() is serialize() as bytes, whatever was set, prepended or removed, folded or 8-bit", () => {
  const name = fc.constantFrom("Path", "From", "Subject", "Xref", "X-Long", "Message-ID");
  const value = fc.string({ unit: fc.constantFrom(..."ab \t\xe9\xff<>@!"), minLength: 1, maxLength: 12 });
  const field = fc.tuple(name, value, fc.option(value)).map(([n, v, fold]) => `${n}: ${v}${fold === null ? "" : `\r\n ${fold}`}`);
  const op = fc.oneof(
    fc.tuple(fc.constant("set"), name, value),
    fc.tuple(fc.constant("prepend"), name, value),
    fc.tuple(fc.constant("remove"), name, fc.constant("")),
  );
  fc.assert(
    fc.property(fc.array(field, { minLength: 1, maxLength: 8 }), fc.array(op, { maxLength: 4 }), fc.constantFrom("\r\n\r\nbody\r\n", "\r\n", ""), (fields, ops, end) => {
      const raw = Buffer.from(fields.join("\r\n") + end, "latin1");
      const parsed = parseHeaders(raw, { strict: false });
      const h = new Headers(parsed.fields, raw);
      for (const [kind, n, v] of ops) {
        if (kind === "set") h.set(n, v);
        else if (kind === "prepend") h.prepend(n, v);
        else h.remove(n.toLowerCase());
      }
      assert.deepEqual(h.bytes(), Buffer.from(h.serialize(), "latin1"));
    }),
    { numRuns: 2000 },
  );
});
