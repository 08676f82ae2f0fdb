// STARTTLS (RFC 4642 §2.2, updated by RFC 8143): the connection turns into a
// TLS connection after a 382, and the session starts again from scratch.
import { C } from "../codes.js";
import { status } from "../reply.js";
import type { Command } from "./types.js";
import type { Session } from "../session.js";

/** Whether CAPABILITIES lists STARTTLS (RFC 4642 §2.1): only before any security layer, and only with a certificate. */
export function offersStartTls(s: Session): boolean {
  return !!s.io.startTls && !s.secure && s.user === undefined;
}

export const STARTTLS: Command = {
  // The framer holds every byte after the command line until the handler has
  // decided. A client must not pipeline past STARTTLS (RFC 4642 §2.2.2); if it
  // does, those plain-text bytes are dropped when the TLS layer starts, never
  // run as if they had come encrypted (the command injection of CVE-2011-0411).
  block: "after-reply",
  run: async (s, args) => {
    if (args.length > 0) return status(C.SYNTAX, "Usage: STARTTLS");
    // RFC 4642 §2.2.2: 502 once a TLS layer is active; after AUTHINFO a layer
    // can no longer be added under the identity already proven.
    if (s.secure) return status(C.DENIED, "TLS is already active on this connection");
    if (s.user !== undefined) return status(C.DENIED, "STARTTLS is not possible after authentication");
    if (!s.io.startTls) return status(C.TLS_FAILED, "Can not initiate TLS negotiation: no certificate is configured");
    try {
      await s.io.startTls(status(C.TLS_CONTINUE, "Continue with TLS negotiation"), () => {
        const dropped = s.framer.discardHeld();
        if (dropped > 0) s.io.log("info", { dropped }, "plain-text bytes sent after STARTTLS dropped");
      });
    } catch {
      // the handshake failed and the connection is closed: nothing more to say
      return [];
    }
    // RFC 4642 §2.2.2: the server forgets what it learnt from the client in
    // plain text (current group and article, MODE STREAM); it sends no new
    // greeting, and the client asks CAPABILITIES again.
    s.secure = true;
    s.group = undefined;
    s.article = undefined;
    s.streaming = false;
    s.resumeFramer("line");
    // the 382 went out before the handshake
    return [];
  },
};
