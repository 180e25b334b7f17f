/**
 * The SQLite store: every change of seeded random broker runs written as it happens, read back equal to what
 * the machine says must be kept; a file reopened keeps it; times become wall-clock times and back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BrokerMachine } from "../../src/machine/broker_machine.ts";
import { type BrokerStore, openSqliteStore } from "../../src/broker/store.ts";
import { canonical, runJournal } from "../machine/_journal_helpers.ts";
import { Harness } from "../machine/_broker_helpers.ts";

for (const seed of [5, 11, 77]) {
  test(`SQLite store: holds exactly what the broker must keep at every step of a random run (seed ${seed})`, async () => {
    let clock = 0;
    const store = await openSqliteStore(":memory:", { clock: () => clock });
    try {
      runJournal(seed, 300, {
        apply(now, changes) {
          clock = now;
          store.write(changes);
        },
        snapshot(now) {
          clock = now;
          return canonical(store.load());
        },
      });
    } finally {
      store.close();
    }
  });
}

test("SQLite store: a reopened file restores sessions, queued and in-flight messages, wills and retained messages", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-store-"));
  const path = join(dir, "broker.db");
  let wall = 1_000_000;
  const clock = () => wall;
  try {
    const h = new Harness({ journal: true });
    let store: BrokerStore = await openSqliteStore(path, { clock });
    const sub = h.connected("sub", 5, {
      cleanStart: true,
      properties: { sessionExpiryInterval: 600 },
      will: {
        topic: "w",
        payload: new Uint8Array([1]),
        qos: 1,
        retain: true,
        properties: { willDelayInterval: 30, contentType: "x/y" },
      },
    });
    sub.subscribe("t/#", 2, 9);
    const pub = h.connected("pub", 5);
    pub.publish("t/a", "in flight", {
      qos: 2,
      packetId: 1,
      properties: { userProperties: [["k", "v"]], correlationData: new Uint8Array([7, 7]) },
    });
    pub.publish("t/r", "retained", {
      qos: 1,
      packetId: 2,
      retain: true,
      properties: { messageExpiryInterval: 100 },
    });
    sub.take();
    sub.drop();
    pub.publish("t/b", "queued", { qos: 1, packetId: 3 });
    store.write(h.broker.pollChanges(h.now));
    const expected = canonical(h.broker.exportState(h.now));
    store.close();
    // Ten seconds later, in a new process.
    wall += 10_000;
    store = await openSqliteStore(path, { clock });
    const loaded = store.load();
    const shifted = structuredClone(expected);
    for (const s of shifted.sessions) {
      if (s.expiresInMs !== undefined) s.expiresInMs -= 10_000;
      if (s.willInMs !== undefined) s.willInMs -= 10_000;
      for (const d of [...s.inflight, ...s.queue]) {
        if (d.message.expiresInMs !== undefined) d.message.expiresInMs -= 10_000;
      }
    }
    for (const m of shifted.retained) if (m.expiresInMs !== undefined) m.expiresInMs -= 10_000;
    assert.deepStrictEqual(canonical(loaded), shifted);
    const session = loaded.sessions.find((s) => s.clientId === "sub");
    assert.equal(session?.willInMs, 20_000);
    assert.equal(session?.expiresInMs, 590_000);
    assert.deepStrictEqual(session?.inflight.map((d) => d.packetId), [1, 2]);
    assert.equal(session?.queue.length, 1);
    // Restored into a new machine, and written back whole, it reads the same.
    const machine = new BrokerMachine({ journal: true });
    machine.restoreState(0, loaded);
    store.write(machine.pollChanges(0), true);
    assert.deepStrictEqual(canonical(store.load()), canonical(loaded));
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SQLite store: a connected session's times count from the restore, however long the broker was down", async () => {
  let wall = 0;
  const store = await openSqliteStore(":memory:", { clock: () => wall });
  const h = new Harness({ journal: true });
  h.connected("c", 5, {
    cleanStart: true,
    properties: { sessionExpiryInterval: 60 },
    will: {
      topic: "w",
      payload: new Uint8Array([1]),
      qos: 0,
      retain: false,
      properties: { willDelayInterval: 5 },
    },
  });
  store.write(h.broker.pollChanges(h.now));
  wall = 3_600_000;
  const session = store.load().sessions[0];
  assert.equal(session.expiresInMs, 60_000);
  assert.equal(session.willInMs, 5_000);
  store.close();
});

test("SQLite store: a file of another schema version is refused with a clear error", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-store-"));
  const path = join(dir, "broker.db");
  try {
    const store = await openSqliteStore(path);
    store.close();
    const { openSqlite } = await import("../../src/runtime/sqlite.ts");
    const db = await openSqlite(path);
    db.run("UPDATE meta SET value = '99' WHERE key = 'schema'");
    db.close();
    await assert.rejects(openSqliteStore(path), /schema version 99/);
    writeFileSync(path, "not a database at all, just text that is long enough to look like a header");
    await assert.rejects(openSqliteStore(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SQLite store: keeps a session's user name, for the ACL's read rules after a restart", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-store-"));
  const path = join(dir, "broker.db");
  try {
    let store = await openSqliteStore(path);
    const session = { clientId: "c", expiryInterval: 60, subscriptions: [], inboundQoS2: [] };
    store.write([
      { type: "session", session: { ...session, username: "ada" } },
      { type: "session", session: { ...session, clientId: "anonymous" } },
    ]);
    store.close();
    store = await openSqliteStore(path);
    const loaded = new Map(store.load().sessions.map((s) => [s.clientId, s]));
    assert.equal(loaded.get("c")?.username, "ada");
    assert.equal(loaded.get("anonymous")?.username, undefined);
    assert.equal("username" in loaded.get("anonymous")!, false);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SQLite store: a schema 1 file (no user names) is upgraded and keeps its sessions", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-store-"));
  const path = join(dir, "broker.db");
  try {
    const { openSqlite } = await import("../../src/runtime/sqlite.ts");
    const db = await openSqlite(path);
    // The tables as version 1 made them, with one session.
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE sessions (client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL,
        connected INTEGER NOT NULL, expires_at REAL, will BLOB, will_at REAL, subscriptions TEXT NOT NULL,
        inbound_qos2 TEXT NOT NULL)`);
    db.run("INSERT INTO meta VALUES ('schema', '1')");
    db.run("INSERT INTO sessions VALUES ('old', 60, 1, NULL, NULL, NULL, '[]', '[]')");
    db.close();
    let store = await openSqliteStore(path);
    assert.deepStrictEqual(store.load().sessions.map((s) => [s.clientId, s.username]), [["old", undefined]]);
    store.write([{
      type: "session",
      session: { clientId: "new", expiryInterval: 60, subscriptions: [], inboundQoS2: [], username: "ada" },
    }]);
    store.close();
    store = await openSqliteStore(path);
    assert.equal(store.load().sessions.find((s) => s.clientId === "new")?.username, "ada");
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SQLite store: a schema 2 file is upgraded; a delivery keeps the shared subscription it came through", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-store-"));
  const path = join(dir, "broker.db");
  try {
    const { openSqlite } = await import("../../src/runtime/sqlite.ts");
    const db = await openSqlite(path);
    // The deliveries table as version 2 made it: no `shared` column.
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE deliveries (key INTEGER PRIMARY KEY, client_id TEXT NOT NULL, packet_id INTEGER,
        released INTEGER NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, subscription_ids TEXT,
        message BLOB NOT NULL, expires_at REAL, publisher TEXT)`);
    db.run("INSERT INTO meta VALUES ('schema', '2')");
    db.close();
    let store = await openSqliteStore(path, { clock: () => 0 });
    const message = { topic: "t", payload: new Uint8Array([1]), qos: 1 as const, retain: false };
    store.write([
      { type: "session", session: { clientId: "m", expiryInterval: 60, subscriptions: [], inboundQoS2: [] } },
      {
        type: "delivery",
        clientId: "m",
        key: 1,
        delivery: { message, qos: 1, retain: false, shared: "$share/g/t" },
      },
      { type: "delivery", clientId: "m", key: 2, delivery: { message, qos: 1, retain: false } },
    ]);
    store.close();
    store = await openSqliteStore(path, { clock: () => 0 });
    const [session] = store.load().sessions;
    assert.deepStrictEqual(session.queue.map((d) => d.shared), ["$share/g/t", undefined]);
    assert.equal("shared" in session.queue[1], false);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SQLite store: a failed write changes nothing", async () => {
  const store = await openSqliteStore(":memory:", { clock: () => 0 });
  const h = new Harness({ journal: true });
  const c = h.connected("c", 5, { properties: { sessionExpiryInterval: 60 } });
  c.subscribe("t", 1);
  store.write(h.broker.pollChanges(h.now));
  const before = store.load();
  const bad = [
    { type: "sessionEnded" as const, clientId: "c" },
    // A retained message whose topic cannot be encoded: the whole write must roll back.
    {
      type: "retained" as const,
      topic: "a",
      message: { topic: "a/+", payload: new Uint8Array(1), qos: 0 as const, retain: true },
    },
  ];
  assert.throws(() => store.write(bad));
  assert.deepStrictEqual(store.load(), before);
  store.close();
});
