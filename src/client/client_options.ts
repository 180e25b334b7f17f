/**
 * The async client's options: what `connect()` and {@linkcode MqttClient} accept, and the CONNECT they make.
 * Types and their defaults only; opening connections, timers and I/O belong to `mqtt_client.ts`.
 *
 * @module
 */

import type {
  AuthPacket,
  AuthProperties,
  ConnAckPacket,
  ConnectProperties,
  Packet,
  ProtocolVersion,
  PublishProperties,
  QoS,
  RetainHandling,
  UserProperty,
  Will,
} from "../codec/packet.ts";
import type { MqttError } from "../errors.ts";
import type { ConnectOptions as MachineConnectOptions } from "../machine/client_machine.ts";
import type { Transport } from "../transport/transport.ts";
import { hex, toBytes } from "./_bytes.ts";
import type { SessionStore } from "./session_store.ts";
// deno-lint-ignore no-unused-vars -- named by the documentation's links
import type { MqttClient } from "./mqtt_client.ts";

/** How to reconnect after a connection is lost. */
export interface ReconnectOptions {
  /** The first delay, in milliseconds. Default 1,000. */
  initialDelayMs?: number;
  /** The longest delay, in milliseconds. Default 30,000. */
  maxDelayMs?: number;
  /** How many attempts in a row before giving up. Default: never give up. */
  maxAttempts?: number;
}

/** Credentials or an address that {@linkcode ClientOptions.beforeConnect} may change before an attempt. */
export interface ConnectOverrides {
  /** A new user name for this and later attempts. */
  username?: string;
  /** A new password (text is sent as UTF-8) for this and later attempts. */
  password?: string | Uint8Array;
  /** A new transport factory, for a new address. */
  transport?: (signal: AbortSignal) => Promise<Transport>;
}

/** A will message for the client options; the payload may be text. */
export interface WillOptions {
  /** The topic the will is published to. */
  topic: string;
  /** The will message; text is sent as UTF-8. */
  payload: string | Uint8Array;
  /**
   * The QoS the will is published with (MQTT 5 §3.1.2.6).
   *
   * @default {0}
   */
  qos?: QoS;
  /**
   * Whether the will is published as a retained message (MQTT 5 §3.1.2.7).
   *
   * @default {false}
   */
  retain?: boolean;
  /** MQTT 5 will properties: will delay, message expiry, content type, response topic… (MQTT 5 §3.1.3.2). */
  properties?: Will["properties"];
}

/**
 * Connection state changes reported to {@linkcode ClientOptions.onStateChange}.
 *
 * @example Watch a connection open and close
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect, type ConnectionEvent } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker();
 * const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 * const events: ConnectionEvent["type"][] = [];
 * const client = await connect(`mqtt://127.0.0.1:${port}`, {
 *   onStateChange: (event) => events.push(event.type),
 * });
 * await client.close();
 * assert.deepEqual(events, ["connected", "disconnected"]);
 * await broker.close();
 * ```
 */
export type ConnectionEvent =
  | { type: "connected"; sessionPresent: boolean; connack: ConnAckPacket }
  | { type: "reconnecting"; attempt: number; delayMs: number; error: MqttError }
  | { type: "disconnected"; error?: MqttError };

/** Options of {@linkcode MqttClient} (what `connect()` accepts besides a URL). */
export interface ClientOptions {
  /** Opens the connection; the URL-based `connect()` fills it in from the URL. */
  transport: (signal: AbortSignal) => Promise<Transport>;
  /** The client identifier. Default: `mqttx_` and 16 random hex digits. */
  clientId?: string;
  /**
   * 3.1 and 3.1.1: connect as another broker's bridge (the bridge bit of the protocol level, mosquitto's
   * `try_private`), so that a broker that knows it sends back nothing this client published and keeps the
   * retain flag. Brokers that do not know it refuse the connection (unsupported protocol version).
   */
  bridge?: boolean;
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0). Default 5. */
  protocolVersion?: ProtocolVersion;
  /** Keep-alive in seconds. Default 60. */
  keepAlive?: number;
  /** Start a new session (default true). With false, the session resumes across reconnects and restarts. */
  cleanStart?: boolean;
  /** MQTT 5: seconds the server keeps the session after a disconnect. */
  sessionExpiryInterval?: number;
  /** The user name; a `user@` in the URL of `connect()` fills it in. */
  username?: string;
  /** The password, text sent as UTF-8; a `user:password@` in the URL of `connect()` fills it in. */
  password?: string | Uint8Array;
  /** The will message the broker publishes when the connection ends without a normal DISCONNECT. */
  will?: WillOptions;
  /** MQTT 5 CONNECT properties (receive maximum, maximum packet size, topic alias maximum…). */
  properties?: ConnectProperties;
  /** How long to wait for CONNACK, in milliseconds. Default 30,000. */
  connectTimeoutMs?: number;
  /** Reconnect after a lost connection (default true), with exponential backoff and full jitter. */
  reconnect?: boolean | ReconnectOptions;
  /** Called before every attempt after the first, to supply fresh credentials (expiring tokens). */
  beforeConnect?: (attempt: number) => Promise<ConnectOverrides | void> | ConnectOverrides | void;
  /** Connection state changes. */
  onStateChange?: (event: ConnectionEvent) => void;
  /** Every packet sent (`"out"`) and received (`"in"`), for debugging. */
  onPacket?: (direction: "in" | "out", packet: Packet) => void;
  /**
   * MQTT 5 enhanced authentication: answers each AUTH challenge (reason 0x18) from the server with the
   * properties of the next AUTH. Set `properties.authenticationMethod` (and initial data) to start it.
   */
  authenticate?: (challenge: AuthPacket) => Promise<AuthProperties> | AuthProperties;
  /** How many publishes may wait while disconnected. Default 1,000. */
  outboxLimit?: number;
  /** When the outbox is full: refuse the new publish (default) or drop the oldest one. */
  outboxOverflow?: "reject" | "drop-oldest";
  /**
   * Messages a subscription buffers before the client stops reading from the broker until the consumer takes
   * some; after a second without room, the oldest QoS 0 messages beyond it are dropped. Default 1,000.
   */
  subscriptionBufferLimit?: number;
  /**
   * Milliseconds that messages of a resumed session (`cleanStart: false`, the broker kept it) that match no
   * subscription yet are held, unacknowledged, for the application's first `subscribe()` calls: the broker may
   * send what it queued right after CONNACK, before `connect()` has even returned. What no subscription claims
   * in that time is acknowledged and counted in `MqttClient.releasedUnclaimed`. While `subscriptionBufferLimit`
   * messages are held, reading pauses. Default 10,000; 0 holds nothing.
   */
  unclaimedHoldMs?: number;
  /** Aborts the first connection attempt. */
  signal?: AbortSignal;
  /**
   * Keeps the session (unfinished QoS 1 and 2 publishes, subscriptions) across restarts of the program. Used
   * with `cleanStart: false`: the state saved under the client id is restored before the first connection.
   */
  sessionStore?: SessionStore;
  /** The first level of the response topic `request()` subscribes to. Default `mqttx`. */
  responseTopicPrefix?: string;
}

/** Options of {@linkcode MqttClient.publish}. */
export interface PublishOptions {
  /**
   * At most once (0), at least once (1) or exactly once (2); {@linkcode MqttClient.request} defaults to 1.
   *
   * @default {0}
   */
  qos?: QoS;
  /**
   * Whether the broker keeps the message as the retained message of the topic (MQTT 5 §3.3.1.3).
   *
   * @default {false}
   */
  retain?: boolean;
  /** MQTT 5 PUBLISH properties; the client picks topic aliases, the broker adds subscription identifiers. */
  properties?: Omit<PublishProperties, "topicAlias" | "subscriptionIdentifiers">;
  /** Stops waiting for the acknowledgement, or drops the publish while it waits in the offline outbox. */
  signal?: AbortSignal;
}

/** Options of {@linkcode MqttClient.subscribe}. */
export interface SubscribeOptions {
  /**
   * The highest QoS the broker may deliver matching messages with (MQTT 5 §3.8.3.1).
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
  /** MQTT 5 user properties of the SUBSCRIBE. */
  userProperties?: UserProperty[];
  /** Stops waiting for the connection or the SUBACK. */
  signal?: AbortSignal;
  /**
   * Acknowledge QoS 1 and 2 messages only when {@linkcode Subscription.ack} is called with them, not when they
   * are taken: the broker keeps a message (and resends it after a reconnect) until the application is done with
   * it, at the cost of its in-flight window. Acknowledgements still leave in arrival order, so one message not
   * acknowledged holds back those after it.
   *
   * @default {false}
   */
  manualAck?: boolean;
}

/** The default client identifier: `mqttx_` and 16 random hex digits. */
export function randomClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return "mqttx_" + hex(bytes);
}

/**
 * The CONNECT of an attempt, from the options and the credentials of the moment (which `beforeConnect` may have
 * replaced): clean start by default, the will with its defaults, and on MQTT 5 the session expiry and a Receive
 * Maximum of 100 unless the properties set one.
 */
export function machineConnectOptions(
  options: ClientOptions,
  username: string | undefined,
  password: Uint8Array | undefined,
): MachineConnectOptions {
  const connect: MachineConnectOptions = { cleanStart: options.cleanStart ?? true };
  if (options.bridge === true) connect.bridge = true;
  if (username !== undefined) connect.username = username;
  if (password !== undefined) connect.password = password;
  if (options.will !== undefined) {
    connect.will = {
      topic: options.will.topic,
      payload: toBytes(options.will.payload),
      qos: options.will.qos ?? 0,
      retain: options.will.retain ?? false,
    };
    if (options.will.properties !== undefined) connect.will.properties = options.will.properties;
  }
  if ((options.protocolVersion ?? 5) === 5) {
    const properties: ConnectProperties = { ...options.properties };
    if (options.sessionExpiryInterval !== undefined) {
      properties.sessionExpiryInterval = options.sessionExpiryInterval;
    }
    properties.receiveMaximum ??= 100;
    connect.properties = properties;
  }
  return connect;
}
