// What each transport's replies mean for the thing being sent, in one table
// per transport and command: the outbound queues (news feeds, mail hops) act
// on the disposition and never on reply codes.
//   send     go on with the transfer (238 to CHECK, 335 to IHAVE)
//   done     the next hop took it (239, 235, 2yz)
//   refused  the next hop had it or does not want it; never offer again (438, 435)
//   rejected the next hop refused the thing itself; never offer again (439, 437)
//   retry    try again later (431, 436, 4yz, no reply)
//   failed   permanent failure to deliver; the sender is told (SMTP 5yz: a DSN)
export type Disposition = "send" | "done" | "refused" | "rejected" | "retry" | "failed";

type Table = Readonly<Record<string, Disposition>>;

/** RFC 4644 §2.4-2.5 and RFC 3977 §6.3.2; 400 (service going away) is a retry elsewhere. */
export const NNTP: { CHECK: Table; TAKETHIS: Table; IHAVE: Table; IHAVE_TRANSFER: Table } = {
  CHECK: { "238": "send", "438": "refused", "431": "retry" },
  // 431 and 436 are not RFC 4644 answers to TAKETHIS, but INN and tidings defer with them
  TAKETHIS: { "239": "done", "439": "rejected", "431": "retry", "436": "retry", "400": "retry" },
  IHAVE: { "335": "send", "435": "refused", "436": "retry" },
  IHAVE_TRANSFER: { "235": "done", "437": "rejected", "436": "retry" },
};

/** The disposition of an NNTP reply line, or undefined for a reply the command cannot have (a protocol error). */
export function nntpDisposition(table: Table, line: string): Disposition | undefined {
  return table[line.slice(0, 3)];
}

/** RFC 5321 §4.2.1: 2yz done, 4yz transient, 5yz permanent; no reply at all (a lost connection) is transient. */
export function smtpDisposition(code: number | undefined): "done" | "retry" | "failed" {
  if (code === undefined) return "retry";
  if (code >= 200 && code < 300) return "done";
  if (code >= 500 && code < 600) return "failed";
  return "retry";
}

/**
 * Exponential backoff with jitter: `min` doubled per attempt up to `max`,
 * then spread by ±`jitter` so that many waiting things do not come back in
 * one wave. Seconds in, milliseconds out.
 */
export function backoffMs(attempt: number, min: number, max: number, jitter = 0.25): number {
  const base = Math.min(max, min * 2 ** Math.max(0, attempt));
  return Math.round(base * 1000 * (1 - jitter + Math.random() * 2 * jitter));
}
