import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqlite } from "../../src/runtime/sqlite.ts";

test("SQLite on this runtime: schema, parameters, blobs as plain Uint8Array, and data that survives reopening", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sqlite-"));
  const file = join(dir, "state.db");
  try {
    const db = await openSqlite(file);
    db.exec("CREATE TABLE retained (topic TEXT PRIMARY KEY, qos INTEGER, payload BLOB)");
    db.exec("BEGIN");
    db.run("INSERT INTO retained VALUES (?, ?, ?)", "a/b", 1, Uint8Array.of(0, 1, 255));
    db.run("INSERT INTO retained VALUES (?, ?, ?)", "c", 0, new Uint8Array(0));
    db.exec("COMMIT");
    db.run("UPDATE retained SET qos = ? WHERE topic = ?", 2, "c");
    db.close();
    const again = await openSqlite(file);
    const rows = again.all("SELECT topic, qos, payload FROM retained WHERE qos >= ? ORDER BY topic", 1);
    assert.equal(rows.length, 2);
    assert.equal(rows[0].topic, "a/b");
    assert.equal(Number(rows[0].qos), 1);
    const payload = rows[0].payload as Uint8Array;
    assert.equal(Object.getPrototypeOf(payload), Uint8Array.prototype, "a plain Uint8Array, not a Buffer");
    assert.deepEqual([...payload], [0, 1, 255]);
    assert.equal(Number(rows[1].qos), 2);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
