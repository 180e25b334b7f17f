/**
 * @x/mqtt: an MQTT 3.1 / 3.1.1 / 5.0 client and broker written against web standards.
 *
 * This entry point exports the client (`connect`), the error type and the reason codes. The codec is
 * `@x/mqtt/codec`; the broker lands as `@x/mqtt/broker`.
 *
 * @example Connect and publish
 * ```ts ignore
 * import { connect } from "@x/mqtt";
 * await using client = await connect("mqtt://localhost:1883");
 * await client.publish("sensors/1", "21.5", { qos: 1 });
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
export * from "./src/client/mod.ts";
