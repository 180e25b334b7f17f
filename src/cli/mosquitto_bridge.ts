/**
 * The bridge sections of a mosquitto.conf (`parseMosquittoConf`): a section starts at a `connection NAME` line,
 * and the bridge keys after it are that bridge's, until the next `connection`. Bridge keys:
 *
 * | Key | Here |
 * | --- | --- |
 * | `connection NAME` | `name` |
 * | `address`, `addresses` | `urls`: each `host[:port]`, separated by spaces or commas, is `mqtt://host:port`, or `mqtts://` when `bridge_cafile`, `bridge_capath` or `bridge_certfile` is set; port 1883 by default (as mosquitto, even with TLS); IPv6 as `[::1]:1883` or `::1:1883` |
 * | `topic` | one of `topics`: `topic PATTERN [[[out\|in\|both] QOS] LOCAL-PREFIX [REMOTE-PREFIX]]`, `""` for an empty pattern or prefix |
 * | `bridge_protocol_version` | `protocolVersion`: `mqttv31` 3, `mqttv311` 4, `mqttv50` 5 |
 * | `remote_clientid`, `clientid` | `clientId`; default `HOSTNAME.NAME`, as mosquitto does (its manual says `NAME.HOSTNAME`) |
 * | `local_clientid` | `localClientId` |
 * | `local_username` | `localUsername`: the ACL applies to the bridge's side here as that user |
 * | `local_password` | ignored: the bridge's side here is not asked for a password |
 * | `remote_username`, `username`, `remote_password`, `password` | `username`, `password` (a password needs a username) |
 * | `cleansession` | `cleanStart` |
 * | `keepalive_interval` | `keepAlive` (5 to 65535) |
 * | `try_private`, `notifications`, `notification_topic`, `notifications_local_only` | `tryPrivate`, `notifications`, `notificationTopic`, `notificationsLocalOnly` |
 * | `restart_timeout BASE CAP`, `restart_timeout CONSTANT` | `restartTimeout` (a constant is base and cap) |
 * | `bridge_cafile`, `bridge_capath`, `bridge_certfile`, `bridge_keyfile` | `tls.ca`, `tls.caPath`, `tls.cert`, `tls.key` (certfile and keyfile go together) |
 * | `bridge_insecure` | `tls.insecure`: this skips the whole verification of the remote's certificate, not only its host name |
 * | `round_robin true` | nothing (bridges go round robin); `false` refused with several addresses (several addresses without `round_robin` go round robin too) |
 * | `start_type`, `threshold`, `idle_timeout` | `startType` (`automatic`, `lazy`, `once`), `threshold`, `idleTimeout` |
 * | `bridge_tls_version tlsv1.2\|tlsv1.3` | ignored: TLS 1.2 or later is negotiated; other versions refused |
 * | `bridge_outgoing_retain true` | nothing (the default); `false` refused |
 * | `bridge_attempt_unsubscribe` | ignored |
 * | `bridge_alpn`, `bridge_bind_address`, `bridge_identity`, `bridge_psk`, `bridge_require_ocsp`, `bridge_max_packet_size`, `local_cleansession`, any other | refused |
 *
 * @module
 */

import type { BridgeTopic } from "../broker/bridge_options.ts";
import { type BridgeConfig, bridgeNameProblem, bridgeTopicProblem } from "./bridge_config.ts";
import type { ConfLine, MosquittoConfOptions } from "./mosquitto_conf.ts";
import { topicNameProblem } from "../codec/topic.ts";

/** A bridge as the file builds it. */
export interface BridgeDraft {
  line: number;
  name: string;
  addresses: string[];
  topics: BridgeTopic[];
  seen: Set<string>;
  clientId?: string;
  localClientId?: string;
  username?: string;
  password?: string;
  protocolVersion?: 3 | 4 | 5;
  cleanStart?: boolean;
  keepAlive?: number;
  tryPrivate?: boolean;
  notifications?: boolean;
  notificationTopic?: string;
  notificationsLocalOnly?: boolean;
  restartTimeout?: { base: number; cap: number };
  ca?: string;
  caPath?: string;
  localUsername?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  startType?: "automatic" | "lazy" | "once";
  threshold?: number;
  idleTimeout?: number;
  roundRobin?: { line: number; value: boolean };
}

/** Keys of a bridge section, with the key a duplicate is counted under (old names share the new one's). */
const BRIDGE_KEYS: Record<string, string> = {
  address: "address",
  addresses: "address",
  topic: "topic",
  bridge_protocol_version: "bridge_protocol_version",
  remote_clientid: "remote_clientid",
  clientid: "remote_clientid",
  local_clientid: "local_clientid",
  local_username: "local_username",
  local_password: "local_password",
  remote_username: "remote_username",
  username: "remote_username",
  remote_password: "remote_password",
  password: "remote_password",
  cleansession: "cleansession",
  keepalive_interval: "keepalive_interval",
  try_private: "try_private",
  notifications: "notifications",
  notification_topic: "notification_topic",
  notifications_local_only: "notifications_local_only",
  restart_timeout: "restart_timeout",
  bridge_cafile: "bridge_cafile",
  bridge_capath: "bridge_capath",
  bridge_certfile: "bridge_certfile",
  bridge_keyfile: "bridge_keyfile",
  bridge_insecure: "bridge_insecure",
  round_robin: "round_robin",
  start_type: "start_type",
  bridge_tls_version: "bridge_tls_version",
  bridge_outgoing_retain: "bridge_outgoing_retain",
  bridge_attempt_unsubscribe: "bridge_attempt_unsubscribe",
  idle_timeout: "idle_timeout",
  threshold: "threshold",
};

/** mosquitto's bridge keys that are refused. */
const REFUSED_BRIDGE_KEYS: Record<string, string> = {
  bridge_alpn: "ALPN cannot be set",
  bridge_bind_address: "the local address of the connection cannot be chosen",
  bridge_identity: "TLS with a pre-shared key is not supported",
  bridge_psk: "TLS with a pre-shared key is not supported",
  bridge_require_ocsp: "OCSP is not checked",
  bridge_max_packet_size: "the size of the packets sent to the remote broker cannot be limited",
  local_cleansession: "the bridge's session on this broker follows cleansession",
};

/**
 * Reads a line of a bridge section: a `connection` line starts a bridge, a bridge key goes to the last one.
 *
 * @param line The line.
 * @param bridges The bridges so far; a `connection` line adds one.
 * @returns Whether the line's key is a bridge key (`false`: the line is not read).
 * @throws {Error} Naming the line, when the key is refused or its value wrong.
 */
export function readBridgeLine(line: ConfLine, bridges: BridgeDraft[]): boolean {
  const { n, key, one, once } = line;
  const error: ConfLine["error"] = line.error;
  const bridge = bridges.at(-1);
  if (key === "connection") {
    const name = one();
    const problem = bridgeNameProblem(name);
    if (problem !== undefined) error(problem);
    const other = bridges.find((b) => b.name === name);
    if (other !== undefined) {
      error(`another connection (line ${other.line}) is named ${JSON.stringify(name)}`);
    }
    bridges.push({ line: n, name, addresses: [], topics: [], seen: new Set() });
    return true;
  }
  if (Object.hasOwn(REFUSED_BRIDGE_KEYS, key)) {
    error(`bridge key ${key} is not supported: ${REFUSED_BRIDGE_KEYS[key]}`);
  }
  if (Object.hasOwn(BRIDGE_KEYS, key)) {
    if (bridge === undefined) error(`${key} is a bridge key: it needs a connection line before it`);
    if (key !== "topic") once(bridge.seen, BRIDGE_KEYS[key]);
    bridgeKey(line, bridge);
    return true;
  }
  return false;
}

/** One key of a bridge section. */
function bridgeKey(line: ConfLine, b: BridgeDraft): void {
  const { n, key, args, rest, note, one, string, bool, int } = line;
  const error: ConfLine["error"] = line.error;
  switch (key) {
    case "address":
    case "addresses": {
      const hosts = rest.split(/[ \t,]+/).filter((host) => host !== "");
      if (hosts.length === 0) error(`${key} needs one or more host[:port]`);
      b.addresses = hosts.map((host) => address(line, host));
      return;
    }
    case "topic":
      b.topics.push(topic(line));
      return;
    case "bridge_protocol_version": {
      const versions = { mqttv31: 3, mqttv311: 4, mqttv50: 5 } as const;
      const value = one();
      if (!Object.hasOwn(versions, value)) {
        error(`bridge_protocol_version takes mqttv31, mqttv311 or mqttv50, not ${JSON.stringify(value)}`);
      }
      b.protocolVersion = versions[value as keyof typeof versions];
      return;
    }
    case "remote_clientid":
    case "clientid":
      b.clientId = one();
      return;
    case "local_clientid":
      b.localClientId = one();
      return;
    case "local_username":
      b.localUsername = string();
      return;
    case "local_password":
      note("local_password is ignored: the bridge's side on this broker is not asked for a password");
      return;
    case "remote_username":
    case "username":
      b.username = string();
      return;
    case "remote_password":
    case "password":
      b.password = string();
      return;
    case "cleansession":
      b.cleanStart = bool();
      return;
    case "keepalive_interval":
      b.keepAlive = int(5, 65_535);
      return;
    case "try_private":
      b.tryPrivate = bool();
      return;
    case "notifications":
      b.notifications = bool();
      return;
    case "notification_topic": {
      const topic = one();
      const problem = topicNameProblem(topic);
      if (problem !== undefined) {
        error(`notification_topic ${JSON.stringify(topic)} is not valid: ${problem}`);
      }
      b.notificationTopic = topic;
      return;
    }
    case "notifications_local_only":
      b.notificationsLocalOnly = bool();
      return;
    case "restart_timeout": {
      if (args.length === 0 || args.length > 2) error("restart_timeout takes BASE CAP or one CONSTANT");
      const base = int(1, 86_400, args[0]);
      const cap = args.length === 2 ? int(1, 86_400, args[1]) : base;
      if (cap < base) error(`restart_timeout: the cap (${cap}) is less than the base (${base})`);
      b.restartTimeout = { base, cap };
      return;
    }
    case "bridge_cafile":
      b.ca = string();
      return;
    case "bridge_capath":
      b.caPath = string();
      return;
    case "bridge_certfile":
      b.cert = string();
      return;
    case "bridge_keyfile":
      b.key = string();
      return;
    case "bridge_insecure":
      b.insecure = bool();
      if (b.insecure) {
        note("bridge_insecure true skips the whole verification of the remote's certificate");
      }
      return;
    case "round_robin":
      b.roundRobin = { line: n, value: bool() };
      return;
    case "start_type": {
      const value = one();
      if (value !== "automatic" && value !== "lazy" && value !== "once") {
        error(`start_type takes automatic, lazy or once, not ${JSON.stringify(value)}`);
      }
      b.startType = value;
      return;
    }
    case "threshold":
      b.threshold = int(1, 65_535);
      return;
    case "idle_timeout":
      b.idleTimeout = int(1, 86_400);
      return;
    case "bridge_tls_version": {
      const value = one();
      if (value !== "tlsv1.2" && value !== "tlsv1.3") {
        error(`bridge key bridge_tls_version ${value} is not supported: only tlsv1.2 and tlsv1.3`);
      }
      note(`bridge_tls_version is ignored: TLS 1.2 or later is negotiated`);
      return;
    }
    case "bridge_outgoing_retain":
      if (!bool()) error("bridge key bridge_outgoing_retain false is not supported");
      return;
    case "bridge_attempt_unsubscribe":
      bool();
      note("bridge_attempt_unsubscribe is ignored");
      return;
    default:
      error(`bridge key ${key} is not read`);
  }
}

/** `host[:port]` → `host` and port, IPv6 in brackets. */
function address(line: ConfLine, host: string): string {
  const { key } = line;
  const error: ConfLine["error"] = line.error;
  let name = host;
  let port = "1883";
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(host);
  if (bracket !== null) {
    name = bracket[1];
    if (bracket[2] !== undefined) port = bracket[2];
  } else if (host.includes(":")) {
    // As mosquitto: the port is after the last colon, so an IPv6 address needs one.
    const colon = host.lastIndexOf(":");
    name = host.slice(0, colon);
    port = host.slice(colon + 1);
  }
  const number = Number(port);
  if (name === "" || !/^\d+$/.test(port) || number < 1 || number > 65_535) {
    error(`${key}: ${JSON.stringify(host)} is not host[:port] (a port from 1 to 65535)`);
  }
  return `${name.includes(":") ? `[${name}]` : name}:${number}`;
}

/** `topic PATTERN [[[out|in|both] QOS] LOCAL-PREFIX [REMOTE-PREFIX]]`. */
function topic(line: ConfLine): BridgeTopic {
  const { args, rest, int } = line;
  const error: ConfLine["error"] = line.error;
  if (args.length === 0) error("topic needs a pattern");
  if (args.length > 5) error(`topic takes at most 5 values, not ${JSON.stringify(rest)}`);
  const empty = (value: string) => value === '""' ? "" : value;
  const direction = (args[1] ?? "out").toLowerCase();
  if (direction !== "in" && direction !== "out" && direction !== "both") {
    error(`topic direction is out, in or both, not ${JSON.stringify(args[1])}`);
  }
  const result: BridgeTopic = {
    pattern: empty(args[0]),
    direction,
    qos: args[2] === undefined ? 0 : int(0, 2, args[2]) as 0 | 1 | 2,
  };
  if (args[3] !== undefined && empty(args[3]) !== "") result.localPrefix = empty(args[3]);
  if (args[4] !== undefined && empty(args[4]) !== "") result.remotePrefix = empty(args[4]);
  const problem = bridgeTopicProblem(result);
  if (problem !== undefined) error(`topic: ${problem}`);
  return result;
}

/** Checks what a section needs as a whole and builds the bridge. */
export function finishBridge(draft: BridgeDraft, options: MosquittoConfOptions): BridgeConfig {
  const where = `line ${draft.line}: connection ${draft.name}`;
  if (draft.addresses.length === 0) throw new Error(`${where} has no address`);
  if (draft.topics.length === 0) throw new Error(`${where} has no topic`);
  if ((draft.cert === undefined) !== (draft.key === undefined)) {
    throw new Error(`${where} needs both bridge_certfile and bridge_keyfile, or neither`);
  }
  if (draft.password !== undefined && draft.username === undefined) {
    throw new Error(`${where} has a remote_password without a remote_username`);
  }
  if (draft.roundRobin?.value === false && draft.addresses.length > 1) {
    throw new Error(
      `line ${draft.roundRobin.line}: bridge key round_robin false is not supported with several addresses: ` +
        "a bridge goes on to the next address after each failure and does not go back to the first",
    );
  }
  const tls = draft.ca !== undefined || draft.caPath !== undefined || draft.cert !== undefined;
  if (draft.insecure === true && !tls) {
    throw new Error(
      `${where} has bridge_insecure without TLS (bridge_cafile, bridge_capath or bridge_certfile)`,
    );
  }
  const hostname = () => typeof options.hostname === "string" ? options.hostname : options.hostname();
  const bridge: BridgeConfig = {
    name: draft.name,
    urls: draft.addresses.map((address) => `${tls ? "mqtts" : "mqtt"}://${address}`),
    clientId: draft.clientId ?? `${hostname()}.${draft.name}`,
    topics: draft.topics,
  };
  for (
    const key of [
      "protocolVersion",
      "localClientId",
      "localUsername",
      "username",
      "password",
      "cleanStart",
      "keepAlive",
      "tryPrivate",
      "notifications",
      "notificationTopic",
      "notificationsLocalOnly",
      "restartTimeout",
      "startType",
      "threshold",
      "idleTimeout",
    ] as const
  ) {
    if (draft[key] !== undefined) (bridge as unknown as Record<string, unknown>)[key] = draft[key];
  }
  if (tls) {
    bridge.tls = {};
    if (draft.ca !== undefined) bridge.tls.ca = draft.ca;
    if (draft.caPath !== undefined) bridge.tls.caPath = draft.caPath;
    if (draft.cert !== undefined) bridge.tls.cert = draft.cert;
    if (draft.key !== undefined) bridge.tls.key = draft.key;
    if (draft.insecure !== undefined) bridge.tls.insecure = draft.insecure;
  }
  return bridge;
}
