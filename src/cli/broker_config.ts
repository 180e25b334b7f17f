/**
 * The broker's JSON configuration file:
 *
 * ```json
 * {
 *   "listeners": [
 *     { "type": "tcp", "host": "0.0.0.0", "port": 1883 },
 *     { "type": "tls", "port": 8883, "cert": "server.pem", "key": "server.key" },
 *     { "type": "ws", "port": 9001, "path": "/mqtt", "maxConnections": 500 },
 *     { "type": "http", "port": 8080 }
 *   ],
 *   "allowAnonymous": false,
 *   "passwordFile": "passwords",
 *   "aclFile": "acl",
 *   "limits": { "maxConnections": 1000, "maximumPacketSize": 1048576, "maxQueuedMessages": 1000 },
 *   "persistence": "sqlite:broker.db",
 *   "sysInterval": 10,
 *   "logLevel": "info",
 *   "cluster": { "servers": ["nats://127.0.0.1:4222"], "node": "a" },
 *   "bridges": [
 *     {
 *       "name": "cloud",
 *       "url": "mqtts://cloud.example:8883",
 *       "clientId": "site-north",
 *       "username": "north",
 *       "password": "secret",
 *       "tls": { "ca": "cloud-ca.pem" },
 *       "topics": [
 *         { "pattern": "#", "direction": "out", "qos": 1, "localPrefix": "site/", "remotePrefix": "sites/north/" },
 *         { "pattern": "commands/#", "direction": "in", "qos": 1 }
 *       ],
 *       "restartTimeout": { "base": 5, "cap": 60 }
 *     }
 *   ]
 * }
 * ```
 *
 * A bridge takes `name` (unique), `url` or `urls`, `protocolVersion` (3, 4 or 5), `clientId`, `localClientId`,
 * `username`, `password`, `tls` (`ca`, `cert` and `key` are PEM files; `serverName`, `insecure`), `cleanStart`,
 * `sessionExpiryInterval`, `keepAlive`, `topics` (at least one: `pattern`, `direction` `out` (the default), `in`
 * or `both`, `qos` (default 0), `localPrefix`, `remotePrefix`), `tryPrivate`, `notifications`,
 * `notificationTopic`, `notificationsLocalOnly`, `restartTimeout` (`base` and `cap`, in seconds) and
 * `maxInflight`, as {@linkcode BridgeOptions} describes them.
 *
 * @module
 */

import type { BridgeOptions, BridgeTopic } from "../broker/bridge_options.ts";
import { parseBrokerUrl } from "../client/url.ts";
import { topicFilterProblem, topicNameProblem } from "../codec/topic.ts";

/** One listener of the configuration. */
export interface ListenerConfig {
  /** `http`: MQTT over WebSocket at `path`, and `GET /metrics`. */
  type: "tcp" | "tls" | "ws" | "wss" | "http";
  host: string;
  port: number;
  /** WebSocket path. */
  path?: string;
  /** PEM files, for tls and wss. */
  cert?: string;
  key?: string;
  /** The most connections at once through this listener. */
  maxConnections?: number;
}

/** Limits of the configuration, passed to the broker as they are. */
export interface LimitsConfig {
  maxConnections?: number;
  maxConnecting?: number;
  /** Bytes, fixed header included (0, or 2 to 268435460; 0 sets no limit but the protocol's). Default 1 MiB. */
  maximumPacketSize?: number;
  connectTimeoutMs?: number;
  receiveMaximum?: number;
  topicAliasMaximum?: number;
  maxInflightMessages?: number;
  maxQueuedMessages?: number;
  maxQueuedBytes?: number;
  maxClientIdLength?: number;
  /** Seconds, as mosquitto's `max_keepalive` (0 to 65535; 0 sets no maximum). */
  maxKeepAlive?: number;
  maxTopicLength?: number;
  maxTopicLevels?: number;
  maxMessagesPerSecond?: number;
  backpressureBytes?: number;
  maxPublisherPause?: number;
  maxWriteStall?: number;
  maxOutgoingBytes?: number;
  slowConsumerTimeout?: number;
}

/** A checked configuration. */
export interface BrokerConfig {
  listeners: ListenerConfig[];
  allowAnonymous: boolean;
  passwordFile?: string;
  /** Users of the password file who may use the admin API of an HTTP listener. */
  adminUsers?: string[];
  aclFile?: string;
  limits: LimitsConfig;
  sysInterval?: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** `text` (the default) or `json`: one object a line (time, level, node, client, event, message). */
  logFormat?: "text" | "json";
  /** Where the state is kept: in memory (`undefined`) or in a SQLite file. */
  persistence?: { sqlite: string };
  /** The NATS cluster this broker is a node of. */
  cluster?: ClusterConfig;
  /** Bridges to other brokers, their TLS files not read yet. */
  bridges?: BridgeConfig[];
}

/** A bridge of the configuration: {@linkcode BridgeOptions} with the paths of its TLS files. */
export interface BridgeConfig extends Omit<BridgeOptions, "tls"> {
  /** TLS to the remote broker. */
  tls?: BridgeTlsConfig;
}

/** The TLS settings of a bridge: PEM files (read by the CLI) and the rest of `TlsOptions`. */
export interface BridgeTlsConfig {
  /** The CA certificates to verify the remote broker with, instead of the system's. */
  ca?: string;
  /** A client certificate (chain) and its private key, for remote brokers that require one. */
  cert?: string;
  key?: string;
  /** The name to verify the remote's certificate against; default the URL's host. */
  serverName?: string;
  /** Skip the verification of the remote's certificate. */
  insecure?: boolean;
}

/** The `cluster` section: where NATS is and who this node is. */
export interface ClusterConfig {
  /** NATS server URLs (`nats://host:port`, `tls://host:port`). */
  servers: string[];
  /** The node's name, unique in the cluster. Default: a random one. */
  node?: string;
  /** The first token of the cluster's subjects, buckets and stream. Default `mqtt`. */
  prefix?: string;
  /**
   * How often the node tells it is alive, in milliseconds: a node silent for three times that is taken for dead
   * and its sessions (and their wills) taken over. Default 5000.
   */
  heartbeatMs?: number;
  /** A NATS `.creds` file (JWT and NKey seed). */
  credentials?: string;
  /** A NATS user and password, or a token. */
  user?: string;
  password?: string;
  token?: string;
  /** PEM files for TLS to NATS: the CA to verify the servers with, and a client certificate. */
  tls?: { ca?: string; cert?: string; key?: string };
}

/**
 * Parses the `cluster` section, or a `--cluster` URL list (comma-separated).
 *
 * @param value The section, or the URL list.
 * @param where The key or flag it came from, for the error.
 * @returns The checked section.
 * @throws {Error} Naming `where` and the key that is wrong.
 */
export function parseClusterConfig(value: unknown, where = "cluster"): ClusterConfig {
  if (typeof value === "string") value = { servers: value.split(",") };
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(where, "expected an object");
  const object = value as Record<string, unknown>;
  unknownKeys(
    object,
    ["servers", "node", "prefix", "heartbeatMs", "credentials", "user", "password", "token", "tls"],
    where,
  );
  const servers = typeof object.servers === "string" ? [object.servers] : object.servers;
  if (!Array.isArray(servers) || servers.length === 0) fail(`${where}.servers`, "expected a non-empty array");
  const config: ClusterConfig = {
    servers: servers.map((server, i) => {
      const url = text(server, `${where}.servers[${i}]`);
      if (!/^(nats|tls|ws|wss):\/\/[^/\s]+\/?$/.test(url)) {
        fail(
          `${where}.servers[${i}]`,
          `expected nats://HOST:PORT or tls://HOST:PORT, got ${JSON.stringify(url)}`,
        );
      }
      return url;
    }),
  };
  for (const key of ["node", "prefix"] as const) {
    if (object[key] === undefined) continue;
    const name = text(object[key], `${where}.${key}`);
    if (!/^[A-Za-z0-9_-]+$/.test(name)) fail(`${where}.${key}`, "expected letters, digits, - and _");
    config[key] = name;
  }
  if (object.heartbeatMs !== undefined) {
    const ms = object.heartbeatMs;
    if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 100 || ms > 3_600_000) {
      fail(`${where}.heartbeatMs`, "expected a whole number of milliseconds from 100 to 3600000");
    }
    config.heartbeatMs = ms;
  }
  for (const key of ["credentials", "user", "password", "token"] as const) {
    if (object[key] !== undefined) config[key] = text(object[key], `${where}.${key}`);
  }
  if (object.tls !== undefined) {
    if (typeof object.tls !== "object" || object.tls === null) fail(`${where}.tls`, "expected an object");
    const tls = object.tls as Record<string, unknown>;
    unknownKeys(tls, ["ca", "cert", "key"], `${where}.tls`);
    config.tls = {};
    for (const key of ["ca", "cert", "key"] as const) {
      if (tls[key] !== undefined) config.tls[key] = text(tls[key], `${where}.tls.${key}`);
    }
    if ((config.tls.cert === undefined) !== (config.tls.key === undefined)) {
      fail(`${where}.tls`, "cert and key go together");
    }
  }
  return config;
}

/**
 * Parses a persistence setting: `memory`, or `sqlite:PATH`.
 *
 * @param value The setting.
 * @param where The flag or key it came from, for the error.
 * @returns The SQLite file, or `undefined` for memory.
 * @throws {Error} Naming `where` when the value is neither.
 */
export function parsePersistence(value: string, where: string): { sqlite: string } | undefined {
  if (value === "memory") return undefined;
  if (value.startsWith("sqlite:") && value.length > "sqlite:".length) return { sqlite: value.slice(7) };
  throw new Error(`${where} takes "memory" or "sqlite:PATH", not ${JSON.stringify(value)}`);
}

const LIMIT_KEYS: readonly (keyof LimitsConfig)[] = [
  "maxConnections",
  "maxConnecting",
  "maximumPacketSize",
  "connectTimeoutMs",
  "receiveMaximum",
  "topicAliasMaximum",
  "maxInflightMessages",
  "maxQueuedMessages",
  "maxQueuedBytes",
  "maxClientIdLength",
  "maxKeepAlive",
  "maxTopicLength",
  "maxTopicLevels",
  "maxMessagesPerSecond",
  "backpressureBytes",
  "maxPublisherPause",
  "maxWriteStall",
  "maxOutgoingBytes",
  "slowConsumerTimeout",
];

function fail(key: string, message: string): never {
  throw new Error(`Invalid configuration at "${key}": ${message}`);
}

function integer(value: unknown, key: string, minimum: number, maximum: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < minimum || value > maximum) {
    fail(key, `expected a whole number from ${minimum} to ${maximum}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function text(value: unknown, key: string): string {
  if (typeof value !== "string" || value === "") {
    fail(key, `expected a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

function unknownKeys(object: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) fail(where === "" ? key : `${where}.${key}`, "unknown key");
  }
}

/**
 * Why a bridge's name cannot be used, or `undefined` when it can: it names the bridge in logs and `$SYS`, and
 * in the default client identifier.
 *
 * @param name The name.
 * @returns The problem, or `undefined`.
 */
export function bridgeNameProblem(name: string): string | undefined {
  const control = [...name].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
  if (name === "" || control || /[\s/+#]/.test(name)) {
    return `a bridge name is one or more characters without spaces, "/", "+" or "#", not ${
      JSON.stringify(name)
    }`;
  }
  return undefined;
}

/**
 * Why a bridge topic cannot be used, or `undefined` when it can: the pattern must be a topic filter (not a
 * shared one), the prefixes topic names without wildcards, each prefix followed by the pattern a topic filter,
 * and an empty pattern needs both prefixes (as mosquitto's `topic "" out 0 local/t remote/t`).
 *
 * @param topic The topic.
 * @returns The problem, or `undefined`.
 *
 * @example Refuse a prefix with a wildcard
 * ```ts
 * import assert from "node:assert/strict";
 * import { bridgeTopicProblem } from "./broker_config.ts";
 * assert.equal(bridgeTopicProblem({ pattern: "#", direction: "both", qos: 1, localPrefix: "a/" }), undefined);
 * assert.match(bridgeTopicProblem({ pattern: "#", direction: "out", qos: 0, localPrefix: "+/" })!, /\+ or #/);
 * ```
 */
export function bridgeTopicProblem(topic: BridgeTopic): string | undefined {
  const { pattern, localPrefix = "", remotePrefix = "" } = topic;
  for (const [side, prefix] of [["local", localPrefix], ["remote", remotePrefix]]) {
    if (prefix.includes("+") || prefix.includes("#")) {
      return `the ${side} prefix ${JSON.stringify(prefix)} must not contain + or #`;
    }
    const problem = prefix === "" ? undefined : topicNameProblem(prefix);
    if (problem !== undefined) return `the ${side} prefix ${JSON.stringify(prefix)} is not valid: ${problem}`;
  }
  if (pattern === "") {
    if (localPrefix === "" || remotePrefix === "") {
      return "an empty pattern needs both a local and a remote prefix (they are then the whole topics)";
    }
    return undefined;
  }
  if (pattern.startsWith("$share/")) return `the pattern ${JSON.stringify(pattern)} is a shared subscription`;
  const problem = topicFilterProblem(pattern);
  if (problem !== undefined) {
    return `the pattern ${JSON.stringify(pattern)} is not a topic filter: ${problem}`;
  }
  for (const [side, prefix] of [["local", localPrefix], ["remote", remotePrefix]]) {
    const full = prefix + pattern;
    const fullProblem = topicFilterProblem(full);
    if (fullProblem !== undefined) {
      return `the ${side} prefix and the pattern make ${
        JSON.stringify(full)
      }, not a topic filter: ${fullProblem}`;
    }
  }
  return undefined;
}

const BRIDGE_KEYS = [
  "name",
  "url",
  "urls",
  "protocolVersion",
  "clientId",
  "localClientId",
  "username",
  "password",
  "tls",
  "cleanStart",
  "sessionExpiryInterval",
  "keepAlive",
  "topics",
  "tryPrivate",
  "notifications",
  "notificationTopic",
  "notificationsLocalOnly",
  "restartTimeout",
  "maxInflight",
];

function boolean(value: unknown, key: string): boolean {
  if (typeof value !== "boolean") fail(key, `expected true or false, got ${JSON.stringify(value)}`);
  return value;
}

function record(value: unknown, key: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(key, "expected an object");
  return value as Record<string, unknown>;
}

/** Parses one entry of `bridges`. */
function parseBridge(value: unknown, where: string): BridgeConfig {
  const b = record(value, where);
  unknownKeys(b, BRIDGE_KEYS, where);
  const name = text(b.name, `${where}.name`);
  const nameProblem = bridgeNameProblem(name);
  if (nameProblem !== undefined) fail(`${where}.name`, nameProblem);
  if (b.url !== undefined && b.urls !== undefined) fail(`${where}.urls`, "give url or urls, not both");
  let urls: unknown[];
  let urlsKey: string;
  if (b.url !== undefined) {
    urls = [b.url];
    urlsKey = `${where}.url`;
  } else {
    if (!Array.isArray(b.urls) || b.urls.length === 0) {
      fail(`${where}.url`, "expected url or a non-empty urls");
    }
    urls = b.urls;
    urlsKey = `${where}.urls`;
  }
  let tlsUrl = false;
  const bridge: BridgeConfig = {
    name,
    urls: urls.map((item, i) => {
      const key = b.url !== undefined ? urlsKey : `${urlsKey}[${i}]`;
      const url = text(item, key);
      try {
        const protocol = parseBrokerUrl(url).protocol;
        if (protocol === "mqtts" || protocol === "wss") tlsUrl = true;
      } catch (error) {
        fail(key, (error as Error).message);
      }
      return url;
    }),
    topics: [],
  };
  if (b.protocolVersion !== undefined) {
    const version = b.protocolVersion;
    if (version !== 3 && version !== 4 && version !== 5) {
      fail(`${where}.protocolVersion`, `expected 3, 4 or 5, got ${JSON.stringify(version)}`);
    }
    bridge.protocolVersion = version;
  }
  for (const key of ["clientId", "localClientId", "username", "password"] as const) {
    if (b[key] !== undefined) bridge[key] = text(b[key], `${where}.${key}`);
  }
  if (bridge.password !== undefined && bridge.username === undefined && bridge.protocolVersion !== 5) {
    fail(`${where}.password`, "a password needs a username before MQTT 5 (protocolVersion 5)");
  }
  if (b.tls !== undefined) {
    const tls = record(b.tls, `${where}.tls`);
    unknownKeys(tls, ["ca", "cert", "key", "serverName", "insecure"], `${where}.tls`);
    bridge.tls = {};
    for (const key of ["ca", "cert", "key", "serverName"] as const) {
      if (tls[key] !== undefined) bridge.tls[key] = text(tls[key], `${where}.tls.${key}`);
    }
    if (tls.insecure !== undefined) bridge.tls.insecure = boolean(tls.insecure, `${where}.tls.insecure`);
    if ((bridge.tls.cert === undefined) !== (bridge.tls.key === undefined)) {
      fail(`${where}.tls`, "cert and key go together");
    }
    if (!tlsUrl) fail(`${where}.tls`, "no URL of this bridge is mqtts:// or wss://");
  }
  for (const key of ["cleanStart", "tryPrivate", "notifications", "notificationsLocalOnly"] as const) {
    if (b[key] !== undefined) bridge[key] = boolean(b[key], `${where}.${key}`);
  }
  if (b.sessionExpiryInterval !== undefined) {
    bridge.sessionExpiryInterval = integer(
      b.sessionExpiryInterval,
      `${where}.sessionExpiryInterval`,
      0,
      0xffffffff,
    );
  }
  if (b.keepAlive !== undefined) bridge.keepAlive = integer(b.keepAlive, `${where}.keepAlive`, 0, 65_535);
  if (b.maxInflight !== undefined) {
    bridge.maxInflight = integer(b.maxInflight, `${where}.maxInflight`, 1, 65_535);
  }
  if (b.notificationTopic !== undefined) {
    const topic = text(b.notificationTopic, `${where}.notificationTopic`);
    const problem = topicNameProblem(topic);
    if (problem !== undefined) fail(`${where}.notificationTopic`, `not a topic name: ${problem}`);
    bridge.notificationTopic = topic;
  }
  if (b.restartTimeout !== undefined) {
    const key = `${where}.restartTimeout`;
    const timeout = record(b.restartTimeout, key);
    unknownKeys(timeout, ["base", "cap"], key);
    const seconds = (value: unknown, at: string) => {
      if (typeof value !== "number" || !(value > 0 && value <= 86_400)) {
        fail(at, `expected seconds, more than 0 and at most 86400, got ${JSON.stringify(value)}`);
      }
      return value;
    };
    const base = seconds(timeout.base, `${key}.base`);
    const cap = seconds(timeout.cap, `${key}.cap`);
    if (cap < base) fail(`${key}.cap`, `expected at least base (${base}), got ${cap}`);
    bridge.restartTimeout = { base, cap };
  }
  if (!Array.isArray(b.topics) || b.topics.length === 0) {
    fail(`${where}.topics`, "expected a non-empty array: a bridge needs at least one topic");
  }
  b.topics.forEach((item: unknown, i) => {
    const key = `${where}.topics[${i}]`;
    const t = record(item, key);
    unknownKeys(t, ["pattern", "direction", "qos", "localPrefix", "remotePrefix"], key);
    if (typeof t.pattern !== "string") {
      fail(`${key}.pattern`, `expected a string, got ${JSON.stringify(t.pattern)}`);
    }
    const direction = t.direction ?? "out";
    if (direction !== "in" && direction !== "out" && direction !== "both") {
      fail(`${key}.direction`, `expected "in", "out" or "both", got ${JSON.stringify(direction)}`);
    }
    const topic: BridgeTopic = {
      pattern: t.pattern,
      direction,
      qos: t.qos === undefined ? 0 : integer(t.qos, `${key}.qos`, 0, 2) as 0 | 1 | 2,
    };
    for (const side of ["localPrefix", "remotePrefix"] as const) {
      if (t[side] === undefined) continue;
      if (typeof t[side] !== "string") {
        fail(`${key}.${side}`, `expected a string, got ${JSON.stringify(t[side])}`);
      }
      if (t[side] !== "") topic[side] = t[side];
    }
    const problem = bridgeTopicProblem(topic);
    if (problem !== undefined) fail(key, problem);
    bridge.topics.push(topic);
  });
  return bridge;
}

/**
 * Parses the `bridges` section.
 *
 * @param value The section.
 * @returns The checked bridges.
 * @throws {Error} Naming the key that is wrong, as `Invalid configuration at "bridges[0].topics[1].qos": …`.
 */
export function parseBridgesConfig(value: unknown): BridgeConfig[] {
  if (!Array.isArray(value)) fail("bridges", "expected an array");
  const bridges = value.map((item, i) => parseBridge(item, `bridges[${i}]`));
  bridges.forEach((bridge, i) => {
    if (bridges.findIndex((other) => other.name === bridge.name) !== i) {
      fail(`bridges[${i}].name`, `another bridge is named ${JSON.stringify(bridge.name)}`);
    }
  });
  return bridges;
}

/**
 * Parses and checks a configuration file.
 *
 * @param json The file's contents.
 * @returns The configuration, with defaults filled in (one TCP listener on 127.0.0.1:1883 when none).
 * @throws {Error} Naming the key that is wrong, as `Invalid configuration at "listeners[1].port": …`.
 *
 * @example Read a configuration
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBrokerConfig } from "./broker_config.ts";
 * const config = parseBrokerConfig('{ "listeners": [{ "type": "ws", "port": 9001 }] }');
 * assert.deepEqual(config.listeners[0], { type: "ws", host: "127.0.0.1", port: 9001, path: "/mqtt" });
 * ```
 */
export function parseBrokerConfig(json: string): BrokerConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw new Error(`Invalid configuration: not JSON (${(error as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("(top)", "expected an object");
  const object = raw as Record<string, unknown>;
  unknownKeys(object, [
    "listeners",
    "allowAnonymous",
    "passwordFile",
    "adminUsers",
    "aclFile",
    "limits",
    "sysInterval",
    "logLevel",
    "logFormat",
    "persistence",
    "cluster",
    "bridges",
  ], "");
  const config: BrokerConfig = { listeners: [], allowAnonymous: true, limits: {}, logLevel: "info" };
  const listeners = object.listeners ?? [{ type: "tcp", port: 1883 }];
  if (!Array.isArray(listeners) || listeners.length === 0) fail("listeners", "expected a non-empty array");
  listeners.forEach((item: unknown, i) => {
    const where = `listeners[${i}]`;
    if (typeof item !== "object" || item === null) fail(where, "expected an object");
    const l = item as Record<string, unknown>;
    unknownKeys(l, ["type", "host", "port", "path", "cert", "key", "maxConnections"], where);
    const type = l.type ?? "tcp";
    if (type !== "tcp" && type !== "tls" && type !== "ws" && type !== "wss" && type !== "http") {
      fail(`${where}.type`, `expected "tcp", "tls", "ws", "wss" or "http", got ${JSON.stringify(type)}`);
    }
    const listener: ListenerConfig = {
      type,
      host: l.host === undefined ? "127.0.0.1" : text(l.host, `${where}.host`),
      port: integer(l.port, `${where}.port`, 0, 65_535),
    };
    if (type === "ws" || type === "wss" || type === "http") {
      listener.path = l.path === undefined ? "/mqtt" : text(l.path, `${where}.path`);
    } else if (l.path !== undefined) fail(`${where}.path`, "only WebSocket listeners have a path");
    if (type === "tls" || type === "wss") {
      listener.cert = text(l.cert, `${where}.cert`);
      listener.key = text(l.key, `${where}.key`);
    } else if (l.cert !== undefined || l.key !== undefined) {
      fail(`${where}.cert`, "only tls and wss listeners take a certificate");
    }
    if (l.maxConnections !== undefined) {
      listener.maxConnections = integer(l.maxConnections, `${where}.maxConnections`, 0, 10_000_000);
    }
    config.listeners.push(listener);
  });
  if (object.allowAnonymous !== undefined) {
    if (typeof object.allowAnonymous !== "boolean") fail("allowAnonymous", "expected true or false");
    config.allowAnonymous = object.allowAnonymous;
  }
  if (object.passwordFile !== undefined) config.passwordFile = text(object.passwordFile, "passwordFile");
  if (object.adminUsers !== undefined) {
    if (!Array.isArray(object.adminUsers)) fail("adminUsers", "expected an array of user names");
    config.adminUsers = object.adminUsers.map((user, i) => text(user, `adminUsers[${i}]`));
  }
  if (object.aclFile !== undefined) config.aclFile = text(object.aclFile, "aclFile");
  if (object.limits !== undefined) {
    if (typeof object.limits !== "object" || object.limits === null) fail("limits", "expected an object");
    const limits = object.limits as Record<string, unknown>;
    unknownKeys(limits, LIMIT_KEYS, "limits");
    for (const key of LIMIT_KEYS) {
      if (limits[key] !== undefined) {
        const maximum = key === "maxKeepAlive" ? 65_535 : 268_435_460;
        config.limits[key] = integer(limits[key], `limits.${key}`, 0, maximum);
        if (key === "maximumPacketSize" && limits[key] === 1) {
          fail("limits.maximumPacketSize", "expected 0 (no limit) or 2 to 268435460, got 1");
        }
      }
    }
  }
  if (object.persistence !== undefined) {
    const value = text(object.persistence, "persistence");
    let persistence: { sqlite: string } | undefined;
    try {
      persistence = parsePersistence(value, "it");
    } catch (error) {
      fail("persistence", (error as Error).message);
    }
    if (persistence !== undefined) config.persistence = persistence;
  }
  if (object.cluster !== undefined) config.cluster = parseClusterConfig(object.cluster);
  if (object.bridges !== undefined) config.bridges = parseBridgesConfig(object.bridges);
  if (object.sysInterval !== undefined) {
    config.sysInterval = integer(object.sysInterval, "sysInterval", 0, 86_400);
  }
  if (object.logLevel !== undefined) {
    const level = object.logLevel;
    if (level !== "debug" && level !== "info" && level !== "warn" && level !== "error") {
      fail("logLevel", `expected "debug", "info", "warn" or "error", got ${JSON.stringify(level)}`);
    }
    config.logLevel = level;
  }
  if (object.logFormat !== undefined) {
    if (object.logFormat !== "text" && object.logFormat !== "json") {
      fail("logFormat", `expected "text" or "json", got ${JSON.stringify(object.logFormat)}`);
    }
    config.logFormat = object.logFormat;
  }
  return config;
}
