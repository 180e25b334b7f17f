/**
 * The broker's `$SYS/broker/…` statistics: the counters the broker bumps, the values mosquitto publishes, and
 * the timer that publishes the ones that changed. It reads the machine and connections; it changes neither.
 *
 * @module
 */

import type { BrokerMachine } from "../machine/broker_machine.ts";
import type { SessionMachine } from "../machine/session_machine.ts";
import { runtimeHeapUsed } from "../runtime/memory.ts";
import { type Metric, reasonLabel } from "./metrics.ts";
import type { Connection, ListenerCount } from "./connection.ts";

/** The version in `$SYS/broker/version`. */
const VERSION = "0.1.0";

/** What the broker counts for `$SYS`; it bumps these fields directly, on its hot paths. */
export interface SysCounters {
  messagesReceived: number;
  /** PUBLISH packets received, by QoS. */
  receivedByQos: [number, number, number];
  /** Their payload bytes, by QoS. */
  receivedBytesByQos: [number, number, number];
  /** Network connections accepted. */
  accepted: number;
  /** CONNECTs refused, by reason code. */
  refused: Map<number, number>;
  bytesReceived: number;
  bytesSent: number;
  connected: number;
  maximum: number;
  /** QoS 0 messages dropped while their client was behind, by connections now closed (see `droppedWhileCongested`). */
  dropped: number;
  /** CONNECTs refused by authentication: anonymous access, the password file, the authentication hooks. */
  authenticationFailures: number;
  /** PUBLISH packets refused by the ACL file or `authorizePublish`. */
  deniedPublishes: number;
  /** Topic filters of SUBSCRIBE packets refused by the ACL file or `authorizeSubscribe`. */
  deniedSubscriptions: number;
  /** Each listener's connections, with its URL. */
  listeners: ListenerCount[];
}

/** The `$SYS` values of one broker and the timer that publishes them. */
export class SysTopics {
  readonly counters: SysCounters = {
    messagesReceived: 0,
    receivedByQos: [0, 0, 0],
    receivedBytesByQos: [0, 0, 0],
    accepted: 0,
    refused: new Map(),
    bytesReceived: 0,
    bytesSent: 0,
    connected: 0,
    maximum: 0,
    dropped: 0,
    authenticationFailures: 0,
    deniedPublishes: 0,
    deniedSubscriptions: 0,
    listeners: [],
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
    const dropped = this.#droppedCongested() + stats.dropped;
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
   * The broker's figures as Prometheus metrics (see `metrics.ts`).
   *
   * @param cluster The cluster's `$SYS/cluster/…` values, when a node of one.
   * @param slowDisconnects How many slow consumers were disconnected.
   * @returns The metrics.
   */
  metrics(cluster: Map<string, string> | undefined, slowDisconnects: number): Metric[] {
    const c = this.counters;
    const machine = this.#machine;
    const stats = machine.stats;
    let outgoing = 0;
    for (const connection of this.#connections.values()) outgoing += connection.pendingBytes;
    const sessions = machine.views.sessionTotals();
    const metrics: Metric[] = [
      gauge(
        "mqtt_uptime_seconds",
        "Seconds since the broker started.",
        (performance.now() - this.#startedAt) / 1000,
      ),
      gauge("mqtt_connections", "Network connections open.", this.#connections.size),
      counter("mqtt_connections_total", "Network connections accepted.", c.accepted),
      {
        name: "mqtt_listener_connections",
        type: "gauge",
        help: "Network connections open, by listener.",
        samples: c.listeners.map((listener) => [{ listener: listener.url }, listener.open]),
      },
      {
        name: "mqtt_listener_connections_total",
        type: "counter",
        help: "Network connections accepted, by listener.",
        samples: c.listeners.map((listener) => [{ listener: listener.url }, listener.accepted]),
      },
      {
        name: "mqtt_connections_refused_total",
        type: "counter",
        help: "CONNECT packets refused, by reason code.",
        samples: [...c.refused].map(([code, count]) => [{ reason: reasonLabel(code) }, count]),
      },
      counter(
        "mqtt_authentication_failures_total",
        "CONNECT packets refused by authentication (anonymous access, password file, authentication hooks).",
        c.authenticationFailures,
      ),
      {
        name: "mqtt_authorization_denials_total",
        type: "counter",
        help: "PUBLISH packets and SUBSCRIBE topic filters refused by the ACL file or the authorize hooks.",
        samples: [
          [{ action: "publish" }, c.deniedPublishes],
          [{ action: "subscribe" }, c.deniedSubscriptions],
        ],
      },
      {
        name: "mqtt_sessions",
        type: "gauge",
        help: "Sessions, by whether their client is connected.",
        samples: [
          [{ state: "connected" }, c.connected],
          [{ state: "offline" }, Math.max(0, machine.sessionCount - c.connected)],
        ],
      },
      gauge("mqtt_sessions_connected_max", "The most sessions connected at once.", c.maximum),
      gauge("mqtt_retained_messages", "Retained messages held.", machine.retainedCount),
      gauge("mqtt_subscriptions", "Subscriptions of all sessions, connected or not.", sessions.subscriptions),
      gauge(
        "mqtt_queued_messages",
        "Messages queued in sessions, connected or not, waiting to be sent (not in flight).",
        sessions.queuedMessages,
      ),
      gauge("mqtt_queued_payload_bytes", "Payload bytes of the queued messages.", sessions.queuedBytes),
      {
        name: "mqtt_messages_received_total",
        type: "counter",
        help: "PUBLISH packets received from clients, by QoS.",
        samples: c.receivedByQos.map((count, qos) => [{ qos: String(qos) }, count]),
      },
      {
        name: "mqtt_received_payload_bytes_total",
        type: "counter",
        help: "Payload bytes of the PUBLISH packets received from clients, by QoS.",
        samples: c.receivedBytesByQos.map((count, qos) => [{ qos: String(qos) }, count]),
      },
      counter(
        "mqtt_messages_routed_total",
        "Messages routed (PUBLISH, wills, the broker's own).",
        stats.routed,
      ),
      {
        name: "mqtt_deliveries_total",
        type: "counter",
        help: "Deliveries to sessions, sent or queued, by the QoS they are delivered with.",
        samples: stats.deliveredByQos.map((count, qos) => [{ qos: String(qos) }, count]),
      },
      {
        name: "mqtt_delivered_payload_bytes_total",
        type: "counter",
        help: "Payload bytes of the deliveries to sessions, by the QoS they are delivered with.",
        samples: stats.deliveredBytesByQos.map((count, qos) => [{ qos: String(qos) }, count]),
      },
      {
        name: "mqtt_messages_dropped_total",
        type: "counter",
        help:
          "Deliveries dropped, by cause: queue_full (a session's queue bounds), slow_consumer (QoS 1 and 2 " +
          "for a session over its bounds past slowConsumerTimeout), congested (QoS 0 for a client behind on its " +
          "connection), expired (Message Expiry Interval).",
        samples: [
          [{ cause: "queue_full" }, stats.droppedQueueFull],
          [{ cause: "slow_consumer" }, stats.droppedSlowConsumer],
          [{ cause: "congested" }, this.#droppedCongested()],
          [{ cause: "expired" }, stats.droppedExpired],
        ],
      },
      counter(
        "mqtt_slow_consumer_disconnects_total",
        "Clients disconnected for staying behind past slowConsumerTimeout.",
        slowDisconnects,
      ),
      gauge("mqtt_outgoing_bytes", "Bytes written to connections and not yet sent.", outgoing),
      counter("mqtt_received_bytes_total", "Bytes received from clients.", c.bytesReceived),
      counter("mqtt_sent_bytes_total", "Bytes sent to clients.", c.bytesSent),
    ];
    if (this.#heapUsed !== undefined) {
      metrics.push(gauge("mqtt_heap_used_bytes", "JavaScript heap in use.", this.#heapUsed()));
    }
    if (cluster !== undefined) {
      const value = (topic: string) => Number(cluster.get(`$SYS/cluster/${topic}`) ?? 0);
      metrics.push(
        gauge("mqtt_cluster_nodes", "Live nodes of the cluster, this one included.", value("nodes")),
        gauge(
          "mqtt_cluster_engine_up",
          "Whether the cluster's engine (NATS) is reachable: 1 or 0.",
          cluster.get("$SYS/cluster/engine") === "connected" ? 1 : 0,
        ),
        {
          name: "mqtt_cluster_messages_total",
          type: "counter",
          help: "Messages between nodes: forwarded, stored before acknowledged, received, refused.",
          samples: ["forwarded", "stored", "received", "refused"].map((kind) => [
            { kind },
            value(`messages/${kind}`),
          ]),
        },
        {
          name: "mqtt_cluster_sessions_total",
          type: "counter",
          help: "Sessions claimed from other nodes, and handed over to them.",
          samples: [
            [{ kind: "claimed" }, value("sessions/claimed")],
            [{ kind: "handed_over" }, value("sessions/handed-over")],
          ],
        },
      );
    }
    return metrics;
  }

  /** QoS 0 messages dropped while their client was behind, by connections closed and open. */
  #droppedCongested(): number {
    let dropped = this.counters.dropped;
    for (const connection of this.#connections.values()) dropped += connection.session.droppedWhileCongested;
    return dropped;
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

function gauge(name: string, help: string, value: number): Metric {
  return { name, type: "gauge", help, samples: [[{}, value]] };
}

function counter(name: string, help: string, value: number): Metric {
  return { name, type: "counter", help, samples: [[{}, value]] };
}
