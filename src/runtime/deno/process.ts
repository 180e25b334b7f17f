/**
 * Process services on Deno.
 *
 * @module
 */

import type { RuntimeProcess } from "../process_types.ts";

const encoder = new TextEncoder();

function writeAll(writer: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(writer.writeSync(bytes));
}

/** Deno's arguments, streams, files, signals and exit. */
export const runtimeProcess: RuntimeProcess = {
  args: () => [...Deno.args],
  stdout: (text) => writeAll(Deno.stdout, text),
  stderr: (text) => writeAll(Deno.stderr, text),
  stdin: () => Deno.stdin.readable,
  hostname: () => Deno.hostname(),
  readFile: (path) => Deno.readFile(path),
  readDir: (path) => Array.fromAsync(Deno.readDir(path), (entry) => entry.name),
  writeFile: (path, data) => Deno.writeFile(path, data),
  onInterrupt(listener) {
    Deno.addSignalListener("SIGINT", listener);
    Deno.addSignalListener("SIGTERM", listener);
    return () => {
      Deno.removeSignalListener("SIGINT", listener);
      Deno.removeSignalListener("SIGTERM", listener);
    };
  },
  exit: (code) => Deno.exit(code),
};
