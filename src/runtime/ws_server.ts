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
 * @example Listen on a free port
 * ```ts ignore
 * import { listenWebSocket } from "./ws_server.ts";
 * const listener = await listenWebSocket({ port: 0 });
 * console.log(`ws://127.0.0.1:${listener.port}/mqtt`);
 * await listener.close();
 * ```
 */
export async function listenWebSocket(options: WebSocketListenOptions): Promise<Listener> {
  if ("Deno" in globalThis) return (await import("./deno/ws_server.ts")).listenWebSocket(options);
  if ("Bun" in globalThis) return (await import("./bun/ws_server.ts")).listenWebSocket(options);
  return (await import("./node/ws_server.ts")).listenWebSocket(options);
}
