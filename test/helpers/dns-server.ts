// A tiny authoritative DNS server on loopback (UDP, RFC 1035 §4), enough for
// the mail tests' mx routes: MX and A records from a table, NOERROR with no
// answer for a name that has other records, NXDOMAIN for the rest.
import dgram from "node:dgram";
import type { AddressInfo } from "node:net";

export interface Zone {
  mx?: Record<string, [number, string][]>;
  a?: Record<string, string>;
}

const TYPE = { A: 1, MX: 15 } as const;

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, "").split(".").filter(Boolean);
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, "ascii")])), Buffer.from([0])]);
}

function readName(msg: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  while (msg[off] !== 0) {
    labels.push(msg.toString("ascii", off + 1, off + 1 + msg[off]));
    off += 1 + msg[off];
  }
  return { name: labels.join(".").toLowerCase(), end: off + 1 };
}

export class DnsServer {
  readonly queries: { name: string; type: number }[] = [];
  #sock = dgram.createSocket("udp4");
  constructor(private readonly zone: Zone) {}

  start(): Promise<number> {
    this.#sock.on("message", (msg, rinfo) => {
      const reply = this.#answer(msg);
      if (reply) this.#sock.send(reply, rinfo.port, rinfo.address);
    });
    return new Promise((resolve) => this.#sock.bind(0, "127.0.0.1", () => resolve((this.#sock.address() as AddressInfo).port)));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.#sock.close(() => resolve()));
  }

  #answer(msg: Buffer): Buffer | undefined {
    if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
    const { name, end } = readName(msg, 12);
    const type = msg.readUInt16BE(end);
    this.queries.push({ name, type });
    const question = msg.subarray(12, end + 4);
    const answers: Buffer[] = [];
    const rr = (t: number, rdata: Buffer) => {
      const head = Buffer.alloc(12);
      head.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      head.writeUInt16BE(t, 2);
      head.writeUInt16BE(1, 4); // IN
      head.writeUInt32BE(60, 6);
      head.writeUInt16BE(rdata.length, 10);
      answers.push(head, rdata);
    };
    if (type === TYPE.MX) {
      for (const [pref, host] of this.zone.mx?.[name] ?? []) rr(TYPE.MX, Buffer.concat([Buffer.from([pref >> 8, pref & 255]), encodeName(host)]));
    } else if (type === TYPE.A && this.zone.a?.[name]) {
      rr(TYPE.A, Buffer.from(this.zone.a[name].split(".").map(Number)));
    }
    const known = name in (this.zone.mx ?? {}) || name in (this.zone.a ?? {});
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // the query's id
    header.writeUInt16BE(0x8400 | (known ? 0 : 3), 2); // response, authoritative; NXDOMAIN for unknown names
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length / 2, 6);
    return Buffer.concat([header, question, ...answers]);
  }
}
