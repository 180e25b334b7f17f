/**
 * Builds the browser bundle of the client (see `_browser_bundle.ts`) and prints its minified and gzipped
 * sizes. `--embed` also writes the broker's copy, which its HTTP listener serves at `/mqtt.min.js`; run it
 * after changing the client (a test says when the copy is behind).
 *
 *     node scripts/build_browser.ts [--out dist/browser/mqtt.min.js] [--embed]   # or: deno run -A, bun
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

import { gzipSync } from "node:zlib";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { browserBundle, EMBEDDED_PATH, embeddedModule } from "./_browser_bundle.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const flag = process.argv.indexOf("--out");
const out = resolve(flag === -1 ? join(root, "dist", "browser", "mqtt.min.js") : process.argv[flag + 1]);

const code = await browserBundle();
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, code);
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const bytes = new TextEncoder().encode(code);
console.log(`${out}: ${kib(bytes.length)} minified, ${kib(gzipSync(bytes, { level: 9 }).length)} gzipped`);
if (process.argv.includes("--embed")) {
  writeFileSync(EMBEDDED_PATH, embeddedModule(code));
  console.log(`${EMBEDDED_PATH}: written`);
}
