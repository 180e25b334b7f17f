/**
 * The JavaScript heap on Node.
 *
 * @module
 */

import process from "node:process";

/** Bytes of V8 heap in use. */
export function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}
