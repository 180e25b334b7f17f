/**
 * `broker.ts`: run a broker from the command line.
 *
 * @module
 */

import { Broker, type LogLevel } from "../broker/broker.ts";
import type { RuntimeProcess } from "../runtime/process_types.ts";

/** Help text of the broker command. */
export const BROKER_USAGE: string = `Usage: broker.ts [options]

  --host ADDRESS          listen address (default 127.0.0.1)
  --port PORT             TCP port (default 1883; 0 picks a free one)
  --allow-anonymous true|false   accept clients without a user name (default true)
  -v, --verbose           log every connection in detail
  --help                  this text`;

/** Parsed broker arguments. */
export interface BrokerArgs {
  host: string;
  port: number;
  allowAnonymous: boolean;
  verbose: boolean;
}

/**
 * Parses the broker's arguments.
 *
 * @param argv The arguments.
 * @returns The parsed arguments.
 * @throws {Error} With a message naming the bad argument.
 */
export function parseBrokerArgs(argv: readonly string[]): BrokerArgs {
  const args: BrokerArgs = { host: "127.0.0.1", port: 1883, allowAnonymous: true, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case "--host":
        args.host = value();
        break;
      case "--port":
      case "-p": {
        const text = value();
        const port = Number(text);
        if (!/^\d+$/.test(text) || port > 65_535) throw new Error(`--port takes 0 to 65535, not "${text}"`);
        args.port = port;
        break;
      }
      case "--allow-anonymous": {
        const text = value();
        if (text !== "true" && text !== "false") {
          throw new Error(`--allow-anonymous takes true or false, not "${text}"`);
        }
        args.allowAnonymous = text === "true";
        break;
      }
      case "-v":
      case "--verbose":
        args.verbose = true;
        break;
      default:
        throw new Error(`Unknown option "${flag}"`);
    }
  }
  return args;
}

/**
 * Runs the broker until SIGINT or SIGTERM.
 *
 * @param proc Arguments, output and signals.
 * @returns The exit code.
 */
export async function runBroker(proc: RuntimeProcess): Promise<number> {
  const argv = proc.args();
  if (argv.includes("--help")) {
    proc.stdout(BROKER_USAGE + "\n");
    return 0;
  }
  let args: BrokerArgs;
  try {
    args = parseBrokerArgs(argv);
  } catch (error) {
    proc.stderr(`Error: ${(error as Error).message}\n\n${BROKER_USAGE}\n`);
    return 1;
  }
  const levels: LogLevel[] = args.verbose ? ["debug", "info", "warn", "error"] : ["info", "warn", "error"];
  const broker = new Broker({
    allowAnonymous: args.allowAnonymous,
    log: (level, message) => {
      if (levels.includes(level)) proc.stderr(`${new Date().toISOString()} ${level} ${message}\n`);
    },
  });
  try {
    const { hostname, port } = await broker.listen({ hostname: args.host, port: args.port });
    proc.stderr(
      `@x/mqtt broker listening on mqtt://${hostname}:${port} (state in memory, ${
        args.allowAnonymous ? "anonymous clients allowed" : "user name required"
      })\n`,
    );
  } catch (error) {
    proc.stderr(`Error: cannot listen on ${args.host}:${args.port}: ${(error as Error).message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = proc.onInterrupt(() => {
      stop();
      resolve();
    });
  });
  proc.stderr("Shutting down\n");
  await broker.close();
  return 0;
}
