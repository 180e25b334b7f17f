/**
 * Node module hooks that run the tests against the built npm package: every import of a library source
 * (`mod.ts`, `client.ts`, `broker.ts`, `src/**.ts`) resolves to its build in `npm/esm/` instead. Tests,
 * scripts and node_modules stay as they are.
 *
 *     node scripts/build_npm.ts
 *     node --import ./scripts/npm_hooks.ts --test 'tests/client/**' ...
 *
 * @module
 */

import { existsSync } from "node:fs";
import { registerHooks } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = pathToFileURL(fileURLToPath(new URL("..", import.meta.url))).href;
const library = /^(mod|client|broker)\.ts$|^src\/.*\.ts$/;

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    if (!resolved.url.startsWith(root)) return resolved;
    const relative = resolved.url.slice(root.length);
    if (!library.test(relative)) return resolved;
    const built = `${root}npm/esm/${relative.replace(/\.ts$/, ".js")}`;
    if (!existsSync(fileURLToPath(built))) {
      throw new Error(`${relative} is not in the npm build (npm/esm): run node scripts/build_npm.ts`);
    }
    return { ...resolved, url: built, format: "module" };
  },
});
