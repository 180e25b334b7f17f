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
 * `bridges` is read by {@linkcode parseBridgesConfig}, in `bridge_config.ts`, which tells what a bridge takes.
 *
 * @module
 */

import { type BridgeConfig, parseBridgesConfig } from "./bridge_config.ts";
import { fail, integer, text, unknownKeys } from "./_config_check.ts";

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
  /** Seconds an MQTT 3.1 / 3.1.1 persistent session outlives its connection (mosquitto's `persistent_client_expiration`). */
  persistentSessionExpiryInterval?: number;
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
  /** Queue QoS 0 messages for offline persistent sessions too (mosquitto's `queue_qos0_messages`). */
  queueQoS0?: boolean;
  /** Whether an empty client identifier is accepted, and one assigned (mosquitto's `allow_zero_length_clientid`). */
  allowZeroLengthClientId?: boolean;
  /** The start of assigned client identifiers (mosquitto's `auto_id_prefix`). */
  autoIdPrefix?: string;
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
  "persistentSessionExpiryInterval",
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
    "queueQoS0",
    "allowZeroLengthClientId",
    "autoIdPrefix",
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
        const maximum = key === "maxKeepAlive"
          ? 65_535
          : key === "persistentSessionExpiryInterval"
          ? 0xffffffff
          : 268_435_460;
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
  for (const key of ["queueQoS0", "allowZeroLengthClientId"] as const) {
    if (object[key] === undefined) continue;
    if (typeof object[key] !== "boolean") fail(key, "expected true or false");
    config[key] = object[key];
  }
  if (object.autoIdPrefix !== undefined) config.autoIdPrefix = text(object.autoIdPrefix, "autoIdPrefix");
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
