// Small readers of a message's header section, shared by the SMTP front end
// and the delivery side (the article code has its own, stricter parser).
import { headerSection } from "./dsn.js";

/** The header section as a binary string (one char per octet). */
export function headerText(message: Buffer): string {
  return headerSection(message).toString("latin1");
}

/** The Message-ID with its angle brackets (RFC 5322 §3.6.4), folded or not; "" when there is none. */
export function messageIdOf(head: string): string {
  const m = /^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]*>)/im.exec(head);
  return m ? m[1] : "";
}

/** How many Received fields the header section has (RFC 5321 §6.3: a loop shows as a growing trail). */
export function receivedCount(head: string): number {
  return (head.match(/^received:/gim) ?? []).length;
}
