// Requests gathered for a moment and answered by one query: the read side
// asks SQLite for many rows in one trip through its thread instead of one each.

/**
 * Lookups asked in the same turn of the event loop, answered together: a
 * pipelined ARTICLE run asks for several articles at once, and one query for
 * all of them costs one trip through SQLite's thread instead of one each.
 * Each query is made after every request in it, so it sees every commit made
 * before any of them was asked.
 */
export class Batched<K, V> {
  #pending = new Map<K, { resolve: (v: V | undefined) => void; reject: (e: unknown) => void }[]>();

  /**
   * `schedule` decides how long requests gather: a microtask takes what one
   * synchronous run asked (a pipelined batch of commands); setImmediate also
   * takes what other connections' data in the same turn asked.
   */
  constructor(
    private readonly fetch: (keys: K[]) => Promise<Map<K, V>>,
    private readonly schedule: (run: () => void) => void = queueMicrotask,
  ) {}

  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.schedule(() => void this.#run());
      const list = this.#pending.get(key);
      if (list) list.push({ resolve, reject });
      else this.#pending.set(key, [{ resolve, reject }]);
    });
  }

  async #run(): Promise<void> {
    const pending = this.#pending;
    this.#pending = new Map();
    try {
      const found = await this.fetch([...pending.keys()]);
      for (const [k, ws] of pending) for (const w of ws) w.resolve(found.get(k));
    } catch (err) {
      for (const ws of pending.values()) for (const w of ws) w.reject(err);
    }
  }
}
