/**
 * The routing state a broker shares among its connections, sans-IO: sessions, subscriptions, retained
 * messages, wills and expiry, driven by the time the caller passes in.
 *
 * @module
 */

import type {
  ConnAckProperties,
  PublishPacket,
  PublishProperties,
  QoS,
  SubscribePacket,
  Subscription,
  UnsubscribePacket,
  Will,
} from "../codec/packet.ts";
import { parseSharedSubscription, topicFilterProblem } from "../codec/topic.ts";
import { ReasonCode } from "../errors.ts";
import {
  type BrokerMessage,
  type Delivery,
  type InflightDelivery,
  keepMessage,
  messageFromPublish,
} from "./_delivery.ts";
import type { SessionMachine } from "./session_machine.ts";
import { OWNER } from "./_owner.ts";
import { minQoS, type SessionJournal, SessionState } from "./session_state.ts";
import { TopicTree } from "./topic_tree.ts";

import type { Millis } from "./client_machine.ts";

/** A session expiry interval that never ends, in seconds. */
const NEVER = 0xffff_ffff;

/** Whether a topic filter has more than `limit` levels, a `$share/NAME/` prefix left out. */
function deeperThan(filter: string, limit: number): boolean {
  let position = filter.startsWith("$share/") ? filter.indexOf("/", 7) + 1 : 0;
  for (let levels = 1; levels <= limit; levels++) {
    position = filter.indexOf("/", position) + 1;
    if (position === 0) return false;
  }
  return true;
}

/** Options of {@linkcode BrokerMachine}. */
export interface BrokerMachineOptions {
  /**
   * Seconds a persistent MQTT 3.1 / 3.1.1 session (Clean Session 0) outlives its connection; 0xFFFFFFFF never
   * expires. @default 0xFFFFFFFF
   */
  persistentSessionExpiryInterval?: number;
  /** The longest session expiry interval granted to MQTT 5 clients, in seconds. @default 0xFFFFFFFF */
  maximumSessionExpiryInterval?: number;
  /** The most messages queued per session. @default 1000 */
  maxQueuedMessages?: number;
  /** The most payload bytes queued per session. @default 16777216 */
  maxQueuedBytes?: number;
  /** Whether QoS 0 messages are queued for sessions that are offline. @default false */
  queueQoS0?: boolean;
  /**
   * The most levels a subscription's topic filter may have (after a `$share/NAME/` prefix); deeper filters
   * are refused in the SUBACK with 0x8F topic filter invalid (3.1.1: 0x80 failure), since each level of a
   * subscription is a node of the routing tree: one SUBSCRIBE of a 10,000-level filter would hold about
   * 2 MiB. EMQX's `max_topic_levels` (also 128) bounds filters and topics alike; the broker applies the same
   * option to published topics. @default 128
   */
  maxTopicLevels?: number;
  /**
   * Milliseconds a session may stay over its queue bounds (`maxQueuedMessages`, `maxQueuedBytes`) while the
   * acknowledgements of the messages for it are held back (see {@linkcode BrokerMachine.publish}); after
   * that, it counts as a slow consumer: the held acknowledgements go out and, until its queue is within its
   * bounds again, the messages that do not fit are dropped for it (counted in `stats.dropped`), so that one
   * stuck session does not stall its publishers for good. The broker also disconnects a connected client
   * whose writes stayed backed up (`maxOutgoingBytes`) that long. @default 30000
   */
  slowConsumerTimeout?: number;
  /**
   * Decides whether a message may be delivered to a session (an ACL's read rules), for every delivery and
   * every retained message sent on subscribing; `false` skips that session. Called while routing: keep it
   * fast and synchronous. Default: every message is delivered.
   */
  authorizeDelivery?: (session: SessionIdentity, message: BrokerMessage) => boolean;
  /**
   * Record every change to what a store would keep, for {@linkcode BrokerMachine.pollChanges}. @default false
   */
  journal?: boolean;
}

/** Who a session belongs to, for {@linkcode BrokerMachineOptions.authorizeDelivery}. */
export interface SessionIdentity {
  /** The client identifier. */
  readonly clientId: string;
  /** The user name of the CONNECT that last attached the session, if it had one. */
  readonly username: string | undefined;
}

/** Options of {@linkcode BrokerMachine.attach}. */
export interface AttachOptions {
  /** Extra CONNACK properties (MQTT 5), for example authentication data or a server keep-alive. */
  properties?: ConnAckProperties;
}

/** A subscription as a session holds it. */
export interface SessionSubscription extends Subscription {
  /** The subscription identifier (MQTT 5). */
  identifier?: number;
}

/** A message in a {@linkcode BrokerSnapshot}: plain data, times relative to the snapshot. */
export interface MessageSnapshot {
  /** The topic name. */
  topic: string;
  /** The payload (a copy). */
  payload: Uint8Array;
  /** The QoS it was published with. */
  qos: QoS;
  /** The RETAIN flag it was published with. */
  retain: boolean;
  /** The properties forwarded with it (MQTT 5), without topic alias, subscription identifiers or expiry. */
  properties?: PublishProperties;
  /** Milliseconds left before the message expires, when it does. */
  expiresInMs?: number;
  /** The client identifier of the publisher, for No Local. */
  publisher?: string;
}

/** A delivery in a {@linkcode SessionSnapshot}. */
export interface DeliverySnapshot {
  /** The message. */
  message: MessageSnapshot;
  /** The QoS of this delivery. */
  qos: QoS;
  /** The RETAIN flag to send. */
  retain: boolean;
  /** The identifiers of the matching subscriptions (MQTT 5). */
  subscriptionIdentifiers?: number[];
  /** The packet identifier, for a delivery in flight. */
  packetId?: number;
  /** PUBREL sent (QoS 2). */
  released?: boolean;
}

/** A session without its deliveries: what {@linkcode BrokerMachine.pollChanges} reports of it. */
export interface SessionMeta {
  /** The client identifier. */
  clientId: string;
  /** Seconds the session outlives its connection. */
  expiryInterval: number;
  /** Milliseconds left before an offline session expires. */
  expiresInMs?: number;
  /** The session's subscriptions. */
  subscriptions: SessionSubscription[];
  /** QoS 2 packet identifiers the client published that await PUBREL. */
  inboundQoS2: number[];
  /** The user name the session's client connected with, for the read rules of deliveries. */
  username?: string;
  /** A will waiting for its delay. */
  will?: Will;
  /** Milliseconds left before that will is published. */
  willInMs?: number;
  /**
   * `true` when the session had a connection: `expiresInMs` and `willInMs` then count from the moment the
   * state is restored (the connection is over by then), not from when it was saved.
   */
  connected?: boolean;
}

/** One session in a {@linkcode BrokerSnapshot}. */
export interface SessionSnapshot extends SessionMeta {
  /** Deliveries sent and not completed, in sending order. */
  inflight: DeliverySnapshot[];
  /** Deliveries waiting to be sent, oldest first. */
  queue: DeliverySnapshot[];
}

/**
 * One change to the persistent state, from {@linkcode BrokerMachine.pollChanges}; applied in order, the
 * changes keep a store equal to {@linkcode BrokerMachine.exportState}. Times are relative to the poll.
 *
 * @example A retained message set, then cleared
 * ```ts
 * import assert from "node:assert/strict";
 * import { BrokerMachine } from "@x/mqtt/machine";
 * const broker = new BrokerMachine({ journal: true });
 * const publish = (now: number, payload: Uint8Array) =>
 *   broker.route(now, undefined, {
 *     type: "publish", topic: "status", payload, qos: 0, retain: true, dup: false,
 *   });
 * publish(0, new TextEncoder().encode("up"));
 * const [set] = broker.pollChanges(0);
 * assert(set.type === "retained" && set.message !== undefined);
 * assert.equal(new TextDecoder().decode(set.message.payload), "up");
 * publish(1, new Uint8Array()); // an empty retained payload clears the topic
 * assert.deepEqual(broker.pollChanges(1), [{ type: "retained", topic: "status", message: undefined }]);
 * ```
 */
export type BrokerChange =
  /** A session was created or changed (not its deliveries): replace the stored one. */
  | { type: "session"; session: SessionMeta }
  /** A session ended: forget it and all its deliveries. */
  | { type: "sessionEnded"; clientId: string }
  /**
   * A delivery of a session was added or changed (`delivery` set) or is gone (`undefined`). `key` names it
   * until it is gone; keys are unique within one machine. In-flight deliveries have a packet identifier.
   */
  | { type: "delivery"; clientId: string; key: number; delivery: DeliverySnapshot | undefined }
  /** The retained message of a topic was set (`message`) or cleared (`undefined`). */
  | { type: "retained"; topic: string; message: MessageSnapshot | undefined };

/** The state of a {@linkcode BrokerMachine} as plain data (structured-clone safe), for persistence. */
export interface BrokerSnapshot {
  /** Every session. */
  sessions: SessionSnapshot[];
  /** Every retained message. */
  retained: MessageSnapshot[];
}

/** Counters of a {@linkcode BrokerMachine}. */
export interface BrokerStats {
  /** Messages routed (PUBLISH and wills). */
  routed: number;
  /** Deliveries made to sessions, online or queued. */
  delivered: number;
  /**
   * Deliveries dropped: QoS 0 ones that did not fit an offline session's queue, and QoS 1 and 2 ones for a
   * session that stayed over its queue bounds past `slowConsumerTimeout`.
   */
  dropped: number;
}

/** The acknowledgement of a PUBLISH, held back until every session it was queued for beyond bounds has room. */
interface HeldAck {
  readonly session: SessionMachine;
  readonly packetId: number;
  readonly reasonCode: ReasonCode;
  /** How many sessions it still waits for. */
  waiting: number;
}

interface SessionRecord {
  readonly clientId: string;
  username: string | undefined;
  /** Acknowledgements held back until this session's queue is within its bounds. */
  held: HeldAck[] | undefined;
  /** When the first of them was held: the slow-consumer timeout runs from it. */
  heldSince: Millis | undefined;
  /** Over its bounds past the timeout: what does not fit is dropped until it has room again. */
  stalled: boolean;
  readonly state: SessionState;
  /** By topic filter; made with the first subscription. */
  subscriptions: Map<string, SessionSubscription> | undefined;
  connection: SessionMachine | undefined;
  expiryInterval: number;
  expiresAt: Millis | undefined;
  will: Will | undefined;
  willAt: Millis | undefined;
  /** Journal: whether the store holds this session. */
  stored: boolean;
}

/** One entry of the journal before {@linkcode BrokerMachine.pollChanges} turns it into a change. */
type JournalEntry =
  | { kind: "put" | "delete"; record: SessionRecord; delivery: Delivery; key: number }
  | { kind: "ended"; clientId: string }
  | { kind: "retained"; topic: string };

interface ClientEntry {
  readonly kind: "client";
  readonly record: SessionRecord;
  readonly subscription: SessionSubscription;
}

interface SharedGroup {
  readonly kind: "shared";
  readonly members: ClientEntry[];
  cursor: number;
}

type TreeEntry = ClientEntry | SharedGroup;

/** Per route: what one session gets, all its overlapping subscriptions merged [MQTT-3.3.4-2]. */
interface Match {
  qos: QoS;
  retainAsPublished: boolean;
  identifiers: number[] | undefined;
}

/**
 * The routing state shared by every connection of a broker: the session registry (takeover, clean start,
 * session present, expiry), the subscription tree (`+`, `#`, `$` topics, shared subscriptions, no local,
 * retain as published, retain handling, subscription identifiers), retained messages, offline queues and
 * wills. It drives {@linkcode SessionMachine}s: authentication and authorization stay with the driver, which
 * forwards each session's events here once it has decided.
 *
 * After each call, drain {@linkcode BrokerMachine.pollSession} and flush every session it returns, then
 * schedule {@linkcode BrokerMachine.handleTimeout} at {@linkcode BrokerMachine.pollTimeout}.
 *
 * @example Two sessions exchange a message
 * ```ts
 * import { encode, PacketDecoder } from "@x/mqtt/codec";
 * import { BrokerMachine, SessionMachine } from "@x/mqtt/machine";
 * const broker = new BrokerMachine();
 * function connect(clientId: string): SessionMachine {
 *   const session = new SessionMachine(0);
 *   session.handleBytes(0, encode({ type: "connect", protocolVersion: 4, clientId, cleanStart: true, keepAlive: 0 }, 4));
 *   session.pollEvent(); // { type: "connect", … }: authenticate, then
 *   broker.attach(0, session);
 *   session.pollTransmit(); // CONNACK
 *   return session;
 * }
 * const subscriber = connect("sub");
 * const publisher = connect("pub");
 * subscriber.handleBytes(1, encode({ type: "subscribe", packetId: 1, subscriptions: [
 *   { topicFilter: "a/+", qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }, 4));
 * const subscribe = subscriber.pollEvent();
 * if (subscribe?.type === "subscribe") broker.subscribe(1, subscriber, subscribe.packet);
 * subscriber.pollTransmit(); // SUBACK
 * publisher.handleBytes(2, encode({ type: "publish", topic: "a/b", payload: new Uint8Array([42]), qos: 0, retain: false, dup: false }, 4));
 * const publish = publisher.pollEvent();
 * if (publish?.type === "publish") broker.route(2, publisher, publish.packet);
 * console.log(broker.pollSession()); // subscriber
 * const decoder = new PacketDecoder({ version: 4 });
 * decoder.push(subscriber.pollTransmit()!);
 * console.log(decoder.next()); // { type: "publish", topic: "a/b", payload: new Uint8Array([42]), qos: 0, retain: false, dup: false }
 * ```
 */
export class BrokerMachine {
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #tree = new TopicTree<TreeEntry>();
  readonly #retained = new Map<string, BrokerMessage>();
  /** The same retained messages by topic level, so a new subscription finds its matches without a scan. */
  readonly #retainedTree = new TopicTree<BrokerMessage>();
  /** Sessions with a will or expiry deadline. */
  readonly #timed = new Set<SessionRecord>();
  /** The earliest deadline of `#timed`, when `#earliestKnown`; recomputed lazily. */
  #earliest: Millis | undefined;
  #earliestKnown = true;
  /** Sessions with new output, in the order they got it, without repeats (`#dirtySet` says who is in). */
  readonly #dirty: SessionMachine[] = [];
  readonly #dirtySet = new Set<SessionMachine>();
  #dirtyIndex = 0;
  readonly #persistentExpiry: number;
  readonly #maximumExpiry: number;
  readonly #maxQueuedMessages: number;
  readonly #maxQueuedBytes: number;
  readonly #queueQoS0: boolean;
  readonly #maxTopicLevels: number;
  readonly #stats: BrokerStats = { routed: 0, delivered: 0, dropped: 0 };
  readonly #slowConsumerTimeout: number;
  readonly #authorizeDelivery: BrokerMachineOptions["authorizeDelivery"];
  /** Sessions holding acknowledgements back (their timeout is in `pollTimeout`). */
  readonly #holding = new Set<SessionRecord>();
  /** Sessions the current route queued a QoS 1 or 2 delivery for beyond their bounds. */
  readonly #full: SessionRecord[] = [];
  #assigned = 0;
  /** The journal, when on: changes in order, and the sessions whose meta changed. */
  readonly #journal: JournalEntry[] | undefined;
  readonly #changedSessions = new Set<SessionRecord>();
  readonly #keys = new WeakMap<Delivery, number>();
  #nextKey = 1;
  readonly #stateJournal: SessionJournal;
  /** Records by their session state, for the journal's callbacks: only states with a journal are in it. */
  readonly #byState = new WeakMap<SessionState, SessionRecord>();

  /**
   * Creates an empty broker state.
   *
   * @param options Session expiry and queue limits.
   */
  constructor(options: BrokerMachineOptions = {}) {
    this.#persistentExpiry = options.persistentSessionExpiryInterval ?? NEVER;
    this.#maximumExpiry = options.maximumSessionExpiryInterval ?? NEVER;
    this.#maxQueuedMessages = options.maxQueuedMessages ?? 1000;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 16 * 1024 * 1024;
    this.#queueQoS0 = options.queueQoS0 ?? false;
    this.#maxTopicLevels = options.maxTopicLevels ?? 128;
    this.#slowConsumerTimeout = options.slowConsumerTimeout ?? 30_000;
    this.#authorizeDelivery = options.authorizeDelivery;
    this.#journal = options.journal ? [] : undefined;
    const records = this.#byState;
    this.#stateJournal = {
      put: (state, delivery) => this.#journalDelivery("put", records.get(state), delivery),
      delete: (state, delivery) => this.#journalDelivery("delete", records.get(state), delivery),
      inboundChanged: (state) => {
        const record = records.get(state);
        if (record !== undefined) this.#changed(record);
      },
    };
  }

  /** Counters of routed and delivered messages. */
  get stats(): Readonly<BrokerStats> {
    return this.#stats;
  }

  /** How many sessions exist, connected or not. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** How many retained messages are stored. */
  get retainedCount(): number {
    return this.#retained.size;
  }

  /**
   * Whether a session exists for a client identifier.
   *
   * @param clientId The client identifier.
   * @returns `true` when the broker holds a session for it.
   */
  hasSession(clientId: string): boolean {
    return this.#sessions.has(clientId);
  }

  /**
   * Accepts the CONNECT a session reported (its `connect` event), once the driver has authenticated it: takes
   * over an existing connection of the same client identifier (DISCONNECT 0x8E, MQTT 5) [MQTT-3.1.4-3], discards
   * the old session on a clean start [MQTT-3.1.2-4] or resumes it [MQTT-3.1.2-5], assigns an identifier to an
   * empty one [MQTT-3.1.3-6], cancels a will waiting for its delay [MQTT-3.1.3-9] and sends the CONNACK with
   * Session Present [MQTT-3.2.2-2] [MQTT-3.2.2-3].
   *
   * @param now The current time.
   * @param session A session whose `connect` event is waiting for an answer.
   * @param options Extra CONNACK properties.
   * @returns Whether the session was present; `false` also when the session has closed meanwhile (nothing done).
   * @throws {Error} When the session has no CONNECT waiting for an answer.
   */
  attach(now: Millis, session: SessionMachine, options: AttachOptions = {}): boolean {
    // Events are drained after the fact: the connection may have closed since its `connect` event.
    if (session.state === "closed") return false;
    const connect = session.connectPacket;
    if (connect === undefined || session.state !== "connecting") {
      throw new Error("Cannot attach the session: no CONNECT is waiting for an answer");
    }
    const properties: ConnAckProperties = { ...options.properties };
    let clientId = connect.clientId;
    if (clientId === "") {
      clientId = properties.assignedClientIdentifier ?? `auto-${++this.#assigned}`;
      while (this.#sessions.has(clientId)) clientId = `auto-${++this.#assigned}`;
      // [MQTT-3.2.2-16] the assigned identifier goes in the CONNACK (MQTT 5); older clients never see it.
      properties.assignedClientIdentifier = clientId;
    }
    let expiry: number;
    if (connect.protocolVersion === 5) {
      expiry = connect.properties?.sessionExpiryInterval ?? 0;
      if (expiry > this.#maximumExpiry) {
        expiry = this.#maximumExpiry;
        properties.sessionExpiryInterval = expiry;
      }
    } else {
      expiry = connect.cleanStart ? 0 : this.#persistentExpiry;
    }
    let record = this.#sessions.get(clientId);
    if (record !== undefined) {
      const old = record.connection;
      if (old !== undefined && old !== session) {
        // [MQTT-3.1.4-3] the existing connection is taken over.
        old[OWNER] = undefined;
        record.connection = undefined;
        const will = old.will;
        old.disconnect(now, ReasonCode.SessionTakenOver);
        this.#markDirty(old);
        if (will !== undefined && (connect.cleanStart || willDelay(will) === 0)) {
          this.#publishWill(now, record, will);
        }
      }
      if (connect.cleanStart || (record.expiresAt !== undefined && record.expiresAt <= now)) {
        this.#endSession(now, record);
        record = undefined;
      }
    }
    const sessionPresent = record !== undefined;
    if (record === undefined) {
      record = {
        clientId,
        username: undefined,
        held: undefined,
        heldSince: undefined,
        stalled: false,
        state: new SessionState(clientId, {
          maxQueuedMessages: this.#maxQueuedMessages,
          maxQueuedBytes: this.#maxQueuedBytes,
        }),
        subscriptions: undefined,
        connection: undefined,
        expiryInterval: expiry,
        expiresAt: undefined,
        will: undefined,
        willAt: undefined,
        stored: false,
      };
      this.#sessions.set(clientId, record);
    }
    this.#unschedule(record);
    record.connection = session;
    record.username = connect.username;
    record.expiryInterval = expiry;
    record.expiresAt = undefined;
    // [MQTT-3.1.3-9] a new connection before the will delay passed: the old will is not sent.
    record.will = undefined;
    record.willAt = undefined;
    session[OWNER] = record;
    this.#track(record);
    session.accept(now, {
      sessionPresent,
      state: record.state,
      properties: connect.protocolVersion === 5 ? properties : { assignedClientIdentifier: clientId },
    });
    this.#markDirty(session);
    return sessionPresent;
  }

  /**
   * Routes a PUBLISH to every matching subscription: stores or clears the retained message
   * [MQTT-3.3.1-5] [MQTT-3.3.1-6], delivers one copy per session at the highest matching QoS with every matching
   * subscription identifier [MQTT-3.3.4-2] [MQTT-3.3.4-4], downgraded to the granted QoS [MQTT-3.8.4-8], one copy
   * per shared group to its members in turn, skips the publisher for No Local [MQTT-3.8.3-3], and queues for
   * offline persistent sessions [MQTT-3.1.2-5]. Each distinct PUBLISH is encoded once and shared.
   *
   * @param now The current time.
   * @param from The session that published it, or `undefined` for the broker's own messages.
   * @param packet The PUBLISH, its topic alias resolved (as in the `publish` event).
   * @returns How many sessions it was delivered or queued to.
   */
  route(now: Millis, from: SessionMachine | undefined, packet: PublishPacket): number {
    const publisher = from === undefined ? undefined : this.#attached(from)?.clientId ?? from.clientId;
    return this.#route(now, messageFromPublish(now, packet, publisher));
  }

  /**
   * Routes a PUBLISH a session reported (its `publish` event), once the driver has authorized it, and
   * acknowledges it (PUBACK or PUBREC with `reasonCode`) once every session it was delivered to holds it
   * (MQTT 5 §4.3.2, §4.3.3): at once, or, when a session's queue had to go beyond its bounds for it, once that
   * queue is back within them. Holding the acknowledgement back slows the publisher down to the pace of the
   * slowest subscriber instead of dropping what it was promised (flow control; the publisher's own window,
   * our Receive Maximum, bounds how far past the bounds a queue grows). A session over its bounds for longer
   * than `slowConsumerTimeout` stops holding its publishers back (see that option). A refusal (`reasonCode`
   * 0x80 or more) is not routed.
   *
   * @param now The current time.
   * @param session The session that published it.
   * @param packet The PUBLISH, from the `publish` event.
   * @param reasonCode The acknowledgement's reason code. @default 0x00
   * @returns How many sessions it was delivered or queued to.
   *
   * @example A subscriber that is away: the second message waits for room before it is acknowledged
   * ```ts
   * import assert from "node:assert/strict";
   * import { encode, PacketDecoder } from "@x/mqtt/codec";
   * import { BrokerMachine, SessionMachine } from "@x/mqtt/machine";
   * const broker = new BrokerMachine({ maxQueuedMessages: 1 });
   * function connect(clientId: string): SessionMachine {
   *   const session = new SessionMachine(0);
   *   session.handleBytes(0, encode({ type: "connect", protocolVersion: 4, clientId, cleanStart: false, keepAlive: 0 }, 4));
   *   session.pollEvent();
   *   broker.attach(0, session);
   *   session.pollTransmit(); // CONNACK
   *   return session;
   * }
   * const subscriber = connect("sub");
   * broker.subscribe(0, subscriber, { type: "subscribe", packetId: 1, subscriptions: [
   *   { topicFilter: "t", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
   * subscriber.handleClose(0);
   * broker.detach(0, subscriber); // away, its session kept
   * const publisher = connect("pub");
   * const publish = (packetId: number) => {
   *   publisher.handleBytes(1, encode({ type: "publish", topic: "t", payload: new Uint8Array([packetId]), qos: 1, retain: false, dup: false, packetId }, 4));
   *   const event = publisher.pollEvent();
   *   if (event?.type === "publish") broker.publish(1, publisher, event.packet);
   *   return publisher.pollTransmit();
   * };
   * assert.deepEqual(publish(1), new Uint8Array([0x40, 0x02, 0x00, 0x01])); // PUBACK 1: queued within bounds
   * assert.equal(publish(2), undefined); // queued beyond them: PUBACK 2 waits
   * const back = new SessionMachine(2);
   * back.handleBytes(2, encode({ type: "connect", protocolVersion: 4, clientId: "sub", cleanStart: false, keepAlive: 0 }, 4));
   * back.pollEvent();
   * broker.attach(2, back); // the queue goes out to it
   * assert.deepEqual(publisher.pollTransmit(), new Uint8Array([0x40, 0x02, 0x00, 0x02])); // PUBACK 2
   * ```
   */
  publish(
    now: Millis,
    session: SessionMachine,
    packet: PublishPacket,
    reasonCode: ReasonCode = ReasonCode.Success,
  ): number {
    const full = this.#full;
    full.length = 0; // what the broker's own messages routed last left
    const count = reasonCode < 0x80 ? this.route(now, session, packet) : 0;
    const packetId = packet.packetId;
    if (packetId === undefined) return count;
    if (full.length === 0) {
      session.acknowledge(now, packetId, reasonCode);
    } else {
      // Routed: a store keeps its QoS 2 identifier from now on, while the acknowledgement waits.
      session.routed(packetId);
      const held: HeldAck = { session, packetId, reasonCode, waiting: full.length };
      for (const record of full) this.#hold(now, record, held);
      full.length = 0;
    }
    this.#markDirty(session);
    return count;
  }

  /**
   * Adds the subscriptions of a SUBSCRIBE and answers it with a SUBACK: the granted QoS of each filter is the
   * lower of the requested one and the driver's code, or the driver's failure code; an invalid filter gets 0x8F.
   * An identical filter replaces the session's existing subscription [MQTT-3.8.4-3]. Retained messages follow
   * the SUBACK, as retain handling says [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11], never to shared
   * subscriptions.
   *
   * @param now The current time.
   * @param session The attached session that sent it.
   * @param packet The SUBSCRIBE, from the `subscribe` event.
   * @param reasonCodes The driver's decision per filter: a maximum QoS, or a failure code. Default: as requested.
   * @returns The SUBACK's reason codes; none when the session has closed meanwhile.
   * @throws {Error} When the session is open but not attached.
   */
  subscribe(
    now: Millis,
    session: SessionMachine,
    packet: SubscribePacket,
    reasonCodes?: readonly ReasonCode[],
  ): ReasonCode[] {
    const record = this.#recordOf(session, "subscribe");
    if (record === undefined) return [];
    const identifier = packet.properties?.subscriptionIdentifier;
    const codes: ReasonCode[] = [];
    const retained: [BrokerMessage, QoS, number | undefined][] = [];
    for (let i = 0; i < packet.subscriptions.length; i++) {
      const requested = packet.subscriptions[i];
      const decided = reasonCodes?.[i] ?? requested.qos;
      if (decided >= 0x80) {
        codes.push(decided);
        continue;
      }
      const filter = requested.topicFilter;
      if (topicFilterProblem(filter) !== undefined || deeperThan(filter, this.#maxTopicLevels)) {
        codes.push(ReasonCode.TopicFilterInvalid);
        continue;
      }
      const qos = minQoS(requested.qos, decided as QoS);
      const subscription: SessionSubscription = { ...requested, qos };
      if (identifier !== undefined) subscription.identifier = identifier;
      const subscriptions = record.subscriptions ??= new Map();
      const existed = subscriptions.has(filter);
      subscriptions.set(filter, subscription);
      this.#addToTree(record, filter, subscription);
      codes.push(qos as ReasonCode);
      const shared = filter.startsWith("$share/");
      const handling = requested.retainHandling;
      if (!shared && (handling === 0 || (handling === 1 && !existed))) {
        const expired: string[] = [];
        this.#retainedTree.matchFilter(filter, (message) => {
          // [MQTT-3.3.2-5] an expired retained message is not sent, and is gone.
          if (message.expiresAt !== undefined && message.expiresAt <= now) expired.push(message.topic);
          else retained.push([message, qos, identifier]);
        });
        for (const topic of expired) this.#setRetained(topic, undefined);
      }
    }
    session.grant(now, packet.packetId, codes);
    this.#changed(record);
    const authorize = this.#authorizeDelivery;
    for (const [message, qos, id] of retained) {
      if (authorize !== undefined && !authorize(record, message)) continue;
      // [MQTT-3.3.1-8] (3.1.1) a retained message sent for a new subscription keeps RETAIN 1.
      session.deliver(now, {
        message,
        qos: minQoS(message.qos, qos),
        retain: true,
        subscriptionIdentifiers: id === undefined ? undefined : [id],
      });
    }
    this.#markDirty(session);
    return codes;
  }

  /**
   * Removes the subscriptions of an UNSUBSCRIBE and answers it with an UNSUBACK [MQTT-3.10.4-4]: 0x00 per
   * filter removed, 0x11 where none existed [MQTT-3.10.4-5]. Deliveries already started complete
   * [MQTT-3.10.4-3].
   *
   * @param now The current time.
   * @param session The attached session that sent it.
   * @param packet The UNSUBSCRIBE, from the `unsubscribe` event.
   * @returns The UNSUBACK's reason codes; none when the session has closed meanwhile.
   * @throws {Error} When the session is open but not attached.
   */
  unsubscribe(now: Millis, session: SessionMachine, packet: UnsubscribePacket): ReasonCode[] {
    const record = this.#recordOf(session, "unsubscribe");
    if (record === undefined) return [];
    const codes: ReasonCode[] = [];
    for (const filter of packet.topicFilters) {
      // [MQTT-3.10.4-1] filters compare character by character.
      if (record.subscriptions?.delete(filter)) {
        this.#removeFromTree(record, filter);
        codes.push(ReasonCode.Success);
      } else {
        codes.push(ReasonCode.NoSubscriptionExisted);
      }
    }
    session.acknowledgeUnsubscribe(now, packet.packetId, codes);
    this.#changed(record);
    this.#markDirty(session);
    return codes;
  }

  /**
   * Tells the broker a session's connection is over (its `closed` event): its will is published now, or
   * after its delay [MQTT-3.1.2-8], unless the client disconnected normally; the session ends now when its
   * expiry interval is 0 [MQTT-3.1.2-23], or waits for its expiry [MQTT-4.1.0-2]. A session that was taken over
   * or never attached is ignored.
   *
   * @param now The current time.
   * @param session The session.
   */
  detach(now: Millis, session: SessionMachine): void {
    const record = this.#attached(session);
    if (record !== undefined) session[OWNER] = undefined;
    this.#dirtySet.delete(session);
    if (record === undefined || record.connection !== session) return;
    record.connection = undefined;
    // MQTT 5: the client may have changed the interval in its DISCONNECT.
    if (session.version === 5) {
      record.expiryInterval = Math.min(session.sessionExpiryInterval, this.#maximumExpiry);
    }
    const will = session.will;
    if (will !== undefined) {
      const delay = Math.min(willDelay(will), record.expiryInterval);
      if (delay === 0) {
        this.#publishWill(now, record, will);
      } else {
        record.will = will;
        record.willAt = now + delay * 1000;
        this.#schedule(record);
      }
    }
    if (record.expiryInterval === 0) {
      this.#endSession(now, record);
    } else {
      if (record.expiryInterval !== NEVER) {
        record.expiresAt = now + record.expiryInterval * 1000;
        this.#schedule(record);
      }
      this.#changed(record);
    }
  }

  /**
   * Publishes wills whose delay has passed and ends sessions whose expiry has passed (publishing a will still
   * waiting first [MQTT-3.1.2-8]); sends the acknowledgements held back for a session over its queue bounds
   * past `slowConsumerTimeout`. An early call does nothing.
   *
   * @param now The current time.
   */
  handleTimeout(now: Millis): void {
    const earliest = this.pollTimeout();
    if (earliest === undefined || now < earliest) return;
    for (const record of [...this.#holding]) {
      if ((record.heldSince as Millis) + this.#slowConsumerTimeout <= now) this.#release(now, record, true);
    }
    this.#earliestKnown = false;
    for (const record of [...this.#timed]) {
      if (record.willAt !== undefined && record.willAt <= now) {
        const will = record.will as Will;
        record.will = undefined;
        record.willAt = undefined;
        this.#changed(record);
        this.#publishWill(now, record, will);
      }
      if (record.expiresAt !== undefined && record.expiresAt <= now) this.#endSession(now, record);
      if (record.willAt === undefined && record.expiresAt === undefined) this.#timed.delete(record);
    }
  }

  /**
   * The earliest will delay, session expiry or slow-consumer timeout.
   *
   * @returns When to call {@linkcode BrokerMachine.handleTimeout}, or `undefined` when nothing waits.
   */
  pollTimeout(): Millis | undefined {
    if (!this.#earliestKnown) {
      let earliest: Millis | undefined;
      for (const record of this.#timed) earliest = earlier(earliest, deadline(record));
      this.#earliest = earliest;
      this.#earliestKnown = true;
    }
    let at = this.#earliest;
    for (const record of this.#holding) {
      at = earlier(at, (record.heldSince as Millis) + this.#slowConsumerTimeout);
    }
    return at;
  }

  /**
   * The next session whose output changed because of the broker (a delivery, a takeover) since it was last
   * returned: flush it (`pollTransmit`, `pollEvent`, `pollTimeout`).
   *
   * @returns The session, or `undefined` when there are no more.
   */
  pollSession(): SessionMachine | undefined {
    const dirty = this.#dirty;
    while (this.#dirtyIndex < dirty.length) {
      const session = dirty[this.#dirtyIndex++];
      if (this.#dirtySet.delete(session)) return session;
    }
    dirty.length = 0;
    this.#dirtyIndex = 0;
    return undefined;
  }

  /**
   * The state as plain data, with times relative to `now`, for persistence.
   *
   * @param now The current time.
   * @returns Every session and every retained message. A connected session is saved as if its connection had
   *   just closed without DISCONNECT: its expiry and its will's delay start when the snapshot is restored.
   */
  exportState(now: Millis): BrokerSnapshot {
    const sessions: SessionSnapshot[] = [];
    for (const record of this.#sessions.values()) {
      const state = record.state;
      sessions.push({
        ...this.#meta(now, record),
        inflight: [...state.inflight.values()].map((d) => deliverySnapshot(now, d, true)),
        queue: state.queue.map((d) => deliverySnapshot(now, d, true)),
      });
    }
    return { sessions, retained: [...this.#retained.values()].map((m) => messageSnapshot(now, m, true)) };
  }

  /**
   * The changes to the persistent state since the last call, in order, for a store that writes them before
   * the sessions' output (their acknowledgements) goes out. Needs the `journal` option. Only what outlives a
   * connection is reported: sessions with an expiry interval or a will, the deliveries of sessions with an
   * expiry interval, and retained messages. Payloads are views: write them before the next call into the
   * machine.
   *
   * After {@linkcode BrokerMachine.restoreState}, the changes describe everything restored: a store that
   * replaces its content with them (rather than adding) holds exactly the restored state, under new keys.
   *
   * @param now The current time; the times in the changes are relative to it.
   * @returns The changes; empty when nothing changed.
   * @throws {Error} When the machine was created without `journal`.
   */
  pollChanges(now: Millis): BrokerChange[] {
    const journal = this.#journal;
    if (journal === undefined) throw new Error("Cannot poll changes: the machine keeps no journal");
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
          const message = this.#retained.get(entry.topic);
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
      if (this.#sessions.get(record.clientId) !== record) continue;
      if (record.expiryInterval > 0 || record.will !== undefined || record.connection?.will !== undefined) {
        record.stored = true;
        changes.push({ type: "session", session: this.#meta(now, record) });
      } else if (record.stored) {
        record.stored = false;
        changes.push({ type: "sessionEnded", clientId: record.clientId });
      }
    }
    this.#changedSessions.clear();
    return changes;
  }

  /**
   * Loads a state exported by {@linkcode BrokerMachine.exportState}, typically into a new broker before it
   * accepts connections; every restored session is offline. Sessions and retained messages with the same names
   * are replaced (a connected session of the same client identifier is taken over, without its will).
   *
   * @param now The current time.
   * @param snapshot The state.
   */
  restoreState(now: Millis, snapshot: BrokerSnapshot): void {
    for (const m of snapshot.retained) this.#setRetained(m.topic, messageFromSnapshot(now, m));
    for (const s of snapshot.sessions) {
      const existing = this.#sessions.get(s.clientId);
      if (existing !== undefined) {
        const connection = existing.connection;
        if (connection !== undefined) {
          // Replaced under a live connection: it is taken over, as by a new CONNECT.
          connection[OWNER] = undefined;
          existing.connection = undefined;
          connection.disconnect(now, ReasonCode.SessionTakenOver);
          this.#markDirty(connection);
        }
        this.#endSession(now, existing);
      }
      const state = new SessionState(s.clientId, {
        maxQueuedMessages: this.#maxQueuedMessages,
        maxQueuedBytes: this.#maxQueuedBytes,
      });
      for (const d of s.inflight) {
        state.restoreInflight({
          ...deliveryFromSnapshot(now, d),
          packetId: d.packetId as number,
          released: d.released === true,
        });
      }
      for (const d of s.queue) state.enqueue(now, deliveryFromSnapshot(now, d));
      for (const id of s.inboundQoS2) state.addInboundQoS2(id);
      const record: SessionRecord = {
        clientId: s.clientId,
        username: s.username,
        held: undefined,
        heldSince: undefined,
        stalled: false,
        state,
        subscriptions: undefined,
        connection: undefined,
        expiryInterval: s.expiryInterval,
        expiresAt: s.expiresInMs === undefined ? undefined : now + s.expiresInMs,
        will: s.will,
        willAt: s.willInMs === undefined ? undefined : now + s.willInMs,
        stored: false,
      };
      this.#sessions.set(s.clientId, record);
      for (const subscription of s.subscriptions) {
        (record.subscriptions ??= new Map()).set(subscription.topicFilter, { ...subscription });
        this.#addToTree(record, subscription.topicFilter, subscription);
      }
      if (record.expiresAt !== undefined || record.willAt !== undefined) this.#schedule(record);
      this.#track(record);
    }
  }

  // ---------------------------------------------------------------------------------------------- internals

  #setRetained(topic: string, message: BrokerMessage | undefined): void {
    if (message === undefined) {
      if (!this.#retained.delete(topic)) return;
      this.#retainedTree.remove(topic, "");
    } else {
      this.#retained.set(topic, message);
      this.#retainedTree.add(topic, "", message);
    }
    this.#journal?.push({ kind: "retained", topic });
  }

  /** What a store keeps of a session, besides its deliveries. */
  #meta(now: Millis, record: SessionRecord): SessionMeta {
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
      const expiry = connection.version === 5
        ? Math.min(connection.sessionExpiryInterval, this.#maximumExpiry)
        : record.expiryInterval;
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

  /** Journal: the session's meta changed. */
  #changed(record: SessionRecord): void {
    if (this.#journal !== undefined) this.#changedSessions.add(record);
  }

  /** Journal: a delivery of a session was put or deleted. */
  #journalDelivery(kind: "put" | "delete", record: SessionRecord | undefined, delivery: Delivery): void {
    const journal = this.#journal;
    if (journal === undefined || record === undefined) return;
    let key = this.#keys.get(delivery);
    if (kind === "put") {
      if (key === undefined) this.#keys.set(delivery, key = this.#nextKey++);
    } else {
      if (key === undefined) return;
      this.#keys.delete(delivery);
    }
    journal.push({ kind, record, delivery, key });
  }

  /**
   * Journal: the deliveries of a session with an expiry interval are journaled; others end with their
   * connection and are not.
   */
  #track(record: SessionRecord): void {
    if (this.#journal === undefined) return;
    const state = record.state;
    const wanted = record.expiryInterval > 0;
    if (wanted && state.journal === undefined) {
      // The journal's callbacks find the record here; only a journaled state needs the entry.
      this.#byState.set(state, record);
      state.journal = this.#stateJournal;
      for (const entry of state.inflight.values()) this.#journalDelivery("put", record, entry);
      for (const delivery of state.queue) this.#journalDelivery("put", record, delivery);
    } else if (!wanted && state.journal !== undefined) {
      for (const entry of state.inflight.values()) this.#journalDelivery("delete", record, entry);
      for (const delivery of state.queue) this.#journalDelivery("delete", record, delivery);
      state.journal = undefined;
    }
    this.#changed(record);
  }

  #markDirty(session: SessionMachine): void {
    if (this.#dirtySet.has(session)) return;
    this.#dirtySet.add(session);
    this.#dirty.push(session);
  }

  #schedule(record: SessionRecord): void {
    this.#timed.add(record);
    if (this.#earliestKnown) this.#earliest = earlier(this.#earliest, deadline(record));
  }

  #unschedule(record: SessionRecord): void {
    if (!this.#timed.delete(record)) return;
    if (this.#earliestKnown && deadline(record) === this.#earliest) this.#earliestKnown = false;
  }

  /**
   * The record of the session this machine attached, kept on the session itself rather than in a map (one
   * entry fewer per connection); `undefined` when it is not attached here.
   */
  #attached(session: SessionMachine): SessionRecord | undefined {
    const record = session[OWNER] as SessionRecord | undefined;
    return record !== undefined && this.#sessions.get(record.clientId) === record ? record : undefined;
  }

  #recordOf(session: SessionMachine, what: string): SessionRecord | undefined {
    // A session that closed since its event (taken over, say) has nothing left to answer.
    if (session.state === "closed") return undefined;
    const record = this.#attached(session);
    if (record === undefined || record.connection !== session) {
      throw new Error(`Cannot ${what}: the session is not attached`);
    }
    return record;
  }

  #route(now: Millis, message: BrokerMessage): number {
    this.#stats.routed++;
    this.#full.length = 0;
    if (message.retain) {
      if (message.payload.length === 0) {
        // [MQTT-3.3.1-6] [MQTT-3.3.1-7] an empty retained message clears the topic and is not stored.
        this.#setRetained(message.topic, undefined);
      } else {
        // [MQTT-3.3.1-5] replaces the topic's retained message.
        keepMessage(message);
        this.#setRetained(message.topic, message);
      }
    }
    // The sessions that match, once each: the first in `first`, and all of them in `matches` once a second one
    // comes (most messages have one subscriber, which then costs no map).
    let first: SessionRecord | undefined;
    let firstMatch: Match | undefined;
    let matches: Map<SessionRecord, Match> | undefined;
    const shared: [ClientEntry, SharedGroup][] = [];
    for (const entry of this.#tree.matchList(message.topic)) {
      if (entry.kind === "shared") {
        const member = pickMember(entry, message, this.#authorizeDelivery);
        if (member !== undefined) shared.push([member, entry]);
        continue;
      }
      const { record, subscription } = entry;
      // [MQTT-3.8.3-3] No Local: not back to the publisher.
      if (subscription.noLocal && record.clientId === message.publisher) continue;
      const match = record === first ? firstMatch : matches?.get(record);
      if (match === undefined) {
        const added: Match = {
          qos: subscription.qos,
          retainAsPublished: subscription.retainAsPublished,
          identifiers: subscription.identifier === undefined ? undefined : [subscription.identifier],
        };
        if (first === undefined) {
          first = record;
          firstMatch = added;
        } else {
          matches ??= new Map([[first, firstMatch!]]);
          matches.set(record, added);
        }
      } else {
        // [MQTT-3.3.4-2] one copy at the highest QoS; [MQTT-3.3.4-4] with every identifier.
        if (subscription.qos > match.qos) match.qos = subscription.qos;
        if (subscription.retainAsPublished) match.retainAsPublished = true;
        if (subscription.identifier !== undefined) (match.identifiers ??= []).push(subscription.identifier);
      }
    }
    // Deliveries of this turn share encodings; a single one encodes straight into its session's outbox.
    if ((matches?.size ?? (first === undefined ? 0 : 1)) + shared.length > 1) message.encodings = new Map();
    let count = 0;
    if (matches === undefined && first !== undefined) {
      const match = firstMatch!;
      if (this.#deliver(now, first, message, match.qos, match.retainAsPublished, match.identifiers)) count++;
    }
    for (const [record, match] of matches ?? []) {
      // [MQTT-3.3.1-12] [MQTT-3.3.1-13] RETAIN as published only when asked.
      if (this.#deliver(now, record, message, match.qos, match.retainAsPublished, match.identifiers)) count++;
    }
    for (const [member] of shared) {
      const { subscription } = member;
      const ids = subscription.identifier === undefined ? undefined : [subscription.identifier];
      if (this.#deliver(now, member.record, message, subscription.qos, subscription.retainAsPublished, ids)) {
        count++;
      }
    }
    message.encodings = undefined;
    return count;
  }

  #deliver(
    now: Millis,
    record: SessionRecord,
    message: BrokerMessage,
    granted: QoS,
    retainAsPublished: boolean,
    subscriptionIdentifiers: number[] | undefined,
  ): boolean {
    const authorize = this.#authorizeDelivery;
    if (authorize !== undefined && !authorize(record, message)) return false;
    const qos = minQoS(message.qos, granted);
    const retain = retainAsPublished && message.retain;
    const connection = record.connection;
    const state = record.state;
    if (qos > 0 && record.stalled && state.overLimit) {
      // A slow consumer past its timeout: what does not fit is dropped, its publishers are not held back.
      state.countDropped();
      this.#stats.dropped++;
      return false;
    }
    const delivery: Delivery = { message, qos, retain, subscriptionIdentifiers };
    if (connection !== undefined) {
      connection.deliver(now, delivery);
      this.#markDirty(connection);
    } else {
      if (qos === 0 && !this.#queueQoS0) return false;
      if (!state.enqueue(now, delivery)) {
        this.#stats.dropped++;
        return false;
      }
    }
    // Kept beyond the queue's bounds: the publisher's acknowledgement waits for room (see `publish`).
    if (qos > 0 && !record.stalled && state.overLimit) this.#full.push(record);
    this.#stats.delivered++;
    return true;
  }

  /** Holds an acknowledgement back until the session's queue is within its bounds again. */
  #hold(now: Millis, record: SessionRecord, held: HeldAck): void {
    (record.held ??= []).push(held);
    if (record.heldSince === undefined) {
      record.heldSince = now;
      this.#holding.add(record);
      record.state.onRoom = (at) => this.#release(at, record, false);
    }
  }

  /**
   * Sends the acknowledgements a session held back: it has room again, or (`stalled`) it stayed over its
   * bounds past the slow-consumer timeout, and then drops what does not fit until it has room.
   */
  #release(now: Millis, record: SessionRecord, stalled: boolean): void {
    const held = record.held;
    record.held = undefined;
    record.heldSince = undefined;
    this.#holding.delete(record);
    record.stalled = stalled;
    // A stalled session is told when it has room again, to hold its publishers back from then on.
    record.state.onRoom = stalled ? (at) => this.#release(at, record, false) : undefined;
    for (const ack of held ?? []) {
      if (--ack.waiting > 0) continue;
      ack.session.acknowledge(now, ack.packetId, ack.reasonCode);
      this.#markDirty(ack.session);
    }
  }

  #publishWill(now: Millis, record: SessionRecord, will: Will): void {
    const { willDelayInterval: _, ...properties } = will.properties ?? {};
    this.#route(
      now,
      messageFromPublish(
        now,
        {
          type: "publish",
          topic: will.topic,
          payload: will.payload,
          qos: will.qos,
          // [MQTT-3.1.2-14] [MQTT-3.1.2-15] the will's RETAIN flag.
          retain: will.retain,
          dup: false,
          properties,
        },
        record.clientId,
      ),
    );
  }

  #endSession(now: Millis, record: SessionRecord): void {
    this.#unschedule(record);
    if (record.will !== undefined) {
      const will = record.will;
      record.will = undefined;
      record.willAt = undefined;
      this.#publishWill(now, record, will);
    }
    for (const filter of record.subscriptions?.keys() ?? []) this.#removeFromTree(record, filter);
    record.subscriptions = undefined;
    record.state.clear(now);
    record.state.journal = undefined;
    record.expiresAt = undefined;
    if (this.#sessions.get(record.clientId) === record) this.#sessions.delete(record.clientId);
    if (record.stored) {
      record.stored = false;
      this.#journal?.push({ kind: "ended", clientId: record.clientId });
    }
    this.#changedSessions.delete(record);
  }

  #addToTree(record: SessionRecord, filter: string, subscription: SessionSubscription): void {
    const shared = parseSharedSubscription(filter);
    const entry: ClientEntry = { kind: "client", record, subscription };
    if (shared === undefined) {
      this.#tree.add(filter, record.clientId, entry);
      return;
    }
    const key = `\0${shared.group}`;
    let group = this.#tree.get(shared.filter, key) as SharedGroup | undefined;
    if (group === undefined) {
      group = { kind: "shared", members: [], cursor: 0 };
      this.#tree.add(shared.filter, key, group);
    }
    const index = group.members.findIndex((m) => m.record === record);
    if (index === -1) group.members.push(entry);
    else group.members[index] = entry;
  }

  #removeFromTree(record: SessionRecord, filter: string): void {
    const shared = parseSharedSubscription(filter);
    if (shared === undefined) {
      this.#tree.remove(filter, record.clientId);
      return;
    }
    const key = `\0${shared.group}`;
    const group = this.#tree.get(shared.filter, key) as SharedGroup | undefined;
    if (group === undefined) return;
    const index = group.members.findIndex((m) => m.record === record);
    if (index !== -1) group.members.splice(index, 1);
    if (group.members.length === 0) this.#tree.remove(shared.filter, key);
    else if (group.cursor >= group.members.length) group.cursor = 0;
  }
}

/** The earlier of two optional times. */
function earlier(a: Millis | undefined, b: Millis | undefined): Millis | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}

/** A session's next deadline: its will or its expiry. */
function deadline(record: SessionRecord): Millis | undefined {
  return earlier(record.willAt, record.expiresAt);
}

/** The will delay in seconds (MQTT 5), 0 when absent. */
function willDelay(will: Will): number {
  return will.properties?.willDelayInterval ?? 0;
}

/**
 * The next member of a shared group in turn that may read the message, preferring connected ones
 * [MQTT-4.8.2-3]: a member the read rules refuse passes the message on instead of losing it for the group.
 */
function pickMember(
  group: SharedGroup,
  message: BrokerMessage,
  authorize: BrokerMachineOptions["authorizeDelivery"],
): ClientEntry | undefined {
  const members = group.members;
  const count = members.length;
  if (count === 0) return undefined;
  let offline: number | undefined;
  for (let i = 0; i < count; i++) {
    const index = (group.cursor + i) % count;
    const record = members[index].record;
    if (authorize !== undefined && !authorize(record, message)) continue;
    if (record.connection !== undefined) {
      group.cursor = (index + 1) % count;
      return members[index];
    }
    offline ??= index;
  }
  if (offline === undefined) return undefined;
  group.cursor = (offline + 1) % count;
  return members[offline];
}

/** A message as plain data; `copy` copies the payload, else it stays a view. */
function messageSnapshot(now: Millis, message: BrokerMessage, copy: boolean): MessageSnapshot {
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

function messageFromSnapshot(now: Millis, snapshot: MessageSnapshot): BrokerMessage {
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
  if ("packetId" in delivery) {
    snapshot.packetId = delivery.packetId;
    snapshot.released = delivery.released;
  }
  return snapshot;
}

function deliveryFromSnapshot(
  now: Millis,
  snapshot: DeliverySnapshot,
): { message: BrokerMessage; qos: QoS; retain: boolean; subscriptionIdentifiers: number[] | undefined } {
  return {
    message: messageFromSnapshot(now, snapshot.message),
    qos: snapshot.qos,
    retain: snapshot.retain,
    subscriptionIdentifiers: snapshot.subscriptionIdentifiers,
  };
}
