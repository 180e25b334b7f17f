/**
 * Memory use of this process, read the same way on Deno, Bun and Node: all three provide `node:process`.
 *
 * @module
 */

import process from "node:process";

/**
 * Bytes of JavaScript heap in use (`process.memoryUsage().heapUsed`): V8's heap on Deno and Node, JavaScriptCore's
 * on Bun. Buffers outside the heap (most payloads) are not counted.
 *
 * @returns The heap in use, in bytes.
 *
 * @example Read the heap in use
 * ```ts
 * import assert from "node:assert/strict";
 * import { heapUsed } from "./memory.ts";
 * assert.ok(heapUsed() > 0);
 * ```
 */
export function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}
