/**
 * The part of a broker-side MQTT session that outlives a connection: messages in flight to the client,
 * messages queued for it, and the QoS 2 packet identifiers it is still releasing (MQTT 5 §4.1).
 *
 * @module
 */

import type { PublishPacket, QoS } from "../codec/packet.ts";
import {
  type BrokerMessage,
  type Delivery,
  type InflightDelivery,
  keepMessage,
  messageFromPublish,
} from "./_delivery.ts";

export type { BrokerMessage, Delivery, EncodedPublish, InflightDelivery } from "./_delivery.ts";

import type { Millis } from "./client_machine.ts";

/**
 * Receives every change to a {@linkcode SessionState}'s deliveries and QoS 2 identifiers as it happens, so that
 * a store can write them (a journal, not a snapshot). A delivery is known by its object: `put` adds or
 * replaces it (a QoS 2 delivery that was released is put again), `delete` removes it.
 */
export interface SessionJournal {
  /** A delivery was queued, started, or changed. */
  put(state: SessionState, delivery: Delivery | InflightDelivery): void;
  /** A delivery completed, expired, or was dropped. */
  delete(state: SessionState, delivery: Delivery): void;
  /** The set of inbound QoS 2 identifiers changed. */
  inboundChanged(state: SessionState): void;
}

/** Options of {@linkcode SessionState}. */
export interface SessionStateOptions {
  /** The most messages queued (not in flight) for the client; beyond it new messages are dropped. @default 1000 */
  maxQueuedMessages?: number;
  /** The most payload bytes queued for the client; beyond it new messages are dropped. @default 16777216 */
  maxQueuedBytes?: number;
  /** Counters shared by a broker's sessions (its `BrokerMachine.stats`): bumped for each expired message. */
  stats?: ExpiryStats;
}

/** Counters of messages dropped because they expired, shared by sessions (see {@linkcode SessionStateOptions}). */
export interface ExpiryStats {
  /** Every message dropped. */
  dropped: number;
  /** Messages dropped because they expired. */
  droppedExpired: number;
}

/** What an empty session's getters return (read-only views; nothing adds to them). */
const NONE_IN_FLIGHT: ReadonlyMap<number, InflightDelivery> = new Map();
const NONE_QUEUED: readonly Delivery[] = Object.freeze([]);
const NO_IDENTIFIERS: ReadonlySet<number> = new Set();

/**
 * Delivery state of one session on the broker side: what a {@linkcode SessionMachine} sends from and what a
 * {@linkcode BrokerMachine} keeps between connections. Entries in flight are kept in the order they were
 * sent, so that they are resent in that order [MQTT-4.6.0-1].
 *
 * @example Queue a message for a client that is offline
 * ```ts
 * import { createMessage, SessionState } from "@x/mqtt/machine";
 * const state = new SessionState("sensor-1");
 * const message = createMessage(0, {
 *   type: "publish", topic: "a", payload: new Uint8Array([1]), qos: 1, retain: false, dup: false, packetId: 1,
 * });
 * console.log(state.enqueue(0, { message, qos: 1, retain: false, subscriptionIdentifiers: undefined })); // true
 * console.log(state.queue.length); // 1
 * ```
 */
export class SessionState {
  /** The client identifier. */
  readonly clientId: string;
  /** Messages sent with a packet identifier and not yet completed, by packet identifier, in sending order. */
  get inflight(): ReadonlyMap<number, InflightDelivery> {
    return this.#inflight ?? NONE_IN_FLIGHT;
  }
  /** Messages waiting for the client's receive quota or for the client to reconnect, oldest first. */
  get queue(): readonly Delivery[] {
    return this.#compacted() ?? NONE_QUEUED;
  }
  /** How many messages {@linkcode SessionState.queue} holds (without compacting it). */
  get queuedCount(): number {
    return this.#queue === undefined ? 0 : this.#queue.length - this.#head;
  }
  /** QoS 2 packet identifiers the client published, answered with PUBREC, awaiting PUBREL [MQTT-4.3.3-10]. */
  get inboundQoS2(): ReadonlySet<number> {
    return this.#inboundQoS2 ?? NO_IDENTIFIERS;
  }
  /** Where changes are reported, when the session's state is persisted. */
  journal: SessionJournal | undefined;
  /** The most messages {@linkcode SessionState.queue} holds. */
  readonly maxQueuedMessages: number;
  /** The most payload bytes {@linkcode SessionState.queue} holds. */
  readonly maxQueuedBytes: number;
  // Made when first needed: most sessions of an idle broker never hold anything.
  #inflight: Map<number, InflightDelivery> | undefined;
  #inboundQoS2: Set<number> | undefined;
  #queue: Delivery[] | undefined;
  /**
   * Where the queue starts in `#queue`: taken deliveries are dropped from the front in bulk, not one by one
   * (`shift()` moves the whole array once it is too large for V8 to trim it in place: a queue of 100,000 cost
   * a quarter of a busy broker's time).
   */
  #head = 0;
  #queuedBytes = 0;
  #nextPacketId = 1;
  #dropped = 0;
  readonly #stats: ExpiryStats | undefined;

  /**
   * Creates an empty session state.
   *
   * @param clientId The client identifier.
   * @param options Queue bounds.
   */
  constructor(clientId: string, options: SessionStateOptions = {}) {
    this.clientId = clientId;
    this.maxQueuedMessages = options.maxQueuedMessages ?? 1000;
    this.maxQueuedBytes = options.maxQueuedBytes ?? 16 * 1024 * 1024;
    this.#stats = options.stats;
  }

  /** Payload bytes in the queue. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** How many messages were dropped because the queue was full or they expired while queued. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Whether the queue holds more than its bounds: a {@linkcode BrokerMachine} then holds back the
   * acknowledgements of messages for this session until it has room again (see `onRoom`).
   */
  get overLimit(): boolean {
    return this.queuedCount > this.maxQueuedMessages || this.#queuedBytes > this.maxQueuedBytes;
  }

  /**
   * Whether the queue holds more than `messages` times its message bound or `bytes` times its byte bound: past
   * it, what no publisher can be slowed down for is dropped (see `BrokerDelivery.startRoute`).
   */
  over(messages: number, bytes: number): boolean {
    return this.queuedCount > messages * this.maxQueuedMessages ||
      this.#queuedBytes > bytes * this.maxQueuedBytes;
  }

  /**
   * Called once when the queue, over its bounds, gets back within them; set by whoever waits for that.
   */
  onRoom: ((now: Millis) => void) | undefined;

  /**
   * Appends a delivery to the queue, making its payload the message's own copy. A QoS 0 delivery that does
   * not fit within the bounds is dropped (after expired messages are); a QoS 1 or 2 delivery is always kept,
   * past the bounds if need be: it may have been acknowledged to its publisher already, and whoever queues
   * it watches {@linkcode SessionState.overLimit} to slow the publishers down.
   *
   * @param now The current time, to drop expired messages.
   * @param delivery The delivery.
   * @returns `false` when the delivery was dropped.
   */
  enqueue(now: Millis, delivery: Delivery): boolean {
    const size = delivery.message.payload.length;
    if (
      delivery.qos === 0 &&
      (this.queuedCount >= this.maxQueuedMessages || this.#queuedBytes + size > this.maxQueuedBytes)
    ) {
      this.dropExpired(now);
      if (this.queuedCount >= this.maxQueuedMessages || this.#queuedBytes + size > this.maxQueuedBytes) {
        this.#dropped++;
        return false;
      }
    }
    keepMessage(delivery.message);
    (this.#queue ??= []).push(delivery);
    this.#queuedBytes += size;
    this.journal?.put(this, delivery);
    return true;
  }

  /** Counts a delivery dropped by its sender (a session that stayed over its bounds for too long). */
  countDropped(): void {
    this.#dropped++;
  }

  /** Counts a delivery dropped because it expired [MQTT-3.3.2-5], here and in the shared `stats`. */
  countExpired(): void {
    this.#dropped++;
    const stats = this.#stats;
    if (stats !== undefined) {
      stats.dropped++;
      stats.droppedExpired++;
    }
  }

  /**
   * Takes the oldest queued delivery that has not expired, dropping expired ones on the way
   * [MQTT-3.3.2-5].
   *
   * @param now The current time.
   * @returns The delivery, or `undefined` when the queue is empty.
   */
  dequeue(now: Millis): Delivery | undefined {
    for (;;) {
      const queue = this.#queue;
      if (queue === undefined) {
        this.#roomCheck(now);
        return undefined;
      }
      const delivery = queue[this.#head];
      (queue as (Delivery | undefined)[])[this.#head++] = undefined;
      if (this.#head === queue.length) {
        this.#queue = undefined;
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > queue.length) this.#compacted();
      this.#queuedBytes -= delivery.message.payload.length;
      this.journal?.delete(this, delivery);
      const expiresAt = delivery.message.expiresAt;
      if (expiresAt !== undefined && expiresAt <= now) {
        this.countExpired();
        continue;
      }
      this.#roomCheck(now);
      return delivery;
    }
  }

  /**
   * Removes expired messages from the queue [MQTT-3.3.2-5].
   *
   * @param now The current time.
   */
  dropExpired(now: Millis): void {
    const queue = this.#compacted();
    if (queue === undefined) return;
    const kept: Delivery[] = [];
    for (const delivery of queue) {
      const expiresAt = delivery.message.expiresAt;
      if (expiresAt !== undefined && expiresAt <= now) {
        this.#queuedBytes -= delivery.message.payload.length;
        this.countExpired();
        this.journal?.delete(this, delivery);
      } else {
        kept.push(delivery);
      }
    }
    this.#queue = kept.length > 0 ? kept : undefined;
    this.#roomCheck(now);
  }

  /** The queue without the taken deliveries before `#head`. */
  #compacted(): Delivery[] | undefined {
    const queue = this.#queue;
    if (queue !== undefined && this.#head > 0) {
      queue.splice(0, this.#head);
      this.#head = 0;
    }
    return queue;
  }

  /** Tells whoever waits for room that there is some. */
  #roomCheck(now: Millis): void {
    const onRoom = this.onRoom;
    if (onRoom === undefined || this.overLimit) return;
    this.onRoom = undefined;
    onRoom(now);
  }

  /**
   * Records a delivery as in flight under a new packet identifier that no other delivery in flight uses
   * [MQTT-2.2.1-4].
   *
   * @param delivery The delivery, at QoS 1 or 2.
   * @returns The in-flight entry, or `undefined` when all 65,535 identifiers are in use.
   */
  startInflight(delivery: Delivery): InflightDelivery | undefined {
    const inflight = this.#inflight ??= new Map();
    if (inflight.size >= 65_535) return undefined;
    let id = this.#nextPacketId;
    while (inflight.has(id)) id = id === 65_535 ? 1 : id + 1;
    this.#nextPacketId = id === 65_535 ? 1 : id + 1;
    keepMessage(delivery.message);
    const entry: InflightDelivery = {
      message: delivery.message,
      qos: delivery.qos,
      retain: delivery.retain,
      subscriptionIdentifiers: delivery.subscriptionIdentifiers,
      shared: delivery.shared,
      packetId: id,
      released: false,
    };
    inflight.set(id, entry);
    this.journal?.put(this, entry);
    return entry;
  }

  /**
   * Ends a delivery in flight: acknowledged, refused, or dropped.
   *
   * @param packetId Its packet identifier.
   * @returns The delivery, or `undefined` when none is in flight under that identifier.
   */
  complete(packetId: number): InflightDelivery | undefined {
    const inflight = this.#inflight;
    const entry = inflight?.get(packetId);
    if (entry === undefined) return undefined;
    inflight!.delete(packetId);
    if (inflight!.size === 0) this.#inflight = undefined;
    this.journal?.delete(this, entry);
    return entry;
  }

  /**
   * Marks a QoS 2 delivery in flight as released: PUBREC arrived and PUBREL is sent; the PUBLISH is never sent
   * again [MQTT-4.3.3-6].
   *
   * @param entry The delivery.
   */
  release(entry: InflightDelivery): void {
    entry.released = true;
    this.journal?.put(this, entry);
  }

  /**
   * Offers the deliveries that came through a shared subscription and are not completed to `handOver`, in
   * order (in flight, then queued), and removes those it takes: the broker gives them to another member of
   * the group (MQTT 5 §4.8.2). A QoS 2 delivery already released (PUBREC received) stays: the client has the
   * message. An in-flight delivery taken frees its packet identifier; a connection that resumes the session
   * later simply no longer has it.
   *
   * @param now The current time.
   * @param shared Only the deliveries of this shared subscription (`$share/{group}/{filter}`); default: all.
   * @param inflight Whether in-flight deliveries are offered too, not only queued ones (only when no
   *   connection sends from this state: one that does must complete what it started [MQTT-3.10.4-3]).
   * @param handOver Takes a delivery elsewhere (`true`), or leaves it here (`false`).
   * @returns How many deliveries were taken.
   */
  handOverShared(
    now: Millis,
    shared: string | undefined,
    inflight: boolean,
    handOver: (delivery: Delivery) => boolean,
  ): number {
    let taken = 0;
    const offered = (delivery: Delivery): boolean =>
      delivery.shared !== undefined && (shared === undefined || delivery.shared === shared) &&
      handOver(delivery);
    if (inflight && this.#inflight !== undefined) {
      for (const entry of [...this.#inflight.values()]) {
        if (entry.released || !offered(entry)) continue;
        this.complete(entry.packetId);
        taken++;
      }
    }
    const queue = this.#compacted();
    if (queue === undefined) return taken;
    let kept: Delivery[] | undefined;
    for (let i = 0; i < queue.length; i++) {
      const delivery = queue[i];
      if (!offered(delivery)) {
        kept?.push(delivery);
        continue;
      }
      kept ??= queue.slice(0, i);
      this.#queuedBytes -= delivery.message.payload.length;
      this.journal?.delete(this, delivery);
      taken++;
    }
    if (kept !== undefined) {
      this.#queue = kept.length > 0 ? kept : undefined;
      this.#roomCheck(now);
    }
    return taken;
  }

  /**
   * Records an inbound QoS 2 packet identifier answered with PUBREC, until its PUBREL.
   *
   * @param packetId The packet identifier.
   */
  addInboundQoS2(packetId: number): void {
    (this.#inboundQoS2 ??= new Set()).add(packetId);
    this.journal?.inboundChanged(this);
  }

  /**
   * Forgets an inbound QoS 2 packet identifier (PUBREL arrived, or the message was refused).
   *
   * @param packetId The packet identifier.
   * @returns Whether it was recorded.
   */
  removeInboundQoS2(packetId: number): boolean {
    const identifiers = this.#inboundQoS2;
    if (identifiers === undefined || !identifiers.delete(packetId)) return false;
    if (identifiers.size === 0) this.#inboundQoS2 = undefined;
    this.journal?.inboundChanged(this);
    return true;
  }

  /**
   * Forgets every queued and in-flight message, as a new session would start (clean start).
   *
   * @param now The current time.
   */
  clear(now: Millis): void {
    const journal = this.journal;
    if (journal !== undefined) {
      for (const entry of this.inflight.values()) journal.delete(this, entry);
      for (const delivery of this.queue) journal.delete(this, delivery);
      if (this.inboundQoS2.size > 0) journal.inboundChanged(this);
    }
    this.#inflight = undefined;
    this.#queue = undefined;
    this.#head = 0;
    this.#queuedBytes = 0;
    this.#inboundQoS2 = undefined;
    this.#roomCheck(now);
  }

  /**
   * Restores an in-flight entry with its original packet identifier, as when loading a saved session.
   *
   * @param entry The entry.
   */
  restoreInflight(entry: InflightDelivery): void {
    keepMessage(entry.message);
    (this.#inflight ??= new Map()).set(entry.packetId, entry);
    this.journal?.put(this, entry);
  }
}

/**
 * Makes the message a PUBLISH carries into a {@linkcode BrokerMessage} to hand to
 * {@linkcode SessionMachine.deliver} or {@linkcode SessionState.enqueue}: the properties the broker forwards
 * (MQTT 5 §3.3.2.3, without topic alias and subscription identifiers), and the time it expires at. The payload
 * stays a view until something keeps the message, which then copies it once.
 *
 * @param now The current time, from which the Message Expiry Interval runs.
 * @param packet The PUBLISH (its topic alias resolved).
 * @param publisher The client identifier of the publisher, for No Local.
 * @returns The message.
 *
 * @example Deliver a message without a BrokerMachine
 * ```ts
 * import { createMessage } from "@x/mqtt/machine";
 * const message = createMessage(1_000, {
 *   type: "publish", topic: "t", payload: new Uint8Array([1]), qos: 0, retain: false, dup: false,
 *   properties: { messageExpiryInterval: 60 },
 * });
 * console.log(message.expiresAt); // 61_000
 * ```
 */
export function createMessage(now: Millis, packet: PublishPacket, publisher?: string): BrokerMessage {
  return messageFromPublish(now, packet, publisher);
}

/**
 * The lower of two QoS levels, as a delivery's QoS is the lower of the published and the granted one
 * [MQTT-3.8.4-8].
 *
 * @param a A QoS.
 * @param b Another QoS.
 * @returns The lower one.
 *
 * @example Downgrade a delivery
 * ```ts
 * import { minQoS } from "@x/mqtt/machine";
 * console.log(minQoS(2, 1)); // 1
 * ```
 */
export function minQoS(a: QoS, b: QoS): QoS {
  return a < b ? a : b;
}
