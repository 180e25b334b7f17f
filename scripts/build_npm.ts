/**
 * Builds the npm package into `npm/`: ESM JavaScript and declarations from the TypeScript sources (TypeScript's
 * `rewriteRelativeImportExtensions`, no type check: `deno check` does that), declaration imports rewritten to
 * `.js` so every TypeScript consumer resolves them, a `package.json` with the same exports as `deno.json`, the
 * `x-mqtt` command (`x-mqtt broker|pub|sub|passwd`), README and license.
 *
 * Run from the repository root (node_modules installed):
 *
 *     node scripts/build_npm.ts [--out DIR]   # or: deno run -A scripts/build_npm.ts, bun scripts/build_npm.ts
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outFlag = process.argv.indexOf("--out");
/** `npm/`, or the directory after `--out`. */
const out = outFlag === -1 ? join(root, "npm") : resolve(process.argv[outFlag + 1]);
const deno = JSON.parse(readFileSync(join(root, "deno.json"), "utf8")) as {
  name: string;
  version: string;
  license: string;
  exports: Record<string, string>;
};

/** The entry points: every export, and the command line. */
const entries = [...Object.values(deno.exports), "./src/cli/main.ts", "./src/runtime/process.ts"];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const tsconfig = join(out, "tsconfig.build.json");
writeFileSync(
  tsconfig,
  JSON.stringify(
    {
      compilerOptions: {
        target: "es2022",
        module: "nodenext",
        moduleResolution: "nodenext",
        rewriteRelativeImportExtensions: true,
        declaration: true,
        // Types are checked by `deno check`; the runtime shims use Deno's and Bun's own globals.
        noCheck: true,
        skipLibCheck: true,
        verbatimModuleSyntax: true,
        erasableSyntaxOnly: true,
        lib: ["es2023", "dom", "dom.iterable"],
        types: [],
        rootDir: relative(out, root) || ".",
        outDir: "esm",
        newLine: "lf",
      },
      files: entries.map((entry) => join(relative(out, root), entry)),
    },
    null,
    2,
  ),
);
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const compiled = spawnSync(process.execPath.endsWith("node") ? process.execPath : "node", [
  tsc,
  "-p",
  tsconfig,
], {
  stdio: "inherit",
});
if (compiled.status !== 0) {
  console.error("tsc failed");
  process.exit(1);
}
rmSync(tsconfig);

// Declarations keep the sources' `.ts` specifiers; consumers resolve `.js`.
let declarations = 0;
for (const file of walk(join(out, "esm"))) {
  if (!file.endsWith(".d.ts")) continue;
  const text = readFileSync(file, "utf8");
  const fixed = text.replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']*?)\.ts(["'])/g, "$1$2.js$3");
  if (fixed !== text) writeFileSync(file, fixed);
  declarations++;
}

const exportsMap: Record<string, { types: string; default: string }> = {};
for (const [name, path] of Object.entries(deno.exports)) {
  const base = path.replace(/^\.\//, "./esm/").replace(/\.ts$/, "");
  exportsMap[name] = { types: `${base}.d.ts`, default: `${base}.js` };
}
mkdirSync(join(out, "bin"));
writeFileSync(
  join(out, "bin", "x-mqtt.js"),
  `#!/usr/bin/env node
import { runtimeProcess } from "../esm/src/runtime/process.js";
import { runMain } from "../esm/src/cli/main.js";

const proc = await runtimeProcess();
proc.exit(await runMain(proc));
`,
);
chmodSync(join(out, "bin", "x-mqtt.js"), 0o755);
const natsPackages = ["@nats-io/transport-node", "@nats-io/jetstream", "@nats-io/kv"];
const packageJson = {
  name: deno.name,
  version: deno.version,
  description: "MQTT 3.1, 3.1.1 and 5.0 client and broker on web standards, for Deno, Bun, Node and browsers",
  license: deno.license,
  type: "module",
  engines: { node: ">=22.5" },
  exports: { ...exportsMap, "./package.json": "./package.json" },
  bin: { "x-mqtt": "./bin/x-mqtt.js" },
  files: ["esm", "bin", "README.md", "LICENSE"],
  keywords: ["mqtt", "mqtt5", "broker", "client", "iot", "websocket", "nats"],
  sideEffects: false,
  // Optional: `ws` for the WebSocket listener on Node, the NATS client v3 for a cluster (`./cluster`). The
  // sources load them with a dynamic import() and tsc leaves those imports as they are.
  peerDependencies: { ws: ">=8", ...Object.fromEntries(natsPackages.map((name) => [name, "^3.4.0"])) },
  peerDependenciesMeta: Object.fromEntries(["ws", ...natsPackages].map((name) => [name, { optional: true }])),
};
writeFileSync(join(out, "package.json"), JSON.stringify(packageJson, null, 2) + "\n");
copyFileSync(join(root, "README.md"), join(out, "README.md"));
copyFileSync(join(root, "LICENSE"), join(out, "LICENSE"));
console.log(
  `npm/: ${deno.name}@${deno.version}, ${declarations} declaration files, exports ${
    Object.keys(exportsMap).join(" ")
  }`,
);

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else yield path;
  }
}
