/**
 * One command for every tool, as the npm package's `x-mqtt` binary and the compiled executable run them:
 * `x-mqtt broker …`, `x-mqtt pub …`, `x-mqtt sub …`, `x-mqtt passwd …`.
 *
 * @module
 */

import { connect } from "../client/connect.ts";
import type { RuntimeProcess } from "../runtime/process_types.ts";
import { runBroker, runPasswd } from "./broker_cli.ts";
import { runClientCommand } from "./client_cli.ts";

/** Help text of the combined command. */
export const MAIN_USAGE: string = `Usage: x-mqtt <command> [options]

  broker [options]    run an MQTT broker (x-mqtt broker --help)
  pub [options]       publish messages, like mosquitto_pub (x-mqtt pub --help)
  sub [options]       subscribe and print messages, like mosquitto_sub (x-mqtt sub --help)
  passwd ...          add, update or delete a user in a password file`;

/**
 * Runs the command the first argument names.
 *
 * @param proc Arguments, output, files and signals.
 * @returns The exit code.
 */
export async function runMain(proc: RuntimeProcess): Promise<number> {
  const [command, ...rest] = proc.args();
  switch (command) {
    case "broker":
      return await runBroker({ ...proc, args: () => rest });
    case "passwd":
      return await runPasswd(proc, rest);
    case "pub":
    case "sub":
      return await runClientCommand(command, rest, proc, (options) => connect(options));
    case "--help":
    case "-h":
      proc.stdout(MAIN_USAGE + "\n");
      return 0;
    default:
      proc.stderr(
        `${command === undefined ? "No command given" : `Unknown command "${command}"`}\n${MAIN_USAGE}\n`,
      );
      return 1;
  }
}
