/**
 * MQTT over WebSocket listeners on Node: `node:http` / `node:https` upgraded by the `ws` package, the npm
 * build's one optional peer dependency (Node has no WebSocket server of its own).
 *
 * @module
 */

import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Listener } from "../../transport/transport.ts";
import { fromWebSocket, type WebSocketLike } from "../../transport/websocket.ts";
import { hostPort, withRemoteAddress } from "../_address.ts";
import { AcceptQueue } from "../_accept_queue.ts";
import { type HttpHandler, offersMqtt, type WebSocketListenOptions } from "../ws_types.ts";

/**
 * Accepts MQTT clients over WebSocket (and `wss://` with `cert` and `key`).
 *
 * @param options Address, port, path and TLS files.
 * @returns A listener of transports, one per WebSocket.
 * @throws {Error} When the `ws` package is not installed.
 */
export async function listenWebSocket(options: WebSocketListenOptions): Promise<Listener> {
  let ws: typeof import("ws") | undefined;
  try {
    ws = await import("ws");
  } catch (cause) {
    // An HTTP listener still serves its pages; its WebSocket path answers 501.
    if (options.http === undefined) {
      throw new Error(
        "Cannot listen for WebSocket clients on Node: install the optional peer dependency ws",
        {
          cause,
        },
      );
    }
  }
  const queue = new AcceptQueue();
  const path = options.path ?? "/mqtt";
  const server: Server = options.cert !== undefined && options.key !== undefined
    ? createHttpsServer({ cert: options.cert, key: options.key })
    : createHttpServer();
  const http = options.http;
  server.on("request", (request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (url.pathname === path) {
      response.writeHead(ws === undefined ? 501 : 426, { "content-type": "text/plain" }).end(
        ws === undefined
          ? "MQTT over WebSocket needs the ws package on Node"
          : "This endpoint speaks MQTT over WebSocket",
      );
    } else if (http === undefined) {
      response.writeHead(404, { "content-type": "text/plain" }).end("Not found");
    } else {
      void answer(http, request, response);
    }
  });
  const wss = ws === undefined ? undefined : new ws.WebSocketServer({
    server,
    path,
    handleProtocols: (protocols) => protocols.has("mqtt") ? "mqtt" : false,
    verifyClient: (info: { req: { headers: Record<string, string | string[] | undefined> } }) =>
      offersMqtt(String(info.req.headers["sec-websocket-protocol"] ?? "")),
  });
  wss?.on("connection", (socket, request) => {
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
      wss?.close();
      server.close(() => resolve());
      server.closeAllConnections?.();
    }));
}

/** Answers a `node:http` request with a web-standard handler. */
async function answer(http: HttpHandler, request: IncomingMessage, response: ServerResponse): Promise<void> {
  try {
    const chunks: Uint8Array[] = [];
    if (request.method !== "GET" && request.method !== "HEAD") {
      for await (const chunk of request) chunks.push(chunk as Uint8Array);
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
    const body = chunks.length === 0 ? undefined : new Blob(chunks as BlobPart[]);
    const answered = await http(
      new Request(new URL(request.url ?? "/", `http://${request.headers.host ?? "localhost"}`), {
        method: request.method,
        headers,
        body,
      }),
    );
    const out: Record<string, string> = {};
    answered.headers.forEach((value, name) => out[name] = value);
    response.writeHead(answered.status, out).end(new Uint8Array(await answered.arrayBuffer()));
  } catch (error) {
    if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
    response.end(`Cannot answer: ${(error as Error).message}`);
  }
}
