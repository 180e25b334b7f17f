// Fuzz tests of PacketDecoder: random bytes and damaged valid encodings, in random chunkings, for every protocol
// level, with and without a version and with small maximum packet sizes. Whatever the input, the decoder only
// returns packets in normal form, returns undefined or throws MqttError (0x81, 0x82, 0x84, 0x90 for a bad will topic, or 0x95); it never
// loops, never holds more than one packet's worth of bytes, and a failed decoder stays failed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type { Packet, ProtocolVersion } from "../../src/codec/packet.ts";
import { MqttError } from "../../src/errors.ts";
import {
  type ChunkPlan,
  chunkPlan,
  clientStream,
  concat,
  connectPacket,
  fcParams,
  normalFormProblems,
  packetStream,
  split,
  toHex,
  VERSIONS,
} from "./_arbitraries.ts";

/** The reason codes a decoder may fail with. */
const DECODER_CODES: ReadonlySet<number> = new Set([0x81, 0x82, 0x84, 0x90, 0x95]);

interface DecoderConfig {
  version?: ProtocolVersion;
  maximumPacketSize?: number;
}

interface Outcome {
  packets: Packet[];
  error?: MqttError;
}

const decoderConfig: fc.Arbitrary<DecoderConfig> = fc.record({
  version: fc.constantFrom<ProtocolVersion | undefined>(undefined, 3, 4, 5),
  maximumPacketSize: fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.integer({ min: 2, max: 64 }) },
    { weight: 1, arbitrary: fc.integer({ min: 65, max: 100_000 }) },
  ),
}, { noNullPrototype: true }).map((r) => {
  const config: DecoderConfig = {};
  if (r.version !== undefined) config.version = r.version;
  if (r.maximumPacketSize !== undefined) config.maximumPacketSize = r.maximumPacketSize;
  return config;
});

function describeConfig(config: DecoderConfig): string {
  return `version ${config.version ?? "none"}, maximumPacketSize ${config.maximumPacketSize ?? "default"}`;
}

/** Fails unless `error` is an MqttError with one of the decoder's reason codes. */
function assertDecoderError(error: unknown, context: string): asserts error is MqttError {
  if (!(error instanceof MqttError)) {
    const name = (error as { constructor?: { name?: string } })?.constructor?.name ?? typeof error;
    assert.fail(`decoder threw ${name} (${String(error)}), not MqttError; ${context}`);
  }
  assert.ok(
    DECODER_CODES.has(error.reasonCode),
    `decoder threw MqttError 0x${error.reasonCode.toString(16)} (${error.message}); ${context}`,
  );
}

/**
 * Checks a packet the decoder returned: normal form, re-encodes without throwing, the re-encoding is no larger
 * than the limit it passed, and decodes back to the same packet.
 */
function checkReturnedPacket(
  packet: Packet,
  version: ProtocolVersion,
  config: DecoderConfig,
  context: string,
): void {
  // A CONNECT carries its own protocol level.
  const level = packet.type === "connect" ? packet.protocolVersion : version;
  const problems = normalFormProblems(packet, level);
  assert.deepStrictEqual(problems, [], `decoder returned a packet not in normal form; ${context}`);
  let bytes: Uint8Array;
  try {
    bytes = encode(packet, level);
  } catch (error) {
    assert.fail(`encode() threw on a packet the decoder returned: ${String(error)}; ${context}`);
  }
  if (config.maximumPacketSize !== undefined) {
    assert.ok(
      bytes.length <= config.maximumPacketSize,
      `decoder returned a packet of ${bytes.length} bytes over the maximum; ${context}`,
    );
  }
  const decoder = new PacketDecoder({ version: level });
  decoder.push(bytes);
  let again: Packet | undefined;
  try {
    again = decoder.next();
  } catch (error) {
    assert.fail(`re-encoded packet does not decode (${String(error)}): ${toHex(bytes)}; ${context}`);
  }
  assert.deepStrictEqual(again, packet, `re-encoded packet decodes differently: ${toHex(bytes)}; ${context}`);
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.buffered, 0);
}

/**
 * Feeds `chunks` to a new decoder, draining it after each, and checks every invariant on the way and after the
 * last chunk. Returns what came out.
 */
function runDecoder(config: DecoderConfig, chunks: readonly Uint8Array[]): Outcome {
  const input = concat(chunks);
  const context = `${describeConfig(config)}, input ${toHex(input)}`;
  const decoder = new PacketDecoder(config);
  const max = config.maximumPacketSize;
  let version = config.version;
  const packets: Packet[] = [];
  let error: MqttError | undefined;
  let pushed = 0;
  feed: for (const chunk of chunks) {
    pushed += chunk.length;
    try {
      decoder.push(chunk);
    } catch (e) {
      assertDecoderError(e, `push(); ${context}`);
      error = e;
      break;
    }
    for (;;) {
      let packet: Packet | undefined;
      try {
        packet = decoder.next();
      } catch (e) {
        assertDecoderError(e, `next(); ${context}`);
        error = e;
        break feed;
      }
      if (packet === undefined) {
        const buffered = decoder.buffered;
        assert.ok(buffered <= pushed, `buffered ${buffered} > ${pushed} bytes pushed; ${context}`);
        if (max !== undefined) {
          assert.ok(buffered <= max + 5, `buffered ${buffered} > maximum + 5; ${context}`);
        }
        break;
      }
      packets.push(packet);
      // Every packet takes at least two bytes: more packets than that means next() is making them up.
      assert.ok(packets.length * 2 <= pushed, `${packets.length} packets out of ${pushed} bytes; ${context}`);
      if (version === undefined) {
        assert.equal(packet.type, "connect", `first packet of a server-side decoder; ${context}`);
        if (packet.type === "connect") version = packet.protocolVersion;
      }
      checkReturnedPacket(packet, version as ProtocolVersion, config, context);
    }
  }
  if (error !== undefined) {
    // A failed decoder stays failed, with the same reason code [MQTT-4.13.1-1: the connection is closed].
    const code = error.reasonCode;
    const sameError = (e: unknown) => e instanceof MqttError && e.reasonCode === code;
    for (let i = 0; i < 3; i++) {
      assert.throws(() => decoder.next(), sameError, `next() after failure; ${context}`);
    }
    assert.throws(
      () => decoder.push(Uint8Array.of(0xc0, 0x00)),
      sameError,
      `push() after failure; ${context}`,
    );
    assert.throws(() => decoder.next(), sameError, `next() after failure; ${context}`);
  } else {
    // The input is over: asking again changes nothing and holds no more bytes.
    const held = decoder.buffered;
    for (let i = 0; i < 3; i++) {
      assert.equal(decoder.next(), undefined, `next() after the end of input; ${context}`);
      assert.equal(decoder.buffered, held, `buffered changed after the end of input; ${context}`);
    }
    decoder.push(new Uint8Array(0));
    assert.equal(decoder.next(), undefined, `next() after an empty push; ${context}`);
    assert.equal(decoder.buffered, held, `buffered changed after an empty push; ${context}`);
  }
  return error === undefined ? { packets } : { packets, error };
}

// ---------------------------------------------------------------------------------------------------------------
// Inputs.

function varint(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

/** First bytes of a fixed header: each type with its required flags, PUBLISH with any, and any byte at all. */
const firstByte: fc.Arbitrary<number> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      0x10,
      0x20,
      0x40,
      0x50,
      0x62,
      0x70,
      0x82,
      0x90,
      0xa2,
      0xb0,
      0xc0,
      0xd0,
      0xe0,
      0xf0,
    ),
  },
  { weight: 2, arbitrary: fc.integer({ min: 0x30, max: 0x3f }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);

/** Starts of bodies that get past the first checks: protocol names, property lengths, packet ids. */
const bodyStart: fc.Arbitrary<number[]> = fc.constantFrom(
  [],
  [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04], // "MQTT" 4
  [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05], // "MQTT" 5
  [0x00, 0x06, 0x4d, 0x51, 0x49, 0x73, 0x64, 0x70, 0x03], // "MQIsdp" 3
  [0x00, 0x01], // packet id 1
  [0x00, 0x01, 0x00], // packet id 1, reason code 0
  [0x00, 0x00], // reason code 0, no properties
  [0x00, 0x01, 0x61], // topic "a"
);

/** A packet-shaped run of random bytes: a plausible first byte, a correct length, a plausible body start. */
const plausiblePacket: fc.Arbitrary<number[]> = fc.tuple(
  firstByte,
  bodyStart,
  fc.uint8Array({ maxLength: 80 }),
)
  .map(([first, start, rest]) => {
    const body = [...start, ...rest];
    return [first, ...varint(body.length), ...body];
  });

/** Random input: plain random bytes, or packet-shaped random bytes, sometimes after a valid CONNECT. */
const randomInput: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.option(fc.constantFrom(...VERSIONS).chain((v) => connectPacket(v).map((p) => encode(p, v))), {
    nil: undefined,
  }),
  fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.uint8Array({ maxLength: 600 }),
    fc.array(plausiblePacket, { minLength: 1, maxLength: 4 }).map((ps) => Uint8Array.from(ps.flat())),
  ),
).map(([connect, tail]) => (connect === undefined ? tail : concat([connect, tail])));

/** A valid stream of one protocol level: a server-side one (CONNECT first) or packets of any type. */
interface ValidStream {
  version: ProtocolVersion;
  packets: Packet[];
  encodings: Uint8Array[];
}

const validStream: fc.Arbitrary<ValidStream> = fc.tuple(fc.constantFrom(...VERSIONS), fc.boolean())
  .chain(([version, server]) =>
    (server ? clientStream(version, 5) : packetStream(version, 5)).map((packets) => ({
      version,
      packets,
      encodings: packets.map((p) => encode(p, version)),
    }))
  );

/**
 * A damage to a stream. Byte edits apply at `at` modulo the length, or, when `anchor` is set, within the first
 * 48 bytes of packet number `anchor` (modulo the count): headers, ids, topics and properties live there.
 */
type Mutation =
  | ByteMutation
  | {
    op: "length";
    packet: number;
    how: "random" | "plus" | "minus" | "max" | "long" | "unshortened";
    value: number;
  };

type ByteMutation =
  & { at: number; anchor?: number }
  & (
    | { op: "flip"; bit: number }
    | { op: "set"; value: number }
    | { op: "special"; value: number }
    | { op: "u16"; value: number }
    | { op: "truncate" }
    | { op: "insert"; bytes: Uint8Array }
    | { op: "delete"; count: number }
  );

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant("flip"), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("set"), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("special"),
      at: fc.nat(),
      // Wildcards, "/", U+0000 and bytes that break UTF-8 (continuation, overlong lead, surrogate lead, > U+10FFFF).
      value: fc.constantFrom(
        0x00,
        0x23,
        0x2b,
        0x2f,
        0x24,
        0x7f,
        0x80,
        0xbf,
        0xc0,
        0xc1,
        0xed,
        0xf4,
        0xf5,
        0xff,
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("u16"),
      at: fc.nat(),
      value: fc.oneof(fc.constantFrom(0, 1, 0x7fff, 0xffff), fc.integer({ min: 0, max: 0xffff })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("truncate"), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("insert"),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("delete"), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("length"),
      packet: fc.nat(),
      how: fc.constantFrom("random", "plus", "minus", "max", "long", "unshortened"),
      value: fc.integer({ min: 0, max: 268_435_455 }),
    }),
  },
).chain((m) =>
  m.op === "length"
    ? fc.constant({ ...m } as Mutation)
    : fc.option(fc.nat(), { nil: undefined }).map((anchor) => ({ ...m, anchor }) as Mutation)
);

/** The bytes of a new remaining length for a `length` mutation. */
function corruptLength(m: Extract<Mutation, { op: "length" }>, length: number): number[] {
  switch (m.how) {
    case "random":
      return varint(m.value % (m.value & 1 ? 300 : 268_435_456));
    case "plus":
      return varint(length + 1 + (m.value % 8));
    case "minus":
      return varint(Math.max(0, length - 1 - (m.value % 8)));
    case "max":
      return [0xff, 0xff, 0xff, 0x7f];
    case "long": // five bytes: never valid [MQTT-1.5.5]
      return [0xff, 0xff, 0xff, 0xff, 0x01 + (m.value % 0x7f)];
    case "unshortened": { // the same value, not in its shortest form [MQTT-1.5.5-1]
      const bytes = varint(length);
      if (bytes.length === 4) return [0x80, 0x80, 0x80, 0x80, 0x00];
      bytes[bytes.length - 1] |= 0x80;
      return [...bytes, 0x00];
    }
  }
}

/**
 * Applies `mutations` to a stream: length-field corruptions first (on the packet layout), then the byte edits in
 * order. Returns the bytes and the first offset that may differ from the original.
 */
function mutate(
  stream: ValidStream,
  mutations: readonly Mutation[],
): { bytes: Uint8Array; firstChanged: number } {
  const parts = stream.encodings.map((e) => Array.from(e));
  const starts: number[] = [];
  let offset = 0;
  for (const part of parts) {
    starts.push(offset);
    offset += part.length;
  }
  let firstChanged = offset;
  const lengthEdits = new Map<number, Extract<Mutation, { op: "length" }>>();
  for (const m of mutations) if (m.op === "length") lengthEdits.set(m.packet % parts.length, m);
  for (const [index, m] of lengthEdits) {
    const part = parts[index];
    let headerLength = 2;
    while (part[headerLength - 1] & 0x80) headerLength++;
    const length = part.length - headerLength;
    parts[index] = [part[0], ...corruptLength(m, length), ...part.slice(headerLength)];
    firstChanged = Math.min(firstChanged, starts[index] + 1);
  }
  const bytes = parts.flat();
  for (const m of mutations) {
    if (m.op === "length") continue;
    if (bytes.length === 0 && m.op !== "insert") continue;
    const span = bytes.length + (m.op === "insert" || m.op === "truncate" ? 1 : 0);
    const at = m.anchor === undefined
      ? m.at % span
      : Math.min(starts[m.anchor % starts.length] + (m.at % 48), span - 1);
    firstChanged = Math.min(firstChanged, at);
    switch (m.op) {
      case "flip":
        bytes[at] ^= 1 << m.bit;
        break;
      case "set":
        bytes[at] = m.value;
        break;
      case "special": {
        // Aim at text: the first printable ASCII byte from `at` on, most likely inside a string.
        let target = at;
        while (
          target < bytes.length - 1 && target < at + 16 && !(bytes[target] >= 0x20 && bytes[target] < 0x7f)
        ) target++;
        bytes[target] = m.value;
        break;
      }
      case "u16":
        bytes[at] = m.value >> 8;
        if (at + 1 < bytes.length) bytes[at + 1] = m.value & 0xff;
        break;
      case "truncate":
        bytes.length = at;
        break;
      case "insert":
        bytes.splice(at, 0, ...m.bytes);
        break;
      case "delete":
        bytes.splice(at, m.count);
        break;
    }
  }
  return { bytes: Uint8Array.from(bytes), firstChanged };
}

/** Packets with their sizes in bytes, for the expectations of a stream decoded with `config`. */
function expectedPrefix(
  stream: ValidStream,
  upTo: number,
  config: DecoderConfig,
): { packets: Packet[]; tooLarge: boolean } {
  const packets: Packet[] = [];
  let end = 0;
  for (let i = 0; i < stream.packets.length; i++) {
    const size = stream.encodings[i].length;
    if (end + size > upTo) break;
    // The maximum counts the whole packet, fixed header included (MQTT 5 §3.1.2.11.4).
    if (config.maximumPacketSize !== undefined && size > config.maximumPacketSize) {
      return { packets, tooLarge: true };
    }
    packets.push(stream.packets[i]);
    end += size;
  }
  return { packets, tooLarge: false };
}

/** Whether a decoder with `config` reads `stream` as it was written: same level, or learned from its CONNECT. */
function readsAsWritten(stream: ValidStream, config: DecoderConfig): boolean {
  return config.version === undefined
    ? stream.packets[0].type === "connect"
    : config.version === stream.version;
}

// ---------------------------------------------------------------------------------------------------------------
// Tests.

describe("PacketDecoder fuzzing", () => {
  test("PacketDecoder.next() on random bytes returns packets, undefined or MqttError", () => {
    fc.assert(
      fc.property(randomInput, decoderConfig, chunkPlan, (input, config, plan) => {
        runDecoder(config, split(input, plan));
      }),
      fcParams(500),
    );
  });

  test("PacketDecoder.next() on damaged valid streams returns packets, undefined or MqttError", () => {
    fc.assert(
      fc.property(
        validStream,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        decoderConfig,
        chunkPlan,
        (stream, mutations, config, plan) => {
          const { bytes, firstChanged } = mutate(stream, mutations);
          const outcome = runDecoder(config, split(bytes, plan));
          if (!readsAsWritten(stream, config)) return;
          // Packets wholly before the first damaged byte come out unchanged.
          const expected = expectedPrefix(stream, firstChanged, config);
          assert.deepStrictEqual(outcome.packets.slice(0, expected.packets.length), expected.packets);
          if (expected.tooLarge) {
            assert.equal(outcome.packets.length, expected.packets.length);
            assert.equal(outcome.error?.reasonCode, 0x95);
          }
        },
      ),
      fcParams(1000),
    );
  });

  test("PacketDecoder.next() on valid streams refuses exactly the packets over maximumPacketSize with 0x95", () => {
    const maximum = fc.oneof(fc.integer({ min: 2, max: 64 }), fc.integer({ min: 2, max: 2_000 }));
    fc.assert(
      fc.property(validStream, maximum, chunkPlan, (stream, maximumPacketSize, plan) => {
        const config: DecoderConfig = { version: stream.version, maximumPacketSize };
        const outcome = runDecoder(config, split(concat(stream.encodings), plan));
        const expected = expectedPrefix(stream, Infinity, config);
        assert.deepStrictEqual(outcome.packets, expected.packets);
        assert.equal(outcome.error?.reasonCode, expected.tooLarge ? 0x95 : undefined);
      }),
      fcParams(300),
    );
  });

  test("PacketDecoder.next() accepts a packet of exactly maximumPacketSize bytes and refuses one byte less", () => {
    fc.assert(
      fc.property(validStream, (stream) => {
        const bytes = stream.encodings[0];
        const size = Math.max(2, bytes.length);
        const fits = runDecoder({ version: stream.version, maximumPacketSize: size }, [bytes]);
        assert.deepStrictEqual(fits.packets, [stream.packets[0]]);
        assert.equal(fits.error, undefined);
        if (bytes.length > 2) {
          const over = runDecoder({ version: stream.version, maximumPacketSize: bytes.length - 1 }, [bytes]);
          assert.deepStrictEqual(over.packets, []);
          assert.equal(over.error?.reasonCode, 0x95);
        }
      }),
      fcParams(200),
    );
  });

  test("PacketDecoder.next() on every first byte with short bodies returns packets, undefined or MqttError", () => {
    const bodies = [[], [0x00], [0x00, 0x00], [0xff], [0x00, 0x01], [0x00, 0x01, 0x00], [
      0x00,
      0x01,
      0x61,
      0x00,
    ]];
    const configs: DecoderConfig[] = [{}, { version: 3 }, { version: 4 }, { version: 5 }, {
      version: 5,
      maximumPacketSize: 3,
    }];
    for (let first = 0; first < 256; first++) {
      for (const body of bodies) {
        const bytes = Uint8Array.from([first, body.length, ...body]);
        for (const config of configs) {
          runDecoder(config, [bytes]);
          runDecoder(config, split(bytes, { kind: "bytes" }));
        }
      }
    }
  });

  // Found by the fuzzer (a bit flip that made "+"): the will topic is the topic name of the will message.
  test("PacketDecoder.next() refuses a CONNECT whose will topic is empty or has a wildcard [MQTT-3.3.2-2] [MQTT-4.7.3-1]", () => {
    const cases: [hex: string, topic: string][] = [
      ["10 14 00 06 4d 51 49 73 64 70 03 06 00 00 00 01 63 00 01 2b 00 00", "+"], // 3.1
      ["10 12 00 04 4d 51 54 54 04 06 00 00 00 01 63 00 01 2b 00 00", "+"], // 3.1.1
      ["10 14 00 04 4d 51 54 54 05 06 00 00 00 00 01 63 00 00 01 23 00 00", "#"], // 5.0
      ["10 11 00 04 4d 51 54 54 04 06 00 00 00 01 63 00 00 00 00", ""], // 3.1.1, empty
    ];
    for (const [hex, topic] of cases) {
      const bytes = Uint8Array.from(hex.split(" "), (h) => parseInt(h, 16));
      const decoder = new PacketDecoder();
      decoder.push(bytes);
      assert.throws(
        () => decoder.next(),
        (e) => e instanceof MqttError && DECODER_CODES.has(e.reasonCode),
        `will topic ${JSON.stringify(topic)} accepted in ${hex}`,
      );
    }
  });

  // Found by the normal-form check: a Response Topic is a topic name, and a will becomes a PUBLISH.
  test("PacketDecoder.next() refuses a Response Topic with a wildcard [MQTT-3.3.2-14]", () => {
    const cases: string[] = [
      "30 0a 00 01 61 06 08 00 03 61 2f 2b", // PUBLISH "a", Response Topic "a/+"
      // CONNECT with a will whose Response Topic is "#"
      "10 18 00 04 4d 51 54 54 05 06 00 00 00 00 01 63 04 08 00 01 23 00 01 61 00 00",
    ];
    for (const hex of cases) {
      const bytes = Uint8Array.from(hex.split(" "), (h) => parseInt(h, 16));
      const decoder = new PacketDecoder({ version: 5 });
      decoder.push(bytes);
      assert.throws(
        () => decoder.next(),
        (e) => e instanceof MqttError && DECODER_CODES.has(e.reasonCode),
        `Response Topic with a wildcard accepted in ${hex}`,
      );
    }
  });

  test("PacketDecoder.next() refuses remaining lengths that are too long or not in shortest form [MQTT-1.5.5-1]", () => {
    const cases: [bytes: number[], code: number | undefined][] = [
      [[0xc0, 0x80, 0x00], 0x81], // 0 in two bytes
      [[0xc0, 0x80, 0x80, 0x00], 0x81],
      [[0xc0, 0x80, 0x80, 0x80, 0x00], 0x81],
      [[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 0x81], // five bytes
      [[0x30, 0x80, 0x80, 0x80, 0x80], 0x81],
      [[0x30, 0xff, 0xff, 0xff, 0x7f], undefined], // the largest length: waits for the body
    ];
    const plans: ChunkPlan[] = [{ kind: "whole" }, { kind: "bytes" }];
    for (const [bytes, code] of cases) {
      for (const version of VERSIONS) {
        for (const plan of plans) {
          const outcome = runDecoder({ version }, split(Uint8Array.from(bytes), plan));
          assert.equal(outcome.error?.reasonCode, code, `${toHex(Uint8Array.from(bytes))} in v${version}`);
          assert.deepStrictEqual(outcome.packets, []);
        }
      }
    }
  });
});
