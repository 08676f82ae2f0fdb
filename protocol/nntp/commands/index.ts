// Every command this server understands, one handler each.
import type { Command } from "./types.js";
import { CAPABILITIES, DATE, HELP, MODE, QUIT } from "./general.js";
import { GROUP, LAST, LISTGROUP, NEXT } from "./select.js";
import { ARTICLE, BODY, HEAD, STAT } from "./retrieve.js";
import { LIST, NEWGROUPS, NEWNEWS } from "./list.js";
import { HDR, OVER, XPAT } from "./overview.js";
import { CHECK, IHAVE, TAKETHIS } from "./transit.js";
import { POST } from "./post.js";
import { STARTTLS } from "./starttls.js";
import { AUTHINFO } from "./auth.js";

export type { Command };

export const COMMANDS: Record<string, Command> = {
  CAPABILITIES, MODE, QUIT, HELP, DATE,
  GROUP, LISTGROUP, NEXT, LAST,
  ARTICLE, HEAD, BODY, STAT,
  LIST, NEWGROUPS, NEWNEWS,
  OVER, XOVER: OVER, HDR, XHDR: HDR, XPAT,
  IHAVE, CHECK, TAKETHIS, POST,
  STARTTLS,
  AUTHINFO,
};
