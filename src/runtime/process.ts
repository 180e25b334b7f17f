/**
 * Picks this runtime's process services (`{deno,bun,node}/process.ts`), loaded with a dynamic `import()`.
 *
 * @module
 */

import type { RuntimeProcess } from "./process_types.ts";

export type { RuntimeProcess } from "./process_types.ts";

/**
 * Loads the process services of the runtime this code runs on.
 *
 * @returns Arguments, standard streams, files, signals and exit.
 *
 * @example Print the arguments
 * ```ts
 * import assert from "node:assert/strict";
 * import { runtimeProcess } from "./process.ts";
 * const proc = await runtimeProcess();
 * assert.ok(proc.args().every((arg) => typeof arg === "string"));
 * proc.stdout(`arguments: ${proc.args().join(" ")}\n`);
 * ```
 */
export async function runtimeProcess(): Promise<RuntimeProcess> {
  if ("Deno" in globalThis) return (await import("./deno/process.ts")).runtimeProcess;
  if ("Bun" in globalThis) return (await import("./bun/process.ts")).runtimeProcess;
  return (await import("./node/process.ts")).runtimeProcess;
}
