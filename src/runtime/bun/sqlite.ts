/**
 * SQLite on Bun through `bun:sqlite`.
 *
 * @module
 */

import type { SqliteDatabase, SqliteValue } from "../sqlite_types.ts";

interface BunStatement {
  run(...params: SqliteValue[]): unknown;
  all(...params: SqliteValue[]): Record<string, unknown>[];
}

interface BunDatabase {
  exec(sql: string): void;
  query(sql: string): BunStatement;
  close(): void;
}

/**
 * Opens (or creates) a database file; `":memory:"` for a database in memory.
 *
 * @param path The file.
 * @returns The database.
 */
export async function openSqlite(path: string): Promise<SqliteDatabase> {
  const { Database } = await import("bun:sqlite" as string) as {
    Database: new (path: string) => BunDatabase;
  };
  const db = new Database(path);
  return {
    exec: (sql) => db.exec(sql),
    run: (sql, ...params) => void db.query(sql).run(...params),
    all: (sql, ...params) =>
      db.query(sql).all(...params).map((row) => {
        const out: Record<string, SqliteValue> = {};
        for (const key in row) {
          const value = row[key];
          out[key] = value instanceof Uint8Array
            ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice()
            : value as SqliteValue;
        }
        return out;
      }),
    close: () => db.close(),
  };
}
