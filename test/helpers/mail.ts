// Helpers for the mail tests: the machine's mail tools, a raw SMTP dialogue
// from a chosen local address (to play a stranger), and the node's queue.
import { execFileSync, spawn } from "node:child_process";
import net from "node:net";
import { join } from "node:path";
import sqlite3 from "sqlite3";
import type { TestNode } from "./node.js";
import { interopScript } from "./interop.js";



/** Installs swaks and Postfix when missing (as root), as the newsreader test does for tin. */
export function mailSetup(): void {
  execFileSync("bash", [interopScript("mail-setup.sh")], { stdio: "inherit" });
}

export type Replies = string[] & { greeting?: string; close?: () => void };

/**
 * Opens an SMTP connection from `localAddress`, sends each line (a DATA
 * payload is one "line" ending in "\r\n."), and collects each reply
 * (multi-line replies joined by "\n"). With keepOpen the socket stays open.
 */
export function smtpTalk(port: number, localAddress: string, lines: string[], opts: { keepOpen?: boolean } = {}): Promise<Replies> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host: "127.0.0.1", port, localAddress });
    const replies: Replies = [];
    let buf = "";
    let current: string[] = [];
    let i = -1; // -1: waiting for the greeting
    const next = () => {
      i++;
      if (i < lines.length) sock.write(lines[i] + "\r\n");
      else if (opts.keepOpen) {
        replies.close = () => sock.destroy();
        resolve(replies);
      } else sock.end();
    };
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      let nl: number;
      while ((nl = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        current.push(line);
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          const reply = current.join("\n");
          current = [];
          if (i < 0) replies.greeting = reply;
          else replies.push(reply);
          if (i < 0 && !reply.startsWith("220")) {
            sock.destroy();
            return resolve(replies);
          }
          next();
        }
      }
    });
    sock.on("error", reject);
    sock.on("close", () => resolve(replies));
  });
}

/** The node's queued recipients, read from its database (read-only). */
export function queued(node: TestNode): Promise<{ mail: number; rcpt: string; hop: string; attempts: number; last_error: string }[]> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(join(node.dataDir, "tidings.sqlite"), sqlite3.OPEN_READONLY, (err) => {
      if (err) return reject(err);
      db.all("SELECT mail, rcpt, hop, attempts, last_error FROM mail_rcpt ORDER BY mail, rcpt", (e, rows) => {
        db.close();
        if (e) reject(e);
        else resolve(rows as never);
      });
    });
  });
}

/** Runs a command with `input` on its standard input; rejects with its standard error when it fails. */
export function runWithInput(cmd: string, args: string[], input: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}: ${err}`))));
    p.stdin.end(input);
  });
}
