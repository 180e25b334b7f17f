/**
 * An in-memory connected pair of transports, made of web streams only: for tests of the client and broker
 * drivers without sockets.
 *
 * @module
 */

import type { Transport } from "./transport.ts";

/** One direction: a TransformStream whose controller can end it even while a reader or writer holds it. */
function pipe(): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array>; end(): void } {
  let controller!: TransformStreamDefaultController<Uint8Array>;
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  return {
    readable,
    writable,
    end(): void {
      try {
        controller.terminate();
      } catch {
        // Already closed or errored.
      }
    },
  };
}

/**
 * Makes two transports connected to each other in memory: bytes written to one are read from the other.
 *
 * Chunks arrive as written, without copying: a writer must not modify a chunk after writing it. Writes wait
 * while the other side's readable holds an unread chunk, so a slow reader slows the writer down. Closing a
 * transport's `writable` ends the other side's `readable` (a half-close); `close()` ends both directions for
 * both sides, after which writes on either side reject.
 *
 * @returns The two ends, `[a, b]`.
 *
 * @example Send bytes from one end to the other
 * ```ts
 * import { memoryPair } from "@x/mqtt/transport/memory";
 * const [a, b] = memoryPair();
 * const writer = a.writable.getWriter();
 * const reader = b.readable.getReader();
 * void writer.write(new Uint8Array([0xc0, 0x00])); // PINGREQ
 * console.log((await reader.read()).value); // new Uint8Array([0xc0, 0x00])
 * await a.close();
 * console.log((await reader.read()).done); // true
 * ```
 */
export function memoryPair(): [Transport, Transport] {
  const aToB = pipe();
  const bToA = pipe();
  function close(): void {
    aToB.end();
    bToA.end();
  }
  return [
    { readable: bToA.readable, writable: aToB.writable, close },
    { readable: aToB.readable, writable: bToA.writable, close },
  ];
}
