// Message-IDs being received right now, by which session (INN's wip.c). A
// second offer of the same id while the first is in progress gets 431 to CHECK
// or 436 to IHAVE (RFC 4644 §2.4, RFC 3977 §6.3.2), so two peers offering the
// same article at once cause one transfer, not two.
//
// Every article a peer sends is claimed (by CHECK, and again by TAKETHIS) and
// released, so this sits on the ingest path: a reservation is the owner
// itself in one of two maps, with no object or clock reading of its own. The
// young map becomes the old one every `ttlMs`, and the old one is dropped, so
// a reservation its session never released lasts between one and two `ttlMs`.

export class InFlight {
  #young = new Map<string, object>();
  #old = new Map<string, object>();
  #turnAt: number;

  constructor(private readonly ttlMs = 60_000) {
    this.#turnAt = Date.now() + ttlMs;
  }

  /** Reserves the id for `owner`; false if another owner holds a live reservation. */
  claim(msgid: string, owner: object, now = Date.now()): boolean {
    this.#turn(now);
    const young = this.#young.get(msgid);
    if (young !== undefined) return young === owner;
    const old = this.#old.get(msgid);
    if (old !== undefined && old !== owner) return false;
    this.#young.set(msgid, owner);
    if (old !== undefined) this.#old.delete(msgid);
    return true;
  }

  heldByOther(msgid: string, owner: object, now = Date.now()): boolean {
    this.#turn(now);
    const h = this.#young.get(msgid) ?? this.#old.get(msgid);
    return h !== undefined && h !== owner;
  }

  release(msgid: string, owner: object): void {
    if (this.#young.get(msgid) === owner) this.#young.delete(msgid);
    else if (this.#old.get(msgid) === owner) this.#old.delete(msgid);
  }

  releaseAll(owner: object): void {
    for (const m of [this.#young, this.#old]) for (const [id, o] of m) if (o === owner) m.delete(id);
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  #turn(now: number): void {
    if (now < this.#turnAt) return;
    // a map untouched for two turns holds nothing live
    this.#old = now - this.#turnAt >= this.ttlMs ? new Map() : this.#young;
    this.#young = new Map();
    this.#turnAt = now + this.ttlMs;
  }
}
