/**
 * Starts Debian's `nats-server` (with JetStream) on a free loopback port for the cluster engine's tests, and
 * stops, kills or restarts it. Tests skip with a clear message when it is not installed (`.ci/run` installs it
 * with apt-get) or when the optional NATS client packages are missing.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { freePort } from "../_mosquitto.ts";

/** Servers still running; killed when the test process exits, so that a failed test leaves none behind. */
const running = new Set<ChildProcess>();
let cleanupRegistered = false;

function track(child: ChildProcess): void {
  running.add(child);
  child.once("exit", () => running.delete(child));
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  process.once("exit", () => {
    for (const server of running) server.kill("SIGKILL");
  });
}

/** A running (or stopped) nats-server of {@linkcode startNats}. */
export interface NatsServer {
  /** `nats://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** The storage directory (`-sd`), kept across {@linkcode NatsServer.restart}. */
  readonly dir: string;
  /** Everything the server logged, for failure messages. */
  log(): string;
  /** Ends it with SIGTERM, waits until it exited, and removes the storage directory it made. */
  stop(): Promise<void>;
  /** Ends it with SIGKILL (no clean shutdown) and waits until it exited; `restart()` brings it back. */
  kill(): Promise<void>;
  /** Stops it (SIGTERM) if it runs, then starts it again on the same port with the same storage. */
  restart(): Promise<void>;
}

/** Options of {@linkcode startNats}. */
export interface StartNatsOptions {
  /** Run JetStream (`-js`). @default true */
  jetstream?: boolean;
  /** The storage directory; a fresh temporary one (removed by `stop()`) by default. */
  dir?: string;
  /** The port; a free one by default. */
  port?: number;
}

/** Whether the `nats-server` command is installed. */
export function natsAvailable(): boolean {
  return spawnSync("nats-server", ["--version"], { encoding: "utf8" }).error === undefined;
}

/** Whether the optional NATS client packages (`@nats-io/transport-node`, `jetstream`, `kv`) can be loaded. */
export async function hasNatsPackages(): Promise<boolean> {
  try {
    await Promise.all([
      import("@nats-io/transport-node"),
      import("@nats-io/jetstream"),
      import("@nats-io/kv"),
    ]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why the NATS tests cannot run here, or `undefined` when they can: for `describe(..., { skip })`.
 *
 * @returns A message starting with "skipping: ".
 */
export async function natsSkipReason(): Promise<string | undefined> {
  if (!natsAvailable()) return "skipping: nats-server is not installed (apt-get install -y nats-server)";
  if (!(await hasNatsPackages())) {
    return "skipping: the NATS client packages are not installed (npm ci installs @nats-io/*)";
  }
  return undefined;
}

/**
 * Starts nats-server on 127.0.0.1 and resolves once it is ready for clients (JetStream included).
 *
 * @param options JetStream, storage directory and port.
 * @returns The server, or `undefined` (after printing "skipping: nats-server is not installed") when the
 *   command is missing.
 * @throws {Error} With the server's log when it did not start.
 */
export async function startNats(options: StartNatsOptions = {}): Promise<NatsServer | undefined> {
  if (!natsAvailable()) {
    console.log("skipping: nats-server is not installed");
    return undefined;
  }
  const port = options.port ?? await freePort();
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "nats-"));
  const args = [
    "-a",
    "127.0.0.1",
    "-p",
    String(port),
    ...(options.jetstream === false ? [] : ["-js", "-sd", dir]),
  ];
  let output = "";
  let child: ChildProcess | undefined;
  let exited = Promise.resolve();

  async function launch(): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const started = output.length;
    const server = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
    child = server;
    track(server);
    exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
    server.stderr?.on("data", (chunk) => output += chunk);
    for (let waited = 0; waited < 10_000; waited += 20) {
      if (output.includes("Server is ready", started) || server.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (!output.includes("Server is ready", started)) {
      await end("SIGKILL");
      throw new Error(`nats-server did not start on port ${port}:\n${output}`);
    }
  }

  async function end(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    running.kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), 5000));
    if (await Promise.race([exited.then(() => false), late])) {
      running.kill("SIGKILL");
      await exited;
    }
    clearTimeout(timer);
  }

  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    dir,
    log: () => output,
    async stop() {
      await end("SIGTERM");
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
    kill: () => end("SIGKILL"),
    async restart() {
      await end("SIGTERM");
      await launch();
    },
  };
}
