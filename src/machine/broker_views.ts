/**
 * Read-only views of a `BrokerMachine`'s sessions and retained messages, for an operator: the
 * totals `$SYS` and the metrics show, and the lists an admin API answers. They read in place and change
 * nothing; each takes time in the number of sessions (or retained messages), never of queued messages.
 *
 * @module
 */

import type { QoS } from "../codec/packet.ts";
import type { SessionSummary } from "./broker_types.ts";
import type { RetainedStore } from "./retained_store.ts";
import type { SessionRecord, SessionRegistry } from "./session_registry.ts";

/** The views of one machine (`BrokerMachine.views`): they read its state and change nothing. */
export class BrokerViews {
  readonly #sessions: SessionRegistry;
  readonly #retained: RetainedStore;

  /**
   * Made by the machine.
   *
   * @param sessions The machine's sessions.
   * @param retained Its retained messages.
   */
  constructor(sessions: SessionRegistry, retained: RetainedStore) {
    this.#sessions = sessions;
    this.#retained = retained;
  }

  /**
   * What the sessions hold, connected or not: their queued messages (not in flight) and those messages'
   * payload bytes, and their subscriptions.
   *
   * @returns The totals.
   *
   * @example A broker without sessions
   * ```ts
   * import { BrokerMachine } from "@x/mqtt/machine";
   * const broker = new BrokerMachine();
   * console.log(broker.views.sessionTotals()); // { queuedMessages: 0, queuedBytes: 0, subscriptions: 0 }
   * ```
   */
  sessionTotals(): { queuedMessages: number; queuedBytes: number; subscriptions: number } {
    let queuedMessages = 0;
    let queuedBytes = 0;
    let subscriptions = 0;
    for (const record of this.#sessions.values()) {
      const state = record.state;
      queuedMessages += state.queuedCount;
      queuedBytes += state.queuedBytes;
      subscriptions += record.subscriptions?.size ?? 0;
    }
    return { queuedMessages, queuedBytes, subscriptions };
  }

  /**
   * Every session's figures, cheap enough to be asked every second.
   *
   * @returns One summary per session, connected or not.
   */
  *sessionSummaries(): IterableIterator<SessionSummary> {
    for (const record of this.#sessions.values()) yield summary(record);
  }

  /**
   * One session's figures.
   *
   * @param clientId The session's client identifier.
   * @returns Its summary, or `undefined` when there is no such session.
   */
  sessionSummary(clientId: string): SessionSummary | undefined {
    const record = this.#sessions.get(clientId);
    return record === undefined ? undefined : summary(record);
  }

  /** How many sessions there are, connected or not. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /**
   * The retained messages; their payloads are views, valid until the next call into the machine.
   *
   * @returns Every retained message, expired or not, in the order their topics were first retained.
   */
  *retainedMessages(): IterableIterator<{ topic: string; qos: QoS; payload: Uint8Array }> {
    for (const message of this.#retained.values()) {
      yield { topic: message.topic, qos: message.qos, payload: message.payload };
    }
  }
}

function summary(record: SessionRecord): SessionSummary {
  const state = record.state;
  return {
    clientId: record.clientId,
    username: record.username,
    connected: record.connection !== undefined,
    expiryInterval: record.expiryInterval,
    subscriptions: [...record.subscriptions?.keys() ?? []],
    queued: state.queuedCount,
    queuedBytes: state.queuedBytes,
    inflight: state.inflight.size,
  };
}
