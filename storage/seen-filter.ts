// A Bloom filter over every Message-ID in history. "Definitely not seen" is
// answered from memory, so offering new articles (the common case of a feed)
// costs no database lookup; "maybe" falls through to history. About 1.2 MB per
// million ids at a 1% false-positive rate.

export class SeenFilter {
  #bits: Uint32Array;
  #m: number; // bits
  #k = 7;
  count = 0;
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = Math.max(1024, capacity);
    // m = -n ln p / (ln 2)^2 with p = 0.01 → ~9.6 bits per id
    this.#m = Math.ceil(this.capacity * 9.6 / 32) * 32;
    this.#bits = new Uint32Array(this.#m / 32);
  }

  add(id: string): void {
    let [h1, h2] = hashes(id);
    for (let i = 0; i < this.#k; i++) {
      const b = (h1 >>> 0) % this.#m;
      this.#bits[b >>> 5] |= 1 << (b & 31);
      h1 = (h1 + h2) | 0;
    }
    this.count++;
  }

  mayHave(id: string): boolean {
    let [h1, h2] = hashes(id);
    for (let i = 0; i < this.#k; i++) {
      const b = (h1 >>> 0) % this.#m;
      if ((this.#bits[b >>> 5] & (1 << (b & 31))) === 0) return false;
      h1 = (h1 + h2) | 0;
    }
    return true;
  }

  get full(): boolean {
    return this.count > this.capacity;
  }
}

/** Two independent 32-bit hashes (FNV-1a and a multiplicative mix) for double hashing. */
function hashes(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [a, b | 1];
}
