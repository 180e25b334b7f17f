/**
 * The MQTT broker, and its command line:
 *
 * ```sh
 * deno run -A broker.ts --port 1883
 * ```
 *
 * @example Embed a broker
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker();
 * const { hostname, port } = await broker.listen({ port: 0 }); // 127.0.0.1 and a free port
 * assert.equal(hostname, "127.0.0.1");
 * const client = await connect(`mqtt://${hostname}:${port}`);
 * assert.equal(broker.connectionCount, 1);
 * await client.close();
 * await broker.close();
 * ```
 *
 * @module
 */

import { runBroker } from "./src/cli/broker_cli.ts";
import { runtimeProcess } from "./src/runtime/process.ts";

export * from "./src/broker/mod.ts";
export { MqttError, ReasonCode } from "./src/errors.ts";

if (import.meta.main) {
  const proc = await runtimeProcess();
  proc.exit(await runBroker(proc));
}
