/**
 * Reads a mosquitto.conf (mosquitto.conf(5), mosquitto 2.0) into the broker's configuration: its listeners,
 * users, ACL, limits, persistence and bridges. A key this broker cannot honour is refused with its line, not
 * left out, unless leaving it out changes nothing that matters; those are told to `onNote`.
 *
 * The file is read as mosquitto reads it: one `key value…` a line, values separated by spaces, `#` at the
 * start of a line for a comment. A bridge section starts at a `connection NAME` line; the bridge keys after it
 * are that bridge's, until the next `connection`. Listener keys (`protocol`, `certfile`, `keyfile`,
 * `max_connections`) belong to the last `listener` line, or to the default listener (`port`, `bind_address`)
 * before any. Keys that may be given once are refused when given twice.
 *
 * General keys:
 *
 * | Key | Here |
 * | --- | --- |
 * | `listener PORT [ADDRESS]` | a listener on ADDRESS (default 0.0.0.0); port 0 (a unix socket) refused |
 * | `port`, `bind_address` | the default listener (0.0.0.0:1883 unless set) |
 * | `protocol mqtt\|websockets` | the listener's type (WebSocket at `/mqtt`) |
 * | `certfile`, `keyfile` | TLS (or WSS) on the listener; both or neither |
 * | `max_connections` | the listener's `maxConnections`; -1: no limit |
 * | `allow_anonymous` | `allowAnonymous`; default false when a listener is set, else true (as mosquitto 2.0) |
 * | `password_file`, `acl_file` | `passwordFile`, `aclFile` |
 * | `per_listener_settings false` | nothing (the default); `true` refused |
 * | `max_keepalive` | `limits.maxKeepAlive` |
 * | `max_packet_size` | `limits.maximumPacketSize` (0: no limit; 1 to 19 refused, as mosquitto does) |
 * | `max_queued_messages` | `limits.maxQueuedMessages`; 0 (no limit) refused |
 * | `max_inflight_messages` | `limits.maxInflightMessages`; 0 (no limit) is 65535 |
 * | `sys_interval` | `sysInterval` |
 * | `persistence`, `persistence_location`, `persistence_file` | `persistence: { sqlite }` at LOCATION/FILE, FILE by default `mosquitto.sqlite` (not mosquitto's `mosquitto.db`: the format differs) |
 * | `autosave_interval`, `autosave_on_changes` | ignored: the SQLite store writes every change |
 * | `log_dest`, `log_type`, `log_timestamp`, `log_timestamp_format`, `log_facility`, `connection_messages` | ignored: the broker logs to standard error (`--verbose`, `--log-format`) |
 * | `pid_file`, `user` | ignored: the broker writes no pid file and does not change user |
 * | any other | refused |
 *
 * Bridge keys, in a `connection` section:
 *
 * | Key | Here |
 * | --- | --- |
 * | `connection NAME` | `name` |
 * | `address`, `addresses` | `urls`: each `host[:port]`, separated by spaces or commas, is `mqtt://host:port`, or `mqtts://` when `bridge_cafile` or `bridge_certfile` is set; port 1883 by default (as mosquitto, even with TLS); IPv6 as `[::1]:1883` or `::1:1883` |
 * | `topic` | one of `topics`: `topic PATTERN [[[out\|in\|both] QOS] LOCAL-PREFIX [REMOTE-PREFIX]]`, `""` for an empty pattern or prefix |
 * | `bridge_protocol_version` | `protocolVersion`: `mqttv31` 3, `mqttv311` 4, `mqttv50` 5 |
 * | `remote_clientid`, `clientid` | `clientId`; default `HOSTNAME.NAME`, as mosquitto does (its manual says `NAME.HOSTNAME`) |
 * | `local_clientid` | `localClientId` |
 * | `remote_username`, `username`, `remote_password`, `password` | `username`, `password` (a password needs a username) |
 * | `cleansession` | `cleanStart` |
 * | `keepalive_interval` | `keepAlive` (5 to 65535) |
 * | `try_private`, `notifications`, `notification_topic`, `notifications_local_only` | `tryPrivate`, `notifications`, `notificationTopic`, `notificationsLocalOnly` |
 * | `restart_timeout BASE CAP`, `restart_timeout CONSTANT` | `restartTimeout` (a constant is base and cap) |
 * | `bridge_cafile`, `bridge_certfile`, `bridge_keyfile` | `tls.ca`, `tls.cert`, `tls.key` (certfile and keyfile go together) |
 * | `bridge_insecure` | `tls.insecure`: this skips the whole verification of the remote's certificate, not only its host name |
 * | `round_robin true` | nothing (bridges go round robin); `false` refused with several addresses (several addresses without `round_robin` go round robin too) |
 * | `start_type automatic` | nothing (the default); `lazy` and `once` refused |
 * | `bridge_tls_version tlsv1.2\|tlsv1.3` | ignored: TLS 1.2 or later is negotiated; other versions refused |
 * | `bridge_outgoing_retain true` | nothing (the default); `false` refused |
 * | `bridge_attempt_unsubscribe`, `idle_timeout`, `threshold` | ignored (the last two only matter to `start_type lazy`) |
 * | `bridge_capath`, `bridge_alpn`, `bridge_bind_address`, `bridge_identity`, `bridge_psk`, `bridge_require_ocsp`, `bridge_max_packet_size`, `local_cleansession`, `local_username`, `local_password`, any other | refused |
 *
 * @module
 */

import type { BridgeTopic } from "../broker/bridge_options.ts";
import { type BridgeConfig, bridgeNameProblem, bridgeTopicProblem } from "./bridge_config.ts";
import type { BrokerConfig, ListenerConfig } from "./broker_config.ts";
import { topicNameProblem } from "../codec/topic.ts";

/** Options of {@linkcode parseMosquittoConf}. */
export interface MosquittoConfOptions {
  /**
   * This computer's host name, for the default client identifier of a bridge (`HOSTNAME.NAME`); a function is
   * called only when a bridge needs it.
   */
  hostname: string | (() => string);
  /** Told about each key that is read but has no effect here: the line and what happens instead. */
  onNote?: (line: number, message: string) => void;
}

/** A listener as the file builds it. */
interface ListenerDraft {
  line: number;
  host: string;
  port: number;
  websockets: boolean;
  cert?: string;
  key?: string;
  maxConnections?: number;
  seen: Set<string>;
}

/** A bridge as the file builds it. */
interface BridgeDraft {
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
  cert?: string;
  key?: string;
  insecure?: boolean;
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
  bridge_capath: "a CA directory cannot be read: give the CA certificates in one file with bridge_cafile",
  bridge_alpn: "ALPN cannot be set",
  bridge_bind_address: "the local address of the connection cannot be chosen",
  bridge_identity: "TLS with a pre-shared key is not supported",
  bridge_psk: "TLS with a pre-shared key is not supported",
  bridge_require_ocsp: "OCSP is not checked",
  bridge_max_packet_size: "the size of the packets sent to the remote broker cannot be limited",
  local_cleansession: "the bridge's session on this broker follows cleansession",
  local_username:
    "the bridge's side on this broker does not log in: the password file and ACL do not apply to it",
  local_password:
    "the bridge's side on this broker does not log in: the password file and ACL do not apply to it",
};

/** Keys of a listener. */
const LISTENER_KEYS = ["protocol", "certfile", "keyfile", "max_connections"];

/** General keys read once at most. */
const ONCE_KEYS = [
  "port",
  "bind_address",
  "allow_anonymous",
  "password_file",
  "acl_file",
  "per_listener_settings",
  "max_keepalive",
  "max_packet_size",
  "max_queued_messages",
  "max_inflight_messages",
  "sys_interval",
  "persistence",
  "persistence_location",
  "persistence_file",
];

/** General keys read and ignored, with what happens instead. */
const IGNORED_KEYS: Record<string, string> = {
  autosave_interval: "the SQLite store writes every change",
  autosave_on_changes: "the SQLite store writes every change",
  log_dest: "the broker logs to standard error (see --verbose and --log-format)",
  log_type: "the broker logs to standard error (see --verbose and --log-format)",
  log_timestamp: "the broker logs to standard error (see --verbose and --log-format)",
  log_timestamp_format: "the broker logs to standard error (see --verbose and --log-format)",
  log_facility: "the broker logs to standard error (see --verbose and --log-format)",
  connection_messages: "the broker logs to standard error (see --verbose and --log-format)",
  pid_file: "the broker writes no pid file",
  user: "the broker does not change user",
};

/**
 * Parses a mosquitto.conf.
 *
 * @param text The file's contents.
 * @param options The host name for default bridge client identifiers, and where notes go.
 * @returns The configuration, as {@linkcode parseBrokerConfig} returns it.
 * @throws {Error} Naming the line and the key, as `line 12: bridge key round_robin false is not supported…`.
 *
 * @example Read a bridge
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMosquittoConf } from "./mosquitto_conf.ts";
 * const config = parseMosquittoConf(
 *   "listener 1883\nconnection cloud\naddress cloud.example:8883\ntopic sensors/# out 1 site/ north/\n",
 *   { hostname: "pi" },
 * );
 * assert.deepEqual(config.listeners, [{ type: "tcp", host: "0.0.0.0", port: 1883 }]);
 * assert.equal(config.allowAnonymous, false);
 * assert.deepEqual(config.bridges, [{
 *   name: "cloud",
 *   urls: ["mqtt://cloud.example:8883"],
 *   clientId: "pi.cloud",
 *   topics: [{ pattern: "sensors/#", direction: "out", qos: 1, localPrefix: "site/", remotePrefix: "north/" }],
 * }]);
 * ```
 */
export function parseMosquittoConf(text: string, options: MosquittoConfOptions): BrokerConfig {
  const config: BrokerConfig = { listeners: [], allowAnonymous: true, limits: {}, logLevel: "info" };
  const seen = new Set<string>();
  const listeners: ListenerDraft[] = [];
  let defaultListener: ListenerDraft | undefined;
  let current: ListenerDraft | undefined;
  const bridges: BridgeDraft[] = [];
  let bridge: BridgeDraft | undefined;
  let anonymous: boolean | undefined;
  const persistence: { on: boolean; location?: string; file?: string } = { on: false };
  const lines = text.split(/\r?\n|\r/);
  lines.forEach((raw, index) => {
    const n = index + 1;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const [key, ...args] = line.split(/[ \t]+/);
    const rest = line.slice(key.length).trim();
    const error: (message: string) => never = (message) => {
      throw new Error(`line ${n}: ${message}`);
    };
    const note = (message: string) => options.onNote?.(n, message);
    const one = (): string => {
      if (args.length === 0) error(`${key} needs a value`);
      if (args.length > 1) error(`${key} takes one value, not ${JSON.stringify(rest)}`);
      return args[0];
    };
    const string = (): string => {
      if (rest === "") error(`${key} needs a value`);
      return rest;
    };
    const bool = (): boolean => {
      const value = one();
      if (value !== "true" && value !== "false") {
        error(`${key} takes true or false, not ${JSON.stringify(value)}`);
      }
      return value === "true";
    };
    const int = (minimum: number, maximum: number, value = one()): number => {
      const number = Number(value);
      if (!/^-?\d+$/.test(value) || number < minimum || number > maximum) {
        error(`${key} takes a whole number from ${minimum} to ${maximum}, not ${JSON.stringify(value)}`);
      }
      return number;
    };
    const once = (set: Set<string>, name = key) => {
      if (set.has(name)) error(`${key} is given twice${name === key ? "" : ` (as ${name} or its old name)`}`);
      set.add(name);
    };

    if (key === "connection") {
      const name = one();
      const problem = bridgeNameProblem(name);
      if (problem !== undefined) error(problem);
      const other = bridges.find((b) => b.name === name);
      if (other !== undefined) {
        error(`another connection (line ${other.line}) is named ${JSON.stringify(name)}`);
      }
      bridge = { line: n, name, addresses: [], topics: [], seen: new Set() };
      bridges.push(bridge);
      return;
    }
    if (Object.hasOwn(REFUSED_BRIDGE_KEYS, key)) {
      error(`bridge key ${key} is not supported: ${REFUSED_BRIDGE_KEYS[key]}`);
    }
    if (Object.hasOwn(BRIDGE_KEYS, key)) {
      if (bridge === undefined) error(`${key} is a bridge key: it needs a connection line before it`);
      if (key !== "topic") once(bridge.seen, BRIDGE_KEYS[key]);
      bridgeKey(bridge);
      return;
    }
    if (LISTENER_KEYS.includes(key)) {
      if (current === undefined) {
        error(`${key} belongs to a listener: it needs a listener (or port) line before it`);
      }
      once(current.seen);
      switch (key) {
        case "protocol": {
          const value = one();
          if (value !== "mqtt" && value !== "websockets") {
            error(`protocol takes mqtt or websockets, not ${JSON.stringify(value)}`);
          }
          current.websockets = value === "websockets";
          break;
        }
        case "certfile":
          current.cert = string();
          break;
        case "keyfile":
          current.key = string();
          break;
        default: {
          const value = int(-1, 10_000_000);
          if (value >= 0) current.maxConnections = value;
        }
      }
      return;
    }
    if (Object.hasOwn(IGNORED_KEYS, key)) {
      note(`${key} is ignored: ${IGNORED_KEYS[key]}`);
      return;
    }
    if (ONCE_KEYS.includes(key)) once(seen);
    switch (key) {
      case "listener": {
        if (args.length === 0 || args.length > 2) error(`listener takes a port and an optional address`);
        const port = int(0, 65_535, args[0]);
        if (port === 0) error("listener port 0 (a unix socket) is not supported");
        current = { line: n, host: args[1] ?? "0.0.0.0", port, websockets: false, seen: new Set() };
        listeners.push(current);
        return;
      }
      case "port":
      case "bind_address": {
        if (listeners.length > 0) error(`${key} sets the default listener: put it before the listener lines`);
        defaultListener ??= { line: n, host: "0.0.0.0", port: 1883, websockets: false, seen: new Set() };
        if (key === "port") defaultListener.port = int(1, 65_535);
        else defaultListener.host = one();
        current = defaultListener;
        return;
      }
      case "allow_anonymous":
        anonymous = bool();
        return;
      case "password_file":
        config.passwordFile = string();
        return;
      case "acl_file":
        config.aclFile = string();
        return;
      case "per_listener_settings":
        if (bool()) {
          error("per_listener_settings true is not supported: users and ACL apply to every listener");
        }
        return;
      case "max_keepalive":
        config.limits.maxKeepAlive = int(0, 65_535);
        return;
      case "max_packet_size": {
        const size = int(0, 268_435_460);
        if (size > 0 && size < 20) {
          error(`max_packet_size takes 0 (no limit) or 20 to 268435460, not ${size}`);
        }
        config.limits.maximumPacketSize = size;
        return;
      }
      case "max_queued_messages": {
        const count = int(0, 268_435_460);
        if (count === 0) error("max_queued_messages 0 (no limit) is not supported: give the most messages");
        config.limits.maxQueuedMessages = count;
        return;
      }
      case "max_inflight_messages": {
        const count = int(0, 65_535);
        config.limits.maxInflightMessages = count === 0 ? 65_535 : count;
        return;
      }
      case "sys_interval":
        config.sysInterval = int(0, 86_400);
        return;
      case "persistence":
        persistence.on = bool();
        return;
      case "persistence_location":
        persistence.location = string();
        return;
      case "persistence_file":
        persistence.file = string();
        return;
      default:
        error(`key ${key} is not supported`);
    }

    /** One key of a bridge section. */
    function bridgeKey(b: BridgeDraft): void {
      switch (key) {
        case "address":
        case "addresses": {
          const hosts = rest.split(/[ \t,]+/).filter((host) => host !== "");
          if (hosts.length === 0) error(`${key} needs one or more host[:port]`);
          b.addresses = hosts.map((host) => address(host));
          return;
        }
        case "topic":
          b.topics.push(topic());
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
          if (value !== "automatic") error(`bridge key start_type ${value} is not supported: only automatic`);
          return;
        }
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
          int(0, 4_294_967_295);
          note(`${key} is ignored: it only matters to start_type lazy`);
      }
    }

    /** `host[:port]` → `host` and port, IPv6 in brackets. */
    function address(host: string): string {
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
    function topic(): BridgeTopic {
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
  });

  if (defaultListener !== undefined) listeners.unshift(defaultListener);
  for (const draft of listeners) {
    if ((draft.cert === undefined) !== (draft.key === undefined)) {
      throw new Error(`line ${draft.line}: the listener needs both certfile and keyfile, or neither`);
    }
    const tls = draft.cert !== undefined;
    const listener: ListenerConfig = {
      type: draft.websockets ? (tls ? "wss" : "ws") : (tls ? "tls" : "tcp"),
      host: draft.host,
      port: draft.port,
    };
    if (draft.websockets) listener.path = "/mqtt";
    if (tls) {
      listener.cert = draft.cert;
      listener.key = draft.key;
    }
    if (draft.maxConnections !== undefined) listener.maxConnections = draft.maxConnections;
    config.listeners.push(listener);
  }
  if (config.listeners.length === 0) config.listeners.push({ type: "tcp", host: "127.0.0.1", port: 1883 });
  // mosquitto 2.0: anonymous clients are refused once a listener is configured, unless allowed.
  config.allowAnonymous = anonymous ?? listeners.length === 0;
  if (persistence.on) {
    const file = persistence.file ?? "mosquitto.sqlite";
    const location = persistence.location?.replace(/\/+$/, "");
    config.persistence = { sqlite: location === undefined || location === "" ? file : `${location}/${file}` };
  }
  if (bridges.length > 0) config.bridges = bridges.map((draft) => finishBridge(draft, options));
  return config;
}

/** Checks what a section needs as a whole and builds the bridge. */
function finishBridge(draft: BridgeDraft, options: MosquittoConfOptions): BridgeConfig {
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
  const tls = draft.ca !== undefined || draft.cert !== undefined;
  if (draft.insecure === true && !tls) {
    throw new Error(`${where} has bridge_insecure without TLS (bridge_cafile or bridge_certfile)`);
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
      "username",
      "password",
      "cleanStart",
      "keepAlive",
      "tryPrivate",
      "notifications",
      "notificationTopic",
      "notificationsLocalOnly",
      "restartTimeout",
    ] as const
  ) {
    if (draft[key] !== undefined) (bridge as unknown as Record<string, unknown>)[key] = draft[key];
  }
  if (tls) {
    bridge.tls = {};
    if (draft.ca !== undefined) bridge.tls.ca = draft.ca;
    if (draft.cert !== undefined) bridge.tls.cert = draft.cert;
    if (draft.key !== undefined) bridge.tls.key = draft.key;
    if (draft.insecure !== undefined) bridge.tls.insecure = draft.insecure;
  }
  return bridge;
}
