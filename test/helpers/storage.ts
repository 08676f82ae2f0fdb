// What storage-level tests hand the writer: the least an article can be.
import type { NewArticle } from "../../storage/writer.js";

/** An article with only a Message-ID header, filed in local.test, for no peer. */
export function minimalArticle(msgid: string): NewArticle {
  return {
    msgid, header: `Message-ID: ${msgid}\r\n`, body: Buffer.from("body\r\n"), groups: ["local.test"], subject: "s", author: "a",
    date: "d", refs: "", lines: 1, source: "x", arrived: Date.now(), peers: [],
  };
}
