// POST (RFC 3977 §6.3.1): the node injects the article (RFC 5537 §3.5).
import { C } from "../codes.js";
import { status } from "../reply.js";
import type { Command } from "./types.js";
import { ANSWER, answer } from "./outcomes.js";

export const POST: Command = {
  block: "after-reply",
  run: async (s, args) => {
    if (args.length) {
      s.resumeFramer("line");
      return status(C.SYNTAX, "Usage: POST");
    }
    if (!s.perms.post) {
      s.resumeFramer("line");
      return status(C.POST_DENIED, `Posting not permitted from ${s.client}`);
    }
    s.interim(status(C.POST_SEND, "Input article; end with <CR-LF>.<CR-LF>"));
    s.resumeFramer("block");
    const b = await s.nextBlock();
    if (b.tooBig) return status(C.POST_FAILED, `Article too large (${b.size} > ${s.limits.maxArticle} octets)`);
    return answer(ANSWER.POST, await s.backend.ingest(b.data, { kind: "nntp-post", client: s.client }));
  },
};
