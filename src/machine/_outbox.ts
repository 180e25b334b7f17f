/**
 * What a machine has to send, coalesced: packets are appended as they are decided and handed out by `take()`
 * as few chunks as possible, so a driver makes one write per input however many small packets it produced.
 * A large packet leaves as its own chunk instead of being copied into a bigger one: Web Streams cost per
 * chunk, which copying a few small packets together saves, but copying 16 KiB costs more than a chunk does.
 *
 * @module
 */

import { concat } from "../bytes.ts";
import { encode } from "../codec/encode.ts";
import type { Packet, ProtocolVersion } from "../codec/packet.ts";

/** Packets of at least this many bytes leave as chunks of their own, uncopied. */
export const OWN_CHUNK_SIZE = 16_384;

/** A queue of encoded packets that leaves in as few chunks as copying them cheaply allows. */
export class Outbox {
  /** Made when something is queued, let go when all of it is taken. */
  #parts: Uint8Array[] | undefined;
  #length = 0;

  /** Bytes waiting to be taken. */
  get length(): number {
    return this.#length;
  }

  /**
   * Encodes a packet and queues it.
   *
   * @returns The number of bytes the packet takes.
   */
  push(packet: Packet, version: ProtocolVersion): number {
    const bytes = encode(packet, version);
    this.pushBytes(bytes);
    return bytes.length;
  }

  /** Queues bytes that are already encoded; the outbox keeps them until `take()`, so they must not change. */
  pushBytes(bytes: Uint8Array): void {
    (this.#parts ??= []).push(bytes);
    this.#length += bytes.length;
  }

  /**
   * The next chunk to write, or `undefined` when nothing is queued; call it until `undefined`. Small packets
   * queued one after another come out together in one chunk; a packet of {@linkcode OWN_CHUNK_SIZE} bytes
   * or more comes out alone. The chunk is the caller's to keep.
   */
  take(): Uint8Array | undefined {
    const parts = this.#parts;
    if (parts === undefined) return undefined;
    let end = 0;
    if (parts[0].length >= OWN_CHUNK_SIZE) end = 1;
    else while (end < parts.length && parts[end].length < OWN_CHUNK_SIZE) end++;
    let chunk: Uint8Array;
    if (end === parts.length) {
      this.#parts = undefined;
      chunk = end === 1 ? parts[0] : concat(parts);
    } else {
      chunk = end === 1 ? parts[0] : concat(parts.slice(0, end));
      this.#parts = parts.slice(end);
    }
    this.#length -= chunk.length;
    return chunk;
  }

  /** Drops everything queued, as when the connection is gone. */
  clear(): void {
    this.#parts = undefined;
    this.#length = 0;
  }
}
