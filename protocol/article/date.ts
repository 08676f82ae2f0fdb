// Dates: the Date header (RFC 5322 §3.3, obsolete forms tolerated as RFC 5536
// §3.1.1 asks of relays) and the NNTP date arguments (RFC 3977 §7.3).

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

const ZONES: Record<string, number> = {
  ut: 0, gmt: 0, z: 0, est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420,
};

const DATE_RE =
  /^\s*(?:[A-Za-z]{3},?\s*)?(\d{1,2})\s+([A-Za-z]{3})[a-z]*\s+(\d{2,4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([+-]\d{4}|[A-Za-z]{1,5})?/;

/** Milliseconds since the epoch, or undefined when the value is not a date. */
export function parseDateHeader(value: string): number | undefined {
  const m = DATE_RE.exec(value.indexOf("(") < 0 ? value : value.replace(/\([^)]*\)/g, " "));
  if (!m) return undefined;
  const day = Number(m[1]);
  const month = MONTHS.indexOf(m[2].toLowerCase());
  let year = Number(m[3]);
  if (month < 0 || day < 1 || day > 31) return undefined;
  if (m[3].length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3].length === 3) year += 1900;
  const h = Number(m[4]), min = Number(m[5]), s = m[6] ? Number(m[6]) : 0;
  if (h > 23 || min > 59 || s > 60) return undefined;
  let offset = 0;
  const z = m[7];
  if (z) {
    if (/^[+-]\d{4}$/.test(z)) {
      const sign = z[0] === "-" ? -1 : 1;
      offset = sign * (Number(z.slice(1, 3)) * 60 + Number(z.slice(3, 5)));
    } else offset = ZONES[z.toLowerCase()] ?? 0;
  }
  return Date.UTC(year, month, day, h, min, s) - offset * 60_000;
}

/** RFC 5322 date-time in UTC, as the node writes Date and Injection-Date. */
export function formatDateHeader(ms: number): string {
  return new Date(ms).toUTCString().replace("GMT", "+0000");
}

/**
 * RFC 3977 §7.3: date is yymmdd or yyyymmdd, time hhmmss, UTC (with or
 * without "GMT": this server keeps its clock in UTC either way). A two-digit
 * year is taken as the closest century to now.
 */
export function parseNntpDate(date: string, time: string): number | undefined {
  if (!/^(\d{6}|\d{8})$/.test(date) || !/^\d{6}$/.test(time)) return undefined;
  let year: number;
  let rest: string;
  if (date.length === 8) {
    year = Number(date.slice(0, 4));
    rest = date.slice(4);
  } else {
    const yy = Number(date.slice(0, 2));
    const now = new Date().getUTCFullYear();
    const century = Math.floor(now / 100) * 100;
    year = century + yy;
    if (year > now) year -= 100;
    rest = date.slice(2);
  }
  const month = Number(rest.slice(0, 2)), day = Number(rest.slice(2, 4));
  const h = Number(time.slice(0, 2)), m = Number(time.slice(2, 4)), s = Number(time.slice(4, 6));
  if (month < 1 || month > 12 || day < 1 || day > 31 || h > 23 || m > 59 || s > 60) return undefined;
  return Date.UTC(year, month - 1, day, h, m, s);
}

export function formatNntpDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}
