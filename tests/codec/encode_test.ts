import { test } from "node:test";
import assert from "node:assert/strict";
import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type { Packet, ProtocolVersion, PublishPacket } from "../../src/codec/packet.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";

const payload = new TextEncoder().encode("x");

function publish(fields: Partial<PublishPacket>): PublishPacket {
  return { type: "publish", topic: "t", payload, qos: 0, retain: false, dup: false, ...fields };
}

function roundTrip(packet: Packet, version: ProtocolVersion): Packet | undefined {
  const decoder = new PacketDecoder({ version });
  decoder.push(encode(packet, version));
  return decoder.next();
}

function isMqttError(reasonCode: ReasonCode, pattern: RegExp): (error: unknown) => boolean {
  return (error) =>
    error instanceof MqttError && error.reasonCode === reasonCode && pattern.test(error.message);
}

test("encoding a PUBLISH to a topic with wildcards fails locally [MQTT-3.3.2-2]", () => {
  for (const topic of ["a/+", "#", "a/#"]) {
    assert.throws(
      () => encode(publish({ topic }), 4),
      isMqttError(ReasonCode.TopicNameInvalid, /MQTT-3\.3\.2-2/),
    );
  }
});

test("encoding refuses DUP with QoS 0, a packet id on QoS 0 and a missing packet id", () => {
  assert.throws(
    () => encode(publish({ dup: true }), 4),
    isMqttError(ReasonCode.ProtocolError, /MQTT-3\.3\.1-2/),
  );
  assert.throws(
    () => encode(publish({ packetId: 1 }), 4),
    isMqttError(ReasonCode.ProtocolError, /MQTT-2\.2\.1-2/),
  );
  assert.throws(() => encode(publish({ qos: 1 }), 4), RangeError);
  assert.throws(() => encode(publish({ qos: 1, packetId: 0 }), 4), RangeError);
  assert.throws(() => encode(publish({ qos: 1, packetId: 65_536 }), 4), RangeError);
  assert.throws(() => encode(publish({ qos: 3 as 0 }), 4), RangeError);
});

test("encoding refuses an empty topic unless a v5 topic alias stands for it", () => {
  assert.throws(
    () => encode(publish({ topic: "" }), 4),
    isMqttError(ReasonCode.TopicNameInvalid, /MQTT-4\.7\.3-1/),
  );
  assert.throws(() => encode(publish({ topic: "" }), 5), MqttError);
  const aliased = publish({ topic: "", properties: { topicAlias: 3 } });
  assert.deepEqual(roundTrip(aliased, 5), aliased);
});

test("encoding refuses strings with U+0000 [MQTT-1.5.4-2] or lone surrogates [MQTT-1.5.4-1]", () => {
  assert.throws(() => encode(publish({ topic: "a\0" }), 4), /MQTT-1\.5\.4-2/);
  assert.throws(() => encode(publish({ topic: "a\ud800" }), 4), /MQTT-1\.5\.4-1/);
  assert.throws(() => encode(publish({ topic: "\udc00a" }), 4), /MQTT-1\.5\.4-1/);
  const surrogatePair = publish({ topic: "\u{1F600}/\u00e9/\u4e2d" });
  assert.deepEqual(roundTrip(surrogatePair, 4), surrogatePair);
});

test("encoding a property the packet does not allow fails with a protocol error", () => {
  const packet = publish({ properties: { sessionExpiryInterval: 5 } as PublishPacket["properties"] });
  assert.throws(
    () => encode(packet, 5),
    isMqttError(ReasonCode.ProtocolError, /Session Expiry Interval on PUBLISH/),
  );
  assert.throws(
    () => encode(publish({ properties: { receiveMaximum: 0 } as PublishPacket["properties"] }), 5),
    MqttError,
  );
  assert.throws(() => encode(publish({ properties: { topicAlias: 0 } }), 5), RangeError);
  assert.throws(() => encode(publish({ properties: { messageExpiryInterval: 2 ** 32 } }), 5), RangeError);
  assert.throws(
    () => encode(publish({ properties: { nonsense: 1 } as PublishPacket["properties"] }), 5),
    TypeError,
  );
});

test("properties are left out below MQTT 5 and empty ones cost one byte in MQTT 5", () => {
  const packet = publish({ properties: { contentType: "text/plain" } });
  assert.deepEqual(encode(packet, 4), encode(publish({}), 4));
  assert.equal(encode(publish({}), 5).length, encode(publish({}), 4).length + 1);
  assert.deepEqual(roundTrip(packet, 5), packet);
});

test("user properties keep their order and repeated names [MQTT-3.3.2-18]", () => {
  const packet = publish({
    properties: {
      userProperties: [["b", "1"], ["a", "2"], ["b", "3"], ["", ""]],
      subscriptionIdentifiers: [3, 268_435_455, 1],
    },
  });
  assert.deepEqual(roundTrip(packet, 5), packet);
});

test("acknowledgements drop reason codes below MQTT 5 and shrink to 2 bytes when successful", () => {
  const success = encode({ type: "puback", packetId: 1, reasonCode: 0 }, 5);
  assert.deepEqual(success, Uint8Array.of(0x40, 2, 0, 1));
  const failure = encode({ type: "pubrec", packetId: 1, reasonCode: ReasonCode.QuotaExceeded }, 5);
  assert.deepEqual(failure, Uint8Array.of(0x50, 3, 0, 1, 0x97));
  assert.deepEqual(encode({ type: "pubrel", packetId: 2, reasonCode: 0 }, 4), Uint8Array.of(0x62, 2, 0, 2));
  assert.deepEqual(encode({ type: "disconnect", reasonCode: 0 }, 5), Uint8Array.of(0xe0, 0));
  assert.deepEqual(encode({ type: "disconnect", reasonCode: 0x8e }, 5), Uint8Array.of(0xe0, 1, 0x8e));
  assert.deepEqual(encode({ type: "disconnect", reasonCode: 0x8e }, 4), Uint8Array.of(0xe0, 0));
  assert.deepEqual(encode({ type: "auth", reasonCode: 0 }, 5), Uint8Array.of(0xf0, 0));
  assert.deepEqual(encode({ type: "auth", reasonCode: 0x18 }, 5), Uint8Array.of(0xf0, 2, 0x18, 0));
});

test("below MQTT 5, CONNACK reason codes map to return codes and SUBACK failures to 0x80", () => {
  const cases: [ReasonCode, number][] = [
    [ReasonCode.Success, 0],
    [ReasonCode.UnsupportedProtocolVersion, 1],
    [ReasonCode.ClientIdentifierNotValid, 2],
    [ReasonCode.ServerUnavailable, 3],
    [ReasonCode.BadUserNameOrPassword, 4],
    [ReasonCode.NotAuthorized, 5],
    [ReasonCode.Banned, 5],
    [ReasonCode.ServerBusy, 3],
  ];
  for (const [reasonCode, returnCode] of cases) {
    const bytes = encode({ type: "connack", sessionPresent: false, reasonCode }, 4);
    assert.deepEqual(bytes, Uint8Array.of(0x20, 2, 0, returnCode));
  }
  const suback = encode({ type: "suback", packetId: 1, reasonCodes: [0, 1, 2, 0x87, 0x80] }, 4);
  assert.deepEqual(suback, Uint8Array.of(0x90, 7, 0, 1, 0, 1, 2, 0x80, 0x80));
  // MQTT 3.1 has no session present flag.
  assert.deepEqual(
    encode({ type: "connack", sessionPresent: true, reasonCode: 0 }, 3),
    Uint8Array.of(0x20, 2, 0, 0),
  );
});

test("CONNECT: the level must match, and before MQTT 5 a password needs a user name [MQTT-3.1.2-22]", () => {
  const connect = {
    type: "connect",
    protocolVersion: 4,
    clientId: "c",
    cleanStart: true,
    keepAlive: 10,
    password: payload,
  } as const;
  assert.throws(() => encode(connect, 4), isMqttError(ReasonCode.ProtocolError, /MQTT-3\.1\.2-22/));
  assert.throws(() => encode(connect, 5), RangeError);
  assert.deepEqual(roundTrip({ ...connect, protocolVersion: 5 }, 5), { ...connect, protocolVersion: 5 });
  assert.throws(() => encode({ ...connect, keepAlive: 70_000, username: "u" }, 4), RangeError);
  assert.throws(
    () => encode({ ...connect, username: "u", will: { topic: "w/+", payload, qos: 0, retain: false } }, 4),
    isMqttError(ReasonCode.TopicNameInvalid, /MQTT-3\.3\.2-2/),
  );
});

test("CONNECT: a bridge sets the top bit of the 3.1 and 3.1.1 level (mosquitto's try_private), never of 5", () => {
  const connect = { type: "connect", clientId: "b", cleanStart: false, keepAlive: 60, bridge: true } as const;
  for (const version of [3, 4] as const) {
    const bytes = encode({ ...connect, protocolVersion: version }, version);
    // Fixed header (2), the protocol name's length (2) and name, then the level.
    assert.equal(bytes[4 + (version === 3 ? 6 : 4)], version | 0x80);
    assert.deepEqual(roundTrip({ ...connect, protocolVersion: version }, version), {
      ...connect,
      protocolVersion: version,
    });
  }
  assert.throws(
    () => encode({ ...connect, protocolVersion: 5 }, 5),
    isMqttError(ReasonCode.ProtocolError, /bridge/),
  );
  // Level 0x85 is no protocol, nor 0x84 with MQIsdp.
  const five = encode({ ...connect, bridge: undefined, protocolVersion: 4 }, 4);
  five[8] = 0x85;
  const decoder = new PacketDecoder({});
  decoder.push(five);
  assert.throws(() => decoder.next(), isMqttError(ReasonCode.UnsupportedProtocolVersion, /level 133/));
});

test("SUBSCRIBE and UNSUBSCRIBE need a filter [MQTT-3.8.3-2] [MQTT-3.10.3-2]", () => {
  assert.throws(() => encode({ type: "subscribe", packetId: 1, subscriptions: [] }, 4), /MQTT-3\.8\.3-2/);
  assert.throws(() => encode({ type: "unsubscribe", packetId: 1, topicFilters: [] }, 4), /MQTT-3\.10\.3-2/);
});

test("a packet whose remaining length exceeds 268,435,455 bytes cannot be encoded", () => {
  const huge = new Uint8Array(268_435_455);
  assert.throws(
    () => encode(publish({ payload: huge }), 4),
    isMqttError(ReasonCode.PacketTooLarge, /268435455/),
  );
});

test("the largest remaining length, 268,435,455 (FF FF FF 7F), is read from a fixed header", () => {
  const decoder = new PacketDecoder({ version: 4, maximumPacketSize: 1000 });
  decoder.push(Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0x7f));
  assert.throws(() => decoder.next(), isMqttError(ReasonCode.PacketTooLarge, /268435460 bytes/));
});

test("PacketDecoder refuses an oversized packet from its fixed header and holds none of its body", () => {
  const decoder = new PacketDecoder({ version: 4, maximumPacketSize: 1_048_576 });
  // A fixed header announcing 32 MiB, followed by the first bytes of the body in the same chunk.
  decoder.push(Uint8Array.of(0x30, 0xfb, 0xff, 0xff, 0x0f, 0x00, 0x01, 0x61, 1, 2, 3));
  assert.throws(() => decoder.next(), isMqttError(ReasonCode.PacketTooLarge, /33554432 bytes/));
  assert.equal(decoder.buffered, 0);
  assert.equal(decoder.allocated, 0);
});

test("PacketDecoder holds about twice what arrived of a large packet, not the size it announces", () => {
  const packet = publish({ payload: Uint8Array.from({ length: 1_000_000 }, (_, i) => i & 0xff) });
  const bytes = encode(packet, 4);
  const decoder = new PacketDecoder({ version: 4 });
  // The fixed header and topic, then the body dribbled in chunks that grow from 1 byte to 64 KiB.
  let sent = 0;
  let chunk = 1;
  let decoded: Packet | undefined;
  while (sent < bytes.length) {
    const end = Math.min(bytes.length, sent + (sent === 0 ? 8 : chunk));
    decoder.push(bytes.subarray(sent, end));
    sent = end;
    decoded = decoder.next();
    if (decoded !== undefined) break;
    assert.ok(decoder.allocated <= Math.max(2 * sent, 1024), `${decoder.allocated} bytes held after ${sent}`);
    chunk = Math.min(chunk * 2, 65_536);
  }
  assert.deepEqual(decoded, packet);
  assert.equal(decoder.allocated, 0);
});

test("remaining lengths at the variable byte integer boundaries round-trip", () => {
  for (const remaining of [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
    // Topic "t" takes 3 bytes of the remaining length in 3.1.1.
    if (remaining < 3) continue;
    const packet = publish({ payload: new Uint8Array(remaining - 3) });
    const bytes = encode(packet, 4);
    const headerLength = remaining < 128 ? 2 : remaining < 16_384 ? 3 : remaining < 2_097_152 ? 4 : 5;
    assert.equal(bytes.length, headerLength + remaining);
    assert.deepEqual(roundTrip(packet, 4), packet);
  }
});
