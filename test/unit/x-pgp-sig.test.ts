// X-PGP-Sig parsing and the signed text, as INN's pgpverify 1.31 reads and
// rebuilds them: the field's format, which header fields are signed and how
// (names as written, folded values, missing and duplicate fields), the body
// with LF line ends and no trailing white space, and the armor handed to PGP.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseHeaders } from "../../protocol/article/headers.js";
import { armored, parseXPgpSig, signedText } from "../../relay/pgp.js";

const SIG = [
  "iQFJBAABCgAzFiEE9Zrh0i3jvUL9xf2LAf49GbXcegEFAmsHaAcVHGNvbnRyb2xA",
  "aGllci5leGFtcGxlAAoJEAH+PRm13HoBgTwH/3NniwLogK8NajnFkllWgaGw5p03",
  "CUQOmq1UGTojwsFvX9K3TLDQ4UzzLP8GF4YDIh2mr6K6DGPvUaRWThsAL20=",
  "=Xc1C",
];

function article(extra = "", body = "Body line  \r\n.dot line\r\n") {
  const raw =
    "Path: a!b!not-for-mail\r\n" +
    "From: Admin <admin@hier.example>\r\n" +
    "Subject: cmsg newgroup hier.test\r\n" +
    "Control: newgroup hier.test\r\n" +
    "Message-ID: <x@hier.example>\r\n" +
    "Folded: first\r\n\tsecond  \r\n" +
    `X-PGP-Sig: GnuPG_v2 Subject,Control,Message-ID,From,Folded,Missing\r\n${SIG.map((l) => `\t${l}`).join("\r\n")}\r\n` +
    extra +
    "\r\n" +
    body;
  const buf = Buffer.from(raw, "latin1");
  const p = parseHeaders(buf);
  return { fields: p.fields, body: buf.subarray(p.bodyStart) };
}

test("the X-PGP-Sig field: version, signed fields, signature lines", () => {
  const { fields } = article();
  const sig = parseXPgpSig(fields.find((f) => f.name === "X-PGP-Sig")!)!;
  assert.equal(sig.version, "GnuPG_v2");
  assert.deepEqual(sig.signed, ["Subject", "Control", "Message-ID", "From", "Folded", "Missing"]);
  assert.deepEqual(sig.lines, SIG);
  assert.equal(armored(sig), `-----BEGIN PGP SIGNATURE-----\nVersion: GnuPG_v2\n\n${SIG.join("\n")}\n-----END PGP SIGNATURE-----\n`);
});

test("an X-PGP-Sig not in pgpverify's format is refused", () => {
  const bad = (v: string) => parseXPgpSig({ name: "X-PGP-Sig", key: "x-pgp-sig", raw: v });
  assert.equal(bad(" GnuPG Subject,Control"), undefined, "no signature");
  assert.equal(bad(` GnuPG Subject\r\n\t${SIG[0].slice(1)}\r\n\t${SIG[2]}\r\n\t${SIG[3]}`), undefined, "a short full line");
  assert.equal(bad(` GnuPG Subject\r\n\t${SIG[0]}\r\n\t${SIG[2]}`), undefined, "no checksum line");
  assert.notEqual(bad(` GnuPG Subject\r\n\t${SIG[0]}\r\n\t${SIG[2]}\r\n\t${SIG[3]}`), undefined);
});

test("the signed text: fields by their written names, folds joined with LF, a missing one empty, the body with LF and no trailing blanks", () => {
  const { fields, body } = article();
  const text = signedText(fields, body, ["Subject", "Control", "Message-ID", "From", "Folded", "Missing"]);
  assert.equal(
    text,
    "X-Signed-Headers: Subject,Control,Message-ID,From,Folded,Missing\n" +
      "Subject: cmsg newgroup hier.test\n" +
      "Control: newgroup hier.test\n" +
      "Message-ID: <x@hier.example>\n" +
      "From: Admin <admin@hier.example>\n" +
      "Folded: first\n\tsecond\n" +
      "Missing:\n" +
      "\n" +
      "Body line\n.dot line\n",
  );
  // names are matched as written, as pgpverify's hash does
  assert.match(signedText(fields, body, ["subject"]) as string, /^subject:\n/m);
});

test("a signed field present twice makes the message unverifiable", () => {
  const { fields, body } = article("Subject: again\r\n");
  assert.deepEqual(signedText(fields, body, ["Subject"]), { why: "duplicate signed Subject header, can't verify" });
  assert.equal(typeof signedText(fields, body, ["Control"]), "string", "an unsigned duplicate does not matter");
});
