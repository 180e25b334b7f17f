/**
 * fast-check arbitraries for the codec tests: random valid packets in the decoder's normal form for one
 * protocol version, streams of them, ways to cut bytes into chunks, and a checker of the normal form that the
 * fuzz tests apply to whatever the decoder returns.
 *
 * Normal form, as the decoder returns packets: `properties` (and `will.properties`) only in MQTT 5 and only
 * with at least one property; acknowledgements always carry `reasonCode`; subscriptions always carry every
 * option; optional fields are absent rather than `undefined`.
 *
 * @module
 */

import { REASON_CODES_BY_PACKET, SUBACK_RETURN_CODES_V3 } from "../../src/codec/reason_codes.ts";
import fc from "fast-check";
import type {
  AckProperties,
  AuthPacket,
  AuthProperties,
  ConnAckPacket,
  ConnAckProperties,
  ConnectPacket,
  ConnectProperties,
  DisconnectPacket,
  DisconnectProperties,
  Packet,
  PacketTypeName,
  ProtocolVersion,
  PublishAckPacket,
  PublishPacket,
  PublishProperties,
  QoS,
  SubAckPacket,
  SubscribePacket,
  SubscribeProperties,
  Subscription,
  UnsubAckPacket,
  UnsubscribePacket,
  UnsubscribeProperties,
  UserProperty,
  Will,
  WillProperties,
} from "../../src/codec/packet.ts";
import type { ReasonCode } from "../../src/errors.ts";
export { concat } from "../../src/bytes.ts";

/** The three protocol levels. */
export const VERSIONS: readonly ProtocolVersion[] = [3, 4, 5];

/** A readable name of a protocol level for test names. */
export function versionName(version: ProtocolVersion): string {
  return version === 3 ? "MQTT 3.1" : version === 4 ? "MQTT 3.1.1" : "MQTT 5.0";
}

/**
 * fast-check parameters: `numRuns`, multiplied by the `FC_RUNS_FACTOR` environment variable when it is set (for
 * a long fuzzing session), and the seed from `FC_SEED` when it is set (to replay a failure: fast-check prints
 * the seed and path of every failure).
 */
export function fcParams(numRuns: number): fc.Parameters<unknown> {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  const factor = Number(env.FC_RUNS_FACTOR ?? 1);
  const seed = Number(env.FC_SEED);
  const params: fc.Parameters<unknown> = {
    numRuns: Math.max(1, Math.round(numRuns * (factor > 0 ? factor : 1))),
  };
  if (env.FC_SEED !== undefined && Number.isInteger(seed)) params.seed = seed;
  return params;
}

const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------------------------
// Characters and strings: any Unicode scalar value except U+0000, never a lone surrogate.

const asciiChar = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
const controlChar = fc.oneof(fc.integer({ min: 0x01, max: 0x1f }), fc.integer({ min: 0x7f, max: 0x9f }))
  .map((c) => String.fromCharCode(c));
const bmpChar = fc.integer({ min: 0x80, max: 0xffff - 0x800 })
  .map((c) => String.fromCharCode(c >= 0xd800 ? c + 0x800 : c));
const astralChar = fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c));
const edgeChar = fc.constantFrom(
  "\u0001",
  "\u007f",
  "\u0080",
  "\u07ff",
  "\u0800",
  "\ud7ff",
  "\ue000",
  "\ufeff", // a BOM must be kept, not stripped [MQTT-1.5.4-3]
  "\ufffe",
  "\uffff",
  "\u{10000}",
  "\u{10ffff}",
  "/",
  "+",
  "#",
  "$",
  " ",
);

/** One character (one code point, as a string) that an MQTT string may hold. */
export const anyChar: fc.Arbitrary<string> = fc.oneof(
  { weight: 10, arbitrary: asciiChar },
  { weight: 1, arbitrary: controlChar },
  { weight: 3, arbitrary: bmpChar },
  { weight: 2, arbitrary: astralChar },
  { weight: 2, arbitrary: edgeChar },
);

function charsWithout(excluded: string): fc.Arbitrary<string> {
  return anyChar.filter((c) => !excluded.includes(c));
}

/** The number of UTF-8 bytes of a string without lone surrogates. */
export function utf8Length(text: string): number {
  return utf8.encode(text).length;
}

interface TextOptions {
  minLength?: number;
  /** The longest string, in code points, of the rare long strings; short ones have at most 12. */
  maxLength?: number;
  /** Characters never to use. */
  exclude?: string;
}

/** Strings, mostly short, sometimes up to `maxLength` code points (default 300, so up to 1200 bytes). */
export function text(options: TextOptions = {}): fc.Arbitrary<string> {
  const { minLength = 0, maxLength = 300, exclude = "" } = options;
  const unit = exclude === "" ? anyChar : charsWithout(exclude);
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.string({ unit, minLength, maxLength: Math.max(minLength, Math.min(12, maxLength)) }),
    },
    { weight: 1, arbitrary: fc.string({ unit, minLength, maxLength, size: "max" }) },
  );
}

/** A string of exactly 65,535 UTF-8 bytes, the longest an MQTT string can be. */
export const longestString: fc.Arbitrary<string> = fc.constantFrom("x", "é", "€", "\u{1f600}").map((c) => {
  const size = utf8Length(c);
  const count = Math.floor(65_535 / size);
  return c.repeat(count) + "y".repeat(65_535 - count * size);
});

/** A topic name: non-empty, no wildcards [MQTT-4.7.3-1] [MQTT-3.3.2-2]; rarely the longest string allowed. */
export const topicName: fc.Arbitrary<string> = fc.oneof(
  { weight: 30, arbitrary: text({ minLength: 1, exclude: "+#" }) },
  {
    weight: 10,
    arbitrary: fc.array(text({ maxLength: 6, exclude: "+#/" }), { minLength: 1, maxLength: 5 })
      .map((levels) => levels.join("/"))
      .filter((t) => t.length > 0),
  },
  { weight: 1, arbitrary: longestString },
);

const filterLevel = fc.oneof(
  { weight: 4, arbitrary: text({ maxLength: 6, exclude: "+#/" }) },
  { weight: 1, arbitrary: fc.constant("+") },
);

/** A topic filter: non-empty, with `+` and `#` only as whole levels and `#` only last [MQTT-4.7.1-1..3]. */
export const topicFilter: fc.Arbitrary<string> = fc.tuple(
  fc.array(filterLevel, { minLength: 0, maxLength: 5 }),
  fc.boolean(),
).map(([levels, multi]) => (multi ? [...levels, "#"] : levels).join("/"))
  .filter((f) => f.length > 0);

/** A shared subscription filter `$share/{ShareName}/{filter}` (MQTT 5 §4.8.2). */
export const sharedTopicFilter: fc.Arbitrary<string> = fc.tuple(
  text({ minLength: 1, maxLength: 8, exclude: "+#/" }),
  topicFilter,
).map(([name, filter]) => `$share/${name}/${filter}`);

// ---------------------------------------------------------------------------------------------------------------
// Numbers and bytes.

/** A two-byte integer, with the edges often. */
export const u16: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x100, 0xfffe, 0xffff) },
);
/** A two-byte integer of at least 1. */
export const u16NonZero: fc.Arbitrary<number> = u16.map((n) => (n === 0 ? 1 : n));
/** A packet identifier, 1 to 65,535 [MQTT-2.2.1-3]. */
export const packetId: fc.Arbitrary<number> = u16NonZero;
/** A four-byte integer. */
export const u32: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff) },
);
/** A variable byte integer of at least 1, as subscription identifiers are. */
export const varintNonZero: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 268_435_455 }) },
  { weight: 1, arbitrary: fc.constantFrom(1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455) },
);
/** Binary data of at most 65,535 bytes, mostly short. */
export const binary: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 200, maxLength: 600, size: "max" }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 255, 256, 65_535).map((n) => patterned(n, n)) },
);

/** `length` bytes of a cheap pseudo-random pattern, for payloads too big to generate byte by byte. */
export function patterned(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = (seed | 0) ^ 0x9e37_79b9;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) | 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

/**
 * A PUBLISH payload: usually short, sometimes a few hundred bytes, rarely 16 KB to 70 KB so that the remaining
 * length takes three bytes.
 */
export const payload: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 12, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 4, arbitrary: fc.uint8Array({ minLength: 100, maxLength: 500, size: "max" }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 16_000, max: 70_000 }), fc.integer()).map(([n, s]) =>
      patterned(n, s)
    ),
  },
);

/** The UTF-8 bytes of a random string, for payloads marked as text and for MQTT 3.1's string fields. */
export const utf8Bytes: fc.Arbitrary<Uint8Array> = text().map((t) => utf8.encode(t));

const qos: fc.Arbitrary<QoS> = fc.constantFrom<QoS>(0, 1, 2);

/** User properties: one to four pairs, names often repeated. */
export const userProperties: fc.Arbitrary<UserProperty[]> = fc.array(
  fc.tuple(fc.oneof(fc.constantFrom("a", "name", "é"), text()), text()),
  { minLength: 1, maxLength: 4 },
);

// ---------------------------------------------------------------------------------------------------------------
// Reason codes that each packet type may carry (MQTT 5 §3.x.2.1).

/** Reason codes per packet, from the codec's table (MQTT 5 §3); 3.x CONNACK codes are the mapped return codes. */
export const CONNACK_CODES_5: readonly ReasonCode[] = REASON_CODES_BY_PACKET.connack;
/** CONNACK codes of MQTT 3.1 and 3.1.1, mapped from their return codes 0 to 5. */
export const CONNACK_CODES_3: readonly ReasonCode[] = [0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
export const PUBACK_CODES: readonly ReasonCode[] = REASON_CODES_BY_PACKET.puback;
export const PUBREL_CODES: readonly ReasonCode[] = REASON_CODES_BY_PACKET.pubrel;
export const SUBACK_CODES_5: readonly ReasonCode[] = REASON_CODES_BY_PACKET.suback;
export const SUBACK_CODES_3: readonly ReasonCode[] = SUBACK_RETURN_CODES_V3;
export const UNSUBACK_CODES: readonly ReasonCode[] = REASON_CODES_BY_PACKET.unsuback;
export const DISCONNECT_CODES: readonly ReasonCode[] = REASON_CODES_BY_PACKET.disconnect;
export const AUTH_CODES: readonly ReasonCode[] = REASON_CODES_BY_PACKET.auth;

function reasonCode(codes: readonly ReasonCode[]): fc.Arbitrary<ReasonCode> {
  // Success is the common case and has its own short encodings; pick it a third of the time.
  return fc.oneof({ weight: 1, arbitrary: fc.constant(codes[0]) }, {
    weight: 2,
    arbitrary: fc.constantFrom(...codes),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Properties (MQTT 5 §2.2.2.2).

type Model<T> = { [K in keyof T]-?: fc.Arbitrary<NonNullable<T[K]>> };

/** Some of the properties of `model`, or `undefined` (about a third of the time, or when none was picked). */
function someProperties<T extends object>(model: Model<T>): fc.Arbitrary<T | undefined> {
  const picked = fc.record(model, { requiredKeys: [], noNullPrototype: true }).map((
    p,
  ) => (Object.keys(p).length === 0 ? undefined : p as T));
  return fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: picked });
}

/** Drops Authentication Data without an Authentication Method, a Protocol Error (MQTT 5 §3.1.2.11.10). */
function authDataNeedsMethod<T extends { authenticationMethod?: string; authenticationData?: Uint8Array }>(
  properties: T | undefined,
): T | undefined {
  if (properties === undefined || properties.authenticationData === undefined) return properties;
  if (properties.authenticationMethod !== undefined) return properties;
  const { authenticationData: _, ...rest } = properties;
  return Object.keys(rest).length === 0 ? undefined : rest as T;
}

const connectProperties: fc.Arbitrary<ConnectProperties | undefined> = someProperties<ConnectProperties>({
  sessionExpiryInterval: u32,
  authenticationMethod: text(),
  authenticationData: binary,
  requestProblemInformation: fc.boolean(),
  requestResponseInformation: fc.boolean(),
  receiveMaximum: u16NonZero,
  topicAliasMaximum: u16,
  userProperties,
  maximumPacketSize: u32.map((n) => (n === 0 ? 1 : n)),
}).map(authDataNeedsMethod);

const willProperties: fc.Arbitrary<WillProperties | undefined> = someProperties<WillProperties>({
  payloadFormatIndicator: fc.boolean(),
  messageExpiryInterval: u32,
  contentType: text(),
  responseTopic: topicName,
  correlationData: binary,
  willDelayInterval: u32,
  userProperties,
});

const connAckProperties: fc.Arbitrary<ConnAckProperties | undefined> = someProperties<ConnAckProperties>({
  sessionExpiryInterval: u32,
  assignedClientIdentifier: text(),
  serverKeepAlive: u16,
  authenticationMethod: text(),
  authenticationData: binary,
  responseInformation: text(),
  serverReference: text(),
  reasonString: text(),
  receiveMaximum: u16NonZero,
  topicAliasMaximum: u16,
  maximumQoS: fc.constantFrom<0 | 1>(0, 1),
  retainAvailable: fc.boolean(),
  userProperties,
  maximumPacketSize: u32.map((n) => (n === 0 ? 1 : n)),
  wildcardSubscriptionAvailable: fc.boolean(),
  subscriptionIdentifiersAvailable: fc.boolean(),
  sharedSubscriptionAvailable: fc.boolean(),
}).map(authDataNeedsMethod);

const publishProperties: fc.Arbitrary<PublishProperties | undefined> = someProperties<PublishProperties>({
  payloadFormatIndicator: fc.boolean(),
  messageExpiryInterval: u32,
  contentType: text(),
  responseTopic: topicName,
  correlationData: binary,
  subscriptionIdentifiers: fc.array(varintNonZero, { minLength: 1, maxLength: 4 }),
  topicAlias: u16NonZero,
  userProperties,
});

const ackProperties: fc.Arbitrary<AckProperties | undefined> = someProperties<AckProperties>({
  reasonString: text(),
  userProperties,
});

const subscribeProperties: fc.Arbitrary<SubscribeProperties | undefined> = someProperties<
  SubscribeProperties
>({
  subscriptionIdentifier: varintNonZero,
  userProperties,
});

const unsubscribeProperties: fc.Arbitrary<UnsubscribeProperties | undefined> = someProperties<
  UnsubscribeProperties
>({ userProperties });

const disconnectProperties: fc.Arbitrary<DisconnectProperties | undefined> = someProperties<
  DisconnectProperties
>(
  {
    sessionExpiryInterval: u32,
    serverReference: text(),
    reasonString: text(),
    userProperties,
  },
);

// AUTH always names its method: omitting it is a Protocol Error (MQTT 5 §3.15.2.2.2).
const authProperties: fc.Arbitrary<AuthProperties | undefined> = fc.record({
  authenticationMethod: text(),
  rest: someProperties<Omit<AuthProperties, "authenticationMethod">>({
    authenticationData: binary,
    reasonString: text(),
    userProperties,
  }),
}).map(({ authenticationMethod, rest }) => ({ authenticationMethod, ...rest }));

function withProperties<T extends { properties?: unknown }>(packet: T, properties: T["properties"]): T {
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

/** Picks the payload: when Payload Format Indicator says UTF-8, the text one. */
function payloadFor(
  properties: { payloadFormatIndicator?: boolean } | undefined,
  bytes: Uint8Array,
  textBytes: Uint8Array,
) {
  return properties?.payloadFormatIndicator === true ? textBytes : bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Packets.

/** A client identifier: in MQTT 3.1, 1 to 23 characters (3.1 §3.1); in 3.1.1 and 5.0, any string. */
function clientId(version: ProtocolVersion): fc.Arbitrary<string> {
  if (version !== 3) return fc.oneof(fc.constant(""), text());
  return fc.string({ unit: anyChar, minLength: 1, maxLength: 23 }).filter((t) => utf8Length(t) <= 23);
}

function will(version: ProtocolVersion): fc.Arbitrary<Will> {
  return fc.record({
    topic: topicName,
    payload: version === 3 ? utf8Bytes : binary,
    textPayload: utf8Bytes,
    qos,
    retain: fc.boolean(),
    properties: version === 5 ? willProperties : fc.constant(undefined),
  }).map((r) => {
    const will: Will = {
      topic: r.topic,
      payload: payloadFor(r.properties, r.payload, r.textPayload),
      qos: r.qos,
      retain: r.retain,
    };
    return withProperties(will, r.properties);
  });
}

/** CONNECT packets of `version`. */
export function connectPacket(version: ProtocolVersion): fc.Arbitrary<ConnectPacket> {
  return fc.record({
    clientId: clientId(version),
    cleanStart: fc.boolean(),
    keepAlive: u16,
    username: fc.option(text(), { nil: undefined }),
    // MQTT 3.1 carries the password as a UTF-8 string.
    password: fc.option(version === 3 ? utf8Bytes : binary, { nil: undefined }),
    will: fc.option(will(version), { nil: undefined }),
    properties: version === 5 ? connectProperties : fc.constant(undefined),
    bridge: version === 5 ? fc.constant(false) : fc.boolean(),
  }).map((r) => {
    const packet: ConnectPacket = {
      type: "connect",
      protocolVersion: version,
      clientId: r.clientId,
      // [MQTT-3.1.3-7] a 3.1.1 client without an identifier must ask for a clean session.
      cleanStart: version === 4 && r.clientId === "" ? true : r.cleanStart,
      keepAlive: r.keepAlive,
    };
    if (r.username !== undefined) packet.username = r.username;
    // [MQTT-3.1.2-22] before MQTT 5, a password needs a user name.
    if (r.password !== undefined && (version === 5 || r.username !== undefined)) packet.password = r.password;
    if (r.will !== undefined) packet.will = r.will;
    if (r.bridge) packet.bridge = true;
    return withProperties(packet, r.properties);
  });
}

/** CONNACK packets of `version`. */
export function connAckPacket(version: ProtocolVersion): fc.Arbitrary<ConnAckPacket> {
  return fc.record({
    sessionPresent: fc.boolean(),
    reasonCode: reasonCode(version === 5 ? CONNACK_CODES_5 : CONNACK_CODES_3),
    properties: version === 5 ? connAckProperties : fc.constant(undefined),
  }).map((r) => {
    // MQTT 3.1 has no Session Present flag; later versions clear it on a refusal [MQTT-3.2.2-4] [MQTT-3.2.2-6].
    const sessionPresent = version !== 3 && r.reasonCode === 0 && r.sessionPresent;
    const packet: ConnAckPacket = { type: "connack", sessionPresent, reasonCode: r.reasonCode };
    return withProperties(packet, r.properties);
  });
}

/** PUBLISH packets of `version`. */
export function publishPacket(version: ProtocolVersion): fc.Arbitrary<PublishPacket> {
  return fc.record({
    topic: topicName,
    emptyTopic: fc.boolean(),
    payload,
    textPayload: utf8Bytes,
    qos,
    retain: fc.boolean(),
    dup: fc.boolean(),
    packetId,
    properties: version === 5 ? publishProperties : fc.constant(undefined),
  }).map((r) => {
    // MQTT 5 §3.3.2.3.4: a topic alias may stand for the topic, which is then empty.
    const topic = r.properties?.topicAlias !== undefined && r.emptyTopic ? "" : r.topic;
    const packet: PublishPacket = {
      type: "publish",
      topic,
      payload: payloadFor(r.properties, r.payload, r.textPayload),
      qos: r.qos,
      retain: r.retain,
      dup: r.qos > 0 && r.dup, // [MQTT-3.3.1-2]
    };
    if (r.qos > 0) packet.packetId = r.packetId;
    return withProperties(packet, r.properties);
  });
}

/** PUBACK, PUBREC, PUBREL or PUBCOMP packets of `version`. */
export function publishAckPacket<T extends "puback" | "pubrec" | "pubrel" | "pubcomp">(
  type: T,
  version: ProtocolVersion,
): fc.Arbitrary<PublishAckPacket<T>> {
  const codes = type === "puback" || type === "pubrec" ? PUBACK_CODES : PUBREL_CODES;
  return fc.record({
    packetId,
    reasonCode: version === 5 ? reasonCode(codes) : fc.constant<ReasonCode>(0x00),
    properties: version === 5 ? ackProperties : fc.constant(undefined),
  }).map((r) =>
    withProperties<PublishAckPacket<T>>(
      { type, packetId: r.packetId, reasonCode: r.reasonCode },
      r.properties,
    )
  );
}

function subscription(version: ProtocolVersion): fc.Arbitrary<Subscription> {
  if (version !== 5) {
    return fc.record({ topicFilter, qos }).map((r) => ({
      topicFilter: r.topicFilter,
      qos: r.qos,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    }));
  }
  return fc.record({
    topicFilter: fc.oneof({ weight: 4, arbitrary: topicFilter }, { weight: 1, arbitrary: sharedTopicFilter }),
    qos,
    noLocal: fc.boolean(),
    retainAsPublished: fc.boolean(),
    retainHandling: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
  }).map((r) => ({
    ...r,
    // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
    noLocal: r.topicFilter.startsWith("$share/") ? false : r.noLocal,
  }));
}

/** SUBSCRIBE packets of `version`. */
export function subscribePacket(version: ProtocolVersion): fc.Arbitrary<SubscribePacket> {
  return fc.record({
    packetId,
    subscriptions: fc.array(subscription(version), { minLength: 1, maxLength: 5 }),
    properties: version === 5 ? subscribeProperties : fc.constant(undefined),
  }).map((r) =>
    withProperties<SubscribePacket>(
      { type: "subscribe", packetId: r.packetId, subscriptions: r.subscriptions },
      r.properties,
    )
  );
}

/** SUBACK packets of `version`. */
export function subAckPacket(version: ProtocolVersion): fc.Arbitrary<SubAckPacket> {
  return fc.record({
    packetId,
    reasonCodes: fc.array(reasonCode(version === 5 ? SUBACK_CODES_5 : SUBACK_CODES_3), {
      minLength: 1,
      maxLength: 6,
    }),
    properties: version === 5 ? ackProperties : fc.constant(undefined),
  }).map((r) =>
    withProperties<SubAckPacket>(
      { type: "suback", packetId: r.packetId, reasonCodes: r.reasonCodes },
      r.properties,
    )
  );
}

/** UNSUBSCRIBE packets of `version`. */
export function unsubscribePacket(version: ProtocolVersion): fc.Arbitrary<UnsubscribePacket> {
  return fc.record({
    packetId,
    topicFilters: fc.array(
      version === 5
        ? fc.oneof({ weight: 4, arbitrary: topicFilter }, { weight: 1, arbitrary: sharedTopicFilter })
        : topicFilter,
      { minLength: 1, maxLength: 5 },
    ),
    properties: version === 5 ? unsubscribeProperties : fc.constant(undefined),
  }).map((r) =>
    withProperties<UnsubscribePacket>(
      { type: "unsubscribe", packetId: r.packetId, topicFilters: r.topicFilters },
      r.properties,
    )
  );
}

/** UNSUBACK packets of `version`: reason codes only in MQTT 5. */
export function unsubAckPacket(version: ProtocolVersion): fc.Arbitrary<UnsubAckPacket> {
  return fc.record({
    packetId,
    reasonCodes: version === 5
      ? fc.array(reasonCode(UNSUBACK_CODES), { minLength: 1, maxLength: 6 })
      : fc.constant<ReasonCode[]>([]),
    properties: version === 5 ? ackProperties : fc.constant(undefined),
  }).map((r) =>
    withProperties<UnsubAckPacket>(
      { type: "unsuback", packetId: r.packetId, reasonCodes: r.reasonCodes },
      r.properties,
    )
  );
}

/** DISCONNECT packets of `version`. */
export function disconnectPacket(version: ProtocolVersion): fc.Arbitrary<DisconnectPacket> {
  if (version !== 5) return fc.constant<DisconnectPacket>({ type: "disconnect", reasonCode: 0x00 });
  return fc.record({ reasonCode: reasonCode(DISCONNECT_CODES), properties: disconnectProperties })
    .map((r) =>
      withProperties<DisconnectPacket>({ type: "disconnect", reasonCode: r.reasonCode }, r.properties)
    );
}

/** AUTH packets (MQTT 5 only). */
export const authPacket: fc.Arbitrary<AuthPacket> = fc.record({
  reasonCode: reasonCode(AUTH_CODES),
  properties: authProperties,
}).map((r) => withProperties<AuthPacket>({ type: "auth", reasonCode: r.reasonCode }, r.properties));

/** The packet types of a protocol level: all fifteen in MQTT 5, all but AUTH before. */
export function packetTypes(version: ProtocolVersion): PacketTypeName[] {
  const types: PacketTypeName[] = [
    "connect",
    "connack",
    "publish",
    "puback",
    "pubrec",
    "pubrel",
    "pubcomp",
    "subscribe",
    "suback",
    "unsubscribe",
    "unsuback",
    "pingreq",
    "pingresp",
    "disconnect",
  ];
  return version === 5 ? [...types, "auth"] : types;
}

/** Valid packets of one type in `version`. */
export function packetOfType(type: PacketTypeName, version: ProtocolVersion): fc.Arbitrary<Packet> {
  switch (type) {
    case "connect":
      return connectPacket(version);
    case "connack":
      return connAckPacket(version);
    case "publish":
      return publishPacket(version);
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return publishAckPacket(type, version);
    case "subscribe":
      return subscribePacket(version);
    case "suback":
      return subAckPacket(version);
    case "unsubscribe":
      return unsubscribePacket(version);
    case "unsuback":
      return unsubAckPacket(version);
    case "pingreq":
      return fc.constant({ type: "pingreq" });
    case "pingresp":
      return fc.constant({ type: "pingresp" });
    case "disconnect":
      return disconnectPacket(version);
    case "auth":
      if (version !== 5) throw new RangeError("AUTH exists only in MQTT 5");
      return authPacket;
    default: {
      const unreachable: never = type;
      throw new TypeError(`Unknown packet type ${unreachable}`);
    }
  }
}

/** Valid packets of every type of `version`, PUBLISH more often than the rest. */
export function packet(version: ProtocolVersion): fc.Arbitrary<Packet> {
  return fc.oneof(
    ...packetTypes(version).map((type) => ({
      weight: type === "publish" ? 4 : 1,
      arbitrary: packetOfType(type, version),
    })),
  );
}

/** The packet types a client sends, the only ones a broker-side decoder must accept after the CONNECT. */
export const CLIENT_TYPES: readonly PacketTypeName[] = [
  "publish",
  "puback",
  "pubrec",
  "pubrel",
  "pubcomp",
  "subscribe",
  "unsubscribe",
  "pingreq",
  "disconnect",
  "auth",
];

/**
 * A stream as a broker receives it: a CONNECT of `version`, then up to `maxLength` packets a client may send.
 */
export function clientStream(version: ProtocolVersion, maxLength = 6): fc.Arbitrary<Packet[]> {
  const rest = fc.oneof(
    ...CLIENT_TYPES.filter((t) => version === 5 || t !== "auth")
      .map((type) => ({ weight: type === "publish" ? 4 : 1, arbitrary: packetOfType(type, version) })),
  );
  return fc.tuple(connectPacket(version), fc.array(rest, { maxLength }))
    .map(([connect, packets]) => [connect, ...packets]);
}

/** One to `maxLength` packets of any type of `version`. */
export function packetStream(version: ProtocolVersion, maxLength = 6): fc.Arbitrary<Packet[]> {
  return fc.array(packet(version), { minLength: 1, maxLength });
}

// ---------------------------------------------------------------------------------------------------------------
// Chunking.

/** How to cut bytes into chunks: whole, one byte at a time, or by repeating a list of sizes. */
export type ChunkPlan = { kind: "whole" } | { kind: "bytes" } | { kind: "sizes"; sizes: number[] };

/** Chunk plans, one byte at a time a quarter of the time. */
export const chunkPlan: fc.Arbitrary<ChunkPlan> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<ChunkPlan>({ kind: "whole" }) },
  { weight: 1, arbitrary: fc.constant<ChunkPlan>({ kind: "bytes" }) },
  {
    weight: 2,
    arbitrary: fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 600 })), {
      minLength: 1,
      maxLength: 8,
    }).map((sizes): ChunkPlan => ({ kind: "sizes", sizes })),
  },
);

/** The most chunks {@linkcode split} makes, so that 70 KB payloads stay fast. */
export const MAX_CHUNKS = 8_192;

/** Cuts `bytes` into views following `plan`; long inputs get bigger chunks, never more than `MAX_CHUNKS`. */
export function split(bytes: Uint8Array, plan: ChunkPlan): Uint8Array[] {
  if (plan.kind === "whole") return [bytes];
  const floor = Math.ceil(bytes.length / MAX_CHUNKS);
  const sizes = plan.kind === "bytes" ? [1] : plan.sizes;
  const chunks: Uint8Array[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = Math.max(floor, sizes[i % sizes.length]);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** Hex of at most `max` bytes, for failure messages. */
export function toHex(bytes: Uint8Array, max = 96): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, "0")).join(" ");
  return bytes.length > max ? `${shown} … (${bytes.length} bytes)` : shown;
}

// ---------------------------------------------------------------------------------------------------------------
// The normal form, checked.

const ALLOWED_PROPERTIES: Record<string, readonly string[]> = {
  connect: [
    "sessionExpiryInterval",
    "authenticationMethod",
    "authenticationData",
    "requestProblemInformation",
    "requestResponseInformation",
    "receiveMaximum",
    "topicAliasMaximum",
    "userProperties",
    "maximumPacketSize",
  ],
  will: [
    "payloadFormatIndicator",
    "messageExpiryInterval",
    "contentType",
    "responseTopic",
    "correlationData",
    "willDelayInterval",
    "userProperties",
  ],
  connack: [
    "sessionExpiryInterval",
    "assignedClientIdentifier",
    "serverKeepAlive",
    "authenticationMethod",
    "authenticationData",
    "responseInformation",
    "serverReference",
    "reasonString",
    "receiveMaximum",
    "topicAliasMaximum",
    "maximumQoS",
    "retainAvailable",
    "userProperties",
    "maximumPacketSize",
    "wildcardSubscriptionAvailable",
    "subscriptionIdentifiersAvailable",
    "sharedSubscriptionAvailable",
  ],
  publish: [
    "payloadFormatIndicator",
    "messageExpiryInterval",
    "contentType",
    "responseTopic",
    "correlationData",
    "subscriptionIdentifiers",
    "topicAlias",
    "userProperties",
  ],
  puback: ["reasonString", "userProperties"],
  pubrec: ["reasonString", "userProperties"],
  pubrel: ["reasonString", "userProperties"],
  pubcomp: ["reasonString", "userProperties"],
  subscribe: ["subscriptionIdentifier", "userProperties"],
  suback: ["reasonString", "userProperties"],
  unsubscribe: ["userProperties"],
  unsuback: ["reasonString", "userProperties"],
  disconnect: ["sessionExpiryInterval", "serverReference", "reasonString", "userProperties"],
  auth: ["authenticationMethod", "authenticationData", "reasonString", "userProperties"],
  pingreq: [],
  pingresp: [],
};

const BOOLEAN_PROPERTIES = new Set([
  "payloadFormatIndicator",
  "requestProblemInformation",
  "requestResponseInformation",
  "retainAvailable",
  "wildcardSubscriptionAvailable",
  "subscriptionIdentifiersAvailable",
  "sharedSubscriptionAvailable",
]);
const STRING_PROPERTIES = new Set([
  "contentType",
  "responseTopic",
  "assignedClientIdentifier",
  "authenticationMethod",
  "responseInformation",
  "serverReference",
  "reasonString",
]);
const BINARY_PROPERTIES = new Set(["correlationData", "authenticationData"]);
// name -> [min, max]
const INTEGER_PROPERTIES: Record<string, [number, number]> = {
  messageExpiryInterval: [0, 0xffff_ffff],
  sessionExpiryInterval: [0, 0xffff_ffff],
  willDelayInterval: [0, 0xffff_ffff],
  maximumPacketSize: [1, 0xffff_ffff],
  serverKeepAlive: [0, 0xffff],
  receiveMaximum: [1, 0xffff],
  topicAliasMaximum: [0, 0xffff],
  topicAlias: [1, 0xffff],
  subscriptionIdentifier: [1, 268_435_455],
  maximumQoS: [0, 1],
};

/** Whether `text` is a valid MQTT string: no U+0000, no lone surrogate, at most 65,535 UTF-8 bytes. */
export function isMqttString(text: unknown): text is string {
  if (typeof text !== "string" || text.includes("\0")) return false;
  if (!text.isWellFormed()) return false;
  return utf8Length(text) <= 0xffff;
}

function isBytes(value: unknown): value is Uint8Array {
  // A Node Buffer is not deepStrictEqual to a Uint8Array: the decoder must hand out plain Uint8Arrays.
  return value instanceof Uint8Array && Object.getPrototypeOf(value) === Uint8Array.prototype;
}

function isInteger(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;
}

function hasWildcard(topic: string): boolean {
  return topic.includes("+") || topic.includes("#");
}

class Problems {
  list: string[] = [];
  check(ok: boolean, message: string): void {
    if (!ok) this.list.push(message);
  }
  keys(object: object, where: string, required: readonly string[], optional: readonly string[]): void {
    for (const key of required) this.check(Object.hasOwn(object, key), `${where}: missing ${key}`);
    for (const [key, value] of Object.entries(object)) {
      this.check(required.includes(key) || optional.includes(key), `${where}: unexpected key ${key}`);
      this.check(value !== undefined, `${where}: key ${key} is present but undefined`);
    }
  }
}

function checkProperties(p: Problems, owner: string, properties: unknown, version: ProtocolVersion): void {
  if (properties === undefined) return;
  p.check(version === 5, `${owner}: properties before MQTT 5`);
  if (typeof properties !== "object" || properties === null) {
    p.check(false, `${owner}: properties is not an object`);
    return;
  }
  p.check(
    Object.getPrototypeOf(properties) === Object.prototype,
    `${owner}: properties is not a plain object`,
  );
  const entries = Object.entries(properties);
  p.check(entries.length > 0, `${owner}: empty properties object`);
  const allowed = ALLOWED_PROPERTIES[owner];
  for (const [name, value] of entries) {
    p.check(allowed.includes(name), `${owner}: property ${name} is not allowed on this packet`);
    if (value === undefined) p.check(false, `${owner}: property ${name} is undefined`);
    else if (BOOLEAN_PROPERTIES.has(name)) {
      p.check(typeof value === "boolean", `${owner}: ${name} is not a boolean`);
    } else if (STRING_PROPERTIES.has(name)) {
      p.check(isMqttString(value), `${owner}: ${name} is not a valid string`);
    } else if (BINARY_PROPERTIES.has(name)) {
      p.check(isBytes(value) && value.length <= 0xffff, `${owner}: ${name} is not binary data`);
    } else if (name in INTEGER_PROPERTIES) {
      const [min, max] = INTEGER_PROPERTIES[name];
      p.check(isInteger(value, min, max), `${owner}: ${name} = ${value} is out of range`);
    } else if (name === "subscriptionIdentifiers") {
      p.check(
        Array.isArray(value) && value.length > 0 && value.every((v) => isInteger(v, 1, 268_435_455)),
        `${owner}: subscriptionIdentifiers is not a non-empty array of 1..268435455`,
      );
    } else if (name === "userProperties") {
      p.check(
        Array.isArray(value) && value.length > 0 &&
          value.every((pair) =>
            Array.isArray(pair) && pair.length === 2 && isMqttString(pair[0]) && isMqttString(pair[1])
          ),
        `${owner}: userProperties is not a non-empty array of [string, string]`,
      );
    } else p.check(false, `${owner}: unknown property ${name}`);
  }
  if (owner === "publish" || owner === "will") {
    const responseTopic = (properties as { responseTopic?: string }).responseTopic;
    p.check(
      responseTopic === undefined || !hasWildcard(responseTopic),
      `${owner}: wildcard in responseTopic`,
    );
  }
}

function checkReasonCode(p: Problems, where: string, code: unknown, allowed: readonly number[]): void {
  p.check(typeof code === "number" && allowed.includes(code), `${where}: reason code ${code} not allowed`);
}

/**
 * The ways `packet` departs from the normal form of `version` (empty when it conforms). Applied to everything
 * the decoder returns, so a packet the protocol forbids cannot pass just because the encoder writes it back.
 */
export function normalFormProblems(packet: Packet, version: ProtocolVersion): string[] {
  const p = new Problems();
  const where = packet.type;
  const withProps = (...keys: string[]) => [...keys, "properties"];
  const ackCodes = (v5: readonly ReasonCode[]) => (version === 5 ? v5 : [0x00]);
  p.check(Object.getPrototypeOf(packet) === Object.prototype, `${where}: not a plain object`);
  switch (packet.type) {
    case "connect": {
      p.keys(
        packet,
        where,
        ["type", "protocolVersion", "clientId", "cleanStart", "keepAlive"],
        withProps("username", "password", "will", "bridge"),
      );
      p.check(
        packet.bridge === undefined || (packet.bridge === true && version !== 5),
        "connect: bridge is true, on 3.1 and 3.1.1 only, or absent",
      );
      p.check(
        packet.protocolVersion === version,
        `connect: protocolVersion ${packet.protocolVersion} in a v${version} stream`,
      );
      p.check(isMqttString(packet.clientId), "connect: clientId is not a valid string");
      p.check(typeof packet.cleanStart === "boolean", "connect: cleanStart is not a boolean");
      p.check(isInteger(packet.keepAlive, 0, 0xffff), "connect: keepAlive out of range");
      p.check(
        packet.username === undefined || isMqttString(packet.username),
        "connect: username is not a valid string",
      );
      p.check(
        packet.password === undefined || (isBytes(packet.password) && packet.password.length <= 0xffff),
        "connect: password is not binary data",
      );
      if (version === 4) {
        p.check(
          packet.password === undefined || packet.username !== undefined,
          "connect: password without username in 3.1.1",
        );
      }
      if (packet.will !== undefined) {
        const will = packet.will;
        p.keys(will, "will", ["topic", "payload", "qos", "retain"], ["properties"]);
        p.check(
          isMqttString(will.topic) && will.topic.length > 0 && !hasWildcard(will.topic),
          `will: invalid topic`,
        );
        p.check(isBytes(will.payload) && will.payload.length <= 0xffff, "will: payload is not binary data");
        p.check(isInteger(will.qos, 0, 2), "will: qos out of range");
        p.check(typeof will.retain === "boolean", "will: retain is not a boolean");
        checkProperties(p, "will", will.properties, version);
      }
      checkProperties(p, where, packet.properties, version);
      break;
    }
    case "connack":
      p.keys(packet, where, ["type", "sessionPresent", "reasonCode"], ["properties"]);
      p.check(typeof packet.sessionPresent === "boolean", "connack: sessionPresent is not a boolean");
      checkReasonCode(p, where, packet.reasonCode, version === 5 ? CONNACK_CODES_5 : CONNACK_CODES_3);
      checkProperties(p, where, packet.properties, version);
      break;
    case "publish": {
      p.keys(packet, where, ["type", "topic", "payload", "qos", "retain", "dup"], withProps("packetId"));
      p.check(isInteger(packet.qos, 0, 2), "publish: qos out of range");
      p.check(typeof packet.retain === "boolean", "publish: retain is not a boolean");
      p.check(typeof packet.dup === "boolean", "publish: dup is not a boolean");
      p.check(!packet.dup || packet.qos > 0, "publish: dup with QoS 0");
      p.check(isBytes(packet.payload), "publish: payload is not a Uint8Array");
      if (packet.qos > 0) p.check(isInteger(packet.packetId, 1, 0xffff), "publish: packetId out of range");
      else p.check(packet.packetId === undefined, "publish: packetId with QoS 0");
      p.check(isMqttString(packet.topic) && !hasWildcard(packet.topic), "publish: invalid topic name");
      const aliased = version === 5 && packet.properties?.topicAlias !== undefined;
      p.check(packet.topic.length > 0 || aliased, "publish: empty topic without a topic alias");
      checkProperties(p, where, packet.properties, version);
      break;
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      p.keys(packet, where, ["type", "packetId", "reasonCode"], ["properties"]);
      p.check(isInteger(packet.packetId, 1, 0xffff), `${where}: packetId out of range`);
      checkReasonCode(
        p,
        where,
        packet.reasonCode,
        ackCodes(where === "puback" || where === "pubrec" ? PUBACK_CODES : PUBREL_CODES),
      );
      checkProperties(p, where, packet.properties, version);
      break;
    case "subscribe":
      p.keys(packet, where, ["type", "packetId", "subscriptions"], ["properties"]);
      p.check(isInteger(packet.packetId, 1, 0xffff), "subscribe: packetId out of range");
      p.check(
        Array.isArray(packet.subscriptions) && packet.subscriptions.length > 0,
        "subscribe: no subscriptions",
      );
      for (const s of packet.subscriptions) {
        p.keys(
          s,
          "subscription",
          ["topicFilter", "qos", "noLocal", "retainAsPublished", "retainHandling"],
          [],
        );
        p.check(
          isMqttString(s.topicFilter) && s.topicFilter.length > 0,
          "subscription: invalid topic filter",
        );
        p.check(isInteger(s.qos, 0, 2), "subscription: qos out of range");
        p.check(
          typeof s.noLocal === "boolean" && typeof s.retainAsPublished === "boolean",
          "subscription: options not booleans",
        );
        p.check(isInteger(s.retainHandling, 0, 2), "subscription: retainHandling out of range");
        if (version !== 5) {
          p.check(
            !s.noLocal && !s.retainAsPublished && s.retainHandling === 0,
            "subscription: MQTT 5 options before MQTT 5",
          );
        } else {p.check(
            !(s.noLocal && s.topicFilter.startsWith("$share/")),
            "subscription: noLocal on a shared subscription",
          );}
      }
      checkProperties(p, where, packet.properties, version);
      break;
    case "suback":
      p.keys(packet, where, ["type", "packetId", "reasonCodes"], ["properties"]);
      p.check(isInteger(packet.packetId, 1, 0xffff), "suback: packetId out of range");
      p.check(Array.isArray(packet.reasonCodes), "suback: reasonCodes is not an array");
      for (const code of packet.reasonCodes) {
        checkReasonCode(p, where, code, version === 5 ? SUBACK_CODES_5 : SUBACK_CODES_3);
      }
      checkProperties(p, where, packet.properties, version);
      break;
    case "unsubscribe":
      p.keys(packet, where, ["type", "packetId", "topicFilters"], ["properties"]);
      p.check(isInteger(packet.packetId, 1, 0xffff), "unsubscribe: packetId out of range");
      p.check(
        Array.isArray(packet.topicFilters) && packet.topicFilters.length > 0,
        "unsubscribe: no topic filters",
      );
      for (const f of packet.topicFilters) {
        p.check(isMqttString(f) && f.length > 0, "unsubscribe: invalid topic filter");
      }
      checkProperties(p, where, packet.properties, version);
      break;
    case "unsuback":
      p.keys(packet, where, ["type", "packetId", "reasonCodes"], ["properties"]);
      p.check(isInteger(packet.packetId, 1, 0xffff), "unsuback: packetId out of range");
      p.check(Array.isArray(packet.reasonCodes), "unsuback: reasonCodes is not an array");
      if (version !== 5) p.check(packet.reasonCodes.length === 0, "unsuback: reason codes before MQTT 5");
      for (const code of packet.reasonCodes) checkReasonCode(p, where, code, UNSUBACK_CODES);
      checkProperties(p, where, packet.properties, version);
      break;
    case "pingreq":
    case "pingresp":
      p.keys(packet, where, ["type"], []);
      break;
    case "disconnect":
      p.keys(packet, where, ["type", "reasonCode"], ["properties"]);
      checkReasonCode(p, where, packet.reasonCode, ackCodes(DISCONNECT_CODES));
      checkProperties(p, where, packet.properties, version);
      break;
    case "auth":
      p.check(version === 5, "auth: before MQTT 5");
      p.keys(packet, where, ["type", "reasonCode"], ["properties"]);
      checkReasonCode(p, where, packet.reasonCode, AUTH_CODES);
      checkProperties(p, where, packet.properties, version);
      break;
    default: {
      const unreachable: never = packet;
      p.check(false, `unknown packet type ${(unreachable as { type: unknown }).type}`);
    }
  }
  return p.list;
}
