/**
 * A seeded random driver for the BrokerMachine's journal and a model store that applies its changes, shared by
 * the journal's tests and the SQLite store's.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ProtocolVersion, QoS, Will } from "../../src/codec/packet.ts";
import {
  type BrokerChange,
  BrokerMachine,
  type BrokerSnapshot,
  type DeliverySnapshot,
  type MessageSnapshot,
  type SessionMeta,
  type SessionSnapshot,
} from "../../src/machine/broker_machine.ts";
import { bytes, Harness, type TestClient } from "./_broker_helpers.ts";
import { seededRandom } from "../_random.ts";

/** A store that applies changes as a real one would: times made absolute when written. */
export class ModelStore {
  readonly sessions = new Map<string, SessionMeta>();
  readonly deliveries = new Map<number, { clientId: string; delivery: DeliverySnapshot }>();
  readonly retained = new Map<string, MessageSnapshot>();
  writes = 0;

  apply(now: number, changes: BrokerChange[]): void {
    for (const change of changes) {
      this.writes++;
      switch (change.type) {
        case "session": {
          const meta = structuredClone(change.session);
          if (!meta.connected) {
            if (meta.expiresInMs !== undefined) meta.expiresInMs += now;
            if (meta.willInMs !== undefined) meta.willInMs += now;
          }
          this.sessions.set(meta.clientId, meta);
          break;
        }
        case "sessionEnded":
          this.sessions.delete(change.clientId);
          for (const [key, d] of this.deliveries) {
            if (d.clientId === change.clientId) this.deliveries.delete(key);
          }
          break;
        case "delivery":
          if (change.delivery === undefined) this.deliveries.delete(change.key);
          else {
            const delivery = structuredClone(change.delivery);
            if (delivery.message.expiresInMs !== undefined) delivery.message.expiresInMs += now;
            this.deliveries.set(change.key, { clientId: change.clientId, delivery });
          }
          break;
        case "retained":
          if (change.message === undefined) this.retained.delete(change.topic);
          else {
            const message = structuredClone(change.message);
            if (message.expiresInMs !== undefined) message.expiresInMs += now;
            this.retained.set(change.topic, message);
          }
          break;
      }
    }
  }

  /** What the store holds, as a snapshot relative to `now`, in a canonical order. */
  snapshot(now: number): BrokerSnapshot {
    const relative = <T extends { expiresInMs?: number }>(m: T): T =>
      m.expiresInMs === undefined ? m : { ...m, expiresInMs: m.expiresInMs - now };
    const sessions: SessionSnapshot[] = [];
    for (const meta of this.sessions.values()) {
      const s: SessionSnapshot = { ...structuredClone(meta), inflight: [], queue: [] };
      if (!meta.connected) {
        if (s.expiresInMs !== undefined) s.expiresInMs -= now;
        if (s.willInMs !== undefined) s.willInMs -= now;
      }
      const keys = [...this.deliveries.keys()].sort((a, b) => a - b);
      for (const key of keys) {
        const entry = this.deliveries.get(key)!;
        if (entry.clientId !== meta.clientId) continue;
        const d = { ...entry.delivery, message: relative(entry.delivery.message) };
        (d.packetId === undefined ? s.queue : s.inflight).push(d);
      }
      sessions.push(s);
    }
    return canonical({ sessions, retained: [...this.retained.values()].map(relative) });
  }
}

/** Sorted, and what a store keeps of each session: no deliveries for a session that ends with its connection. */
export function canonical(snapshot: BrokerSnapshot): BrokerSnapshot {
  const sessions = snapshot.sessions
    .filter((s) => s.expiryInterval > 0 || s.will !== undefined)
    .map((s) => s.expiryInterval > 0 ? s : { ...s, inflight: [], queue: [] })
    .sort((a, b) => a.clientId < b.clientId ? -1 : 1);
  const retained = [...snapshot.retained].sort((a, b) => a.topic < b.topic ? -1 : 1);
  // Plain data on both sides: payload views of the machine become plain copies.
  return structuredClone({ sessions, retained });
}

/** Deliveries that are still in a store after the dependent rows (a session's) are gone would leak. */
function assertNoOrphans(store: ModelStore): void {
  for (const [key, d] of store.deliveries) {
    assert.ok(store.sessions.has(d.clientId), `delivery ${key} of ${d.clientId} outlives its session`);
  }
}

const FILTERS = ["t/#", "t/+", "t/a", "$share/g/t/#", "u"];
const TOPICS = ["t/a", "t/b", "u"];
const NEVER = 0xffff_ffff;

/** Where a run writes its changes and reads them back, for comparison with the machine. */
export interface StoreUnderTest {
  apply(now: number, changes: BrokerChange[]): void;
  snapshot(now: number): BrokerSnapshot;
}

/**
 * A seeded random run against a journaling BrokerMachine; after every step the changes go to `store` (and to a
 * model store) and what `store` holds must equal what the machine says must be kept.
 */
export function runJournal(
  seed: number,
  steps: number,
  sink?: StoreUnderTest,
): { writes: number; restarts: number } {
  const rnd = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)];
  const h = new Harness({ journal: true, maxQueuedMessages: 2 });
  const store = new ModelStore();
  const live = new Map<string, TestClient>();
  let packetId = 1;
  let restarts = 0;

  const check = (what: string): void => {
    const changes = h.broker.pollChanges(h.now);
    sink?.apply(h.now, changes);
    store.apply(h.now, changes);
    const expected = canonical(h.broker.exportState(h.now));
    assert.deepStrictEqual(store.snapshot(h.now), expected, `${what} (seed ${seed})`);
    if (sink !== undefined) {
      assert.deepStrictEqual(sink.snapshot(h.now), expected, `store: ${what} (seed ${seed})`);
    }
    assertNoOrphans(store);
  };

  for (let step = 0; step < steps; step++) {
    const id = `c${Math.floor(rnd() * 4)}`;
    let client = live.get(id);
    if (client !== undefined && client.closed !== undefined) {
      live.delete(id);
      client = undefined;
    }
    const action = rnd();
    let what: string;
    if (client === undefined || action < 0.08) {
      const version = pick<ProtocolVersion>([3, 4, 5, 5]);
      const cleanStart = rnd() < 0.4;
      const will: Will | undefined = rnd() < 0.4
        ? {
          topic: "t/will",
          payload: bytes(`will of ${id}`),
          qos: pick<QoS>([0, 1, 2]),
          retain: rnd() < 0.3,
          properties: version === 5 && rnd() < 0.5 ? { willDelayInterval: pick([1, 5, 30]) } : undefined,
        }
        : undefined;
      const expiry = pick([0, 2, 60, NEVER]);
      const connecting = h.connect(id, version, {
        cleanStart,
        will,
        properties: version === 5 ? { sessionExpiryInterval: expiry } : undefined,
      });
      connecting.take();
      live.set(id, connecting);
      what = `connect ${id} v${version} clean ${cleanStart} expiry ${expiry} will ${will !== undefined}`;
    } else if (action < 0.2) {
      const filter = pick(FILTERS);
      client.subscribe(filter, pick<QoS>([0, 1, 2]), client.version === 5 && rnd() < 0.5 ? 7 : undefined);
      what = `subscribe ${id} ${filter}`;
    } else if (action < 0.25) {
      const filter = pick(FILTERS);
      client.send({ type: "unsubscribe", packetId: 0xfff1, topicFilters: [filter] });
      client.take();
      what = `unsubscribe ${id} ${filter}`;
    } else if (action < 0.55) {
      const qos = pick<QoS>([0, 1, 2]);
      const retain = rnd() < 0.3;
      const topic = pick(TOPICS);
      const payload = retain && rnd() < 0.2 ? new Uint8Array(0) : bytes(`${id}:${step}`);
      const id2 = packetId = packetId % 60_000 + 1;
      client.publish(topic, payload, {
        qos,
        retain,
        packetId: id2,
        properties: client.version === 5 && rnd() < 0.3
          ? { messageExpiryInterval: pick([1, 10]) }
          : undefined,
      });
      if (qos === 2) {
        // Sometimes the PUBREL comes later (or never): the inbound QoS 2 identifier stays in the session.
        if (rnd() < 0.7) client.send({ type: "pubrel", packetId: id2, reasonCode: 0 });
      }
      for (const p of client.take()) {
        if (p.type === "publish") client.inbox.push(p);
      }
      what = `publish ${id} ${topic} qos ${qos} retain ${retain}`;
    } else if (action < 0.75) {
      if (rnd() < 0.5) client.ackAll();
      else {
        // Acknowledge a part only: PUBREC without PUBCOMP leaves a released delivery in flight.
        for (const p of client.takePublishes()) {
          if (p.qos === 1 && rnd() < 0.5) {
            client.send({ type: "puback", packetId: p.packetId!, reasonCode: 0 });
          }
          if (p.qos === 2 && rnd() < 0.5) {
            client.send({ type: "pubrec", packetId: p.packetId!, reasonCode: 0 });
          }
        }
        client.take();
      }
      what = `ack ${id}`;
    } else if (action < 0.82) {
      client.drop();
      what = `drop ${id}`;
    } else if (action < 0.88) {
      client.send({ type: "disconnect", reasonCode: rnd() < 0.5 ? 0 : 4 });
      what = `disconnect ${id}`;
    } else {
      h.advance(h.now + Math.floor(rnd() * 8000));
      what = `time ${h.now}`;
    }
    check(what);
    if (rnd() < 0.03) {
      // A restart: the stored state restored into a new machine journals exactly that state.
      const restored = new BrokerMachine({ journal: true, maxQueuedMessages: 2 });
      const saved = store.snapshot(h.now);
      restored.restoreState(h.now, structuredClone(saved));
      const fresh = new ModelStore();
      fresh.apply(h.now, restored.pollChanges(h.now));
      // Restored sessions are offline: their times count from now on.
      for (const session of saved.sessions) delete session.connected;
      assert.deepStrictEqual(fresh.snapshot(h.now), saved, `restart after ${what} (seed ${seed})`);
      restarts++;
    }
  }
  return { writes: store.writes, restarts };
}
