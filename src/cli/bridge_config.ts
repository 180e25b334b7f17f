/**
 * The `bridges` section of the broker's JSON configuration, and the checks of a bridge's name and topics that
 * the mosquitto.conf reader shares:
 *
 * ```json
 * {
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
 * `localUsername`, `username`, `password`, `tls` (`ca`, `cert` and `key` are PEM files, `caPath` a directory of
 * them; `serverName`, `insecure`), `cleanStart`,
 * `sessionExpiryInterval`, `keepAlive`, `topics` (at least one: `pattern`, `direction` `out` (the default), `in`
 * or `both`, `qos` (default 0), `localPrefix`, `remotePrefix`), `tryPrivate`, `notifications`,
 * `notificationTopic`, `notificationsLocalOnly`, `restartTimeout` (`base` and `cap`, in seconds),
 * `maxInflight`, `startType` (`automatic`, `lazy` or `once`), `threshold` and `idleTimeout`, as {@linkcode BridgeOptions} describes them.
 *
 * @module
 */

import type { BridgeOptions, BridgeTopic } from "../broker/bridge_options.ts";
import { parseBrokerUrl } from "../client/url.ts";
import { topicFilterProblem, topicNameProblem } from "../codec/topic.ts";
import { boolean, fail, integer, record, text, unknownKeys } from "./_config_check.ts";

/** A bridge of the configuration: {@linkcode BridgeOptions} with the paths of its TLS files. */
export interface BridgeConfig extends Omit<BridgeOptions, "tls"> {
  /** TLS to the remote broker. */
  tls?: BridgeTlsConfig;
}

/** The TLS settings of a bridge: PEM files (read by the CLI) and the rest of `TlsOptions`. */
export interface BridgeTlsConfig {
  /** The CA certificates to verify the remote broker with, instead of the system's. */
  ca?: string;
  /** A directory of CA certificates (PEM files; mosquitto's `bridge_capath`), with or instead of `ca`. */
  caPath?: string;
  /** A client certificate (chain) and its private key, for remote brokers that require one. */
  cert?: string;
  key?: string;
  /** The name to verify the remote's certificate against; default the URL's host. */
  serverName?: string;
  /** Skip the verification of the remote's certificate. */
  insecure?: boolean;
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
 * import { bridgeTopicProblem } from "./bridge_config.ts";
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
  "localUsername",
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
  "startType",
  "threshold",
  "idleTimeout",
];

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
  for (const key of ["clientId", "localClientId", "localUsername", "username", "password"] as const) {
    if (b[key] !== undefined) bridge[key] = text(b[key], `${where}.${key}`);
  }
  if (bridge.password !== undefined && bridge.username === undefined && bridge.protocolVersion !== 5) {
    fail(`${where}.password`, "a password needs a username before MQTT 5 (protocolVersion 5)");
  }
  if (b.tls !== undefined) {
    const tls = record(b.tls, `${where}.tls`);
    unknownKeys(tls, ["ca", "caPath", "cert", "key", "serverName", "insecure"], `${where}.tls`);
    bridge.tls = {};
    for (const key of ["ca", "caPath", "cert", "key", "serverName"] as const) {
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
  if (b.startType !== undefined) {
    const type = b.startType;
    if (type !== "automatic" && type !== "lazy" && type !== "once") {
      fail(`${where}.startType`, `expected "automatic", "lazy" or "once", got ${JSON.stringify(type)}`);
    }
    bridge.startType = type;
  }
  if (b.threshold !== undefined) bridge.threshold = integer(b.threshold, `${where}.threshold`, 1, 65_535);
  if (b.idleTimeout !== undefined) {
    bridge.idleTimeout = integer(b.idleTimeout, `${where}.idleTimeout`, 1, 86_400);
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
