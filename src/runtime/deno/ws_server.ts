/**
 * MQTT over WebSocket listeners on Deno: `Deno.serve` and `Deno.upgradeWebSocket`, subprotocol `mqtt` selected
 * explicitly.
 *
 * @module
 */

import type { Listener } from "../../transport/transport.ts";
import { fromWebSocket } from "../../transport/websocket.ts";
import { hostPort, withRemoteAddress } from "../_address.ts";
import { AcceptQueue } from "../_accept_queue.ts";
import { offersMqtt, type WebSocketListenOptions } from "../ws_types.ts";

/**
 * Accepts MQTT clients over WebSocket (and `wss://` with `cert` and `key`).
 *
 * @param options Address, port, path and TLS files.
 * @returns A listener of transports, one per WebSocket.
 */
export function listenWebSocket(options: WebSocketListenOptions): Promise<Listener> {
  const queue = new AcceptQueue();
  const path = options.path ?? "/mqtt";
  const abort = new AbortController();
  return new Promise((resolve, reject) => {
    try {
      const tls = options.cert !== undefined && options.key !== undefined
        ? { cert: options.cert, key: options.key }
        : {};
      Deno.serve({
        hostname: options.hostname ?? "127.0.0.1",
        port: options.port,
        signal: abort.signal,
        ...tls,
        onListen: (address) => {
          resolve(queue.listener(address.port, address.hostname, () => {
            abort.abort();
            return Promise.resolve();
          }));
        },
        handler: (request, info) => {
          if (new URL(request.url).pathname !== path) {
            return options.http?.(request) ?? new Response("Not found", { status: 404 });
          }
          if ((request.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
            return new Response("This endpoint speaks MQTT over WebSocket", { status: 426 });
          }
          if (!offersMqtt(request.headers.get("sec-websocket-protocol"))) {
            return new Response("The WebSocket subprotocol must be mqtt", { status: 400 });
          }
          // Read before the upgrade: afterwards the request is closed and `remoteAddr` throws.
          const remoteAddress = hostPort(info.remoteAddr.hostname, info.remoteAddr.port);
          const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "mqtt" });
          socket.binaryType = "arraybuffer";
          socket.addEventListener(
            "open",
            () => queue.push(withRemoteAddress(fromWebSocket(socket), remoteAddress)),
            { once: true },
          );
          return response;
        },
      });
    } catch (error) {
      reject(error);
    }
  });
}
