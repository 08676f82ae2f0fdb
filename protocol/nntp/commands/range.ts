// Article ranges (RFC 3977 §4.1 "range"): "n", "n-", "n-m".
export interface Range {
  low: number;
  high: number;
}

const MAX = 2 ** 53 - 1;

export function parseRange(s: string): Range | undefined {
  const m = /^(\d{1,16})(-(\d{1,16})?)?$/.exec(s);
  if (!m) return undefined;
  const low = Number(m[1]);
  if (!m[2]) return { low, high: low };
  return { low, high: m[3] === undefined ? MAX : Number(m[3]) };
}

export function parseNumber(s: string): number | undefined {
  return /^\d{1,16}$/.test(s) ? Number(s) : undefined;
}
