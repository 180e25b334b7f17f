/**
 * nats-server processes for `scripts/bench/cluster.ts`: a JetStream server for our cluster's nodes, and
 * nats-server's own MQTT gateway, alone or as two servers joined by routes. Each server gets free ports on
 * 127.0.0.1, a temporary directory (configuration and JetStream store) and is waited for until it serves;
 * every server still running is killed and its directory removed when this process exits, even on Ctrl-C.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { freePort, ROOT } from "./_broker_procs.ts";
import { BenchClient } from "./_broker_wire.ts";

/** A nats-server started by {@linkcode startNats} or {@linkcode startNatsCluster}. */
export interface NatsProcess {
  /** Its `server_name`. */
  name: string;
  pid: number;
  /** Its NATS client port on 127.0.0.1. */
  port: number;
  /** Its MQTT port on 127.0.0.1, when its MQTT gateway is on. */
  mqttPort?: number;
  /** Lines it logged as warnings or errors (`[WRN]`, `[ERR]`, `[FTL]`), the first 20. */
  warnings: string[];
  /** How many such lines there were in all. */
  warningCount: number;
  /** Its last 30 lines of output, for failure messages. */
  tail(): string[];
  /** Whether it exited (and how) before {@linkcode NatsProcess.stop} was called. */
  exited(): string | undefined;
  /** Forgets the warnings so far (those of the start: routes not up yet, JetStream not ready yet). */
  resetWarnings(): void;
  /** Stops it: SIGTERM, then SIGKILL after 3 s; removes its directory. */
  stop(): Promise<void>;
}

/** Servers started and not stopped yet, for the exit handler. */
const live = new Set<{ child: ChildProcess; dir: string }>();
let hooked = false;

/** Kills what is still running and removes the directories, synchronously (in "exit" only that works). */
function killAll(): void {
  for (const entry of live) {
    try {
      entry.child.kill("SIGKILL");
    } catch { /* gone already */ }
    rmSync(entry.dir, { recursive: true, force: true });
  }
  live.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once("exit", killAll);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

/** Whether an MQTT CONNECT is answered with a successful CONNACK (the gateway needs JetStream ready). */
async function mqttReady(port: number): Promise<boolean> {
  try {
    const client = await BenchClient.connect(port, `ready-${Date.now().toString(36)}`, 2000);
    await client.close();
    return true;
  } catch {
    return false;
  }
}

interface ServerPlan {
  name: string;
  port: number;
  mqttPort?: number;
  cluster?: { listen: number; routes: number[] };
}

/** nats-server's configuration: JetStream in the server's directory, MQTT and routes when asked. */
function configText(plan: ServerPlan, dir: string): string {
  const lines = [
    `server_name: ${plan.name}`,
    `listen: "127.0.0.1:${plan.port}"`,
    `jetstream { store_dir: "${join(dir, "js")}" }`,
  ];
  if (plan.mqttPort !== undefined) lines.push(`mqtt { listen: "127.0.0.1:${plan.mqttPort}" }`);
  if (plan.cluster !== undefined) {
    lines.push(
      `cluster {`,
      `  name: bench`,
      `  listen: "127.0.0.1:${plan.cluster.listen}"`,
      `  routes: [${plan.cluster.routes.map((port) => `"nats-route://127.0.0.1:${port}"`).join(", ")}]`,
      `}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Spawns one server from its plan; resolves once its client port (and MQTT port) take TCP connections. */
async function spawnServer(plan: ServerPlan): Promise<NatsProcess> {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), `bench-nats-${plan.name}-`));
  const file = join(dir, "nats.conf");
  writeFileSync(file, configText(plan, dir));
  const child = spawn("nats-server", ["-c", file], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const entry = { child, dir };
  live.add(entry);
  const lines: string[] = [];
  const warnings: string[] = [];
  let warningCount = 0;
  let exit: string | undefined;
  let partial = "";
  function onOutput(chunk: Uint8Array): void {
    const text = partial + new TextDecoder().decode(chunk);
    const parts = text.split("\n");
    partial = parts.pop() ?? "";
    for (const line of parts) {
      if (/\[(WRN|ERR|FTL)\]/.test(line)) {
        warningCount++;
        if (warnings.length < 20) warnings.push(line);
      }
      lines.push(line);
      if (lines.length > 30) lines.shift();
    }
  }
  child.stdout?.on("data", onOutput);
  child.stderr?.on("data", onOutput);
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = `exit code ${code}${signal ? `, signal ${signal}` : ""}`;
      resolve();
    });
    child.once("error", (error) => {
      exit = `spawn failed: ${error.message}`;
      resolve();
    });
  });
  let stopped = false;
  const server: NatsProcess = {
    name: plan.name,
    pid: child.pid ?? 0,
    port: plan.port,
    ...(plan.mqttPort === undefined ? {} : { mqttPort: plan.mqttPort }),
    warnings,
    get warningCount() {
      return warningCount;
    },
    tail: () => [...lines, ...(partial ? [partial] : [])],
    exited: () => stopped ? undefined : exit,
    resetWarnings() {
      warnings.length = 0;
      warningCount = 0;
    },
    async stop() {
      stopped = true;
      if (exit === undefined) {
        child.kill("SIGTERM");
        await Promise.race([exited, sleep(3000)]);
        if (exit === undefined) {
          child.kill("SIGKILL");
          await Promise.race([exited, sleep(2000)]);
        }
      }
      live.delete(entry);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = performance.now() + 15_000;
  while (exit === undefined && performance.now() < deadline) {
    if (
      await canConnect(plan.port) && (plan.mqttPort === undefined || await canConnect(plan.mqttPort))
    ) {
      return server;
    }
    await sleep(50);
  }
  await server.stop();
  throw new Error(
    `nats-server ${plan.name} did not start on 127.0.0.1:${plan.port} (${exit ?? "timed out"}):\n${
      server.tail().join("\n")
    }`,
  );
}

/** Waits until every MQTT gateway of `servers` answers CONNECT (JetStream up, a meta leader elected). */
async function waitMqtt(servers: readonly NatsProcess[]): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (const server of servers) {
    if (server.mqttPort === undefined) continue;
    while (!await mqttReady(server.mqttPort)) {
      if (server.exited() !== undefined || performance.now() > deadline) {
        await Promise.all(servers.map((s) => s.stop()));
        throw new Error(
          `the MQTT gateway of nats-server ${server.name} did not answer CONNECT (${
            server.exited() ?? "timed out"
          }):\n${server.tail().slice(-10).join("\n")}`,
        );
      }
      await sleep(200);
    }
  }
  for (const server of servers) server.resetWarnings();
}

/**
 * Starts one nats-server with JetStream on free ports of 127.0.0.1.
 *
 * @param name Its `server_name`.
 * @param options `mqtt`: turn its MQTT gateway on (and wait until it answers CONNECT).
 * @returns The running server.
 * @throws {Error} When it does not start within 15 s (30 s for the MQTT gateway).
 */
export async function startNats(name: string, options: { mqtt?: boolean } = {}): Promise<NatsProcess> {
  const server = await spawnServer({
    name,
    port: await freePort(),
    ...(options.mqtt ? { mqttPort: await freePort() } : {}),
  });
  await waitMqtt([server]);
  return server;
}

/**
 * Starts `size` nats-servers with JetStream joined in one NATS cluster (each routes to all the others), each
 * with its own MQTT gateway when asked.
 *
 * @param prefix Server names are `prefix-1`, `prefix-2`, ….
 * @param size How many servers.
 * @param options `mqtt`: turn each one's MQTT gateway on (and wait until all answer CONNECT).
 * @returns The running servers, in order.
 * @throws {Error} When one does not start; the others are stopped.
 */
export async function startNatsCluster(
  prefix: string,
  size: number,
  options: { mqtt?: boolean } = {},
): Promise<NatsProcess[]> {
  const plans: ServerPlan[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) routePorts.push(await freePort());
  for (let i = 0; i < size; i++) {
    plans.push({
      name: `${prefix}-${i + 1}`,
      port: await freePort(),
      ...(options.mqtt ? { mqttPort: await freePort() } : {}),
      cluster: { listen: routePorts[i], routes: routePorts.filter((_, j) => j !== i) },
    });
  }
  const settled = await Promise.allSettled(plans.map(spawnServer));
  const servers = settled.filter((s) => s.status === "fulfilled").map((s) => s.value);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed !== undefined) {
    await Promise.all(servers.map((server) => server.stop()));
    throw failed.reason;
  }
  await waitMqtt(servers);
  return servers;
}
