/**
 * @x/mqtt: an MQTT 3.1 / 3.1.1 / 5.0 client and broker written against web standards.
 *
 * This entry point exports the client (`connect`), the error type and the reason codes. The codec is
 * `@x/mqtt/codec`; the broker lands as `@x/mqtt/broker`.
 *
 * @example Connect, subscribe and publish
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker();
 * const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await connect(`mqtt://127.0.0.1:${port}`);
 * const subscription = await client.subscribe("sensors/+");
 * await client.publish("sensors/1", "21.5", { qos: 1 });
 * for await (const message of subscription) {
 *   assert.equal(message.text(), "21.5");
 *   break;
 * }
 * await client.close();
 * await broker.close();
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
export * from "./src/client/mod.ts";
