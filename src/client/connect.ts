/**
 * `connect()`: the front door of the client. Opens the transport a URL names (TCP, TLS, WebSocket) on
 * whichever runtime this is, and resolves with a connected {@linkcode MqttClient}.
 *
 * @module
 */

import { runtimeNet } from "../runtime/mod.ts";
import type { Transport } from "../transport/transport.ts";
import { connectWebSocket } from "../transport/websocket.ts";
import { type ClientOptions, MqttClient } from "./mqtt_client.ts";
import { type BrokerAddress, parseBrokerUrl } from "./url.ts";

/** TLS settings for `mqtts://` and `wss://`. */
export interface TlsOptions {
  /** PEM certificates of the CAs to trust instead of the system's. */
  caCerts?: string[];
  /** PEM client certificate and key, for brokers that require one. */
  cert?: string;
  /** The PEM private key of {@linkcode TlsOptions.cert}. */
  key?: string;
  /** The name to verify the certificate against; default the URL's host. */
  serverName?: string;
  /** Skip certificate verification. Unsafe; for tests against self-signed brokers only. */
  insecure?: boolean;
}

/** Options of {@linkcode connect}: the client's options, with a URL instead of a transport factory. */
export interface ConnectOptions extends Omit<ClientOptions, "transport"> {
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://`, with optional `user:password@`, port and WebSocket path. */
  url?: string;
  /**
   * Several brokers (the nodes of a cluster, say), as URLs: the first connection goes to the first, and each
   * new attempt (after a failed one, or a lost connection) to the next in turn, as MQTT.js's `servers`; an
   * attempt whose broker does not answer goes on to the next at once, each at most once. The user name and
   * password of the first URL that has them apply unless `username` and `password` are given.
   */
  servers?: string[];
  /** A transport to use instead of a URL (an in-memory pair, a custom socket…). */
  transport?: ClientOptions["transport"];
  /** TLS settings for `mqtts://` and `wss://` URLs. */
  tls?: TlsOptions;
}

/**
 * Opens the transport for a broker address.
 *
 * @param address The parsed URL.
 * @param tls TLS settings.
 * @param signal Aborts the attempt.
 * @returns The open transport.
 *
 * @example Open a TCP transport to a local broker
 * ```ts
 * import assert from "node:assert/strict";
 * import { Broker } from "@x/mqtt/broker";
 * import { openTransport, parseBrokerUrl } from "@x/mqtt/client";
 * const broker = new Broker();
 * const { port } = await broker.listen({ port: 0 });
 * const address = parseBrokerUrl(`mqtt://127.0.0.1:${port}`);
 * const transport = await openTransport(address, {}, AbortSignal.timeout(5_000));
 * assert.ok(transport.writable instanceof WritableStream);
 * await transport.close();
 * await broker.close();
 * ```
 */
export async function openTransport(
  address: BrokerAddress,
  tls: TlsOptions,
  signal: AbortSignal,
): Promise<Transport> {
  const { protocol, hostname, port } = address;
  if (protocol === "ws" || protocol === "wss") {
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    return await connectWebSocket(`${protocol}://${host}:${port}${address.path}`, { signal });
  }
  const net = await runtimeNet();
  if (protocol === "mqtt") return await net.connectTcp({ hostname, port, signal });
  return await net.connectTls({
    hostname,
    port,
    signal,
    caCerts: tls.caCerts,
    cert: tls.cert,
    key: tls.key,
    serverName: tls.serverName,
    insecure: tls.insecure,
  });
}

/**
 * Connects to a broker.
 *
 * @param target A URL (`mqtt://user:pass@host:1883`, `mqtts://`, `ws://host/mqtt`, `wss://`), several (tried in
 *   turn, see {@linkcode ConnectOptions.servers}), or options.
 * @param options More options when the first argument is a URL.
 * @returns A connected client, once the broker accepted the CONNECT.
 * @throws {MqttError} The broker's refusal (`source: "peer"`) or a transport failure (`source: "transport"`).
 * @throws {TypeError} When the URL is not an MQTT URL.
 *
 * @example Connect, publish, close
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker();
 * const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await connect(`mqtt://127.0.0.1:${port}`, { clientId: "sensor-1" });
 * assert.ok(broker.machine.hasSession("sensor-1"));
 * await client.publish("sensors/1/temperature", "21.5", { qos: 1 });
 * await client.close();
 * await broker.close();
 * ```
 *
 * @example Connect over an in-memory transport, without sockets
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * import { memoryPair } from "@x/mqtt/transport/memory";
 * const broker = new Broker();
 * const client = await connect({
 *   clientId: "in-memory",
 *   transport: () => {
 *     const [clientSide, brokerSide] = memoryPair();
 *     void broker.handle(brokerSide);
 *     return Promise.resolve(clientSide);
 *   },
 * });
 * assert.equal(broker.connectionCount, 1);
 * await client.close();
 * await broker.close();
 * ```
 */
export async function connect(
  target: string | string[] | ConnectOptions,
  options: ConnectOptions = {},
): Promise<MqttClient> {
  const merged: ConnectOptions = typeof target === "string"
    ? { ...options, url: target }
    : Array.isArray(target)
    ? { ...options, servers: target }
    : target;
  let transport = merged.transport;
  let { username, password } = merged;
  if (transport === undefined) {
    const urls = merged.servers ?? (merged.url === undefined ? [] : [merged.url]);
    if (urls.length === 0) throw new TypeError("Cannot connect: give a URL or a transport");
    const addresses = urls.map((url) => parseBrokerUrl(url));
    const credentials = addresses.find((address) => address.username !== undefined);
    username ??= credentials?.username;
    password ??= credentials?.password;
    const tls = merged.tls ?? {};
    // Each attempt to the next broker in turn; within one attempt, on to the next when one does not answer.
    let next = 0;
    transport = async (signal) => {
      for (let tried = 1;; tried++) {
        try {
          return await openTransport(addresses[next++ % addresses.length], tls, signal);
        } catch (error) {
          if (tried >= addresses.length || signal.aborted) throw error;
        }
      }
    };
  }
  const client = new MqttClient({ ...merged, transport, username, password });
  await client.start();
  return client;
}
