/**
 * `broker.ts`: run a broker from the command line.
 *
 * @module
 */

import { type AclFile, parseAclFile } from "../broker/acl_file.ts";
import { Broker, type LogFields, type LogLevel } from "../broker/broker.ts";
import { hashPassword, parsePasswordFile, type PasswordEntry } from "../broker/password_file.ts";
import type { BridgeOptions } from "../broker/bridge_options.ts";
import type { TlsOptions } from "../client/connect.ts";
import { parseMosquittoConf } from "./mosquitto_conf.ts";
import { readMosquittoConf } from "./mosquitto_include.ts";
import type { BridgeConfig } from "./bridge_config.ts";
import {
  type BrokerConfig,
  type ClusterConfig,
  type ListenerConfig,
  parseBrokerConfig,
  parseClusterConfig,
  parsePersistence,
} from "./broker_config.ts";
import type { Cluster } from "../cluster/cluster.ts";
import { type BrokerStore, openSqliteStore } from "../broker/store.ts";
import type { RuntimeProcess } from "../runtime/process_types.ts";

/** Help text of the broker command. */
export const BROKER_USAGE: string = `Usage: broker.ts [options]

  --host ADDRESS          listen address (default 127.0.0.1)
  --port PORT             TCP port (default 1883; 0 picks a free one)
  --ws-port PORT          also accept MQTT over WebSocket on this port (path /mqtt)
  --http-port PORT        serve GET /metrics (Prometheus) and MQTT over WebSocket (/mqtt) on this port of
                          127.0.0.1 (a configuration file's "http" listener may take another host)
  --tls-port PORT         also accept MQTT over TLS on this port (needs --cert and --key)
  --cert FILE, --key FILE the TLS listener's PEM certificate (chain) and private key
  --persistence memory|sqlite:PATH   where sessions, queued and retained messages live (default memory)
  --allow-anonymous true|false   accept clients without a user name (default true)
  --password-file FILE    users and passwords, in mosquitto_passwd's format
  --admin-user USER       a user of the password file who may use the HTTP listener's admin API (/api/…);
                          may be given more than once
  --acl-file FILE         access rules, in mosquitto's acl_file format
  --max-keepalive SECONDS the longest keep-alive a client may ask for, as mosquitto's max_keepalive: MQTT 5
                          clients asking for more or for 0 are told this one, 3.1.1 and 3.1 clients are
                          refused (default 0: no maximum)
  --max-packet-size BYTES the largest packet a client may send, fixed header included (default 1048576,
                          1 MiB; 0: the protocol's 256 MiB); a larger one is refused from its first bytes
  --cluster URLS          be a node of a cluster on NATS with JetStream (comma-separated nats:// URLs);
                          needs the npm packages @nats-io/transport-node, @nats-io/jetstream, @nats-io/kv
  --node NAME             this node's name in the cluster (default: a random one)
  -c, --config FILE       a JSON configuration: listeners (tcp, tls, ws, wss), users, ACL, limits, logLevel,
                          cluster, bridges; or a mosquitto.conf (a name ending in .conf, or a file not starting
                          with "{"): listeners, users, ACL, limits, persistence and bridges (connection
                          sections), other keys refused
  -v, --verbose           log every connection in detail
  --log-format text|json  json: one object a line (time, level, node, client, event, message)

  broker.ts passwd [-c] FILE USER PASSWORD    add or update a user (-c: create the file anew)
  broker.ts passwd -D FILE USER               delete a user
  --help                  this text`;

/** Parsed broker arguments. */
export interface BrokerArgs {
  host: string;
  port: number;
  allowAnonymous: boolean;
  verbose: boolean;
  /** `--log-format`. */
  logFormat?: "text" | "json";
  passwordFile?: string;
  /** `--admin-user`, each. */
  adminUsers?: string[];
  aclFile?: string;
  wsPort?: number;
  /** `--http-port`. */
  httpPort?: number;
  tlsPort?: number;
  cert?: string;
  key?: string;
  configFile?: string;
  /** `--max-keepalive`: seconds, 0 for no maximum. */
  maxKeepAlive?: number;
  /** `--max-packet-size`: bytes, 0 for the protocol's limit. */
  maxPacketSize?: number;
  persistence?: { sqlite: string };
  /** Whether `--persistence` was given (`memory` leaves `persistence` unset). */
  persistenceGiven?: boolean;
  /** `--cluster` and `--node`. */
  cluster?: ClusterConfig;
  node?: string;
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
      case "--ws-port":
      case "--http-port":
      case "--tls-port": {
        const text = value();
        const port = Number(text);
        if (!/^\d+$/.test(text) || port > 65_535) {
          throw new Error(`${flag} takes 0 to 65535, not "${text}"`);
        }
        if (flag === "--ws-port") args.wsPort = port;
        else if (flag === "--http-port") args.httpPort = port;
        else args.tlsPort = port;
        break;
      }
      case "--max-keepalive": {
        const text = value();
        const seconds = Number(text);
        if (!/^\d+$/.test(text) || seconds > 65_535) {
          throw new Error(`--max-keepalive takes 0 to 65535 seconds, not "${text}"`);
        }
        args.maxKeepAlive = seconds;
        break;
      }
      case "--max-packet-size": {
        const text = value();
        const bytes = Number(text);
        if (!/^\d+$/.test(text) || bytes === 1 || bytes > 268_435_460) {
          throw new Error(`--max-packet-size takes 0 (none) or 2 to 268435460 bytes, not "${text}"`);
        }
        args.maxPacketSize = bytes;
        break;
      }
      case "--cert":
        args.cert = value();
        break;
      case "--key":
        args.key = value();
        break;
      case "--persistence": {
        const persistence = parsePersistence(value(), "--persistence");
        args.persistenceGiven = true;
        if (persistence !== undefined) args.persistence = persistence;
        else delete args.persistence;
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
      case "--log-format": {
        const format = value();
        if (format !== "text" && format !== "json") {
          throw new Error(`--log-format takes text or json, not "${format}"`);
        }
        args.logFormat = format;
        break;
      }
      case "--password-file":
        args.passwordFile = value();
        break;
      case "--admin-user":
        (args.adminUsers ??= []).push(value());
        break;
      case "--acl-file":
        args.aclFile = value();
        break;
      case "--cluster":
        args.cluster = parseClusterConfig(value(), "--cluster");
        break;
      case "--node": {
        const name = value();
        if (!/^[A-Za-z0-9_-]+$/.test(name)) {
          throw new Error(`--node takes letters, digits, - and _, not "${name}"`);
        }
        args.node = name;
        break;
      }
      case "-c":
      case "--config":
        args.configFile = value();
        break;
      default:
        throw new Error(`Unknown option "${flag}"`);
    }
  }
  if (args.tlsPort !== undefined && (args.cert === undefined || args.key === undefined)) {
    throw new Error("--tls-port needs --cert and --key");
  }
  if ((args.cert !== undefined || args.key !== undefined) && args.tlsPort === undefined) {
    throw new Error("--cert and --key need --tls-port");
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
  let config: BrokerConfig;
  try {
    const args = parseBrokerArgs(argv);
    config = await configFrom(args, argv, proc);
  } catch (error) {
    proc.stderr(`Error: ${(error as Error).message}\n`);
    return 1;
  }
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  let passwords: Map<string, PasswordEntry> | undefined;
  let acl: AclFile | undefined;
  const tls = new Map<ListenerConfig, { cert: string; key: string }>();
  const bridges: BridgeOptions[] = [];
  try {
    if (config.passwordFile !== undefined) {
      passwords = parsePasswordFile(decode(await proc.readFile(config.passwordFile)));
    }
    for (const user of config.adminUsers ?? []) {
      if (passwords?.has(user) !== true) {
        throw new Error(`the admin user "${user}" is not in the password file (--password-file)`);
      }
    }
    if (config.aclFile !== undefined) acl = parseAclFile(decode(await proc.readFile(config.aclFile)));
    for (const listener of config.listeners) {
      if (listener.cert !== undefined && listener.key !== undefined) {
        tls.set(listener, {
          cert: decode(await proc.readFile(listener.cert)),
          key: decode(await proc.readFile(listener.key)),
        });
      }
    }
    for (const bridge of config.bridges ?? []) bridges.push(await bridgeOptions(bridge, proc));
  } catch (error) {
    proc.stderr(`Error: ${(error as Error).message}\n`);
    return 1;
  }
  let store: BrokerStore | undefined;
  if (config.persistence !== undefined) {
    try {
      store = await openSqliteStore(config.persistence.sqlite);
    } catch (error) {
      proc.stderr(`Error: cannot open "${config.persistence.sqlite}": ${(error as Error).message}\n`);
      return 1;
    }
  }
  let cluster: Cluster | undefined;
  if (config.cluster !== undefined) {
    try {
      cluster = await joinCluster(config.cluster, proc);
    } catch (error) {
      proc.stderr(`Error: cannot join the cluster: ${(error as Error).message}\n`);
      store?.close();
      return 1;
    }
  }
  const order: LogLevel[] = ["debug", "info", "warn", "error"];
  const json = config.logFormat === "json";
  const threshold = order.indexOf(config.logLevel);
  const broker = new Broker({
    store,
    cluster,
    ...config.limits,
    allowAnonymous: config.allowAnonymous,
    passwords,
    adminUsers: config.adminUsers,
    acl,
    bridges: bridges.length > 0 ? bridges : undefined,
    sysInterval: config.sysInterval,
    queueQoS0: config.queueQoS0,
    allowZeroLengthClientId: config.allowZeroLengthClientId,
    autoIdPrefix: config.autoIdPrefix,
    logPackets: config.logLevel === "debug",
    log: (level, message, fields) => {
      if (order.indexOf(level) >= threshold) proc.stderr(logLine(json, level, message, fields));
    },
  });
  const urls: string[] = [];
  for (const listener of config.listeners) {
    const files = tls.get(listener);
    const websocket = listener.type === "ws" || listener.type === "wss";
    const http = listener.type === "http";
    try {
      const bound = await broker.listen({
        hostname: listener.host,
        port: listener.port,
        websocket,
        http,
        path: listener.path,
        cert: files?.cert,
        key: files?.key,
        maxConnections: listener.maxConnections,
      });
      const scheme = { tcp: "mqtt", tls: "mqtts", ws: "ws", wss: "wss", http: "http" }[listener.type];
      urls.push(`${scheme}://${bound.hostname}:${bound.port}${websocket ? listener.path : ""}`);
    } catch (error) {
      proc.stderr(`Error: cannot listen on ${listener.host}:${listener.port}: ${(error as Error).message}\n`);
      await broker.close();
      return 1;
    }
  }
  const started = `@x/mqtt broker${cluster ? ` node "${cluster.node}"` : ""} listening on ${
    urls.join(" and ")
  } (state ${config.persistence === undefined ? "in memory" : `in sqlite:${config.persistence.sqlite}`}, ${
    config.allowAnonymous ? "anonymous clients allowed" : "user name required"
  }${passwords ? `, ${passwords.size} users` : ""}${acl ? ", ACL on" : ""}${
    bridges.length > 0 ? `, bridges ${bridges.map((b) => `${b.name} to ${b.urls.join(" ")}`).join(", ")}` : ""
  })`;
  proc.stderr(
    json
      ? logLine(true, "info", started, { event: "listening", ...cluster ? { node: cluster.node } : {} })
      : `${started}\n`,
  );
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

/** The configuration: the file's when `--config` is given, the flags' otherwise; flags override the file. */
async function configFrom(
  args: BrokerArgs,
  argv: readonly string[],
  proc: RuntimeProcess,
): Promise<BrokerConfig> {
  const given = (flag: string) => argv.includes(flag);
  let config: BrokerConfig;
  if (args.configFile !== undefined) {
    if (["--host", "--port", "-p", "--ws-port", "--http-port", "--tls-port"].some(given)) {
      throw new Error(
        "--host, --port, --ws-port, --http-port and --tls-port cannot be combined with --config: set the file's listeners",
      );
    }
    let text: string;
    try {
      text = new TextDecoder().decode(await proc.readFile(args.configFile));
    } catch (error) {
      throw new Error(`cannot read configuration file "${args.configFile}": ${(error as Error).message}`);
    }
    if (isMosquittoConf(args.configFile, text)) {
      const conf = await readMosquittoConf(args.configFile, text, proc);
      try {
        config = parseMosquittoConf(conf.text, {
          hostname: () => proc.hostname(),
          onNote: (line, note) => proc.stderr(`Note: ${conf.locate(`line ${line}`)}: ${note}\n`),
        });
      } catch (error) {
        throw new Error(conf.locate((error as Error).message));
      }
    } else config = parseBrokerConfig(text);
  } else {
    config = {
      listeners: [{ type: "tcp", host: args.host, port: args.port }],
      allowAnonymous: true,
      limits: {},
      logLevel: "info",
    };
    if (args.wsPort !== undefined) {
      config.listeners.push({ type: "ws", host: args.host, port: args.wsPort, path: "/mqtt" });
    }
    if (args.httpPort !== undefined) {
      // Pages and figures of the broker: on loopback unless a configuration file says otherwise.
      config.listeners.push({ type: "http", host: "127.0.0.1", port: args.httpPort, path: "/mqtt" });
    }
    if (args.tlsPort !== undefined) {
      config.listeners.push({
        type: "tls",
        host: args.host,
        port: args.tlsPort,
        cert: args.cert,
        key: args.key,
      });
    }
  }
  if (args.persistenceGiven) {
    if (args.persistence === undefined) delete config.persistence;
    else config.persistence = args.persistence;
  }
  if (given("--allow-anonymous")) config.allowAnonymous = args.allowAnonymous;
  if (args.passwordFile !== undefined) config.passwordFile = args.passwordFile;
  if (args.adminUsers !== undefined) config.adminUsers = [...config.adminUsers ?? [], ...args.adminUsers];
  if (args.aclFile !== undefined) config.aclFile = args.aclFile;
  if (args.maxKeepAlive !== undefined) config.limits = { ...config.limits, maxKeepAlive: args.maxKeepAlive };
  if (args.maxPacketSize !== undefined) {
    config.limits = { ...config.limits, maximumPacketSize: args.maxPacketSize };
  }
  if (args.verbose) config.logLevel = "debug";
  if (args.logFormat !== undefined) config.logFormat = args.logFormat;
  if (args.cluster !== undefined) config.cluster = { ...config.cluster, ...args.cluster };
  if (args.node !== undefined) {
    if (config.cluster === undefined) throw new Error("--node needs --cluster (or a cluster section)");
    config.cluster = { ...config.cluster, node: args.node };
  }
  return config;
}

/** Whether a configuration file is a mosquitto.conf: named `*.conf`, or not starting with `{` (JSON's object). */
function isMosquittoConf(file: string, text: string): boolean {
  if (file.endsWith(".conf")) return true;
  const first = text.split(/\r?\n/).map((line) => line.trim()).find((line) =>
    line !== "" && !line.startsWith("#")
  );
  return first !== undefined && !first.startsWith("{");
}

/** A bridge of the configuration with its TLS files read. */
async function bridgeOptions(config: BridgeConfig, proc: RuntimeProcess): Promise<BridgeOptions> {
  const { tls: files, ...rest } = config;
  const bridge: BridgeOptions = rest;
  if (files !== undefined) {
    const read = async (file: string, what: string) => {
      try {
        return new TextDecoder().decode(await proc.readFile(file));
      } catch (error) {
        throw new Error(
          `cannot read the ${what} of bridge ${config.name}, "${file}": ${(error as Error).message}`,
        );
      }
    };
    const tls: TlsOptions = {};
    const caCerts: string[] = [];
    if (files.ca !== undefined) caCerts.push(await read(files.ca, "CA file"));
    if (files.caPath !== undefined) caCerts.push(...await caDirectory(files.caPath, config.name, proc));
    if (caCerts.length > 0) tls.caCerts = caCerts;
    if (files.cert !== undefined) tls.cert = await read(files.cert, "certificate");
    if (files.key !== undefined) tls.key = await read(files.key, "key");
    if (files.serverName !== undefined) tls.serverName = files.serverName;
    if (files.insecure !== undefined) tls.insecure = files.insecure;
    bridge.tls = tls;
  }
  return bridge;
}

/**
 * The CA certificates of a directory (mosquitto's `bridge_capath`): each file in it that holds one or more PEM
 * certificates, once each (OpenSSL's hashed names are links to the same files).
 */
async function caDirectory(dir: string, bridge: string, proc: RuntimeProcess): Promise<string[]> {
  let names: string[];
  try {
    names = await proc.readDir(dir);
  } catch (error) {
    throw new Error(
      `cannot read the CA directory of bridge ${bridge}, "${dir}": ${(error as Error).message}`,
    );
  }
  const certificates = new Set<string>();
  for (const name of names.sort()) {
    let text: string;
    try {
      text = new TextDecoder().decode(await proc.readFile(`${dir.replace(/\/+$/, "")}/${name}`));
    } catch {
      continue; // a subdirectory, or a link to nothing
    }
    if (text.includes("-----BEGIN CERTIFICATE-----")) certificates.add(text);
  }
  if (certificates.size === 0) {
    throw new Error(`the CA directory of bridge ${bridge}, "${dir}", holds no PEM certificate`);
  }
  return [...certificates];
}

/** Connects to NATS as the configuration says, reading its credentials and TLS files. */
async function joinCluster(config: ClusterConfig, proc: RuntimeProcess): Promise<Cluster> {
  const read = async (file: string | undefined) =>
    file === undefined ? undefined : new TextDecoder().decode(await proc.readFile(file));
  const { natsCluster } = await import("../cluster/mod.ts");
  return await natsCluster({
    servers: config.servers,
    node: config.node,
    prefix: config.prefix,
    heartbeatMs: config.heartbeatMs,
    credentials: await read(config.credentials),
    user: config.user,
    pass: config.password,
    token: config.token,
    tls: config.tls === undefined ? undefined : {
      ca: await read(config.tls.ca),
      cert: await read(config.tls.cert),
      key: await read(config.tls.key),
    },
  });
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

/**
 * One log line: `TIME LEVEL MESSAGE`, or with `json` one JSON object (time, level, node, client, event,
 * message; a cluster node's `[node] ` prefix left out of the message, since `node` holds it).
 */
function logLine(json: boolean, level: LogLevel, message: string, fields: LogFields | undefined): string {
  const time = new Date().toISOString();
  if (!json) return `${time} ${level} ${message}\n`;
  const node = fields?.node;
  const text = node !== undefined && message.startsWith(`[${node}] `)
    ? message.slice(node.length + 3)
    : message;
  return `${
    JSON.stringify({ time, level, node, client: fields?.client, event: fields?.event, message: text })
  }\n`;
}
