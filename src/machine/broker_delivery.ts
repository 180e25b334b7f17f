/**
 * The last step of routing: a message handed to one session (its connection, or its offline queue), the
 * sessions with new output, the counters, and the flow control of slow consumers (acknowledgements held back
 * until a queue has room). It never decides who gets a message (the router does) nor what a session is.
 *
 * @module
 */

import type { QoS } from "../codec/packet.ts";
import type { ReasonCode } from "../errors.ts";
import type { BrokerMessage, Delivery } from "./_delivery.ts";
import type { BrokerMachineOptions, BrokerStats } from "./broker_types.ts";
import type { SessionMachine } from "./session_machine.ts";
import { earlier, type HeldAck, type SessionRecord } from "./session_registry.ts";
import type { RouteMatch, Router } from "./router.ts";
import { minQoS } from "./session_state.ts";

import type { Millis } from "./client_machine.ts";

/** Delivers to sessions and holds publishers back for the slow ones; see {@linkcode BrokerMachine.publish}. */
export class BrokerDelivery {
  /** Counters, for {@linkcode BrokerMachine.stats}. */
  readonly stats: BrokerStats = {
    routed: 0,
    delivered: 0,
    deliveredByQos: [0, 0, 0],
    deliveredBytesByQos: [0, 0, 0],
    dropped: 0,
    droppedQueueFull: 0,
    droppedSlowConsumer: 0,
    droppedExpired: 0,
  };
  /** Sessions with new output, in the order they got it, without repeats (`#dirtySet` says who is in). */
  readonly #dirty: SessionMachine[] = [];
  readonly #dirtySet = new Set<SessionMachine>();
  #dirtyIndex = 0;
  readonly #queueQoS0: boolean;
  readonly #slowConsumerTimeout: number;
  readonly #authorize: BrokerMachineOptions["authorizeDelivery"];
  readonly #handOff: BrokerMachineOptions["handOffShared"];
  /** Sessions holding acknowledgements back (their timeout is in `pollTimeout`). */
  readonly #holding = new Set<SessionRecord>();
  /** Whether the current route's publisher can be held back (see `startRoute`). */
  #holdable = true;
  /** Sessions the current route queued a QoS 1 or 2 delivery for beyond their bounds. */
  readonly #full: SessionRecord[] = [];

  /** @param options The broker machine's options: `queueQoS0`, `slowConsumerTimeout`, `authorizeDelivery`. */
  constructor(options: BrokerMachineOptions) {
    this.#queueQoS0 = options.queueQoS0 ?? false;
    this.#slowConsumerTimeout = options.slowConsumerTimeout ?? 30_000;
    this.#authorize = options.authorizeDelivery;
    this.#handOff = options.handOffShared;
  }

  /** Notes a session with new output, for {@linkcode BrokerDelivery.pollSession}. */
  markDirty(session: SessionMachine): void {
    if (this.#dirtySet.has(session)) return;
    this.#dirtySet.add(session);
    this.#dirty.push(session);
  }

  /** Forgets a session's new output: its connection is over. */
  forget(session: SessionMachine): void {
    this.#dirtySet.delete(session);
  }

  /** The next session with new output, as {@linkcode BrokerMachine.pollSession} documents it. */
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
   * A route begins: the sessions it fills beyond their bounds are counted from none. `holdable`: the message is
   * a client's PUBLISH, whose acknowledgement can wait for room; any other (a will, the broker's own, one from
   * another node of a cluster) slows no one down, so it is dropped for a session far over its bounds (see
   * `#beyondReach`).
   */
  startRoute(holdable = true): void {
    this.#full.length = 0;
    this.#holdable = holdable;
  }

  /**
   * Delivers a message to one session (its connection, or its queue while offline), unless the read rules
   * refuse it, it is QoS 0 for an offline session (without `queueQoS0`), or it does not fit.
   *
   * @param shared The shared subscription it goes through, if it does.
   * @returns Whether it was delivered or queued.
   */
  deliver(
    now: Millis,
    record: SessionRecord,
    message: BrokerMessage,
    granted: QoS,
    retainAsPublished: boolean,
    subscriptionIdentifiers: number[] | undefined,
    shared?: string,
  ): boolean {
    const authorize = this.#authorize;
    if (authorize !== undefined && !authorize(record, message)) return false;
    const qos = minQoS(message.qos, granted);
    // [MQTT-3.3.1-12] [MQTT-3.3.1-13] RETAIN as published only when asked.
    const retain = retainAsPublished && message.retain;
    const connection = record.connection;
    const state = record.state;
    if (qos > 0 && state.overLimit && (record.stalled || (!this.#holdable && this.#beyondReach(record)))) {
      // A slow consumer past its timeout, or twice over its bounds for a message no publisher waits for: what
      // does not fit is dropped, no publisher is held back.
      state.countDropped();
      this.stats.dropped++;
      if (record.stalled) this.stats.droppedSlowConsumer++;
      else this.stats.droppedQueueFull++;
      return false;
    }
    const delivery: Delivery = { message, qos, retain, subscriptionIdentifiers, shared };
    if (connection !== undefined) {
      connection.deliver(now, delivery);
      this.markDirty(connection);
    } else {
      if (qos === 0 && !this.#queueQoS0) return false;
      if (!state.enqueue(now, delivery)) {
        this.stats.dropped++;
        this.stats.droppedQueueFull++;
        return false;
      }
    }
    // Kept beyond the queue's bounds: the publisher's acknowledgement waits for room (see `acknowledge`).
    if (qos > 0 && !record.stalled && state.overLimit) this.#full.push(record);
    const stats = this.stats;
    stats.delivered++;
    stats.deliveredByQos[qos]++;
    stats.deliveredBytesByQos[qos] += message.payload.length;
    return true;
  }

  /**
   * Hands the deliveries a session got through shared subscriptions and has not completed to the next member
   * of each one's group in turn, as the router picks it (connected members first, then offline ones' queues),
   * each at that member's subscription; a delivery with no other member to go to stays (MQTT 5 §4.8.2). The
   * session's queue shrinks: acknowledgements it held back go out once it is within its bounds again.
   *
   * @param shared Only the queued deliveries of this shared subscription (its member unsubscribed while its
   *   connection completes what it started [MQTT-3.10.4-3]); default: all of them, in flight and queued (its
   *   connection is gone).
   */
  redistribute(now: Millis, record: SessionRecord, router: Router<SessionRecord>, shared?: string): void {
    record.state.handOverShared(now, shared, shared === undefined, (delivery) => {
      const message = delivery.message;
      const group = delivery.shared as string;
      let match = router.match(message, group)[0];
      // The session may still be a member (offline): past it, to the next one in turn.
      if (match?.session === record) match = router.match(message, group)[0];
      if (match === undefined || match.session === record) {
        return this.#handOff?.(now, message, group) ?? false;
      }
      return this.#handOver(now, match, message, group);
    });
  }

  /**
   * Gives a message taken from another member to the member a router picked, unless the read rules refuse it:
   * it was accepted already, so it is never dropped for being over bounds (a QoS 0 one is not queued for an
   * offline member without `queueQoS0`).
   */
  #handOver(now: Millis, match: RouteMatch<SessionRecord>, message: BrokerMessage, shared: string): boolean {
    const record = match.session;
    const authorize = this.#authorize;
    if (authorize !== undefined && !authorize(record, message)) return false;
    const qos = minQoS(message.qos, match.qos);
    const delivery: Delivery = {
      message,
      qos,
      // [MQTT-3.3.1-12] [MQTT-3.3.1-13] RETAIN as published only when asked.
      retain: match.retainAsPublished && message.retain,
      subscriptionIdentifiers: match.identifiers,
      shared: match.shared ?? shared,
    };
    const connection = record.connection;
    if (connection !== undefined) {
      connection.deliver(now, delivery);
      this.markDirty(connection);
      return true;
    }
    if (qos === 0 && !this.#queueQoS0) return false;
    if (record.state.enqueue(now, delivery)) return true;
    this.stats.dropped++;
    this.stats.droppedQueueFull++;
    return false;
  }

  /**
   * Whether a session's queue is too far over its bounds to take a message no publisher can be slowed down
   * for: twice its bounds while it is offline; while it is connected (a subscriber catching up on a burst from
   * other nodes), 64 times its message bound or 4 times its byte bound, past which it is dropping behind for
   * good rather than catching up (the slow-consumer rules deal with one that stopped reading).
   */
  #beyondReach(record: SessionRecord): boolean {
    return record.connection === undefined ? record.state.over(2, 2) : record.state.over(64, 4);
  }

  /**
   * Sends a new subscription its retained messages (each with the subscription's QoS and identifier), those
   * the read rules let it have, then marks the session.
   */
  deliverRetained(
    now: Millis,
    record: SessionRecord,
    session: SessionMachine,
    retained: readonly [BrokerMessage, QoS, number | undefined][],
  ): void {
    const authorize = this.#authorize;
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
    this.markDirty(session);
  }

  /**
   * Acknowledges a routed PUBLISH now, or, when the route filled sessions beyond their bounds, once they all
   * have room again.
   */
  acknowledge(now: Millis, session: SessionMachine, packetId: number, reasonCode: ReasonCode): void {
    const full = this.#full;
    if (full.length === 0) {
      session.acknowledge(now, packetId, reasonCode);
    } else {
      // Routed: a store keeps its QoS 2 identifier from now on, while the acknowledgement waits.
      session.routed(packetId);
      const held: HeldAck = { session, packetId, reasonCode, waiting: full.length };
      for (const record of full) this.#hold(now, record, held);
      full.length = 0;
    }
    this.markDirty(session);
  }

  /** The earlier of `at` and the first slow-consumer timeout. */
  pollTimeout(at: Millis | undefined): Millis | undefined {
    for (const record of this.#holding) {
      at = earlier(at, (record.heldSince as Millis) + this.#slowConsumerTimeout);
    }
    return at;
  }

  /** Sends the acknowledgements held back for sessions over their bounds past the slow-consumer timeout. */
  handleTimeout(now: Millis): void {
    for (const record of [...this.#holding]) {
      if ((record.heldSince as Millis) + this.#slowConsumerTimeout <= now) this.#release(now, record, true);
    }
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
      this.markDirty(ack.session);
    }
  }
}
