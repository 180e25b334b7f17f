/**
 * SQLite on Deno: Deno 2 ships `node:sqlite`, so the Node implementation serves.
 *
 * @module
 */

export { openSqlite } from "../node/sqlite.ts";
