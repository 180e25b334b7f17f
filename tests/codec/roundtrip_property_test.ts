// Property tests of the codec: every valid packet of every protocol level survives encode → decode, in any
// chunking, and encoding what was decoded gives the same bytes back.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type { Packet, ProtocolVersion } from "../../src/codec/packet.ts";
import {
  chunkPlan,
  clientStream,
  concat,
  fcParams,
  normalFormProblems,
  packet,
  packetOfType,
  packetStream,
  packetTypes,
  split,
  toHex,
  versionName,
  VERSIONS,
} from "./_arbitraries.ts";

/** Pushes every chunk and drains the decoder after each one; fails on a runaway `next()` loop. */
function decodeChunks(decoder: PacketDecoder, chunks: readonly Uint8Array[]): Packet[] {
  const packets: Packet[] = [];
  let pushed = 0;
  for (const chunk of chunks) {
    decoder.push(chunk);
    pushed += chunk.length;
    for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
      packets.push(packet);
      // Every packet takes at least two bytes.
      assert.ok(
        packets.length * 2 <= pushed,
        `decoder returned ${packets.length} packets from ${pushed} bytes`,
      );
    }
  }
  return packets;
}

function decodeOne(bytes: Uint8Array, version: ProtocolVersion | undefined): Packet {
  const decoder = new PacketDecoder({ version });
  const packets = decodeChunks(decoder, [bytes]);
  assert.equal(packets.length, 1);
  assert.equal(decoder.buffered, 0);
  return packets[0];
}

for (const version of VERSIONS) {
  describe(`codec round trip, ${versionName(version)}`, () => {
    test(`the arbitraries make packets in normal form (${versionName(version)})`, () => {
      fc.assert(
        fc.property(packet(version), (p) => {
          assert.deepStrictEqual(normalFormProblems(p, version), []);
        }),
        fcParams(300),
      );
    });

    for (const type of packetTypes(version)) {
      test(`decode(encode(${type})) equals the packet in any chunking (${versionName(version)})`, () => {
        fc.assert(
          fc.property(packetOfType(type, version), chunkPlan, (p, plan) => {
            const bytes = encode(p, version);
            const decoder = new PacketDecoder({ version });
            const decoded = decodeChunks(decoder, split(bytes, plan));
            assert.equal(decoded.length, 1, `expected one packet from ${toHex(bytes)}`);
            assert.deepStrictEqual(decoded[0], p);
            assert.equal(decoder.buffered, 0);
            assert.equal(decoder.next(), undefined);
          }),
          fcParams(type === "publish" || type === "connect" ? 200 : 80),
        );
      });
    }

    test(`decode() fed one byte at a time returns the packet only after its last byte (${versionName(version)})`, () => {
      fc.assert(
        fc.property(packet(version).filter((p) => encode(p, version).length <= 4096), (p) => {
          const bytes = encode(p, version);
          const decoder = new PacketDecoder({ version });
          for (let i = 0; i < bytes.length; i++) {
            decoder.push(bytes.subarray(i, i + 1));
            const got = decoder.next();
            if (i < bytes.length - 1) {
              assert.equal(got, undefined, `a packet came out after ${i + 1} of ${bytes.length} bytes`);
              assert.equal(decoder.buffered, i + 1);
            } else {
              assert.deepStrictEqual(got, p);
              assert.equal(decoder.next(), undefined);
            }
          }
          assert.equal(decoder.buffered, 0);
        }),
        fcParams(200),
      );
    });

    test(`encode(decode(bytes)) gives the same bytes (${versionName(version)})`, () => {
      fc.assert(
        fc.property(packet(version), (p) => {
          const bytes = encode(p, version);
          const again = encode(decodeOne(bytes, version), version);
          assert.deepStrictEqual(again, bytes);
          // The broker side learns the level from a CONNECT and then decodes it the same way.
          if (p.type === "connect") {
            assert.deepStrictEqual(encode(decodeOne(bytes, undefined), version), bytes);
          }
        }),
        fcParams(300),
      );
    });

    test(`concatenated packets decode in order in any chunking (${versionName(version)})`, () => {
      fc.assert(
        fc.property(packetStream(version, 8), chunkPlan, (packets, plan) => {
          const bytes = concat(packets.map((p) => encode(p, version)));
          const decoder = new PacketDecoder({ version });
          const decoded = decodeChunks(decoder, split(bytes, plan));
          assert.deepStrictEqual(decoded, packets);
          assert.equal(decoder.buffered, 0);
        }),
        fcParams(200),
      );
    });

    test(`a decoder without a version learns ${versionName(version)} from the CONNECT`, () => {
      fc.assert(
        fc.property(clientStream(version, 8), chunkPlan, (packets, plan) => {
          const bytes = concat(packets.map((p) => encode(p, version)));
          const decoder = new PacketDecoder();
          const decoded = decodeChunks(decoder, split(bytes, plan));
          assert.deepStrictEqual(decoded, packets);
          assert.equal(decoder.buffered, 0);
        }),
        fcParams(200),
      );
    });
  });
}
