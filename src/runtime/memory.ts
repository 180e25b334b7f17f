/**
 * Picks this runtime's reading of its JavaScript heap (`{deno,bun,node}/memory.ts`), loaded with a dynamic
 * `import()`.
 *
 * @module
 */

/**
 * Loads the heap reading of the runtime this code runs on: bytes of JavaScript heap in use, V8's on Deno and
 * Node, JavaScriptCore's on Bun. Buffers outside the heap (most payloads) are not counted.
 *
 * @returns A function that reads the heap in use, in bytes.
 *
 * @example Read the heap in use
 * ```ts
 * import assert from "node:assert/strict";
 * import { runtimeHeapUsed } from "./memory.ts";
 * const heapUsed = await runtimeHeapUsed();
 * assert.ok(heapUsed() > 0);
 * ```
 */
export async function runtimeHeapUsed(): Promise<() => number> {
  if ("Deno" in globalThis) return (await import("./deno/memory.ts")).heapUsed;
  if ("Bun" in globalThis) return (await import("./bun/memory.ts")).heapUsed;
  return (await import("./node/memory.ts")).heapUsed;
}
