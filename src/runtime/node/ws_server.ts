/**
 * MQTT over WebSocket listeners on Node: `node:http` / `node:https` upgraded by the `ws` package, the npm
 * build's one optional peer dependency (Node has no WebSocket server of its own).
 *
 * @module
 */

import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Listener } from "../../transport/transport.ts";
import { fromWebSocket, type WebSocketLike } from "../../transport/websocket.ts";
import { hostPort, withRemoteAddress } from "../_address.ts";
import { AcceptQueue } from "../_accept_queue.ts";
import { offersMqtt, type WebSocketListenOptions } from "../ws_types.ts";

/**
 * Accepts MQTT clients over WebSocket (and `wss://` with `cert` and `key`).
 *
 * @param options Address, port, path and TLS files.
 * @returns A listener of transports, one per WebSocket.
 * @throws {Error} When the `ws` package is not installed.
 */
export async function listenWebSocket(options: WebSocketListenOptions): Promise<Listener> {
  let ws: typeof import("ws");
  try {
    ws = await import("ws");
  } catch (cause) {
    throw new Error("Cannot listen for WebSocket clients on Node: install the optional peer dependency ws", {
      cause,
    });
  }
  const queue = new AcceptQueue();
  const path = options.path ?? "/mqtt";
  const server: Server = options.cert !== undefined && options.key !== undefined
    ? createHttpsServer({ cert: options.cert, key: options.key })
    : createHttpServer();
  server.on("request", (_request, response) => {
    response.writeHead(426, { "content-type": "text/plain" }).end("This endpoint speaks MQTT over WebSocket");
  });
  const wss = new ws.WebSocketServer({
    server,
    path,
    handleProtocols: (protocols) => protocols.has("mqtt") ? "mqtt" : false,
    verifyClient: (info: { req: { headers: Record<string, string | string[] | undefined> } }) =>
      offersMqtt(String(info.req.headers["sec-websocket-protocol"] ?? "")),
  });
  wss.on("connection", (socket, request) => {
    socket.binaryType = "arraybuffer";
    const remoteAddress = hostPort(request.socket.remoteAddress, request.socket.remotePort);
    queue.push(withRemoteAddress(fromWebSocket(socket as unknown as WebSocketLike), remoteAddress));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return queue.listener(port, options.hostname ?? "127.0.0.1", () =>
    new Promise<void>((resolve) => {
      wss.close();
      server.close(() => resolve());
      server.closeAllConnections?.();
    }));
}
