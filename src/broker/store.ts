/**
 * Persistence for the broker: the {@linkcode BrokerStore} interface and a SQLite store that writes the
 * BrokerMachine's journal (`pollChanges()`) one transaction per turn, before the turn's acknowledgements go out.
 *
 * @module
 */

import { PacketDecoder } from "../codec/decoder.ts";
import { encode } from "../codec/encode.ts";
import type { ConnectPacket, PublishPacket, QoS, Will } from "../codec/packet.ts";
import type {
  BrokerChange,
  BrokerSnapshot,
  DeliverySnapshot,
  MessageSnapshot,
  SessionSnapshot,
  SessionSubscription,
} from "../machine/broker_machine.ts";
import { openSqlite, type SqliteDatabase, type SqliteValue } from "../runtime/sqlite.ts";

/**
 * Where a {@linkcode Broker} keeps what outlives its process. The broker loads it once when created and then
 * writes the changes of each turn before sending that turn's packets, so nothing it acknowledged is lost.
 * Methods are synchronous so that no acknowledgement can overtake its write.
 */
export interface BrokerStore {
  /**
   * Reads everything saved.
   *
   * @returns The state, times relative to now.
   */
  load(): BrokerSnapshot;
  /**
   * Writes changes durably, all or none.
   *
   * @param changes From `BrokerMachine.pollChanges()`, times relative to now.
   * @param replace The changes are the whole state: forget everything else first.
   */
  write(changes: readonly BrokerChange[], replace?: boolean): void;
  /** Releases the store. */
  close(): void;
}

/**
 * The schema version in the `meta` table: 2 added `sessions.username`, 3 `deliveries.shared` (the shared
 * subscription a delivery came through).
 */
const SCHEMA_VERSION = "3";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  client_id TEXT PRIMARY KEY,
  expiry_interval INTEGER NOT NULL,
  connected INTEGER NOT NULL,
  expires_at REAL,
  will BLOB,
  will_at REAL,
  subscriptions TEXT NOT NULL,
  inbound_qos2 TEXT NOT NULL,
  username TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
  key INTEGER PRIMARY KEY,
  client_id TEXT NOT NULL,
  packet_id INTEGER,
  released INTEGER NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  subscription_ids TEXT,
  message BLOB NOT NULL,
  expires_at REAL,
  publisher TEXT,
  shared TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_client ON deliveries (client_id);
CREATE TABLE IF NOT EXISTS retained (
  topic TEXT PRIMARY KEY,
  message BLOB NOT NULL,
  expires_at REAL,
  publisher TEXT
);
`;

/** Options of {@linkcode openSqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * `"normal"` (the default) survives a crash of the process; `"full"` also a crash of the machine (power
   * loss), at the cost of a disk flush per write.
   */
  durability?: "normal" | "full";
  /** The wall clock in milliseconds; for tests. Default `Date.now`. */
  clock?: () => number;
}

/**
 * Opens (creating when needed) a SQLite file as a broker store: `node:sqlite` on Deno and Node, `bun:sqlite`
 * on Bun. Sessions (with their user name, for the ACL), their subscriptions, queued and in-flight messages,
 * inbound QoS 2 state, wills and their deadlines, and retained messages each have rows, changed one by one as
 * the broker's journal says. A file of schema version 1 or 2 is upgraded (a version 1 file's sessions have no
 * user name; older files' deliveries came through no shared subscription).
 *
 * @param path The database file, or `":memory:"`.
 * @param options Durability.
 * @returns The store.
 *
 * @example A retained message survives a restart of the broker
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { Broker, openSqliteStore } from "@x/mqtt/broker";
 * const dir = await mkdtemp(join(tmpdir(), "x-mqtt-"));
 * const path = join(dir, "broker.db");
 * {
 *   const broker = new Broker({ store: await openSqliteStore(path) });
 *   const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 *   const client = await connect(`mqtt://127.0.0.1:${port}`);
 *   await client.publish("status", "up", { qos: 1, retain: true });
 *   await client.close();
 *   await broker.close();
 * }
 * const broker = new Broker({ store: await openSqliteStore(path) }); // the same file, after a restart
 * const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await connect(`mqtt://127.0.0.1:${port}`);
 * for await (const message of await client.subscribe("status")) {
 *   assert.equal(message.text(), "up");
 *   break;
 * }
 * await client.close();
 * await broker.close();
 * await rm(dir, { recursive: true });
 * ```
 */
export async function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<BrokerStore> {
  const db = await openSqlite(path);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA synchronous = ${options.durability === "full" ? "FULL" : "NORMAL"}`);
    db.exec(SCHEMA);
    const version = db.all("SELECT value FROM meta WHERE key = 'schema'")[0]?.value;
    if (version === undefined) db.run("INSERT INTO meta VALUES ('schema', ?)", SCHEMA_VERSION);
    else if (version === "1" || version === "2") {
      db.exec("BEGIN");
      // Version 1 kept no user names: its sessions come back without one (as anonymous ones for an ACL).
      if (version === "1") db.exec("ALTER TABLE sessions ADD COLUMN username TEXT");
      // Before version 3 no delivery kept its shared subscription (a table made just now by SCHEMA has it).
      if (!db.all("PRAGMA table_info(deliveries)").some((column) => column.name === "shared")) {
        db.exec("ALTER TABLE deliveries ADD COLUMN shared TEXT");
      }
      db.run("UPDATE meta SET value = ? WHERE key = 'schema'", SCHEMA_VERSION);
      db.exec("COMMIT");
    } else if (version !== SCHEMA_VERSION) {
      throw new Error(`${path} has schema version ${version}; this broker reads version ${SCHEMA_VERSION}`);
    }
  } catch (error) {
    db.close();
    throw error;
  }
  return new SqliteStore(db, options.clock ?? Date.now);
}

class SqliteStore implements BrokerStore {
  readonly #db: SqliteDatabase;
  readonly #clock: () => number;

  constructor(db: SqliteDatabase, clock: () => number) {
    this.#db = db;
    this.#clock = clock;
  }

  load(): BrokerSnapshot {
    const now = this.#clock();
    const db = this.#db;
    const sessions = new Map<string, SessionSnapshot>();
    for (const row of db.all("SELECT * FROM sessions")) {
      const connected = row.connected === 1;
      // A connected session's times are durations from the restore; the others' are wall-clock times.
      const relative = (value: SqliteValue) =>
        value === null ? undefined : connected ? Number(value) : Number(value) - now;
      const session: SessionSnapshot = {
        clientId: String(row.client_id),
        expiryInterval: Number(row.expiry_interval),
        subscriptions: JSON.parse(String(row.subscriptions)) as SessionSubscription[],
        inboundQoS2: JSON.parse(String(row.inbound_qos2)) as number[],
        inflight: [],
        queue: [],
      };
      if (connected) session.connected = true;
      if (row.username !== null && row.username !== undefined) session.username = String(row.username);
      const expiresIn = relative(row.expires_at);
      if (expiresIn !== undefined) session.expiresInMs = expiresIn;
      if (row.will instanceof Uint8Array) {
        session.will = decodeWill(row.will);
        const willIn = relative(row.will_at);
        if (willIn !== undefined) session.willInMs = willIn;
      }
      sessions.set(session.clientId, session);
    }
    for (const row of db.all("SELECT * FROM deliveries ORDER BY key")) {
      const session = sessions.get(String(row.client_id));
      if (session === undefined) continue; // cannot happen: a session's end deletes its deliveries
      const delivery: DeliverySnapshot = {
        message: decodeMessage(row.message as Uint8Array, row.expires_at, row.publisher, now),
        qos: Number(row.qos) as QoS,
        retain: row.retain === 1,
      };
      if (row.subscription_ids !== null) {
        delivery.subscriptionIdentifiers = JSON.parse(String(row.subscription_ids)) as number[];
      }
      if (row.shared !== null && row.shared !== undefined) delivery.shared = String(row.shared);
      if (row.packet_id !== null) {
        delivery.packetId = Number(row.packet_id);
        delivery.released = row.released === 1;
        session.inflight.push(delivery);
      } else {
        session.queue.push(delivery);
      }
    }
    const retained = db.all("SELECT * FROM retained").map((row) =>
      decodeMessage(row.message as Uint8Array, row.expires_at, row.publisher, now)
    );
    return { sessions: [...sessions.values()], retained };
  }

  write(changes: readonly BrokerChange[], replace = false): void {
    if (changes.length === 0 && !replace) return;
    const db = this.#db;
    const now = this.#clock();
    const at = (relative: number | undefined) => relative === undefined ? null : now + relative;
    db.exec("BEGIN");
    try {
      if (replace) db.exec("DELETE FROM sessions; DELETE FROM deliveries; DELETE FROM retained");
      for (const change of changes) {
        switch (change.type) {
          case "session": {
            const s = change.session;
            const connected = s.connected === true;
            const time = (relative: number | undefined) => connected ? relative ?? null : at(relative);
            db.run(
              "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
              s.clientId,
              s.expiryInterval,
              connected ? 1 : 0,
              time(s.expiresInMs),
              s.will === undefined ? null : encodeWill(s.will),
              s.will === undefined ? null : time(s.willInMs),
              JSON.stringify(s.subscriptions),
              JSON.stringify(s.inboundQoS2),
              s.username ?? null,
            );
            break;
          }
          case "sessionEnded":
            db.run("DELETE FROM sessions WHERE client_id = ?", change.clientId);
            db.run("DELETE FROM deliveries WHERE client_id = ?", change.clientId);
            break;
          case "delivery": {
            const d = change.delivery;
            if (d === undefined) {
              db.run("DELETE FROM deliveries WHERE key = ?", change.key);
              break;
            }
            db.run(
              "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              change.key,
              change.clientId,
              d.packetId ?? null,
              d.released ? 1 : 0,
              d.qos,
              d.retain ? 1 : 0,
              d.subscriptionIdentifiers === undefined ? null : JSON.stringify(d.subscriptionIdentifiers),
              encodeMessage(d.message),
              at(d.message.expiresInMs),
              d.message.publisher ?? null,
              d.shared ?? null,
            );
            break;
          }
          case "retained":
            if (change.message === undefined) {
              db.run("DELETE FROM retained WHERE topic = ?", change.topic);
            } else {
              db.run(
                "INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?)",
                change.topic,
                encodeMessage(change.message),
                at(change.message.expiresInMs),
                change.message.publisher ?? null,
              );
            }
            break;
        }
      }
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }

  close(): void {
    this.#db.close();
  }
}

/** A message as the MQTT 5 PUBLISH that carries it: topic, payload, QoS, RETAIN and every property. */
function encodeMessage(message: MessageSnapshot): Uint8Array {
  const packet: PublishPacket = {
    type: "publish",
    topic: message.topic,
    payload: message.payload,
    qos: message.qos,
    retain: message.retain,
    dup: false,
  };
  if (message.qos > 0) packet.packetId = 1;
  if (message.properties !== undefined) packet.properties = message.properties;
  return encode(packet, 5);
}

function decodeMessage(
  bytes: Uint8Array,
  expiresAt: SqliteValue,
  publisher: SqliteValue,
  now: number,
): MessageSnapshot {
  const packet = decodeOne(bytes);
  if (packet.type !== "publish") throw new Error(`A stored message is a ${packet.type} packet`);
  const message: MessageSnapshot = {
    topic: packet.topic,
    payload: packet.payload,
    qos: packet.qos,
    retain: packet.retain,
  };
  if (packet.properties !== undefined) message.properties = packet.properties;
  if (expiresAt !== null) message.expiresInMs = Number(expiresAt) - now;
  if (publisher !== null) message.publisher = String(publisher);
  return message;
}

/** A will as the MQTT 5 CONNECT that carries it, with every will property. */
function encodeWill(will: Will): Uint8Array {
  return encode(
    { type: "connect", protocolVersion: 5, clientId: "", cleanStart: true, keepAlive: 0, will },
    5,
  );
}

function decodeWill(bytes: Uint8Array): Will {
  const packet = decodeOne(bytes) as ConnectPacket;
  if (packet.will === undefined) throw new Error("A stored will has no will");
  return packet.will;
}

function decodeOne(bytes: Uint8Array) {
  // A CONNECT tells the decoder its version; a PUBLISH needs it told.
  const decoder = new PacketDecoder(bytes[0] >> 4 === 1 ? {} : { version: 5 });
  decoder.push(bytes);
  const packet = decoder.next();
  if (packet === undefined) throw new Error("A stored packet is truncated");
  return packet;
}
