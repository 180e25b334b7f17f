/**
 * What a machine has to send, coalesced: packets are appended as they are decided and handed out by `take()`
 * as few chunks as possible, so a driver makes one write per input however many small packets it produced.
 * Packets a machine encodes here are written into one buffer per batch (sized from the batch before), not into
 * a buffer each: a PUBLISH of more than 64 bytes is a separate allocation outside the JavaScript heap (malloc),
 * which cost a client publishing small messages on Deno a fifth of its time. Bytes encoded elsewhere (a
 * broker's PUBLISH shared by its subscribers) are kept as they are, and a large packet leaves as its own
 * chunk instead of being copied into a bigger one: copying 16 KiB costs more than a chunk does.
 *
 * @module
 */

import { concat } from "../bytes.ts";
import { encode, publishSize, writePublish } from "../codec/encode.ts";
import type { Packet, ProtocolVersion } from "../codec/packet.ts";

/** Packets of at least this many bytes leave as chunks of their own, uncopied. */
export const OWN_CHUNK_SIZE = 16_384;
/** The smallest and largest buffer small packets are written into (V8 keeps typed arrays of up to 64 bytes on its heap). */
const MIN_BATCH = 64;
const MAX_BATCH = 65_536;

/** The power of two at or above `n`, within [MIN_BATCH, MAX_BATCH]. */
function batchSize(n: number): number {
  if (n <= MIN_BATCH) return MIN_BATCH;
  return Math.min(MAX_BATCH, 2 ** Math.ceil(Math.log2(n)));
}

/** A queue of encoded packets that leaves in as few chunks as copying them cheaply allows. */
export class Outbox {
  /** Whether a large PUBLISH's payload leaves as the caller's bytes, uncopied (see the constructor). */
  readonly #views: boolean;
  /** Chunks queued in order before the open part of the batch buffer; made when needed. */
  #parts: Uint8Array[] | undefined;
  #length = 0;
  /** The buffer of this batch: bytes from `#start` to `#used` are queued and not yet in `#parts`. */
  #batch: Uint8Array | undefined;
  #start = 0;
  #used = 0;
  /** The size of the next batch buffer: what the last batch held. */
  #next = MIN_BATCH;
  /** Bytes written into batch buffers since the last `take()` emptied the queue. */
  #batched = 0;

  /**
   * @param options With `viewPayloads`, a PUBLISH of {@linkcode OWN_CHUNK_SIZE} bytes or more is queued as its
   * header and its payload as it is, not copied: the payload must then not change until taken and written (a
   * broker forwarding what it read); else it is copied into a chunk of its own (a client whose caller may
   * reuse the buffer).
   */
  constructor(options: { viewPayloads?: boolean } = {}) {
    this.#views = options.viewPayloads ?? false;
  }

  /** Bytes waiting to be taken. */
  get length(): number {
    return this.#length;
  }

  /**
   * Encodes a packet and queues it.
   *
   * @param packet The packet.
   * @param version The protocol level.
   * @param maximumSize A PUBLISH larger than this is not queued.
   * @returns The number of bytes the packet takes, or -1 for a PUBLISH over `maximumSize`.
   */
  push(packet: Packet, version: ProtocolVersion, maximumSize = Infinity): number {
    if (packet.type === "publish") {
      const size = publishSize(packet, version);
      if (size > maximumSize) return -1;
      if (size >= OWN_CHUNK_SIZE && this.#views) {
        // The header into the batch, then the payload itself: one copy less, where the transport gathers
        // them into its writes anyway.
        const head = size - packet.payload.length;
        const at = this.#reserve(head);
        writePublish(packet, version, this.#batch!, at, false);
        this.#wrote(at, head);
        this.pushBytes(packet.payload);
        return size;
      }
      if (size >= OWN_CHUNK_SIZE) {
        const bytes = new Uint8Array(size);
        writePublish(packet, version, bytes, 0);
        this.pushBytes(bytes);
        return size;
      }
      const at = this.#reserve(size);
      writePublish(packet, version, this.#batch!, at);
      this.#wrote(at, size);
      return size;
    }
    const bytes = encode(packet, version);
    if (bytes.length >= OWN_CHUNK_SIZE) {
      this.pushBytes(bytes);
      return bytes.length;
    }
    const at = this.#reserve(bytes.length);
    this.#batch!.set(bytes, at);
    this.#wrote(at, bytes.length);
    return bytes.length;
  }

  /** Counts `size` bytes written at `at` of the batch buffer as queued (once they are all there). */
  #wrote(at: number, size: number): void {
    this.#used = at + size;
    this.#batched += size;
    this.#length += size;
  }

  /** Queues bytes that are already encoded; the outbox keeps them until `take()`, so they must not change. */
  pushBytes(bytes: Uint8Array): void {
    this.#seal();
    (this.#parts ??= []).push(bytes);
    this.#length += bytes.length;
  }

  /** Where `size` bytes go in the batch buffer, making a new one when it is full. */
  #reserve(size: number): number {
    const batch = this.#batch;
    if (batch !== undefined && this.#used + size <= batch.length) return this.#used;
    this.#seal();
    // Full while the batch goes on: the next buffer is twice as large.
    if (batch !== undefined) this.#next = batchSize(batch.length * 2);
    this.#batch = new Uint8Array(Math.max(size, this.#next));
    this.#start = 0;
    this.#used = 0;
    return 0;
  }

  /** Moves the open part of the batch buffer to the parts. */
  #seal(): void {
    if (this.#used > this.#start) {
      (this.#parts ??= []).push(this.#batch!.subarray(this.#start, this.#used));
      this.#start = this.#used;
    }
  }

  /**
   * The next chunk to write, or `undefined` when nothing is queued; call it until `undefined`. Small packets
   * queued one after another come out together in one chunk; a packet of {@linkcode OWN_CHUNK_SIZE} bytes
   * or more comes out alone. The chunk is the caller's to keep.
   */
  take(): Uint8Array | undefined {
    this.#seal();
    // The batch buffer is handed out with the chunks: nothing is written into it again, and an idle
    // connection holds none.
    this.#batch = undefined;
    this.#start = this.#used = 0;
    const parts = this.#parts;
    if (parts === undefined) return undefined;
    let end = 0;
    if (parts[0].length >= OWN_CHUNK_SIZE) end = 1;
    else while (end < parts.length && parts[end].length < OWN_CHUNK_SIZE) end++;
    let chunk: Uint8Array;
    if (end === parts.length) {
      this.#parts = undefined;
      chunk = end === 1 ? parts[0] : concat(parts);
      if (this.#batched > 0) this.#next = batchSize(this.#batched);
      this.#batched = 0;
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
    this.#batch = undefined;
    this.#start = this.#used = 0;
    this.#batched = 0;
    this.#length = 0;
  }
}
