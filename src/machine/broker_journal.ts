/**
 * The broker machine's persistence: the journal of changes a store writes ({@linkcode BrokerJournal.poll}),
 * and the snapshot of the whole state (export, and the pieces of restore). It records and converts; it never
 * routes, ends sessions or changes what it describes.
 *
 * @module
 */

import type { BrokerMessage, Delivery, InflightDelivery } from "./_delivery.ts";
import type {
  BrokerChange,
  BrokerSnapshot,
  DeliverySnapshot,
  MessageSnapshot,
  SessionMeta,
  SessionSnapshot,
} from "./broker_types.ts";
import type { RetainedStore } from "./retained_store.ts";
import type { Router } from "./router.ts";
import { NEVER, type SessionRecord, type SessionRegistry, willDelay } from "./session_registry.ts";
import type { SessionJournal, SessionState } from "./session_state.ts";

import type { Millis } from "./client_machine.ts";

/** One entry of the journal before {@linkcode BrokerJournal.poll} turns it into a change. */
type JournalEntry =
  | { kind: "put" | "delete"; record: SessionRecord; delivery: Delivery; key: number }
  | { kind: "ended"; clientId: string }
  | { kind: "retained"; topic: string };

/**
 * The changes to what a store keeps, in order: deliveries put and deleted (told by each journaled
 * {@linkcode SessionState}), sessions changed or ended, retained topics set or cleared.
 */
export class BrokerJournal {
  readonly #entries: JournalEntry[] = [];
  /** The sessions whose meta changed. */
  readonly #changedSessions = new Set<SessionRecord>();
  readonly #keys = new WeakMap<Delivery, number>();
  #nextKey = 1;
  readonly #stateJournal: SessionJournal;
  /** Records by their session state, for the journal's callbacks: only states with a journal are in it. */
  readonly #byState = new WeakMap<SessionState, SessionRecord>();

  /** Creates an empty journal. */
  constructor() {
    const records = this.#byState;
    this.#stateJournal = {
      put: (state, delivery) => this.delivery("put", records.get(state), delivery),
      delete: (state, delivery) => this.delivery("delete", records.get(state), delivery),
      inboundChanged: (state) => {
        const record = records.get(state);
        if (record !== undefined) this.changed(record);
      },
    };
  }

  /** The session's meta changed. */
  changed(record: SessionRecord): void {
    this.#changedSessions.add(record);
  }

  /** A delivery of a session was put or deleted. */
  delivery(kind: "put" | "delete", record: SessionRecord | undefined, delivery: Delivery): void {
    if (record === undefined) return;
    let key = this.#keys.get(delivery);
    if (kind === "put") {
      if (key === undefined) this.#keys.set(delivery, key = this.#nextKey++);
    } else {
      if (key === undefined) return;
      this.#keys.delete(delivery);
    }
    this.#entries.push({ kind, record, delivery, key });
  }

  /** The retained message of a topic was set or cleared. */
  retained(topic: string): void {
    this.#entries.push({ kind: "retained", topic });
  }

  /** A session ended: the store forgets it, if it holds it. */
  ended(record: SessionRecord): void {
    if (record.stored) {
      record.stored = false;
      this.#entries.push({ kind: "ended", clientId: record.clientId });
    }
    this.#changedSessions.delete(record);
  }

  /**
   * The deliveries of a session with an expiry interval are journaled; others end with their connection and
   * are not.
   */
  track(record: SessionRecord): void {
    const state = record.state;
    const wanted = record.expiryInterval > 0;
    if (wanted && state.journal === undefined) {
      // The journal's callbacks find the record here; only a journaled state needs the entry.
      this.#byState.set(state, record);
      state.journal = this.#stateJournal;
      for (const entry of state.inflight.values()) this.delivery("put", record, entry);
      for (const delivery of state.queue) this.delivery("put", record, delivery);
    } else if (!wanted && state.journal !== undefined) {
      for (const entry of state.inflight.values()) this.delivery("delete", record, entry);
      for (const delivery of state.queue) this.delivery("delete", record, delivery);
      state.journal = undefined;
    }
    this.changed(record);
  }

  /** What the journal describes now, as `machine.cluster.checkpoint()` documents it. */
  checkpoint(now: Millis, sessions: SessionRegistry): BrokerChange[] {
    const changes: BrokerChange[] = [];
    for (const record of sessions.values()) {
      if (!record.stored) continue;
      const clientId = record.clientId;
      changes.push({ type: "session", session: sessionMeta(now, record, sessions) });
      const state = record.state;
      if (state.journal === undefined) continue;
      for (const delivery of [...state.inflight.values(), ...state.queue]) {
        const key = this.#keys.get(delivery);
        if (key === undefined) continue;
        changes.push({ type: "delivery", clientId, key, delivery: deliverySnapshot(now, delivery, false) });
      }
    }
    return changes;
  }

  /** The changes since the last poll, as {@linkcode BrokerMachine.pollChanges} documents them. */
  poll(now: Millis, sessions: SessionRegistry, retainedStore: RetainedStore): BrokerChange[] {
    const journal = this.#entries;
    const changes: BrokerChange[] = [];
    if (journal.length === 0 && this.#changedSessions.size === 0) return changes;
    const skipped = new Set<number>();
    const retained = new Set<string>();
    for (const entry of journal) {
      switch (entry.kind) {
        case "put": {
          const key = this.#keys.get(entry.delivery);
          if (key === undefined) continue;
          if (key !== entry.key) {
            // Gone again before this poll: neither written nor deleted.
            skipped.add(entry.key);
            continue;
          }
          changes.push({
            type: "delivery",
            clientId: entry.record.clientId,
            key,
            delivery: deliverySnapshot(now, entry.delivery, false),
          });
          break;
        }
        case "delete":
          if (!skipped.has(entry.key)) {
            changes.push({
              type: "delivery",
              clientId: entry.record.clientId,
              key: entry.key,
              delivery: undefined,
            });
          }
          break;
        case "ended":
          changes.push({ type: "sessionEnded", clientId: entry.clientId });
          break;
        case "retained": {
          if (retained.has(entry.topic)) continue;
          retained.add(entry.topic);
          const message = retainedStore.get(entry.topic);
          changes.push({
            type: "retained",
            topic: entry.topic,
            message: message === undefined ? undefined : messageSnapshot(now, message, false),
          });
          break;
        }
      }
    }
    journal.length = 0;
    for (const record of this.#changedSessions) {
      if (sessions.get(record.clientId) !== record) continue;
      if (record.expiryInterval > 0 || record.will !== undefined || record.connection?.will !== undefined) {
        record.stored = true;
        changes.push({ type: "session", session: sessionMeta(now, record, sessions) });
      } else if (record.stored) {
        record.stored = false;
        changes.push({ type: "sessionEnded", clientId: record.clientId });
      }
    }
    this.#changedSessions.clear();
    return changes;
  }
}

/** The state as plain data, as {@linkcode BrokerMachine.exportState} documents it. */
export function exportState(now: Millis, sessions: SessionRegistry, retained: RetainedStore): BrokerSnapshot {
  const snapshots: SessionSnapshot[] = [];
  for (const record of sessions.values()) snapshots.push(sessionSnapshot(now, record, sessions));
  return { sessions: snapshots, retained: [...retained.values()].map((m) => messageSnapshot(now, m, true)) };
}

/** One session as plain data, its payloads copied, as {@linkcode BrokerMachine.exportState} documents it. */
export function sessionSnapshot(
  now: Millis,
  record: SessionRecord,
  sessions: SessionRegistry,
): SessionSnapshot {
  const state = record.state;
  return {
    ...sessionMeta(now, record, sessions),
    inflight: [...state.inflight.values()].map((d) => deliverySnapshot(now, d, true)),
    queue: state.queue.map((d) => deliverySnapshot(now, d, true)),
  };
}

/**
 * Makes a session from its snapshot (offline, its deliveries, deadlines and subscriptions), registered and
 * routed to; a session of that client identifier must be gone first.
 */
export function restoreSession(
  now: Millis,
  snapshot: SessionSnapshot,
  sessions: SessionRegistry,
  router: Router<SessionRecord>,
): SessionRecord {
  const record = sessions.create(snapshot.clientId, snapshot.expiryInterval);
  restoreDeliveries(now, record.state, snapshot);
  record.username = snapshot.username;
  record.expiresAt = snapshot.expiresInMs === undefined ? undefined : now + snapshot.expiresInMs;
  record.will = snapshot.will;
  record.willAt = snapshot.willInMs === undefined ? undefined : now + snapshot.willInMs;
  for (const subscription of snapshot.subscriptions) {
    (record.subscriptions ??= new Map()).set(subscription.topicFilter, { ...subscription });
    router.add(record, subscription.topicFilter, subscription);
  }
  if (record.expiresAt !== undefined || record.willAt !== undefined) sessions.schedule(record);
  return record;
}

/** Fills an empty session state with the deliveries and QoS 2 identifiers of a snapshot. */
export function restoreDeliveries(now: Millis, state: SessionState, snapshot: SessionSnapshot): void {
  for (const d of snapshot.inflight) {
    state.restoreInflight({
      ...deliveryFromSnapshot(now, d),
      packetId: d.packetId as number,
      released: d.released === true,
    });
  }
  for (const d of snapshot.queue) state.enqueue(now, deliveryFromSnapshot(now, d));
  for (const id of snapshot.inboundQoS2) state.addInboundQoS2(id);
}

/** What a store keeps of a session, besides its deliveries. */
function sessionMeta(now: Millis, record: SessionRecord, sessions: SessionRegistry): SessionMeta {
  const meta: SessionMeta = {
    clientId: record.clientId,
    expiryInterval: record.expiryInterval,
    subscriptions: [...record.subscriptions?.values() ?? []].map((s) => ({ ...s })),
    // A session that ends with its connection keeps no QoS 2 state (nor deliveries) beyond it. Nor is an
    // identifier kept before its PUBLISH is acknowledged: the message may not be routed (nor written) yet.
    inboundQoS2: record.expiryInterval > 0
      ? [...record.state.inboundQoS2].filter((id) => record.connection?.awaitsRouting(id) !== true)
      : [],
  };
  if (record.username !== undefined) meta.username = record.username;
  const connection = record.connection;
  if (connection !== undefined) {
    // Restored, the connection is gone: the session expires and the will waits from then on, as if it
    // had just closed (the state is for a broker that stopped without a word to its clients).
    const expiry = connection.version === 5 ? sessions.expiryOf(connection) : record.expiryInterval;
    meta.expiryInterval = expiry;
    meta.connected = true;
    if (expiry !== NEVER) meta.expiresInMs = expiry * 1000;
    const will = connection.will;
    if (will !== undefined) {
      meta.will = will;
      meta.willInMs = Math.min(willDelay(will), expiry) * 1000;
    }
  } else {
    if (record.expiresAt !== undefined) meta.expiresInMs = record.expiresAt - now;
    if (record.will !== undefined && record.willAt !== undefined) {
      meta.will = record.will;
      meta.willInMs = record.willAt - now;
    }
  }
  return meta;
}

/** A message as plain data; `copy` copies the payload, else it stays a view. */
export function messageSnapshot(now: Millis, message: BrokerMessage, copy: boolean): MessageSnapshot {
  const snapshot: MessageSnapshot = {
    topic: message.topic,
    payload: copy ? message.payload.slice() : message.payload,
    qos: message.qos,
    retain: message.retain,
  };
  if (message.properties !== undefined) snapshot.properties = message.properties;
  if (message.expiresAt !== undefined) snapshot.expiresInMs = message.expiresAt - now;
  if (message.publisher !== undefined) snapshot.publisher = message.publisher;
  return snapshot;
}

/** A message from its snapshot, with times from `now` and a payload of its own. */
export function messageFromSnapshot(now: Millis, snapshot: MessageSnapshot): BrokerMessage {
  return {
    topic: snapshot.topic,
    payload: snapshot.payload.slice(),
    qos: snapshot.qos,
    retain: snapshot.retain,
    properties: snapshot.properties,
    expiresAt: snapshot.expiresInMs === undefined ? undefined : now + snapshot.expiresInMs,
    publisher: snapshot.publisher,
    owned: true,
    encodings: undefined,
  };
}

/** A delivery as plain data, with its packet identifier and release when in flight. */
function deliverySnapshot(
  now: Millis,
  delivery: Delivery | InflightDelivery,
  copy: boolean,
): DeliverySnapshot {
  const snapshot: DeliverySnapshot = {
    message: messageSnapshot(now, delivery.message, copy),
    qos: delivery.qos,
    retain: delivery.retain,
  };
  if (delivery.subscriptionIdentifiers !== undefined) {
    snapshot.subscriptionIdentifiers = [...delivery.subscriptionIdentifiers];
  }
  if (delivery.shared !== undefined) snapshot.shared = delivery.shared;
  if ("packetId" in delivery) {
    snapshot.packetId = delivery.packetId;
    snapshot.released = delivery.released;
  }
  return snapshot;
}

function deliveryFromSnapshot(now: Millis, snapshot: DeliverySnapshot): Delivery {
  return {
    message: messageFromSnapshot(now, snapshot.message),
    qos: snapshot.qos,
    retain: snapshot.retain,
    subscriptionIdentifiers: snapshot.subscriptionIdentifiers,
    shared: snapshot.shared,
  };
}
