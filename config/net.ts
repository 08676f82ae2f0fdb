// Network values of the configuration (addresses, CIDR blocks, HOST:PORT,
// DNS servers), parsed here once for both the schema and the node: the
// schema refuses what the node's own parsing would refuse, with the file,
// line and key, so `serve` cannot crash on a file `check-config` passed.
import { BlockList, isIP, isIPv4, isIPv6 } from "node:net";
import { Resolver } from "node:dns";

export interface AddressEntry {
  addr: string;
  /** Prefix length of a CIDR block; none for a single address. */
  bits?: number;
  type: "ipv4" | "ipv6";
}

/** "ADDR" or "ADDR/BITS" as relay/access.ts's AddressList takes it, or what was expected instead. */
export function parseAddressEntry(entry: string): AddressEntry | string {
  const slash = entry.indexOf("/");
  const addr = slash < 0 ? entry : entry.slice(0, slash);
  const type = isIPv4(addr) ? "ipv4" : isIPv6(addr) ? "ipv6" : undefined;
  if (!type) return `expected an IPv4 or IPv6 address or CIDR block, e.g. 127.0.0.0/8 or ::1 (${JSON.stringify(addr)} is not an IP address)`;
  const max = type === "ipv4" ? 32 : 128;
  let bits: number | undefined;
  if (slash >= 0) {
    const text = entry.slice(slash + 1);
    bits = Number(text);
    if (!/^\d{1,3}$/.test(text) || bits > max) return `expected a prefix length from 0 to ${max} after the "/" of an ${type === "ipv4" ? "IPv4" : "IPv6"} block, e.g. ${type === "ipv4" ? "127.0.0.0/8" : "fd00::/8"} (got /${text})`;
  }
  // the node builds a BlockList from it: what BlockList refuses is refused here
  try {
    const list = new BlockList();
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, bits, type);
  } catch (err) {
    return `expected an address or CIDR block that node:net takes (${(err as Error).message})`;
  }
  return { addr, bits, type };
}

const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*\\.?$`);

/** HOST:PORT (HOST an address, [IPv6] or a host name; PORT 0 to 65535), or what was expected instead. */
export function hostPortError(value: string): string | undefined {
  const example = "expected HOST:PORT, e.g. 127.0.0.1:1119 or [::1]:1119";
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (!m) return example;
  if (Number(m[3]) > 65535) return "expected a port from 0 to 65535";
  if (m[1] !== undefined) return isIPv6(m[1]) ? undefined : `${example} (${JSON.stringify(m[1])} in brackets is not an IPv6 address)`;
  const host = m[2];
  if (isIP(host)) return undefined;
  if (/^[\d.]+$/.test(host)) return `${example} (${JSON.stringify(host)} is not an IPv4 address)`;
  if (!HOSTNAME.test(host)) return `${example} (${JSON.stringify(host)} is not a host name)`;
  return undefined;
}

/** A DNS server as dns.Resolver.setServers takes it (ADDRESS, ADDRESS:PORT or [IPv6]:PORT), or what was expected instead. */
export function dnsServerError(value: string): string | undefined {
  const example = "expected an address with an optional port, e.g. 192.0.2.53 or 127.0.0.1:5353 or [::1]:53";
  const m = /^(?:(\d+\.\d+\.\d+\.\d+)|\[([0-9a-fA-F:.]+)\])(?::(\d{1,5}))?$/.exec(value);
  if (!m) return example;
  if ((m[1] !== undefined && !isIPv4(m[1])) || (m[2] !== undefined && !isIPv6(m[2]))) return `${example} (not an IP address)`;
  if (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535)) return "expected a port from 1 to 65535";
  try {
    new Resolver().setServers([value]);
  } catch (err) {
    return `${example} (${(err as Error).message})`;
  }
  return undefined;
}
