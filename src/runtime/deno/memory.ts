/**
 * The JavaScript heap on Deno.
 *
 * @module
 */

/** Bytes of V8 heap in use. */
export function heapUsed(): number {
  return Deno.memoryUsage().heapUsed;
}
