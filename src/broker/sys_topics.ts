/**
 * The broker's `$SYS/broker/…` statistics: the counters the broker bumps, the values mosquitto publishes, and
 * the timer that publishes the ones that changed. It reads the machine and connections; it changes neither.
 *
 * @module
 */

import type { BrokerMachine } from "../machine/broker_machine.ts";
import type { SessionMachine } from "../machine/session_machine.ts";
import { runtimeHeapUsed } from "../runtime/memory.ts";
import type { Connection } from "./connection.ts";

/** The version in `$SYS/broker/version`. */
const VERSION = "0.1.0";

/** What the broker counts for `$SYS`; it bumps these fields directly, on its hot paths. */
export interface SysCounters {
  messagesReceived: number;
  bytesReceived: number;
  bytesSent: number;
  connected: number;
  maximum: number;
  dropped: number;
}

/** The `$SYS` values of one broker and the timer that publishes them. */
export class SysTopics {
  readonly counters: SysCounters = {
    messagesReceived: 0,
    bytesReceived: 0,
    bytesSent: 0,
    connected: 0,
    maximum: 0,
    dropped: 0,
  };
  readonly #machine: BrokerMachine;
  readonly #connections: ReadonlyMap<SessionMachine, Connection>;
  /** Reads the JavaScript heap in use, once this runtime's reading is loaded. */
  #heapUsed: (() => number) | undefined;
  readonly #startedAt = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #last = new Map<string, string>();

  /**
   * Starts loading the heap reading.
   *
   * @param machine The broker's routing machine.
   * @param connections The broker's open connections.
   */
  constructor(machine: BrokerMachine, connections: ReadonlyMap<SessionMachine, Connection>) {
    this.#machine = machine;
    this.#connections = connections;
    void runtimeHeapUsed().then((read) => this.#heapUsed = read, () => {});
  }

  /**
   * The `$SYS/broker/…` values mosquitto publishes, as text.
   *
   * @returns Topic to value.
   */
  values(): Map<string, string> {
    const c = this.counters;
    const machine = this.#machine;
    const stats = machine.stats;
    let dropped = c.dropped + stats.dropped;
    for (const connection of this.#connections.values()) dropped += connection.session.droppedWhileCongested;
    const values = new Map([
      ["$SYS/broker/version", `@x/mqtt ${VERSION}`],
      ["$SYS/broker/uptime", `${Math.floor((performance.now() - this.#startedAt) / 1000)} seconds`],
      ["$SYS/broker/clients/connected", String(c.connected)],
      ["$SYS/broker/clients/total", String(machine.sessionCount)],
      ["$SYS/broker/clients/disconnected", String(Math.max(0, machine.sessionCount - c.connected))],
      ["$SYS/broker/clients/maximum", String(c.maximum)],
      ["$SYS/broker/messages/received", String(c.messagesReceived)],
      ["$SYS/broker/messages/sent", String(stats.delivered)],
      ["$SYS/broker/publish/messages/dropped", String(dropped)],
      ["$SYS/broker/bytes/received", String(c.bytesReceived)],
      ["$SYS/broker/bytes/sent", String(c.bytesSent)],
      ["$SYS/broker/retained messages/count", String(machine.retainedCount)],
    ]);
    if (this.#heapUsed !== undefined) values.set("$SYS/broker/heap/current", String(this.#heapUsed()));
    return values;
  }

  /**
   * Publishes the values now, then every `interval` seconds; nothing when `interval` is 0 or already started.
   *
   * @param interval `sysInterval`.
   * @param values The values to publish (the broker's `sysValues`).
   * @param publish Publishes one value, retained.
   */
  start(
    interval: number,
    values: () => Map<string, string>,
    publish: (topic: string, value: string) => void,
  ): void {
    if (interval <= 0 || this.#timer !== undefined) return;
    const publishChanged = () => {
      for (const [topic, value] of values()) {
        if (this.#last.get(topic) === value) continue;
        this.#last.set(topic, value);
        publish(topic, value);
      }
    };
    publishChanged();
    this.#timer = setInterval(publishChanged, interval * 1000);
  }

  /** Stops publishing. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
