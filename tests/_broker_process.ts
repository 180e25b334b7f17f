/**
 * `broker.ts` as a child process of the runtime running the test (`deno run -A` under Deno), for tests of the
 * broker as users run it: restarts, `kill -9`, configuration files.
 */

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { settledWithin } from "./_helpers.ts";

/** A started {@linkcode startBroker}. */
export interface RunningBroker {
  child: ChildProcess;
  /** What the broker logged so far (its standard error). */
  log: () => string;
  /** Settles when the process is gone. */
  exited: Promise<void>;
}

/**
 * Starts `broker.ts` with these arguments and waits (at most `timeoutMs`) until it says it listens.
 *
 * @param args The command line after `broker.ts`.
 * @param timeoutMs How long to wait for "listening on".
 * @returns The running broker.
 * @throws {Error} With the broker's log when it did not start.
 */
export async function startBroker(args: string[], timeoutMs = 10_000): Promise<RunningBroker> {
  const script = new URL("../broker.ts", import.meta.url).pathname;
  const prefix = "Deno" in globalThis ? ["run", "-A", script] : [script];
  const child = spawn(process.execPath, [...prefix, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr?.on("data", (chunk) => log += chunk);
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  for (let waited = 0; waited < timeoutMs && !log.includes("listening on"); waited += 25) {
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (!log.includes("listening on")) {
    child.kill("SIGKILL");
    await settledWithin(exited, 5000);
    throw new Error(`broker.ts did not start:\n${log}`);
  }
  return { child, log: () => log, exited };
}
