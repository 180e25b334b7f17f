/**
 * MQTT control packets as plain objects, one interface per packet type, discriminated on `type`.
 *
 * @module
 */

import type { ReasonCode } from "../errors.ts";

/**
 * Quality of service: at most once (0), at least once (1), exactly once (2).
 *
 * @example Read the QoS bits of a PUBLISH fixed header
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode, type QoS } from "@x/mqtt/codec";
 * const qos: QoS = 2;
 * const bytes = encode({
 *   type: "publish", topic: "a", payload: new Uint8Array(), qos, packetId: 1, retain: false, dup: false,
 * }, 5);
 * assert.equal((bytes[0] >> 1) & 0b11, qos); // bits 2-1 of the first byte (MQTT 5 §3.3.1.2)
 * ```
 */
export type QoS = 0 | 1 | 2;

/**
 * The protocol levels on the wire: 3 is MQTT 3.1 (`MQIsdp`), 4 is MQTT 3.1.1, 5 is MQTT 5.0.
 *
 * @example Find the protocol level in a CONNECT
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode, ProtocolVersion } from "@x/mqtt/codec";
 * const version = ProtocolVersion.Mqtt311;
 * const bytes = encode(
 *   { type: "connect", protocolVersion: version, clientId: "a", cleanStart: true, keepAlive: 60 },
 *   version,
 * );
 * // The fixed header (2 bytes) and the protocol name "MQTT" (2 + 4 bytes) come first (MQTT 5 §3.1.2.2).
 * assert.equal(bytes[8], 4);
 * ```
 */
export const ProtocolVersion = { Mqtt31: 3, Mqtt311: 4, Mqtt5: 5 } as const;
/** A protocol level: 3 (MQTT 3.1), 4 (MQTT 3.1.1) or 5 (MQTT 5.0). */
export type ProtocolVersion = (typeof ProtocolVersion)[keyof typeof ProtocolVersion];

/**
 * The control packet type numbers of the fixed header (MQTT 5 §2.1.2).
 *
 * @example Read the type of an encoded packet
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode, PacketType } from "@x/mqtt/codec";
 * const bytes = encode({ type: "pingreq" }, 5);
 * assert.equal(bytes[0] >> 4, PacketType.pingreq); // the high nibble of the first byte: 12
 * ```
 */
export const PacketType = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  unsubscribe: 10,
  unsuback: 11,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
  auth: 15,
} as const;

/**
 * A user property: a name and a value, both UTF-8 strings. Names may repeat; order is kept.
 *
 * @example Repeated names survive a round trip, in order
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode, PacketDecoder, type UserProperty } from "@x/mqtt/codec";
 * const userProperties: UserProperty[] = [["unit", "celsius"], ["unit", "kelvin"]];
 * const decoder = new PacketDecoder({ version: 5 });
 * decoder.push(encode({
 *   type: "publish", topic: "t", payload: new Uint8Array(), qos: 0, retain: false, dup: false,
 *   properties: { userProperties },
 * }, 5));
 * const packet = decoder.next();
 * assert(packet?.type === "publish");
 * assert.deepEqual(packet.properties?.userProperties, userProperties);
 * ```
 */
export type UserProperty = [name: string, value: string];

/**
 * Every MQTT 5 property (§2.2.2.2), under its specification name in camelCase. Properties that hold 0 or 1 on
 * the wire are booleans here. Each packet type allows only some of them; see the per-packet types below.
 */
export interface Properties {
  /** 0x01: `true` when the payload is UTF-8 text. */
  payloadFormatIndicator?: boolean;
  /** 0x02: seconds until the message expires. */
  messageExpiryInterval?: number;
  /** 0x03: a MIME type or any text describing the payload. */
  contentType?: string;
  /** 0x08: the topic to send a response to. */
  responseTopic?: string;
  /** 0x09: correlation data of a request. */
  correlationData?: Uint8Array;
  /** 0x0B on SUBSCRIBE: the identifier given to the subscription, 1 to 268,435,455. */
  subscriptionIdentifier?: number;
  /** 0x0B on PUBLISH: the identifiers of every subscription the message matched, in wire order. */
  subscriptionIdentifiers?: number[];
  /** 0x11: seconds the session outlives the connection; 0xFFFFFFFF never expires. */
  sessionExpiryInterval?: number;
  /** 0x12: the client identifier the server assigned. */
  assignedClientIdentifier?: string;
  /** 0x13: the keep-alive the server requires, in seconds. */
  serverKeepAlive?: number;
  /** 0x15: the name of the enhanced authentication method. */
  authenticationMethod?: string;
  /** 0x16: authentication data of that method. */
  authenticationData?: Uint8Array;
  /** 0x17: whether the server may send reason strings and user properties on failures. */
  requestProblemInformation?: boolean;
  /** 0x18: seconds the server waits before publishing the will. */
  willDelayInterval?: number;
  /** 0x19: whether the client asks for response information in the CONNACK. */
  requestResponseInformation?: boolean;
  /** 0x1A: the basis for response topics, from the server. */
  responseInformation?: string;
  /** 0x1C: another server to use. */
  serverReference?: string;
  /** 0x1F: a human-readable reason. */
  reasonString?: string;
  /** 0x21: how many QoS 1 and 2 publishes the sender accepts at once, 1 to 65,535. */
  receiveMaximum?: number;
  /** 0x22: the highest topic alias the sender accepts. */
  topicAliasMaximum?: number;
  /** 0x23: the topic alias of a PUBLISH, 1 or more. */
  topicAlias?: number;
  /** 0x24: the highest QoS the server supports, 0 or 1 (absent means 2). */
  maximumQoS?: 0 | 1;
  /** 0x25: whether the server supports retained messages. */
  retainAvailable?: boolean;
  /** 0x26: user properties, in order, names may repeat. */
  userProperties?: UserProperty[];
  /** 0x27: the largest packet, in bytes, the sender accepts. */
  maximumPacketSize?: number;
  /** 0x28: whether the server supports wildcard subscriptions. */
  wildcardSubscriptionAvailable?: boolean;
  /** 0x29: whether the server supports subscription identifiers. */
  subscriptionIdentifiersAvailable?: boolean;
  /** 0x2A: whether the server supports shared subscriptions. */
  sharedSubscriptionAvailable?: boolean;
}

/** Properties of a CONNECT. */
export type ConnectProperties = Pick<
  Properties,
  | "sessionExpiryInterval"
  | "authenticationMethod"
  | "authenticationData"
  | "requestProblemInformation"
  | "requestResponseInformation"
  | "receiveMaximum"
  | "topicAliasMaximum"
  | "userProperties"
  | "maximumPacketSize"
>;

/** Properties of a will message, carried in the CONNECT payload. */
export type WillProperties = Pick<
  Properties,
  | "payloadFormatIndicator"
  | "messageExpiryInterval"
  | "contentType"
  | "responseTopic"
  | "correlationData"
  | "willDelayInterval"
  | "userProperties"
>;

/** Properties of a CONNACK. */
export type ConnAckProperties = Pick<
  Properties,
  | "sessionExpiryInterval"
  | "assignedClientIdentifier"
  | "serverKeepAlive"
  | "authenticationMethod"
  | "authenticationData"
  | "responseInformation"
  | "serverReference"
  | "reasonString"
  | "receiveMaximum"
  | "topicAliasMaximum"
  | "maximumQoS"
  | "retainAvailable"
  | "userProperties"
  | "maximumPacketSize"
  | "wildcardSubscriptionAvailable"
  | "subscriptionIdentifiersAvailable"
  | "sharedSubscriptionAvailable"
>;

/** Properties of a PUBLISH. */
export type PublishProperties = Pick<
  Properties,
  | "payloadFormatIndicator"
  | "messageExpiryInterval"
  | "contentType"
  | "responseTopic"
  | "correlationData"
  | "subscriptionIdentifiers"
  | "topicAlias"
  | "userProperties"
>;

/** Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK. */
export type AckProperties = Pick<Properties, "reasonString" | "userProperties">;

/** Properties of a SUBSCRIBE. */
export type SubscribeProperties = Pick<Properties, "subscriptionIdentifier" | "userProperties">;

/** Properties of an UNSUBSCRIBE. */
export type UnsubscribeProperties = Pick<Properties, "userProperties">;

/** Properties of a DISCONNECT. */
export type DisconnectProperties = Pick<
  Properties,
  "sessionExpiryInterval" | "serverReference" | "reasonString" | "userProperties"
>;

/** Properties of an AUTH. */
export type AuthProperties = Pick<
  Properties,
  "authenticationMethod" | "authenticationData" | "reasonString" | "userProperties"
>;

/** The will message of a CONNECT. */
export interface Will {
  /** The topic the will is published to (MQTT 5 §3.1.3.3). */
  topic: string;
  /** The application message the will carries (MQTT 5 §3.1.3.4). */
  payload: Uint8Array;
  /** The QoS the will is published with (MQTT 5 §3.1.2.6). */
  qos: QoS;
  /** Whether the will is published as a retained message (MQTT 5 §3.1.2.7). */
  retain: boolean;
  /** MQTT 5 only. */
  properties?: WillProperties;
}

/** CONNECT (§3.1): the first packet a client sends. */
export interface ConnectPacket {
  /** The packet type. */
  type: "connect";
  /** The protocol level; the protocol name follows from it (`MQIsdp` for 3, `MQTT` otherwise). */
  protocolVersion: ProtocolVersion;
  /** The client identifier; empty asks the server to assign one (MQTT 5 §3.1.3.1). */
  clientId: string;
  /** Clean Start in MQTT 5, Clean Session in 3.1 and 3.1.1. */
  cleanStart: boolean;
  /** Seconds; 0 turns keep-alive off. */
  keepAlive: number;
  /** The user name, if any (MQTT 5 §3.1.3.5). */
  username?: string;
  /** Binary data; a UTF-8 string in 3.1, bytes in 3.1.1 and 5.0. */
  password?: Uint8Array;
  /** The will message, published when the connection ends without a normal DISCONNECT (MQTT 5 §3.1.2.5). */
  will?: Will;
  /** MQTT 5 only. */
  properties?: ConnectProperties;
  /**
   * 3.1 and 3.1.1: the client is another broker's bridge, flagged by the top bit (0x80) of the protocol level
   * (mosquitto's `try_private`, outside the specification). Its broker sends it back nothing it published and
   * keeps the retain flag of what it forwards, as MQTT 5's No Local and Retain As Published would.
   */
  bridge?: boolean;
}

/** CONNACK (§3.2). In 3.1 and 3.1.1 the return code is mapped to its MQTT 5 reason code. */
export interface ConnAckPacket {
  /** The packet type. */
  type: "connack";
  /** Whether the server resumed a session it kept for this client (MQTT 5 §3.2.2.1.1). */
  sessionPresent: boolean;
  /** The result of the connection attempt; 0 means success (MQTT 5 §3.2.2.2). */
  reasonCode: ReasonCode;
  /** MQTT 5 only. */
  properties?: ConnAckProperties;
}

/** PUBLISH (§3.3). */
export interface PublishPacket {
  /** The packet type. */
  type: "publish";
  /** The topic name; empty only in MQTT 5 when a topic alias stands for it. */
  topic: string;
  /** The application message (MQTT 5 §3.3.3). */
  payload: Uint8Array;
  /** The delivery guarantee of this transmission (MQTT 5 §3.3.1.2). */
  qos: QoS;
  /** To a server: keep it as the topic's retained message; from a server: it is one (MQTT 5 §3.3.1.3). */
  retain: boolean;
  /** Whether this re-sends an earlier attempt; always `false` when `qos` is 0 (MQTT 5 §3.3.1.1). */
  dup: boolean;
  /** Present exactly when `qos > 0`. */
  packetId?: number;
  /** MQTT 5 only. */
  properties?: PublishProperties;
}

/** PUBACK, PUBREC, PUBREL or PUBCOMP: the acknowledgements of the QoS 1 and 2 flows (§3.4-§3.7). */
export interface PublishAckPacket<T extends "puback" | "pubrec" | "pubrel" | "pubcomp"> {
  /** The packet type. */
  type: T;
  /** The packet identifier of the PUBLISH this acknowledges. */
  packetId: number;
  /** Always 0 in 3.1 and 3.1.1. */
  reasonCode: ReasonCode;
  /** MQTT 5 only. */
  properties?: AckProperties;
}

/** PUBACK (§3.4). */
export type PubAckPacket = PublishAckPacket<"puback">;
/** PUBREC (§3.5). */
export type PubRecPacket = PublishAckPacket<"pubrec">;
/** PUBREL (§3.6). */
export type PubRelPacket = PublishAckPacket<"pubrel">;
/** PUBCOMP (§3.7). */
export type PubCompPacket = PublishAckPacket<"pubcomp">;

/**
 * Retain handling of an MQTT 5 subscription: 0 send retained messages, 1 only for a new subscription,
 * 2 never.
 *
 * @example Find it in the subscription options byte of a SUBSCRIBE
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode, type RetainHandling } from "@x/mqtt/codec";
 * const retainHandling: RetainHandling = 2;
 * const bytes = encode({
 *   type: "subscribe",
 *   packetId: 1,
 *   subscriptions: [
 *     { topicFilter: "a/#", qos: 1, noLocal: false, retainAsPublished: false, retainHandling },
 *   ],
 * }, 5);
 * // The options byte follows the fixed header (2), packet id (2), properties (1) and filter (2 + 3);
 * // retain handling is its bits 5-4 (MQTT 5 §3.8.3.1).
 * assert.equal(bytes[10] >> 4, retainHandling);
 * ```
 */
export type RetainHandling = 0 | 1 | 2;

/** One topic filter of a SUBSCRIBE with its options. */
export interface Subscription {
  /** The topic filter, possibly with `+` and `#` wildcards or a `$share/` prefix (MQTT 5 §4.7, §4.8.2). */
  topicFilter: string;
  /** The maximum QoS requested. */
  qos: QoS;
  /** MQTT 5: do not deliver messages this client published. */
  noLocal: boolean;
  /** MQTT 5: keep the retain flag of forwarded messages. */
  retainAsPublished: boolean;
  /** MQTT 5: when to send retained messages. */
  retainHandling: RetainHandling;
}

/** SUBSCRIBE (§3.8). In 3.1 and 3.1.1 the MQTT 5 options are `false`, `false` and `0`. */
export interface SubscribePacket {
  /** The packet type. */
  type: "subscribe";
  /** The packet identifier, echoed by the SUBACK. */
  packetId: number;
  /** The requested topic filters with their options, at least one (MQTT 5 §3.8.3). */
  subscriptions: Subscription[];
  /** MQTT 5 only. */
  properties?: SubscribeProperties;
}

/** SUBACK (§3.9): one reason code per requested filter (granted QoS 0-2, or a failure code). */
export interface SubAckPacket {
  /** The packet type. */
  type: "suback";
  /** The packet identifier of the SUBSCRIBE this answers. */
  packetId: number;
  /** One code per topic filter of the SUBSCRIBE, in the same order (MQTT 5 §3.9.3). */
  reasonCodes: ReasonCode[];
  /** MQTT 5 only. */
  properties?: AckProperties;
}

/** UNSUBSCRIBE (§3.10). */
export interface UnsubscribePacket {
  /** The packet type. */
  type: "unsubscribe";
  /** The packet identifier, echoed by the UNSUBACK. */
  packetId: number;
  /** The topic filters to remove, at least one (MQTT 5 §3.10.3). */
  topicFilters: string[];
  /** MQTT 5 only. */
  properties?: UnsubscribeProperties;
}

/** UNSUBACK (§3.11): one reason code per filter in MQTT 5, none in 3.1 and 3.1.1. */
export interface UnsubAckPacket {
  /** The packet type. */
  type: "unsuback";
  /** The packet identifier of the UNSUBSCRIBE this answers. */
  packetId: number;
  /** One code per filter of the UNSUBSCRIBE, in order; empty in 3.1 and 3.1.1 (MQTT 5 §3.11.3). */
  reasonCodes: ReasonCode[];
  /** MQTT 5 only. */
  properties?: AckProperties;
}

/** PINGREQ (§3.12). */
export interface PingReqPacket {
  /** The packet type. */
  type: "pingreq";
}

/** PINGRESP (§3.13). */
export interface PingRespPacket {
  /** The packet type. */
  type: "pingresp";
}

/** DISCONNECT (§3.14). The reason code is always 0 in 3.1 and 3.1.1. */
export interface DisconnectPacket {
  /** The packet type. */
  type: "disconnect";
  /** Why the connection is closing; 0 is a normal disconnection (MQTT 5 §3.14.2.1). */
  reasonCode: ReasonCode;
  /** MQTT 5 only. */
  properties?: DisconnectProperties;
}

/** AUTH (§3.15), MQTT 5 only. */
export interface AuthPacket {
  /** The packet type. */
  type: "auth";
  /** 0x00 success, 0x18 continue authentication, or 0x19 re-authenticate (MQTT 5 §3.15.2.1). */
  reasonCode: ReasonCode;
  /** The authentication method and data of this step. */
  properties?: AuthProperties;
}

/** Any MQTT control packet. */
export type Packet =
  | ConnectPacket
  | ConnAckPacket
  | PublishPacket
  | PubAckPacket
  | PubRecPacket
  | PubRelPacket
  | PubCompPacket
  | SubscribePacket
  | SubAckPacket
  | UnsubscribePacket
  | UnsubAckPacket
  | PingReqPacket
  | PingRespPacket
  | DisconnectPacket
  | AuthPacket;

/**
 * The `type` of any packet.
 *
 * @example From a packet's name to its number
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Packet, PacketType, type PacketTypeName } from "@x/mqtt/codec";
 * const packet: Packet = { type: "pingresp" };
 * const name: PacketTypeName = packet.type;
 * assert.equal(PacketType[name], 13);
 * ```
 */
export type PacketTypeName = Packet["type"];
