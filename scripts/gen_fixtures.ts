/**
 * Generates `tests/fixtures/packets.json`: wire fixtures for the codec whose bytes come from an independent
 * implementation, mqtt-packet 9 (a devDependency), never from our own encoder.
 *
 * Each case below is written in our packet form (`src/codec/packet.ts`, exactly as `PacketDecoder` returns
 * it). The script converts the case to mqtt-packet's object form, calls its `generate()` for the case's
 * protocol level, and writes one line per case:
 *
 * ```json
 * {"name":"...","version":5,"hex":"300a...","packet":{"type":"publish",...}}
 * ```
 *
 * with `Uint8Array` fields written as `{"$hex":"..."}`. `"decodeOnly":true` (with a `"note"`) marks valid
 * bytes that are not the shortest encoding: mqtt-packet writes the MQTT 5 property length (and for DISCONNECT
 * and AUTH the reason code) where the specification lets a sender leave it out, and our encoder does leave
 * it out. The shortest forms come from the specification examples in `tests/fixtures/spec_examples.json`.
 *
 * Before writing, every generated packet is parsed back with mqtt-packet's own parser, converted to our form
 * and compared with the case, and the order of its properties is compared with the order of the keys of the
 * case's `properties` (our encoder writes properties in key order, so both must agree). After writing, the
 * fixtures are loaded through `tests/codec/_fixtures.ts` and compared again, and the hand-written
 * `tests/fixtures/spec_examples.json` is cross-checked with mqtt-packet's parser too.
 *
 * What mqtt-packet cannot express is left out rather than made up: a password without a user name (MQTT 5
 * allows it), user properties whose repeated names are not adjacent (mqtt-packet keeps them in an object,
 * grouped by name) or look like array indices, and the shortest MQTT 5 forms mentioned above.
 *
 * Run: `node scripts/gen_fixtures.ts`
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { writeFileSync } from "node:fs";
import { deepStrictEqual } from "node:assert/strict";
import { generate, parser } from "mqtt-packet";
import type { Packet, Properties, ProtocolVersion, QoS, UserProperty } from "../src/codec/packet.ts";

const OUTPUT = new URL("../tests/fixtures/packets.json", import.meta.url);

/** One fixture: a packet in our form and the protocol level it is encoded for. */
interface Case {
  name: string;
  version: ProtocolVersion;
  packet: Packet;
  /** Give mqtt-packet an empty properties object, so that it writes "reason code 0, property length 0". */
  emptyProperties?: true;
}

/** An object in mqtt-packet's form (`cmd`, `messageId`, `granted`, ...). */
type WireObject = Record<string, unknown>;

const ALL: readonly ProtocolVersion[] = [3, 4, 5];
const V311_AND_V5: readonly ProtocolVersion[] = [4, 5];
const V5: readonly ProtocolVersion[] = [5];

/** The MQTT 5 reason codes that MQTT 3.1 / 3.1.1 CONNACK return codes 0-5 map to. */
const CONNACK_RETURN_CODES = [0x00, 0x84, 0x85, 0x88, 0x86, 0x87] as const;

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const range = (length: number, start = 0): Uint8Array =>
  Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);

// ---------------------------------------------------------------------------------------------------------
// The cases, in our packet form. `versions` lists the protocol levels a case is generated for; builders take
// the level because the normal form differs (properties and subscription options exist only in MQTT 5).
// ---------------------------------------------------------------------------------------------------------

const cases: Case[] = [];

function add(
  name: string,
  versions: readonly ProtocolVersion[],
  build: (version: ProtocolVersion) => Packet,
  extra: Pick<Case, "emptyProperties"> = {},
): void {
  for (const version of versions) cases.push({ name, version, packet: build(version), ...extra });
}

function subscription(
  topicFilter: string,
  qos: QoS,
  options: { noLocal?: boolean; retainAsPublished?: boolean; retainHandling?: 0 | 1 | 2 } = {},
) {
  return {
    topicFilter,
    qos,
    noLocal: options.noLocal ?? false,
    retainAsPublished: options.retainAsPublished ?? false,
    retainHandling: options.retainHandling ?? 0,
  };
}

// CONNECT ------------------------------------------------------------------------------------------------

add("connect minimal", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "client-1",
  cleanStart: true,
  keepAlive: 60,
}));
add("connect empty client id", V311_AND_V5, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "",
  cleanStart: true,
  keepAlive: 0,
}));
add("connect persistent session, keep-alive off", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "persistent",
  cleanStart: false,
  keepAlive: 0,
}));
add("connect maximum keep-alive", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "k",
  cleanStart: true,
  keepAlive: 65535,
}));
add("connect with user name", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "c",
  cleanStart: true,
  keepAlive: 30,
  username: "alice",
}));
add("connect with user name and password", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "c",
  cleanStart: true,
  keepAlive: 30,
  username: "alice",
  password: utf8("s3cret"),
}));
add("connect with binary password and non-ASCII user name", V311_AND_V5, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "gerät-7",
  cleanStart: false,
  keepAlive: 10,
  username: "ユーザー",
  password: bytes(0x00, 0xff, 0x80, 0x7f, 0xc3),
}));
add("connect with empty user name and empty password", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "c",
  cleanStart: true,
  keepAlive: 30,
  username: "",
  password: new Uint8Array(0),
}));
add("connect with will qos 0", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "w0",
  cleanStart: true,
  keepAlive: 60,
  will: { topic: "clients/w0/status", payload: utf8("offline"), qos: 0, retain: false },
}));
add("connect with retained will qos 1, user name and password", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "w1",
  cleanStart: true,
  keepAlive: 60,
  username: "user",
  password: utf8("pass"),
  will: { topic: "clients/w1/status", payload: utf8("gone"), qos: 1, retain: true },
}));
add("connect with will qos 2 and empty will payload", ALL, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "w2",
  cleanStart: false,
  keepAlive: 5,
  will: { topic: "w/2", payload: new Uint8Array(0), qos: 2, retain: false },
}));
add("connect with binary will payload and non-ASCII will topic", V311_AND_V5, (v) => ({
  type: "connect",
  protocolVersion: v,
  clientId: "w3",
  cleanStart: true,
  keepAlive: 60,
  username: "u",
  will: { topic: "状態/A𪛔", payload: range(256), qos: 1, retain: false },
}));
add("connect with every connect property", V5, () => ({
  type: "connect",
  protocolVersion: 5,
  clientId: "props",
  cleanStart: true,
  keepAlive: 120,
  properties: {
    sessionExpiryInterval: 0xffffffff,
    receiveMaximum: 20,
    maximumPacketSize: 1_048_576,
    topicAliasMaximum: 10,
    requestResponseInformation: true,
    requestProblemInformation: false,
    userProperties: [["region", "eu"], ["region", "us"], ["client", "gen_fixtures"]],
    authenticationMethod: "SCRAM-SHA-256",
    authenticationData: utf8("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"),
  },
}));
add("connect with session expiry only", V5, () => ({
  type: "connect",
  protocolVersion: 5,
  clientId: "s",
  cleanStart: false,
  keepAlive: 60,
  properties: { sessionExpiryInterval: 3600 },
}));
add("connect with will properties, user name and password", V5, () => ({
  type: "connect",
  protocolVersion: 5,
  clientId: "will-props",
  cleanStart: true,
  keepAlive: 60,
  username: "user",
  password: utf8("pass"),
  will: {
    topic: "devices/will-props/status",
    payload: utf8('{"online":false}'),
    qos: 1,
    retain: true,
    properties: {
      willDelayInterval: 30,
      payloadFormatIndicator: true,
      messageExpiryInterval: 86_400,
      contentType: "application/json",
      responseTopic: "devices/will-props/ack",
      correlationData: bytes(0xde, 0xad, 0xbe, 0xef),
      userProperties: [["reason", "power-loss"]],
    },
  },
  properties: { sessionExpiryInterval: 60, receiveMaximum: 1 },
}));
add("connect with will properties but no connect properties", V5, () => ({
  type: "connect",
  protocolVersion: 5,
  clientId: "w",
  cleanStart: true,
  keepAlive: 0,
  will: {
    topic: "t",
    payload: utf8("x"),
    qos: 0,
    retain: false,
    properties: { payloadFormatIndicator: false, willDelayInterval: 0 },
  },
}));

// CONNACK ------------------------------------------------------------------------------------------------

for (const version of [3, 4] as const) {
  CONNACK_RETURN_CODES.forEach((reasonCode, returnCode) => {
    add(`connack return code ${returnCode}`, [version], () => ({
      type: "connack",
      sessionPresent: false,
      reasonCode,
    }));
  });
}
add("connack session present", [4], () => ({ type: "connack", sessionPresent: true, reasonCode: 0 }));
add("connack success", V5, () => ({ type: "connack", sessionPresent: false, reasonCode: 0 }));
add("connack session present", V5, () => ({ type: "connack", sessionPresent: true, reasonCode: 0 }));
for (const reasonCode of [0x80, 0x84, 0x85, 0x86, 0x87, 0x88, 0x8a, 0x95, 0x9f] as const) {
  add(`connack failure 0x${reasonCode.toString(16)}`, V5, () => ({
    type: "connack",
    sessionPresent: false,
    reasonCode,
  }));
}
add("connack failure with reason string and user property", V5, () => ({
  type: "connack",
  sessionPresent: false,
  reasonCode: 0x87,
  properties: { reasonString: "not authorized for client id", userProperties: [["hint", "check ACL"]] },
}));
add("connack use another server", V5, () => ({
  type: "connack",
  sessionPresent: false,
  reasonCode: 0x9c,
  properties: { serverReference: "mqtt2.example.com:1883" },
}));
add("connack with every connack property", V5, () => ({
  type: "connack",
  sessionPresent: true,
  reasonCode: 0,
  properties: {
    sessionExpiryInterval: 7200,
    receiveMaximum: 100,
    maximumQoS: 1,
    retainAvailable: false,
    maximumPacketSize: 65_536,
    assignedClientIdentifier: "auto-3f2a",
    topicAliasMaximum: 16,
    reasonString: "welcome",
    userProperties: [["node", "b1"], ["node", "b2"]],
    wildcardSubscriptionAvailable: false,
    subscriptionIdentifiersAvailable: true,
    sharedSubscriptionAvailable: false,
    serverKeepAlive: 30,
    responseInformation: "responses/auto-3f2a",
    serverReference: "other.example.com",
    authenticationMethod: "SCRAM-SHA-256",
    authenticationData: utf8("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
  },
}));
add("connack maximum qos 0", V5, () => ({
  type: "connack",
  sessionPresent: false,
  reasonCode: 0,
  properties: { maximumQoS: 0, retainAvailable: true, topicAliasMaximum: 0 },
}));

// PUBLISH ------------------------------------------------------------------------------------------------

add("publish qos 0", ALL, () => ({
  type: "publish",
  topic: "a/b",
  payload: utf8("hello"),
  qos: 0,
  retain: false,
  dup: false,
}));
add("publish qos 0 retain", ALL, () => ({
  type: "publish",
  topic: "sensors/1/temperature",
  payload: utf8("21.5"),
  qos: 0,
  retain: true,
  dup: false,
}));
add("publish qos 1", ALL, () => ({
  type: "publish",
  topic: "a/b",
  payload: utf8("at least once"),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 1,
}));
add("publish qos 1 dup", ALL, () => ({
  type: "publish",
  topic: "a/b",
  payload: utf8("again"),
  qos: 1,
  retain: false,
  dup: true,
  packetId: 258,
}));
add("publish qos 2", ALL, () => ({
  type: "publish",
  topic: "x",
  payload: utf8("exactly once"),
  qos: 2,
  retain: false,
  dup: false,
  packetId: 10,
}));
add("publish qos 2 dup retain, packet id 65535", ALL, () => ({
  type: "publish",
  topic: "x/y/z",
  payload: utf8("z"),
  qos: 2,
  retain: true,
  dup: true,
  packetId: 65535,
}));
add("publish empty payload", ALL, () => ({
  type: "publish",
  topic: "a",
  payload: new Uint8Array(0),
  qos: 0,
  retain: false,
  dup: false,
}));
add("publish empty retained payload qos 1 (clears a retained message)", ALL, () => ({
  type: "publish",
  topic: "status/device-9",
  payload: new Uint8Array(0),
  qos: 1,
  retain: true,
  dup: false,
  packetId: 77,
}));
add("publish non-ASCII topic and UTF-8 payload", ALL, () => ({
  type: "publish",
  topic: "A𪛔/温度/café",
  payload: utf8("Grüße, 世界 🌍"),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 4660,
}));
add("publish every byte value", ALL, () => ({
  type: "publish",
  topic: "bin",
  payload: range(256),
  qos: 0,
  retain: false,
  dup: false,
}));
add("publish 200-byte payload (two-byte remaining length)", ALL, () => ({
  type: "publish",
  topic: "big",
  payload: range(200, 7),
  qos: 2,
  retain: false,
  dup: false,
  packetId: 2,
}));
add("publish topic with spaces and $SYS prefix", ALL, () => ({
  type: "publish",
  topic: "$SYS/broker/load/messages received",
  payload: utf8("42"),
  qos: 0,
  retain: true,
  dup: false,
}));
add("publish with many properties", V5, () => ({
  type: "publish",
  topic: "requests/calc",
  payload: utf8('{"op":"add","args":[1,2]}'),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 99,
  properties: {
    payloadFormatIndicator: true,
    messageExpiryInterval: 120,
    topicAlias: 5,
    responseTopic: "responses/calc/42",
    correlationData: bytes(0x01, 0x02, 0x03, 0x04, 0xff),
    userProperties: [["trace", "a"], ["trace", "b"], ["trace", ""], ["tenant", "ü"]],
    subscriptionIdentifiers: [1, 16_384, 268_435_455],
    contentType: "application/json",
  },
}));
add("publish with one subscription identifier", V5, () => ({
  type: "publish",
  topic: "a/b",
  payload: utf8("m"),
  qos: 0,
  retain: false,
  dup: false,
  properties: { subscriptionIdentifiers: [42] },
}));
add("publish with subscription identifiers at variable byte integer boundaries", V5, () => ({
  type: "publish",
  topic: "v",
  payload: utf8("b"),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 3,
  properties: { subscriptionIdentifiers: [127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455] },
}));
add("publish with binary payload format and expiry 0", V5, () => ({
  type: "publish",
  topic: "raw",
  payload: bytes(0xff, 0xfe),
  qos: 2,
  retain: true,
  dup: true,
  packetId: 300,
  properties: { payloadFormatIndicator: false, messageExpiryInterval: 0 },
}));
add("publish empty topic with topic alias", V5, () => ({
  type: "publish",
  topic: "",
  payload: utf8("aliased"),
  qos: 0,
  retain: false,
  dup: false,
  properties: { topicAlias: 3 },
}));
add("publish topic alias set with topic", V5, () => ({
  type: "publish",
  topic: "long/topic/name/for/alias",
  payload: new Uint8Array(0),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 8,
  properties: { topicAlias: 65535, userProperties: [["k", "v"]] },
}));

// PUBACK, PUBREC, PUBREL, PUBCOMP ------------------------------------------------------------------------

for (const type of ["puback", "pubrec", "pubrel", "pubcomp"] as const) {
  add(`${type}`, ALL, () => ({ type, packetId: 1, reasonCode: 0 }));
  add(`${type} packet id 65535`, ALL, () => ({ type, packetId: 65535, reasonCode: 0 }));
  add(`${type} success with reason string`, V5, () => ({
    type,
    packetId: 10,
    reasonCode: 0,
    properties: { reasonString: "ok" },
  }));
  add(`${type} success with user properties`, V5, () => ({
    type,
    packetId: 11,
    reasonCode: 0,
    properties: { userProperties: [["a", "1"], ["b", "2"]] },
  }));
  add(`${type} success with empty properties`, V5, () => ({ type, packetId: 12, reasonCode: 0 }), {
    emptyProperties: true,
  });
}
add("puback with a 300-byte reason string (two-byte property length)", V5, () => ({
  type: "puback",
  packetId: 9,
  reasonCode: 0x80,
  properties: { reasonString: "x".repeat(300) },
}));
for (const type of ["puback", "pubrec"] as const) {
  add(`${type} no matching subscribers`, V5, () => ({ type, packetId: 5, reasonCode: 0x10 }));
  for (const reasonCode of [0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99] as const) {
    add(`${type} failure 0x${reasonCode.toString(16)}`, V5, () => ({ type, packetId: 6, reasonCode }));
  }
  add(`${type} failure with reason string and user properties`, V5, () => ({
    type,
    packetId: 7,
    reasonCode: 0x97,
    properties: { reasonString: "quota exceeded", userProperties: [["limit", "100/s"], ["limit", "1 GB"]] },
  }));
}
for (const type of ["pubrel", "pubcomp"] as const) {
  add(`${type} packet identifier not found`, V5, () => ({ type, packetId: 5, reasonCode: 0x92 }));
  add(`${type} packet identifier not found with reason string`, V5, () => ({
    type,
    packetId: 6,
    reasonCode: 0x92,
    properties: { reasonString: "unknown packet id 6" },
  }));
}

// SUBSCRIBE ----------------------------------------------------------------------------------------------

add("subscribe one filter", ALL, () => ({
  type: "subscribe",
  packetId: 1,
  subscriptions: [subscription("a/b", 0)],
}));
add("subscribe several filters", ALL, () => ({
  type: "subscribe",
  packetId: 4096,
  subscriptions: [
    subscription("a/b", 0),
    subscription("c/+/d", 1),
    subscription("#", 2),
    subscription("温度/+/A𪛔", 1),
  ],
}));
add("subscribe every subscription option", V5, () => ({
  type: "subscribe",
  packetId: 20,
  subscriptions: [
    subscription("a/#", 0, { noLocal: true }),
    subscription("b/#", 1, { retainAsPublished: true }),
    subscription("c/#", 2, { retainHandling: 1 }),
    subscription("d/#", 1, { retainHandling: 2 }),
    subscription("e/#", 2, { noLocal: true, retainAsPublished: true, retainHandling: 2 }),
    subscription("$share/group/f/#", 1, { retainAsPublished: true, retainHandling: 1 }),
  ],
}));
add("subscribe with subscription identifier and user properties", V5, () => ({
  type: "subscribe",
  packetId: 21,
  subscriptions: [subscription("sensors/#", 1, { noLocal: true })],
  properties: { subscriptionIdentifier: 268_435_455, userProperties: [["app", "dash"], ["app", "cli"]] },
}));
add("subscribe with subscription identifier 1", V5, () => ({
  type: "subscribe",
  packetId: 65535,
  subscriptions: [subscription("x", 2), subscription("y/+", 0, { retainHandling: 2 })],
  properties: { subscriptionIdentifier: 1 },
}));

// SUBACK -------------------------------------------------------------------------------------------------

add("suback granted qos 0 1 2", ALL, () => ({ type: "suback", packetId: 1, reasonCodes: [0, 1, 2] }));
add(
  "suback with failure",
  [4, 5],
  () => ({ type: "suback", packetId: 4096, reasonCodes: [0x80, 1, 0x80, 2] }),
);
add("suback every reason code", V5, () => ({
  type: "suback",
  packetId: 20,
  reasonCodes: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
}));
add("suback with reason string and user property", V5, () => ({
  type: "suback",
  packetId: 21,
  reasonCodes: [0x87, 0x01],
  properties: { reasonString: "no access to admin/#", userProperties: [["acl", "v2"]] },
}));

// UNSUBSCRIBE --------------------------------------------------------------------------------------------

add("unsubscribe one filter", ALL, () => ({ type: "unsubscribe", packetId: 2, topicFilters: ["a/b"] }));
add("unsubscribe several filters", ALL, () => ({
  type: "unsubscribe",
  packetId: 513,
  topicFilters: ["a/b", "c/+/d", "#", "温度/+/A𪛔"],
}));
add("unsubscribe with user properties", V5, () => ({
  type: "unsubscribe",
  packetId: 22,
  topicFilters: ["sensors/#", "$share/group/f/#"],
  properties: { userProperties: [["why", "shutdown"]] },
}));

// UNSUBACK -----------------------------------------------------------------------------------------------

add("unsuback", [3, 4], () => ({ type: "unsuback", packetId: 2, reasonCodes: [] }));
add("unsuback packet id 65535", [3, 4], () => ({ type: "unsuback", packetId: 65535, reasonCodes: [] }));
add("unsuback success", V5, () => ({ type: "unsuback", packetId: 2, reasonCodes: [0] }));
add("unsuback every reason code", V5, () => ({
  type: "unsuback",
  packetId: 513,
  reasonCodes: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
}));
add("unsuback with reason string and user properties", V5, () => ({
  type: "unsuback",
  packetId: 22,
  reasonCodes: [0x11, 0x00],
  properties: { reasonString: "sensors/# was not subscribed", userProperties: [["a", "b"], ["c", "d"]] },
}));

// PINGREQ, PINGRESP --------------------------------------------------------------------------------------

add("pingreq", ALL, () => ({ type: "pingreq" }));
add("pingresp", ALL, () => ({ type: "pingresp" }));

// DISCONNECT ---------------------------------------------------------------------------------------------

add("disconnect", [3, 4], () => ({ type: "disconnect", reasonCode: 0 }));
// mqtt-packet always writes the MQTT 5 reason code and property length: `e0 02 00 00` here, while the shortest
// form, `e0 00`, is in spec_examples.json.
add("disconnect normal with empty properties", V5, () => ({ type: "disconnect", reasonCode: 0 }));
add("disconnect with will message", V5, () => ({ type: "disconnect", reasonCode: 0x04 }));
add("disconnect normal with session expiry", V5, () => ({
  type: "disconnect",
  reasonCode: 0,
  properties: { sessionExpiryInterval: 0 },
}));
for (const reasonCode of [0x80, 0x81, 0x82, 0x87, 0x8b, 0x8d, 0x8e, 0x93, 0x94, 0x98, 0xa0] as const) {
  add(`disconnect 0x${reasonCode.toString(16)}`, V5, () => ({ type: "disconnect", reasonCode }));
}
add("disconnect session taken over with reason string and user properties", V5, () => ({
  type: "disconnect",
  reasonCode: 0x8e,
  properties: { reasonString: "another connection used client id c", userProperties: [["by", "10.0.0.7"]] },
}));
add("disconnect server moved with server reference", V5, () => ({
  type: "disconnect",
  reasonCode: 0x9d,
  properties: { serverReference: "mqtt-new.example.com", reasonString: "moved" },
}));
add("disconnect every disconnect property", V5, () => ({
  type: "disconnect",
  reasonCode: 0x04,
  properties: {
    sessionExpiryInterval: 3600,
    reasonString: "bye",
    userProperties: [["k", "v"]],
    serverReference: "s2",
  },
}));

// AUTH ---------------------------------------------------------------------------------------------------

add("auth success with empty properties", V5, () => ({ type: "auth", reasonCode: 0 }));
add("auth continue authentication", V5, () => ({
  type: "auth",
  reasonCode: 0x18,
  properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: utf8("c=biws,r=abc") },
}));
add("auth re-authenticate with reason string and user property", V5, () => ({
  type: "auth",
  reasonCode: 0x19,
  properties: {
    authenticationMethod: "TOKEN",
    authenticationData: range(64, 200),
    reasonString: "token refresh",
    userProperties: [["exp", "1700000000"]],
  },
}));
add("auth success with method", V5, () => ({
  type: "auth",
  reasonCode: 0,
  properties: { authenticationMethod: "SCRAM-SHA-256" },
}));

// ---------------------------------------------------------------------------------------------------------
// Our form -> mqtt-packet's form.
// ---------------------------------------------------------------------------------------------------------

/**
 * mqtt-packet keeps user properties in an object, `{ name: value | value[] }`, and writes the pairs name by
 * name. A list of pairs maps onto it only when pairs sharing a name are adjacent and no name is an array
 * index (JavaScript puts those keys first).
 */
function toWireUserProperties(
  pairs: readonly UserProperty[],
  where: string,
): Record<string, string | string[]> {
  const object: Record<string, string | string[]> = {};
  let previous: string | undefined;
  for (const [name, value] of pairs) {
    if (/^(0|[1-9][0-9]*)$/.test(name) || name === "__proto__") {
      throw new Error(`${where}: user property name "${name}" cannot keep its place in an object`);
    }
    const current = object[name];
    if (current === undefined) {
      object[name] = value;
    } else if (name !== previous) {
      throw new Error(
        `${where}: user properties named "${name}" are not adjacent; mqtt-packet would group them`,
      );
    } else {
      object[name] = Array.isArray(current) ? [...current, value] : [current, value];
    }
    previous = name;
  }
  return object;
}

/** Our properties in mqtt-packet's form, keys in the same order (mqtt-packet writes them in key order). */
function toWireProperties(properties: Properties, where: string): WireObject {
  const wire: WireObject = {};
  for (const [key, value] of Object.entries(properties)) {
    if (key === "userProperties") wire[key] = toWireUserProperties(value as UserProperty[], where);
    else if (key === "subscriptionIdentifiers") wire.subscriptionIdentifier = [...(value as number[])];
    else if (value instanceof Uint8Array) wire[key] = Buffer.from(value);
    else wire[key] = value;
  }
  return wire;
}

/** Adds `properties` to `wire` when there are any (MQTT 5 only; the cases have none below level 5). */
function withProperties(wire: WireObject, properties: Properties | undefined, where: string): WireObject {
  if (properties !== undefined) wire.properties = toWireProperties(properties, where);
  return wire;
}

function toWire(packet: Packet, version: ProtocolVersion, where: string): WireObject {
  switch (packet.type) {
    case "connect": {
      const wire: WireObject = {
        cmd: "connect",
        protocolId: version === 3 ? "MQIsdp" : "MQTT",
        protocolVersion: packet.protocolVersion,
        clean: packet.cleanStart,
        clientId: packet.clientId,
        keepalive: packet.keepAlive,
      };
      if (packet.username !== undefined) wire.username = packet.username;
      if (packet.password !== undefined) wire.password = Buffer.from(packet.password);
      if (packet.will !== undefined) {
        const { topic, payload, qos, retain, properties } = packet.will;
        wire.will = withProperties({ topic, payload: Buffer.from(payload), qos, retain }, properties, where);
      }
      return withProperties(wire, packet.properties, where);
    }
    case "connack": {
      const wire: WireObject = { cmd: "connack", sessionPresent: packet.sessionPresent };
      if (version === 5) {
        wire.reasonCode = packet.reasonCode;
      } else {
        const returnCode = CONNACK_RETURN_CODES.indexOf(packet.reasonCode as 0);
        if (returnCode < 0) {
          throw new Error(`${where}: no 3.x return code for 0x${packet.reasonCode.toString(16)}`);
        }
        wire.returnCode = returnCode;
      }
      return withProperties(wire, packet.properties, where);
    }
    case "publish": {
      const { topic, qos, dup, retain } = packet;
      const wire: WireObject = {
        cmd: "publish",
        topic,
        payload: Buffer.from(packet.payload),
        qos,
        dup,
        retain,
      };
      if (packet.packetId !== undefined) wire.messageId = packet.packetId;
      return withProperties(wire, packet.properties, where);
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp": {
      const wire: WireObject = {
        cmd: packet.type,
        messageId: packet.packetId,
        reasonCode: packet.reasonCode,
      };
      return withProperties(wire, packet.properties, where);
    }
    case "subscribe":
      return withProperties(
        {
          cmd: "subscribe",
          messageId: packet.packetId,
          subscriptions: packet.subscriptions.map((s) => ({
            topic: s.topicFilter,
            qos: s.qos,
            nl: s.noLocal,
            rap: s.retainAsPublished,
            rh: s.retainHandling,
          })),
        },
        packet.properties,
        where,
      );
    case "suback":
      return withProperties(
        { cmd: "suback", messageId: packet.packetId, granted: [...packet.reasonCodes] },
        packet.properties,
        where,
      );
    case "unsubscribe":
      return withProperties(
        { cmd: "unsubscribe", messageId: packet.packetId, unsubscriptions: [...packet.topicFilters] },
        packet.properties,
        where,
      );
    case "unsuback":
      return withProperties(
        { cmd: "unsuback", messageId: packet.packetId, granted: [...packet.reasonCodes] },
        packet.properties,
        where,
      );
    case "pingreq":
    case "pingresp":
      return { cmd: packet.type };
    case "disconnect":
    case "auth":
      return withProperties({ cmd: packet.type, reasonCode: packet.reasonCode }, packet.properties, where);
    default: {
      const unreachable: never = packet;
      throw new Error(`Unknown packet ${JSON.stringify(unreachable)}`);
    }
  }
}

function wireFor(c: Case, where: string): WireObject {
  const wire = toWire(c.packet, c.version, where);
  if (c.emptyProperties) wire.properties = {};
  return wire;
}

/**
 * Why mqtt-packet's bytes for a case are longer than the shortest encoding, which is what our encoder writes,
 * or `undefined` when they are the shortest. MQTT 5 lets a sender leave out the property length of PUBACK,
 * PUBREC, PUBREL, PUBCOMP (§3.4.2.2.1 and the like) and DISCONNECT (§3.14.2.2.1) when there are no properties,
 * and the reason code too when it is 0x00 (§3.4.2.1, §3.14.2.1, AUTH §3.15.2.1). mqtt-packet writes both
 * for DISCONNECT and AUTH, and the property length after any non-zero reason code or given properties object.
 */
function longerThanShortest(c: Case): string | undefined {
  const packet = c.packet;
  if (c.version !== 5 || !("reasonCode" in packet) || packet.properties !== undefined) return undefined;
  switch (packet.type) {
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      if (packet.reasonCode !== 0) return "property length 0 written out after the reason code";
      return c.emptyProperties ? "reason code 0x00 and property length 0 written out" : undefined;
    case "disconnect":
      if (packet.reasonCode !== 0) return "property length 0 written out after the reason code";
      return "reason code 0x00 and property length 0 written out";
    case "auth":
      // Only a 0x00 reason code may go without its property length (MQTT 5 §3.15.2.1).
      return packet.reasonCode === 0 ? "reason code 0x00 and property length 0 written out" : undefined;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// mqtt-packet's form -> our form, to check the generated bytes with mqtt-packet's parser.
// ---------------------------------------------------------------------------------------------------------

const toBytes = (value: unknown): Uint8Array => Uint8Array.from(value as Uint8Array);

function fromWireProperties(wire: unknown, packetType: string): Properties | undefined {
  if (wire === undefined) return undefined;
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(wire as WireObject)) {
    if (key === "userProperties") {
      const pairs: UserProperty[] = [];
      for (const [name, values] of Object.entries(value as Record<string, string | string[]>)) {
        for (const v of Array.isArray(values) ? values : [values]) pairs.push([name, v]);
      }
      properties[key] = pairs;
    } else if (key === "subscriptionIdentifier" && packetType === "publish") {
      properties.subscriptionIdentifiers = Array.isArray(value) ? value : [value];
    } else if (value instanceof Uint8Array) {
      properties[key] = toBytes(value);
    } else {
      properties[key] = value;
    }
  }
  return properties as Properties;
}

function withOurProperties<T extends object>(packet: T, wire: unknown, type: string): T {
  const properties = fromWireProperties(wire, type);
  return properties === undefined ? packet : { ...packet, properties };
}

function fromWire(wire: WireObject, version: ProtocolVersion): Packet {
  const type = wire.cmd as Packet["type"];
  const v5 = version === 5;
  switch (type) {
    case "connect": {
      if (wire.protocolId !== (version === 3 ? "MQIsdp" : "MQTT")) {
        throw new Error(`protocol name ${wire.protocolId} does not belong to protocol level ${version}`);
      }
      const packet: Record<string, unknown> = {
        type,
        protocolVersion: wire.protocolVersion,
        clientId: wire.clientId,
        cleanStart: wire.clean,
        keepAlive: wire.keepalive,
      };
      if (wire.username !== undefined) packet.username = wire.username;
      if (wire.password !== undefined) packet.password = toBytes(wire.password);
      if (wire.will !== undefined) {
        const will = wire.will as WireObject;
        packet.will = withOurProperties(
          {
            topic: will.topic,
            payload: toBytes(will.payload),
            qos: will.qos,
            retain: will.retain,
          },
          will.properties,
          "will",
        );
      }
      return withOurProperties(packet, wire.properties, type) as unknown as Packet;
    }
    case "connack": {
      const reasonCode = v5 ? wire.reasonCode : CONNACK_RETURN_CODES[wire.returnCode as number];
      return withOurProperties(
        { type, sessionPresent: wire.sessionPresent, reasonCode },
        wire.properties,
        type,
      ) as Packet;
    }
    case "publish": {
      const packet: Record<string, unknown> = {
        type,
        topic: wire.topic,
        payload: toBytes(wire.payload),
        qos: wire.qos,
        retain: wire.retain,
        dup: wire.dup,
      };
      if ((wire.qos as number) > 0) packet.packetId = wire.messageId;
      return withOurProperties(packet, wire.properties, type) as unknown as Packet;
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return withOurProperties(
        { type, packetId: wire.messageId, reasonCode: v5 ? wire.reasonCode : 0 },
        wire.properties,
        type,
      ) as Packet;
    case "subscribe":
      return withOurProperties(
        {
          type,
          packetId: wire.messageId,
          subscriptions: (wire.subscriptions as WireObject[]).map((s) => ({
            topicFilter: s.topic,
            qos: s.qos,
            noLocal: v5 ? s.nl : false,
            retainAsPublished: v5 ? s.rap : false,
            retainHandling: v5 ? s.rh : 0,
          })),
        },
        wire.properties,
        type,
      ) as Packet;
    case "suback":
    case "unsuback":
      return withOurProperties(
        { type, packetId: wire.messageId, reasonCodes: (wire.granted as number[] | undefined) ?? [] },
        wire.properties,
        type,
      ) as Packet;
    case "unsubscribe":
      return withOurProperties(
        { type, packetId: wire.messageId, topicFilters: wire.unsubscriptions },
        wire.properties,
        type,
      ) as Packet;
    case "pingreq":
    case "pingresp":
      return { type };
    case "disconnect":
    case "auth":
      return withOurProperties(
        { type, reasonCode: v5 ? wire.reasonCode : 0 },
        wire.properties,
        type,
      ) as Packet;
    default: {
      const unreachable: never = type;
      throw new Error(`Unknown command ${unreachable}`);
    }
  }
}

/** Parses exactly one packet with mqtt-packet's parser. */
function parseOne(data: Uint8Array, version: ProtocolVersion, where: string): WireObject {
  const packets: WireObject[] = [];
  let error: unknown;
  const p = parser({ protocolVersion: version });
  p.on("packet", (packet) => packets.push(packet as unknown as WireObject));
  p.on("error", (e: unknown) => error ??= e);
  const left = p.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  if (error !== undefined) throw new Error(`${where}: mqtt-packet cannot parse the bytes`, { cause: error });
  if (packets.length !== 1 || left !== 0) {
    throw new Error(`${where}: mqtt-packet parsed ${packets.length} packets, ${left} bytes left over`);
  }
  return packets[0];
}

/** The keys of a properties object in order, with mqtt-packet's `subscriptionIdentifier` under our PUBLISH name. */
function propertyOrder(properties: object | undefined, type: Packet["type"]): string[] {
  return Object.keys(properties ?? {}).map((key) =>
    key === "subscriptionIdentifier" && type === "publish" ? "subscriptionIdentifiers" : key
  );
}

/** Parses `data` with mqtt-packet and checks it is `expected`, properties in the same order. */
function crossCheck(data: Uint8Array, version: ProtocolVersion, expected: Packet, where: string): void {
  const wire = parseOne(data, version, where);
  deepStrictEqual(fromWire(wire, version), expected, `${where}: mqtt-packet parses the bytes differently`);
  const ours = expected as { properties?: object; will?: { properties?: object } };
  const theirs = wire as { properties?: object; will?: { properties?: object } };
  const type = expected.type;
  deepStrictEqual(
    propertyOrder(theirs.properties, type),
    propertyOrder(ours.properties, type),
    `${where}: property order`,
  );
  deepStrictEqual(
    propertyOrder(theirs.will?.properties, type),
    propertyOrder(ours.will?.properties, type),
    `${where}: will property order`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Generate, check, write.
// ---------------------------------------------------------------------------------------------------------

const toHex = (data: Uint8Array): string =>
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("hex");

/** JSON of our packet form, with every Uint8Array as `{ "$hex": "..." }`. */
function packetJson(packet: Packet): string {
  return JSON.stringify(
    packet,
    (_key, value) => value instanceof Uint8Array ? { $hex: toHex(value) } : value,
  );
}

const seen = new Set<string>();
const lines: string[] = [];
for (const c of cases) {
  const where = `${c.name} (protocol level ${c.version})`;
  if (seen.has(where)) throw new Error(`${where}: duplicate case`);
  seen.add(where);
  if (c.packet.type === "connect" && c.packet.protocolVersion !== c.version) {
    throw new Error(`${where}: protocolVersion differs from the fixture's version`);
  }
  const wire = wireFor(c, where);
  const generated = generate(wire as unknown as Parameters<typeof generate>[0], {
    protocolVersion: c.version,
  });
  const data = new Uint8Array(generated.buffer, generated.byteOffset, generated.byteLength);
  crossCheck(data, c.version, c.packet, where);
  const longer = longerThanShortest(c);
  const extra = longer === undefined
    ? ""
    : `,"decodeOnly":true,"note":${JSON.stringify(`${longer} (valid; not the shortest form)`)}`;
  lines.push(
    `{"name":${JSON.stringify(c.name)},"version":${c.version},"hex":"${toHex(data)}",` +
      `"packet":${packetJson(c.packet)}${extra}}`,
  );
}
writeFileSync(OUTPUT, `[\n${lines.join(",\n")}\n]\n`);

// Read the fixtures back the way the tests do, and cross-check the hand-written specification examples.
const { mqttPacketFixtures, specFixtures } = await import("../tests/codec/_fixtures.ts");
deepStrictEqual(
  mqttPacketFixtures.map((f) => [f.name, f.version, f.packet]),
  cases.map((c) => [c.name, c.version, c.packet]),
  "packets.json does not load back into the cases",
);
/**
 * Specification examples that mqtt-packet's parser rejects: it always reads an AUTH reason code, which MQTT 5
 * §3.15.2.1 lets a sender leave out.
 */
const NOT_PARSED_BY_MQTT_PACKET = new Set(["AUTH with remaining length 0"]);
let specChecked = 0;
for (const f of specFixtures) {
  if (f.version === 5 && NOT_PARSED_BY_MQTT_PACKET.has(f.name)) continue;
  crossCheck(f.bytes, f.version, f.packet, `spec_examples.json: ${f.name} (protocol level ${f.version})`);
  specChecked++;
}

const counts = [3, 4, 5].map((v) => `${cases.filter((c) => c.version === v).length} for level ${v}`).join(
  ", ",
);
console.log(`Wrote ${cases.length} fixtures to ${OUTPUT.pathname} (${counts}).`);
console.log(
  `Cross-checked ${specChecked} of ${specFixtures.length} specification examples with mqtt-packet.`,
);
