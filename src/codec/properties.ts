/**
 * MQTT 5 properties (§2.2.2): the table of identifiers, wire types and the packets each may appear on, and
 * their encoding and decoding.
 *
 * @module
 */

import {
  malformed,
  MAX_VARINT,
  protocolError,
  type Reader,
  utf8Length,
  varintSize,
  type Writer,
} from "./_bytes.ts";
import type { Properties } from "./packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";

/** The wire type of a property value. `flag` is a byte that must be 0 or 1, surfaced as a boolean. */
type Kind = "byte" | "flag" | "two" | "four" | "varint" | "string" | "binary" | "pair";

/** Where a property may appear: a packet type number (1-15), or 0 for the will properties of a CONNECT. */
export const WILL_PROPERTIES = 0;

interface PropertySpec {
  readonly id: number;
  readonly key: keyof Properties;
  readonly name: string;
  readonly kind: Kind;
  /** Bit `1 << n` set when the property may appear on packet type n (0: will). */
  readonly allowed: number;
  /** Values below this are a Protocol Error (receive maximum, maximum packet size, topic alias: 1). */
  readonly minimum: number;
}

const CONNECT = 1 << 1;
const CONNACK = 1 << 2;
const PUBLISH = 1 << 3;
const PUBACK = 1 << 4;
const PUBREC = 1 << 5;
const PUBREL = 1 << 6;
const PUBCOMP = 1 << 7;
const SUBSCRIBE = 1 << 8;
const SUBACK = 1 << 9;
const UNSUBSCRIBE = 1 << 10;
const UNSUBACK = 1 << 11;
const DISCONNECT = 1 << 14;
const AUTH = 1 << 15;
const WILL = 1 << WILL_PROPERTIES;
const ACKS = PUBACK | PUBREC | PUBREL | PUBCOMP | SUBACK | UNSUBACK;

function spec(
  id: number,
  key: keyof Properties,
  name: string,
  kind: Kind,
  allowed: number,
  minimum = 0,
): PropertySpec {
  return { id, key, name, kind, allowed, minimum };
}

const SPECS: readonly PropertySpec[] = [
  spec(0x01, "payloadFormatIndicator", "Payload Format Indicator", "flag", PUBLISH | WILL),
  spec(0x02, "messageExpiryInterval", "Message Expiry Interval", "four", PUBLISH | WILL),
  spec(0x03, "contentType", "Content Type", "string", PUBLISH | WILL),
  spec(0x08, "responseTopic", "Response Topic", "string", PUBLISH | WILL),
  spec(0x09, "correlationData", "Correlation Data", "binary", PUBLISH | WILL),
  spec(0x0b, "subscriptionIdentifier", "Subscription Identifier", "varint", SUBSCRIBE, 1),
  spec(0x0b, "subscriptionIdentifiers", "Subscription Identifier", "varint", PUBLISH, 1),
  spec(0x11, "sessionExpiryInterval", "Session Expiry Interval", "four", CONNECT | CONNACK | DISCONNECT),
  spec(0x12, "assignedClientIdentifier", "Assigned Client Identifier", "string", CONNACK),
  spec(0x13, "serverKeepAlive", "Server Keep Alive", "two", CONNACK),
  spec(0x15, "authenticationMethod", "Authentication Method", "string", CONNECT | CONNACK | AUTH),
  spec(0x16, "authenticationData", "Authentication Data", "binary", CONNECT | CONNACK | AUTH),
  spec(0x17, "requestProblemInformation", "Request Problem Information", "flag", CONNECT),
  spec(0x18, "willDelayInterval", "Will Delay Interval", "four", WILL),
  spec(0x19, "requestResponseInformation", "Request Response Information", "flag", CONNECT),
  spec(0x1a, "responseInformation", "Response Information", "string", CONNACK),
  spec(0x1c, "serverReference", "Server Reference", "string", CONNACK | DISCONNECT),
  spec(0x1f, "reasonString", "Reason String", "string", CONNACK | ACKS | DISCONNECT | AUTH),
  spec(0x21, "receiveMaximum", "Receive Maximum", "two", CONNECT | CONNACK, 1),
  spec(0x22, "topicAliasMaximum", "Topic Alias Maximum", "two", CONNECT | CONNACK),
  spec(0x23, "topicAlias", "Topic Alias", "two", PUBLISH, 1),
  spec(0x24, "maximumQoS", "Maximum QoS", "byte", CONNACK),
  spec(0x25, "retainAvailable", "Retain Available", "flag", CONNACK),
  spec(
    0x26,
    "userProperties",
    "User Property",
    "pair",
    CONNECT | CONNACK | PUBLISH | WILL | ACKS | SUBSCRIBE | UNSUBSCRIBE | DISCONNECT | AUTH,
  ),
  spec(0x27, "maximumPacketSize", "Maximum Packet Size", "four", CONNECT | CONNACK, 1),
  spec(0x28, "wildcardSubscriptionAvailable", "Wildcard Subscription Available", "flag", CONNACK),
  spec(0x29, "subscriptionIdentifiersAvailable", "Subscription Identifier Available", "flag", CONNACK),
  spec(0x2a, "sharedSubscriptionAvailable", "Shared Subscription Available", "flag", CONNACK),
];

/** Property specs by identifier; 0x0B has two entries (SUBSCRIBE and PUBLISH), chosen by packet type. */
const BY_ID: readonly (readonly PropertySpec[] | undefined)[] = (() => {
  const table: PropertySpec[][] = [];
  for (const s of SPECS) (table[s.id] ??= []).push(s);
  return table;
})();

const BY_KEY: ReadonlyMap<string, PropertySpec> = new Map(SPECS.map((s) => [s.key, s]));

const PACKET_NAMES = [
  "will",
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
];

/** Whether a properties object has at least one property set (keys holding `undefined` do not count). */
export function hasProperties(properties: object | undefined): boolean {
  if (properties === undefined) return false;
  for (const key in properties) {
    if ((properties as Record<string, unknown>)[key] !== undefined) return true;
  }
  return false;
}

/** A Response Topic is a topic name: not empty, no wildcards. */
function isTopicName(text: string): boolean {
  return text.length > 0 && !text.includes("+") && !text.includes("#");
}

/** Properties that may appear more than once (MQTT 5 §2.2.2.2). */
function repeatable(key: keyof Properties): boolean {
  return key === "userProperties" || key === "subscriptionIdentifiers";
}

/**
 * Reads a property length and the properties after it (MQTT 5 §2.2.2) for packet type `packetType` (0 for
 * will properties). Returns `undefined` when there are none, so that decoded packets omit empty properties.
 */
export function readProperties(reader: Reader, packetType: number): Properties | undefined {
  const length = reader.varint("property length");
  if (length === 0) return undefined;
  if (length > reader.remaining) {
    malformed(`Cannot read properties: their length ${length} exceeds the packet`);
  }
  const end = reader.position + length;
  const outerEnd = reader.end;
  reader.end = end;
  const properties: Record<string, unknown> = {};
  const bit = 1 << packetType;
  while (reader.position < end) {
    const id = reader.varint("property identifier");
    const candidates = BY_ID[id];
    const s = candidates?.length === 1
      ? candidates[0]
      : candidates?.find((c) => (c.allowed & bit) !== 0) ?? candidates?.[0];
    if (s === undefined) malformed(`Cannot read property 0x${id.toString(16)}: unknown property identifier`);
    if ((s.allowed & bit) === 0) {
      malformed(`Cannot read property ${s.name}: it is not allowed on ${PACKET_NAMES[packetType]}`);
    }
    const value = readValue(reader, s);
    if (repeatable(s.key)) {
      ((properties[s.key] ??= []) as unknown[]).push(value);
    } else {
      if (properties[s.key] !== undefined) {
        protocolError(`Cannot accept property ${s.name}: it appears twice`);
      }
      properties[s.key] = value;
    }
  }
  reader.end = outerEnd;
  return properties as Properties;
}

function readValue(reader: Reader, s: PropertySpec): unknown {
  const what = s.name;
  let value: number;
  switch (s.kind) {
    case "flag": {
      const byte = reader.u8(what);
      if (byte > 1) protocolError(`Cannot accept ${what} ${byte}: it must be 0 or 1`);
      return byte === 1;
    }
    case "byte":
      value = reader.u8(what);
      if (s.key === "maximumQoS" && value > 1) {
        protocolError(`Cannot accept ${what} ${value}: it must be 0 or 1`);
      }
      return value;
    case "two":
      value = reader.u16(what);
      break;
    case "four":
      value = reader.u32(what);
      break;
    case "varint":
      value = reader.varint(what);
      break;
    case "string": {
      const text = reader.string(what);
      if (s.key === "responseTopic" && !isTopicName(text)) {
        protocolError(
          `Cannot accept ${what} "${text}": it must be a topic name without wildcards [MQTT-3.3.2-14]`,
        );
      }
      return text;
    }
    case "binary":
      return reader.binary(what);
    case "pair":
      return [reader.string(`${what} name`), reader.string(`${what} value`)];
    default: {
      const unreachable: never = s.kind;
      throw new Error(`Unknown property kind ${unreachable}`);
    }
  }
  if (value < s.minimum) protocolError(`Cannot accept ${what} ${value}: it must be at least ${s.minimum}`);
  return value;
}

function specFor(key: string, packetType: number): PropertySpec {
  const s = BY_KEY.get(key);
  if (s === undefined) throw new TypeError(`Cannot encode property "${key}": unknown property`);
  if ((s.allowed & (1 << packetType)) === 0) {
    throw new MqttError(
      ReasonCode.ProtocolError,
      `Cannot encode property ${s.name} on ${PACKET_NAMES[packetType]}: it is not allowed there`,
    );
  }
  return s;
}

function checkInteger(s: PropertySpec, value: unknown, maximum: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < s.minimum || value > maximum) {
    throw new RangeError(
      `Cannot encode property ${s.name} ${String(value)}: not an integer from ${s.minimum} to ${maximum}`,
    );
  }
  return value;
}

function valueSize(s: PropertySpec, value: unknown): number {
  switch (s.kind) {
    case "flag":
      if (typeof value !== "boolean") throw new TypeError(`Cannot encode property ${s.name}: not a boolean`);
      return 2;
    case "byte":
      checkInteger(s, value, s.key === "maximumQoS" ? 1 : 255);
      return 2;
    case "two":
      checkInteger(s, value, 0xffff);
      return 3;
    case "four":
      checkInteger(s, value, 0xffff_ffff);
      return 5;
    case "varint":
      return 1 + varintSize(checkInteger(s, value, MAX_VARINT));
    case "string":
      if (s.key === "responseTopic" && !isTopicName(value as string)) {
        throw new MqttError(
          ReasonCode.TopicNameInvalid,
          `Cannot encode ${s.name} "${value}": it must be a topic name without wildcards [MQTT-3.3.2-14]`,
        );
      }
      return 3 + utf8Length(value as string);
    case "binary":
      return 3 + (value as Uint8Array).length;
    case "pair": {
      const [name, text] = value as [string, string];
      return 5 + utf8Length(name) + utf8Length(text);
    }
    default: {
      const unreachable: never = s.kind;
      throw new Error(`Unknown property kind ${unreachable}`);
    }
  }
}

/**
 * The byte length of `properties` on packet type `packetType` (0 for will properties), without the length
 * prefix. Checks every key, value and range; throws `MqttError` for a property the packet does not allow.
 */
export function propertiesSize(properties: Properties | undefined, packetType: number): number {
  if (properties === undefined) return 0;
  let size = 0;
  for (const key in properties) {
    const value = properties[key as keyof Properties];
    if (value === undefined) continue;
    const s = specFor(key, packetType);
    if (repeatable(s.key)) {
      for (const item of value as unknown[]) size += valueSize(s, item);
    } else {
      size += valueSize(s, value);
    }
  }
  return size;
}

/** Writes the property length `size` (from {@linkcode propertiesSize}) and the properties. */
export function writeProperties(writer: Writer, properties: Properties | undefined, size: number): void {
  writer.varint(size);
  if (size === 0 || properties === undefined) return;
  for (const key in properties) {
    const value = properties[key as keyof Properties];
    if (value === undefined) continue;
    const s = BY_KEY.get(key) as PropertySpec;
    if (repeatable(s.key)) {
      for (const item of value as unknown[]) writeValue(writer, s, item);
    } else {
      writeValue(writer, s, value);
    }
  }
}

function writeValue(writer: Writer, s: PropertySpec, value: unknown): void {
  writer.u8(s.id);
  switch (s.kind) {
    case "flag":
      writer.u8(value ? 1 : 0);
      return;
    case "byte":
      writer.u8(value as number);
      return;
    case "two":
      writer.u16(value as number);
      return;
    case "four":
      writer.u32(value as number);
      return;
    case "varint":
      writer.varint(value as number);
      return;
    case "string":
      writer.string(value as string);
      return;
    case "binary":
      writer.binary(value as Uint8Array);
      return;
    case "pair": {
      const [name, text] = value as [string, string];
      writer.string(name);
      writer.string(text);
      return;
    }
    default: {
      const unreachable: never = s.kind;
      throw new Error(`Unknown property kind ${unreachable}`);
    }
  }
}
