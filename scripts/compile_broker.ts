/**
 * Compiles the broker into one executable with `bun build --compile`: Bun's runtime, the broker and its
 * SQLite persistence in a single file that needs nothing installed.
 *
 *     bun scripts/compile_broker.ts [--out dist/x-mqtt-broker]    # or: node / deno run -A
 *     dist/x-mqtt-broker --port 1883 --persistence sqlite:broker.db
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const flag = process.argv.indexOf("--out");
const out = resolve(flag === -1 ? join(root, "dist", "x-mqtt-broker") : process.argv[flag + 1]);
const bun = "Bun" in globalThis ? process.execPath : join(root, "node_modules", ".bin", "bun");
const result = spawnSync(bun, ["build", "--compile", "--minify", join(root, "broker.ts"), "--outfile", out], {
  stdio: "inherit",
});
if (result.status !== 0) {
  console.error("bun build --compile failed");
  process.exit(1);
}
console.log(`${out}: ${(statSync(out).size / 1024 / 1024).toFixed(1)} MiB`);
