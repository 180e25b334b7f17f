/**
 * Process services on Node.
 *
 * @module
 */

import process from "node:process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { writeSync } from "node:fs";
import { hostname } from "node:os";
import type { RuntimeProcess } from "../process_types.ts";

const encoder = new TextEncoder();

function writeAll(fd: number, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) {
    try {
      bytes = bytes.subarray(writeSync(fd, bytes));
    } catch (error) {
      // A non-blocking pipe that is full: try again.
      if ((error as { code?: string }).code !== "EAGAIN") throw error;
    }
  }
}

/** Node's arguments, streams, files, signals and exit. */
export const runtimeProcess: RuntimeProcess = {
  args: () => process.argv.slice(2),
  stdout: (text) => writeAll(1, text),
  stderr: (text) => writeAll(2, text),
  stdin: () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        process.stdin.on("data", (chunk: Uint8Array) => controller.enqueue(new Uint8Array(chunk)));
        process.stdin.on("end", () => controller.close());
        process.stdin.on("error", (error) => controller.error(error));
      },
      cancel() {
        process.stdin.destroy();
      },
    }),
  hostname: () => hostname(),
  readFile: async (path) => {
    const data = await readFile(path);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  },
  readDir: (path) => readdir(path),
  writeFile: (path, data) => writeFile(path, data),
  onInterrupt(listener) {
    process.on("SIGINT", listener);
    process.on("SIGTERM", listener);
    return () => {
      process.off("SIGINT", listener);
      process.off("SIGTERM", listener);
    };
  },
  exit: (code) => process.exit(code),
};
