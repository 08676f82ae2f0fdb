/** Per-connection settings of a writer connection (the main thread's and the commit thread's). */
export function writerPragmas(synchronous: "full" | "normal"): string {
  return `PRAGMA synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"};
    PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -8000; PRAGMA wal_autocheckpoint = 4000;`;
}
