// Message-IDs being received right now, by which session (INN's wip.c). A
// second offer of the same id while the first is in progress gets 431 to CHECK
// or 436 to IHAVE (RFC 4644 §2.4, RFC 3977 §6.3.2), so two peers offering the
// same article at once cause one transfer, not two.

export class InFlight {
  #held = new Map<string, { owner: object; until: number }>();

  constructor(private readonly ttlMs = 60_000) {}

  /** Reserves the id for `owner`; false if another owner holds a live reservation. */
  claim(msgid: string, owner: object, now = Date.now()): boolean {
    const h = this.#held.get(msgid);
    if (h && h.owner !== owner && h.until > now) return false;
    this.#held.set(msgid, { owner, until: now + this.ttlMs });
    return true;
  }

  heldByOther(msgid: string, owner: object, now = Date.now()): boolean {
    const h = this.#held.get(msgid);
    return !!h && h.owner !== owner && h.until > now;
  }

  release(msgid: string, owner: object): void {
    const h = this.#held.get(msgid);
    if (h && h.owner === owner) this.#held.delete(msgid);
  }

  releaseAll(owner: object): void {
    for (const [id, h] of this.#held) if (h.owner === owner) this.#held.delete(id);
  }

  get size(): number {
    return this.#held.size;
  }
}
