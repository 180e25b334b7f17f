/**
 * The routing state a broker shares among its connections, sans-IO: the façade that composes the session
 * registry, the router, the retained store, the delivery step and the journal, and answers the sessions'
 * events with them (attach, publish, subscribe, detach, time). It holds no state of its own: each rule's data
 * lives in one of those parts.
 *
 * @module
 */

import type {
  ConnAckProperties,
  PublishPacket,
  QoS,
  SubscribePacket,
  UnsubscribePacket,
  Will,
} from "../codec/packet.ts";
import { topicFilterProblem } from "../codec/topic.ts";
import { ReasonCode } from "../errors.ts";
import { type BrokerMessage, keepMessage, messageFromPublish, willPublish } from "./_delivery.ts";
import type { SessionMachine } from "./session_machine.ts";
import { OWNER } from "./_owner.ts";
import { minQoS } from "./session_state.ts";
import { BrokerJournal, exportState, messageFromSnapshot, restoreSession } from "./broker_journal.ts";
import type {
  AttachOptions,
  BrokerChange,
  BrokerMachineOptions,
  BrokerSnapshot,
  BrokerStats,
  SessionSubscription,
} from "./broker_types.ts";
import { LocalRetainedStore, type RetainedStore } from "./retained_store.ts";
import { deeperThan, LocalRouter, type Router } from "./router.ts";
import { BrokerDelivery } from "./broker_delivery.ts";
import { BrokerClusterSide } from "./broker_cluster.ts";
import { BrokerViews } from "./broker_views.ts";
import {
  LocalSessionRegistry,
  type SessionRecord,
  type SessionRegistry,
  willDelay,
} from "./session_registry.ts";

import type { Millis } from "./client_machine.ts";

export type {
  AttachOptions,
  BrokerChange,
  BrokerMachineOptions,
  BrokerSnapshot,
  BrokerStats,
  DeliverySnapshot,
  MessageSnapshot,
  SessionIdentity,
  SessionMeta,
  SessionSnapshot,
  SessionSubscription,
  SessionSummary,
} from "./broker_types.ts";

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
  readonly #sessions: SessionRegistry;
  readonly #router: Router<SessionRecord>;
  readonly #retained: RetainedStore;
  /** The journal, when on. */
  readonly #journal: BrokerJournal | undefined;
  readonly #maxTopicLevels: number;
  readonly #delivery: BrokerDelivery;
  readonly #forward: BrokerMachineOptions["forward"];
  /**
   * What a node of a cluster does with this machine beyond what one broker does: route what other nodes
   * published, set their retained messages, hand sessions over. See {@linkcode BrokerClusterSide}.
   */
  readonly cluster: BrokerClusterSide;
  readonly #onSessionEnded: BrokerMachineOptions["onSessionEnded"];
  /** Read-only views of the sessions and retained messages, for an operator (`$SYS`, metrics, an admin API). */
  readonly views: BrokerViews;

  /**
   * Creates an empty broker state.
   *
   * @param options Session expiry and queue limits.
   */
  constructor(options: BrokerMachineOptions = {}) {
    this.#maxTopicLevels = options.maxTopicLevels ?? 128;
    this.#delivery = new BrokerDelivery(options);
    this.#forward = options.forward;
    this.#onSessionEnded = options.onSessionEnded;
    const journal = this.#journal = options.journal ? new BrokerJournal() : undefined;
    this.#sessions = new LocalSessionRegistry({ ...options, stats: this.#delivery.stats });
    this.#router = new LocalRouter<SessionRecord>({
      authorize: options.authorizeDelivery,
      sharedGroups: options.sharedGroups,
      onInterest: options.onInterest,
    });
    this.#retained = new LocalRetainedStore(
      journal === undefined ? undefined : (topic) => journal.retained(topic),
    );
    this.views = new BrokerViews(this.#sessions, this.#retained);
    this.cluster = new BrokerClusterSide({
      sessions: this.#sessions,
      router: this.#router,
      retained: this.#retained,
      delivery: this.#delivery,
      journal,
      route: (now, message) => this.#route(now, message, false),
      takeOver: (now, record, connection) => this.#takeOver(now, record, connection),
      publishWill: (now, record, will) => this.#publishWill(now, record, will),
      endSession: (now, record, ended) => this.#endSession(now, record, ended),
    });
  }

  /** Counters of routed and delivered messages. */
  get stats(): Readonly<BrokerStats> {
    return this.#delivery.stats;
  }

  /** How many sessions exist, connected or not. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** How many retained messages are stored. */
  get retainedCount(): number {
    return this.#retained.size;
  }

  /** Whether the broker holds a session for a client identifier. */
  hasSession(clientId: string): boolean {
    return this.#sessions.get(clientId) !== undefined;
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
    const sessions = this.#sessions;
    const properties: ConnAckProperties = { ...options.properties };
    let clientId = connect.clientId;
    if (clientId === "") {
      clientId = sessions.assignClientId(properties.assignedClientIdentifier);
      // [MQTT-3.2.2-16] the assigned identifier goes in the CONNACK (MQTT 5); older clients never see it.
      properties.assignedClientIdentifier = clientId;
    }
    const expiry = sessions.grantExpiry(connect, properties);
    let record = sessions.get(clientId);
    if (record !== undefined) {
      const old = record.connection;
      if (old !== undefined && old !== session) {
        // [MQTT-3.1.4-3] the existing connection is taken over.
        const will = this.#takeOver(now, record, old);
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
    record ??= sessions.create(clientId, expiry);
    sessions.connect(record, session, connect.username, expiry);
    this.#journal?.track(record);
    session.accept(now, {
      sessionPresent,
      state: record.state,
      properties: connect.protocolVersion === 5 ? properties : { assignedClientIdentifier: clientId },
    });
    this.#delivery.markDirty(session);
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
    return this.#route(now, messageFromPublish(now, packet, this.#publisherOf(from)), true);
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
   * @param forward `false` for a message the driver already handed to a cluster (stored before it is
   *   acknowledged): the `forward` option is told it was sent. @default true
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
    forward = true,
  ): number {
    this.#delivery.startRoute(); // what the broker's own messages routed last left
    const message = reasonCode < 0x80
      ? messageFromPublish(now, packet, this.#publisherOf(session))
      : undefined;
    const count = message === undefined ? 0 : this.#route(now, message, true, forward, true);
    if (packet.packetId !== undefined) this.#delivery.acknowledge(now, session, packet.packetId, reasonCode);
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
      if (session.bridge) subscription.noLocal = subscription.retainAsPublished = true; // see ConnectPacket.bridge
      if (identifier !== undefined) subscription.identifier = identifier;
      const subscriptions = record.subscriptions ??= new Map();
      const existed = subscriptions.has(filter);
      subscriptions.set(filter, subscription);
      this.#router.add(record, filter, subscription);
      codes.push(qos as ReasonCode);
      const shared = filter.startsWith("$share/");
      const handling = requested.retainHandling;
      if (!shared && (handling === 0 || (handling === 1 && !existed))) {
        this.#retained.match(now, filter, (message) => retained.push([message, qos, identifier]));
      }
    }
    session.grant(now, packet.packetId, codes);
    this.#journal?.changed(record);
    this.#delivery.deliverRetained(now, record, session, retained);
    return codes;
  }

  /**
   * Removes the subscriptions of an UNSUBSCRIBE and answers it with an UNSUBACK [MQTT-3.10.4-4]: 0x00 per
   * filter removed, 0x11 where none existed [MQTT-3.10.4-5]. Deliveries already started complete
   * [MQTT-3.10.4-3]; those of a shared subscription still queued go to another member of its group.
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
        this.#router.remove(record, filter);
        if (filter.startsWith("$share/")) this.#delivery.redistribute(now, record, this.#router, filter);
        codes.push(ReasonCode.Success);
      } else {
        codes.push(ReasonCode.NoSubscriptionExisted);
      }
    }
    session.acknowledgeUnsubscribe(now, packet.packetId, codes);
    this.#journal?.changed(record);
    this.#delivery.markDirty(session);
    return codes;
  }

  /**
   * Tells the broker a session's connection is over (its `closed` event): its will is published now, or
   * after its delay [MQTT-3.1.2-8], unless the client disconnected normally; the session ends now when its
   * expiry interval is 0 [MQTT-3.1.2-23], or waits for its expiry [MQTT-4.1.0-2]. What it got through shared
   * subscriptions and has not completed goes to other members of their groups (MQTT 5 §4.8.2), as on a
   * takeover and when a session ends. A session that was taken over or never attached is ignored.
   *
   * @param now The current time.
   * @param session The session.
   */
  detach(now: Millis, session: SessionMachine): void {
    const record = this.#sessions.attached(session);
    if (record !== undefined) session[OWNER] = undefined;
    this.#delivery.forget(session);
    if (record === undefined || record.connection !== session) return;
    const will = this.#sessions.release(now, record, session);
    this.#delivery.redistribute(now, record, this.#router); // MQTT 5 §4.8.2: to the group's other members
    if (will !== undefined) this.#publishWill(now, record, will);
    if (record.expiryInterval === 0) this.#endSession(now, record);
    else this.#journal?.changed(record);
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
    this.#delivery.handleTimeout(now);
    this.#sessions.expire(now, {
      will: (record, will) => {
        this.#journal?.changed(record);
        this.#publishWill(now, record, will);
      },
      expired: (record) => this.#endSession(now, record),
    });
  }

  /**
   * The earliest will delay, session expiry or slow-consumer timeout.
   *
   * @returns When to call {@linkcode BrokerMachine.handleTimeout}, or `undefined` when nothing waits.
   */
  pollTimeout(): Millis | undefined {
    return this.#delivery.pollTimeout(this.#sessions.pollTimeout());
  }

  /**
   * The next session whose output changed because of the broker (a delivery, a takeover) since it was last
   * returned: flush it (`pollTransmit`, `pollEvent`, `pollTimeout`).
   *
   * @returns The session, or `undefined` when there are no more.
   */
  pollSession(): SessionMachine | undefined {
    return this.#delivery.pollSession();
  }

  /**
   * The state as plain data, with times relative to `now`, for persistence.
   *
   * @param now The current time.
   * @returns Every session and every retained message. A connected session is saved as if its connection had
   *   just closed without DISCONNECT: its expiry and its will's delay start when the snapshot is restored.
   */
  exportState(now: Millis): BrokerSnapshot {
    return exportState(now, this.#sessions, this.#retained);
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
    return journal.poll(now, this.#sessions, this.#retained);
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
    const sessions = this.#sessions;
    for (const m of snapshot.retained) this.#retained.set(m.topic, messageFromSnapshot(now, m));
    for (const s of snapshot.sessions) {
      const existing = sessions.get(s.clientId);
      if (existing !== undefined) {
        const connection = existing.connection;
        // Replaced under a live connection: it is taken over, as by a new CONNECT.
        if (connection !== undefined) this.#takeOver(now, existing, connection);
        this.#endSession(now, existing);
      }
      const record = restoreSession(now, s, sessions, this.#router);
      this.#journal?.track(record);
    }
  }

  // ---------------------------------------------------------------------------------------------- internals

  /** Takes a session from its live connection, which is told so (DISCONNECT 0x8E); returns that one's will. */
  #takeOver(now: Millis, record: SessionRecord, connection: SessionMachine): Will | undefined {
    this.#sessions.disconnect(record);
    this.#delivery.redistribute(now, record, this.#router); // MQTT 5 §4.8.2: to the group's other members
    const will = connection.will;
    connection.disconnect(now, ReasonCode.SessionTakenOver);
    this.#delivery.markDirty(connection);
    return will;
  }

  #recordOf(session: SessionMachine, what: string): SessionRecord | undefined {
    // A session that closed since its event (taken over, say) has nothing left to answer.
    if (session.state === "closed") return undefined;
    const record = this.#sessions.attached(session);
    if (record === undefined || record.connection !== session) {
      throw new Error(`Cannot ${what}: the session is not attached`);
    }
    return record;
  }

  /** The client identifier a session publishes as (for No Local); `undefined` for the broker's own. */
  #publisherOf(from: SessionMachine | undefined): string | undefined {
    return from === undefined ? undefined : this.#sessions.attached(from)?.clientId ?? from.clientId;
  }

  /**
   * Routes a message. `local`: published here, so it may set the retained message and the `forward` option is
   * told, else it came from another node of a cluster; `forward`: it is still to be sent to the cluster;
   * `holdable`: a client's PUBLISH, whose acknowledgement can wait for full queues (see `publish`).
   */
  #route(now: Millis, message: BrokerMessage, local: boolean, forward = local, holdable = false): number {
    const delivery = this.#delivery;
    delivery.stats.routed++;
    delivery.startRoute(holdable);
    if (local && this.#forward !== undefined) this.#forward(now, message, !forward);
    if (local && message.retain) {
      if (message.payload.length === 0) {
        // [MQTT-3.3.1-6] [MQTT-3.3.1-7] an empty retained message clears the topic and is not stored.
        this.#retained.set(message.topic, undefined);
      } else {
        // [MQTT-3.3.1-5] replaces the topic's retained message.
        keepMessage(message);
        this.#retained.set(message.topic, message);
      }
    }
    const matches = this.#router.match(message);
    // Deliveries of this turn share encodings; a single one encodes straight into its session's outbox.
    if (matches.length > 1) message.encodings = new Map();
    let count = 0;
    for (const { session, qos, retainAsPublished, identifiers, shared } of matches) {
      if (delivery.deliver(now, session, message, qos, retainAsPublished, identifiers, shared)) count++;
    }
    message.encodings = undefined;
    return count;
  }

  #publishWill(now: Millis, record: SessionRecord, will: Will): void {
    this.#route(now, messageFromPublish(now, willPublish(will), record.clientId), true);
  }

  /** Ends a session: its will, subscriptions and state; `ended`: it is over, not moved to another node. */
  #endSession(now: Millis, record: SessionRecord, ended = true): void {
    this.#sessions.unschedule(record);
    const will = this.#sessions.takeWill(record);
    if (will !== undefined) this.#publishWill(now, record, will);
    for (const filter of record.subscriptions?.keys() ?? []) this.#router.remove(record, filter);
    record.subscriptions = undefined;
    // A session moving to another node takes its deliveries along.
    if (ended) this.#delivery.redistribute(now, record, this.#router);
    record.state.clear(now);
    record.state.journal = undefined;
    record.expiresAt = undefined;
    this.#sessions.remove(record);
    this.#journal?.ended(record);
    if (ended) this.#onSessionEnded?.(record.clientId);
  }
}
