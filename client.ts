/**
 * The MQTT client, and `pub` / `sub` command-line tools in the spirit of mosquitto_pub and mosquitto_sub:
 *
 * ```sh
 * deno run -A client.ts sub -t 'sensors/#' -v
 * deno run -A client.ts pub -t sensors/1 -m 21.5 -q 1
 * ```
 *
 * @example Publish a retained message, then read it back
 * ```ts
 * import assert from "node:assert/strict";
 * import { Broker } from "@x/mqtt/broker";
 * import { connect } from "@x/mqtt/client";
 * const broker = new Broker();
 * const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await connect(`mqtt://127.0.0.1:${port}`);
 * await client.publish("sensors/1", "21.5", { qos: 1, retain: true });
 * const subscription = await client.subscribe("sensors/1");
 * for await (const message of subscription) {
 *   assert.equal(message.retain, true);
 *   assert.equal(message.text(), "21.5");
 *   break;
 * }
 * await client.close();
 * await broker.close();
 * ```
 *
 * @module
 */

import { runClientCommand } from "./src/cli/client_cli.ts";
import { connect } from "./src/client/connect.ts";
import { runtimeProcess } from "./src/runtime/process.ts";

export * from "./src/client/mod.ts";
export { MqttError, ReasonCode } from "./src/errors.ts";

if (import.meta.main) {
  const proc = await runtimeProcess();
  const [command, ...rest] = proc.args();
  if (command === "pub" || command === "sub") {
    proc.exit(await runClientCommand(command, rest, proc, (options) => connect(options)));
  } else {
    proc.stderr("Usage: client.ts pub|sub [options]   (client.ts pub --help for the options)\n");
    proc.exit(1);
  }
}
