/**
 * The library outside `src/runtime/node/` uses web standards only: no Node globals (`Buffer`, `process`,
 * `require`, `__dirname`, `global`) and no `node:` modules leak into code that browsers, Deno and Bun load
 * (Bun's and Deno's own shims may use the `node:` modules their runtime provides).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

function* sources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

/** The code of a file without its comments (block, JSDoc and line comments) and string contents of examples. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

const FORBIDDEN: [RegExp, string][] = [
  [/\bBuffer\b/, "Buffer"],
  [/(?<![\w./])process\s*(\.(?!ts\b)|\[)/, "process"],
  [/\brequire\s*\(/, "require()"],
  [/\b__dirname\b|\b__filename\b/, "__dirname"],
  [/\bglobal\s*\./, "global"],
  [/["']node:[a-z_/]+["']/, "a node: module"],
];

test("no Node globals or node: modules outside src/runtime/node/", () => {
  const offenders: string[] = [];
  const files = [
    join(root, "mod.ts"),
    join(root, "client.ts"),
    join(root, "broker.ts"),
    ...sources(join(root, "src")),
  ];
  for (const file of files) {
    const name = relative(root, file);
    if (name.startsWith(join("src", "runtime", "node"))) continue;
    const text = code(readFileSync(file, "utf8"));
    // Bun's and Deno's own shims may import the node: modules those runtimes provide; nothing else may.
    const shim = name.startsWith(join("src", "runtime", "bun")) ||
      name.startsWith(join("src", "runtime", "deno"));
    for (const [pattern, what] of FORBIDDEN) {
      if (shim && what === "a node: module") continue;
      if (pattern.test(text)) offenders.push(`${name}: ${what}`);
    }
  }
  assert.deepEqual(offenders, []);
  assert.ok(files.length > 50, `only ${files.length} files scanned`);
});

test("the scan catches what it looks for", () => {
  const caught = (source: string) => FORBIDDEN.some(([pattern]) => pattern.test(code(source)));
  assert.equal(caught(`const b = Buffer.from("x");`), true);
  assert.equal(caught(`import process from "node:process";`), true);
  assert.equal(caught(`if (process.env.X) {}`), true);
  assert.equal(caught(`import { runtimeProcess } from "./src/runtime/process.ts";`), false);
  assert.equal(caught(`/** Bun's Buffer, in a comment */ const x = 1; // process.exit()`), false);
});
