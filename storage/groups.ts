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
}

export interface GroupSpec {
  name: string;
  status?: GroupStatus;
  description?: string;
  creator?: string;
}

export class GroupTable {
  readonly byName = new Map<string, Group>();
  readonly byId = new Map<number, Group>();

  private constructor(private readonly db: Db) {}

  static async load(db: Db): Promise<GroupTable> {
    const t = new GroupTable(db);
    for (const g of await db.all<Group>("SELECT * FROM groups ORDER BY name")) t.#index(g);
    return t;
  }

  #index(g: Group): void {
    this.byName.set(g.name, g);
    this.byId.set(g.id, g);
  }

  get(name: string): Group | undefined {
    return this.byName.get(name);
  }

  list(): Group[] {
    return [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Creates missing groups and updates status and description of existing ones. */
  async ensure(specs: GroupSpec[], now = Date.now()): Promise<void> {
    for (const s of specs) {
      const have = this.byName.get(s.name);
      const status = s.status ?? "y";
      const description = s.description ?? "";
      if (have) {
        if (have.status !== status || have.description !== description) {
          await this.db.run("UPDATE groups SET status = ?, description = ? WHERE id = ?", [status, description, have.id]);
          have.status = status;
          have.description = description;
        }
        continue;
      }
      const created = Math.floor(now / 1000);
      const creator = s.creator ?? "tidings";
      const r = await this.db.run(
        "INSERT INTO groups (name, low, high, count, status, created, creator, description) VALUES (?, 1, 0, 0, ?, ?, ?, ?)",
        [s.name, status, created, creator, description],
      );
      this.#index({ id: r.lastID, name: s.name, low: 1, high: 0, count: 0, status, created, creator, description });
    }
  }
}
