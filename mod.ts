/**
 * @x/mqtt: an MQTT 3.1 / 3.1.1 / 5.0 client and broker written against web standards.
 *
 * This entry point exports the error type, the reason codes and the codec. The client and the broker are
 * exported from `@x/mqtt/client` and `@x/mqtt/broker` as they land.
 *
 * @example Encode a packet
 * ```ts
 * import { encode } from "@x/mqtt";
 * console.log(encode({ type: "pingreq" }, 5)); // Uint8Array(2) [192, 0]
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
export * from "./src/codec/mod.ts";
