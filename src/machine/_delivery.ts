/**
 * What a broker keeps of an application message and of each delivery of it, and the encoding of an outbound
 * PUBLISH that fan-out shares among subscribers. Private to the session and broker machines.
 *
 * @module
 */

import { encode } from "../codec/encode.ts";
import type { ProtocolVersion, PublishPacket, PublishProperties, QoS, Will } from "../codec/packet.ts";

import type { Millis } from "./client_machine.ts";
import { hasProperties } from "../codec/properties.ts";

/**
 * An application message as the broker holds it: routed once and shared by every delivery. Its payload is a
 * view of the received chunk until something keeps the message beyond the current turn, which first makes it
 * the message's own copy ({@linkcode keepMessage}).
 */
export interface BrokerMessage {
  /** The topic name. */
  readonly topic: string;
  /** The payload. */
  payload: Uint8Array;
  /** The QoS it was published with. */
  readonly qos: QoS;
  /** The RETAIN flag it was published with. */
  readonly retain: boolean;
  /** The properties to forward, without the topic alias, subscription identifiers and message expiry. */
  properties: PublishProperties | undefined;
  /** When the message expires, from its Message Expiry Interval; `undefined` when it never does. */
  readonly expiresAt: Millis | undefined;
  /** The client identifier of the publisher, for No Local; `undefined` for the broker's own messages. */
  readonly publisher: string | undefined;
  /** Whether `payload` is the message's own copy. */
  owned: boolean;
  /** Encodings shared by the deliveries of the current turn, by {@linkcode encodingKey} or, plain, a number. */
  encodings: Map<string | number, EncodedPublish> | undefined;
}

/** One message queued or in flight to one session. */
export interface Delivery {
  /** The message. */
  readonly message: BrokerMessage;
  /** The QoS of this delivery: the lower of the published and the granted QoS. */
  readonly qos: QoS;
  /** The RETAIN flag to send. */
  readonly retain: boolean;
  /** The identifiers of the subscriptions that matched (MQTT 5), or `undefined`. */
  readonly subscriptionIdentifiers: number[] | undefined;
  /**
   * The shared subscription (`$share/{group}/{filter}`) it came through, when it did: until it is completed,
   * it may be handed to another member of that group (MQTT 5 §4.8.2).
   */
  readonly shared?: string;
}

/** A delivery that has a packet identifier: sent and not yet completed. */
export interface InflightDelivery extends Delivery {
  /** Its packet identifier. */
  readonly packetId: number;
  /** `true` once PUBREC arrived and PUBREL was sent (QoS 2). */
  released: boolean;
}

/** The bytes of a PUBLISH with a placeholder packet identifier, and where that identifier sits. */
export interface EncodedPublish {
  /** The whole packet, shared: copy it before patching. */
  readonly bytes: Uint8Array;
  /** The offset of the 2-byte packet identifier, or -1 at QoS 0. */
  readonly packetIdOffset: number;
}

/** Counters for tests and benchmarks: how many PUBLISH packets the broker side has encoded. */
export const publishEncodeCounter: { count: number } = { count: 0 };

/**
 * Makes the payload (and correlation data) the message's own copy, once, so that keeping the message does not
 * pin the chunk it came in.
 */
export function keepMessage(message: BrokerMessage): void {
  if (!message.owned) {
    message.payload = message.payload.slice();
    const correlationData = message.properties?.correlationData;
    // The correlation data is a view of the received chunk too.
    if (correlationData !== undefined) {
      message.properties = { ...message.properties, correlationData: correlationData.slice() };
    }
    message.owned = true;
  }
}

/** The seconds a message has left at `now`, rounded up; 0 when it has expired; `undefined` when it never does. */
export function remainingSeconds(message: BrokerMessage, now: Millis): number | undefined {
  if (message.expiresAt === undefined) return undefined;
  const left = message.expiresAt - now;
  return left <= 0 ? 0 : Math.ceil(left / 1000);
}

/** Builds the message a PUBLISH carries, with the properties the broker forwards (MQTT 5 §3.3.2.3). */
export function messageFromPublish(
  now: Millis,
  packet: PublishPacket,
  publisher: string | undefined,
): BrokerMessage {
  let properties = packet.properties;
  let expiresAt: Millis | undefined;
  if (properties !== undefined) {
    const { topicAlias: _a, subscriptionIdentifiers: _s, messageExpiryInterval, ...rest } = properties;
    if (messageExpiryInterval !== undefined) expiresAt = now + messageExpiryInterval * 1000;
    properties = hasProperties(rest) ? rest : undefined;
  }
  return {
    topic: packet.topic,
    payload: packet.payload,
    qos: packet.qos,
    retain: packet.retain,
    properties,
    expiresAt,
    publisher,
    owned: false,
    encodings: undefined,
  };
}

/** Everything that makes two encodings of one message differ, as a cache key. */
export function encodingKey(
  version: ProtocolVersion,
  qos: QoS,
  retain: boolean,
  subscriptionIdentifiers: number[] | undefined,
  topicAlias: number,
  withTopic: boolean,
  expiry: number | undefined,
): string {
  if (version < 5) return `3${qos}${retain ? 1 : 0}`; // 3.1 and 3.1.1 PUBLISH are byte for byte alike
  return `5${qos}${retain ? 1 : 0}|${subscriptionIdentifiers ?? ""}|${topicAlias}${withTopic ? "t" : ""}|${
    expiry ?? ""
  }`;
}

/**
 * Encodes a delivery's PUBLISH (from {@linkcode publishPacket}) with the placeholder packet identifier 1, patched
 * per delivery, and counts the encoding in {@linkcode publishEncodeCounter}.
 */
export function encodePublish(packet: PublishPacket, version: ProtocolVersion): EncodedPublish {
  if (packet.qos > 0) packet.packetId = 1;
  const bytes = encode(packet, version);
  publishEncodeCounter.count++;
  let packetIdOffset = -1;
  if (packet.qos > 0) {
    let position = 1;
    while (bytes[position] & 0x80) position++;
    position++;
    packetIdOffset = position + 2 + ((bytes[position] << 8) | bytes[position + 1]);
  }
  return { bytes, packetIdOffset };
}

/**
 * The PUBLISH of one delivery of a message, without its packet identifier: what {@linkcode encodePublish}
 * encodes, and what a session that needs no shared encoding encodes itself.
 */
export function publishPacket(
  message: BrokerMessage,
  version: ProtocolVersion,
  qos: QoS,
  retain: boolean,
  subscriptionIdentifiers: number[] | undefined,
  topicAlias: number,
  withTopic: boolean,
  expiry: number | undefined,
): PublishPacket {
  const packet: PublishPacket = {
    type: "publish",
    topic: withTopic ? message.topic : "",
    payload: message.payload,
    qos,
    retain,
    dup: false,
  };
  if (version === 5) {
    let properties: PublishProperties | undefined = message.properties;
    if (expiry !== undefined || subscriptionIdentifiers !== undefined || topicAlias > 0) {
      properties = { ...properties };
      // [MQTT-3.3.2-6] the forwarded expiry interval is what is left of it.
      if (expiry !== undefined) properties.messageExpiryInterval = expiry;
      if (topicAlias > 0) properties.topicAlias = topicAlias;
      // [MQTT-3.3.4-3] [MQTT-3.3.4-4] the identifiers of every matching subscription.
      if (subscriptionIdentifiers !== undefined) properties.subscriptionIdentifiers = subscriptionIdentifiers;
    }
    if (properties !== undefined) packet.properties = properties;
  }
  return packet;
}

/** The PUBLISH a will becomes: its topic, payload, QoS, RETAIN flag [MQTT-3.1.2-14] [MQTT-3.1.2-15] and
 * properties, without the will delay. */
export function willPublish(will: Will): PublishPacket {
  const { willDelayInterval: _, ...properties } = will.properties ?? {};
  return {
    type: "publish",
    topic: will.topic,
    payload: will.payload,
    qos: will.qos,
    retain: will.retain,
    dup: false,
    properties,
  };
}
