/**
 * Byte helpers shared by every layer.
 *
 * @module
 */

/**
 * Joins byte arrays into one new array.
 *
 * @param parts The arrays, in order.
 * @returns A new array holding all of them.
 *
 * @example Join two chunks
 * ```ts
 * import assert from "node:assert/strict";
 * import { concat } from "./bytes.ts";
 * assert.deepEqual(concat([Uint8Array.of(1), Uint8Array.of(2, 3)]), Uint8Array.of(1, 2, 3));
 * ```
 */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** The buffer small copies are carved from, and the largest copy taken from it. */
const POOL_SIZE = 8192;
const POOLED_UP_TO = 1024;
let pool: Uint8Array | undefined;
let poolUsed = 0;

/**
 * Copies bytes into memory of their own, which keeps nothing else alive: what a received message's payload
 * needs, so that it does not pin the 64 KiB chunk it was read in. Copies of up to 1 KiB are carved out of a
 * shared 8 KiB buffer (as Node's `Buffer` pool does), because a buffer of its own costs an allocation outside
 * the JavaScript heap that is three to five times slower on Deno (and on Node above 64 bytes); so the copy's
 * `buffer` may hold other copies too: read it through `byteOffset` and `byteLength`.
 *
 * @param bytes The bytes.
 * @returns A copy, a view of its own range.
 *
 * @example Keep a payload without its chunk
 * ```ts
 * import assert from "node:assert/strict";
 * import { ownCopy } from "./bytes.ts";
 * const chunk = Uint8Array.of(9, 1, 2, 9);
 * const payload = ownCopy(chunk.subarray(1, 3));
 * chunk.fill(0);
 * assert.deepEqual(payload, Uint8Array.of(1, 2));
 * ```
 */
export function ownCopy(bytes: Uint8Array): Uint8Array {
  const length = bytes.length;
  if (length > POOLED_UP_TO) return bytes.slice();
  if (pool === undefined || poolUsed + length > POOL_SIZE) {
    pool = new Uint8Array(POOL_SIZE);
    poolUsed = 0;
  }
  const copy = pool.subarray(poolUsed, poolUsed + length);
  poolUsed += length;
  copy.set(bytes);
  return copy;
}
