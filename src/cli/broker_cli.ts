/**
 * `broker.ts`: run a broker from the command line.
 *
 * @module
 */

import { type AclFile, parseAclFile } from "../broker/acl_file.ts";
import { Broker, type LogLevel } from "../broker/broker.ts";
import { hashPassword, parsePasswordFile, type PasswordEntry } from "../broker/password_file.ts";
import type { RuntimeProcess } from "../runtime/process_types.ts";

/** Help text of the broker command. */
export const BROKER_USAGE: string = `Usage: broker.ts [options]

  --host ADDRESS          listen address (default 127.0.0.1)
  --port PORT             TCP port (default 1883; 0 picks a free one)
  --ws-port PORT          also accept MQTT over WebSocket on this port (path /mqtt)
  --allow-anonymous true|false   accept clients without a user name (default true)
  --password-file FILE    users and passwords, in mosquitto_passwd's format
  --acl-file FILE         access rules, in mosquitto's acl_file format
  -v, --verbose           log every connection in detail

  broker.ts passwd [-c] FILE USER PASSWORD    add or update a user (-c: create the file anew)
  broker.ts passwd -D FILE USER               delete a user
  --help                  this text`;

/** Parsed broker arguments. */
export interface BrokerArgs {
  host: string;
  port: number;
  allowAnonymous: boolean;
  verbose: boolean;
  passwordFile?: string;
  aclFile?: string;
  wsPort?: number;
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
      case "--ws-port": {
        const text = value();
        const port = Number(text);
        if (!/^\d+$/.test(text) || port > 65_535) {
          throw new Error(`--ws-port takes 0 to 65535, not "${text}"`);
        }
        args.wsPort = port;
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
      case "--password-file":
        args.passwordFile = value();
        break;
      case "--acl-file":
        args.aclFile = value();
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
  if (argv[0] === "passwd") return await runPasswd(proc, argv.slice(1));
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
  let passwords: Map<string, PasswordEntry> | undefined;
  if (args.passwordFile !== undefined) {
    try {
      passwords = parsePasswordFile(new TextDecoder().decode(await proc.readFile(args.passwordFile)));
    } catch (error) {
      proc.stderr(`Error: cannot use password file "${args.passwordFile}": ${(error as Error).message}\n`);
      return 1;
    }
  }
  let acl: AclFile | undefined;
  if (args.aclFile !== undefined) {
    try {
      acl = parseAclFile(new TextDecoder().decode(await proc.readFile(args.aclFile)));
    } catch (error) {
      proc.stderr(`Error: cannot use ACL file "${args.aclFile}": ${(error as Error).message}\n`);
      return 1;
    }
  }
  const levels: LogLevel[] = args.verbose ? ["debug", "info", "warn", "error"] : ["info", "warn", "error"];
  const broker = new Broker({
    allowAnonymous: args.allowAnonymous,
    passwords,
    acl,
    log: (level, message) => {
      if (levels.includes(level)) proc.stderr(`${new Date().toISOString()} ${level} ${message}\n`);
    },
  });
  try {
    const { hostname, port } = await broker.listen({ hostname: args.host, port: args.port });
    let also = "";
    if (args.wsPort !== undefined) {
      const ws = await broker.listen({ hostname: args.host, port: args.wsPort, websocket: true });
      also = ` and ws://${ws.hostname}:${ws.port}/mqtt`;
    }
    proc.stderr(
      `@x/mqtt broker listening on mqtt://${hostname}:${port}${also} (state in memory, ${
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

/**
 * `broker.ts passwd`: adds, updates or deletes a user in a password file, writing lines mosquitto accepts.
 *
 * @param proc Files and output.
 * @param argv `[-c] FILE USER PASSWORD` or `-D FILE USER`.
 * @returns The exit code.
 */
export async function runPasswd(proc: RuntimeProcess, argv: readonly string[]): Promise<number> {
  const create = argv.includes("-c");
  const remove = argv.includes("-D");
  const rest = argv.filter((a) => a !== "-c" && a !== "-D");
  const [file, user, password] = rest;
  if (file === undefined || user === undefined || (!remove && password === undefined) || rest.length > 3) {
    proc.stderr("Usage: broker.ts passwd [-c] FILE USER PASSWORD | broker.ts passwd -D FILE USER\n");
    return 1;
  }
  if (user.includes(":")) {
    proc.stderr(`Error: a user name cannot contain ":"\n`);
    return 1;
  }
  let lines: string[] = [];
  if (!create) {
    try {
      lines = new TextDecoder().decode(await proc.readFile(file)).split(/\r?\n/).filter((line) =>
        line !== ""
      );
    } catch (error) {
      proc.stderr(`Error: cannot read "${file}": ${(error as Error).message} (use -c to create it)\n`);
      return 1;
    }
  }
  const kept = lines.filter((line) => !line.startsWith(`${user}:`));
  if (remove && kept.length === lines.length) {
    proc.stderr(`Warning: user "${user}" is not in "${file}"\n`);
  }
  if (!remove) kept.push(`${user}:${await hashPassword(password as string)}`);
  await proc.writeFile(file, new TextEncoder().encode(kept.map((line) => line + "\n").join("")));
  return 0;
}
