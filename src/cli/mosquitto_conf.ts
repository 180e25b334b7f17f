/**
 * Reads a mosquitto.conf (mosquitto.conf(5), mosquitto 2.0) into the broker's configuration: its listeners,
 * users, ACL, limits, persistence and bridges. A key this broker cannot honour is refused with its line, not
 * left out, unless leaving it out changes nothing that matters; those are told to `onNote`.
 *
 * The file is read as mosquitto reads it: one `key value…` a line, values separated by spaces, `#` at the
 * start of a line for a comment. A bridge section starts at a `connection NAME` line; the bridge keys after it
 * are that bridge's, until the next `connection` (`mosquitto_bridge.ts` reads them and lists them). Listener
 * keys (`protocol`, `certfile`, `keyfile`, `max_connections`) belong to the last `listener` line, or to the
 * default listener (`port`, `bind_address`) before any. Keys that may be given once are refused when given
 * twice.
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
 * | `max_queued_bytes` | `limits.maxQueuedBytes`; 0 (no limit) refused |
 * | `queue_qos0_messages` | `queueQoS0`: QoS 0 messages are queued for offline persistent sessions too |
 * | `allow_zero_length_clientid`, `auto_id_prefix` | `allowZeroLengthClientId`, `autoIdPrefix` (assigned identifiers are the prefix and a number, or on a cluster the node and a UUID) |
 * | `set_tcp_nodelay` | nothing: TCP_NODELAY is always on (`false` is ignored with a note) |
 * | `persistent_client_expiration` | `limits.persistentSessionExpiryInterval`: how long an MQTT 3.1 / 3.1.1 persistent session outlives its connection (`h`, `d`, `w`, `m` 30 days, `y` 365 days); MQTT 5 clients keep the expiry they ask for |
 * | `sys_interval` | `sysInterval` |
 * | `persistence`, `persistence_location`, `persistence_file` | `persistence: { sqlite }` at LOCATION/FILE, FILE by default `mosquitto.sqlite` (not mosquitto's `mosquitto.db`: the format differs) |
 * | `autosave_interval`, `autosave_on_changes` | ignored: the SQLite store writes every change |
 * | `log_dest`, `log_type`, `log_timestamp`, `log_timestamp_format`, `log_facility`, `connection_messages` | ignored: the broker logs to standard error (`--verbose`, `--log-format`) |
 * | `pid_file`, `user` | ignored: the broker writes no pid file and does not change user |
 * | `include_dir DIR` | the directory's `.conf` files in place of the line (`mosquitto_include.ts` splices them in before this parser runs; here, refused) |
 * | any other | refused |
 *
 * @module
 */

import type { BrokerConfig, ListenerConfig } from "./broker_config.ts";
import { type BridgeDraft, finishBridge, readBridgeLine } from "./mosquitto_bridge.ts";

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

/**
 * One line of the file: its key and values, and the readers of its values, each throwing `line N: …` when the
 * value is wrong.
 */
export interface ConfLine {
  /** The line's number, from 1. */
  n: number;
  key: string;
  /** The values, split on spaces. */
  args: string[];
  /** What follows the key, spaces kept. */
  rest: string;
  /** Throws `line N: message`. */
  error: (message: string) => never;
  /** Tells `onNote` about the line. */
  note: (message: string) => void;
  /** The one value. */
  one: () => string;
  /** All that follows the key. */
  string: () => string;
  /** `true` or `false`. */
  bool: () => boolean;
  /** A whole number from `minimum` to `maximum`: `value`, or the one value. */
  int: (minimum: number, maximum: number, value?: string) => number;
  /** Refuses the key (or `name`, which its old names share) when `set` has seen it, and adds it. */
  once: (set: Set<string>, name?: string) => void;
}

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
  "max_queued_bytes",
  "queue_qos0_messages",
  "allow_zero_length_clientid",
  "auto_id_prefix",
  "set_tcp_nodelay",
  "persistent_client_expiration",
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

    const entry: ConfLine = { n, key, args, rest, error, note, one, string, bool, int, once };
    if (readBridgeLine(entry, bridges)) return;
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
      case "queue_qos0_messages":
        config.queueQoS0 = bool();
        return;
      case "allow_zero_length_clientid":
        config.allowZeroLengthClientId = bool();
        return;
      case "auto_id_prefix":
        config.autoIdPrefix = one();
        return;
      case "set_tcp_nodelay":
        if (!bool()) note("set_tcp_nodelay false is ignored: TCP_NODELAY is always on");
        return;
      case "max_queued_bytes": {
        const bytes = int(0, Number.MAX_SAFE_INTEGER);
        if (bytes === 0) error("max_queued_bytes 0 (no limit) is not supported: give the most bytes");
        config.limits.maxQueuedBytes = bytes;
        return;
      }
      case "persistent_client_expiration": {
        // mosquitto's durations: a number and h, d, w, m (30 days) or y (365 days).
        const found = /^(\d{1,6})([hdwmy])$/.exec(one());
        if (found === null) {
          error(`persistent_client_expiration takes a duration such as 12h, 14d, 2w, 1m or 1y`);
        }
        const unit = { h: 3600, d: 86_400, w: 604_800, m: 2_592_000, y: 31_536_000 }[found[2] as "h"];
        config.limits.persistentSessionExpiryInterval = Math.min(Number(found[1]) * unit, 0xfffffffe);
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
