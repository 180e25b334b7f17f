/**
 * What cluster nodes send each other through the engine, as bytes: an application message in a compact binary
 * envelope ({@linkcode encodeMessage}, per message, so no JSON), and session snapshots and other records as
 * JSON in which every `Uint8Array` survives ({@linkcode encodeJson}).
 *
 * The message envelope, version 1, all integers big-endian:
 *
 * | bytes | field |
 * | --- | --- |
 * | 1 | version, 1 |
 * | 1 | flags: bits 0-1 QoS, bit 2 retain, bit 3 has expiry, bit 4 has publisher, bit 5 has properties, bit 6 has packet id |
 * | 8 | `seq`, an IEEE 754 double holding an integer from 1 to 2^53 - 1 |
 * | 8 | `expiresAt`, a double (with the expiry flag) |
 * | 2 + n | `id`, length-prefixed UTF-8 |
 * | 2 + n | `topic`, length-prefixed UTF-8 |
 * | 2 + n | `publisher`, length-prefixed UTF-8 (with the publisher flag) |
 * | 2 | `packetId` (with the packet id flag) |
 * | v + n | `properties` as on an MQTT 5 PUBLISH: variable byte integer length, then the properties (with the flag) |
 * | 4 | the payload's length, which must be exactly what is left |
 * | n | the payload |
 *
 * The payload's length makes a cut or padded envelope an error rather than a shorter or longer payload.
 *
 * @example Send a message to another node
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeMessage, encodeMessage } from "./envelope.ts";
 * const bytes = encodeMessage({
 *   id: "node-a", seq: 1, topic: "sensors/1", payload: Uint8Array.of(21), qos: 1, retain: false,
 * });
 * assert.deepEqual(decodeMessage(bytes).payload, Uint8Array.of(21));
 * ```
 *
 * @module
 */

import { MAX_VARINT, Reader, utf8Length, varintSize, Writer, writeU16, writeUtf8 } from "../codec/_bytes.ts";
import type { PublishProperties, QoS } from "../codec/packet.ts";
import { hasProperties, propertiesSize, readProperties, writeProperties } from "../codec/properties.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import { fromBase64Url, toBase64Url } from "./_encoding.ts";

/** An application message as it crosses the cluster. */
export interface ClusterMessage {
  /** The boot identifier of the node it comes from. */
  id: string;
  /** Its number among the messages of that node, from 1: with `id`, names the message across the cluster. */
  seq: number;
  /** The topic name. */
  topic: string;
  /** The payload. */
  payload: Uint8Array;
  /** The QoS it was published with. */
  qos: QoS;
  /** The RETAIN flag it was published with. */
  retain: boolean;
  /** The MQTT 5 properties to forward: no topic alias, subscription identifiers or message expiry interval. */
  properties?: PublishProperties;
  /** When the message expires, in milliseconds since the epoch (wall clock, so that every node agrees). */
  expiresAt?: number;
  /** The client identifier of the publisher, for No Local. */
  publisher?: string;
  /**
   * The publisher's packet identifier of a QoS 2 message: a node taking over the publisher's session from a
   * node that died learns from it which of the publisher's QoS 2 messages are stored already.
   */
  packetId?: number;
}

/** The version byte of the message envelopes {@linkcode encodeMessage} writes. */
export const MESSAGE_VERSION = 1;

const QOS_MASK = 0x03;
const RETAIN = 0x04;
const HAS_EXPIRY = 0x08;
const HAS_PUBLISHER = 0x10;
const HAS_PROPERTIES = 0x20;
const HAS_PACKET_ID = 0x40;
const KNOWN_FLAGS = 0x7f;
/** The PUBLISH packet type: which properties may appear. */
const PUBLISH = 3;

/** Scratch space to turn doubles into bytes and back. */
const double = new Float64Array(1);
const doubleBytes = new Uint8Array(double.buffer);
/** The index in `doubleBytes` of the most significant byte: the platform's byte order. */
const LAST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1 ? 7 : 0;

function writeDouble(buffer: Uint8Array, position: number, value: number): void {
  double[0] = value;
  for (let i = 0; i < 8; i++) buffer[position + i] = doubleBytes[LAST === 7 ? 7 - i : i];
}

function readDouble(reader: Reader, what: string): number {
  if (reader.remaining < 8) {
    throw new MqttError(ReasonCode.MalformedPacket, `Cannot read ${what}: it ends early`);
  }
  const buffer = reader.buffer;
  const position = reader.position;
  for (let i = 0; i < 8; i++) doubleBytes[LAST === 7 ? 7 - i : i] = buffer[position + i];
  reader.position = position + 8;
  return double[0];
}

/**
 * Envelopes of up to 1 KiB are carved out of a shared 8 KiB buffer, as `ownCopy` (src/bytes.ts) does for its
 * copies: a buffer of its own costs an allocation outside the JavaScript heap that takes most of the encoding's
 * time (about 470 ns of 600 on Node and Deno for a 64-byte payload). Carved ranges are never handed out twice.
 */
const POOL_SIZE = 8192;
const POOLED_UP_TO = 1024;
let pool: Uint8Array | undefined;
let poolUsed = 0;

function allocate(size: number): Uint8Array {
  if (size > POOLED_UP_TO) return new Uint8Array(size);
  if (pool === undefined || poolUsed + size > POOL_SIZE) {
    pool = new Uint8Array(POOL_SIZE);
    poolUsed = 0;
  }
  const out = pool.subarray(poolUsed, poolUsed + size);
  poolUsed += size;
  return out;
}

function fail(message: string): never {
  throw new MqttError(ReasonCode.MalformedPacket, message);
}

/** Length-prefixed UTF-8 whose length `length` was measured; ASCII is copied directly. */
function writeString(buffer: Uint8Array, position: number, text: string, length: number): number {
  writeU16(buffer, position, length);
  position += 2;
  if (length === text.length) {
    for (let i = 0; i < length; i++) buffer[position + i] = text.charCodeAt(i);
    return position + length;
  }
  return writeUtf8(buffer, position, text);
}

/** The UTF-8 length of a string field, checked as MQTT strings are. */
function stringLength(text: string, what: string): number {
  const length = utf8Length(text);
  if (length > 0xffff) {
    throw new RangeError(`Cannot encode cluster message: its ${what} takes ${length} bytes, over 65535`);
  }
  return length;
}

/**
 * Encodes a message for the cluster, as the module documentation shows.
 *
 * @param message The message. Its payload is copied.
 * @returns The envelope, in memory of its own; a short one may be a range of a buffer that holds other envelopes
 * too, so read it through `byteOffset` and `byteLength`, never through `buffer` alone.
 * @throws {RangeError} When `seq` is not an integer from 1 to 2^53 - 1, the QoS not 0, 1 or 2, `expiresAt` not
 * finite, or a string over 65,535 bytes.
 * @throws {TypeError} When a string holds U+0000 or a lone surrogate, or the properties hold a topic alias,
 * subscription identifiers or a message expiry interval.
 * @throws {MqttError} When a property is not one of a PUBLISH.
 *
 * @example Encode with properties and an expiry
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeMessage, encodeMessage } from "./envelope.ts";
 * const message = {
 *   id: "node-a", seq: 7, topic: "a/b", payload: new Uint8Array(), qos: 2 as const, retain: true,
 *   properties: { contentType: "text/plain", userProperties: [["k", "v"]] as [string, string][] },
 *   expiresAt: 1_700_000_000_000, publisher: "client-1", packetId: 7,
 * };
 * assert.deepEqual(decodeMessage(encodeMessage(message)), message);
 * ```
 */
export function encodeMessage(message: ClusterMessage): Uint8Array {
  const { id, seq, topic, payload, qos, retain, properties, expiresAt, publisher, packetId } = message;
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new RangeError(`Cannot encode cluster message: seq ${seq} is not an integer from 1 to 2^53 - 1`);
  }
  if (qos !== 0 && qos !== 1 && qos !== 2) {
    throw new RangeError(`Cannot encode cluster message: QoS ${qos} is not 0, 1 or 2`);
  }
  let flags: number = qos;
  if (retain) flags |= RETAIN;
  const idLength = stringLength(id, "origin id");
  const topicLength = stringLength(topic, "topic");
  let size = 2 + 8 + 2 + idLength + 2 + topicLength + 4 + payload.length;
  if (expiresAt !== undefined) {
    if (!Number.isFinite(expiresAt)) {
      throw new RangeError(`Cannot encode cluster message: expiresAt ${expiresAt} is not a finite number`);
    }
    flags |= HAS_EXPIRY;
    size += 8;
  }
  let publisherLength = 0;
  if (publisher !== undefined) {
    publisherLength = stringLength(publisher, "publisher");
    flags |= HAS_PUBLISHER;
    size += 2 + publisherLength;
  }
  if (packetId !== undefined) {
    if (!Number.isInteger(packetId) || packetId < 1 || packetId > 0xffff) {
      throw new RangeError(`Cannot encode cluster message: packet id ${packetId} is not from 1 to 65535`);
    }
    flags |= HAS_PACKET_ID;
    size += 2;
  }
  let propsSize = 0;
  if (hasProperties(properties)) {
    if (
      properties!.topicAlias !== undefined || properties!.subscriptionIdentifiers !== undefined ||
      properties!.messageExpiryInterval !== undefined
    ) {
      throw new TypeError(
        "Cannot encode cluster message: its properties must not hold a topic alias, subscription identifiers " +
          "or a message expiry interval (expiresAt carries the expiry)",
      );
    }
    propsSize = propertiesSize(properties, PUBLISH);
    if (propsSize > MAX_VARINT) {
      throw new RangeError(`Cannot encode cluster message: its properties take ${propsSize} bytes`);
    }
    flags |= HAS_PROPERTIES;
    size += varintSize(propsSize) + propsSize;
  }
  if (payload.length > 0xffff_ffff) {
    throw new RangeError(
      `Cannot encode cluster message: its payload of ${payload.length} bytes is over 4 GiB`,
    );
  }
  const out = allocate(size);
  out[0] = MESSAGE_VERSION;
  out[1] = flags;
  writeDouble(out, 2, seq);
  let position = 10;
  if (expiresAt !== undefined) {
    writeDouble(out, position, expiresAt);
    position += 8;
  }
  position = writeString(out, position, id, idLength);
  position = writeString(out, position, topic, topicLength);
  if (publisher !== undefined) position = writeString(out, position, publisher, publisherLength);
  if (packetId !== undefined) {
    out[position] = packetId >>> 8;
    out[position + 1] = packetId & 0xff;
    position += 2;
  }
  if (propsSize > 0) {
    const writer = new Writer(out, position);
    writeProperties(writer, properties, propsSize);
    position = writer.position;
  }
  const length = payload.length;
  out[position] = length >>> 24;
  out[position + 1] = length >>> 16;
  out[position + 2] = length >>> 8;
  out[position + 3] = length;
  out.set(payload, position + 4);
  return out;
}

/**
 * Decodes what {@linkcode encodeMessage} wrote. Every length is checked against the input, so malformed input
 * throws, after reading at most its own bytes once.
 *
 * @param bytes One envelope, exactly.
 * @returns The message; its payload and correlation data are views of `bytes` (copy what you keep).
 * @throws {MqttError} Malformed Packet (or Protocol Error for a repeated property), saying what is wrong:
 * another version, unknown flags, QoS 3, a field cut short, a string that is not well-formed UTF-8, a bad
 * property, or a payload length that is not exactly the bytes left.
 *
 * @example Refuse a cut envelope
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeMessage, encodeMessage } from "./envelope.ts";
 * const bytes = encodeMessage({ id: "n", seq: 1, topic: "t", payload: Uint8Array.of(1, 2), qos: 0, retain: false });
 * assert.throws(() => decodeMessage(bytes.subarray(0, bytes.length - 1)));
 * ```
 */
export function decodeMessage(bytes: Uint8Array): ClusterMessage {
  try {
    return readMessage(bytes);
  } catch (error) {
    if (!(error instanceof MqttError)) throw error;
    throw new MqttError(error.reasonCode, `Cannot decode cluster message: ${error.message}`, {
      cause: error,
    });
  }
}

function readMessage(bytes: Uint8Array): ClusterMessage {
  if (bytes.length < 2) fail(`it is ${bytes.length} bytes long`);
  if (bytes[0] !== MESSAGE_VERSION) fail(`version ${bytes[0]} is not ${MESSAGE_VERSION}`);
  const flags = bytes[1];
  if ((flags & ~KNOWN_FLAGS) !== 0) fail(`unknown flags 0x${flags.toString(16)}`);
  const qos = flags & QOS_MASK;
  if (qos === 3) fail("QoS 3");
  const reader = new Reader(bytes, 2, bytes.length);
  const seq = readDouble(reader, "seq");
  if (!Number.isSafeInteger(seq) || seq < 1) fail(`seq ${seq} is not an integer from 1 to 2^53 - 1`);
  let expiresAt: number | undefined;
  if ((flags & HAS_EXPIRY) !== 0) {
    expiresAt = readDouble(reader, "expiresAt");
    if (!Number.isFinite(expiresAt)) fail(`expiresAt ${expiresAt} is not a finite number`);
  }
  const id = reader.string("origin id");
  const topic = reader.string("topic");
  const message: ClusterMessage = {
    id,
    seq,
    topic,
    payload: bytes,
    qos: qos as QoS,
    retain: (flags & RETAIN) !== 0,
  };
  if (expiresAt !== undefined) message.expiresAt = expiresAt;
  if ((flags & HAS_PUBLISHER) !== 0) message.publisher = reader.string("publisher");
  if ((flags & HAS_PACKET_ID) !== 0) {
    message.packetId = reader.u16("packet id");
    if (message.packetId === 0) fail("packet id 0");
  }
  if ((flags & HAS_PROPERTIES) !== 0) {
    const properties = readProperties(reader, PUBLISH);
    if (properties === undefined) fail("the properties flag is set but there are none");
    if (
      properties.topicAlias !== undefined || properties.subscriptionIdentifiers !== undefined ||
      properties.messageExpiryInterval !== undefined
    ) {
      fail("its properties hold a topic alias, subscription identifiers or a message expiry interval");
    }
    message.properties = properties;
  }
  const length = reader.u32("payload length");
  if (length !== reader.remaining) {
    fail(`the payload length ${length} is not the ${reader.remaining} bytes left`);
  }
  message.payload = bytes.subarray(reader.position);
  return message;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The `JSON.stringify` replacer: byte arrays as `{"$b": base64url}`; plain `{"$b": …}` objects refused. */
function replaceBytes(this: unknown, key: string, value: unknown): unknown {
  // Read the holder, not `value`: a Node Buffer's toJSON has already made `value` a plain object.
  const original = (this as Record<string, unknown>)[key];
  if (original instanceof Uint8Array) return { $b: toBase64Url(original) };
  if (
    typeof value === "object" && value !== null && Object.hasOwn(value, "$b") &&
    Object.keys(value).length === 1
  ) {
    throw new TypeError(
      `Cannot encode JSON: the object at key "${key}" has "$b" as its only key, which stands for bytes`,
    );
  }
  return value;
}

/** The `JSON.parse` reviver: `{"$b": base64url}` back to bytes. */
function reviveBytes(_key: string, value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const text = (value as { $b?: unknown }).$b;
  if (typeof text !== "string" || !Object.hasOwn(value, "$b")) return value;
  for (const key in value) if (key !== "$b") return value;
  const bytes = fromBase64Url(text);
  if (bytes === undefined) {
    throw new SyntaxError(`Cannot decode JSON: "${text.slice(0, 40)}" is not base64url`);
  }
  return bytes;
}

/**
 * Encodes a value as UTF-8 JSON in which every `Uint8Array`, at any depth, is `{"$b": "<base64url>"}`, for
 * session snapshots, wills and other records. Otherwise it is `JSON.stringify`: `undefined` properties are left
 * out, `Date`s become strings, and so on.
 *
 * @param value The value.
 * @returns The JSON's UTF-8 bytes.
 * @throws {TypeError} When the value cannot be JSON (`undefined`, a function, a `BigInt`, a cycle), or holds a
 * plain object whose only key is `$b`, which would come back as bytes.
 *
 * @example A will with a payload
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeJson, encodeJson } from "./envelope.ts";
 * const will = { topic: "status", payload: Uint8Array.of(0, 255), qos: 1, retain: true };
 * assert.equal(new TextDecoder().decode(encodeJson(will)),
 *   '{"topic":"status","payload":{"$b":"AP8"},"qos":1,"retain":true}');
 * assert.deepEqual(decodeJson(encodeJson(will)), will);
 * ```
 */
export function encodeJson(value: unknown): Uint8Array {
  const text = JSON.stringify(value, replaceBytes) as string | undefined;
  if (text === undefined) throw new TypeError(`Cannot encode JSON: a ${typeof value} is no JSON value`);
  return textEncoder.encode(text);
}

/**
 * Decodes what {@linkcode encodeJson} wrote, with its byte arrays as `Uint8Array`s again. The type is the
 * caller's claim: nothing checks it.
 *
 * @param bytes UTF-8 JSON.
 * @returns The value.
 * @throws {SyntaxError} When the bytes are not well-formed UTF-8 JSON, or a `$b` holds no base64url.
 *
 * @example Read a snapshot back
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeJson } from "./envelope.ts";
 * const value = decodeJson<{ payload: Uint8Array }>(new TextEncoder().encode('{"payload":{"$b":"AQI"}}'));
 * assert.deepEqual(value.payload, Uint8Array.of(1, 2));
 * ```
 */
export function decodeJson<T>(bytes: Uint8Array): T {
  let text: string;
  try {
    text = textDecoder.decode(bytes);
  } catch (error) {
    throw new SyntaxError("Cannot decode JSON: it is not well-formed UTF-8", { cause: error });
  }
  try {
    return JSON.parse(text, reviveBytes) as T;
  } catch (error) {
    if (!(error instanceof SyntaxError) || error.message.startsWith("Cannot decode JSON")) throw error;
    throw new SyntaxError(`Cannot decode JSON: ${error.message}`, { cause: error });
  }
}
