/**
 * A broker's bridges (see `bridge.ts`): made from `BrokerOptions.bridges`, started with the broker and
 * stopped before it closes, and shown in `$SYS/broker/bridges/<name>/…` and the metrics.
 *
 * @module
 */

import type { BrokerMachine } from "../machine/broker_machine.ts";
import { Bridge, type BridgeHost } from "./bridge.ts";
import type { BridgeOptions } from "./bridge_options.ts";
import type { Metric } from "./metrics.ts";

/** The bridges of one broker. */
export class Bridges {
  /** The bridges, in the order configured. */
  readonly list: readonly Bridge[];
  /** The client identifiers of their sides on this broker, refused to anyone else. */
  readonly reserved: ReadonlySet<string>;
  /** Those of the sides past the ACL and the read hooks: all but those that log in as a user (`localUsername`). */
  readonly trusted: ReadonlySet<string>;
  readonly #host: BridgeHost;

  /**
   * Makes the bridges; none connects yet.
   *
   * @param options The configured bridges.
   * @param host The broker's side.
   * @throws {TypeError} When two bridges share a name or a client identifier, or one cannot work.
   */
  constructor(options: readonly BridgeOptions[] | undefined, host: BridgeHost) {
    this.#host = host;
    const list = (options ?? []).map((o) => new Bridge(o, host));
    const names = new Set<string>();
    const ids = new Set<string>();
    for (const bridge of list) {
      if (names.has(bridge.name)) {
        throw new TypeError(`Cannot start bridge "${bridge.name}" twice: names must differ`);
      }
      names.add(bridge.name);
      if (ids.has(bridge.localClientId)) {
        throw new TypeError(
          `Cannot start bridge "${bridge.name}": local client id "${bridge.localClientId}" is taken`,
        );
      }
      ids.add(bridge.localClientId);
    }
    this.list = list;
    this.reserved = ids;
    this.trusted = new Set(list.filter((b) => b.localUsername === undefined).map((b) => b.localClientId));
  }

  /** Starts every bridge; one that cannot start is logged, and the others go on. */
  start(): void {
    for (const bridge of this.list) {
      bridge.start().catch((error) => {
        this.#host.log("error", `Bridge ${bridge.name} did not start: ${(error as Error).message}`);
      });
    }
  }

  /** Stops every bridge. */
  async stop(): Promise<void> {
    await Promise.all(this.list.map((bridge) => bridge.stop().catch(() => {})));
  }

  /**
   * Messages waiting to go out on each bridge: queued in its session here, and on their way.
   *
   * @param machine The broker's machine, whose sessions hold the queues.
   * @returns By bridge name.
   */
  queued(machine: BrokerMachine): Map<string, number> {
    const queued = new Map<string, number>();
    if (this.list.length === 0) return queued;
    const byId = new Map(this.list.map((b) => [b.localClientId, b]));
    for (const bridge of this.list) queued.set(bridge.name, bridge.inFlight.out);
    for (const session of machine.views.sessionSummaries()) {
      const bridge = byId.get(session.clientId);
      if (bridge !== undefined) queued.set(bridge.name, (queued.get(bridge.name) ?? 0) + session.queued);
    }
    return queued;
  }

  /**
   * The `$SYS/broker/bridges/<name>/…` values.
   *
   * @param machine The broker's machine.
   * @returns Topic to value.
   */
  sysValues(machine: BrokerMachine): Map<string, string> {
    const values = new Map<string, string>();
    const queued = this.queued(machine);
    for (const bridge of this.list) {
      const at = `$SYS/broker/bridges/${bridge.name}`;
      values.set(`${at}/state`, bridge.state);
      values.set(`${at}/messages/sent`, String(bridge.stats.sent));
      values.set(`${at}/messages/received`, String(bridge.stats.received));
      values.set(`${at}/messages/dropped`, String(bridge.stats.dropped));
      values.set(`${at}/messages/queued`, String(queued.get(bridge.name) ?? 0));
      values.set(`${at}/sessions/lost`, String(bridge.stats.sessionsLost));
    }
    return values;
  }

  /**
   * The bridges' metrics, labelled `bridge`.
   *
   * @param machine The broker's machine.
   * @returns The metrics; none without bridges.
   */
  metrics(machine: BrokerMachine): Metric[] {
    if (this.list.length === 0) return [];
    const queued = this.queued(machine);
    const each = (value: (bridge: Bridge) => number): [Record<string, string>, number][] =>
      this.list.map((bridge) => [{ bridge: bridge.name }, value(bridge)]);
    return [
      {
        name: "mqtt_bridge_up",
        type: "gauge",
        help: "Whether the bridge is connected to its remote broker: 1 or 0.",
        samples: each((b) => b.state === "connected" ? 1 : 0),
      },
      {
        name: "mqtt_bridge_messages_total",
        type: "counter",
        help: "Messages the bridge carried, by direction: out to the remote broker, in from it.",
        samples: this.list.flatMap((b) => [
          [{ bridge: b.name, direction: "out" }, b.stats.sent],
          [{ bridge: b.name, direction: "in" }, b.stats.received],
        ]),
      },
      {
        name: "mqtt_bridge_dropped_total",
        type: "counter",
        help: "Messages a broker refused to take from the bridge (MQTT 5 negative acknowledgements).",
        samples: each((b) => b.stats.dropped),
      },
      {
        name: "mqtt_bridge_sessions_lost_total",
        type: "counter",
        help: "Times the remote broker had not kept the bridge's session (what was on its way went again).",
        samples: each((b) => b.stats.sessionsLost),
      },
      {
        name: "mqtt_bridge_queued_messages",
        type: "gauge",
        help: "Messages waiting to go out on the bridge: queued here and on their way.",
        samples: each((b) => queued.get(b.name) ?? 0),
      },
    ];
  }
}
