/**
 * A subscription of the async client: an `AsyncIterable` of the messages that match its filters.
 *
 * @module
 */

import type { ReasonCode } from "../errors.ts";
import type { Message } from "./message.ts";

/** A message waiting in a subscription's buffer, with what to do once it is taken. */
interface Queued {
  message: Message;
  taken: () => void;
}

/** What a subscription needs from its client; kept minimal so it can be tested alone. */
export interface SubscriptionOwner {
  /** Ends the subscription on the client (UNSUBSCRIBE when no other subscription needs its filters). */
  unsubscribe(subscription: Subscription): Promise<void>;
}

/**
 * Messages matching a subscription's filters, in arrival order. Iterate it with `for await`; the iteration ends
 * when the subscription ends (unsubscribe, client closed). QoS 1 and 2 messages are acknowledged to the
 * server only when taken, so a slow consumer slows the server down; QoS 0 messages beyond the buffer limit are
 * dropped, oldest first, and counted in {@linkcode Subscription.dropped}.
 *
 * @example Read three messages, then leave
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker();
 * const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await connect(`mqtt://127.0.0.1:${port}`);
 * {
 *   await using subscription = await client.subscribe("sensors/#"); // unsubscribes at the end of the block
 *   for (const n of [1, 2, 3]) await client.publish(`sensors/${n}`, `${20 + n}`);
 *   const seen: string[] = [];
 *   for await (const message of subscription) {
 *     seen.push(`${message.topic} ${message.text()}`);
 *     if (seen.length === 3) break;
 *   }
 *   assert.deepEqual(seen, ["sensors/1 21", "sensors/2 22", "sensors/3 23"]);
 * }
 * await client.close();
 * await broker.close();
 * ```
 */
export class Subscription implements AsyncIterable<Message> {
  /** The filters it subscribed to. */
  readonly filters: readonly string[];
  /** The reason code the server granted for each filter (the granted QoS, or a failure). */
  readonly reasonCodes: readonly ReasonCode[];
  readonly #owner: SubscriptionOwner;
  readonly #limit: number;
  #queue: Queued[] = [];
  #head = 0;
  #waiter: ((result: IteratorResult<Message>) => void) | undefined;
  #ended = false;
  #error: unknown;
  #dropped = 0;
  #room: { promise: Promise<void>; resolve: () => void } | undefined;
  /** With `manualAck`: the acknowledgements of messages taken, until {@linkcode Subscription.ack}. */
  readonly #unacked: Map<Message, () => void> | undefined;

  /**
   * Created by the client's `subscribe()`.
   *
   * @param owner The client.
   * @param filters The filters.
   * @param reasonCodes The granted reason codes.
   * @param limit How many messages the buffer holds before the client pauses reading (and, after a while,
   *   drops its oldest QoS 0 messages).
   * @param manualAck Whether QoS 1 and 2 messages wait for {@linkcode Subscription.ack} (`SubscribeOptions`).
   */
  constructor(
    owner: SubscriptionOwner,
    filters: readonly string[],
    reasonCodes: readonly ReasonCode[],
    limit: number,
    manualAck = false,
  ) {
    this.#owner = owner;
    this.filters = filters;
    this.reasonCodes = reasonCodes;
    this.#limit = limit;
    if (manualAck) this.#unacked = new Map();
  }

  /**
   * With `manualAck`: acknowledges a message this subscription handed out, once the application is done with
   * it. Nothing happens for a QoS 0 message, one already acknowledged, or without `manualAck`.
   *
   * @param message The message.
   */
  ack(message: Message): void {
    const taken = this.#unacked?.get(message);
    if (taken === undefined) return;
    this.#unacked!.delete(message);
    taken();
  }

  /** With `manualAck`: how many messages were taken and not yet acknowledged. */
  get unacknowledged(): number {
    return this.#unacked?.size ?? 0;
  }

  /** Hands a message out: acknowledged now, or kept for `ack` with `manualAck`. */
  #take(message: Message, taken: () => void): void {
    if (this.#unacked !== undefined && message.qos > 0) this.#unacked.set(message, taken);
    else taken();
  }

  /** How many QoS 0 messages were dropped because the consumer fell behind. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Whether the subscription has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Hands a message to the subscription (called by the client).
   *
   * @param message The message.
   * @param taken Called once the consumer takes it, or when it is dropped or the subscription ends.
   */
  push(message: Message, taken: () => void): void {
    if (this.#ended) {
      taken();
      return;
    }
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      this.#take(message, taken);
      waiter({ value: message, done: false });
      return;
    }
    this.#queue.push({ message, taken });
  }

  /**
   * Ends the iteration (called by the client); buffered messages are still handed out first unless `error`.
   *
   * @param error Why it ended, if not normally: the iterator then throws it.
   */
  end(error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#signalRoom();
    if (error !== undefined) this.#drain();
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter({ value: undefined, done: true });
    }
  }

  #drain(): void {
    for (let i = this.#head; i < this.#queue.length; i++) this.#queue[i].taken();
    // Those handed out and not acknowledged would otherwise hold back every acknowledgement after them.
    for (const taken of this.#unacked?.values() ?? []) taken();
    this.#unacked?.clear();
    this.#queue = [];
    this.#head = 0;
  }

  /**
   * Drops the oldest QoS 0 messages until the buffer holds no more than its limit (called by the client when
   * the consumer made no room for a while). QoS 1 and 2 messages stay: the receive maximum bounds them.
   */
  shed(): void {
    let excess = this.#queue.length - this.#head - this.#limit;
    if (excess <= 0) return;
    const kept: Queued[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const queued = this.#queue[i];
      if (excess > 0 && queued.message.qos === 0) {
        excess--;
        this.#dropped++;
        queued.taken();
      } else kept.push(queued);
    }
    this.#queue = kept;
    this.#head = 0;
  }

  /** Whether the buffer holds as many messages as it may (the client then pauses reading for a while). */
  get full(): boolean {
    return !this.#ended && this.#queue.length - this.#head >= this.#limit;
  }

  /**
   * Resolves once the buffer is no longer full (called by the client).
   *
   * @returns Resolves when a message was taken or the subscription ended.
   */
  room(): Promise<void> {
    if (!this.full) return Promise.resolve();
    if (this.#room === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => resolve = r);
      this.#room = { promise, resolve };
    }
    return this.#room.promise;
  }

  #signalRoom(): void {
    const room = this.#room;
    if (room === undefined || this.full) return;
    this.#room = undefined;
    room.resolve();
  }

  #next(): Promise<IteratorResult<Message>> {
    if (this.#head < this.#queue.length) {
      const queued = this.#queue[this.#head++];
      if (this.#room !== undefined) this.#signalRoom();
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      this.#take(queued.message, queued.taken);
      return Promise.resolve({ value: queued.message, done: false });
    }
    if (this.#ended) {
      if (this.#error !== undefined) return Promise.reject(this.#error);
      return Promise.resolve({ value: undefined, done: true });
    }
    if (this.#waiter !== undefined) {
      return Promise.reject(new Error("Cannot read a subscription twice at once"));
    }
    return new Promise((resolve) => this.#waiter = resolve);
  }

  /**
   * Iterates the messages. Breaking out of the loop does not unsubscribe; use
   * {@linkcode Subscription.unsubscribe} or `await using`.
   *
   * @returns The iterator.
   */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: () => this.#next(),
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }

  /**
   * Leaves: sends UNSUBSCRIBE for the filters no other subscription of the client uses, and ends the iteration.
   *
   * @returns Resolves once the server acknowledged (or at once when nothing had to be sent).
   */
  async unsubscribe(): Promise<void> {
    if (this.#ended) return;
    this.end();
    this.#drain();
    await this.#owner.unsubscribe(this);
  }

  /** Unsubscribes, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.unsubscribe();
  }
}
