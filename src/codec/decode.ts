/**
 * Decoding of one complete MQTT control packet whose fixed header has been read. The incremental framing
 * lives in `decoder.ts`.
 *
 * @module
 */

import { decodeChecked, malformed, protocolError, Reader } from "./_bytes.ts";
import { readProperties, WILL_PROPERTIES } from "./properties.ts";
import { reasonCodeAllowed, type ReasonCodePacket, SUBACK_RETURN_CODES_V3 } from "./reason_codes.ts";
import type {
  AuthPacket,
  ConnAckPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  ProtocolVersion,
  PublishAckPacket,
  PublishPacket,
  QoS,
  RetainHandling,
  SubAckPacket,
  SubscribePacket,
  Subscription,
  UnsubAckPacket,
  UnsubscribePacket,
  Will,
} from "./packet.ts";
import { MqttError, ReasonCode, reasonCodeFromReturnCode } from "../errors.ts";

const NAMES = [
  "reserved",
  "CONNECT",
  "CONNACK",
  "PUBLISH",
  "PUBACK",
  "PUBREC",
  "PUBREL",
  "PUBCOMP",
  "SUBSCRIBE",
  "SUBACK",
  "UNSUBSCRIBE",
  "UNSUBACK",
  "PINGREQ",
  "PINGRESP",
  "DISCONNECT",
  "AUTH",
] as const;

function reasonCode(reader: Reader, name: string): ReasonCode {
  const code = reader.u8(`${name} reason code`);
  if (!reasonCodeAllowed(name.toLowerCase() as ReasonCodePacket, code)) {
    malformed(`Cannot read ${name}: reason code 0x${code.toString(16).padStart(2, "0")} is not valid on it`);
  }
  return code as ReasonCode;
}

function expectEnd(reader: Reader, name: string): void {
  if (reader.position !== reader.end) {
    malformed(`Cannot read ${name}: ${reader.end - reader.position} unexpected bytes at its end`);
  }
}

/**
 * The fixed-header flags each packet type requires [MQTT-2.1.3-1]; PUBLISH is checked on its own. MQTT 3.1
 * also allows DUP on PUBREL, SUBSCRIBE and UNSUBSCRIBE, which it sends with QoS 1.
 */
function checkFlags(type: number, flags: number, version: ProtocolVersion | undefined): void {
  const required = type === 6 || type === 8 || type === 10 ? 0x02 : 0x00;
  if (flags === required || (version === 3 && required === 0x02 && flags === 0x0a)) return;
  malformed(
    `Cannot read ${NAMES[type]}: reserved fixed header flags are 0x${
      flags.toString(16)
    }, not 0x${required} [MQTT-2.1.3-1]`,
  );
}

/**
 * Decodes the body of one packet, `buffer[start..end)`, whose first fixed-header byte is `first`.
 *
 * @param first The first byte of the fixed header: packet type and flags.
 * @param buffer The bytes holding the body; payloads are returned as views of it.
 * @param start Where the body starts.
 * @param end Where the body ends.
 * @param version The protocol level, or `undefined` when only a CONNECT may come (a server's first packet).
 * @param memo The last PUBLISH topic of this stream: a PUBLISH to the same topic reuses its string.
 * @returns The packet.
 * @throws {MqttError} Malformed Packet (0x81), Protocol Error (0x82), Unsupported Protocol Version (0x84) or,
 *   for a CONNECT whose will topic is not a topic name, Topic Name Invalid (0x90).
 */
export function decodePacket(
  first: number,
  buffer: Uint8Array,
  start: number,
  end: number,
  version: ProtocolVersion | undefined,
  memo?: TopicMemo,
): Packet {
  const type = first >> 4;
  const flags = first & 0x0f;
  if (version === undefined && type !== 1) {
    protocolError(
      `Cannot accept ${NAMES[type]} before CONNECT: the first packet must be CONNECT [MQTT-3.1.0-1]`,
    );
  }
  if (type === 3) return decodePublish(flags, buffer, start, end, version as ProtocolVersion, memo);
  const reader = new Reader(buffer, start, end);
  checkFlags(type, flags, version);
  const v = version as ProtocolVersion;
  switch (type) {
    case 1:
      return decodeConnect(reader);
    case 2:
      return decodeConnAck(reader, v);
    case 4:
      return decodePublishAck("puback", reader, v);
    case 5:
      return decodePublishAck("pubrec", reader, v);
    case 6:
      return decodePublishAck("pubrel", reader, v);
    case 7:
      return decodePublishAck("pubcomp", reader, v);
    case 8:
      return decodeSubscribe(reader, v);
    case 9:
      return decodeSubAck(reader, v);
    case 10:
      return decodeUnsubscribe(reader, v);
    case 11:
      return decodeUnsubAck(reader, v);
    case 12:
    case 13:
      expectEnd(reader, NAMES[type]);
      return { type: type === 12 ? "pingreq" : "pingresp" };
    case 14:
      return decodeReasonOnly("disconnect", reader, v);
    case 15:
      if (v !== 5) malformed("Cannot read packet type 15: AUTH exists only in MQTT 5");
      return decodeReasonOnly("auth", reader, v);
    default:
      return malformed(`Cannot read packet type ${type}: it is reserved`);
  }
}

/**
 * The last PUBLISH topic read from one stream of packets, as bytes and as the string made from them: most
 * publishers send to few topics, and a PUBLISH to the same one then costs neither a new string (nor, for the
 * broker's route cache, hashing one) nor checking its bytes again. A publisher that changes topics each time
 * costs a byte copy into the same buffer, no allocation.
 */
export interface TopicMemo {
  /** Holds the topic's bytes in its first `length` bytes; made with the first PUBLISH. */
  bytes: Uint8Array | undefined;
  /** How many bytes of `bytes` the topic takes; 0 while none is remembered. */
  length: number;
  /** The topic. */
  topic: string;
}

/** Topics up to this many bytes are remembered in a {@linkcode TopicMemo}. */
const MEMO_TOPIC_LENGTH = 256;

/** Whether `buffer[start..end)` holds the topic `memo` remembers. */
function sameTopic(memo: TopicMemo, buffer: Uint8Array, start: number, end: number): boolean {
  const length = memo.length;
  if (length === 0 || end - start !== length) return false;
  const known = memo.bytes!;
  // From the end: topics that differ mostly differ in their last levels.
  for (let i = length - 1; i >= 0; i--) if (known[i] !== buffer[start + i]) return false;
  return true;
}

/** PUBLISH is the hot path: read with plain indexing, and build a Reader only for MQTT 5 properties. */
function decodePublish(
  flags: number,
  buffer: Uint8Array,
  start: number,
  end: number,
  version: ProtocolVersion,
  memo: TopicMemo | undefined,
): PublishPacket {
  const qos = (flags >> 1) & 0x03;
  if (qos === 3) malformed("Cannot read PUBLISH: QoS 3 is not allowed [MQTT-3.3.1-4]");
  const dup = (flags & 0x08) !== 0;
  if (dup && qos === 0) malformed("Cannot read PUBLISH: DUP must be 0 for QoS 0 [MQTT-3.3.1-2]");
  const topicStart = start + 2;
  if (topicStart > end) malformed("Cannot read PUBLISH topic name: the packet ends early");
  const topicEnd = topicStart + ((buffer[topicStart - 2] << 8) | buffer[topicStart - 1]);
  let position = topicEnd + (qos > 0 ? 2 : 0);
  if (position > end) malformed("Cannot read PUBLISH topic name: the packet ends early");
  let topic: string;
  if (memo !== undefined && sameTopic(memo, buffer, topicStart, topicEnd)) {
    topic = memo!.topic; // checked when it first came
  } else {
    for (let i = topicStart; i < topicEnd; i++) {
      const c = buffer[i];
      if (c === 0x23 || c === 0x2b) {
        protocolError("Cannot accept PUBLISH: its topic name contains a wildcard [MQTT-3.3.2-2]");
      }
      if (c === 0) malformed("Cannot read PUBLISH topic name: it contains U+0000 [MQTT-1.5.4-2]");
    }
    topic = decodeChecked(buffer, topicStart, topicEnd, "PUBLISH topic name");
    if (memo !== undefined && topicEnd - topicStart <= MEMO_TOPIC_LENGTH && topicEnd > topicStart) {
      const bytes = memo.bytes ??= new Uint8Array(MEMO_TOPIC_LENGTH);
      for (let i = topicStart; i < topicEnd; i++) bytes[i - topicStart] = buffer[i];
      memo.length = topicEnd - topicStart;
      memo.topic = topic;
    }
  }
  const packet: PublishPacket = {
    type: "publish",
    topic,
    payload: buffer,
    qos: qos as QoS,
    retain: (flags & 1) === 1,
    dup,
  };
  if (qos > 0) {
    const packetId = (buffer[topicEnd] << 8) | buffer[topicEnd + 1];
    if (packetId === 0) malformed("Cannot read PUBLISH: packet identifier 0 [MQTT-2.2.1-3]");
    packet.packetId = packetId;
  }
  if (version === 5) {
    if (position < end && buffer[position] === 0) {
      position++;
    } else {
      const reader = new Reader(buffer, position, end);
      const properties = readProperties(reader, 3);
      position = reader.position;
      if (properties !== undefined) packet.properties = properties;
    }
  }
  if (topicEnd === topicStart && packet.properties?.topicAlias === undefined) {
    protocolError("Cannot accept PUBLISH: its topic name is empty and has no topic alias [MQTT-4.7.3-1]");
  }
  packet.payload = buffer.subarray(position, end);
  return packet;
}

function packetIdentifier(reader: Reader, name: string): number {
  const packetId = reader.u16(`${name} packet identifier`);
  if (packetId === 0) malformed(`Cannot read ${name}: packet identifier 0 [MQTT-2.2.1-3]`);
  return packetId;
}

function decodePublishAck<T extends "puback" | "pubrec" | "pubrel" | "pubcomp">(
  type: T,
  reader: Reader,
  version: ProtocolVersion,
): PublishAckPacket<T> {
  const name = type.toUpperCase();
  const packetId = packetIdentifier(reader, name);
  const packet: PublishAckPacket<T> = { type, packetId, reasonCode: ReasonCode.Success };
  if (version === 5 && reader.remaining > 0) {
    packet.reasonCode = reasonCode(reader, name);
    if (reader.remaining > 0) {
      const properties = readProperties(reader, PACKET_NUMBERS[type]);
      if (properties !== undefined) packet.properties = properties;
    }
  }
  expectEnd(reader, name);
  return packet;
}

const PACKET_NUMBERS = { puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7, disconnect: 14, auth: 15 } as const;

function decodeConnect(reader: Reader): ConnectPacket {
  const name = reader.string("protocol name");
  let level = reader.u8("protocol level");
  // A bridge's bit (mosquitto's try_private), on 3.1 and 3.1.1 only.
  const bridge = (level === 0x83 && name === "MQIsdp") || (level === 0x84 && name === "MQTT");
  if (bridge) level &= 0x7f;
  if (name === "MQTT") {
    if (level !== 4 && level !== 5) {
      throw new MqttError(
        ReasonCode.UnsupportedProtocolVersion,
        `Cannot accept CONNECT: protocol level ${level} is not supported [MQTT-3.1.2-2]`,
      );
    }
  } else if (name === "MQIsdp") {
    if (level !== 3) {
      throw new MqttError(
        ReasonCode.UnsupportedProtocolVersion,
        `Cannot accept CONNECT: protocol level ${level} does not go with MQIsdp [MQTT-3.1.2-2]`,
      );
    }
  } else {
    protocolError(`Cannot accept CONNECT: protocol name "${name}" is not MQTT [MQTT-3.1.2-1]`);
  }
  const version = level as ProtocolVersion;
  const flags = reader.u8("CONNECT flags");
  if ((flags & 0x01) !== 0) malformed("Cannot read CONNECT: the reserved flag is set [MQTT-3.1.2-3]");
  const hasWill = (flags & 0x04) !== 0;
  const willQoS = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  if (!hasWill && (willQoS !== 0 || willRetain)) {
    malformed(
      "Cannot read CONNECT: will QoS and will retain must be 0 without a will [MQTT-3.1.2-11] [MQTT-3.1.2-13]",
    );
  }
  if (willQoS === 3) malformed("Cannot read CONNECT: will QoS 3 is not allowed [MQTT-3.1.2-12]");
  const hasPassword = (flags & 0x40) !== 0;
  const hasUsername = (flags & 0x80) !== 0;
  if (hasPassword && !hasUsername && version < 5) {
    malformed("Cannot read CONNECT: a password without a user name [MQTT-3.1.2-22]");
  }
  const keepAlive = reader.u16("keep-alive");
  const properties = version === 5 ? readProperties(reader, 1) : undefined;
  const clientId = reader.string("client identifier");
  const packet: ConnectPacket = {
    type: "connect",
    protocolVersion: version,
    clientId,
    cleanStart: (flags & 0x02) !== 0,
    keepAlive,
  };
  if (bridge) packet.bridge = true;
  if (hasWill) {
    const willProperties = version === 5 ? readProperties(reader, WILL_PROPERTIES) : undefined;
    const willTopic = reader.string("will topic");
    if (willTopic.length === 0 || willTopic.includes("+") || willTopic.includes("#")) {
      throw new MqttError(
        ReasonCode.TopicNameInvalid,
        `Cannot accept CONNECT: will topic "${willTopic}" is not a valid topic name [MQTT-3.1.3-11] [MQTT-4.7.3-1]`,
      );
    }
    const will: Will = {
      topic: willTopic,
      payload: reader.binary("will payload"),
      qos: willQoS as QoS,
      retain: willRetain,
    };
    if (willProperties !== undefined) will.properties = willProperties;
    packet.will = will;
  }
  if (hasUsername) packet.username = reader.string("user name");
  if (hasPassword) packet.password = reader.binary("password");
  if (properties !== undefined) packet.properties = properties;
  expectEnd(reader, "CONNECT");
  return packet;
}

function decodeConnAck(reader: Reader, version: ProtocolVersion): ConnAckPacket {
  const flags = reader.u8("CONNACK flags");
  if (version > 3 && (flags & 0xfe) !== 0) {
    malformed("Cannot read CONNACK: reserved acknowledge flags are set [MQTT-3.2.2-1]");
  }
  let code: ReasonCode;
  let properties;
  if (version === 5) {
    code = reasonCode(reader, "CONNACK");
    properties = readProperties(reader, 2);
  } else {
    const returnCode = reader.u8("CONNACK return code");
    if (returnCode > 5) malformed(`Cannot read CONNACK: return code ${returnCode} is not defined`);
    code = reasonCodeFromReturnCode(returnCode);
  }
  expectEnd(reader, "CONNACK");
  const packet: ConnAckPacket = {
    type: "connack",
    sessionPresent: version > 3 && flags === 1,
    reasonCode: code,
  };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeSubscribe(reader: Reader, version: ProtocolVersion): SubscribePacket {
  const packetId = packetIdentifier(reader, "SUBSCRIBE");
  const properties = version === 5 ? readProperties(reader, 8) : undefined;
  const subscriptions: Subscription[] = [];
  while (reader.remaining > 0) {
    const topicFilter = reader.string("SUBSCRIBE topic filter");
    const options = reader.u8("subscription options");
    const qos = options & 0x03;
    if (version < 5) {
      if (options > 2) {
        malformed(
          `Cannot read SUBSCRIBE: requested QoS byte 0x${
            options.toString(16)
          } for "${topicFilter}" [MQTT-3.8.3-4]`,
        );
      }
      subscriptions.push({
        topicFilter,
        qos: qos as QoS,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      });
      continue;
    }
    if (options > 0x3f) {
      malformed(`Cannot read SUBSCRIBE: reserved option bits set for "${topicFilter}" [MQTT-3.8.3-5]`);
    }
    if (qos === 3) malformed(`Cannot read SUBSCRIBE: QoS 3 requested for "${topicFilter}"`);
    const retainHandling = options >> 4;
    if (retainHandling === 3) {
      protocolError(`Cannot accept SUBSCRIBE: retain handling 3 for "${topicFilter}"`);
    }
    const noLocal = (options & 0x04) !== 0;
    if (noLocal && topicFilter.startsWith("$share/")) {
      protocolError(
        `Cannot accept SUBSCRIBE: no local on shared subscription "${topicFilter}" [MQTT-3.8.3-4]`,
      );
    }
    subscriptions.push({
      topicFilter,
      qos: qos as QoS,
      noLocal,
      retainAsPublished: (options & 0x08) !== 0,
      retainHandling: retainHandling as RetainHandling,
    });
  }
  if (subscriptions.length === 0) {
    protocolError("Cannot accept SUBSCRIBE: it has no topic filter [MQTT-3.8.3-2]");
  }
  const packet: SubscribePacket = { type: "subscribe", packetId, subscriptions };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeSubAck(reader: Reader, version: ProtocolVersion): SubAckPacket {
  const packetId = packetIdentifier(reader, "SUBACK");
  const properties = version === 5 ? readProperties(reader, 9) : undefined;
  const reasonCodes: ReasonCode[] = [];
  while (reader.remaining > 0) {
    if (version === 5) {
      reasonCodes.push(reasonCode(reader, "SUBACK"));
    } else {
      const code = reader.u8("SUBACK return code");
      if (!SUBACK_RETURN_CODES_V3.includes(code as ReasonCode)) {
        malformed(`Cannot read SUBACK: return code 0x${code.toString(16)} is not defined`);
      }
      reasonCodes.push(code as ReasonCode);
    }
  }
  const packet: SubAckPacket = { type: "suback", packetId, reasonCodes };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeUnsubscribe(reader: Reader, version: ProtocolVersion): UnsubscribePacket {
  const packetId = packetIdentifier(reader, "UNSUBSCRIBE");
  const properties = version === 5 ? readProperties(reader, 10) : undefined;
  const topicFilters: string[] = [];
  while (reader.remaining > 0) topicFilters.push(reader.string("UNSUBSCRIBE topic filter"));
  if (topicFilters.length === 0) {
    protocolError("Cannot accept UNSUBSCRIBE: it has no topic filter [MQTT-3.10.3-2]");
  }
  const packet: UnsubscribePacket = { type: "unsubscribe", packetId, topicFilters };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeUnsubAck(reader: Reader, version: ProtocolVersion): UnsubAckPacket {
  const packetId = packetIdentifier(reader, "UNSUBACK");
  const packet: UnsubAckPacket = { type: "unsuback", packetId, reasonCodes: [] };
  if (version === 5) {
    const properties = readProperties(reader, 11);
    while (reader.remaining > 0) packet.reasonCodes.push(reasonCode(reader, "UNSUBACK"));
    if (properties !== undefined) packet.properties = properties;
  }
  expectEnd(reader, "UNSUBACK");
  return packet;
}

function decodeReasonOnly<T extends "disconnect" | "auth">(
  type: T,
  reader: Reader,
  version: ProtocolVersion,
): T extends "disconnect" ? DisconnectPacket : AuthPacket {
  const name = type.toUpperCase();
  const packet: DisconnectPacket | AuthPacket = { type, reasonCode: ReasonCode.Success };
  if (version === 5 && reader.remaining > 0) {
    packet.reasonCode = reasonCode(reader, name);
    if (reader.remaining > 0) {
      const properties = readProperties(reader, PACKET_NUMBERS[type]);
      if (properties !== undefined) packet.properties = properties;
    }
  }
  expectEnd(reader, name);
  return packet as T extends "disconnect" ? DisconnectPacket : AuthPacket;
}
