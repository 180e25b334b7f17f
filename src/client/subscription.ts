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
 * ```ts ignore
 * import { connect } from "@x/mqtt";
 * const client = await connect("mqtt://localhost");
 * await using subscription = await client.subscribe("sensors/#");
 * let n = 0;
 * for await (const message of subscription) {
 *   console.log(message.topic, message.text());
 *   if (++n === 3) break;
 * }
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

  /**
   * Created by the client's `subscribe()`.
   *
   * @param owner The client.
   * @param filters The filters.
   * @param reasonCodes The granted reason codes.
   * @param limit How many messages the buffer holds before QoS 0 messages are dropped.
   */
  constructor(
    owner: SubscriptionOwner,
    filters: readonly string[],
    reasonCodes: readonly ReasonCode[],
    limit: number,
  ) {
    this.#owner = owner;
    this.filters = filters;
    this.reasonCodes = reasonCodes;
    this.#limit = limit;
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
      taken();
      waiter({ value: message, done: false });
      return;
    }
    if (this.#queue.length - this.#head >= this.#limit && message.qos === 0) {
      // Drop the oldest QoS 0 message to make room; QoS 1 and 2 are bounded by the receive maximum instead.
      const index = this.#queue.findIndex((q, i) => i >= this.#head && q.message.qos === 0);
      if (index !== -1) {
        const [old] = this.#queue.splice(index, 1);
        old.taken();
        this.#dropped++;
      } else {
        taken();
        this.#dropped++;
        return;
      }
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
    if (error !== undefined) this.#drain();
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter({ value: undefined, done: true });
    }
  }

  #drain(): void {
    for (let i = this.#head; i < this.#queue.length; i++) this.#queue[i].taken();
    this.#queue = [];
    this.#head = 0;
  }

  #next(): Promise<IteratorResult<Message>> {
    if (this.#head < this.#queue.length) {
      const queued = this.#queue[this.#head++];
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      queued.taken();
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
