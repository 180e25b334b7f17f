/**
 * Picks this runtime's SQLite (`node:sqlite` on Deno and Node, `bun:sqlite` on Bun), loaded with a dynamic
 * `import()`.
 *
 * @module
 */

import type { SqliteDatabase } from "./sqlite_types.ts";

export type { SqliteDatabase, SqliteValue } from "./sqlite_types.ts";

/**
 * Opens (or creates) a SQLite database on whatever runtime this is.
 *
 * @param path A file, or `":memory:"`.
 * @returns The database.
 *
 * @example A table in memory
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSqlite } from "./sqlite.ts";
 * const db = await openSqlite(":memory:");
 * db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)");
 * db.run("INSERT INTO t VALUES (?, ?)", "a", new Uint8Array([1, 2]));
 * assert.deepEqual(db.all("SELECT * FROM t"), [{ k: "a", v: new Uint8Array([1, 2]) }]);
 * db.close();
 * ```
 */
export async function openSqlite(path: string): Promise<SqliteDatabase> {
  if ("Bun" in globalThis) return (await import("./bun/sqlite.ts")).openSqlite(path);
  if ("Deno" in globalThis) return (await import("./deno/sqlite.ts")).openSqlite(path);
  return (await import("./node/sqlite.ts")).openSqlite(path);
}
