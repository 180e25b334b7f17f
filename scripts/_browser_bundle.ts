/**
 * The browser bundle of the client, built with esbuild: `mod.ts` (connect, MqttClient, errors) as one minified
 * ES module, WebSocket transport only (`ws://`, `wss://`), no polyfills. `scripts/build_browser.ts` writes it
 * out; the broker serves a copy of it (`src/broker/dashboard/client_bundle.ts`, written by
 * `build_browser.ts --embed`) at `/mqtt.min.js` for its dashboard page.
 *
 * @module
 */

import { build, type Plugin } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Where the broker's copy of the bundle lives. */
export const EMBEDDED_PATH = join(root, "src", "broker", "dashboard", "client_bundle.ts");

/** Browsers have no TCP or TLS sockets: the runtime shims give way to a clear error. */
const noSockets: Plugin = {
  name: "no-sockets",
  setup(b) {
    b.onResolve({ filter: /[/\\]runtime[/\\]mod\.ts$/ }, () => ({ path: "runtime", namespace: "browser" }));
    b.onLoad({ filter: /.*/, namespace: "browser" }, () => ({
      contents: `export function runtimeNet() {
  return Promise.reject(new TypeError("Browsers have no TCP or TLS sockets: connect with ws:// or wss://"));
}`,
      loader: "js",
    }));
  },
};

/**
 * Builds the bundle.
 *
 * @returns Its code.
 */
export async function browserBundle(): Promise<string> {
  const result = await build({
    entryPoints: [join(root, "mod.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    minify: true,
    write: false,
    plugins: [noSockets],
    logLevel: "warning",
  });
  return result.outputFiles[0].text;
}

/**
 * The broker's copy of a bundle, as the text of a module.
 *
 * @param code The bundle.
 * @returns The module's text.
 */
export function embeddedModule(code: string): string {
  return `// Written by \`node scripts/build_browser.ts --embed\` from the client's sources: do not edit. A test fails
// when it is behind them (tests/npm/browser_test.ts).

/** The client's browser bundle (\`scripts/_browser_bundle.ts\`), which the broker serves at \`/mqtt.min.js\`. */
export const CLIENT_BUNDLE: string = ${JSON.stringify(code)};
`;
}
