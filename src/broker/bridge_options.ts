/**
 * What a bridge is told: the remote broker, the topics that go each way and how they are renamed, the session
 * it keeps there, and its notifications. The JSON configuration's `bridges` and mosquitto.conf's bridge
 * sections both come down to these.
 *
 * @module
 */

import type { QoS } from "../codec/packet.ts";
import type { TlsOptions } from "../client/connect.ts";

/**
 * One `topic` line: messages matching `pattern` go `out` (from this broker to the remote), come `in`, or
 * both. A message's topic loses the prefix of the side it comes from and gains the other side's: with
 * `localPrefix: "site/"` and `remotePrefix: "sites/north/"`, `site/temp` here is `sites/north/temp` there.
 */
export interface BridgeTopic {
  /**
   * A topic filter, below the prefixes. Empty (with a prefix) means the prefix itself is the whole topic, as
   * mosquitto's `topic "" out 0 local/t remote/t`.
   */
  pattern: string;
  /** Default `out`. */
  direction: "in" | "out" | "both";
  /** The QoS of the subscriptions on both sides: messages cross with the lower of theirs and this. Default 0. */
  qos: QoS;
  /** Prepended to `pattern` on this broker. */
  localPrefix?: string;
  /** Prepended to `pattern` on the remote broker. */
  remotePrefix?: string;
}

/** A bridge to a remote broker, as {@linkcode BrokerOptions.bridges} takes it. */
export interface BridgeOptions {
  /** Names the bridge in logs, `$SYS` and metrics; unique among a broker's bridges. */
  name: string;
  /**
   * The remote broker: `mqtt://`, `mqtts://`, `ws://` or `wss://` URLs. With several, each new attempt goes to
   * the next (mosquitto's `address` with several hosts, round robin).
   */
  urls: string[];
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5. Default 4, as mosquitto's `bridge_protocol_version`. */
  protocolVersion?: 3 | 4 | 5;
  /** The client identifier on the remote broker. Default `bridge-<name>`. */
  clientId?: string;
  /** The client identifier of the bridge's side on this broker. Default `local.<clientId>`. */
  localClientId?: string;
  /**
   * The user the bridge's side on this broker is, as mosquitto's `local_username`: it logs in without a
   * password, and the ACL and the authorization hooks treat it as that user (messages it may not read do not go
   * out; those it may not publish are dropped as they come in). Default none: past the ACL and the hooks.
   */
  localUsername?: string;
  /** The user name on the remote broker. */
  username?: string;
  /** Its password. */
  password?: string;
  /** TLS to the remote (`mqtts://`, `wss://`): verified against `caCerts` (or the system's) unless `insecure`. */
  tls?: TlsOptions;
  /**
   * Start a new session on the remote broker at each connection. Default false: the remote keeps the bridge's
   * subscriptions and queues what comes in while it is away, as mosquitto's `cleansession false`.
   */
  cleanStart?: boolean;
  /** MQTT 5: seconds the remote keeps the session. Default 0xFFFFFFFF (never expires) unless `cleanStart`. */
  sessionExpiryInterval?: number;
  /** Seconds. Default 60. */
  keepAlive?: number;
  /** The topics that cross. */
  topics: BridgeTopic[];
  /**
   * MQTT 3.1 and 3.1.1: connect with the bridge bit (0x80) of the protocol level, as mosquitto's
   * `try_private`, so that a broker that knows it (mosquitto, ours) sends back nothing the bridge published and
   * keeps the retain flag. A broker that refuses it is connected to again without it. Default true.
   */
  tryPrivate?: boolean;
  /**
   * Publish the bridge's state, `1` connected and `0` not, retained on `notificationTopic`: here, and on the
   * remote broker (where a will sets `0` when the bridge goes away) unless `notificationsLocalOnly`. Default true.
   */
  notifications?: boolean;
  /** Default `$SYS/broker/connection/<clientId>/state`, as mosquitto's. */
  notificationTopic?: string;
  /** Publish the notifications on this broker only. Default false. */
  notificationsLocalOnly?: boolean;
  /**
   * When the bridge connects to the remote broker, as mosquitto's `start_type`: `automatic` (the default) at
   * start, and again after each loss; `lazy` only once `threshold` messages wait to go out, and it disconnects
   * after `idleTimeout` seconds in which nothing crossed either way (what the remote has for it meanwhile waits
   * in its session there); `once` at start, and never again once that connection is lost.
   */
  startType?: "automatic" | "lazy" | "once";
  /** `lazy`: how many messages waiting to go out make the bridge connect. Default 10; at most `maxInflight`. */
  threshold?: number;
  /** `lazy`: seconds without a message either way after which the bridge disconnects. Default 60. */
  idleTimeout?: number;
  /** Seconds before reconnecting after the connection is lost: the first wait and the longest. Default 5 and 30. */
  restartTimeout?: { base: number; cap: number };
  /** Messages each way that may be on their way to the other side at once. Default 1,000. */
  maxInflight?: number;
}
