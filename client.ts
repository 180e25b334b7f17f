/**
 * The MQTT client, and `pub` / `sub` command-line tools in the spirit of mosquitto_pub and mosquitto_sub:
 *
 * ```sh
 * deno run -A client.ts sub -t 'sensors/#' -v
 * deno run -A client.ts pub -t sensors/1 -m 21.5 -q 1
 * ```
 *
 * @example Connect and publish
 * ```ts ignore
 * import { connect } from "@x/mqtt/client";
 * await using client = await connect("mqtt://localhost:1883");
 * await client.publish("sensors/1", "21.5", { qos: 1 });
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
