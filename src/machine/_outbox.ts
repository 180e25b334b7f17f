/**
 * What a machine has to send, coalesced: packets are appended as they are decided and handed out as one
 * `Uint8Array` by `take()`, so a driver makes one write per input however many packets it produced.
 *
 * @module
 */

import { concat } from "../bytes.ts";
import { encode } from "../codec/encode.ts";
import type { Packet, ProtocolVersion } from "../codec/packet.ts";

/** A queue of encoded packets that leaves as one chunk. */
export class Outbox {
  #parts: Uint8Array[] = [];
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
    this.#parts.push(bytes);
    this.#length += bytes.length;
  }

  /** Everything queued as one chunk, or `undefined` when nothing is. The chunk is the caller's to keep. */
  take(): Uint8Array | undefined {
    const parts = this.#parts;
    if (parts.length === 0) return undefined;
    this.#parts = [];
    this.#length = 0;
    return parts.length === 1 ? parts[0] : concat(parts);
  }

  /** Drops everything queued, as when the connection is gone. */
  clear(): void {
    this.#parts = [];
    this.#length = 0;
  }
}
