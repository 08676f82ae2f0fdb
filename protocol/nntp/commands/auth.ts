// AUTHINFO USER/PASS and AUTHINFO SASL PLAIN (RFC 4643 §2.3, §2.4; PLAIN is
// RFC 4616). The session asks the backend whether a password is right and,
// after a login, what the user may do (perms recomputed); the rules and the
// delay after failures live in relay/.
import { C } from "../codes.js";
import { status } from "../reply.js";
import type { Command } from "./types.js";
import type { Session } from "../session.js";

/**
 * The name given by AUTHINFO USER, waiting for its PASS (RFC 4643 §2.3.2),
 * and whether the connection was encrypted then: a name given before
 * STARTTLS is not carried across it (RFC 4642 §2.2.2: what came before TLS is
 * forgotten).
 */
const pendingUser = new WeakMap<Session, { user: string; secure: boolean }>();

const USAGE = "Usage: AUTHINFO USER name | AUTHINFO PASS password | AUTHINFO SASL PLAIN [initial-response]";

/**
 * Whether a refusal of `what` should be 480 rather than 502/440: the client
 * has not logged in and logging in could allow it (RFC 4643 §2.2; INN answers
 * 480 whenever it could authenticate the client).
 */
export function mustLogin(s: Session, what: "read" | "post" | "transit"): boolean {
  return s.user === undefined && s.backend.auth !== undefined && (!!s.perms.authRequired || !!s.perms.afterLogin?.[what]);
}

/** Who a refusal is about: the user when logged in, else the address. */
export function who(s: Session): string {
  return s.user !== undefined ? `for ${s.user}` : `from ${s.client}`;
}

/**
 * RFC 4643 §2.1: AUTHINFO (with the forms offered) and SASL (the mechanisms)
 * while a login is possible and not yet done; AUTHINFO alone where logging in
 * is possible only after STARTTLS (no password in the clear); nothing after a
 * login (MUST NOT).
 */
export function authCapabilities(s: Session): string[] {
  const auth = s.backend.auth;
  if (!auth || s.user !== undefined) return [];
  if (!s.secure && !auth.plaintext) return ["AUTHINFO"];
  return ["AUTHINFO USER SASL", "SASL PLAIN"];
}

async function login(s: Session, user: string, password: string): Promise<string> {
  const ok = await s.backend.auth!.check(s.client, user, password);
  if (!ok) return status(C.AUTH_FAILED, "Authentication failed");
  s.user = user;
  s.perms = s.backend.permissions(s.client, user);
  return status(C.AUTH_OK, "Authentication accepted");
}

/** RFC 4643 §2.4.1: base64 of the response, "=" for an empty one; undefined if it is not base64. */
function unbase64(arg: string): Buffer | undefined {
  if (arg === "=") return Buffer.alloc(0);
  if (arg.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(arg)) return undefined;
  return Buffer.from(arg, "base64");
}

/** RFC 4616 §2: [authzid] NUL authcid NUL passwd. Acting as another user (authzid) is not offered. */
async function plain(s: Session, response: string): Promise<string> {
  if (response === "*") return status(C.AUTH_FAILED, "Authentication cancelled");
  const data = unbase64(response);
  if (!data) return status(C.BAD_BASE64, "Response is not base64");
  const parts = data.toString("utf8").split("\u0000");
  if (parts.length !== 3 || !parts[1] || !parts[2]) return status(C.AUTH_SEQUENCE, "SASL PLAIN response must be [authzid] NUL user NUL password");
  const [authzid, user, password] = parts;
  if (authzid !== "" && authzid !== user) return status(C.AUTH_FAILED, "Authentication failed: authorization identity not allowed");
  return login(s, user, password);
}

export const AUTHINFO: Command = {
  // SASL without an initial response gets 383 and then a line that is not a
  // command: the framer holds what follows until the handler knows (session.ts)
  block: "after-reply",
  run: async (s, args, _verb, line = "") => {
    const sub = (args[0] ?? "").toUpperCase();
    const awaitsResponse = sub === "SASL" && args.length === 2;
    const answer = (() => {
      const auth = s.backend.auth;
      if (!auth) return status(C.DENIED, "Authentication is not available on this server");
      // RFC 4643 §2.2: after a successful login every AUTHINFO gets 502
      if (s.user !== undefined) return status(C.DENIED, "Already authenticated");
      // RFC 4643 §2.2, RFC 4642: no password over a connection without TLS unless configured (auth.allow_plaintext)
      if (!s.secure && !auth.plaintext) {
        pendingUser.delete(s);
        return status(C.ENCRYPTION_REQUIRED, "Encryption required: use STARTTLS (RFC 4642) or the TLS port before AUTHINFO");
      }
      if (sub === "USER") {
        if (args.length !== 2) return status(C.SYNTAX, USAGE);
        pendingUser.set(s, { user: args[1], secure: s.secure });
        // the same answer for every name: it does not tell which users exist
        return status(C.AUTH_PASSWORD, "Password required");
      }
      if (sub === "PASS") {
        // the password is the rest of the line, spaces and all (as INN takes it)
        const password = /^\S+\s+\S+\s(.*)$/.exec(line)?.[1] ?? "";
        if (args.length < 2 || password === "") return status(C.SYNTAX, USAGE);
        const pending = pendingUser.get(s);
        pendingUser.delete(s);
        if (pending === undefined || pending.secure !== s.secure) return status(C.AUTH_SEQUENCE, "Authentication commands issued out of sequence: AUTHINFO USER first");
        return login(s, pending.user, password);
      }
      if (sub === "SASL") {
        pendingUser.delete(s);
        if (args.length < 2 || args.length > 3) return status(C.SYNTAX, USAGE);
        // RFC 4643 §2.4.2: a mechanism the server does not offer gets 503
        if (args[1].toUpperCase() !== "PLAIN") return status(C.UNSUPPORTED, `Mechanism ${args[1].slice(0, 20)} not recognized; SASL PLAIN is offered`);
        if (args.length === 3) return plain(s, args[2]);
        return undefined; // the 383 exchange below
      }
      return status(C.SYNTAX, USAGE);
    })();
    if (answer !== undefined || !awaitsResponse) {
      s.resumeFramer("line");
      return answer ?? status(C.SYNTAX, USAGE);
    }
    // RFC 4643 §2.4.1: PLAIN starts with an empty challenge ("=") and the client's next line is its response
    const response = new Promise<string>((resolve) => (s.nextLine = resolve));
    s.interim(status(C.AUTH_CONTINUE, "="));
    s.resumeFramer("line");
    return plain(s, (await response).trim());
  },
};
