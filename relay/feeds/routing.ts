// Which peers get an article: decided from the article itself (Newsgroups,
// Distribution, size, Path) against each peer's configuration, not from what
// this node carries, so a node can pass on groups it does not keep.
import { wildmat, type Matcher } from "../../protocol/article/wildmat.js";

export interface PeerRoute {
  id: number;
  name: string;
  /** Lower-cased Path identities that mean this peer. */
  identities: string[];
  groups: Matcher;
  distributions: Set<string>;
  maxBytes: number;
  sends: boolean;
}

export interface RouteInput {
  groups: string[];
  distribution: string[] | undefined;
  bytes: number;
  /** Path identities after our own was prepended. */
  path: string[];
  /** The peer it came from, never offered back. */
  from?: string;
}

export function makeRoute(
  id: number,
  p: { name: string; host: string; path_identities: string[]; groups: string; distributions: string[]; max_article_bytes: number },
): PeerRoute {
  return {
    id,
    name: p.name,
    identities: (p.path_identities.length ? p.path_identities : [p.name]).map((s) => s.toLowerCase()),
    groups: wildmat(p.groups),
    distributions: new Set(p.distributions.map((d) => d.toLowerCase())),
    maxBytes: p.max_article_bytes,
    sends: p.host !== "",
  };
}

export function wants(peer: PeerRoute, a: RouteInput): boolean {
  if (!peer.sends) return false;
  if (a.from === peer.name) return false;
  if (a.bytes > peer.maxBytes) return false;
  // RFC 5537 §3.3: never to a site already named in Path
  for (const p of a.path) if (peer.identities.includes(p.toLowerCase())) return false;
  if (!a.groups.some(peer.groups)) return false;
  // RFC 5536 §3.2.4: Distribution limits where it goes; none means everywhere
  if (a.distribution && a.distribution.length > 0 && peer.distributions.size > 0) {
    if (!a.distribution.some((d) => peer.distributions.has(d.toLowerCase()))) return false;
  }
  return true;
}
