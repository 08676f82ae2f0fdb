// What an NNTP session asks of the node. The session knows the protocol; the
// node decides (policy, ingest) and fetches (storage).
import type { Group } from "../../storage/groups.js";
import type { Articles } from "../../storage/articles.js";
import type { Outcome, Source } from "../../relay/ingest.js";

export interface Permissions {
  read: boolean;
  post: boolean;
  /** Transit (IHAVE, MODE STREAM, CHECK, TAKETHIS); `why` explains a refusal. */
  transit: boolean;
  /** The configured peer this client is, if any: articles are never offered back to it. */
  peer?: string;
  why?: string;
  /** Groups this client may read (listed, selected, read by Message-ID); every group when absent. */
  readable?: (group: string) => boolean;
  /** Groups this client may post to; every group when absent. */
  postable?: (group: string) => boolean;
  /** Before login: the rules want a login before anything (RFC 4643 §2.2: 480). */
  authRequired?: boolean;
  /** Before login: what some user logging in from here may do that this client may not; refused with 480, not 502/440. */
  afterLogin?: { read: boolean; post: boolean; transit: boolean };
}

/** Logging in (RFC 4643): AUTHINFO USER/PASS and SASL PLAIN. */
export interface Authenticator {
  /** AUTHINFO is allowed over a connection without TLS (auth.allow_plaintext); otherwise 483 there. */
  readonly plaintext: boolean;
  /** Whether the password is the user's; a false comes only after the address's growing delay. */
  check(client: string, user: string, password: string): Promise<boolean>;
}

export interface NntpBackend {
  readonly pathhost: string;
  readonly implementation: string;
  /** What the client may do, before login or as the user it logged in as. */
  permissions(client: string, user?: string): Permissions;
  /** Logins; without it AUTHINFO is not offered. */
  readonly auth?: Authenticator;
  group(name: string): Group | undefined;
  groups(): Group[];
  readonly articles: Articles;
  seen(msgid: string): Promise<boolean>;
  /** In-flight reservations (RFC 4644 §2.4). */
  claim(msgid: string, owner: object): boolean;
  heldByOther(msgid: string, owner: object): boolean;
  release(msgid: string, owner: object): void;
  releaseAll(owner: object): void;
  ingest(raw: Buffer, source: Source): Promise<Outcome>;
  /**
   * Counts a POST against the node's hourly limit for its user, or its address
   * before login; returns the reason for a 441 when the limit is reached.
   */
  takePost?(who: { user?: string; client: string; transit: boolean }): string | undefined;
}
