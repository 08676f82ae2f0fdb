import { test } from "node:test";
import assert from "node:assert/strict";
import { headerText, messageIdOf, receivedCount } from "../../protocol/mail/fields.js";

test("Message-ID and Received count are read from the header section only, folded or not", () => {
  const m = Buffer.from("Received: from a\r\n\tby b; date\r\nreceived: from c\r\nMessage-ID:\r\n <x.1@example.org>\r\nSubject: s\r\n\r\nMessage-ID: <body@example.org>\r\nReceived: no\r\n");
  const head = headerText(m);
  assert.equal(messageIdOf(head), "<x.1@example.org>");
  assert.equal(receivedCount(head), 2);
  assert.equal(messageIdOf(headerText(Buffer.from("Subject: none\r\n\r\nMessage-ID: <b@x>\r\n"))), "");
  assert.equal(messageIdOf("Message-Id: <plain@x>\r\n"), "<plain@x>");
});
