import { test } from "node:test";
import assert from "node:assert/strict";
import { encode } from "../../src/codec/encode.ts";
import type { ConnAckProperties, ConnectPacket, Will } from "../../src/codec/packet.ts";
import { SessionMachine } from "../../src/machine/session_machine.ts";
import { LocalSessionRegistry, NEVER, type SessionRecord } from "../../src/machine/session_registry.ts";

function connectPacket(fields: Partial<ConnectPacket> = {}): ConnectPacket {
  return { type: "connect", protocolVersion: 5, clientId: "a", cleanStart: true, keepAlive: 0, ...fields };
}

/** A connection whose CONNECT was read (no socket): what the registry gets from a broker machine. */
function connection(fields: Partial<ConnectPacket> = {}): SessionMachine {
  const packet = connectPacket(fields);
  const session = new SessionMachine(0, { connectTimeoutMs: 0 });
  session.handleBytes(0, encode(packet, packet.protocolVersion));
  assert.equal(session.pollEvent()?.type, "connect");
  return session;
}

function will(delaySeconds?: number): Will {
  const properties = delaySeconds === undefined ? undefined : { willDelayInterval: delaySeconds };
  return { topic: "gone", payload: new Uint8Array([1]), qos: 0, retain: false, properties };
}

/** The wills and expiries `expire` hands over at `now`, in order. */
function expire(registry: LocalSessionRegistry, now: number): string[] {
  const due: string[] = [];
  registry.expire(now, {
    will: (record: SessionRecord, w: Will) => due.push(`will ${record.clientId} ${w.topic}`),
    expired: (record: SessionRecord) => {
      due.push(`expired ${record.clientId}`);
      registry.remove(record);
    },
  });
  return due;
}

test("LocalSessionRegistry.create() registers an empty session; remove() forgets only the registered one", () => {
  const registry = new LocalSessionRegistry();
  const first = registry.create("a", 0);
  assert.equal(registry.size, 1);
  assert.equal(registry.get("a"), first);
  assert.equal(first.subscriptions, undefined);
  assert.equal(first.state.queue.length, 0);
  const second = registry.create("a", 10); // replaces it
  registry.remove(first);
  assert.equal(registry.get("a"), second);
  registry.remove(second);
  assert.equal(registry.size, 0);
  assert.deepEqual([...registry.values()], []);
});

test("LocalSessionRegistry.assignClientId() gives an identifier no session has [MQTT-3.1.3-6]", () => {
  const registry = new LocalSessionRegistry();
  registry.create("auto-1", 0);
  assert.equal(registry.assignClientId(undefined), "auto-2");
  assert.equal(registry.assignClientId("mine"), "mine");
  registry.create("mine", 0);
  assert.equal(registry.assignClientId("mine"), "auto-3");
});

test("LocalSessionRegistry.grantExpiry() caps MQTT 5 intervals and tells the CONNACK; 3.1.1 gets 0 or the persistent one", () => {
  const registry = new LocalSessionRegistry({
    maximumSessionExpiryInterval: 60,
    persistentSessionExpiryInterval: 30,
  });
  const properties: ConnAckProperties = {};
  assert.equal(
    registry.grantExpiry(connectPacket({ properties: { sessionExpiryInterval: 10 } }), properties),
    10,
  );
  assert.deepEqual(properties, {});
  assert.equal(
    registry.grantExpiry(connectPacket({ properties: { sessionExpiryInterval: 600 } }), properties),
    60,
  );
  assert.deepEqual(properties, { sessionExpiryInterval: 60 });
  assert.equal(registry.grantExpiry(connectPacket(), {}), 0);
  assert.equal(registry.grantExpiry(connectPacket({ protocolVersion: 4, cleanStart: true }), {}), 0);
  assert.equal(registry.grantExpiry(connectPacket({ protocolVersion: 4, cleanStart: false }), {}), 30);
  assert.equal(
    new LocalSessionRegistry().grantExpiry(connectPacket({ protocolVersion: 4, cleanStart: false }), {}),
    NEVER,
  );
});

test("LocalSessionRegistry.connect() binds a connection to its session; disconnect() unbinds it", () => {
  const registry = new LocalSessionRegistry();
  const record = registry.create("a", 0);
  const session = connection();
  assert.equal(registry.attached(session), undefined);
  registry.connect(record, session, "user", 0);
  assert.equal(registry.attached(session), record);
  assert.equal(record.connection, session);
  assert.equal(record.username, "user");
  registry.disconnect(record);
  assert.equal(record.connection, undefined);
  assert.equal(registry.attached(session), undefined);
  // A connection of a session that is gone from the registry is not attached either.
  registry.connect(record, session, undefined, 0);
  registry.remove(record);
  assert.equal(registry.attached(session), undefined);
});

test("LocalSessionRegistry.release() schedules the expiry of a session whose connection ended [MQTT-4.1.0-2]", () => {
  const registry = new LocalSessionRegistry();
  const record = registry.create("a", 10);
  const session = connection({ properties: { sessionExpiryInterval: 10 } });
  registry.connect(record, session, undefined, 10);
  assert.equal(registry.release(1000, record, session), undefined);
  assert.equal(record.connection, undefined);
  assert.equal(record.expiresAt, 11_000);
  assert.equal(registry.pollTimeout(), 11_000);
  assert.deepEqual(expire(registry, 10_999), []);
  assert.deepEqual(expire(registry, 11_000), ["expired a"]);
  assert.equal(registry.pollTimeout(), undefined);
});

test("LocalSessionRegistry.release() returns a will to publish now, or delays it [MQTT-3.1.2-8]", () => {
  const registry = new LocalSessionRegistry();
  const now = registry.create("now", 0);
  const nowSession = connection({ clientId: "now", will: will() });
  registry.connect(now, nowSession, undefined, 0);
  assert.equal(registry.release(0, now, nowSession)?.topic, "gone");
  assert.equal(registry.pollTimeout(), undefined); // expiry 0: the session ends with its connection

  const later = registry.create("later", NEVER);
  const laterSession = connection({
    clientId: "later",
    will: will(5),
    properties: { sessionExpiryInterval: NEVER },
  });
  registry.connect(later, laterSession, undefined, NEVER);
  assert.equal(registry.release(0, later, laterSession), undefined);
  assert.equal(later.expiresAt, undefined); // never expires
  assert.equal(registry.pollTimeout(), 5000);
  assert.deepEqual(expire(registry, 5000), ["will later gone"]);
  assert.equal(later.will, undefined);
  assert.equal(registry.pollTimeout(), undefined);
});

test("LocalSessionRegistry: a will's delay is cut to the session's expiry, and the will goes first", () => {
  const registry = new LocalSessionRegistry();
  const record = registry.create("a", 2);
  const session = connection({ will: will(60), properties: { sessionExpiryInterval: 2 } });
  registry.connect(record, session, undefined, 2);
  registry.release(0, record, session);
  assert.equal(record.willAt, 2000);
  assert.deepEqual(expire(registry, 2000), ["will a gone", "expired a"]);
});

test("LocalSessionRegistry.connect() cancels a will waiting for its delay and the expiry [MQTT-3.1.3-9]", () => {
  const registry = new LocalSessionRegistry();
  const record = registry.create("a", 60);
  const first = connection({ will: will(30), properties: { sessionExpiryInterval: 60 } });
  registry.connect(record, first, undefined, 60);
  registry.release(0, record, first);
  assert.equal(registry.pollTimeout(), 30_000);
  registry.connect(record, connection(), undefined, 60);
  assert.equal(record.will, undefined);
  assert.equal(record.expiresAt, undefined);
  assert.equal(registry.pollTimeout(), undefined);
  assert.deepEqual(expire(registry, 100_000), []);
});

test("LocalSessionRegistry.pollTimeout() is the earliest deadline of all sessions, kept as they change", () => {
  const registry = new LocalSessionRegistry();
  const records = [3, 1, 2].map((seconds) => {
    const record = registry.create(`s${seconds}`, seconds);
    const session = connection({ clientId: `s${seconds}`, properties: { sessionExpiryInterval: seconds } });
    registry.connect(record, session, undefined, seconds);
    registry.release(0, record, session);
    return record;
  });
  assert.equal(registry.pollTimeout(), 1000);
  registry.unschedule(records[1]);
  assert.equal(registry.pollTimeout(), 2000);
  assert.deepEqual(expire(registry, 2000), ["expired s2"]);
  assert.equal(registry.pollTimeout(), 3000);
  assert.equal(registry.takeWill(records[0]), undefined);
});

test("LocalSessionRegistry.expiryOf() is a connection's interval, capped as granted", () => {
  const registry = new LocalSessionRegistry({ maximumSessionExpiryInterval: 60 });
  assert.equal(registry.expiryOf(connection({ properties: { sessionExpiryInterval: 30 } })), 30);
  assert.equal(registry.expiryOf(connection({ properties: { sessionExpiryInterval: 300 } })), 60);
});
