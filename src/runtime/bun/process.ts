/**
 * Process services on Bun: Bun's own file and stdin APIs, and its Node-compatible `process` for the rest.
 *
 * @module
 */

import { readdir } from "node:fs/promises";
import { hostname } from "node:os";
import type { RuntimeProcess } from "../process_types.ts";

interface BunProcess {
  argv: string[];
  stdout: { write(text: string): boolean };
  stderr: { write(text: string): boolean };
  on(signal: string, listener: () => void): void;
  off(signal: string, listener: () => void): void;
  exit(code: number): never;
}

declare const Bun: {
  stdin: { stream(): ReadableStream<Uint8Array> };
  file(path: string): { bytes(): Promise<Uint8Array> };
  write(path: string, data: Uint8Array): Promise<number>;
};

const bunProcess = (globalThis as unknown as { process: BunProcess }).process;

/** Bun's arguments, streams, files, signals and exit. */
export const runtimeProcess: RuntimeProcess = {
  args: () => bunProcess.argv.slice(2),
  stdout: (text) => void bunProcess.stdout.write(text),
  stderr: (text) => void bunProcess.stderr.write(text),
  stdin: () => Bun.stdin.stream(),
  hostname: () => hostname(),
  readFile: (path) => Bun.file(path).bytes(),
  readDir: (path) => readdir(path),
  writeFile: async (path, data) => void await Bun.write(path, data),
  onInterrupt(listener) {
    bunProcess.on("SIGINT", listener);
    bunProcess.on("SIGTERM", listener);
    return () => {
      bunProcess.off("SIGINT", listener);
      bunProcess.off("SIGTERM", listener);
    };
  },
  exit: (code) => bunProcess.exit(code),
};
