// Address lists (CIDR blocks) that say who may read, post or feed.
import { BlockList, isIPv4, isIPv6 } from "node:net";

export class AddressList {
  #list = new BlockList();

  constructor(readonly entries: readonly string[]) {
    for (const e of entries) {
      const [addr, bits] = e.split("/");
      const type = isIPv6(addr) ? "ipv6" : "ipv4";
      if (!isIPv4(addr) && !isIPv6(addr)) throw new Error(`not an IP address: ${e}`);
      if (bits === undefined) this.#list.addAddress(addr, type);
      else this.#list.addSubnet(addr, Number(bits), type);
    }
  }

  has(address: string | undefined): boolean {
    if (!address) return false;
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address); // IPv4-mapped IPv6
    if (v4) return this.#list.check(v4[1], "ipv4");
    return this.#list.check(address, isIPv6(address) ? "ipv6" : "ipv4");
  }
}
