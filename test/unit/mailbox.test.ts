// The From header as an RFC 5322 §3.4 mailbox-list (RFC 5536 §3.1.2, RFC 6532 §3.2).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SIMPLE_MAILBOX, fullMailboxListError, mailboxListError } from "../../protocol/article/mailbox.js";

const valid = [
  "a@b",
  "user@example.org",
  "User <user@example.org>",
  '"Doe, John" <john@example.org>',
  "john@example.org (John Doe)",
  "J. Random Hacker <jrh@example.org>",
  "=?UTF-8?Q?J=C3=B6rg?= <j@example.de>",
  "Jörg <jörg@exämple.de>",
  // the same, as the latin1-decoded UTF-8 octets the header parser hands over
  Buffer.from("Jörg <jörg@exämple.de>", "utf8").toString("latin1"),
  '"a\\"b" <x@y>',
  "<x@[127.0.0.1]>",
  "a@b, c@d",
  "Test Poster <poster@example.org>",
  "poster@example.org",
  "  x@y  ",
  '"quoted local"@example.org',
  "Name (comment) <a@b>",
  // a few more the grammar allows
  "a.b.c@d.e.f",
  "a @ b",
  "(c) a@b (d (nested) \\) e)",
  "<a@b> (trailing comment)",
  "\tName\t<a@b>",
  '"Doe, John" <john@example.org>, "x" <y@z>, p@q (P)',
  "A <a@b>,B <c@d>",
  '"quoted (not a comment)" <a@b>',
  "Name <\"x y\"@[IPv6:::1]>",
  "Mr. Smith Jr. <s@x.org>",
];

const invalid = [
  "",
  "   ",
  "@",
  "\x00@\x00",
  "a@",
  "@b",
  "a@b@c",
  "<a@b",
  "a@b>",
  "Name",
  "Name <>",
  "Name <a>",
  "a b@c",
  "a..b@c",
  ".a@c",
  "a@b..c",
  '"unterminated@x',
  "(unbalanced a@b",
  "a@b,",
  ",a@b",
  "a@b,,c@d",
  "tab\tin@local",
  "x@y\x7f",
  "x\r\n@y",
  "Name <a@b> trailing",
  // more
  "a.@b",
  "a@b.",
  "a@.b",
  "a . b@c",
  '"a".b@c',
  "a@b)",
  "a\\b@c",
  "a@[1.2.3.4",
  "a@[1[2]",
  "<@r,@s:a@b>",
  "group: a@b;",
  "Name <a@b",
  "<a@b><c@d>",
  ". Name <a@b>",
  "(comment only)",
  '"a@b" "c"@d',
  "a@b c",
];

test("valid mailbox lists are accepted", () => {
  for (const v of valid) assert.equal(mailboxListError(v), undefined, JSON.stringify(v));
});

test("invalid mailbox lists are refused with a short printable reason", () => {
  for (const v of invalid) {
    const r = mailboxListError(v);
    assert.equal(typeof r, "string", JSON.stringify(v));
    assert.match(r!, /^[\x20-\x7e]{1,100}$/, `${JSON.stringify(v)} -> ${JSON.stringify(r)}`);
  }
});

test("specific reasons", () => {
  assert.equal(mailboxListError("\x00@\x00"), "control character 0x00");
  assert.equal(mailboxListError("x@y\x7f"), "control character 0x7f");
  assert.equal(mailboxListError("x\r\n@y"), "control character 0x0d");
  assert.equal(mailboxListError('"a\x01b"@c'), "control character 0x01");
  assert.equal(mailboxListError("a@b (x\x1by)"), "control character 0x1b");
  assert.equal(mailboxListError("Name"), "no address in angle brackets or addr-spec");
  assert.equal(mailboxListError("(unbalanced a@b"), "unbalanced comment");
  assert.equal(mailboxListError("a@b)"), "unbalanced comment");
  assert.equal(mailboxListError("@b"), "empty local part");
  assert.match(mailboxListError("a@b..c")!, /^invalid domain/);
  assert.match(mailboxListError("Name <a@b> trailing")!, /^text after address/);
});

test("echoed input is clipped and printable", () => {
  const r = mailboxListError(`<a@b> ${"é".repeat(30)}${"x".repeat(200)}`)!;
  assert.ok(r.startsWith("text after address"), r);
  assert.ok(r.length < 70, r);
  assert.match(r, /^[\x20-\x7e]+$/);
});

test("adversarial inputs are refused quickly", () => {
  for (const ch of ["(", '"', "<", "[", "\\", ".", "@", ",", "a ", "a.", "<a", "(\\"]) {
    const r = mailboxListError(ch.repeat(5000));
    assert.equal(typeof r, "string", JSON.stringify(ch));
    assert.ok(r!.length <= 100);
  }
  // deeply nested but balanced comments are fine and linear
  assert.equal(mailboxListError(`a@b ${"(".repeat(5000)}${")".repeat(5000)}`), undefined);
});

test("never throws and returns a short printable reason or undefined", () => {
  const alphabet = fc.constantFrom(..."aZ9.@<>()[]\\\",:; \t\x00\x7f\xe9é=?-");
  fc.assert(
    fc.property(fc.oneof(
        fc.string({ maxLength: 2000, size: "max" }),
        fc.string({ unit: "binary", maxLength: 2000, size: "max" }),
        fc.string({ unit: alphabet, maxLength: 2000, size: "max" }),
      ), (s) => {
      const r = mailboxListError(s);
      if (r !== undefined) assert.match(r, /^[\x20-\x7e]{1,100}$/);
    }),
    { numRuns: 300 },
  );
});

test("random well-formed lists are accepted", () => {
  const atom = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u00e9]{1,8}$/);
  const dotAtom = fc.array(atom, { minLength: 1, maxLength: 3 }).map((a) => a.join("."));
  const addr = fc.tuple(dotAtom, dotAtom).map(([l, d]) => `${l}@${d}`);
  const mailbox = fc.oneof(
    addr,
    fc.tuple(fc.array(atom, { minLength: 1, maxLength: 3 }), addr).map(([n, a]) => `${n.join(" ")} <${a}>`),
    fc.tuple(addr, atom).map(([a, c]) => `${a} (${c})`),
  );
  fc.assert(
    fc.property(fc.array(mailbox, { minLength: 1, maxLength: 4 }), (ms) => {
      const v = ms.join(", ");
      assert.equal(mailboxListError(v), undefined, v);
    }),
  );
});

test("the shortcut for common From forms takes only what the full parser takes", () => {
  // strings made from the shortcut's own pattern: every one is a mailbox to the parser
  fc.assert(
    fc.property(fc.stringMatching(SIMPLE_MAILBOX, { size: "medium" }), (v) => {
      assert.equal(fullMailboxListError(v), undefined, JSON.stringify(v));
    }),
    { numRuns: 2000 },
  );
  // and on anything, with or without the shortcut, the same answer
  const alphabet = fc.constantFrom(..."aZ9.@<>()[]\\\",:; \t\xe9=?-");
  fc.assert(
    fc.property(fc.string({ unit: alphabet, maxLength: 60 }), (v) => {
      assert.equal(mailboxListError(v), fullMailboxListError(v), JSON.stringify(v));
    }),
    { numRuns: 3000 },
  );
  for (const v of ["Bench <bench@example.org>", "a.b@c.d", "\"Doe, J.\" <j@x.example>", "j@x.example (J. Doe)", "J\xe9r\xf4me <j@x.example>"]) {
    assert.ok(SIMPLE_MAILBOX.test(v), v);
    assert.equal(mailboxListError(v), undefined, v);
  }
});
