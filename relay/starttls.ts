// STARTTLS on the server side (RFC 4642 §2.2.2): the plain connection that
// said STARTTLS becomes a TLS connection on the same socket. The order is what
// keeps it safe: the session stops hearing the plain socket first, the 382 is
// written after every earlier reply, and the TLS layer takes the socket over
// only once the 382 has left; plain bytes that came meanwhile are dropped.
import net from "node:net";
import tls from "node:tls";
import { handshake, HANDSHAKE_MS } from "./tls.js";

export interface Upgrade {
  /** Stops feeding the session from the plain socket (its data and drain listeners, its idle timer). */
  detach(): void;
  /** The TLS socket exists: from now on the connection's reads, writes and timers are on it. */
  attach(t: tls.TLSSocket): void;
}

/**
 * Writes `reply` on the plain socket, then starts TLS on it. Resolves once the
 * handshake is done (the TLS socket is `attach`ed before that); rejects, with
 * the connection destroyed, when the handshake fails or does not finish.
 */
export function upgradeToTls(raw: net.Socket, reply: string, context: tls.SecureContext, hooks: Upgrade, handshakeMs = HANDSHAKE_MS): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    hooks.detach();
    const wasPaused = raw.isPaused();
    // plain text that follows STARTTLS before our 382 is out cannot be a
    // handshake (the client has not seen the 382 yet): it is dropped
    const drop = () => {};
    raw.on("data", drop);
    raw.resume();
    // replies written earlier in this tick are corked: they go first
    while (raw.writableCorked > 0) raw.uncork();
    raw.write(reply, (err) => {
      raw.off("data", drop);
      if (err || raw.destroyed) {
        raw.destroy();
        return reject(err ?? new Error("connection closed before the TLS handshake"));
      }
      const t = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
      t.setNoDelay(true);
      hooks.attach(t);
      handshake(t, handshakeMs).then(
        () => {
          // the session had stopped reading: it still has, on the new socket
          if (wasPaused) t.pause();
          resolve(t);
        },
        reject,
      );
    });
  });
}
