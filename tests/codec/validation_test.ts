import { test } from "node:test";
import assert from "node:assert/strict";
import { encode } from "../../src/codec/encode.ts";
import { MAX_PACKET_SIZE, PacketDecoder } from "../../src/codec/decoder.ts";
import type { Packet, ProtocolVersion } from "../../src/codec/packet.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";

function bytes(...parts: (number | string | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "number") out.push(part);
    else if (typeof part === "string") out.push(...new TextEncoder().encode(part));
    else out.push(...part);
  }
  return Uint8Array.from(out);
}

/** A two-byte length followed by the UTF-8 of `text`. */
function str(text: string): number[] {
  const encoded = [...new TextEncoder().encode(text)];
  return [encoded.length >> 8, encoded.length & 0xff, ...encoded];
}

function decodeOnce(data: Uint8Array, version?: ProtocolVersion): Packet | undefined {
  const decoder = new PacketDecoder({ version });
  decoder.push(data);
  return decoder.next();
}

function assertRejects(
  data: Uint8Array,
  version: ProtocolVersion | undefined,
  reasonCode: ReasonCode,
  pattern: RegExp,
): void {
  assert.throws(
    () => decodeOnce(data, version),
    (error: unknown) => {
      assert.ok(error instanceof MqttError, `expected MqttError, got ${error}`);
      assert.equal(error.reasonCode, reasonCode, error.message);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

const MALFORMED = ReasonCode.MalformedPacket;
const PROTOCOL = ReasonCode.ProtocolError;

const CONNECT_V5_HEAD = [...str("MQTT"), 5];
const CONNECT_V4_HEAD = [...str("MQTT"), 4];

test("[MQTT-2.1.3-1] reserved fixed-header flags are refused on every packet type but PUBLISH", () => {
  for (const version of [4, 5] as const) {
    assertRejects(bytes(0x41, 2, 0, 1), version, MALFORMED, /MQTT-2\.1\.3-1/); // PUBACK with flags 1
    assertRejects(bytes(0x60, 2, 0, 1), version, MALFORMED, /MQTT-2\.1\.3-1/); // PUBREL must be 0x62
    assertRejects(bytes(0x80, 5, 0, 1, ...str("a"), 0).subarray(0, 7), version, MALFORMED, /MQTT-2\.1\.3-1/);
    assertRejects(bytes(0xa0, 5, 0, 1, ...str("a")), version, MALFORMED, /MQTT-2\.1\.3-1/);
    assertRejects(bytes(0xc1, 0), version, MALFORMED, /MQTT-2\.1\.3-1/);
    assertRejects(bytes(0xe8, 0), version, MALFORMED, /MQTT-2\.1\.3-1/);
  }
  // MQTT 3.1 sends SUBSCRIBE with QoS 1 and may set DUP on a resend.
  assert.equal(decodeOnce(bytes(0x8a, 6, 0, 1, ...str("a"), 0), 3)?.type, "subscribe");
});

test("[MQTT-3.3.1-4] a PUBLISH with QoS 3 is malformed", () => {
  for (const version of [3, 4, 5] as const) {
    assertRejects(bytes(0x36, 5, ...str("a"), 0, 1), version, MALFORMED, /MQTT-3\.3\.1-4/);
  }
});

test("[MQTT-3.3.1-2] DUP with QoS 0 is malformed", () => {
  assertRejects(bytes(0x38, 3, ...str("a")), 4, MALFORMED, /MQTT-3\.3\.1-2/);
});

test("[MQTT-3.3.2-2] a PUBLISH topic with wildcards is refused", () => {
  assertRejects(bytes(0x30, 5, ...str("a/+")), 4, PROTOCOL, /MQTT-3\.3\.2-2/);
  assertRejects(bytes(0x30, 4, ...str("#"), 0), 5, PROTOCOL, /MQTT-3\.3\.2-2/);
});

test("[MQTT-4.7.3-1] an empty PUBLISH topic is refused unless a v5 topic alias stands for it", () => {
  assertRejects(bytes(0x30, 2, 0, 0), 4, PROTOCOL, /MQTT-4\.7\.3-1/);
  assertRejects(bytes(0x30, 3, 0, 0, 0), 5, PROTOCOL, /MQTT-4\.7\.3-1/);
  const packet = decodeOnce(bytes(0x30, 6, 0, 0, 3, 0x23, 0, 1), 5);
  assert.deepEqual(packet, {
    type: "publish",
    topic: "",
    payload: new Uint8Array(0),
    qos: 0,
    retain: false,
    dup: false,
    properties: { topicAlias: 1 },
  });
});

test("[MQTT-2.2.1-3] packet identifier 0 is malformed", () => {
  assertRejects(bytes(0x32, 5, ...str("a"), 0, 0), 4, MALFORMED, /MQTT-2\.2\.1-3/);
  assertRejects(bytes(0x40, 2, 0, 0), 4, MALFORMED, /MQTT-2\.2\.1-3/);
  assertRejects(bytes(0x82, 6, 0, 0, ...str("a"), 0), 4, MALFORMED, /MQTT-2\.2\.1-3/);
});

test("[MQTT-1.5.5-1] a remaining length over 4 bytes or not in its shortest form is malformed", () => {
  assertRejects(bytes(0x30, 0xff, 0xff, 0xff, 0xff, 0x7f), 4, MALFORMED, /longer than 4 bytes/);
  assertRejects(bytes(0xc0, 0x80, 0x00), 4, MALFORMED, /MQTT-1\.5\.5-1/);
});

test("[MQTT-1.5.4-1] [MQTT-1.5.4-2] strings must be well-formed UTF-8 without U+0000", () => {
  // Overlong encoding of '/', an encoded surrogate, a truncated sequence, then U+0000.
  for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    assertRejects(bytes(0x30, 2 + bad.length, 0, bad.length, ...bad), 4, MALFORMED, /MQTT-1\.5\.4-1/);
  }
  assertRejects(bytes(0x30, 5, ...str("a\0b")), 4, MALFORMED, /MQTT-1\.5\.4-2/);
  // A long string takes the other decoding path.
  const long = "x".repeat(100) + "\0";
  assertRejects(bytes(0x30, 2 + long.length, ...str(long)), 4, MALFORMED, /MQTT-1\.5\.4-2/);
});

test("[MQTT-1.5.4-3] a BOM in a string is kept, not stripped", () => {
  const packet = decodeOnce(bytes(0x30, 6, 0, 4, 0xef, 0xbb, 0xbf, 0x61), 4);
  assert.equal(packet?.type === "publish" && packet.topic, "\ufeffa");
});

test("[MQTT-3.1.2-1] [MQTT-3.1.2-2] a wrong protocol name or level is refused", () => {
  const rest = [0x02, 0, 60, ...str("c")];
  assertRejects(bytes(0x10, 10, ...str("MQTX"), 4, ...rest), undefined, PROTOCOL, /MQTT-3\.1\.2-1/);
  const v6 = [...str("MQTT"), 6, ...rest];
  assertRejects(
    bytes(0x10, v6.length, ...v6),
    undefined,
    ReasonCode.UnsupportedProtocolVersion,
    /MQTT-3\.1\.2-2/,
  );
  const mqisdp4 = [...str("MQIsdp"), 4, ...rest];
  assertRejects(
    bytes(0x10, mqisdp4.length, ...mqisdp4),
    undefined,
    ReasonCode.UnsupportedProtocolVersion,
    /MQTT-3\.1\.2-2/,
  );
});

test("[MQTT-3.1.2-3] the reserved CONNECT flag must be 0", () => {
  const body = [...CONNECT_V4_HEAD, 0x03, 0, 60, ...str("c")];
  assertRejects(bytes(0x10, body.length, ...body), undefined, MALFORMED, /MQTT-3\.1\.2-3/);
});

test("[MQTT-3.1.2-11] [MQTT-3.1.2-13] will QoS and retain without a will flag are malformed", () => {
  for (const flags of [0x08, 0x20]) {
    const body = [...CONNECT_V5_HEAD, 0x02 | flags, 0, 60, 0, ...str("c")];
    assertRejects(bytes(0x10, body.length, ...body), undefined, MALFORMED, /MQTT-3\.1\.2-11/);
  }
  const body = [...CONNECT_V5_HEAD, 0x02 | 0x04 | 0x18, 0, 60, 0, ...str("c"), 0, ...str("w"), 0, 0];
  assertRejects(bytes(0x10, body.length, ...body), undefined, MALFORMED, /MQTT-3\.1\.2-12/);
});

test("[MQTT-3.1.2-22] (3.1.1) a password without a user name is malformed; MQTT 5 allows it", () => {
  const v4 = [...CONNECT_V4_HEAD, 0x42, 0, 60, ...str("c"), 0, 1, 0x70];
  assertRejects(bytes(0x10, v4.length, ...v4), undefined, MALFORMED, /MQTT-3\.1\.2-22/);
  const v5 = [...CONNECT_V5_HEAD, 0x42, 0, 60, 0, ...str("c"), 0, 1, 0x70];
  const packet = decodeOnce(bytes(0x10, v5.length, ...v5));
  assert.deepEqual(packet?.type === "connect" && packet.password, Uint8Array.of(0x70));
});

test("[MQTT-3.1.0-1] a server-side decoder refuses anything before CONNECT, from its first byte", () => {
  const decoder = new PacketDecoder();
  decoder.push(Uint8Array.of(0x30));
  assert.throws(() => decoder.next(), (e) => e instanceof MqttError && /MQTT-3\.1\.0-1/.test(e.message));
});

test("a server-side decoder learns the protocol level from CONNECT", () => {
  for (const version of [3, 4, 5] as const) {
    const decoder = new PacketDecoder();
    decoder.push(
      encode(
        { type: "connect", protocolVersion: version, clientId: "c", cleanStart: true, keepAlive: 5 },
        version,
      ),
    );
    assert.equal(decoder.next()?.type, "connect");
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.version, version);
    decoder.push(encode({ type: "disconnect", reasonCode: 0 }, version));
    assert.deepEqual(decoder.next(), { type: "disconnect", reasonCode: 0 });
  }
});

test("[MQTT-3.8.3-2] [MQTT-3.10.3-2] SUBSCRIBE and UNSUBSCRIBE need a topic filter", () => {
  assertRejects(bytes(0x82, 2, 0, 1), 4, PROTOCOL, /MQTT-3\.8\.3-2/);
  assertRejects(bytes(0x82, 3, 0, 1, 0), 5, PROTOCOL, /MQTT-3\.8\.3-2/);
  assertRejects(bytes(0xa2, 2, 0, 1), 4, PROTOCOL, /MQTT-3\.10\.3-2/);
});

test("[MQTT-3.8.3-4] (3.1.1) reserved bits of the requested QoS byte are malformed", () => {
  assertRejects(bytes(0x82, 6, 0, 1, ...str("a"), 0x04), 4, MALFORMED, /MQTT-3\.8\.3-4/);
  assertRejects(bytes(0x82, 6, 0, 1, ...str("a"), 0x03), 4, MALFORMED, /MQTT-3\.8\.3-4/);
});

test("[MQTT-3.8.3-5] reserved subscription option bits, QoS 3 and retain handling 3 are refused in MQTT 5", () => {
  assertRejects(bytes(0x82, 7, 0, 1, 0, ...str("a"), 0x40), 5, MALFORMED, /MQTT-3\.8\.3-5/);
  assertRejects(bytes(0x82, 7, 0, 1, 0, ...str("a"), 0x03), 5, MALFORMED, /QoS 3/);
  assertRejects(bytes(0x82, 7, 0, 1, 0, ...str("a"), 0x30), 5, PROTOCOL, /retain handling 3/);
});

test("[MQTT-3.8.3-4] no local on a shared subscription is a protocol error", () => {
  const filter = str("$share/g/a");
  assertRejects(bytes(0x82, 4 + filter.length, 0, 1, 0, ...filter, 0x04), 5, PROTOCOL, /MQTT-3\.8\.3-4/);
});

test("properties: a duplicate, one not allowed on the packet, an unknown one, and invalid values are refused", () => {
  // PUBLISH with Message Expiry Interval twice.
  assertRejects(bytes(0x30, 14, ...str("a"), 10, 2, 0, 0, 0, 1, 2, 0, 0, 0, 1), 5, PROTOCOL, /appears twice/);
  // PUBLISH with Session Expiry Interval (a CONNECT property).
  assertRejects(bytes(0x30, 9, ...str("a"), 5, 0x11, 0, 0, 0, 1), 5, MALFORMED, /not allowed on PUBLISH/);
  // Unknown property 0x05.
  assertRejects(bytes(0x30, 6, ...str("a"), 2, 0x05, 0), 5, MALFORMED, /unknown property/);
  // Payload Format Indicator 2, Topic Alias 0 and Subscription Identifier 0.
  assertRejects(bytes(0x30, 6, ...str("a"), 2, 0x01, 2), 5, PROTOCOL, /must be 0 or 1/);
  assertRejects(bytes(0x30, 7, ...str("a"), 3, 0x23, 0, 0), 5, PROTOCOL, /at least 1/);
  assertRejects(bytes(0x30, 6, ...str("a"), 2, 0x0b, 0), 5, PROTOCOL, /at least 1/);
  // CONNECT with Receive Maximum 0 and Maximum Packet Size 0.
  const rm = [...CONNECT_V5_HEAD, 0x02, 0, 60, 3, 0x21, 0, 0, ...str("c")];
  assertRejects(bytes(0x10, rm.length, ...rm), undefined, PROTOCOL, /Receive Maximum 0/);
  const mps = [...CONNECT_V5_HEAD, 0x02, 0, 60, 5, 0x27, 0, 0, 0, 0, ...str("c")];
  assertRejects(bytes(0x10, mps.length, ...mps), undefined, PROTOCOL, /Maximum Packet Size 0/);
  // A property length past the end of the packet.
  assertRejects(bytes(0x30, 5, ...str("a"), 9, 0x01), 5, MALFORMED, /exceeds the packet/);
});

test("reason codes must be valid for their packet in MQTT 5", () => {
  assertRejects(bytes(0x40, 3, 0, 1, 0x02), 5, MALFORMED, /reason code 0x02/);
  assertRejects(bytes(0x62, 3, 0, 1, 0x10), 5, MALFORMED, /reason code 0x10/);
  assertRejects(bytes(0xf0, 1, 0x04), 5, MALFORMED, /reason code 0x04/);
  assertRejects(bytes(0x90, 4, 0, 1, 0, 0x03), 5, MALFORMED, /reason code 0x03/);
  assertRejects(bytes(0x90, 3, 0, 1, 0x03), 4, MALFORMED, /return code 0x3/);
  assertRejects(bytes(0x20, 2, 0, 6), 4, MALFORMED, /return code 6/);
});

test("[MQTT-3.2.2-1] reserved CONNACK flags are malformed", () => {
  assertRejects(bytes(0x20, 2, 0x02, 0), 4, MALFORMED, /MQTT-3\.2\.2-1/);
});

test("AUTH exists only in MQTT 5", () => {
  assertRejects(bytes(0xf0, 0), 4, MALFORMED, /AUTH exists only in MQTT 5/);
  assert.throws(() => encode({ type: "auth", reasonCode: 0 }, 4), MqttError);
});

test("packet type 0 is reserved, and packets must not carry extra bytes", () => {
  assertRejects(bytes(0x00, 0), 4, MALFORMED, /type 0/);
  assertRejects(bytes(0xc0, 1, 0), 4, MALFORMED, /unexpected bytes/);
  assertRejects(bytes(0x40, 3, 0, 1, 0), 4, MALFORMED, /unexpected bytes/);
  assertRejects(bytes(0x20, 3, 0, 0, 0), 4, MALFORMED, /unexpected bytes/);
});

test("a length field pointing past the packet is malformed, not an out-of-bounds read", () => {
  assertRejects(bytes(0x30, 3, 0, 9, 0x61), 4, MALFORMED, /ends early/);
  assertRejects(bytes(0x82, 4, 0, 1, 0, 5), 4, MALFORMED, /ends early/);
});

test("a packet over the maximum size is refused from its fixed header, before its body arrives", () => {
  const decoder = new PacketDecoder({ version: 5, maximumPacketSize: 100 });
  decoder.push(Uint8Array.of(0x30, 0x80, 0x80, 0x01)); // remaining length 16384, no body yet
  assert.throws(
    () => decoder.next(),
    (e) =>
      e instanceof MqttError && e.reasonCode === ReasonCode.PacketTooLarge && /16388 bytes/.test(e.message),
  );
  assert.equal(decoder.buffered, 0);
  // Exactly the maximum is accepted (2-byte header + 98 bytes).
  const ok = new PacketDecoder({ version: 4, maximumPacketSize: 100 });
  ok.push(
    encode(
      { type: "publish", topic: "t", payload: new Uint8Array(95), qos: 0, retain: false, dup: false },
      4,
    ),
  );
  assert.equal(ok.next()?.type, "publish");
  assert.equal(MAX_PACKET_SIZE, 268_435_460);
});

test("a failed decoder keeps failing with the same error", () => {
  const decoder = new PacketDecoder({ version: 4 });
  decoder.push(bytes(0x36, 0));
  let first: unknown;
  assert.throws(() => decoder.next(), (e) => (first = e) instanceof MqttError);
  assert.throws(() => decoder.next(), (e) => e === first);
  assert.throws(() => decoder.push(bytes(0xc0, 0)), (e) => e === first);
});

test("packets before a bad one in the same chunk are still returned", () => {
  const decoder = new PacketDecoder({ version: 4 });
  decoder.push(bytes(0xc0, 0, 0xd0, 0, 0x36, 0));
  assert.deepEqual(decoder.next(), { type: "pingreq" });
  assert.deepEqual(decoder.next(), { type: "pingresp" });
  assert.throws(() => decoder.next(), MqttError);
});

test("push() refuses new bytes until the previous ones are drained, so memory stays bounded", () => {
  const decoder = new PacketDecoder({ version: 4 });
  decoder.push(bytes(0xc0, 0, 0xc0, 0));
  assert.throws(() => decoder.push(bytes(0xc0, 0)), /next\(\)/);
  assert.deepEqual(decoder.next(), { type: "pingreq" });
  assert.deepEqual(decoder.next(), { type: "pingreq" });
  assert.equal(decoder.next(), undefined);
  decoder.push(bytes(0xc0, 0));
  assert.deepEqual(decoder.next(), { type: "pingreq" });
});

test("a packet split across many chunks is assembled once, and holds no more than its size", () => {
  const payload = new Uint8Array(20_000).map((_, i) => i & 0xff);
  const data = encode({
    type: "publish",
    topic: "big",
    payload,
    qos: 2,
    packetId: 9,
    retain: true,
    dup: true,
  }, 5);
  const decoder = new PacketDecoder({ version: 5, maximumPacketSize: data.length });
  const packets: Packet[] = [];
  for (let i = 0; i < data.length; i += 7) {
    decoder.push(data.subarray(i, i + 7));
    assert.ok(decoder.buffered <= data.length);
    for (let p = decoder.next(); p; p = decoder.next()) packets.push(p);
  }
  assert.equal(packets.length, 1);
  assert.deepEqual(packets[0], {
    type: "publish",
    topic: "big",
    payload,
    qos: 2,
    packetId: 9,
    retain: true,
    dup: true,
  });
  assert.equal(decoder.buffered, 0);
});

test("a packet larger than the first buffer grows as its bytes arrive and decodes intact", () => {
  const payload = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
  const data = encode({ type: "publish", topic: "big", payload, qos: 0, retain: false, dup: false }, 4);
  for (const step of [1000, 65_536, 100_003]) {
    const decoder = new PacketDecoder({ version: 4 });
    const packets: Packet[] = [];
    for (let i = 0; i < data.length; i += step) {
      decoder.push(data.subarray(i, i + step));
      assert.equal(decoder.buffered, Math.min(i + step, data.length) - (packets.length ? data.length : 0));
      for (let p = decoder.next(); p; p = decoder.next()) packets.push(p);
    }
    assert.equal(packets.length, 1);
    assert.deepEqual(packets[0].type === "publish" && packets[0].payload, payload);
  }
});

test("PacketDecoder: PUBLISH topics that repeat, differ by a byte, grow long or hold a wildcard decode as sent", () => {
  for (const version of [4, 5] as const) {
    const decoder = new PacketDecoder({ version });
    const long = `l/${"x".repeat(300)}`;
    const topics = [
      "a/b",
      "a/b",
      "a/c",
      "a/b",
      "b/b",
      "a/bc",
      "ä/b",
      "ä/b",
      long,
      long,
      "a/b",
      `${long}y`,
      "a/b",
    ];
    for (const topic of topics) {
      const publish: Packet = {
        type: "publish",
        topic,
        payload: Uint8Array.of(1),
        qos: 0,
        retain: false,
        dup: false,
      };
      decoder.push(encode(publish, version));
      const packet = decoder.next();
      assert.equal(packet?.type === "publish" ? packet.topic : undefined, topic);
      assert.equal(decoder.next(), undefined);
    }
    // The same length as the topic before, with a wildcard: refused, not taken for the one remembered.
    const wildcard = encode({
      type: "publish",
      topic: "a/b",
      payload: new Uint8Array(0),
      qos: 0,
      retain: false,
      dup: false,
    }, version);
    wildcard[wildcard.indexOf(0x62)] = 0x23; // "a/b" -> "a/#"
    decoder.push(wildcard);
    assert.throws(
      () => decoder.next(),
      (error: unknown) => error instanceof MqttError && /wildcard/.test(error.message),
    );
  }
});
