// The node's logger on standard error: JSON lines for services, files and
// pipes (what log collectors read), and readable lines through pino-pretty
// when a person is watching a terminal.
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";

export function makeLogger(level: string, pathhost: string, stderrIsTty = process.stderr.isTTY === true): Logger {
  // an identity made at start (node.pathhost empty) is not known yet: no node field then
  const options = { level, base: pathhost ? { node: pathhost } : {} };
  if (!stderrIsTty) return pino(options, pino.destination(2));
  // written synchronously: a terminal is read by a person, and a fatal line
  // just before process.exit must not be lost
  return pino(options, pretty({ destination: 2, sync: true, colorize: true, singleLine: true, translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l", ignore: "pid,hostname,node" }));
}
