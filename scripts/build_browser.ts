/**
 * Builds the browser bundle of the client: `mod.ts` (connect, MqttClient, errors) as one minified ES module,
 * WebSocket transport only (`ws://`, `wss://`), no polyfills. Prints its minified and gzipped sizes.
 *
 *     node scripts/build_browser.ts [--out dist/browser/mqtt.min.js]   # or: deno run -A, bun
 *
 * In a page:
 *
 *     <script type="module">
 *       import { connect } from "./mqtt.min.js";
 *       const client = await connect("ws://broker.example:9001/mqtt");
 *     </script>
 *
 * @module
 */

import { build, type Plugin } from "esbuild";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const flag = process.argv.indexOf("--out");
const out = resolve(flag === -1 ? join(root, "dist", "browser", "mqtt.min.js") : process.argv[flag + 1]);

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

await build({
  entryPoints: [join(root, "mod.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  outfile: out,
  plugins: [noSockets],
  logLevel: "warning",
});
const bytes = readFileSync(out);
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`${out}: ${kib(bytes.length)} minified, ${kib(gzipSync(bytes, { level: 9 }).length)} gzipped`);
