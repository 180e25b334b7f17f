/**
 * The incremental decoder: bytes in, in chunks of any size, complete packets out.
 *
 * @module
 */

import { malformed, MAX_VARINT, protocolError } from "./_bytes.ts";
import { decodePacket, type TopicMemo } from "./decode.ts";
import type { Packet, ProtocolVersion } from "./packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";

/**
 * The largest packet MQTT can express: a 4-byte remaining length plus a 5-byte fixed header.
 *
 * @example The limit of a decoder left at its default
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_PACKET_SIZE, PacketDecoder } from "@x/mqtt/codec";
 * assert.equal(MAX_PACKET_SIZE, 268_435_455 + 5);
 * // A PUBLISH header announcing the longest remaining length: the decoder waits for the body.
 * const header = new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x7f]);
 * const decoder = new PacketDecoder({ version: 5 });
 * decoder.push(header);
 * assert.equal(decoder.next(), undefined);
 * // With a lower limit the same header is refused at once (0x95 Packet Too Large).
 * const strict = new PacketDecoder({ version: 5, maximumPacketSize: 1024 });
 * strict.push(header);
 * assert.throws(() => strict.next(), { reasonCode: 0x95 });
 * ```
 */
export const MAX_PACKET_SIZE: number = MAX_VARINT + 5;

const EMPTY = new Uint8Array(0);

/** The smallest buffer started for a packet split across chunks: room for a small packet's rest. */
const FIRST_PARTIAL = 1024;

/** Options of {@linkcode PacketDecoder}. */
export interface PacketDecoderOptions {
  /**
   * The protocol level of the connection. Leave it out on the server side: the first packet must then be a
   * CONNECT, and the decoder takes the level from it.
   */
  version?: ProtocolVersion;
  /**
   * The largest packet accepted, in bytes, fixed header included (MQTT 5 Maximum Packet Size). A larger
   * packet is refused from its fixed header, before its body is buffered. Default: the protocol's limit.
   */
  maximumPacketSize?: number;
}

/**
 * Decodes a stream of bytes into packets. Feed it each chunk with {@linkcode PacketDecoder.push}, then call
 * {@linkcode PacketDecoder.next} until it returns `undefined`. A packet's payload is a view of the chunk it
 * came in (or of the one buffer a packet split across chunks was assembled in): copy what you keep.
 *
 * Bad bytes make `next()` throw an {@linkcode MqttError} (0x81 Malformed Packet, 0x82 Protocol Error, 0x84
 * Unsupported Protocol Version or 0x95 Packet Too Large); the decoder then stays failed and throws the same
 * error on every call, since a byte stream cannot be resynchronized. It holds at most one incomplete packet,
 * never more than the maximum packet size.
 *
 * @example Decode packets split across chunks
 * ```ts
 * import { encode, PacketDecoder } from "@x/mqtt/codec";
 * const bytes = encode({ type: "pingreq" }, 5);
 * const decoder = new PacketDecoder({ version: 5 });
 * decoder.push(bytes.subarray(0, 1));
 * console.log(decoder.next()); // undefined: needs more bytes
 * decoder.push(bytes.subarray(1));
 * console.log(decoder.next()); // { type: "pingreq" }
 * ```
 */
export class PacketDecoder {
  #version: ProtocolVersion | undefined;
  /** The last PUBLISH topic, made with the first PUBLISH. */
  #topics: TopicMemo | undefined;
  readonly #maximumPacketSize: number;
  /** The chunk being read and the position of the next packet in it. */
  #chunk: Uint8Array = EMPTY;
  #position = 0;
  /**
   * A packet larger than what has arrived, assembled here: its declared size, and a buffer that grows as
   * bytes arrive and how much of it is filled. The buffer starts at twice what arrived (at least
   * {@linkcode FIRST_PARTIAL}) and doubles, so a peer holds at most about twice what it actually sent: a
   * fixed header announcing 256 MiB, or 1 MiB dribbled a byte a second, does not allocate it.
   */
  #partial: Uint8Array | undefined;
  #partialSize = 0;
  #filled = 0;
  /** A completely assembled packet waiting for `next()`. */
  #ready: Uint8Array | undefined;
  #drained = true;
  #error: MqttError | undefined;

  /**
   * Creates a decoder.
   *
   * @param options The protocol level, if known, and the maximum packet size.
   */
  constructor(options: PacketDecoderOptions = {}) {
    this.#version = options.version;
    const maximum = options.maximumPacketSize ?? MAX_PACKET_SIZE;
    if (!Number.isInteger(maximum) || maximum < 2) {
      throw new RangeError(
        `Cannot create decoder: maximum packet size ${maximum} is not an integer of at least 2`,
      );
    }
    this.#maximumPacketSize = maximum;
  }

  /** The protocol level, once known. Setting it tells a client-side decoder what the connection speaks. */
  get version(): ProtocolVersion | undefined {
    return this.#version;
  }

  set version(version: ProtocolVersion | undefined) {
    this.#version = version;
  }

  /** How many bytes of incomplete or unread packets the decoder holds. */
  get buffered(): number {
    return this.#chunk.length - this.#position + (this.#partial === undefined ? 0 : this.#filled) +
      (this.#ready?.length ?? 0);
  }

  /**
   * How many bytes the decoder has allocated for a packet split across chunks: at most about twice what
   * arrived of it (at least 1 KiB), never its announced size before its bytes came; 0 when none is pending.
   *
   * @example A header announcing 1 MiB allocates 1 KiB, not 1 MiB
   * ```ts
   * import assert from "node:assert/strict";
   * import { PacketDecoder } from "@x/mqtt/codec";
   * const decoder = new PacketDecoder({ version: 4 });
   * decoder.push(new Uint8Array([0x30, 0x80, 0x80, 0x40, 0x00, 0x01, 0x61]));
   * assert.equal(decoder.next(), undefined);
   * assert.equal(decoder.allocated, 1024);
   * ```
   */
  get allocated(): number {
    return this.#partial?.length ?? 0;
  }

  /**
   * Adds received bytes. Call {@linkcode PacketDecoder.next} until it returns `undefined` before pushing
   * again, so that the decoder never holds more than one incomplete packet.
   *
   * @param bytes The next chunk of the stream; the decoder keeps views of it, so do not modify it later.
   * @throws {MqttError} The error of an earlier packet, if the decoder has failed.
   * @throws {Error} When the previous bytes were not drained with `next()`.
   */
  push(bytes: Uint8Array): void {
    if (this.#error !== undefined) throw this.#error;
    if (!this.#drained) throw new Error("Cannot push bytes: call next() until it returns undefined first");
    this.#drained = false;
    if (bytes.length === 0) return;
    let partial = this.#partial;
    if (partial !== undefined) {
      const count = Math.min(this.#partialSize - this.#filled, bytes.length);
      const needed = this.#filled + count;
      if (needed > partial.length) {
        const grown = new Uint8Array(Math.min(this.#partialSize, Math.max(needed, partial.length * 2)));
        grown.set(partial.subarray(0, this.#filled));
        partial = this.#partial = grown;
      }
      partial.set(bytes.subarray(0, count), this.#filled);
      this.#filled += count;
      if (this.#filled === this.#partialSize) {
        this.#ready = partial;
        this.#partial = undefined;
        this.#filled = 0;
      }
      this.#chunk = bytes.subarray(count);
      this.#position = 0;
    } else if (this.#position < this.#chunk.length) {
      // The last chunk ended inside a fixed header (at most 4 bytes, already copied): join them.
      const head = this.#chunk.subarray(this.#position);
      const joined = new Uint8Array(head.length + bytes.length);
      joined.set(head);
      joined.set(bytes, head.length);
      this.#chunk = joined;
      this.#position = 0;
    } else {
      this.#chunk = bytes;
      this.#position = 0;
    }
  }

  /**
   * Decodes the next complete packet.
   *
   * @returns The packet, or `undefined` when more bytes are needed.
   * @throws {MqttError} When the bytes are not a valid packet; every later call throws it again.
   */
  next(): Packet | undefined {
    if (this.#error !== undefined) throw this.#error;
    try {
      return this.#next();
    } catch (error) {
      if (error instanceof MqttError) {
        this.#error = error;
        this.#chunk = EMPTY;
        this.#position = 0;
        this.#partial = undefined;
        this.#ready = undefined;
      }
      throw error;
    }
  }

  #next(): Packet | undefined {
    const ready = this.#ready;
    if (ready !== undefined) {
      this.#ready = undefined;
      let headerLength = 2;
      while (ready[headerLength - 1] & 0x80) headerLength++;
      return this.#decode(ready[0], ready, headerLength, ready.length);
    }
    const chunk = this.#chunk;
    const start = this.#position;
    const available = chunk.length - start;
    if (available === 0) {
      // All read: let go of the chunk, so that an idle connection does not keep its last read alive.
      this.#chunk = EMPTY;
      this.#position = 0;
      return this.#needMore();
    }
    const first = chunk[start];
    const type = first >> 4;
    if (type === 0) malformed("Cannot read packet type 0: it is reserved");
    if (this.#version === undefined && type !== 1) {
      protocolError(
        `Cannot accept packet type ${type} before CONNECT: the first packet must be CONNECT [MQTT-3.1.0-1]`,
      );
    }
    let remaining = 0;
    let multiplier = 1;
    let position = start + 1;
    for (;;) {
      if (position >= chunk.length) {
        // The fixed header is split across chunks: keep a copy of its few bytes, not the whole chunk.
        this.#chunk = chunk.slice(start);
        this.#position = 0;
        return this.#needMore();
      }
      const byte = chunk[position++];
      remaining += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && position - start > 2) {
          malformed("Cannot read remaining length: not in its shortest form [MQTT-1.5.5-1]");
        }
        break;
      }
      if (position - start === 5) malformed("Cannot read remaining length: longer than 4 bytes");
      multiplier *= 128;
    }
    const headerLength = position - start;
    const total = headerLength + remaining;
    if (total > this.#maximumPacketSize) {
      throw new MqttError(
        ReasonCode.PacketTooLarge,
        `Cannot accept a packet of ${total} bytes: the maximum packet size is ${this.#maximumPacketSize}`,
      );
    }
    if (available < total) {
      // Start with room for what arrived plus as much again; grow (doubling, capped at the total) as bytes
      // come, so that what is held stays within twice what the peer sent.
      const partial = new Uint8Array(Math.min(total, Math.max(available * 2, FIRST_PARTIAL)));
      this.#partialSize = total;
      partial.set(chunk.subarray(start));
      this.#partial = partial;
      this.#filled = available;
      this.#chunk = EMPTY;
      this.#position = 0;
      return this.#needMore();
    }
    this.#position = start + total;
    return this.#decode(first, chunk, start + headerLength, start + total);
  }

  #decode(first: number, buffer: Uint8Array, start: number, end: number): Packet {
    const memo = first >> 4 === 3 ? this.#topics ??= { bytes: undefined, length: 0, topic: "" } : undefined;
    const packet = decodePacket(first, buffer, start, end, this.#version, memo);
    if (packet.type === "connect" && this.#version === undefined) this.#version = packet.protocolVersion;
    return packet;
  }

  #needMore(): undefined {
    this.#drained = true;
    return undefined;
  }
}
