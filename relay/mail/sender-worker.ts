// The worker thread that runs the mail sender (sender.ts): it owns the SMTP
// client connections and answers each send with what the next hop said.
import { parentPort, workerData } from "node:worker_threads";
import { LocalSender, type Envelope, type SenderOptions, type Target } from "./sender.js";

const sender = new LocalSender(workerData as SenderOptions);
type Message =
  | { kind: "send"; id: number; hop: string; target: Target; envelope: Envelope; data: Uint8Array }
  | { kind: "reset"; hop: string };

parentPort!.on("message", (m: Message) => {
  if (m.kind === "reset") return sender.reset(m.hop);
  void sender.send(m.hop, m.target, m.envelope, Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength)).then((result) => parentPort!.postMessage({ id: m.id, result }));
});
