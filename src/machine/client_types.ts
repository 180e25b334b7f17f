/**
 * The public types of the client side: the clock, the options, the commands' arguments and results, the events
 * and the exported session. Types only.
 *
 * @module
 */

import type {
  AuthPacket,
  ConnAckPacket,
  ConnectProperties,
  DisconnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  PublishProperties,
  QoS,
  RetainHandling,
  UserProperty,
  Will,
} from "../codec/packet.ts";
import type { MqttError, ReasonCode } from "../errors.ts";

/**
 * Milliseconds on any monotonic clock the caller picks: the driver's clock in production, 0, 1, 2… in
 * tests.
 *
 * @example Deadlines come back on the caller's clock
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientMachine, type Millis } from "@x/mqtt/machine";
 * const client = new ClientMachine({ clientId: "a", keepAlive: 10 });
 * let now: Millis = 0;
 * client.connect(now);
 * client.pollTransmit(); // CONNECT
 * now = 1;
 * client.handleBytes(now, new Uint8Array([0x20, 0x03, 0x00, 0x00, 0x00])); // CONNACK: accepted
 * assert.equal(client.pollTimeout(), 10_000); // PINGREQ due one keep-alive after the CONNECT was sent
 * ```
 */
export type Millis = number;

/**
 * The connection state of a {@linkcode ClientMachine}.
 *
 * @example From idle to closed
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientMachine } from "@x/mqtt/machine";
 * const client = new ClientMachine({ clientId: "a" });
 * assert.equal(client.state, "idle");
 * client.connect(0);
 * assert.equal(client.state, "connecting");
 * client.handleBytes(1, new Uint8Array([0x20, 0x03, 0x00, 0x00, 0x00])); // CONNACK: accepted
 * assert.equal(client.state, "connected");
 * client.disconnect(2);
 * assert.equal(client.state, "closed");
 * ```
 */
export type ClientState = "idle" | "connecting" | "connected" | "closed";

/** Options of a {@linkcode ClientMachine}, fixed for its lifetime. */
export interface ClientMachineOptions {
  /** The client identifier; empty asks the server to assign one (3.1.1 with a clean session, and 5.0). */
  clientId: string;
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0, the default). */
  protocolVersion?: ProtocolVersion;
  /** Keep-alive in seconds, 0 to 65,535; 0 turns it off. Default 60. */
  keepAlive?: number;
  /** How long to wait for CONNACK, in milliseconds. Default 30,000. */
  connectTimeoutMs?: number;
  /** How long to wait for PINGRESP after a PINGREQ, in milliseconds. Default: the keep-alive interval. */
  pingTimeoutMs?: number;
  /**
   * Acknowledge received QoS 1 and 2 messages only when {@linkcode ClientMachine.acknowledge} is called (the
   * async client does so once a message is taken, so the broker's flow control applies backpressure).
   * Acknowledgements still leave in the order the messages arrived [MQTT-4.6.0-2] [MQTT-4.6.0-3]. Default false.
   */
  manualAck?: boolean;
  /** Called with every packet sent and received, for debug output. */
  onPacket?: (direction: "in" | "out", packet: Packet) => void;
}

/** What each CONNECT carries; given to {@linkcode ClientMachine.connect}, so credentials can change. */
export interface ConnectOptions {
  /** Clean Start (5.0) or Clean Session (3.x). Default true. */
  cleanStart?: boolean;
  /** The user name sent in the CONNECT, if any (MQTT 5 §3.1.3.5). */
  username?: string;
  /** The password sent in the CONNECT, if any (MQTT 5 §3.1.3.6). */
  password?: Uint8Array;
  /** The will message the server publishes if the connection ends without a normal DISCONNECT. */
  will?: Will;
  /** MQTT 5 CONNECT properties (session expiry, receive maximum, maximum packet size, topic alias maximum…). */
  properties?: ConnectProperties;
  /** 3.1 and 3.1.1: the bridge bit of the protocol level (see `ConnectPacket.bridge`); ignored on 5. */
  bridge?: boolean;
}

/** A message to publish. */
export interface PublishOptions {
  /** The topic name, without wildcards (MQTT 5 §3.3.2.1). */
  topic: string;
  /** The application message; kept, not copied, until the flow completes. */
  payload: Uint8Array;
  /**
   * The delivery guarantee: at most once (0), at least once (1) or exactly once (2).
   *
   * @default {0}
   */
  qos?: QoS;
  /**
   * Whether the server keeps the message as the retained message of the topic (MQTT 5 §3.3.1.3).
   *
   * @default {false}
   */
  retain?: boolean;
  /** MQTT 5 properties; a topic alias is chosen by the machine, not here. */
  properties?: Omit<PublishProperties, "topicAlias" | "subscriptionIdentifiers">;
}

/** One filter to subscribe to. */
export interface SubscriptionRequest {
  /** The topic filter, with `+` and `#` wildcards or a `$share/{group}/` prefix (MQTT 5 §4.7, §4.8.2). */
  topicFilter: string;
  /**
   * The highest QoS the server may deliver matching messages with (MQTT 5 §3.8.3.1).
   *
   * @default {0}
   */
  qos?: QoS;
  /**
   * MQTT 5: do not deliver messages this client published itself; not allowed on shared subscriptions.
   *
   * @default {false}
   */
  noLocal?: boolean;
  /**
   * MQTT 5: keep the retain flag of forwarded messages as it was published.
   *
   * @default {false}
   */
  retainAsPublished?: boolean;
  /**
   * MQTT 5: 0 sends retained messages on subscribing, 1 only when the subscription is new, 2 never.
   *
   * @default {0}
   */
  retainHandling?: RetainHandling;
}

/** What {@linkcode ClientMachine.subscribe} returns. */
export interface SubscribeResult {
  /** The SUBSCRIBE's packet identifier; a `subscribed` event with it follows. */
  packetId: number;
  /** The local subscription: `message` events list it when a message matches one of its filters. */
  subscription: number;
}

/**
 * What the machine reports; drain with {@linkcode ClientMachine.pollEvent} after every call.
 *
 * @example Subscribe, then receive a message
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "@x/mqtt/codec";
 * import { ClientMachine } from "@x/mqtt/machine";
 * const client = new ClientMachine({ clientId: "a" });
 * client.connect(0);
 * client.handleBytes(1, encode({ type: "connack", sessionPresent: false, reasonCode: 0 }, 5));
 * assert.equal(client.pollEvent()?.type, "connected");
 * const { packetId, subscription } = client.subscribe(2, [{ topicFilter: "a/+" }]);
 * client.handleBytes(3, encode({ type: "suback", packetId, reasonCodes: [0] }, 5));
 * assert.deepEqual(client.pollEvent(), { type: "subscribed", packetId, reasonCodes: [0] });
 * const payload = new Uint8Array([42]);
 * client.handleBytes(4, encode({
 *   type: "publish", topic: "a/b", payload, qos: 0, retain: false, dup: false,
 * }, 5));
 * const event = client.pollEvent();
 * assert(event?.type === "message");
 * assert.equal(event.packet.topic, "a/b");
 * assert.deepEqual(event.subscriptions, [subscription]);
 * assert.equal(client.pollEvent(), undefined); // drained
 * ```
 */
export type ClientEvent =
  | { type: "connected"; sessionPresent: boolean; connack: ConnAckPacket }
  | {
    type: "message";
    packet: PublishPacket;
    /**
     * The local subscriptions the message is for (may be empty after an unsubscribe). Read-only: messages
     * to the same topic may share the array.
     */
    subscriptions: readonly number[];
  }
  | {
    type: "published";
    packetId: number;
    /** The final reason code: PUBACK for QoS 1, PUBCOMP (or a failed PUBREC) for QoS 2. */
    reasonCode: ReasonCode;
    /** Set when the publish failed: a negative acknowledgement, or dropped with a session that was lost. */
    error?: MqttError;
    properties?: { reasonString?: string; userProperties?: UserProperty[] };
  }
  | { type: "subscribed" | "unsubscribed"; packetId: number; reasonCodes: ReasonCode[]; error?: MqttError }
  | { type: "auth"; packet: AuthPacket }
  | {
    type: "closed";
    /** Why the connection ended; absent after a normal {@linkcode ClientMachine.disconnect}. */
    error?: MqttError;
    /** The server's DISCONNECT, with its reason code and server reference, if it sent one. */
    disconnect?: DisconnectPacket;
    /** The CONNACK that refused the connection (its properties may name another server to use). */
    connack?: ConnAckPacket;
  };

/**
 * The session state of a client as plain data, for a session store: unfinished outgoing publishes, inbound
 * QoS 2 packet ids awaiting PUBREL, and the subscriptions to make again.
 */
export interface ClientSessionState {
  /** The client identifier the session belongs to (the server's choice when it assigned one). */
  clientId: string;
  /**
   * Unfinished QoS 1 and 2 publishes: `stage` `publish` awaits PUBACK or PUBREC, `pubrel` awaits PUBCOMP;
   * `sent` tells whether the PUBLISH went out on some connection.
   */
  outgoing: { packet: PublishPacket; stage: "publish" | "pubrel"; sent: boolean }[];
  /** Packet identifiers of received QoS 2 messages whose PUBREL has not arrived yet (MQTT 5 §4.3.3). */
  incomingQoS2: number[];
  /** The local subscriptions, each with the filters and options it subscribed with. */
  subscriptions: { filters: Required<SubscriptionRequest>[] }[];
}
