// Who may do what over NNTP: the [[access]] rules of the configuration, by
// client address and by the user a session logged in as (RFC 4643), with the
// older address lists (nntp.reader_from, posting_from, transit_from) and each
// peer's accept_from behind them. Built from a Config by one function, so a
// reload builds a new set and swaps it in (relay/node.ts, Node.access).
//
// The order, first match wins:
//  1. The [[access]] entries in file order. An entry applies to a session when
//     the client's address is in its `from`, and
//       - `users` is empty: to anyone, logged in or not, except that with
//         `auth_required` a session that has not logged in stops here and
//         must log in first (480 to everything but AUTHINFO and the like);
//       - `users` names users: to a session logged in as one of them
//         ("*": any user that logged in).
//     The entry then says which groups may be read and posted to (wildmat
//     lists, "" for none) and whether the client may feed us (transit).
//  2. No entry applies: nntp.reader_from, nntp.posting_from and
//     nntp.transit_from decide, as before there were rules (so the default,
//     with no [[access]], is: everyone reads, loopback posts and feeds).
//  3. Whatever the rules say of transit, an address in a [[peer]]'s
//     accept_from may feed us as that peer.
import type { Config } from "../config/schema.js";
import type { Permissions } from "../protocol/nntp/backend.js";
import { wildmat, type Matcher } from "../protocol/article/wildmat.js";
import { AddressList } from "./access.js";

interface Rule {
  index: number;
  from: AddressList;
  /** Empty: anyone; else these users, "*" any user that logged in. */
  users: Set<string>;
  read: Matcher | undefined;
  post: Matcher | undefined;
  transit: boolean;
  authRequired: boolean;
}

/** What a matched rule, or the older lists, grant. */
interface Grant {
  read: Matcher | undefined;
  post: Matcher | undefined;
  transit: boolean;
  /** The [[access]] entry (1-based) that decided, for logs; 0 for the older lists. */
  rule: number;
}

export interface AccessRules {
  /** What this client may do, before login (user undefined) or as `user`. */
  permissions(client: string, user?: string): Permissions;
}

const ALL: Matcher = () => true;

function list(patterns: string): Matcher | undefined {
  if (patterns === "") return undefined;
  return patterns === "*" ? ALL : wildmat(patterns);
}

/** The rules of a configuration; throws on an address that is not one (the schema has checked the syntax). */
export function buildAccessRules(c: Config): AccessRules {
  const rules: Rule[] = c.access.map((a, i) => ({
    index: i + 1,
    from: new AddressList(a.from),
    users: new Set(a.users),
    read: list(a.read),
    post: list(a.post),
    transit: a.transit,
    authRequired: a.auth_required,
  }));
  const readers = new AddressList(c.nntp.reader_from);
  const posters = new AddressList(c.nntp.posting_from);
  const local = new AddressList(c.nntp.transit_from);
  const peers = c.peer.map((p) => ({ name: p.name, list: new AddressList(p.accept_from) }));

  const older = (client: string): Grant => ({
    read: readers.has(client) ? ALL : undefined,
    post: posters.has(client) ? ALL : undefined,
    transit: local.has(client),
    rule: 0,
  });
  const grant = (r: Rule): Grant => ({ read: r.read, post: r.post, transit: r.transit, rule: r.index });

  /** The grant for a session, or "login" when it must log in first. */
  function decide(client: string, user: string | undefined): Grant | "login" {
    for (const r of rules) {
      if (!r.from.has(client)) continue;
      if (r.users.size > 0) {
        if (user !== undefined && (r.users.has(user) || r.users.has("*"))) return grant(r);
        continue;
      }
      if (r.authRequired && user === undefined) return "login";
      return grant(r);
    }
    return older(client);
  }

  /** Whether some user logging in from this address would be granted what `has` looks for. */
  function someUser(client: string, has: (g: Grant) => boolean): boolean {
    for (const r of rules) {
      if (!r.from.has(client)) continue;
      if (has(grant(r))) return true;
      // an entry for anyone, or for any user, is where every user's search ends
      if (r.users.size === 0 || r.users.has("*")) return false;
    }
    return has(older(client));
  }

  return {
    permissions(client: string, user?: string): Permissions {
      const d = decide(client, user);
      const g: Grant = d === "login" ? { read: undefined, post: undefined, transit: false, rule: 0 } : d;
      // Several peers may share an address (all of them on loopback in tests,
      // or behind one NAT); then the connection names no peer and Path alone
      // keeps articles from going back where they came from. The same holds
      // for addresses that local feeding tools also use.
      const matching = peers.filter((p) => p.list.has(client));
      const peer = matching.length === 1 && !g.transit ? matching[0].name : undefined;
      const transit = matching.length > 0 || g.transit;
      const perms: Permissions = {
        read: g.read !== undefined,
        post: g.post !== undefined,
        transit,
        peer,
        why: transit ? undefined : "not a configured peer",
        readable: g.read === ALL ? undefined : g.read ?? (() => false),
        postable: g.post === ALL ? undefined : g.post ?? (() => false),
      };
      if (user === undefined) {
        perms.authRequired = d === "login";
        perms.afterLogin = {
          read: !perms.read && someUser(client, (x) => x.read !== undefined),
          post: !perms.post && someUser(client, (x) => x.post !== undefined),
          transit: !perms.transit && someUser(client, (x) => x.transit),
        };
      }
      return perms;
    },
  };
}
