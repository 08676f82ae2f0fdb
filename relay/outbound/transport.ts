// The delivery agents' side of the outbound queue (queue.ts): a transport
// opens sessions to one destination; a session takes offers, up to its
// window at once, and answers each with an outcome, its disposition read from
// the transport's own table of replies (dispositions.ts). Transports:
// nntp-transport.ts (RFC 4644 streaming, RFC 3977 IHAVE) and
// smtp-transport.ts (nodemailer, in a worker thread). News to mail is no
// transport of its own: the list mail is queued with the article (ingest) and
// leaves through the SMTP transport like any other mail, INN's news2mail as
// "just another feed".

/**
 *   done     the next hop took it
 *   refused  it had it or does not want it (438, 435): never offer again
 *   rejected it refused the thing itself (439, 437): never offer again
 *   retry    try again later (431, 436, 4yz, no answer)
 *   failed   permanent failure (5yz): the sender is told (a bounce)
 *   gone     nothing left to send (the article expired meanwhile)
 */
export type FinalDisposition = "done" | "refused" | "rejected" | "retry" | "failed" | "gone";

export interface Outcome {
  disposition: FinalDisposition;
  /** The reply line, or why there was none. */
  reply: string;
}

export interface Session<T, R extends Outcome> {
  /** Offers outstanding at once on this session. */
  readonly window: number;
  /** Offers one item; resolves with its outcome, rejects if the session broke first (the item is offered again). */
  offer(item: T): Promise<R>;
  /** Resolves when the session has ended: with the reason, or undefined after close(). */
  readonly closed: Promise<Error | undefined>;
  close(): void;
}

export interface Transport<T, R extends Outcome> {
  /** A new session (a connection, its greeting and mode); rejects if it cannot be had. */
  open(): Promise<Session<T, R>>;
}
