/**
 * Byte helpers of the async client: text payloads as UTF-8, bytes as hex, byte-wise equality. Pure functions,
 * no state.
 *
 * @module
 */

const encoder = new TextEncoder();

/** A payload or password as bytes: text is encoded as UTF-8, bytes are passed through. */
export function toBytes(payload: string | Uint8Array): Uint8Array {
  return typeof payload === "string" ? encoder.encode(payload) : payload;
}

/** Whether two optional byte strings hold the same bytes. */
export function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  return a.every((byte, i) => byte === b[i]);
}

/** Lower-case hex digits of the bytes. */
export function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}
