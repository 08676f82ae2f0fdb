// Transit: IHAVE (RFC 3977 §6.3.2) and streaming, MODE STREAM / CHECK /
// TAKETHIS (RFC 4644). Only configured peers may use them.
import { C } from "../codes.js";
import { status } from "../reply.js";
import { isMessageId } from "../../article/msgid.js";
import type { Command } from "./types.js";
import { ANSWER, answer } from "./outcomes.js";
import type { Session } from "../session.js";
import { mustLogin } from "./auth.js";

function denied(s: Session): string | undefined {
  if (s.perms.transit) return undefined;
  if (mustLogin(s, "transit")) return status(C.AUTH_REQUIRED, "Authentication required");
  return status(C.DENIED, `Transit not permitted from ${s.client}: ${s.perms.why ?? "not a configured peer"}`);
}

export const IHAVE: Command = {
  block: "after-reply",
  run: async (s, args) => {
    const no = denied(s) ?? (args.length !== 1 || !isMessageId(args[0]) ? status(C.SYNTAX, "Usage: IHAVE <message-id>") : undefined);
    if (no) {
      s.resumeFramer("line");
      return no;
    }
    const msgid = args[0];
    try {
      if (await s.backend.seen(msgid)) {
        s.resumeFramer("line");
        return status(C.IHAVE_UNWANTED, "Duplicate");
      }
    } catch {
      s.resumeFramer("line");
      return status(C.IHAVE_LATER, "History unavailable; try again later");
    }
    // RFC 3977 §6.3.2.3 / INN: another session is receiving it right now
    if (!s.backend.claim(msgid, s)) {
      s.resumeFramer("line");
      return status(C.IHAVE_LATER, "Article in progress elsewhere; try again later");
    }
    try {
      s.interim(status(C.IHAVE_SEND, "Send it; end with <CR-LF>.<CR-LF>"));
      const b = await (s.resumeFramer("block"), s.nextBlock());
      if (b.tooBig) return status(C.IHAVE_REJECTED, `Article too large (${b.size} > ${s.limits.maxArticle} octets)`);
      return answer(ANSWER.IHAVE, await s.backend.ingest(b.data, { kind: "nntp-ihave", client: s.client, offered: msgid, peer: s.perms.peer }));
    } finally {
      s.backend.release(msgid, s);
    }
  },
};

export const CHECK: Command = {
  concurrent: true,
  run: async (s, args) => {
    const no = denied(s);
    if (no) return no;
    if (args.length !== 1) return status(C.SYNTAX, "Usage: CHECK <message-id>");
    const msgid = args[0];
    // INN answers a bad id with 438 so that the peer drops it rather than retrying
    if (!isMessageId(msgid)) return status(C.CHECK_UNWANTED, `${msgid.slice(0, 250)} invalid Message-ID`);
    let known: boolean;
    try {
      known = await s.backend.seen(msgid);
    } catch {
      return status(C.CHECK_LATER, `${msgid} history unavailable; try again later`);
    }
    if (known) return status(C.CHECK_UNWANTED, `${msgid} already have it`);
    // RFC 4644 §2.4: 431 while another session is receiving this id
    if (!s.backend.claim(msgid, s)) return status(C.CHECK_LATER, `${msgid} in progress elsewhere; try again later`);
    return status(C.CHECK_SEND, `${msgid} send it`);
  },
};

export const TAKETHIS: Command = {
  concurrent: true,
  block: "always",
  run: async (s, args) => {
    // the article follows whatever we think of the command: read it first
    const b = await s.nextBlock();
    const msgid = args[0] ?? "";
    const no = denied(s);
    if (no) return no;
    if (args.length !== 1 || !isMessageId(msgid)) return status(C.TAKETHIS_REJECTED, `${msgid.slice(0, 250)} invalid Message-ID`);
    try {
      if (b.tooBig) return status(C.TAKETHIS_REJECTED, `${msgid} article too large (${b.size} > ${s.limits.maxArticle} octets)`);
      s.backend.claim(msgid, s);
      const o = await s.backend.ingest(b.data, { kind: "nntp-takethis", client: s.client, offered: msgid, peer: s.perms.peer });
      return answer(ANSWER.TAKETHIS, o, msgid);
    } finally {
      s.backend.release(msgid, s);
    }
  },
};
