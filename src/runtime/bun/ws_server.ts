/**
 * MQTT over WebSocket listeners on Bun: `Bun.serve` with its `websocket` handlers, turned into Web Streams.
 * Bun's server echoes the client's first offered subprotocol unless told otherwise, so `mqtt` is set
 * explicitly on the upgrade.
 *
 * @module
 */

import type { Listener, Transport } from "../../transport/transport.ts";
import { hostPort, withRemoteAddress } from "../_address.ts";
import { AcceptQueue } from "../_accept_queue.ts";
import { offersMqtt, type WebSocketListenOptions } from "../ws_types.ts";

/** The part of Bun's ServerWebSocket used here. */
interface BunServerWebSocket {
  data: Connection;
  /** Returns -1 when backpressured (sent later), 0 when dropped, else bytes sent. */
  send(data: Uint8Array): number;
  close(code?: number, reason?: string): void;
}

interface BunWebServer {
  readonly port: number;
  readonly hostname: string;
  upgrade(request: Request, options: { headers?: Record<string, string>; data?: unknown }): boolean;
  /** The client's address, or `null` when unknown (a closed request, a Unix socket). */
  requestIP(request: Request): { address: string; family: string; port: number } | null;
  stop(closeActiveConnections?: boolean): void;
}

declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    tls?: { cert: string; key: string };
    fetch(request: Request, server: BunWebServer): Response | Promise<Response> | undefined;
    websocket: {
      open(ws: BunServerWebSocket): void;
      message(ws: BunServerWebSocket, message: string | Uint8Array): void;
      drain(ws: BunServerWebSocket): void;
      close(ws: BunServerWebSocket, code: number, reason: string): void;
    };
  }): BunWebServer;
};

/** Per-socket state: the peer's address, the readable's controller and a waiter for `drain`. */
class Connection {
  readonly remoteAddress: string | undefined;
  controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  drained: (() => void) | undefined;
  closed = false;

  constructor(remoteAddress: string | undefined) {
    this.remoteAddress = remoteAddress;
  }
}

function transportOf(ws: BunServerWebSocket): Transport {
  const connection = ws.data;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      connection.controller = controller;
    },
  });
  const close = () => {
    if (connection.closed) return;
    connection.closed = true;
    ws.close(1000);
    try {
      connection.controller?.close();
    } catch { /* already closed */ }
  };
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (connection.closed) throw new Error("The WebSocket is closed");
      const sent = ws.send(chunk);
      if (sent === 0) throw new Error("The WebSocket dropped a frame");
      if (sent === -1) await new Promise<void>((resolve) => connection.drained = resolve);
    },
    close,
    abort: close,
  });
  return withRemoteAddress({ readable, writable, close }, connection.remoteAddress);
}

/**
 * Accepts MQTT clients over WebSocket (and `wss://` with `cert` and `key`).
 *
 * @param options Address, port, path and TLS files.
 * @returns A listener of transports, one per WebSocket.
 */
export function listenWebSocket(options: WebSocketListenOptions): Promise<Listener> {
  const queue = new AcceptQueue();
  const path = options.path ?? "/mqtt";
  const server = Bun.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port,
    tls: options.cert !== undefined && options.key !== undefined
      ? { cert: options.cert, key: options.key }
      : undefined,
    fetch(request, server) {
      if (new URL(request.url).pathname !== path) {
        return options.http?.(request) ?? new Response("Not found", { status: 404 });
      }
      if (!offersMqtt(request.headers.get("sec-websocket-protocol"))) {
        return new Response("The WebSocket subprotocol must be mqtt", { status: 400 });
      }
      const peer = server.requestIP(request);
      const data = new Connection(hostPort(peer?.address, peer?.port));
      if (server.upgrade(request, { headers: { "Sec-WebSocket-Protocol": "mqtt" }, data })) {
        return undefined;
      }
      return new Response("This endpoint speaks MQTT over WebSocket", { status: 426 });
    },
    websocket: {
      open(ws) {
        queue.push(transportOf(ws));
      },
      message(ws, message) {
        if (typeof message === "string") {
          // MQTT travels in binary frames only [MQTT-6.0.0-1].
          ws.data.controller?.error(new Error("Received a text frame"));
          ws.close(1003, "binary frames only");
          return;
        }
        ws.data.controller?.enqueue(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
      },
      drain(ws) {
        const drained = ws.data.drained;
        ws.data.drained = undefined;
        drained?.();
      },
      close(ws) {
        const connection = ws.data;
        connection.closed = true;
        connection.drained?.();
        try {
          connection.controller?.close();
        } catch { /* already closed */ }
      },
    },
  });
  return Promise.resolve(queue.listener(server.port, server.hostname, () => {
    server.stop(true);
    return Promise.resolve();
  }));
}
