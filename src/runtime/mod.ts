/**
 * Picks this runtime's network shim: `src/runtime/deno/net.ts` on Deno, `bun/net.ts` on Bun, `node/net.ts`
 * elsewhere. Each is loaded with a dynamic `import()`, so Node never loads Deno code and vice versa.
 *
 * @module
 */

import type { RuntimeNet } from "./types.ts";

export type {
  RuntimeNet,
  TcpConnectOptions,
  TcpListenOptions,
  TlsConnectOptions,
  TlsListenOptions,
} from "./types.ts";

let picked: Promise<RuntimeNet> | undefined;

/**
 * Loads the TCP and TLS functions of the runtime this code runs on, detected by `"Deno" in globalThis`,
 * then `"Bun" in globalThis`, else Node. The module is loaded once and cached.
 *
 * @returns `connectTcp`, `connectTls`, `listenTcp` and `listenTls` for this runtime.
 * @throws {Error} When the shim cannot be loaded (a runtime without TCP, such as a browser).
 *
 * @example Send bytes over TCP, whatever the runtime
 * ```ts
 * import assert from "node:assert/strict";
 * import { runtimeNet } from "@x/mqtt/runtime";
 * const net = await runtimeNet();
 * const listener = await net.listenTcp({ hostname: "127.0.0.1", port: 0 });
 * const client = await net.connectTcp({ hostname: "127.0.0.1", port: listener.port });
 * await client.writable.getWriter().write(new Uint8Array([1, 2, 3]));
 * for await (const server of listener) {
 *   const { value } = await server.readable.getReader().read();
 *   assert.deepEqual(value, new Uint8Array([1, 2, 3]));
 *   await server.close();
 *   break;
 * }
 * await client.close();
 * await listener.close();
 * ```
 */
export function runtimeNet(): Promise<RuntimeNet> {
  picked ??= load();
  return picked;
}

function load(): Promise<RuntimeNet> {
  if ("Deno" in globalThis) return import("./deno/net.ts");
  if ("Bun" in globalThis) return import("./bun/net.ts");
  return import("./node/net.ts");
}
