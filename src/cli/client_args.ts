/**
 * Arguments of `client.ts pub|sub`, in the spirit of mosquitto_pub and mosquitto_sub.
 *
 * @module
 */

import type {
  ConnectProperties,
  ProtocolVersion,
  PublishProperties,
  QoS,
  UserProperty,
} from "../codec/packet.ts";
import { parseBrokerUrl } from "../client/url.ts";

/** Where a publish's payload comes from. */
export type PayloadSource =
  | { kind: "message"; text: string }
  | { kind: "file"; path: string }
  | { kind: "null" }
  | { kind: "stdin-lines" }
  | { kind: "stdin-whole" };

/** Parsed arguments of the pub and sub commands. */
export interface ClientArgs {
  command: "pub" | "sub";
  url: string;
  clientId?: string;
  username?: string;
  password?: string;
  keepAlive: number;
  protocolVersion: ProtocolVersion;
  qos: QoS;
  topics: string[];
  retain: boolean;
  cleanStart: boolean;
  payload?: PayloadSource;
  /** sub: print the topic before the payload. */
  verbose: boolean;
  /** sub: no newline after each payload. */
  noNewline: boolean;
  /** sub: exit after this many messages. */
  count?: number;
  /** sub: exit after this many seconds. */
  timeoutSeconds?: number;
  debug: boolean;
  will?: { topic: string; payload: string; qos: QoS; retain: boolean };
  tls: { cafile?: string; cert?: string; key?: string; insecure: boolean };
  connectProperties: ConnectProperties;
  publishProperties: PublishProperties;
  subscribeUserProperties: UserProperty[];
}

/** Help text for the pub and sub commands. */
export const CLIENT_USAGE: string = `Usage:
  client.ts pub {-t topic} [-m message | -f file | -n | -l | -s] [options]
  client.ts sub {-t topic ...} [-v] [-C count] [-W seconds] [options]

Connection:
  -h host        broker host (default localhost)      -p port    broker port (default 1883)
  -L url         mqtt[s]|ws[s]://[user[:password]@]host[:port][/path] instead of -h/-p/-u/-P
  -i id          client id (default: random)          -k secs    keep-alive (default 60)
  -u user        user name                            -P pass    password
  -V 31|311|5    protocol version (default 5)         -c         keep the session (no clean start)
  --cafile FILE  trust these CAs (TLS)                --cert FILE --key FILE   client certificate
  --insecure     do not verify the server certificate
  --will-topic T --will-payload P --will-qos Q --will-retain
  -D command property value...   MQTT 5 property, e.g. -D publish user-property key value
Publishing:
  -t topic  -q 0|1|2  -r (retain)  -m text  -f file  -n (empty message)  -l (one message per stdin line)
  -s (whole stdin as one message)
Subscribing:
  -t filter (repeatable)  -q 0|1|2  -v (print topics)  -N (no newline)  -C count  -W seconds
Other:
  -d  debug output     --help  this text`;

/** An error in the arguments: the CLI prints it with the usage and exits with 1. */
export class UsageError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function qosOf(value: string, flag: string): QoS {
  if (value !== "0" && value !== "1" && value !== "2") {
    throw new UsageError(`${flag} takes 0, 1 or 2, not "${value}"`);
  }
  return Number(value) as QoS;
}

function integerOf(value: string, flag: string, minimum: number, maximum: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < minimum || n > maximum) {
    throw new UsageError(`${flag} takes a whole number from ${minimum} to ${maximum}, not "${value}"`);
  }
  return n;
}

function versionOf(value: string): ProtocolVersion {
  switch (value) {
    case "31":
    case "mqttv31":
      return 3;
    case "311":
    case "mqttv311":
      return 4;
    case "5":
    case "mqttv5":
      return 5;
    default:
      throw new UsageError(`-V takes 31, 311 or 5, not "${value}"`);
  }
}

/**
 * Parses `pub` or `sub` arguments (everything after the command name).
 *
 * @param command `pub` or `sub`.
 * @param argv The arguments.
 * @returns The parsed arguments.
 * @throws {UsageError} When an argument is unknown, lacks its value, or the combination is invalid.
 *
 * @example Parse a publish
 * ```ts
 * import { parseClientArgs } from "./client_args.ts";
 * const args = parseClientArgs("pub", ["-t", "sensors/1", "-m", "21.5", "-q", "1"]);
 * console.log(args.topics, args.qos, args.url); // ["sensors/1"] 1 "mqtt://localhost:1883"
 * ```
 */
export function parseClientArgs(command: "pub" | "sub", argv: readonly string[]): ClientArgs {
  let host = "localhost";
  let port: number | undefined;
  let url: string | undefined;
  const args: ClientArgs = {
    command,
    url: "",
    keepAlive: 60,
    protocolVersion: 5,
    qos: 0,
    topics: [],
    retain: false,
    cleanStart: true,
    verbose: false,
    noNewline: false,
    debug: false,
    tls: { insecure: false },
    connectProperties: {},
    publishProperties: {},
    subscribeUserProperties: [],
  };
  const will: { topic?: string; payload: string; qos: QoS; retain: boolean } = {
    payload: "",
    qos: 0,
    retain: false,
  };
  const setPayload = (payload: PayloadSource) => {
    if (args.payload !== undefined) throw new UsageError("Give only one of -m, -f, -n, -l and -s");
    args.payload = payload;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case "-h":
      case "--host":
        host = value();
        break;
      case "-p":
      case "--port":
        port = integerOf(value(), flag, 1, 65_535);
        break;
      case "-L":
      case "--url":
        url = value();
        break;
      case "-i":
      case "--id":
        args.clientId = value();
        break;
      case "-u":
      case "--username":
        args.username = value();
        break;
      case "-P":
      case "--pw":
        args.password = value();
        break;
      case "-k":
      case "--keepalive":
        args.keepAlive = integerOf(value(), flag, 0, 65_535);
        break;
      case "-V":
      case "--protocol-version":
        args.protocolVersion = versionOf(value());
        break;
      case "-q":
      case "--qos":
        args.qos = qosOf(value(), flag);
        break;
      case "-t":
      case "--topic":
        args.topics.push(value());
        break;
      case "-r":
      case "--retain":
        args.retain = true;
        break;
      case "-c":
      case "--disable-clean-session":
        args.cleanStart = false;
        break;
      case "-m":
      case "--message":
        setPayload({ kind: "message", text: value() });
        break;
      case "-f":
      case "--file":
        setPayload({ kind: "file", path: value() });
        break;
      case "-n":
      case "--null-message":
        setPayload({ kind: "null" });
        break;
      case "-l":
      case "--stdin-line":
        setPayload({ kind: "stdin-lines" });
        break;
      case "-s":
      case "--stdin-file":
        setPayload({ kind: "stdin-whole" });
        break;
      case "-v":
      case "--verbose":
        args.verbose = true;
        break;
      case "-N":
        args.noNewline = true;
        break;
      case "-C":
        args.count = integerOf(value(), flag, 1, Number.MAX_SAFE_INTEGER);
        break;
      case "-W":
        args.timeoutSeconds = integerOf(value(), flag, 1, 2_147_483);
        break;
      case "-d":
      case "--debug":
        args.debug = true;
        break;
      case "--will-topic":
        will.topic = value();
        break;
      case "--will-payload":
        will.payload = value();
        break;
      case "--will-qos":
        will.qos = qosOf(value(), flag);
        break;
      case "--will-retain":
        will.retain = true;
        break;
      case "--cafile":
        args.tls.cafile = value();
        break;
      case "--cert":
        args.tls.cert = value();
        break;
      case "--key":
        args.tls.key = value();
        break;
      case "--insecure":
        args.tls.insecure = true;
        break;
      case "-D":
      case "--property":
        i = parseProperty(args, argv, i);
        break;
      default:
        throw new UsageError(`Unknown option "${flag}"`);
    }
  }
  if (args.topics.length === 0) throw new UsageError("Give a topic with -t");
  if (command === "pub") {
    if (args.topics.length > 1) throw new UsageError("pub takes exactly one -t topic");
    if (args.payload === undefined) throw new UsageError("pub needs one of -m, -f, -n, -l or -s");
  } else if (args.payload !== undefined) {
    throw new UsageError("sub does not take -m, -f, -n, -l or -s");
  }
  if (will.topic !== undefined) {
    args.will = { topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain };
  } else if (will.payload !== "" || will.retain) {
    throw new UsageError("--will-payload and --will-retain need --will-topic");
  }
  if ((args.tls.cert === undefined) !== (args.tls.key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  if (url !== undefined) {
    try {
      const address = parseBrokerUrl(url);
      args.username ??= address.username;
      args.password ??= address.password;
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    args.url = url;
  } else {
    const tls = args.tls.cafile !== undefined || args.tls.cert !== undefined || args.tls.insecure;
    const scheme = tls ? "mqtts" : "mqtt";
    const hostPart = host.includes(":") ? `[${host}]` : host;
    args.url = `${scheme}://${hostPart}:${port ?? (tls ? 8883 : 1883)}`;
  }
  if (
    args.protocolVersion !== 5 &&
    (Object.keys(args.connectProperties).length > 0 || Object.keys(args.publishProperties).length > 0)
  ) {
    throw new UsageError("-D properties need -V 5");
  }
  return args;
}

/** Parses `-D command property value [value]` starting at `argv[i]` (the -D); returns the last index used. */
function parseProperty(args: ClientArgs, argv: readonly string[], i: number): number {
  const take = (): string => {
    const next = argv[++i];
    if (next === undefined) throw new UsageError("-D needs a command, a property and a value");
    return next;
  };
  const command = take();
  const name = take();
  const connect = args.connectProperties;
  const publish = args.publishProperties;
  const pair = (): UserProperty => [take(), take()];
  switch (`${command} ${name}`) {
    case "connect session-expiry-interval":
      connect.sessionExpiryInterval = integerOf(take(), "-D connect session-expiry-interval", 0, 0xffff_ffff);
      break;
    case "connect receive-maximum":
      connect.receiveMaximum = integerOf(take(), "-D connect receive-maximum", 1, 65_535);
      break;
    case "connect maximum-packet-size":
      connect.maximumPacketSize = integerOf(take(), "-D connect maximum-packet-size", 1, 0xffff_ffff);
      break;
    case "connect topic-alias-maximum":
      connect.topicAliasMaximum = integerOf(take(), "-D connect topic-alias-maximum", 0, 65_535);
      break;
    case "connect request-problem-information":
      connect.requestProblemInformation = integerOf(take(), name, 0, 1) === 1;
      break;
    case "connect request-response-information":
      connect.requestResponseInformation = integerOf(take(), name, 0, 1) === 1;
      break;
    case "connect user-property":
      (connect.userProperties ??= []).push(pair());
      break;
    case "publish content-type":
      publish.contentType = take();
      break;
    case "publish response-topic":
      publish.responseTopic = take();
      break;
    case "publish correlation-data":
      publish.correlationData = new TextEncoder().encode(take());
      break;
    case "publish message-expiry-interval":
      publish.messageExpiryInterval = integerOf(take(), "-D publish message-expiry-interval", 0, 0xffff_ffff);
      break;
    case "publish payload-format-indicator":
      publish.payloadFormatIndicator = integerOf(take(), name, 0, 1) === 1;
      break;
    case "publish user-property":
      (publish.userProperties ??= []).push(pair());
      break;
    case "subscribe user-property":
      args.subscribeUserProperties.push(pair());
      break;
    default:
      throw new UsageError(`-D ${command} ${name} is not supported`);
  }
  return i;
}
