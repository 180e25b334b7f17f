/**
 * The offline queue (the options call it the outbox): publishes made while no connection is up, kept in order
 * up to a limit and handed back when a connection opens. It never publishes anything itself; the client does,
 * with what {@linkcode OfflineQueue.drain} hands it.
 *
 * @module
 */

import { MqttError, ReasonCode } from "../errors.ts";
import type { PublishOptions } from "./client_options.ts";
import type { Waiter } from "./_waiter.ts";

/** A publish waiting for a connection. */
export interface QueuedPublish {
  topic: string;
  payload: Uint8Array;
  options: PublishOptions;
  queuedAt: number;
  waiter: Waiter<void>;
  /** Removes the listener that takes the entry out of the queue when its signal aborts. */
  unlisten?: () => void;
}

/** Publishes waiting for a connection, oldest first. */
export class OfflineQueue {
  readonly #options: { readonly outboxLimit?: number; readonly outboxOverflow?: "reject" | "drop-oldest" };
  #entries: QueuedPublish[] = [];

  /**
   * @param options The client's options: `outboxLimit` (default 1,000) and `outboxOverflow` (default
   *   `"reject"`).
   */
  constructor(
    options: { readonly outboxLimit?: number; readonly outboxOverflow?: "reject" | "drop-oldest" },
  ) {
    this.#options = options;
  }

  /**
   * Queues a publish; when the queue is full, rejects it or drops (and rejects) the oldest one. An entry whose
   * signal aborts leaves the queue.
   */
  add(entry: QueuedPublish): void {
    const limit = this.#options.outboxLimit ?? 1000;
    if (this.#entries.length >= limit) {
      if ((this.#options.outboxOverflow ?? "reject") === "reject") {
        entry.waiter.reject(
          new MqttError(
            ReasonCode.QuotaExceeded,
            `Cannot queue the publish: ${limit} are already waiting to be sent`,
          ),
        );
        return;
      }
      const dropped = this.#entries.shift();
      dropped?.unlisten?.();
      dropped?.waiter.reject(
        new MqttError(ReasonCode.QuotaExceeded, "Publish dropped: the offline outbox overflowed"),
      );
    }
    this.#entries.push(entry);
    const signal = entry.options.signal;
    if (signal !== undefined) {
      const leave = () => {
        const index = this.#entries.indexOf(entry);
        if (index !== -1) this.#entries.splice(index, 1);
      };
      signal.addEventListener("abort", leave, { once: true });
      // Once the entry leaves the queue, a long-lived signal keeps no listener for it.
      entry.unlisten = () => signal.removeEventListener("abort", leave);
    }
  }

  /**
   * Empties the queue and hands each entry still to be published to `publish`, in order: entries whose signal
   * aborted are left out, entries whose message expiry ran out while waiting are rejected, and the others go
   * with their expiry lowered by the time they waited.
   *
   * @param now The time now, on the clock of the entries' `queuedAt`.
   * @param publish Publishes an entry, with these options.
   */
  drain(now: number, publish: (entry: QueuedPublish, options: PublishOptions) => void): void {
    const waiting = this.#entries;
    this.#entries = [];
    for (const entry of waiting) {
      entry.unlisten?.();
      if (entry.options.signal?.aborted) continue;
      const expiry = entry.options.properties?.messageExpiryInterval;
      let options = entry.options;
      if (expiry !== undefined) {
        // The expiry counts from the publish call: spend the time waited in the queue.
        const left = expiry - Math.floor((now - entry.queuedAt) / 1000);
        if (left <= 0) {
          entry.waiter.reject(
            new MqttError(ReasonCode.UnspecifiedError, "Publish expired while waiting to be sent"),
          );
          continue;
        }
        options = { ...options, properties: { ...options.properties, messageExpiryInterval: left } };
      }
      publish(entry, options);
    }
  }

  /** Empties the queue, rejecting every entry (the client is closed). */
  rejectAll(reason: MqttError): void {
    for (const entry of this.#entries) {
      entry.unlisten?.();
      entry.waiter.reject(reason);
    }
    this.#entries = [];
  }
}
