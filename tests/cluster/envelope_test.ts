// The cluster's envelopes: messages in the binary envelope and records as JSON with byte arrays, round trips and
// malformed input.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import {
  type ClusterMessage,
  decodeJson,
  decodeMessage,
  encodeJson,
  encodeMessage,
  MESSAGE_VERSION,
} from "../../src/cluster/envelope.ts";
import type { PublishProperties, QoS } from "../../src/codec/packet.ts";
import type { SessionSnapshot } from "../../src/machine/broker_types.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";
import {
  binary,
  fcParams,
  longestString,
  patterned,
  payload,
  text,
  topicName,
  userProperties,
} from "../codec/_arbitraries.ts";

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries.

/** The properties a cluster message forwards: a PUBLISH's, without alias, identifiers and expiry interval. */
const forwarded: fc.Arbitrary<PublishProperties | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.record({
    payloadFormatIndicator: fc.boolean(),
    contentType: text(),
    responseTopic: topicName,
    correlationData: binary,
    userProperties,
  }, { requiredKeys: [], noNullPrototype: true }).map((p) => (Object.keys(p).length === 0 ? undefined : p)),
);

const seq = fc.oneof(
  fc.integer({ min: 1, max: 1000 }),
  fc.constantFrom(1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
);

const expiresAt = fc.oneof(
  fc.integer({ min: 0, max: 4_102_444_800_000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

const message: fc.Arbitrary<ClusterMessage> = fc.record({
  id: fc.oneof(fc.uuid(), text()),
  seq,
  topic: fc.oneof(topicName, fc.constantFrom("ü/😀/€", "a", "$SYS/x", "é".repeat(20_000))),
  payload: fc.oneof({ weight: 4, arbitrary: payload }, {
    weight: 1,
    arbitrary: fc.constant(new Uint8Array()),
  }),
  qos: fc.constantFrom<QoS>(0, 1, 2),
  retain: fc.boolean(),
  properties: forwarded,
  expiresAt: fc.option(expiresAt, { nil: undefined }),
  publisher: fc.option(text(), { nil: undefined }),
  packetId: fc.option(fc.integer({ min: 1, max: 0xffff }), { nil: undefined }),
}).map((m) => {
  // Absent fields are left out, as decodeMessage leaves them out.
  const out: Record<string, unknown> = { ...m };
  for (const key of ["properties", "expiresAt", "publisher", "packetId"]) {
    if (out[key] === undefined) delete out[key];
  }
  return out as unknown as ClusterMessage;
});

function minimal(overrides: Partial<ClusterMessage> = {}): ClusterMessage {
  return {
    id: "node-a",
    seq: 1,
    topic: "a/b",
    payload: Uint8Array.of(1, 2, 3),
    qos: 1,
    retain: false,
    ...overrides,
  };
}

/** A message with every optional field, as test input for malformed variants. */
const FULL = minimal({
  qos: 2,
  retain: true,
  expiresAt: 1_700_000_000_123,
  publisher: "client-ü",
  properties: {
    payloadFormatIndicator: true,
    contentType: "text/plain",
    responseTopic: "reply/to",
    correlationData: Uint8Array.of(9, 8, 7),
    userProperties: [["k", "v"], ["k", "w"]],
  },
});

function isMalformed(error: unknown): boolean {
  return error instanceof MqttError &&
    (error.reasonCode === ReasonCode.MalformedPacket || error.reasonCode === ReasonCode.ProtocolError) &&
    error.message.startsWith("Cannot decode cluster message: ");
}

// ---------------------------------------------------------------------------------------------------------------

describe("encodeMessage() and decodeMessage()", () => {
  test("decodeMessage(encodeMessage(m)) is m", () => {
    fc.assert(
      fc.property(message, (m) => {
        const bytes = encodeMessage(m);
        assert.equal(bytes[0], MESSAGE_VERSION);
        assert.deepStrictEqual(decodeMessage(bytes), m);
      }),
      fcParams(1000),
    );
  });

  test("encodeMessage() writes the documented layout", () => {
    const bytes = encodeMessage(
      minimal({ id: "n", seq: 2, topic: "t", payload: Uint8Array.of(0xaa), qos: 1 }),
    );
    assert.deepStrictEqual(
      bytes,
      Uint8Array.of(
        ...[1, 0x01], // version, flags: QoS 1
        ...[0x40, 0, 0, 0, 0, 0, 0, 0], // seq 2 as a big-endian double
        ...[0, 1, 0x6e], // id "n"
        ...[0, 1, 0x74], // topic "t"
        ...[0, 0, 0, 1, 0xaa], // payload length and payload
      ),
    );
    const flags = encodeMessage(FULL)[1];
    assert.equal(flags, 0x02 | 0x04 | 0x08 | 0x10 | 0x20);
  });

  test("messages with an empty payload, a 1 MiB payload and the longest topic round-trip", () => {
    const big = patterned(1 << 20, 7);
    const longest = fc.sample(longestString, { numRuns: 4, seed: 1 });
    for (
      const m of [
        minimal({ payload: new Uint8Array() }),
        minimal({ payload: big }),
        minimal({ ...FULL, payload: big }),
        ...longest.map((topic) => minimal({ topic, publisher: topic, id: topic })),
        minimal({ topic: "ü/😀/€/\ufeff/\u{10ffff}" }),
      ]
    ) {
      const decoded = decodeMessage(encodeMessage(m));
      assert.deepStrictEqual(decoded, m);
    }
  });

  test("encodeMessage() copies the payload and decodeMessage() returns views of its input", () => {
    const payloadBytes = Uint8Array.of(1, 2, 3);
    const bytes = encodeMessage(minimal({ payload: payloadBytes }));
    payloadBytes[0] = 99;
    const decoded = decodeMessage(bytes);
    assert.deepStrictEqual(decoded.payload, Uint8Array.of(1, 2, 3));
    assert.equal(decoded.payload.buffer, bytes.buffer);
    // A view of a larger buffer decodes alike.
    const framed = new Uint8Array(bytes.length + 10);
    framed.set(bytes, 5);
    assert.deepStrictEqual(decodeMessage(framed.subarray(5, 5 + bytes.length)), decoded);
  });

  test("envelopes encoded one after another stay intact (short ones share a buffer)", () => {
    const messages = fc.sample(message, { numRuns: 300, seed: 7 });
    const encoded = messages.map((m) => encodeMessage(m));
    messages.forEach((m, i) => assert.deepStrictEqual(decodeMessage(encoded[i]), m));
  });

  test("encodeMessage() refuses what it cannot carry", () => {
    const cases: [Partial<ClusterMessage>, new (...args: never[]) => Error][] = [
      [{ seq: 0 }, RangeError],
      [{ seq: -1 }, RangeError],
      [{ seq: 1.5 }, RangeError],
      [{ seq: 2 ** 53 }, RangeError],
      [{ seq: Number.NaN }, RangeError],
      [{ qos: 3 as QoS }, RangeError],
      [{ expiresAt: Number.NaN }, RangeError],
      [{ expiresAt: Infinity }, RangeError],
      [{ topic: "x".repeat(65_536) }, RangeError],
      [{ topic: "a\0b" }, TypeError],
      [{ publisher: "\ud800" }, TypeError],
      [{ packetId: 0 }, RangeError],
      [{ packetId: 65_536 }, RangeError],
      [{ properties: { topicAlias: 1 } }, TypeError],
      [{ properties: { subscriptionIdentifiers: [1] } }, TypeError],
      [{ properties: { messageExpiryInterval: 10 } }, TypeError],
      [{ properties: { reasonString: "no" } as PublishProperties }, MqttError],
    ];
    for (const [overrides, type] of cases) {
      assert.throws(() => encodeMessage(minimal(overrides)), type, JSON.stringify(overrides));
    }
  });

  test("decodeMessage() refuses every truncation and extension of valid envelopes", () => {
    const big = patterned(1 << 20, 5);
    const small = fc.sample(message, { numRuns: 200, seed: 42 }).filter((m) =>
      encodeMessage(m).length < 3000
    );
    const samples = [
      minimal(),
      FULL,
      minimal({ payload: new Uint8Array() }),
      minimal({ payload: big }),
      ...small,
    ];
    for (const m of samples) {
      const bytes = encodeMessage(m);
      // Every length, but only every 997th inside a large payload.
      for (let length = 0; length < bytes.length; length += length < 3000 ? 1 : 997) {
        assert.throws(() => decodeMessage(bytes.subarray(0, length)), isMalformed, `cut at ${length}`);
      }
      const longer = new Uint8Array(bytes.length + 1);
      longer.set(bytes);
      assert.throws(() => decodeMessage(longer), isMalformed);
    }
  });

  test("decodeMessage() refuses malformed fields", () => {
    const good = encodeMessage(minimal());
    function patched(offset: number, ...values: number[]): Uint8Array {
      const bytes = good.slice();
      bytes.set(values, offset);
      return bytes;
    }
    const withDouble = (value: number) => {
      const bytes = good.slice();
      new DataView(bytes.buffer).setFloat64(2, value);
      return bytes;
    };
    const malformed: [string, Uint8Array][] = [
      ["version 0", patched(0, 0)],
      ["version 2", patched(0, 2)],
      ["QoS 3", patched(1, 0x03)],
      ["unknown flag", patched(1, 0x41)],
      ["seq 0", withDouble(0)],
      ["seq 1.5", withDouble(1.5)],
      ["seq NaN", withDouble(Number.NaN)],
      ["seq 2^53", withDouble(2 ** 53)],
      ["id length past the end", patched(10, 0xff, 0xff)],
      ["invalid UTF-8 in the id", patched(12, 0xc3)],
      ["U+0000 in the id", patched(12, 0)],
      ["payload length too short", patched(good.length - 7, 0, 0, 0, 2)],
      ["payload length too long", patched(good.length - 7, 0, 0, 0, 4)],
      ["payload length huge", patched(good.length - 7, 0xff, 0xff, 0xff, 0xff)],
      ["empty", new Uint8Array()],
    ];
    // The flags say there are properties, then the bytes hold an empty set, or a forbidden one.
    const withProperties = (properties: number[]) =>
      Uint8Array.of(1, 0x20, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x74, ...properties, 0, 0, 0, 0);
    assert.deepStrictEqual(decodeMessage(withProperties([2, 0x01, 1])).properties, {
      payloadFormatIndicator: true,
    });
    malformed.push(
      ["an empty property set", withProperties([0])],
      ["a topic alias", withProperties([3, 0x23, 0, 1])],
      ["a message expiry interval", withProperties([5, 0x02, 0, 0, 0, 1])],
      ["a subscription identifier", withProperties([2, 0x0b, 1])],
      ["a property not allowed on PUBLISH", withProperties([3, 0x1f, 0, 0])],
      ["a repeated property", withProperties([4, 0x01, 1, 0x01, 1])],
      ["properties past the end", withProperties([9, 0x01, 1])],
      [
        "expiresAt infinite",
        (() => {
          const bytes = encodeMessage(minimal({ expiresAt: 1 }));
          new DataView(bytes.buffer, bytes.byteOffset).setFloat64(10, Infinity);
          return bytes;
        })(),
      ],
    );
    for (const [what, bytes] of malformed) assert.throws(() => decodeMessage(bytes), isMalformed, what);
  });

  test("decodeMessage() of random or mutated bytes throws or returns a message that survives re-encoding", () => {
    const valid = fc.sample(message, 50).map((m) => encodeMessage(m)).filter((b) => b.length < 4000);
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }))
        .map(([bytes, edits]) => {
          const out = bytes.slice();
          for (const [at, value] of edits) out[at % out.length] = value;
          return out;
        }),
    );
    fc.assert(
      fc.property(input, (bytes) => {
        let decoded: ClusterMessage;
        try {
          decoded = decodeMessage(bytes);
        } catch (error) {
          assert.ok(isMalformed(error), String(error));
          return;
        }
        assert.deepStrictEqual(decodeMessage(encodeMessage(decoded)), decoded);
      }),
      fcParams(3000),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** JSON values with byte arrays anywhere; keys often `$b`, and strings with lone surrogates. */
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
    fc.string({
      unit: fc.oneof(
        fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
        fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
      ),
    }),
    fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.constant(new Uint8Array())),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(fc.constantFrom("$b", "b", "payload", "$"), fc.string().filter((k) => k !== "__proto__")),
      tie("value"),
      { maxKeys: 4, noNullPrototype: true },
    ),
  ),
})).value;

/** Whether a value holds a plain object whose only key is `$b`. */
function holdsBytesLookalike(value: unknown): boolean {
  if (typeof value !== "object" || value === null || value instanceof Uint8Array) return false;
  if (Array.isArray(value)) return value.some(holdsBytesLookalike);
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === "$b") return true;
  return Object.values(value).some(holdsBytesLookalike);
}

describe("encodeJson() and decodeJson()", () => {
  test("decodeJson(encodeJson(v)) is v for JSON values with byte arrays anywhere", () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        if (holdsBytesLookalike(value)) {
          assert.throws(() => encodeJson(value), TypeError);
        } else {
          assert.deepStrictEqual(decodeJson(encodeJson(value)), value);
        }
      }),
      fcParams(2000),
    );
  });

  test("a session snapshot with nested byte arrays round-trips", () => {
    const message = {
      topic: "a/ü",
      payload: Uint8Array.of(0, 1, 255),
      qos: 1 as QoS,
      retain: false,
      properties: { correlationData: Uint8Array.of(7), userProperties: [["k", "v"]] as [string, string][] },
      expiresInMs: 5000,
      publisher: "p",
    };
    const snapshot: SessionSnapshot = {
      clientId: "client-1",
      expiryInterval: 3600,
      expiresInMs: 1000,
      subscriptions: [{
        topicFilter: "a/#",
        qos: 1,
        noLocal: true,
        retainAsPublished: false,
        retainHandling: 0,
      }],
      inboundQoS2: [1, 2],
      username: "user",
      will: {
        topic: "status",
        payload: new Uint8Array(),
        qos: 2,
        retain: true,
        properties: { correlationData: Uint8Array.of(1, 2), willDelayInterval: 5, contentType: "x" },
      },
      willInMs: 5000,
      connected: true,
      inflight: [{ message, qos: 1, retain: false, packetId: 7, subscriptionIdentifiers: [3] }],
      queue: [{ message: { ...message, payload: patterned(1 << 20, 3) }, qos: 0, retain: true }],
    };
    const decoded = decodeJson<SessionSnapshot>(encodeJson(snapshot));
    assert.deepStrictEqual(decoded, snapshot);
    assert.ok(decoded.inflight[0].message.properties?.correlationData instanceof Uint8Array);
  });

  test("encodeJson() writes byte arrays as base64url and takes Node Buffers as byte arrays", () => {
    assert.equal(new TextDecoder().decode(encodeJson(Uint8Array.of(0xfb, 0xff))), '{"$b":"-_8"}');
    assert.deepStrictEqual(decodeJson(encodeJson(Uint8Array.of(0xfb, 0xff))), Uint8Array.of(0xfb, 0xff));
    const decoded = decodeJson<{ b: Uint8Array }>(encodeJson({ b: Buffer.from([1, 2]) }));
    assert.deepStrictEqual(decoded, { b: Uint8Array.of(1, 2) });
  });

  test("encodeJson() refuses a plain object whose only key is $b, and values that are no JSON", () => {
    assert.throws(() => encodeJson({ $b: "AQ" }), TypeError);
    assert.throws(() => encodeJson({ a: [{ $b: 1 }] }), TypeError);
    assert.throws(() => encodeJson(undefined), TypeError);
    assert.throws(() => encodeJson(() => 1), TypeError);
    assert.throws(() => encodeJson(1n), TypeError);
    // With a sibling key, `$b` is ordinary.
    assert.deepStrictEqual(decodeJson(encodeJson({ $b: "AQ", x: 1 })), { $b: "AQ", x: 1 });
  });

  test("decodeJson() refuses malformed input with a SyntaxError", () => {
    const utf8 = new TextEncoder();
    for (
      const bytes of [
        Uint8Array.of(0xc3),
        Uint8Array.of(0xef, 0xbb, 0xbf, 0x31), // a BOM is not JSON
        utf8.encode(""),
        utf8.encode("{"),
        utf8.encode('{"$b":"A"}'),
        utf8.encode('{"$b":"YR"}'),
        utf8.encode('{"$b":"YQ=="}'),
        utf8.encode('[{"$b":"+/"}]'),
      ]
    ) {
      assert.throws(() => decodeJson(bytes), SyntaxError, Array.from(bytes).join(" "));
    }
    // Only a string `$b` alone stands for bytes.
    assert.deepStrictEqual(decodeJson(utf8.encode('{"$b":1}')), { $b: 1 });
  });
});
