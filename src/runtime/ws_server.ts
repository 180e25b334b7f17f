/**
 * Picks this runtime's WebSocket listener (`{deno,bun,node}/ws_server.ts`), loaded with a dynamic `import()`.
 *
 * @module
 */

import type { Listener } from "../transport/transport.ts";
import type { WebSocketListenOptions } from "./ws_types.ts";

export type { WebSocketListenOptions } from "./ws_types.ts";

/**
 * Accepts MQTT clients over WebSocket on whatever runtime this is.
 *
 * @param options Address, port, path (default `/mqtt`) and TLS files for `wss://`.
 * @returns A listener of transports.
 *
 * @example Listen on a free port and accept one client
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectWebSocket } from "../transport/websocket.ts";
 * import { listenWebSocket } from "./ws_server.ts";
 * const listener = await listenWebSocket({ hostname: "127.0.0.1", port: 0 });
 * const client = await connectWebSocket(`ws://127.0.0.1:${listener.port}/mqtt`);
 * for await (const server of listener) {
 *   await client.writable.getWriter().write(new Uint8Array([0xc0, 0x00])); // PINGREQ
 *   const { value } = await server.readable.getReader().read();
 *   assert.deepEqual(value, new Uint8Array([0xc0, 0x00]));
 *   await server.close();
 *   break;
 * }
 * await client.close();
 * await listener.close();
 * ```
 */
export async function listenWebSocket(options: WebSocketListenOptions): Promise<Listener> {
  if ("Deno" in globalThis) return (await import("./deno/ws_server.ts")).listenWebSocket(options);
  if ("Bun" in globalThis) return (await import("./bun/ws_server.ts")).listenWebSocket(options);
  return (await import("./node/ws_server.ts")).listenWebSocket(options);
}
