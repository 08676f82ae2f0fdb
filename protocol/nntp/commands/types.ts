import type { Reply } from "../reply.js";
import type { Session } from "../session.js";

export interface Command {
  /** Runs alongside other concurrent commands (CHECK, TAKETHIS); replies stay in order. */
  concurrent?: boolean | ((args: string[]) => boolean);
  /** "always": an article follows the command line (TAKETHIS); "after-reply": only after 340/335. */
  block?: "always" | "after-reply";
  /** Builds a reply as large as an article (ARTICLE, HEAD, BODY): the session runs only a few at once. */
  heavy?: boolean | ((args: string[]) => boolean);
  /** `line` is the whole command line, trimmed (AUTHINFO PASS takes a password with spaces from it). */
  run(s: Session, args: string[], verb: string, line?: string): Reply | Promise<Reply>;
}
