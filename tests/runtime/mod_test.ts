import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runtimeNet } from "../../src/runtime/mod.ts";

const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";

test(`runtimeNet() loads src/runtime/${runtime}/net.ts on ${runtime}, once`, async () => {
  const net = await runtimeNet();
  const own = await import(`../../src/runtime/${runtime}/net.ts`);
  assert.equal(net, own);
  assert.equal(await runtimeNet(), net);
  for (const name of ["connectTcp", "connectTls", "listenTcp", "listenTls"] as const) {
    assert.equal(typeof net[name], "function", name);
  }
});

test("the three runtime shims export the same names", () => {
  const exported = (name: string) => {
    const source = readFileSync(new URL(`../../src/runtime/${name}/net.ts`, import.meta.url), "utf8");
    return [...source.matchAll(/^export (?:async )?function (\w+)/gm)].map((m) => m[1]).sort();
  };
  assert.deepEqual(exported("deno"), ["connectTcp", "connectTls", "listenTcp", "listenTls"]);
  assert.deepEqual(exported("bun"), exported("deno"));
  assert.deepEqual(exported("node"), exported("deno"));
});

/** Every `.ts` file under `dir`. */
function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (statSync(path).isDirectory()) return walk(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

test("Deno., Bun. and node: appear in code only under src/runtime/{deno,bun,node}/", () => {
  const src = fileURLToPath(new URL("../../src", import.meta.url));
  const offenders: string[] = [];
  for (const path of walk(src)) {
    if (/\/src\/runtime\/(deno|bun|node)\//.test(path)) continue;
    const code = readFileSync(path, "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "") // block and doc comments
      .replace(/(^|[^:])\/\/.*$/gm, "$1"); // line comments (not "ws://")
    code.split("\n").forEach((line, i) => {
      if (/\bDeno\.|\bBun\.|["'`]node:/.test(line)) {
        offenders.push(`${path.slice(src.length)}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(offenders, []);
});
