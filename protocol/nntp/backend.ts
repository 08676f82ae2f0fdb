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
}

export interface NntpBackend {
  readonly pathhost: string;
  readonly implementation: string;
  permissions(client: string): Permissions;
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
}
