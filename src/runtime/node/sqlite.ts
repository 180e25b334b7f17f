/**
 * SQLite on Node through `node:sqlite` (Node 22.5 and later).
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import type { SqliteDatabase, SqliteValue } from "../sqlite_types.ts";

/** Turns a Node `Buffer` (or any view) coming out of SQLite into a plain `Uint8Array`. */
function plain(value: unknown): SqliteValue {
  if (value instanceof Uint8Array) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice();
  }
  return value as SqliteValue;
}

/**
 * Opens (or creates) a database file; `":memory:"` for a database in memory.
 *
 * @param path The file.
 * @returns The database.
 */
export function openSqlite(path: string): Promise<SqliteDatabase> {
  const db = new DatabaseSync(path);
  const statements = new Map<string, ReturnType<DatabaseSync["prepare"]>>();
  const prepare = (sql: string) => {
    let statement = statements.get(sql);
    if (statement === undefined) statements.set(sql, statement = db.prepare(sql));
    return statement;
  };
  return Promise.resolve({
    exec: (sql) => void db.exec(sql),
    run: (sql, ...params) => void prepare(sql).run(...(params as never[])),
    all: (sql, ...params) =>
      (prepare(sql).all(...(params as never[])) as Record<string, unknown>[]).map((row) => {
        const out: Record<string, SqliteValue> = {};
        for (const key in row) out[key] = plain(row[key]);
        return out;
      }),
    close: () => db.close(),
  });
}
