/**
 * The MQTT broker, and its command line:
 *
 * ```sh
 * deno run -A broker.ts --port 1883
 * ```
 *
 * @example Embed a broker
 * ```ts ignore
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker();
 * await broker.listen({ port: 1883 });
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
