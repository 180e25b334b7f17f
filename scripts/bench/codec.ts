/**
 * Codec throughput: this library's `encode()` and `PacketDecoder` against mqtt-packet, in the same process.
 *
 * Run from the repository root (node_modules installed, `PATH=node_modules/.bin:$PATH`):
 *
 *     deno run -A scripts/bench/codec.ts [--quick]
 *     bun scripts/bench/codec.ts [--quick]
 *     node scripts/bench/codec.ts [--quick]
 *
 * Each case warms both codecs up for 300 ms each, then times each for 1 s in 5 rounds that alternate between
 * the two and reports each codec's median round (`--quick`: 60 ms and 200 ms), so a passing disturbance of the
 * machine hits both alike. It prints a table of case, our ops/s, mqtt-packet's ops/s and their ratio
 * (ours / mqtt-packet; above 1 means ours is faster). The last line is the smallest ratio over all PUBLISH rows, the number the goal of at least
 * 3× refers to, as `publish min ratio vs mqtt-packet: 3.41`. Absolute numbers depend on the machine; compare
 * ratios.
 *
 * Cases, each the same logical packet for both codecs at the same protocol version:
 * - PUBLISH, QoS 1 with a packet id, topic `sensors/building-1/floor-3/temperature`, payloads of 64 B and
 *   16 KiB, at MQTT 3.1.1 and 5.0 (no properties);
 * - CONNECT at 5.0 with username, password, connect properties (user properties included) and a will that has
 *   properties;
 * - SUBSCRIBE at 5.0 with 10 topic filters and mixed subscription options.
 *
 * Encode: `encode(packet, version)` against `generate(object, { protocolVersion })`; both return one contiguous
 * buffer. One op is one packet.
 *
 * Decode: both get the same bytes, the output of mqtt-packet's `generate()` (independent of our encoder), as a
 * `Uint8Array` for ours and a `Buffer` over the same memory for mqtt-packet. Ours is one `PacketDecoder` that is
 * pushed the chunk and drained with `next()` until `undefined`; mqtt-packet is one `parser({ protocolVersion })`
 * fed with `parse(chunk)`, counting its `packet` events. Each chunk holds either one packet, or 100 PUBLISH
 * packets back to back (rows marked `x100/chunk`); one op is one packet either way, so batched rows report
 * packets per second.
 *
 * Before timing, every case is checked: each codec decodes the other's encoding and the decode input back to
 * the expected fields, so a broken codec fails loudly instead of reporting a number. Every timed call returns a
 * value derived from its result (output length, payload length...), summed into a sink printed at the end.
 *
 * @module
 */

import process from "node:process";
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import { generate, parser } from "mqtt-packet";
import type {
  IConnectPacket,
  IPublishPacket,
  ISubscribePacket,
  Packet as TheirPacket,
  Parser as TheirParser,
} from "mqtt-packet";
import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type {
  ConnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  SubscribePacket,
} from "../../src/codec/packet.ts";
import { formatRate, formatTable, measureEach, runtimeName, sinkValue } from "./_bench.ts";
import { concat } from "../../src/bytes.ts";

const QUICK = process.argv.slice(2).includes("--quick");
const DURATION_MS = QUICK ? 200 : 1000;
const WARMUP_MS = QUICK ? 60 : 300;
const ROUNDS = 5;
const BATCH = 100;
const TOPIC = "sensors/building-1/floor-3/temperature";

/** One row of the table: the same work done by both codecs. */
interface Case {
  name: string;
  publish: boolean;
  /** Packets handled by one call. */
  opsPerCall: number;
  ours: () => number;
  theirs: () => number;
}

/** A logical packet in both codecs' shapes. */
interface Pair<O extends Packet, T extends TheirPacket> {
  label: string;
  version: ProtocolVersion;
  ours: O;
  theirs: T;
}

function versionName(version: ProtocolVersion): string {
  return version === 5 ? "v5" : version === 4 ? "v3.1.1" : "v3.1";
}

function sizeName(bytes: number): string {
  return bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

/** Deterministic, non-uniform payload bytes. */
function payloadOf(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** A Buffer over the same memory, for mqtt-packet. */
function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A plain `Uint8Array` copy of mqtt-packet's output, in memory of its own (not Buffer's shared pool). */
function copyOf(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function publishPair(
  size: number,
  version: ProtocolVersion,
  packetId: number,
): Pair<PublishPacket, IPublishPacket> {
  const payload = payloadOf(size);
  return {
    label: `publish ${sizeName(size)} ${versionName(version)}`,
    version,
    ours: { type: "publish", topic: TOPIC, payload, qos: 1, retain: false, dup: false, packetId },
    theirs: {
      cmd: "publish",
      topic: TOPIC,
      payload: bufferOf(payload),
      qos: 1,
      retain: false,
      dup: false,
      messageId: packetId,
    },
  };
}

function connectPair(): Pair<ConnectPacket, IConnectPacket> {
  const clientId = "bench-client-0001";
  const password = utf8("correct horse battery staple");
  const willPayload = utf8("offline");
  return {
    label: "connect with properties v5",
    version: 5,
    ours: {
      type: "connect",
      protocolVersion: 5,
      clientId,
      cleanStart: true,
      keepAlive: 60,
      username: "bench-user",
      password,
      will: {
        topic: `clients/${clientId}/status`,
        payload: willPayload,
        qos: 1,
        retain: true,
        properties: { willDelayInterval: 30, contentType: "text/plain" },
      },
      properties: {
        sessionExpiryInterval: 3600,
        receiveMaximum: 100,
        maximumPacketSize: 1_048_576,
        topicAliasMaximum: 16,
        requestResponseInformation: true,
        userProperties: [["region", "eu-west-1"], ["app", "bench"]],
      },
    },
    theirs: {
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 5,
      clientId,
      clean: true,
      keepalive: 60,
      username: "bench-user",
      password: bufferOf(password),
      will: {
        topic: `clients/${clientId}/status`,
        payload: bufferOf(willPayload),
        qos: 1,
        retain: true,
        properties: { willDelayInterval: 30, contentType: "text/plain" },
      },
      properties: {
        sessionExpiryInterval: 3600,
        receiveMaximum: 100,
        maximumPacketSize: 1_048_576,
        topicAliasMaximum: 16,
        requestResponseInformation: true,
        userProperties: { region: "eu-west-1", app: "bench" },
      },
    },
  };
}

function subscribePair(): Pair<SubscribePacket, ISubscribePacket> {
  const filters = Array.from({ length: 10 }, (_, i) => ({
    topicFilter: i % 3 === 0 ? `sensors/building-${i}/+/temperature` : `alerts/building-${i}/#`,
    qos: (i % 3) as 0 | 1 | 2,
    noLocal: i % 2 === 0,
    retainAsPublished: i % 4 === 0,
    retainHandling: (i % 3) as 0 | 1 | 2,
  }));
  return {
    label: "subscribe 10 filters v5",
    version: 5,
    ours: { type: "subscribe", packetId: 4243, subscriptions: filters },
    theirs: {
      cmd: "subscribe",
      messageId: 4243,
      subscriptions: filters.map((f) => ({
        topic: f.topicFilter,
        qos: f.qos,
        nl: f.noLocal,
        rap: f.retainAsPublished,
        rh: f.retainHandling,
      })),
    },
  };
}

/** What a timed call returns for one decoded packet of ours: cheap, and dependent on the decoded fields. */
function weighOurs(packet: Packet): number {
  switch (packet.type) {
    case "publish":
      return packet.payload.length + packet.topic.length;
    case "connect":
      return packet.clientId.length;
    case "subscribe":
      return packet.subscriptions.length;
    default:
      return 1;
  }
}

/** The same as {@linkcode weighOurs} for an mqtt-packet packet. */
function weighTheirs(packet: TheirPacket): number {
  switch (packet.cmd) {
    case "publish":
      return packet.payload.length + packet.topic.length;
    case "connect":
      return packet.clientId.length;
    case "subscribe":
      return packet.subscriptions.length;
    default:
      return 1;
  }
}

/** The fields both codecs must agree on, as one comparable string. */
function summarizeOurs(packet: Packet): string {
  switch (packet.type) {
    case "publish":
      return `publish ${packet.topic} q${packet.qos} id${packet.packetId} ${packet.payload.length}B`;
    case "connect":
      return `connect v${packet.protocolVersion} ${packet.clientId} ${packet.username} ${packet.password?.length}B ` +
        `will ${packet.will?.topic} ${packet.will?.payload.length}B props ` +
        `${packet.properties?.sessionExpiryInterval} ${packet.properties?.receiveMaximum} ` +
        `${packet.properties?.maximumPacketSize} ${packet.properties?.userProperties?.length}`;
    case "subscribe":
      return `subscribe id${packet.packetId} ` +
        packet.subscriptions
          .map((s) => `${s.topicFilter}:${s.qos}${+s.noLocal}${+s.retainAsPublished}${s.retainHandling}`)
          .join(",");
    default:
      return packet.type;
  }
}

/** The same as {@linkcode summarizeOurs} for an mqtt-packet packet. */
function summarizeTheirs(packet: TheirPacket): string {
  switch (packet.cmd) {
    case "publish":
      return `publish ${packet.topic} q${packet.qos} id${packet.messageId} ${packet.payload.length}B`;
    case "connect":
      return `connect v${packet.protocolVersion} ${packet.clientId} ${packet.username} ${packet.password?.length}B ` +
        `will ${packet.will?.topic} ${packet.will?.payload.length}B props ` +
        `${packet.properties?.sessionExpiryInterval} ${packet.properties?.receiveMaximum} ` +
        `${packet.properties?.maximumPacketSize} ${
          Object.keys(packet.properties?.userProperties ?? {}).length
        }`;
    case "subscribe":
      return `subscribe id${packet.messageId} ` +
        packet.subscriptions
          .map((s) => `${s.topic}:${s.qos}${+(s.nl ?? false)}${+(s.rap ?? false)}${s.rh ?? 0}`)
          .join(",");
    default:
      return packet.cmd;
  }
}

function decodeAllOurs(bytes: Uint8Array, version: ProtocolVersion): Packet[] {
  const decoder = new PacketDecoder({ version });
  decoder.push(bytes);
  const packets: Packet[] = [];
  for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) packets.push(packet);
  return packets;
}

function decodeAllTheirs(bytes: Uint8Array, version: ProtocolVersion): TheirPacket[] {
  const packets: TheirPacket[] = [];
  const theirParser = parser({ protocolVersion: version });
  theirParser.on("packet", (packet) => packets.push(packet));
  const left = theirParser.parse(bufferOf(bytes));
  if (left !== 0) throw new Error(`mqtt-packet left ${left} bytes undecoded`);
  return packets;
}

/** Throws unless every decoding of the pair's packet, by either codec from either encoding, agrees. */
function check<O extends Packet, T extends TheirPacket>(pair: Pair<O, T>, theirBytes: Uint8Array): string[] {
  const expected = summarizeOurs(pair.ours);
  const ourBytes = encode(pair.ours, pair.version);
  const decodings: [string, string[]][] = [
    ["ours(mqtt-packet bytes)", decodeAllOurs(theirBytes, pair.version).map(summarizeOurs)],
    ["ours(our bytes)", decodeAllOurs(ourBytes, pair.version).map(summarizeOurs)],
    ["mqtt-packet(our bytes)", decodeAllTheirs(ourBytes, pair.version).map(summarizeTheirs)],
    ["mqtt-packet(mqtt-packet bytes)", decodeAllTheirs(theirBytes, pair.version).map(summarizeTheirs)],
  ];
  for (const [who, got] of decodings) {
    if (got.length !== 1 || got[0] !== expected) {
      throw new Error(
        `Cannot benchmark ${pair.label}: ${who} decoded ${JSON.stringify(got)}, expected ${expected}`,
      );
    }
  }
  if (sameBytes(ourBytes, theirBytes)) return [];
  return [
    `note: ${pair.label}: the encodings differ (ours ${ourBytes.length} B, mqtt-packet ${theirBytes.length} B)`,
  ];
}

function encodeCase<O extends Packet, T extends TheirPacket>(pair: Pair<O, T>): Case {
  const { ours, theirs, version } = pair;
  const options = { protocolVersion: version };
  return {
    name: `encode ${pair.label}`,
    publish: ours.type === "publish",
    opsPerCall: 1,
    ours: () => encode(ours, version).length,
    theirs: () => generate(theirs, options).length,
  };
}

/** Decodes `chunk`, which holds `count` packets, once per call with each codec. */
function decodeCase(
  name: string,
  publish: boolean,
  version: ProtocolVersion,
  chunk: Uint8Array,
  count: number,
): Case {
  const decoder = new PacketDecoder({ version });
  const theirParser: TheirParser = parser({ protocolVersion: version });
  const theirChunk = bufferOf(chunk);
  let theirWeight = 0;
  let theirCount = 0;
  theirParser.on("packet", (packet) => {
    theirWeight += weighTheirs(packet);
    theirCount++;
  });
  // No 'error' listener: an mqtt-packet parse error throws out of parse().
  return {
    name,
    publish,
    opsPerCall: count,
    ours: () => {
      decoder.push(chunk);
      let weight = 0;
      let decoded = 0;
      for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
        weight += weighOurs(packet);
        decoded++;
      }
      if (decoded !== count) {
        throw new Error(`Cannot decode ${name}: got ${decoded} packets, expected ${count}`);
      }
      return weight;
    },
    theirs: () => {
      theirWeight = 0;
      theirCount = 0;
      theirParser.parse(theirChunk);
      if (theirCount !== count) {
        throw new Error(`Cannot decode ${name}: got ${theirCount} packets, expected ${count}`);
      }
      return theirWeight;
    },
  };
}

function buildCases(notes: string[]): Case[] {
  const encodes: Case[] = [];
  const decodes: Case[] = [];
  const batches: Case[] = [];
  const pairs: Pair<Packet, TheirPacket>[] = [];
  for (const size of [64, 16_384]) {
    for (const version of [4, 5] as const) pairs.push(publishPair(size, version, 4242));
  }
  pairs.push(connectPair(), subscribePair());
  for (const pair of pairs) {
    const theirBytes = copyOf(generate(pair.theirs, { protocolVersion: pair.version }));
    notes.push(...check(pair, theirBytes));
    encodes.push(encodeCase(pair));
    decodes.push(
      decodeCase(`decode ${pair.label}`, pair.ours.type === "publish", pair.version, theirBytes, 1),
    );
    if (pair.ours.type === "publish") {
      const size = pair.ours.payload.length;
      const chunk = concat(Array.from({ length: BATCH }, (_, i) => {
        const each = publishPair(size, pair.version, i + 1);
        return copyOf(generate(each.theirs, { protocolVersion: pair.version }));
      }));
      const label = `decode ${pair.label} x${BATCH}/chunk`;
      const ours = decodeAllOurs(chunk, pair.version).length;
      const theirs = decodeAllTheirs(chunk, pair.version).length;
      if (ours !== BATCH || theirs !== BATCH) {
        throw new Error(
          `Cannot benchmark ${label}: decoded ${ours} (ours) and ${theirs} (mqtt-packet) packets`,
        );
      }
      batches.push(decodeCase(label, true, pair.version, chunk, BATCH));
    }
  }
  return [...encodes, ...decodes, ...batches];
}

function main(): void {
  const theirVersion = createRequire(import.meta.url)("mqtt-packet/package.json").version as string;
  const notes: string[] = [];
  const cases = buildCases(notes);
  const seconds = (cases.length * 2 * (DURATION_MS + WARMUP_MS)) / 1000;
  console.log(`@x/mqtt codec vs mqtt-packet ${theirVersion} on ${runtimeName()}`);
  const quick = QUICK ? " (--quick)" : "";
  console.log(
    `${cases.length} cases; each codec: ${WARMUP_MS} ms warm-up, ${DURATION_MS} ms timed in ${ROUNDS} ` +
      `alternating rounds (median); about ${Math.ceil(seconds)} s${quick}; ops are packets`,
  );
  for (const note of notes) console.log(note);
  const rows: string[][] = [];
  let minPublish = Infinity;
  for (const c of cases) {
    const [ours, theirs] = measureEach([c.ours, c.theirs], {
      durationMs: DURATION_MS,
      warmupMs: WARMUP_MS,
      rounds: ROUNDS,
      opsPerCall: c.opsPerCall,
    });
    const ratio = ours / theirs;
    if (c.publish) minPublish = Math.min(minPublish, ratio);
    rows.push([c.name, formatRate(ours), formatRate(theirs), ratio.toFixed(2)]);
  }
  console.log();
  console.log(formatTable(["case", "ours ops/s", "mqtt-packet ops/s", "ratio"], rows));
  console.log();
  console.log(`sink: ${sinkValue()}`);
  console.log(`publish min ratio vs mqtt-packet: ${minPublish.toFixed(2)}`);
}

main();
