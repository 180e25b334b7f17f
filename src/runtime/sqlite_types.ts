/**
 * The small SQLite surface the broker's persistence needs, implemented by `{deno,bun,node}/sqlite.ts`.
 *
 * @module
 */

/** A value SQLite stores: text, a number, bytes or null. */
export type SqliteValue = string | number | bigint | Uint8Array | null;

/** An open SQLite database. */
export interface SqliteDatabase {
  /** Runs statements without parameters (schema, pragmas, BEGIN/COMMIT). */
  exec(sql: string): void;
  /** Runs one statement with positional parameters. */
  run(sql: string, ...params: SqliteValue[]): void;
  /** Runs a query; rows come back as objects keyed by column name, blobs as `Uint8Array`. */
  all(sql: string, ...params: SqliteValue[]): Record<string, SqliteValue>[];
  /** Closes the database. */
  close(): void;
}
