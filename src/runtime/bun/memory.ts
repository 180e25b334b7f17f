/**
 * The JavaScript heap on Bun.
 *
 * @module
 */

import { heapStats } from "bun:jsc";

/** Bytes of JavaScriptCore heap in use. */
export function heapUsed(): number {
  return heapStats().heapSize;
}
