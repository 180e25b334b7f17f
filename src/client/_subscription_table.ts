/**
 * The async client's live subscriptions, by the machine's subscription number: delivers each received message to
 * the subscriptions it matched, acknowledges it once all of them took it, and pauses reading while one is full.
 * It sends nothing on the wire (no SUBSCRIBE, no UNSUBSCRIBE); the client does.
 *
 * @module
 */

import type { PublishPacket } from "../codec/packet.ts";
import type { MqttError } from "../errors.ts";
import { Message } from "./message.ts";
import type { Subscription } from "./subscription.ts";

/** The longest the read loop waits for a full subscription to make room before reading (and dropping) on. */
const MAX_READ_PAUSE_MS = 1000;

/**
 * How long messages of a resumed session that match no subscription yet are held for the application's
 * `subscribe()` by default (`ClientOptions.unclaimedHoldMs`, {@linkcode SubscriptionTable.holdUnclaimed}).
 */
export const CLAIM_WINDOW_MS = 10_000;

/** Subscriptions by number and numbers by subscription. */
export class SubscriptionTable {
  readonly #byNumber = new Map<number, Subscription>();
  readonly #byObject = new Map<Subscription, number>();
  readonly #acknowledge: (packetId: number) => void;
  /** Messages held for a subscription to come, while the claim window is open; reading pauses past the limit. */
  #unclaimed: PublishPacket[] = [];
  /**
   * Subscriptions whose `subscribe()` awaits the SUBACK: their consumer cannot take anything yet, and the SUBACK
   * may be behind the messages in the stream, so reading never pauses for them (a resumed session's backlog
   * claimed by a new subscription filled it, and reading paused a second per chunk until the SUBACK came).
   */
  readonly #awaitingAck = new Set<Subscription>();
  #holding = false;
  #holdLimit = 0;
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** Read loops waiting while `#holdLimit` messages are held. */
  #claimWaiters: (() => void)[] = [];
  #released = 0;

  /** @param acknowledge Acknowledges a QoS 1 or 2 message once every subscription it went to took it. */
  constructor(acknowledge: (packetId: number) => void) {
    this.#acknowledge = acknowledge;
  }

  /** Adds a subscription under the machine's number for it. */
  add(number: number, subscription: Subscription, awaitingAck = false): void {
    this.#byNumber.set(number, subscription);
    this.#byObject.set(subscription, number);
    if (awaitingAck) this.#awaitingAck.add(subscription);
  }

  /** The broker answered a subscription's SUBACK: its consumer can take what it holds from now on. */
  acknowledged(subscription: Subscription): void {
    this.#awaitingAck.delete(subscription);
  }

  /** The subscription of a number. */
  get(number: number): Subscription | undefined {
    return this.#byNumber.get(number);
  }

  /** The number of a subscription, while it is in the table. */
  numberOf(subscription: Subscription): number | undefined {
    return this.#byObject.get(subscription);
  }

  /** Takes a subscription out of the table (it does not end it). */
  forget(subscription: Subscription): void {
    const number = this.#byObject.get(subscription);
    if (number === undefined) return;
    this.#byObject.delete(subscription);
    this.#byNumber.delete(number);
    this.#awaitingAck.delete(subscription);
  }

  /**
   * Opens the claim window: a session the broker resumed may send its queued messages right after CONNACK,
   * before the application could call `subscribe()` on a new client. For `ms` milliseconds, messages that match
   * no subscription are held, not acknowledged, and handed to the first subscription made that matches them
   * (see {@linkcode SubscriptionTable.claim}); those left when it closes are acknowledged and counted in
   * {@linkcode SubscriptionTable.released}.
   *
   * @param ms How long it stays open.
   * @param limit The most messages held: past it, reading pauses until a subscription takes some or the window
   *   closes.
   */
  holdUnclaimed(ms: number, limit: number): void {
    this.#holding = true;
    this.#holdLimit = limit;
    this.#holdTimer = setTimeout(() => this.#closeWindow(), ms);
  }

  /** Messages of a resumed session that no subscription claimed within the claim window. */
  get released(): number {
    return this.#released;
  }

  /**
   * Hands the held messages a new subscription matches to it.
   *
   * @param route The local subscriptions a message matches now (the machine's routing).
   */
  claim(route: (packet: PublishPacket) => readonly number[]): void {
    if (this.#unclaimed.length === 0) return;
    const left: PublishPacket[] = [];
    for (const packet of this.#unclaimed) {
      const numbers = route(packet);
      if (numbers.some((n) => this.#byNumber.has(n))) this.deliver(packet, numbers);
      else left.push(packet);
    }
    this.#unclaimed = left;
    if (left.length < this.#holdLimit) this.#wakeReader();
  }

  /** Lets a read loop paused for held messages go on. */
  #wakeReader(): void {
    const waiters = this.#claimWaiters;
    this.#claimWaiters = [];
    for (const waiter of waiters) waiter();
  }

  #closeWindow(): void {
    clearTimeout(this.#holdTimer);
    this.#holding = false;
    const held = this.#unclaimed;
    this.#unclaimed = [];
    this.#released += held.length;
    for (const packet of held) if (packet.packetId !== undefined) this.#acknowledge(packet.packetId);
    this.#wakeReader();
  }

  /** Ends every subscription (with the error, if any) and empties the table. */
  endAll(error: MqttError | undefined): void {
    clearTimeout(this.#holdTimer);
    this.#holding = false;
    this.#unclaimed = [];
    this.#wakeReader();
    for (const subscription of this.#byNumber.values()) subscription.end(error);
    this.#byNumber.clear();
    this.#byObject.clear();
  }

  /**
   * Hands a received message to the subscriptions it matched; a QoS 1 or 2 message is acknowledged once each
   * of them took it (at once when none is left).
   *
   * @param packet The PUBLISH.
   * @param numbers The numbers of the subscriptions it matched.
   */
  deliver(packet: PublishPacket, numbers: readonly number[]): void {
    const packetId = packet.packetId;
    const targets = numbers.map((n) => this.#byNumber.get(n)).filter((s) => s !== undefined);
    let waiting = targets.length;
    const acknowledge = () => {
      if (packetId === undefined) return;
      this.#acknowledge(packetId);
    };
    if (waiting === 0) {
      // Past the limit, the read loop waits (`room`) rather than let go of a message it holds for nobody yet.
      if (this.#holding) this.#unclaimed.push(packet);
      else acknowledge();
      return;
    }
    const message = new Message(packet);
    for (const subscription of targets) {
      subscription.push(message, () => {
        if (--waiting === 0) acknowledge();
      });
    }
  }

  /** Resumes a read loop paused for a full subscription once it has room, or after `MAX_READ_PAUSE_MS`. */
  async room(): Promise<void> {
    if (this.#holding && this.#unclaimed.length >= this.#holdLimit) {
      await new Promise<void>((resolve) => this.#claimWaiters.push(resolve));
    }
    for (const subscription of this.#byNumber.values()) {
      if (!subscription.full || this.#awaitingAck.has(subscription)) continue;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const roomy = await Promise.race([
        subscription.room().then(() => true),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), MAX_READ_PAUSE_MS)),
      ]);
      clearTimeout(timer);
      // A consumer that made no room for that long loses its oldest QoS 0 messages rather than stall reading.
      if (!roomy) { for (const s of this.#byNumber.values()) s.shed(); }
      return;
    }
  }
}
