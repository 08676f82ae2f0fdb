// Address lists (CIDR blocks) that say who may read, post or feed.
import { BlockList, isIPv6 } from "node:net";
import { parseAddressEntry } from "../config/net.js";

export class AddressList {
  #list = new BlockList();

  constructor(readonly entries: readonly string[]) {
    // the same parsing the schema checked the entries with (config/net.ts), so a configuration that loaded cannot fail here
    for (const e of entries) {
      const r = parseAddressEntry(e);
      if (typeof r === "string") throw new Error(`${e}: ${r}`);
      if (r.bits === undefined) this.#list.addAddress(r.addr, r.type);
      else this.#list.addSubnet(r.addr, r.bits, r.type);
    }
  }

  /** Answers by address: BlockList.check builds a SocketAddress each time (an SMTP RCPT asks once per recipient). */
  #memo = new Map<string, boolean>();

  has(address: string | undefined): boolean {
    if (!address) return false;
    let r = this.#memo.get(address);
    if (r === undefined) {
      r = this.#check(address);
      if (this.#memo.size >= 4096) this.#memo.clear();
      this.#memo.set(address, r);
    }
    return r;
  }

  #check(address: string): boolean {
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address); // IPv4-mapped IPv6
    if (v4) return this.#list.check(v4[1], "ipv4");
    return this.#list.check(address, isIPv6(address) ? "ipv6" : "ipv4");
  }
}
