/**
 * The retained messages of a broker: one per topic, found by topic filter, gone when expired. It stores and
 * answers; it never routes, delivers or decides whether a message is retained (the broker machine does).
 *
 * @module
 */

import type { BrokerMessage } from "./_delivery.ts";
import { TopicTree } from "./topic_tree.ts";

import type { Millis } from "./client_machine.ts";

/**
 * Where a broker keeps its retained messages: the seam through which a cluster can share them. The
 * in-process default is {@linkcode LocalRetainedStore}.
 */
export interface RetainedStore {
  /** How many retained messages are stored. */
  readonly size: number;
  /** The retained message of a topic, expired or not. */
  get(topic: string): BrokerMessage | undefined;
  /** Sets (`message`) or clears (`undefined`) the retained message of a topic [MQTT-3.3.1-5] [MQTT-3.3.1-6]. */
  set(topic: string, message: BrokerMessage | undefined): void;
  /**
   * Visits the retained messages whose topics match a topic filter, then clears those that expired by `now`
   * without visiting them [MQTT-3.3.2-5].
   */
  match(now: Millis, filter: string, visit: (message: BrokerMessage) => void): void;
  /** Every retained message, expired or not. */
  values(): IterableIterator<BrokerMessage>;
}

/**
 * The in-process {@linkcode RetainedStore}: a map by topic, and the same messages by topic level so that a new
 * subscription finds its matches without a scan.
 */
export class LocalRetainedStore implements RetainedStore {
  readonly #byTopic = new Map<string, BrokerMessage>();
  readonly #tree = new TopicTree<BrokerMessage>();
  readonly #onChange: ((topic: string) => void) | undefined;

  /** @param onChange Told each topic whose retained message was set or cleared (the journal). */
  constructor(onChange?: (topic: string) => void) {
    this.#onChange = onChange;
  }

  get size(): number {
    return this.#byTopic.size;
  }

  get(topic: string): BrokerMessage | undefined {
    return this.#byTopic.get(topic);
  }

  set(topic: string, message: BrokerMessage | undefined): void {
    if (message === undefined) {
      if (!this.#byTopic.delete(topic)) return;
      this.#tree.remove(topic, "");
    } else {
      this.#byTopic.set(topic, message);
      this.#tree.add(topic, "", message);
    }
    this.#onChange?.(topic);
  }

  match(now: Millis, filter: string, visit: (message: BrokerMessage) => void): void {
    const expired: string[] = [];
    this.#tree.matchFilter(filter, (message) => {
      // [MQTT-3.3.2-5] an expired retained message is not sent, and is gone.
      if (message.expiresAt !== undefined && message.expiresAt <= now) expired.push(message.topic);
      else visit(message);
    });
    for (const topic of expired) this.set(topic, undefined);
  }

  values(): IterableIterator<BrokerMessage> {
    return this.#byTopic.values();
  }
}
