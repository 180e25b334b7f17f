/**
 * Broker processes for `scripts/bench/broker.ts`: start each broker under test on a free loopback port, stop
 * it, and read its CPU time and resident memory from `/proc` (Linux only).
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The brokers the benchmark knows, in the order it runs them. */
export const BROKER_NAMES = ["ours-deno", "ours-bun", "mosquitto", "aedes"] as const;

/** One of {@linkcode BROKER_NAMES}, or our broker on Node (not benchmarked; `scripts/soak.ts` runs it). */
export type BrokerName = typeof BROKER_NAMES[number] | "ours-node";

/** How {@linkcode startBroker} configures the broker. */
export interface StartOptions {
  /**
   * Seconds between two `$SYS` publications of our broker (through a configuration file); ignored by the
   * others. By default our broker's own (10 s).
   */
  sysInterval?: number;
  /**
   * Start mosquitto with its own defaults (only the listener, anonymous access and no persistence), instead of
   * the raised `max_inflight_messages` and `max_queued_messages` of the load benchmark.
   */
  defaults?: boolean;
  /** More arguments for our `broker.ts` (ignored for mosquitto and aedes). */
  args?: readonly string[];
}

/** A broker process started by {@linkcode startBroker}. */
export interface BrokerProcess {
  name: BrokerName;
  /** Its TCP port on 127.0.0.1. */
  port: number;
  /**
   * The ports the load's subscribers connect to, in turn (subscriber i to `subscriberPorts[i % length]`);
   * publishers connect to `port`. Unset (as {@linkcode startBroker} leaves it): `[port]`. For a cluster of
   * several nodes, so that messages cross between them.
   */
  subscriberPorts?: readonly number[];
  /** More processes whose CPU use the load cases report besides `pid` (a cluster's other nodes), by label. */
  otherPids?: ReadonlyMap<string, number>;
  /** The id of the process that serves the connections (the runtime itself, not a wrapper). */
  pid: number;
  /** Lines it wrote that look like warnings or errors, the first 20. */
  warnings: string[];
  /** How many such lines there were in all. */
  warningCount: number;
  /** Its last 30 lines of output, for failure messages. */
  tail(): string[];
  /** Whether it exited (and how) before {@linkcode BrokerProcess.stop} was called. */
  exited(): string | undefined;
  /** Stops it: SIGTERM, then SIGKILL after 3 s. */
  stop(): Promise<void>;
}

/** The repository root (two levels above this file). */
export const ROOT: string = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

/**
 * Finds a free TCP port on 127.0.0.1.
 *
 * @returns The port, closed again.
 */
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

/** Whether a TCP connection to 127.0.0.1:`port` opens. */
export function canConnect(port: number): Promise<boolean> {
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Our broker.ts on `runtime`, in memory on `port`, with a configuration file when `options` need one. */
function ours(runtime: string[], port: number, options: StartOptions): { argv: string[]; dir?: string } {
  const extra = options.args ?? [];
  if (options.sysInterval === undefined) {
    return { argv: [...runtime, "broker.ts", "--port", `${port}`, "--persistence", "memory", ...extra] };
  }
  const dir = mkdtempSync(join(tmpdir(), "bench-ours-"));
  const file = join(dir, "broker.json");
  const listeners = [{ type: "tcp", host: "127.0.0.1", port }];
  writeFileSync(file, JSON.stringify({ listeners, sysInterval: options.sysInterval }) + "\n");
  return { argv: [...runtime, "broker.ts", "--config", file, ...extra], dir };
}

/** The command line that starts `name` on `port`, and a temporary directory to remove afterwards. */
function command(name: BrokerName, port: number, options: StartOptions): { argv: string[]; dir?: string } {
  switch (name) {
    case "ours-deno":
      return ours(["deno", "run", "-A"], port, options);
    case "ours-bun":
      return ours(["bun"], port, options);
    case "ours-node":
      return ours(["node"], port, options);
    case "aedes":
      return { argv: ["node", "scripts/bench/_broker_aedes.ts", "--port", `${port}`] };
    case "mosquitto": {
      const dir = mkdtempSync(join(tmpdir(), "bench-mosquitto-"));
      const file = join(dir, "mosquitto.conf");
      writeFileSync(
        file,
        [
          `listener ${port} 127.0.0.1`,
          "allow_anonymous true",
          ...(options.defaults ? [] : ["max_inflight_messages 1000", "max_queued_messages 100000"]),
          "persistence false",
          // Started as root, mosquitto would switch to its own user.
          ...(process.getuid?.() === 0 ? ["user root"] : []),
        ].join("\n") + "\n",
      );
      return { argv: ["mosquitto", "-c", file], dir };
    }
    default: {
      const unreachable: never = name;
      throw new Error(`Unknown broker ${unreachable}`);
    }
  }
}

/**
 * Starts a broker on a free port of 127.0.0.1 and resolves once it accepts TCP connections (and, for ours and
 * aedes, once it printed "listening on").
 *
 * @param name Which broker.
 * @param options How to configure it: `$SYS` interval and more arguments for ours, mosquitto's defaults.
 * @returns The running process.
 * @throws {Error} When it does not start within 15 s; the message holds its output.
 */
export async function startBroker(name: BrokerName, options: StartOptions = {}): Promise<BrokerProcess> {
  const port = await freePort();
  const { argv, dir } = command(name, port, options);
  const child: ChildProcess = spawn(argv[0], argv.slice(1), {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  const lines: string[] = [];
  const warnings: string[] = [];
  let warningCount = 0;
  let listening = name === "mosquitto";
  let exit: string | undefined;
  let partial = "";
  function onOutput(chunk: Uint8Array): void {
    const text = partial + new TextDecoder().decode(chunk);
    const parts = text.split("\n");
    partial = parts.pop() ?? "";
    for (const line of parts) {
      if (/listening on/i.test(line)) listening = true;
      if (/warn|error|uncaught|exception/i.test(line) && !/should not be run as root/.test(line)) {
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
  const deadline = performance.now() + 15_000;
  let ready = false;
  while (exit === undefined && performance.now() < deadline) {
    if (listening && await canConnect(port)) {
      ready = true;
      break;
    }
    await sleep(50);
  }
  let stopped = false;
  const broker: BrokerProcess = {
    name,
    port,
    pid: child.pid ?? 0,
    warnings,
    get warningCount() {
      return warningCount;
    },
    tail: () => [...lines, ...(partial ? [partial] : [])],
    exited: () => stopped ? undefined : exit,
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
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
  if (!ready) {
    await broker.stop();
    throw new Error(
      `${name} did not start on 127.0.0.1:${port} (${exit ?? "timed out"}):\n${broker.tail().join("\n")}`,
    );
  }
  return broker;
}

/** CPU time of a process in seconds: all threads together, and its busiest thread alone. */
export interface CpuTimes {
  total: number;
  /** Per thread id, so that two readings can be compared thread by thread. */
  threads: Map<string, number>;
}

/** Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux). */
const TICKS = 100;

function statSeconds(path: string): number {
  const stat = readFileSync(path, "utf8");
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/**
 * Reads the CPU time a process has used so far, from `/proc/<pid>/stat` and its threads' `task/<tid>/stat`.
 *
 * @param pid The process.
 * @returns Its CPU times, or zeros when `/proc` cannot be read.
 */
export function cpuTimes(pid: number): CpuTimes {
  const threads = new Map<string, number>();
  try {
    const total = statSeconds(`/proc/${pid}/stat`);
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        threads.set(tid, statSeconds(`/proc/${pid}/task/${tid}/stat`));
      } catch { /* the thread ended meanwhile */ }
    }
    return { total, threads };
  } catch {
    return { total: 0, threads };
  }
}

/** CPU use between two readings, in percent of one core. */
export interface CpuUse {
  /** All threads together (may exceed 100). */
  total: number;
  /** The busiest thread (at most 100): near 100 means a single-threaded event loop is saturated. */
  busiest: number;
}

/**
 * Computes CPU use between two readings of {@linkcode cpuTimes}.
 *
 * @param before The earlier reading.
 * @param after The later reading.
 * @param seconds Wall-clock seconds between them.
 * @returns Percentages of one core.
 */
export function cpuUse(before: CpuTimes, after: CpuTimes, seconds: number): CpuUse {
  let busiest = 0;
  for (const [tid, time] of after.threads) busiest = Math.max(busiest, time - (before.threads.get(tid) ?? 0));
  return { total: (100 * (after.total - before.total)) / seconds, busiest: (100 * busiest) / seconds };
}

/**
 * Reads a process's resident set size from `/proc/<pid>/status` (VmRSS).
 *
 * @param pid The process.
 * @returns Kibibytes, or NaN when it cannot be read.
 */
export function rssKiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Reads this process's soft and hard limits of open files from `/proc/self/limits`.
 *
 * @returns The limits, or undefined when they cannot be read.
 */
export function fileLimits(): { soft: number; hard: number } | undefined {
  try {
    const match = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(
      readFileSync("/proc/self/limits", "utf8"),
    );
    if (!match) return undefined;
    const parse = (text: string) => text === "unlimited" ? Infinity : Number(text);
    return { soft: parse(match[1]), hard: parse(match[2]) };
  } catch {
    return undefined;
  }
}
