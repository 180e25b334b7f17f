/**
 * How connections reach the broker: opening TCP, TLS and WebSocket listeners, their accept loops with each
 * listener's `maxConnections`, and `maxConnecting` for connections that have not sent their CONNECT yet.
 * It admits or refuses connections; serving them is the broker's job.
 *
 * @module
 */

import { runtimeNet } from "../runtime/mod.ts";
import { listenWebSocket } from "../runtime/ws_server.ts";
import type { HttpHandler } from "../runtime/ws_types.ts";
import type { Listener, Transport } from "../transport/transport.ts";
import { type BrokerOptions, type ListenOptions, log } from "./broker_options.ts";
import type { Connection, ListenerCount } from "./connection.ts";

/**
 * Opens a listener: TCP, TLS with `cert` and `key`, WebSocket with `websocket`.
 *
 * @param options Address, port, TLS files and WebSocket path.
 * @returns The listener.
 */
export async function openListener(options: ListenOptions, http?: HttpHandler): Promise<Listener> {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 1883;
  if (options.websocket || options.http) {
    return await listenWebSocket({
      hostname,
      port,
      path: options.path,
      cert: options.cert,
      key: options.key,
      http,
    });
  }
  const net = await runtimeNet();
  return options.cert !== undefined && options.key !== undefined
    ? await net.listenTls({ hostname, port, cert: options.cert, key: options.key })
    : await net.listenTcp({ hostname, port });
}

/**
 * Accepts a listener's connections until it closes, refusing those past its `maxConnections` and those
 * `accept` refuses.
 *
 * @param options The broker's options, for its `log`.
 * @param listen The listener's options.
 * @param listener The listener.
 * @param accept Starts serving a connection; undefined when it is refused.
 * @returns The listener's connections, open and accepted, for metrics.
 */
export function serveListener(
  options: BrokerOptions,
  listen: ListenOptions,
  listener: Listener,
  accept: (transport: Transport, remote: string | undefined, count: ListenerCount) => Connection | undefined,
): ListenerCount {
  const limit = listen.maxConnections ?? Infinity;
  const count: ListenerCount = { url: listenerUrl(listen, listener), open: 0, accepted: 0 };
  (async () => {
    for await (const transport of listener) {
      if (count.open >= limit) {
        log(
          options,
          "warn",
          `Refused a connection on port ${listener.port}: its ${limit} connections are open`,
        );
        void Promise.resolve(transport.close()).catch(() => {});
        continue;
      }
      if (accept(transport, transport.remoteAddress, count) === undefined) {
        void Promise.resolve(transport.close()).catch(() => {});
      } else count.accepted++;
    }
  })().catch((error) =>
    log(
      options,
      "error",
      `Listener on ${listen.hostname ?? "127.0.0.1"}:${listen.port ?? 1883} failed: ${
        (error as Error).message
      }`,
    )
  );
  return count;
}

/**
 * The address a listener serves, for the log.
 *
 * @param listen The listener's options.
 * @param listener The listener.
 * @returns Its URL, such as `mqtt://127.0.0.1:1883`.
 */
export function listenerUrl(listen: ListenOptions, listener: Listener): string {
  const web = listen.websocket || listen.http;
  const scheme = (listen.http ? "http" : listen.websocket ? "ws" : "mqtt") +
    (listen.cert !== undefined ? "s" : "");
  return `${scheme}://${listener.hostname}:${listener.port}${
    web && !listen.http ? listen.path ?? "/mqtt" : ""
  }`;
}

/** The connections that have not sent their CONNECT yet, oldest first, for `maxConnecting`. */
export class ConnectingLimit {
  readonly #options: BrokerOptions;
  readonly #flushAll: (connection: Connection) => void;
  /** When each was accepted. */
  readonly #connecting = new Map<Connection, number>();

  /**
   * Keeps the limit and how to close a connection.
   *
   * @param options The broker's options: `maxConnecting` and `log`.
   * @param flushAll The broker's flush of a connection and of all it fed.
   */
  constructor(options: BrokerOptions, flushAll: (connection: Connection) => void) {
    this.#options = options;
    this.#flushAll = flushAll;
  }

  /** Counts a new connection as connecting, closing the longest-waiting ones past `maxConnecting`. */
  admit(connection: Connection): void {
    const now = performance.now();
    const connecting = this.#connecting;
    const limit = this.#options.maxConnecting ?? 1000;
    for (const [oldest, since] of connecting) {
      if (connecting.size < limit || now - since < 1000) break;
      connecting.delete(oldest);
      log(
        this.#options,
        "warn",
        `Closed a connection${oldest.remote ? ` from ${oldest.remote}` : ""} that sent no CONNECT in ${
          Math.round(now - since)
        } ms: ${limit} are connecting`,
      );
      oldest.session.handleClose(now, new Error("no CONNECT while too many were connecting"));
      void oldest.transport.close();
      this.#flushAll(oldest);
    }
    connecting.set(connection, now);
  }

  /** A connection sent its CONNECT, or closed. */
  delete(connection: Connection): void {
    this.#connecting.delete(connection);
  }
}
