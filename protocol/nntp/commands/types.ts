import type { Reply } from "../reply.js";
import type { Session } from "../session.js";

export interface Command {
  /** Runs alongside other concurrent commands (CHECK, TAKETHIS); replies stay in order. */
  concurrent?: boolean | ((args: string[]) => boolean);
  /** "always": an article follows the command line (TAKETHIS); "after-reply": only after 340/335. */
  block?: "always" | "after-reply";
  /** Builds a reply as large as an article (ARTICLE, HEAD, BODY): the session runs only a few at once. */
  heavy?: boolean | ((args: string[]) => boolean);
  run(s: Session, args: string[], verb: string): Reply | Promise<Reply>;
}
