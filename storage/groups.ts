// The active file: every group with its water marks, kept in memory and in SQLite.
import type { Db } from "./sqlite.js";

export type GroupStatus = "y" | "n" | "m" | "x" | "j";

export interface Group {
  id: number;
  name: string;
  low: number;
  high: number;
  count: number;
  status: GroupStatus;
  created: number; // seconds since the epoch
  creator: string;
  description: string;
  /** Where posts to a moderated group go (RFC 5537 §3.5.1); empty: none configured. */
  moderator: string;
  /** Who manages it: the configuration file, or live changes (control socket, control messages). */
  origin: "config" | "live";
  /** When it was removed (ms), or null while it is carried. */
  removed: number | null;
}

export interface GroupSpec {
  name: string;
  status?: GroupStatus;
  description?: string;
  creator?: string;
  moderator?: string;
}

export interface GroupChange {
  status?: GroupStatus;
  description?: string;
  moderator?: string;
}

/**
 * The carried groups. `get` and `list` see only groups carried now; a removed
 * group keeps its row and its high water mark, so a group that comes back
 * never gives an article number twice.
 */
export class GroupTable {
  readonly #all = new Map<string, Group>();
  readonly byId = new Map<number, Group>();

  private constructor(private readonly db: Db) {}

  static async load(db: Db): Promise<GroupTable> {
    const t = new GroupTable(db);
    for (const g of await db.all<Group>("SELECT * FROM groups ORDER BY name")) t.#index(g);
    return t;
  }

  #index(g: Group): void {
    this.#all.set(g.name, g);
    this.byId.set(g.id, g);
  }

  get(name: string): Group | undefined {
    const g = this.#all.get(name);
    return g && g.removed === null ? g : undefined;
  }

  /** Carried groups by name (a view: removed groups are left out). */
  get byName(): Map<string, Group> {
    return new Map(this.list().map((g) => [g.name, g]));
  }

  list(): Group[] {
    return [...this.#all.values()].filter((g) => g.removed === null).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Every group ever carried, removed ones too (for expiry and status). */
  all(): Group[] {
    return [...this.#all.values()];
  }

  /**
   * Applies the configuration's groups: creates missing ones, updates status,
   * description and moderator of those it manages, and removes those it
   * managed that it no longer lists. Groups changed live are left alone, so a
   * restart does not undo `tidings group add/rm/set` or a control message.
   * Returns the names created and removed.
   */
  async ensure(specs: (GroupSpec & { name: string })[], now = Date.now()): Promise<{ created: string[]; removed: string[] }> {
    const created: string[] = [];
    const removed: string[] = [];
    const listed = new Set(specs.map((s) => s.name));
    for (const s of specs) {
      const have = this.#all.get(s.name);
      if (have && have.origin === "live") continue;
      if (!have || have.removed !== null) created.push(s.name);
      await this.#put(s, "config", now);
    }
    for (const g of this.#all.values()) {
      if (g.origin === "config" && g.removed === null && !listed.has(g.name)) {
        await this.#setRemoved(g, now);
        removed.push(g.name);
      }
    }
    return { created, removed };
  }

  /** Adds a group live (or brings a removed one back, with its numbers). Returns false if it is carried already. */
  async add(spec: GroupSpec, now = Date.now()): Promise<boolean> {
    const have = this.#all.get(spec.name);
    if (have && have.removed === null) return false;
    await this.#put(spec, "live", now);
    return true;
  }

  /** Changes a carried group live; from then on the configuration no longer manages it. */
  async set(name: string, change: GroupChange): Promise<Group | undefined> {
    const g = this.get(name);
    if (!g) return undefined;
    await this.#put({ name, status: change.status ?? g.status, description: change.description ?? g.description, moderator: change.moderator ?? g.moderator, creator: g.creator }, "live", Date.now());
    return g;
  }

  /** Removes a carried group live: no longer listed nor posted to; its articles stay until they expire. */
  async remove(name: string, now = Date.now()): Promise<boolean> {
    const g = this.get(name);
    if (!g) return false;
    await this.db.run("UPDATE groups SET origin = 'live' WHERE id = ?", [g.id]);
    g.origin = "live";
    await this.#setRemoved(g, now);
    return true;
  }

  async #setRemoved(g: Group, now: number): Promise<void> {
    await this.db.run("UPDATE groups SET removed = ? WHERE id = ?", [now, g.id]);
    g.removed = now;
  }

  async #put(s: GroupSpec, origin: "config" | "live", now: number): Promise<void> {
    const status = s.status ?? "y";
    const description = s.description ?? "";
    const moderator = s.moderator ?? "";
    const have = this.#all.get(s.name);
    if (have) {
      if (have.status !== status || have.description !== description || have.moderator !== moderator || have.origin !== origin || have.removed !== null) {
        await this.db.run("UPDATE groups SET status = ?, description = ?, moderator = ?, origin = ?, removed = NULL WHERE id = ?", [status, description, moderator, origin, have.id]);
        Object.assign(have, { status, description, moderator, origin, removed: null });
      }
      return;
    }
    const created = Math.floor(now / 1000);
    const creator = s.creator ?? "tidings";
    const r = await this.db.run(
      "INSERT INTO groups (name, low, high, count, status, created, creator, description, moderator, origin) VALUES (?, 1, 0, 0, ?, ?, ?, ?, ?, ?)",
      [s.name, status, created, creator, description, moderator, origin],
    );
    this.#index({ id: r.lastID, name: s.name, low: 1, high: 0, count: 0, status, created, creator, description, moderator, origin, removed: null });
  }
}
