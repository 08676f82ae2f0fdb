// `tidings user add|rm|list`: the users who may log in (NNTP AUTHINFO, SMTP
// AUTH). They act on the data folder's database directly, beside a running
// node (SQLite, WAL): the node reads a user at each login, so a change counts
// from the next login attempt, without a restart or reload.
import { openBeside } from "../storage/soundness.js";
import { hashPassword, listUsers, putUser, removeUser, USER_NAME, type UserRow } from "../storage/users.js";

function checkName(name: string): void {
  if (!USER_NAME.test(name)) throw new Error(`not a user name: ${JSON.stringify(name).slice(0, 80)} (1 to 64 letters, digits and . _ @ + -, starting with a letter or digit)`);
}

/** Adds a user, or with replace sets the password of one that exists; returns what was done. */
export async function userAdd(dataDir: string, name: string, password: string, replace: boolean): Promise<"added" | "changed"> {
  checkName(name);
  if (password === "") throw new Error("the password is empty");
  const hash = await hashPassword(password);
  const db = await openBeside(dataDir, { create: true });
  try {
    const existed = (await listUsers(db)).some((u) => u.name === name);
    if (existed && !replace) throw new Error(`user ${name} exists already; --replace sets a new password`);
    await putUser(db, name, hash, replace);
    return existed ? "changed" : "added";
  } finally {
    await db.close();
  }
}

export async function userRemove(dataDir: string, name: string): Promise<boolean> {
  const db = await openBeside(dataDir);
  try {
    return await removeUser(db, name);
  } finally {
    await db.close();
  }
}

export async function userList(dataDir: string): Promise<UserRow[]> {
  const db = await openBeside(dataDir);
  try {
    return await listUsers(db);
  } finally {
    await db.close();
  }
}

export function formatUsers(users: UserRow[]): string {
  if (users.length === 0) return "no users\n";
  return users.map((u) => `${u.name}  (password set ${new Date(u.created).toISOString()})`).join("\n") + `\n-- ${users.length} users\n`;
}

/** The first line of standard input (--password-stdin, or a pipe), without its line end. */
export async function passwordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    if (chunk.includes(0x0a)) break;
  }
  const text = Buffer.concat(chunks).toString("utf8");
  const nl = text.indexOf("\n");
  return (nl < 0 ? text : text.slice(0, nl)).replace(/\r$/, "");
}

/** Asks for a password at the terminal without echoing it. */
function askHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  // echo off before the prompt shows: what is typed (or pasted) at once is not echoed either
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let typed = "";
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (d: Buffer) => {
      for (const ch of d.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003" || (ch === "\u0004" && typed === "")) return done(new Error("cancelled"));
        if (ch === "\u007f" || ch === "\b") typed = [...typed].slice(0, -1).join("");
        else if (ch >= " ") typed += ch;
      }
    };
    stdin.resume();
    stdin.on("data", onData);
  });
}

/** The new password: asked twice at a terminal, else the first line of standard input. */
export async function readNewPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin || !process.stdin.isTTY) return passwordFromStdin();
  const first = await askHidden("Password: ");
  const again = await askHidden("Again: ");
  if (first !== again) throw new Error("the two passwords differ; nothing changed");
  return first;
}
