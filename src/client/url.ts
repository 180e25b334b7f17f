/**
 * Broker URLs: `{mqtt,mqtts,ws,wss}://[user[:password]@]host[:port][/path]`.
 *
 * @module
 */

/** A broker address taken apart. */
export interface BrokerAddress {
  /** `mqtt` (TCP), `mqtts` (TLS), `ws` (WebSocket) or `wss` (WebSocket over TLS). */
  protocol: "mqtt" | "mqtts" | "ws" | "wss";
  /** The host name or IP address, without the brackets of an IPv6 literal. */
  hostname: string;
  /** The port; when the URL has none, 1883, 8883, 80 or 443 by protocol. */
  port: number;
  /** The WebSocket path; `/mqtt` when the URL has none. */
  path: string;
  /** The user name of the URL, percent-decoded. */
  username?: string;
  /** The password of the URL, percent-decoded. */
  password?: string;
}

const DEFAULT_PORTS = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 } as const;

/**
 * Parses a broker URL. Ports default to 1883, 8883, 80 and 443; `tcp:` and `ssl:`/`tls:` are accepted as
 * `mqtt:` and `mqtts:`, as MQTT.js accepts them.
 *
 * @param url The URL.
 * @returns The address.
 * @throws {TypeError} When the URL cannot be parsed or its scheme is not an MQTT one.
 *
 * @example Parse a URL with credentials
 * ```ts
 * import { parseBrokerUrl } from "@x/mqtt/client";
 * console.log(parseBrokerUrl("mqtts://ada:secret@broker.example"));
 * // { protocol: "mqtts", hostname: "broker.example", port: 8883, path: "/mqtt", username: "ada", password: "secret" }
 * ```
 */
export function parseBrokerUrl(url: string): BrokerAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new TypeError(`Cannot parse broker URL "${url}"`, { cause });
  }
  const scheme = parsed.protocol.slice(0, -1);
  const protocol = scheme === "tcp" ? "mqtt" : scheme === "ssl" || scheme === "tls" ? "mqtts" : scheme;
  if (protocol !== "mqtt" && protocol !== "mqtts" && protocol !== "ws" && protocol !== "wss") {
    throw new TypeError(`Cannot use broker URL "${url}": the scheme must be mqtt, mqtts, ws or wss`);
  }
  if (parsed.hostname === "") throw new TypeError(`Cannot use broker URL "${url}": it has no host`);
  const address: BrokerAddress = {
    protocol,
    hostname: parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname,
    port: parsed.port === "" ? DEFAULT_PORTS[protocol] : Number(parsed.port),
    path: parsed.pathname === "" || parsed.pathname === "/" ? "/mqtt" : parsed.pathname + parsed.search,
  };
  if (parsed.username !== "") address.username = decodeURIComponent(parsed.username);
  if (parsed.password !== "") address.password = decodeURIComponent(parsed.password);
  return address;
}
