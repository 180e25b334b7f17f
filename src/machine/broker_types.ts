/**
 * The public data types of {@linkcode BrokerMachine}: its options, the snapshot and journal shapes a store
 * keeps, and its counters. Plain types only: no behaviour lives here.
 *
 * @module
 */

import type { ConnAckProperties, PublishProperties, QoS, Subscription, Will } from "../codec/packet.ts";
import type { BrokerMessage } from "./_delivery.ts";

/** Options of {@linkcode BrokerMachine}. */
export interface BrokerMachineOptions {
  /**
   * Seconds a persistent MQTT 3.1 / 3.1.1 session (Clean Session 0) outlives its connection; 0xFFFFFFFF never
   * expires. @default 0xFFFFFFFF
   */
  persistentSessionExpiryInterval?: number;
  /** The longest session expiry interval granted to MQTT 5 clients, in seconds. @default 0xFFFFFFFF */
  maximumSessionExpiryInterval?: number;
  /** The most messages queued per session. @default 1000 */
  maxQueuedMessages?: number;
  /** The most payload bytes queued per session. @default 16777216 */
  maxQueuedBytes?: number;
  /** Whether QoS 0 messages are queued for sessions that are offline. @default false */
  queueQoS0?: boolean;
  /**
   * What identifiers assigned to clients that connect with an empty one start with (mosquitto's
   * `auto_id_prefix`). @default "auto-"
   */
  autoIdPrefix?: string;
  /**
   * The most levels a subscription's topic filter may have (after a `$share/NAME/` prefix); deeper filters
   * are refused in the SUBACK with 0x8F topic filter invalid (3.1.1: 0x80 failure), since each level of a
   * subscription is a node of the routing tree: one SUBSCRIBE of a 10,000-level filter would hold about
   * 2 MiB. EMQX's `max_topic_levels` (also 128) bounds filters and topics alike; the broker applies the same
   * option to published topics. @default 128
   */
  maxTopicLevels?: number;
  /**
   * Milliseconds a session may stay over its queue bounds (`maxQueuedMessages`, `maxQueuedBytes`) while the
   * acknowledgements of the messages for it are held back (see {@linkcode BrokerMachine.publish}); after
   * that, it counts as a slow consumer: the held acknowledgements go out and, until its queue is within its
   * bounds again, the messages that do not fit are dropped for it (counted in `stats.dropped`), so that one
   * stuck session does not stall its publishers for good. The broker also disconnects a connected client
   * whose writes stayed backed up (`maxOutgoingBytes`) that long. @default 30000
   */
  slowConsumerTimeout?: number;
  /**
   * Decides whether a message may be delivered to a session (an ACL's read rules), for every delivery and
   * every retained message sent on subscribing; `false` skips that session. Called while routing: keep it
   * fast and synchronous. Default: every message is delivered.
   */
  authorizeDelivery?: (session: SessionIdentity, message: BrokerMessage) => boolean;
  /**
   * Record every change to what a store would keep, for {@linkcode BrokerMachine.pollChanges}. @default false
   */
  journal?: boolean;
  /**
   * Told of every message published on this machine as it is routed (PUBLISH, wills, the broker's own), before
   * its deliveries: how a cluster node forwards it to the other nodes. `sent` is `true` for a PUBLISH the
   * driver handed to the cluster itself (see {@linkcode BrokerMachine.publish}). Not told of messages routed
   * with `machine.cluster.routeRemote`. The message is valid during the call only: copy what is kept.
   */
  forward?: (now: number, message: BrokerMessage, sent: boolean) => void;
  /**
   * Told when a session ends (clean start, expiry, a connection with expiry 0 over), not when it moves to
   * another node (`machine.cluster.takeSession`).
   */
  onSessionEnded?: (clientId: string) => void;
  /**
   * Who hands messages to shared subscription groups: `"local"`, routing picks a member of every matching
   * group; `"external"` (a cluster, whose engine gives each message to one node's group), routing leaves the
   * groups out and the cluster calls `machine.cluster.routeShared` for the group it was given.
   * @default "local"
   */
  sharedGroups?: "local" | "external";
  /**
   * Told when a topic filter gets its first subscription among all sessions (`present` `true`) and when it
   * loses its last one (`false`); a shared subscription is told by its whole `$share/{group}/{filter}`. A
   * cluster subscribes to the engine with it. Called while subscriptions change: keep it short and
   * synchronous.
   */
  onInterest?: (filter: string, present: boolean) => void;
  /**
   * Takes a shared subscription's delivery that its member left unacknowledged and that no other member of this
   * machine can take (see {@linkcode BrokerMachine.detach}): a cluster hands it to the group on another node.
   * Returns whether it took it; else the delivery stays with the member. The message is valid during the call.
   */
  handOffShared?: (now: number, message: BrokerMessage, shared: string) => boolean;
}

/** Who a session belongs to, for {@linkcode BrokerMachineOptions.authorizeDelivery}. */
export interface SessionIdentity {
  /** The client identifier. */
  readonly clientId: string;
  /** The user name of the CONNECT that last attached the session, if it had one. */
  readonly username: string | undefined;
}

/** Options of {@linkcode BrokerMachine.attach}. */
export interface AttachOptions {
  /** Extra CONNACK properties (MQTT 5), for example authentication data or a server keep-alive. */
  properties?: ConnAckProperties;
}

/** A subscription as a session holds it. */
export interface SessionSubscription extends Subscription {
  /** The subscription identifier (MQTT 5). */
  identifier?: number;
}

/** A message in a {@linkcode BrokerSnapshot}: plain data, times relative to the snapshot. */
export interface MessageSnapshot {
  /** The topic name. */
  topic: string;
  /** The payload (a copy). */
  payload: Uint8Array;
  /** The QoS it was published with. */
  qos: QoS;
  /** The RETAIN flag it was published with. */
  retain: boolean;
  /** The properties forwarded with it (MQTT 5), without topic alias, subscription identifiers or expiry. */
  properties?: PublishProperties;
  /** Milliseconds left before the message expires, when it does. */
  expiresInMs?: number;
  /** The client identifier of the publisher, for No Local. */
  publisher?: string;
}

/** A delivery in a {@linkcode SessionSnapshot}. */
export interface DeliverySnapshot {
  /** The message. */
  message: MessageSnapshot;
  /** The QoS of this delivery. */
  qos: QoS;
  /** The RETAIN flag to send. */
  retain: boolean;
  /** The identifiers of the matching subscriptions (MQTT 5). */
  subscriptionIdentifiers?: number[];
  /** The shared subscription (`$share/{group}/{filter}`) it came through, when it did. */
  shared?: string;
  /** The packet identifier, for a delivery in flight. */
  packetId?: number;
  /** PUBREL sent (QoS 2). */
  released?: boolean;
}

/** A session without its deliveries: what {@linkcode BrokerMachine.pollChanges} reports of it. */
export interface SessionMeta {
  /** The client identifier. */
  clientId: string;
  /** Seconds the session outlives its connection. */
  expiryInterval: number;
  /** Milliseconds left before an offline session expires. */
  expiresInMs?: number;
  /** The session's subscriptions. */
  subscriptions: SessionSubscription[];
  /** QoS 2 packet identifiers the client published that await PUBREL. */
  inboundQoS2: number[];
  /** The user name the session's client connected with, for the read rules of deliveries. */
  username?: string;
  /** A will waiting for its delay. */
  will?: Will;
  /** Milliseconds left before that will is published. */
  willInMs?: number;
  /**
   * `true` when the session had a connection: `expiresInMs` and `willInMs` then count from the moment the
   * state is restored (the connection is over by then), not from when it was saved.
   */
  connected?: boolean;
}

/** One session in a {@linkcode BrokerSnapshot}. */
export interface SessionSnapshot extends SessionMeta {
  /** Deliveries sent and not completed, in sending order. */
  inflight: DeliverySnapshot[];
  /** Deliveries waiting to be sent, oldest first. */
  queue: DeliverySnapshot[];
}

/**
 * One change to the persistent state, from {@linkcode BrokerMachine.pollChanges}; applied in order, the
 * changes keep a store equal to {@linkcode BrokerMachine.exportState}. Times are relative to the poll.
 *
 * @example A retained message set, then cleared
 * ```ts
 * import assert from "node:assert/strict";
 * import { BrokerMachine } from "@x/mqtt/machine";
 * const broker = new BrokerMachine({ journal: true });
 * const publish = (now: number, payload: Uint8Array) =>
 *   broker.route(now, undefined, {
 *     type: "publish", topic: "status", payload, qos: 0, retain: true, dup: false,
 *   });
 * publish(0, new TextEncoder().encode("up"));
 * const [set] = broker.pollChanges(0);
 * assert(set.type === "retained" && set.message !== undefined);
 * assert.equal(new TextDecoder().decode(set.message.payload), "up");
 * publish(1, new Uint8Array()); // an empty retained payload clears the topic
 * assert.deepEqual(broker.pollChanges(1), [{ type: "retained", topic: "status", message: undefined }]);
 * ```
 */
export type BrokerChange =
  /** A session was created or changed (not its deliveries): replace the stored one. */
  | { type: "session"; session: SessionMeta }
  /** A session ended: forget it and all its deliveries. */
  | { type: "sessionEnded"; clientId: string }
  /**
   * A delivery of a session was added or changed (`delivery` set) or is gone (`undefined`). `key` names it
   * until it is gone; keys are unique within one machine. In-flight deliveries have a packet identifier.
   */
  | { type: "delivery"; clientId: string; key: number; delivery: DeliverySnapshot | undefined }
  /** The retained message of a topic was set (`message`) or cleared (`undefined`). */
  | { type: "retained"; topic: string; message: MessageSnapshot | undefined };

/** The state of a {@linkcode BrokerMachine} as plain data (structured-clone safe), for persistence. */
export interface BrokerSnapshot {
  /** Every session. */
  sessions: SessionSnapshot[];
  /** Every retained message. */
  retained: MessageSnapshot[];
}

/** Counters of a {@linkcode BrokerMachine}. */
export interface BrokerStats {
  /** Messages routed (PUBLISH and wills). */
  routed: number;
  /** Deliveries made to sessions, online or queued. */
  delivered: number;
  /** The same by the QoS delivered with (the lower of the message's and the subscription's). */
  deliveredByQos: [number, number, number];
  /** The payload bytes of those deliveries, by the QoS delivered with. */
  deliveredBytesByQos: [number, number, number];
  /** Deliveries dropped: the sum of the causes below. */
  dropped: number;
  /**
   * Dropped for a full queue: QoS 0 ones that did not fit an offline session's queue, and those no publisher
   * can be held back for (wills, the broker's own, other nodes') for a session far over its bounds.
   */
  droppedQueueFull: number;
  /** Dropped for a slow consumer: QoS 1 and 2 ones for a session over its bounds past `slowConsumerTimeout`. */
  droppedSlowConsumer: number;
  /** Dropped because their Message Expiry Interval passed before they were sent [MQTT-3.3.2-5]. */
  droppedExpired: number;
}

/** A session's figures, as `BrokerMachine.views.sessionSummaries` reads them. */
export interface SessionSummary {
  /** The client identifier. */
  clientId: string;
  /** The user name it connected with last, when any. */
  username: string | undefined;
  /** Whether a connection holds it now. */
  connected: boolean;
  /** Seconds it outlives its connection, as last set. */
  expiryInterval: number;
  /** Its subscriptions' topic filters. */
  subscriptions: string[];
  /** Deliveries waiting in its queue. */
  queued: number;
  /** Their payload bytes. */
  queuedBytes: number;
  /** Deliveries sent and not yet acknowledged. */
  inflight: number;
}
