/**
 * Encoding of MQTT control packets for protocol levels 3 (MQTT 3.1), 4 (3.1.1) and 5 (5.0).
 *
 * @module
 */

import { MAX_VARINT, utf8Length, varintSize, Writer, writeU16, writeUtf8, writeVarint } from "./_bytes.ts";
import { hasProperties, propertiesSize, WILL_PROPERTIES, writeProperties } from "./properties.ts";
import {
  type AuthPacket,
  type ConnAckPacket,
  type ConnectPacket,
  type DisconnectPacket,
  type Packet,
  PacketType,
  type ProtocolVersion,
  type PublishAckPacket,
  type PublishPacket,
  type SubAckPacket,
  type SubscribePacket,
  type UnsubAckPacket,
  type UnsubscribePacket,
} from "./packet.ts";
import { MqttError, ReasonCode, returnCodeFromReasonCode } from "../errors.ts";

/** A PINGREQ and a PINGRESP never change: encode them once. */
const PINGREQ = Uint8Array.of(0xc0, 0);
const PINGRESP = Uint8Array.of(0xd0, 0);

/**
 * Encodes one packet into a new `Uint8Array` for the given protocol level.
 *
 * Fields that the level cannot carry are left out: properties below level 5, reason codes of acknowledgements
 * and DISCONNECT below level 5. A SUBACK failure code becomes 0x80 and a CONNACK reason code becomes the
 * closest 3.x return code below level 5.
 *
 * @param packet The packet to encode.
 * @param version The protocol level: 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0).
 * @returns The packet's bytes, fixed header included.
 * @throws {MqttError} When the protocol forbids the packet: a wildcard in a PUBLISH topic, a property the
 *   packet does not allow, AUTH below level 5, a packet larger than the protocol's maximum.
 * @throws {RangeError} When a number is out of range (QoS 3, packet id 0, a string over 65,535 bytes).
 * @throws {TypeError} When a string contains U+0000 or a lone surrogate.
 *
 * @example Encode a PUBLISH
 * ```ts
 * import { encode } from "@x/mqtt/codec";
 * const bytes = encode({
 *   type: "publish", topic: "a/b", payload: new TextEncoder().encode("hi"),
 *   qos: 1, packetId: 7, retain: false, dup: false,
 * }, 4);
 * console.log(bytes); // Uint8Array(11) [50, 9, 0, 3, 97, 47, 98, 0, 7, 104, 105]
 * ```
 */
export function encode(packet: Packet, version: ProtocolVersion): Uint8Array {
  switch (packet.type) {
    case "publish":
      return encodePublish(packet, version);
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return encodePublishAck(packet, version);
    case "connect":
      return encodeConnect(packet, version);
    case "connack":
      return encodeConnAck(packet, version);
    case "subscribe":
      return encodeSubscribe(packet, version);
    case "suback":
      return encodeSubAck(packet, version);
    case "unsubscribe":
      return encodeUnsubscribe(packet, version);
    case "unsuback":
      return encodeUnsubAck(packet, version);
    case "pingreq":
      return PINGREQ.slice();
    case "pingresp":
      return PINGRESP.slice();
    case "disconnect":
    case "auth":
      return encodeReasonOnly(packet, version);
    default: {
      const unreachable: never = packet;
      throw new TypeError(`Cannot encode packet of type "${(unreachable as { type: unknown }).type}"`);
    }
  }
}

function checkQoS(qos: number, what: string): void {
  if (qos !== 0 && qos !== 1 && qos !== 2) {
    throw new RangeError(`Cannot encode ${what}: QoS ${qos} is not 0, 1 or 2`);
  }
}

function checkPacketId(packetId: number | undefined, what: string): number {
  if (packetId === undefined || !Number.isInteger(packetId) || packetId < 1 || packetId > 0xffff) {
    throw new RangeError(
      `Cannot encode ${what}: packet identifier ${packetId} is not from 1 to 65535 [MQTT-2.2.1-3]`,
    );
  }
  return packetId;
}

function checkRemaining(remaining: number, what: string): void {
  if (remaining > MAX_VARINT) {
    throw new MqttError(
      ReasonCode.PacketTooLarge,
      `Cannot encode ${what}: its remaining length ${remaining} exceeds ${MAX_VARINT}`,
    );
  }
}

/** The UTF-8 length of a topic name, checking that it holds no wildcard [MQTT-3.3.2-2]. */
function topicNameLength(topic: string): number {
  const length = topic.length;
  for (let i = 0; i < length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x23 || c === 0x2b) {
      throw new MqttError(
        ReasonCode.TopicNameInvalid,
        `Cannot publish to "${topic}": a topic name must not contain wildcards [MQTT-3.3.2-2]`,
      );
    }
    if (c >= 0x80 || c === 0) return utf8Length(topic);
  }
  return length;
}

function encodePublish(packet: PublishPacket, version: ProtocolVersion): Uint8Array {
  const buffer = new Uint8Array(publishSize(packet, version));
  writePublish(packet, version, buffer, 0);
  return buffer;
}

/**
 * What {@linkcode publishSize} worked out for the PUBLISH that {@linkcode writePublish} writes next: one packet
 * at a time, the two calls right after each other (nothing runs between them).
 */
let plannedRemaining = 0;
let plannedTopicLength = 0;
let plannedPropsSize = 0;
let plannedFlags = 0;

/**
 * Checks a PUBLISH for the given protocol level and returns its encoded size, so that the caller can choose
 * where it goes; {@linkcode writePublish} must follow at once, for the same packet and level.
 *
 * @param packet The PUBLISH.
 * @param version The protocol level.
 * @returns The bytes it takes, fixed header included.
 * @throws {MqttError} What {@linkcode encode} throws for a PUBLISH; {RangeError}, {TypeError} likewise.
 */
export function publishSize(packet: PublishPacket, version: ProtocolVersion): number {
  const { topic, payload, qos } = packet;
  checkQoS(qos, "PUBLISH");
  const topicLength = topicNameLength(topic);
  if (topicLength > 0xffff) throw new RangeError(`Cannot encode PUBLISH: topic of ${topicLength} bytes`);
  let propsSize = 0;
  if (version === 5) {
    propsSize = propertiesSize(packet.properties, PacketType.publish);
    if (topicLength === 0 && packet.properties?.topicAlias === undefined) {
      throw new MqttError(
        ReasonCode.TopicNameInvalid,
        "Cannot encode PUBLISH: the topic name is empty and no topic alias stands for it [MQTT-4.7.3-1]",
      );
    }
  } else if (topicLength === 0) {
    throw new MqttError(
      ReasonCode.TopicNameInvalid,
      "Cannot encode PUBLISH: the topic name is empty [MQTT-4.7.3-1]",
    );
  }
  let flags = qos << 1;
  if (packet.retain) flags |= 0x01;
  if (packet.dup) {
    if (qos === 0) {
      throw new MqttError(
        ReasonCode.ProtocolError,
        "Cannot encode PUBLISH: DUP must be 0 for QoS 0 [MQTT-3.3.1-2]",
      );
    }
    flags |= 0x08;
  }
  let remaining = 2 + topicLength + payload.length;
  if (qos > 0) {
    checkPacketId(packet.packetId, "PUBLISH");
    remaining += 2;
  } else if (packet.packetId !== undefined) {
    throw new MqttError(
      ReasonCode.ProtocolError,
      "Cannot encode PUBLISH: a QoS 0 PUBLISH must not have a packet identifier [MQTT-2.2.1-2]",
    );
  }
  if (version === 5) remaining += varintSize(propsSize) + propsSize;
  checkRemaining(remaining, "PUBLISH");
  plannedRemaining = remaining;
  plannedTopicLength = topicLength;
  plannedPropsSize = propsSize;
  plannedFlags = flags;
  return 1 + varintSize(remaining) + remaining;
}

/**
 * Writes the PUBLISH that {@linkcode publishSize} just measured into `buffer` at `offset`.
 *
 * @param packet The same PUBLISH.
 * @param version The same protocol level.
 * @param buffer Where it goes; `publishSize`'s answer of bytes from `offset` on must fit (less the payload's
 * length without `payload`).
 * @param offset Where it starts.
 * @param payload `false` to write everything but the payload, which the caller sends right after.
 */
export function writePublish(
  packet: PublishPacket,
  version: ProtocolVersion,
  buffer: Uint8Array,
  offset: number,
  payload = true,
): void {
  const { topic, qos } = packet;
  const topicLength = plannedTopicLength;
  const propsSize = plannedPropsSize;
  buffer[offset] = 0x30 | plannedFlags;
  let position = writeVarint(buffer, offset + 1, plannedRemaining);
  writeU16(buffer, position, topicLength);
  position += 2;
  if (topicLength === topic.length) {
    for (let i = 0; i < topicLength; i++) buffer[position + i] = topic.charCodeAt(i);
    position += topicLength;
  } else {
    position = writeUtf8(buffer, position, topic);
  }
  if (qos > 0) {
    writeU16(buffer, position, packet.packetId!);
    position += 2;
  }
  if (version === 5) {
    if (propsSize === 0) {
      buffer[position++] = 0;
    } else {
      const writer = new Writer(buffer, position);
      writeProperties(writer, packet.properties, propsSize);
      position = writer.position;
    }
  }
  if (payload) buffer.set(packet.payload, position);
}

const ACK_HEADERS = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 } as const;

function encodePublishAck(
  packet: PublishAckPacket<"puback" | "pubrec" | "pubrel" | "pubcomp">,
  version: ProtocolVersion,
): Uint8Array {
  const packetId = checkPacketId(packet.packetId, packet.type.toUpperCase());
  const header = ACK_HEADERS[packet.type];
  if (version < 5 || (packet.reasonCode === 0 && !hasProperties(packet.properties))) {
    return Uint8Array.of(header, 2, packetId >>> 8, packetId & 0xff);
  }
  const size = propertiesSize(packet.properties, PacketType[packet.type]);
  const writer = startPacket(header, 3 + varintSize(size) + size);
  writer.u16(packetId);
  writer.u8(packet.reasonCode);
  if (size > 0) writeProperties(writer, packet.properties, size);
  return finish(writer, packet.type);
}

/** A writer for a packet whose body is about `estimate` bytes; the fixed header is written by `finish`. */
function startPacket(header: number, estimate: number): Writer {
  const writer = new Writer(new Uint8Array(5 + estimate), 5);
  writer.buffer[0] = header;
  return writer;
}

/** Writes the fixed header right before the body and returns a copy of exactly the packet's bytes. */
function finish(writer: Writer, what: string): Uint8Array {
  const remaining = writer.position - 5;
  checkRemaining(remaining, what.toUpperCase());
  const start = 4 - varintSize(remaining);
  const buffer = writer.buffer;
  buffer[start] = buffer[0];
  writeVarint(buffer, start + 1, remaining);
  return buffer.slice(start, writer.position);
}

function encodeConnect(packet: ConnectPacket, version: ProtocolVersion): Uint8Array {
  if (packet.protocolVersion !== version) {
    throw new RangeError(
      `Cannot encode CONNECT for level ${packet.protocolVersion} as level ${version}: the levels must match`,
    );
  }
  const { will, username, password } = packet;
  let flags = packet.cleanStart ? 0x02 : 0;
  if (will !== undefined) {
    checkQoS(will.qos, "the will");
    flags |= 0x04 | (will.qos << 3);
    if (will.retain) flags |= 0x20;
  }
  if (password !== undefined) {
    if (username === undefined && version < 5) {
      throw new MqttError(
        ReasonCode.ProtocolError,
        "Cannot encode CONNECT: a password needs a user name before MQTT 5 [MQTT-3.1.2-22]",
      );
    }
    flags |= 0x40;
  }
  if (username !== undefined) flags |= 0x80;
  if (!Number.isInteger(packet.keepAlive) || packet.keepAlive < 0 || packet.keepAlive > 0xffff) {
    throw new RangeError(
      `Cannot encode CONNECT: keep-alive ${packet.keepAlive} is not from 0 to 65535 seconds`,
    );
  }
  const writer = startPacket(0x10, 64 + (will?.payload.length ?? 0));
  writer.string(version === 3 ? "MQIsdp" : "MQTT");
  if (packet.bridge === true && version === 5) {
    throw new MqttError(
      ReasonCode.ProtocolError,
      "Cannot encode CONNECT: the bridge bit is for 3.1 and 3.1.1 only",
    );
  }
  writer.u8(packet.bridge === true ? version | 0x80 : version);
  writer.u8(flags);
  writer.u16(packet.keepAlive);
  if (version === 5) {
    writeProperties(writer, packet.properties, propertiesSize(packet.properties, PacketType.connect));
  }
  writer.string(packet.clientId);
  if (will !== undefined) {
    if (version === 5) {
      writeProperties(writer, will.properties, propertiesSize(will.properties, WILL_PROPERTIES));
    }
    if (topicNameLength(will.topic) === 0) {
      throw new MqttError(
        ReasonCode.TopicNameInvalid,
        "Cannot encode CONNECT: the will topic is empty [MQTT-4.7.3-1]",
      );
    }
    writer.string(will.topic);
    writer.binary(will.payload);
  }
  if (username !== undefined) writer.string(username);
  if (password !== undefined) writer.binary(password);
  return finish(writer, "connect");
}

function encodeConnAck(packet: ConnAckPacket, version: ProtocolVersion): Uint8Array {
  const flags = packet.sessionPresent && version > 3 ? 1 : 0;
  if (version < 5) return Uint8Array.of(0x20, 2, flags, returnCodeFromReasonCode(packet.reasonCode));
  const size = propertiesSize(packet.properties, PacketType.connack);
  const writer = startPacket(0x20, 2 + varintSize(size) + size);
  writer.u8(flags);
  writer.u8(packet.reasonCode);
  writeProperties(writer, packet.properties, size);
  return finish(writer, "connack");
}

function encodeSubscribe(packet: SubscribePacket, version: ProtocolVersion): Uint8Array {
  if (packet.subscriptions.length === 0) {
    throw new MqttError(
      ReasonCode.ProtocolError,
      "Cannot encode SUBSCRIBE: it needs at least one topic filter [MQTT-3.8.3-2]",
    );
  }
  const writer = startPacket(0x82, 32 * packet.subscriptions.length);
  writer.u16(checkPacketId(packet.packetId, "SUBSCRIBE"));
  if (version === 5) {
    writeProperties(writer, packet.properties, propertiesSize(packet.properties, PacketType.subscribe));
  }
  for (const s of packet.subscriptions) {
    checkQoS(s.qos, `the subscription to "${s.topicFilter}"`);
    writer.string(s.topicFilter);
    let options: number = s.qos;
    if (version === 5) {
      if (s.retainHandling !== 0 && s.retainHandling !== 1 && s.retainHandling !== 2) {
        throw new RangeError(`Cannot encode SUBSCRIBE: retain handling ${s.retainHandling} is not 0, 1 or 2`);
      }
      if (s.noLocal) options |= 0x04;
      if (s.retainAsPublished) options |= 0x08;
      options |= s.retainHandling << 4;
    }
    writer.u8(options);
  }
  return finish(writer, "subscribe");
}

function encodeSubAck(packet: SubAckPacket, version: ProtocolVersion): Uint8Array {
  const writer = startPacket(0x90, 8 + packet.reasonCodes.length);
  writer.u16(checkPacketId(packet.packetId, "SUBACK"));
  if (version === 5) {
    writeProperties(writer, packet.properties, propertiesSize(packet.properties, PacketType.suback));
  }
  for (const code of packet.reasonCodes) writer.u8(version === 5 || code <= 2 ? code : 0x80);
  return finish(writer, "suback");
}

function encodeUnsubscribe(packet: UnsubscribePacket, version: ProtocolVersion): Uint8Array {
  if (packet.topicFilters.length === 0) {
    throw new MqttError(
      ReasonCode.ProtocolError,
      "Cannot encode UNSUBSCRIBE: it needs at least one topic filter [MQTT-3.10.3-2]",
    );
  }
  const writer = startPacket(0xa2, 32 * packet.topicFilters.length);
  writer.u16(checkPacketId(packet.packetId, "UNSUBSCRIBE"));
  if (version === 5) {
    writeProperties(writer, packet.properties, propertiesSize(packet.properties, PacketType.unsubscribe));
  }
  for (const filter of packet.topicFilters) writer.string(filter);
  return finish(writer, "unsubscribe");
}

function encodeUnsubAck(packet: UnsubAckPacket, version: ProtocolVersion): Uint8Array {
  const packetId = checkPacketId(packet.packetId, "UNSUBACK");
  if (version < 5) return Uint8Array.of(0xb0, 2, packetId >>> 8, packetId & 0xff);
  const writer = startPacket(0xb0, 8 + packet.reasonCodes.length);
  writer.u16(packetId);
  writeProperties(writer, packet.properties, propertiesSize(packet.properties, PacketType.unsuback));
  for (const code of packet.reasonCodes) writer.u8(code);
  return finish(writer, "unsuback");
}

/** DISCONNECT and AUTH: a reason code and properties, both left out when 0 and empty. */
function encodeReasonOnly(packet: DisconnectPacket | AuthPacket, version: ProtocolVersion): Uint8Array {
  const header = packet.type === "disconnect" ? 0xe0 : 0xf0;
  if (version < 5) {
    if (packet.type === "auth") {
      throw new MqttError(ReasonCode.ProtocolError, "Cannot encode AUTH: it exists only in MQTT 5");
    }
    return Uint8Array.of(header, 0);
  }
  if (!hasProperties(packet.properties)) {
    if (packet.reasonCode === 0) return Uint8Array.of(header, 0);
    // DISCONNECT may end after its reason code (§3.14.2.2.1); AUTH keeps its property length (§3.15.2.1).
    return packet.type === "disconnect"
      ? Uint8Array.of(header, 1, packet.reasonCode)
      : Uint8Array.of(header, 2, packet.reasonCode, 0);
  }
  const size = propertiesSize(packet.properties, PacketType[packet.type]);
  const writer = startPacket(header, 1 + varintSize(size) + size);
  writer.u8(packet.reasonCode);
  writeProperties(writer, packet.properties, size);
  return finish(writer, packet.type);
}
