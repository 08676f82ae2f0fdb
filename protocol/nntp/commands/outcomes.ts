// How each NNTP front end answers the outcome of the one submit path
// (relay/ingest.ts): one table per command, so the codes for an outcome are
// decided in one place. The SMTP front end has its own (relay/mail/smtp-server.ts).
import type { Outcome } from "../../../relay/ingest.js";
import { C } from "../codes.js";
import { status } from "../reply.js";

type Table = { [K in Outcome["kind"]]: (o: Extract<Outcome, { kind: K }>, msgid: string) => string };

export const ANSWER: { POST: Table; IHAVE: Table; TAKETHIS: Table } = {
  // RFC 3977 §6.3.1: POST has no "try later" code, so a deferral is a 441 whose reason says so
  POST: {
    // a post to a moderated group says where it went (INN: "mailed to moderator")
    accepted: (o) => status(C.POST_OK, o.note ?? `Article received OK ${o.msgid}`),
    duplicate: (o) => status(C.POST_FAILED, `${o.reason} ${o.msgid}`),
    rejected: (o) => status(C.POST_FAILED, o.reason),
    deferred: (o) => status(C.POST_FAILED, o.reason),
  },
  // RFC 3977 §6.3.2
  IHAVE: {
    accepted: () => status(C.IHAVE_OK, "Article transferred OK"),
    duplicate: (o) => status(C.IHAVE_REJECTED, o.reason),
    rejected: (o) => status(C.IHAVE_REJECTED, o.reason),
    deferred: (o) => status(C.IHAVE_LATER, o.reason),
  },
  // RFC 4644 §2.5; a deferral is 431 as for CHECK, so that the peer offers it again
  // (the design's promise: under pressure defer, never refuse what is valid)
  TAKETHIS: {
    accepted: (_o, id) => status(C.TAKETHIS_OK, `${id} article transferred OK`),
    duplicate: (o, id) => status(C.TAKETHIS_REJECTED, `${id} ${o.reason}`),
    rejected: (o, id) => status(C.TAKETHIS_REJECTED, `${id} ${o.reason}`),
    deferred: (o, id) => status(C.CHECK_LATER, `${id} ${o.reason}`),
  },
};

export function answer(table: Table, o: Outcome, msgid = ""): string {
  return (table[o.kind] as (o: Outcome, id: string) => string)(o, msgid);
}
