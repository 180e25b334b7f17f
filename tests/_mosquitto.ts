/**
 * Starts a real mosquitto broker on a free loopback port for interop tests, and stops it. Tests skip with a
 * clear message when mosquitto is not installed (`.ci/run` installs it with apt-get).
 */

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { settledWithin } from "./_helpers.ts";

/** Why mosquitto cannot be used here, or undefined when it can. */
export function mosquittoMissing(): string | undefined {
  const probe = spawnSync("mosquitto", ["-h"], { encoding: "utf8" });
  if (probe.error !== undefined) {
    return "mosquitto is not installed (apt-get install -y mosquitto mosquitto-clients)";
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.connect(port, "127.0.0.1");
  });
}

export interface Mosquitto {
  port: number;
  /** Everything mosquitto logged, for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts mosquitto with the given extra configuration lines; resolves once it accepts connections.
 *
 * @param config Extra lines for mosquitto.conf (a listener on a free port and anonymous access are added).
 * @param options `port`: the listener's port instead of a free one (to start it again where it was);
 *   `persistence`: a directory where it keeps its state across restarts.
 */
export async function startMosquitto(
  config: string[] = [],
  options: { port?: number; persistence?: string } = {},
): Promise<Mosquitto> {
  const port = options.port ?? await freePort();
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-"));
  const file = join(dir, "mosquitto.conf");
  writeFileSync(
    file,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      ...options.persistence === undefined ? ["persistence false", "max_inflight_messages 0"] : [
        "persistence true",
        `persistence_location ${options.persistence}/`,
        "autosave_interval 1",
        // Not 0 (no limit) with persistence: mosquitto 2.0.11 then sends a QoS 2 message whose PUBREL it had
        // sent before the restart again as a PUBLISH (DUP), and it reaches its subscriber twice, which MQTT 5
        // forbids [MQTT-4.3.3-6]. Seen in its -v log: PUBREL m20, restart, PUBLISH (d1, m20). Likely, its
        // restore puts messages back in flight only within the in-flight quota, which 0 leaves empty. With a
        // limit, it resends the PUBREL.
        "max_inflight_messages 1000",
      ],
      // Started as root, mosquitto switches to its own user and then cannot read test files such as keys.
      ...(process.getuid?.() === 0 ? ["user root"] : []),
      ...config,
    ]
      .join("\n") + "\n",
  );
  const child = spawn("mosquitto", ["-c", file, "-v"], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk) => output += chunk);
  child.stderr?.on("data", (chunk) => output += chunk);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let i = 0; i < 100 && !(await canConnect(port)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (!(await canConnect(port))) {
    child.kill("SIGKILL");
    throw new Error(`mosquitto did not start on port ${port}:\n${output}`);
  }
  return {
    port,
    log: () => output,
    async stop() {
      child.kill("SIGTERM");
      // It saves its state (persistence) before it exits.
      await settledWithin(exited, 5000);
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP transport made with node:net for tests that must not depend on the library's own runtime shims (so
 * that a bug there cannot hide a bug in the client).
 */
export function nodeTcpTransport(port: number): Promise<import("../src/transport/transport.ts").Transport> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.once("error", reject);
    socket.connect(port, "127.0.0.1", () => {
      socket.off("error", reject);
      const readable = new ReadableStream<Uint8Array>({
        start(controller) {
          socket.on("data", (chunk: Uint8Array) => controller.enqueue(new Uint8Array(chunk)));
          socket.on("end", () => {
            try {
              controller.close();
            } catch { /* already closed */ }
          });
          socket.on("error", (error) => {
            try {
              controller.error(error);
            } catch { /* already closed */ }
          });
          socket.on("close", () => {
            try {
              controller.close();
            } catch { /* already closed */ }
          });
        },
      });
      const writable = new WritableStream<Uint8Array>({
        write: (chunk) =>
          new Promise((done, fail) => socket.write(chunk, (error) => error ? fail(error) : done())),
        close: () => void socket.end(),
        abort: () => void socket.destroy(),
      });
      resolve({ readable, writable, close: () => void socket.destroy() });
    });
  });
}
