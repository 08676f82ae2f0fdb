// ARTICLE, HEAD, BODY, STAT by number, by Message-ID and on the current article (RFC 3977 §6.2).
import { C } from "../codes.js";
import { status, stuffBlock, type Reply } from "../reply.js";
import { parseNumber } from "./range.js";
import { isMessageId } from "../../article/msgid.js";
import { hiddenArticle, readerDenied } from "./select.js";
import type { Command } from "./types.js";
import type { StoredArticle } from "../../../storage/articles.js";

type Part = "article" | "head" | "body" | "stat";

const CODE: Record<Part, number> = { article: C.ARTICLE, head: C.HEAD, body: C.BODY, stat: C.STAT };

function render(part: Part, number: number, a: StoredArticle): Reply {
  const line = `${CODE[part]} ${number} ${a.msgid}\r\n`;
  if (part === "stat") return line;
  let data: Buffer;
  if (part === "article") data = a.data;
  else if (part === "head") data = a.data.subarray(0, a.headerLen);
  else data = a.data.subarray(Math.min(a.headerLen + 2, a.data.length));
  return [line, ...stuffBlock(data)];
}

function retrieve(part: Part): Command {
  const verb = part.toUpperCase();
  return {
    // with an argument the command reads no session state but the group, so
    // pipelined ARTICLE n / HEAD <id> run side by side; the bare form waits
    concurrent: (args) => args.length === 1,
    heavy: part !== "stat",
    run: async (s, args) => {
      const seq = s.runningSeq;
      const denied = readerDenied(s);
      if (denied) return denied;
      if (args.length > 1) return status(C.SYNTAX, `Usage: ${verb} [<message-id>|number]`);
      const arg = args[0];
      if (arg !== undefined && arg.startsWith("<")) {
        if (!isMessageId(arg)) return status(C.SYNTAX, `Invalid Message-ID ${arg.slice(0, 80)}`);
        // in no group this client may read: answered as missing, as GROUP answers for such a group
        if (await hiddenArticle(s, arg)) return status(C.NO_MSGID, `No such article ${arg}`);
        if (part === "stat") {
          return (await s.backend.articles.exists(arg)) ? status(C.STAT, `0 ${arg}`) : status(C.NO_MSGID, `No such article ${arg}`);
        }
        const a = await s.backend.articles.byMsgid(arg);
        if (!a) return status(C.NO_MSGID, `No such article ${arg}`);
        return render(part, 0, a); // RFC 3977 §6.2.1.2: number 0 for the message-id form
      }
      if (!s.group) return status(C.NO_GROUP, "No newsgroup selected");
      let number: number | undefined;
      if (arg === undefined) {
        if (s.article === undefined) return status(C.NO_CURRENT, "Current article number is invalid");
        number = s.article;
      } else {
        number = parseNumber(arg);
        if (number === undefined) return status(C.SYNTAX, `Invalid article number ${arg.slice(0, 40)}`);
      }
      const a = part === "stat" ? await s.backend.articles.atNumber(s.group.id, number) : await s.backend.articles.fullAtNumber(s.group.id, number);
      if (!a) {
        return arg === undefined
          ? status(C.NO_CURRENT, "Current article number is invalid")
          : status(C.NO_NUMBER, `No article with number ${number}`);
      }
      s.setArticle(number, seq);
      if (part === "stat") return status(C.STAT, `${number} ${a.msgid}`);
      return render(part, number, a as StoredArticle);
    },
  };
}

export const ARTICLE = retrieve("article");
export const HEAD = retrieve("head");
export const BODY = retrieve("body");
export const STAT = retrieve("stat");
