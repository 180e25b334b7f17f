/**
 * The limits of a broker-side connection: {@linkcode SessionMachineOptions} checked and resolved once per options
 * object, and the limits a client announces in its CONNECT. Plain data and checks; no connection state.
 *
 * @module
 */

import { MAX_PACKET_SIZE } from "../codec/decoder.ts";
import type { ConnectProperties, QoS } from "../codec/packet.ts";

/**
 * The largest packet a {@linkcode SessionMachine} accepts by default: 1 MiB, fixed header included, as EMQX's
 * `max_packet_size`. A packet announcing more is refused from its fixed header, before its body is read.
 */
export const DEFAULT_MAXIMUM_PACKET_SIZE: number = 1_048_576;

/** Options of {@linkcode SessionMachine}. */
export interface SessionMachineOptions {
  /** Milliseconds the client has to send CONNECT and be accepted; 0 waits forever. @default 10000 */
  connectTimeoutMs?: number;
  /**
   * The largest packet accepted from the client, in bytes, fixed header included; advertised in an MQTT 5
   * CONNACK (Maximum Packet Size). A packet announcing more is refused as soon as its fixed header arrives,
   * without reading its body: MQTT 5 clients get DISCONNECT 0x95 Packet Too Large, earlier versions a closed
   * connection [MQTT-3.2.2-15]. The CONNECT itself is held to it too. At least 2; 0 sets no limit but the
   * protocol's (256 MiB), so that one connection can make the broker hold that much. @default 1048576 (1 MiB)
   */
  maximumPacketSize?: number;
  /** How many QoS 1 and 2 PUBLISH the client may have unacknowledged (MQTT 5 Receive Maximum). @default 65535 */
  receiveMaximum?: number;
  /** The highest topic alias accepted from an MQTT 5 client; 0 accepts none. @default 16 */
  topicAliasMaximum?: number;
  /**
   * The highest QoS accepted in PUBLISH and wills (MQTT 5 Maximum QoS); an MQTT 5 CONNACK advertises it.
   * Subscriptions are still granted up to 2 [MQTT-3.2.2-10]. @default 2
   */
  maximumQoS?: QoS;
  /** Whether retained messages are accepted (MQTT 5 Retain Available). @default true */
  retainAvailable?: boolean;
  /**
   * The most QoS 1 and 2 messages in flight to the client, for clients of any version; an MQTT 5 client's
   * Receive Maximum lowers it further. @default 65535
   */
  maxInflightMessages?: number;
}

/** The limits a client announced in its CONNECT (MQTT 5), or the defaults. */
export interface ClientLimits {
  readonly receiveMaximum: number;
  readonly maximumPacketSize: number;
  readonly topicAliasMaximum: number;
  readonly authenticationMethod: string | undefined;
  readonly requestProblemInformation: boolean;
}

/** {@linkcode SessionMachineOptions} checked and resolved. */
export interface Limits {
  /** The options as given, to tell whether the options object changed since. */
  readonly given: readonly unknown[];
  readonly connectTimeoutMs: number;
  /** The largest packet accepted, or `undefined` for the protocol's limit (not advertised). */
  readonly maximumPacketSize: number | undefined;
  readonly receiveMaximum: number;
  readonly topicAliasMaximum: number;
  readonly maximumQoS: QoS;
  readonly retainAvailable: boolean;
  readonly maxInflight: number;
  /** A client's limits until its CONNECT says otherwise. */
  readonly client: ClientLimits;
  readonly decoder: { maximumPacketSize: number | undefined };
}

/** Resolved limits by options object: the sessions of one broker share one. */
const resolvedLimits = new WeakMap<SessionMachineOptions, Limits>();

/** The options, checked and resolved; the same object for the same options object while its values stay. */
export function limitsOf(options: SessionMachineOptions): Limits {
  const given = [
    options.connectTimeoutMs,
    options.maximumPacketSize,
    options.receiveMaximum,
    options.topicAliasMaximum,
    options.maximumQoS,
    options.retainAvailable,
    options.maxInflightMessages,
  ];
  const known = resolvedLimits.get(options);
  if (known !== undefined && known.given.every((value, index) => value === given[index])) return known;
  const limits = resolveLimits(options, given);
  resolvedLimits.set(options, limits);
  return limits;
}

function resolveLimits(options: SessionMachineOptions, given: readonly unknown[]): Limits {
  const maximumPacketSize = options.maximumPacketSize ?? DEFAULT_MAXIMUM_PACKET_SIZE;
  if (!Number.isInteger(maximumPacketSize) || maximumPacketSize === 1 || maximumPacketSize < 0) {
    throw new RangeError(
      `Cannot create session: maximum packet size ${maximumPacketSize} is neither 0 (none) nor a whole number of at least 2`,
    );
  }
  const maxInflight = options.maxInflightMessages ?? 65_535;
  if (!(maxInflight >= 1)) {
    throw new RangeError(`Cannot create session: at most ${maxInflight} messages in flight`);
  }
  const receiveMaximum = options.receiveMaximum ?? 65_535;
  if (receiveMaximum < 1 || receiveMaximum > 65_535) {
    throw new RangeError(`Cannot create session: receive maximum ${receiveMaximum} is not 1 to 65535`);
  }
  const topicAliasMaximum = options.topicAliasMaximum ?? 16;
  if (topicAliasMaximum < 0 || topicAliasMaximum > 65_535) {
    throw new RangeError(`Cannot create session: topic alias maximum ${topicAliasMaximum} is not 0 to 65535`);
  }
  const limit = maximumPacketSize === 0 || maximumPacketSize >= MAX_PACKET_SIZE
    ? undefined
    : maximumPacketSize;
  return {
    given,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    maximumPacketSize: limit,
    receiveMaximum,
    topicAliasMaximum,
    maximumQoS: options.maximumQoS ?? 2,
    retainAvailable: options.retainAvailable ?? true,
    maxInflight,
    client: {
      receiveMaximum: Math.min(65_535, maxInflight),
      maximumPacketSize: Infinity,
      topicAliasMaximum: 0,
      authenticationMethod: undefined,
      requestProblemInformation: true,
    },
    decoder: { maximumPacketSize: limit },
  };
}

/**
 * The limits an MQTT 5 client announced in its CONNECT properties; the broker's Maximum in flight caps its
 * Receive Maximum.
 */
export function clientLimits(properties: ConnectProperties, limits: Limits): ClientLimits {
  return {
    receiveMaximum: Math.min(properties.receiveMaximum ?? 65_535, limits.maxInflight),
    maximumPacketSize: properties.maximumPacketSize ?? Infinity,
    topicAliasMaximum: properties.topicAliasMaximum ?? 0,
    authenticationMethod: properties.authenticationMethod,
    requestProblemInformation: properties.requestProblemInformation ?? true,
  };
}
