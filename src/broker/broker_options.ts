/**
 * The broker's options and the types its hooks see: `BrokerOptions`, `ListenOptions`, `ClientInfo` and the
 * decisions hooks return. Types, their docs and two tiny helpers only; no broker state lives here.
 *
 * @module
 */

import type { BridgeOptions } from "./bridge_options.ts";
import type { PublishPacket, PublishProperties, QoS, Subscription } from "../codec/packet.ts";
import { ReasonCode } from "../errors.ts";
import type { BrokerMachineOptions } from "../machine/broker_machine.ts";
import type { SessionMachineOptions } from "../machine/session_machine.ts";
import type { AclFile } from "./acl_file.ts";
import type { PasswordEntry } from "./password_file.ts";
import type { BrokerStore } from "./store.ts";
import type { ClusterLink } from "./cluster_link.ts";

/** Who is connecting, for the hooks. */
export interface ClientInfo {
  /** The CONNECT's client identifier (empty when the client asks for one); once connected, the one in use. */
  clientId: string;
  /** The user name of the CONNECT, if it had one. */
  username?: string;
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  protocolVersion: number;
  /** Where the connection comes from, when the listener knows. */
  remote?: string;
}

/** A decision of a hook: `true` allows, `false` refuses with "not authorized", a reason code refuses with it. */
export type Decision = boolean | ReasonCode;

/**
 * The answer to one step of MQTT 5 enhanced authentication: send a challenge and wait for the client's next
 * AUTH, accept (with optional final data for the client), or refuse.
 */
export type EnhancedAuthResult = { challenge: Uint8Array } | { accept: true; data?: Uint8Array } | Decision;

/** One step of MQTT 5 enhanced authentication, for {@linkcode BrokerOptions.enhancedAuthenticate}. */
export interface EnhancedAuthStep {
  /** The authentication method the client named in CONNECT. */
  method: string;
  /** The client's authentication data of this step. */
  data: Uint8Array | undefined;
  /** Whether this is a re-authentication of a connected client (AUTH 0x19) rather than a new connection. */
  reauthenticating: boolean;
}

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** What a log line is about, for structured logs (`--log-format json`). */
export interface LogFields {
  /** The client identifier the line is about. */
  client?: string;
  /** What happened: `connected`, `disconnected`, `refused`, `behind`, `caught_up`, `slow_consumer`. */
  event?: string;
  /** The cluster node that logged it. */
  node?: string;
}

/** Options of a {@linkcode Broker}. */
export interface BrokerOptions extends BrokerMachineOptions, SessionMachineOptions {
  /** Accept clients without a user name. Default true. */
  allowAnonymous?: boolean;
  /**
   * Users and password hashes (a mosquitto password file, see `parsePasswordFile`): a client with a user name
   * must be listed and give the right password. Checked before `authenticate`.
   */
  passwords?: ReadonlyMap<string, PasswordEntry>;
  /**
   * Users of {@linkcode BrokerOptions.passwords} who may use the admin API of an HTTP listener (`/api/…`, HTTP
   * Basic authentication). Without any, the API answers 403.
   */
  adminUsers?: readonly string[];
  /** Bridges to other brokers, each started by `listen` or `start` and stopped by `close`. */
  bridges?: readonly BridgeOptions[];
  /**
   * Access rules (a mosquitto ACL file, see `parseAclFile`), checked before the authorization hooks. A publish
   * they do not allow is refused (MQTT 5: reason 0x87; 3.x: dropped). A subscription is granted when some
   * topic it can match is readable (`canSubscribe`), else refused (0x87; 3.x: 0x80); every message delivered,
   * retained and queued ones included, then goes only to clients that may read its topic (`canRead`).
   */
  acl?: AclFile;
  /**
   * MQTT 5 enhanced authentication (SASL-like challenge and response): called with each step for clients whose
   * CONNECT names an authentication method. Without it such clients are refused with 0x8C.
   */
  enhancedAuthenticate?: (
    client: ClientInfo,
    step: EnhancedAuthStep,
  ) => EnhancedAuthResult | Promise<EnhancedAuthResult>;
  /** Decides whether a client may connect; runs after the anonymous and password checks. Default: allow. */
  authenticate?: (client: ClientInfo, password: Uint8Array | undefined) => Decision | Promise<Decision>;
  /** Decides whether a client may publish a message. Default: allow. */
  authorizePublish?: (client: ClientInfo, packet: PublishPacket) => Decision | Promise<Decision>;
  /**
   * Decides whether a client may subscribe: `true`, `false`, a reason code, or the QoS to grant (lower than
   * asked). Default: allow as asked.
   */
  authorizeSubscribe?: (
    client: ClientInfo,
    subscription: Subscription,
  ) => Decision | QoS | Promise<Decision | QoS>;
  /**
   * Decides whether a message may be delivered to a client: called for every delivery, retained messages sent
   * on subscribing and messages queued for an offline session included, after the ACL's read rules allowed
   * it; `false` skips that client. Subscriptions are decided by `authorizeSubscribe`; this filters what they
   * bring, like aedes' `authorizeForward`. It runs while a message is routed, so it must be synchronous and
   * quick; the payload is only valid during the call (copy it to keep it). A hook that throws refuses.
   * Default: every message is delivered.
   *
   * @example Deliver `inbox/NAME` only to the user NAME
   * ```ts
   * import { Broker } from "@x/mqtt/broker";
   * const broker = new Broker({
   *   authorizeRead: (client, message) =>
   *     !message.topic.startsWith("inbox/") || message.topic === `inbox/${client.username}`,
   * });
   * await broker.close();
   * ```
   */
  authorizeRead?: (
    client: { readonly clientId: string; readonly username?: string },
    message: {
      readonly topic: string;
      readonly qos: QoS;
      readonly retain: boolean;
      readonly payload: Uint8Array;
      readonly properties?: PublishProperties;
    },
  ) => boolean;
  /**
   * Backpressure's high watermark: once more than this many bytes wait to be written to a client, the
   * connections whose messages feed it are no longer read (TCP slows their clients down) until fewer than
   * half as many wait; at most for `maxPublisherPause` at a time. Default 1 MiB.
   */
  backpressureBytes?: number;
  /**
   * The longest a client that is behind may keep the connections feeding it paused, in ms. A client still
   * behind after it counts as slow: its QoS 0 messages are dropped and its QoS 1 and 2 messages wait in its
   * session queue until it catches up, it is disconnected once it stayed behind for `slowConsumerTimeout`,
   * and it may pause its publishers again only 10 times this long later, so that whatever one subscriber
   * does, the others of its publishers keep at least nine tenths of their rate. Default 1000.
   */
  maxPublisherPause?: number;
  /**
   * How long a client that is behind may take no byte at all (it stopped reading) before it counts as slow
   * (see `maxPublisherPause`), in ms: so a stuck client holds its publishers up only this long. A client that
   * reads slowly takes bytes in bursts, a third of its socket's send buffer at a time (the kernel wakes a
   * writer only then), so one reading below a few MB/s may count as stalled: raise this to let such clients
   * slow their publishers down for longer. Default 100.
   */
  maxWriteStall?: number;
  /**
   * The most bytes waiting to be written to one client before it counts as slow at once (see
   * `maxPublisherPause`), however little time it was behind; twice as many close its connection. Default
   * 16 MiB.
   */
  maxOutgoingBytes?: number;
  /**
   * Log every packet in and out at the `debug` level (a second decoder reads a copy of the traffic, so it
   * costs: for debugging). Payloads and passwords are never logged. Default false.
   */
  logPackets?: boolean;
  /** The longest client identifier accepted, in UTF-8 bytes; longer ones get 0x85. Default 256. */
  maxClientIdLength?: number;
  /**
   * Whether a client may connect with an empty client identifier and be assigned one (`autoIdPrefix`), as
   * mosquitto's `allow_zero_length_clientid`. False refuses it with 0x85 (3.1.1: 0x02). Default true.
   */
  allowZeroLengthClientId?: boolean;
  /**
   * The longest keep-alive a client may ask for, in seconds, as mosquitto's `max_keepalive`. An MQTT 5 client
   * that asks for more, or for 0 (none), gets this value as Server Keep Alive in its CONNACK and must use it
   * [MQTT-3.2.2-21]; the broker then closes its connection after 1.5 times it without a packet
   * [MQTT-3.1.2-22]. An MQTT 3.1.1 or 3.1 client cannot be told, so it is refused with CONNACK 0x02 identifier
   * rejected (the documented behaviour of mosquitto 2.1; Debian's mosquitto 2.0.11 lets such clients in).
   * From 1 to 65,535 (65,535 only catches keep-alive 0); 0, mosquitto 2.1's "no maximum", and the default set
   * no maximum: every client keeps the keep-alive it asked for [MQTT-3.2.2-22].
   */
  maxKeepAlive?: number;
  /** The longest topic name accepted in a PUBLISH, in characters. Default 65,535. */
  maxTopicLength?: number;
  /** The most levels a published topic, or a subscription's filter (refused with 0x8F), may have. Default 128. */
  maxTopicLevels?: number;
  /**
   * PUBLISH packets accepted per second and connection (bursts of up to one second's worth); beyond it they
   * are refused with 0x97 quota exceeded (MQTT 5) or dropped (3.x). 0, the default, sets no limit.
   */
  maxMessagesPerSecond?: number;
  /** The most network connections at once; more are closed as they arrive. Default 10,000. */
  maxConnections?: number;
  /**
   * The most connections at once that have not sent their CONNECT yet. Past it, the ones that have waited
   * longest, if longer than a second, are closed as new ones arrive, so that connections left half-open (a
   * flood, a slowloris) can hold neither memory nor the connection slots of clients that do connect. Default
   * 1,000.
   */
  maxConnecting?: number;
  /** Seconds between `$SYS/broker/…` updates, as mosquitto's `sys_interval`; 0 turns them off. Default 10. */
  sysInterval?: number;
  /**
   * Where log lines go, with what they are about when that is known. Default: nowhere. Lines never contain
   * passwords or payloads.
   */
  log?: (level: LogLevel, message: string, fields?: LogFields) => void;
  /**
   * Where sessions, their subscriptions and messages, wills and retained messages outlive the process (see
   * `openSqliteStore`). The broker restores it when created (publishing wills that came due meanwhile), writes
   * every change before the acknowledgements that depend on it go out, and closes it on
   * {@linkcode Broker.close}. Default: memory only.
   */
  store?: BrokerStore;
  /**
   * The cluster this broker is a node of (`natsCluster()` or `new Cluster()` from `@x/mqtt/cluster`): messages,
   * retained messages and sessions are shared with the other nodes; QoS 1 and 2 messages are acknowledged
   * once the cluster stored them. Default: none, a broker on its own.
   */
  cluster?: ClusterLink;
}

/** Options of {@linkcode Broker.listen}. */
export interface ListenOptions {
  /** Default 127.0.0.1. */
  hostname?: string;
  /** Default 1883; 0 picks a free port. */
  port?: number;
  /** PEM certificate and key for a TLS listener (or `wss://` with `websocket`). */
  cert?: string;
  /** The PEM private key of {@linkcode ListenOptions.cert}. */
  key?: string;
  /** Accept MQTT over WebSocket instead of raw TCP. */
  websocket?: boolean;
  /** The WebSocket path. Default `/mqtt`. */
  path?: string;
  /**
   * An HTTP listener: MQTT over WebSocket at `path`, and `GET /metrics` (Prometheus' text format) on the same
   * port.
   */
  http?: boolean;
  /** The most connections at once through this listener (besides the broker's `maxConnections`). */
  maxConnections?: number;
}

/** The reason code of a hook's decision: `true` is success, `false` is `fallback`. */
export function decisionCode(decision: Decision, fallback: ReasonCode): ReasonCode {
  if (decision === true) return ReasonCode.Success;
  if (decision === false) return fallback;
  return decision;
}

/** Logs through `options.log`, when set (called as its method, as the broker always did). */
export function log(options: BrokerOptions, level: LogLevel, message: string, fields?: LogFields): void {
  options.log?.(level, message, fields);
}
