/**
 * Memory per idle connection, broken down: how much of it is the runtime's own (an accepted TCP socket with one
 * pending read), how much our transport adds, how much the broker adds, and, from a heap snapshot diff, which
 * JavaScript objects hold it.
 *
 * Run from the repository root (Linux; `PATH=node_modules/.bin:$PATH`):
 *
 *     node scripts/bench/idle_memory.ts [--runtimes deno,bun] [--modes bare,transport,broker] [--count 10000]
 *       [--snapshot] [--top 12] [--settle 1500]
 *
 * For each runtime and mode it starts a fresh server process (`deno run -A --v8-flags=--expose-gc …` or
 * `bun …`) running this script with `--serve MODE`; that process starts the load generator (`node` running this
 * script with `--generate`), which opens and closes 100 connections (warm-up), then, once told, opens `--count`
 * connections in batches of 100, each sending an MQTT 3.1.1 CONNECT (keep-alive 0, clean session) and waiting
 * for its CONNACK, and keeps them open and silent. The server reads its memory before and after (`--settle`
 * milliseconds of rest, 1.5 s by default as in `broker.ts --cases idle`), then again after a full garbage collection, and prints one JSON line. Modes:
 *
 * - `bare`: the runtime alone, no code of ours: each accepted socket reads the CONNECT into a 256-byte buffer,
 *   writes a fixed CONNACK and keeps one read pending (Deno: `conn.read()`, Bun: `Bun.listen` callbacks, Node:
 *   `net.Server`). This is the floor.
 * - `transport`: our runtime transport (`listenTcp` of `src/runtime/*`) read through `direct`, with a sink
 *   that answers the CONNECT with the same fixed CONNACK.
 * - `broker`: `Broker` from `src/broker/broker.ts` with its default options, embedded.
 *
 * Figures per connection: `rss` (VmRSS delta before any forced collection, the figure of `broker.ts`), then,
 * after a full collection, `heapUsed` (live JavaScript objects), `heapTotal` (the JS heap's pages), `external`
 * (buffers and other memory the engine accounts to JavaScript objects) and `native` = RSS delta − heapTotal
 * delta − external delta (the runtime's per-socket state and the allocator's overhead). With `--snapshot` the
 * server writes a heap snapshot before and after (`node:v8`'s `writeHeapSnapshot`, on Deno and Bun too) and
 * the script prints the object types whose retained self size grew the most, per connection.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import type { DirectTransport } from "../../src/transport/transport.ts";

const SCRIPT = fileURLToPath(import.meta.url);
const MODES = ["bare", "transport", "broker"] as const;
type Mode = typeof MODES[number];
/** CONNACK, MQTT 3.1.1, session not present, accepted. */
const CONNACK = new Uint8Array([0x20, 2, 0, 0]);
const WARM = 100;
const BATCH = 100;

const argv = process.argv.slice(2);
function option(name: string): string | undefined {
  const index = argv.indexOf(name);
  return index === -1 ? undefined : argv[index + 1];
}

/** One server's measurement, in bytes (totals) and connections. */
interface Measurement {
  runtime: string;
  mode: Mode;
  connections: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  rssAfterGc: number;
  /** V8 only: per heap space, the growth of its committed pages and of what is used in them. */
  spaces?: Record<string, { committed: number; used: number }>;
  snapshots?: [string, string];
}

/** Committed and used bytes per V8 heap space; undefined on Bun. */
function spaces(): Record<string, { committed: number; used: number }> | undefined {
  if ("Bun" in globalThis) return undefined;
  const result: Record<string, { committed: number; used: number }> = {};
  for (const space of v8.getHeapSpaceStatistics()) {
    result[space.space_name] = { committed: space.physical_space_size, used: space.space_used_size };
  }
  return result;
}

// ---------------------------------------------------------------------------------------------- generator

/** An MQTT 3.1.1 CONNECT: clean session, keep-alive 0, the given client identifier. */
function connectPacket(clientId: string): Uint8Array {
  const id = new TextEncoder().encode(clientId);
  const remaining = 10 + 2 + id.length;
  return new Uint8Array([
    0x10,
    remaining,
    0,
    4,
    0x4d,
    0x51,
    0x54,
    0x54,
    4,
    0x02,
    0,
    0,
    id.length >> 8,
    id.length & 0xff,
    ...id,
  ]);
}

/** Opens one connection, sends CONNECT and resolves once a CONNACK (4 bytes) came back. */
function open(port: number, clientId: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let got = 0;
    socket.setNoDelay(true);
    socket.once("error", reject);
    socket.once("connect", () => socket.write(connectPacket(clientId)));
    socket.on("data", (data) => {
      got += data.length;
      if (got >= 4) {
        socket.removeAllListeners("data");
        socket.on("data", () => {});
        socket.removeListener("error", reject);
        socket.on("error", () => {});
        resolve(socket);
      }
    });
  });
}

async function generate(port: number, count: number): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const warm = await Promise.all(Array.from({ length: WARM }, (_, i) => open(port, `warm-${i}`)));
  for (const socket of warm) socket.destroy();
  process.stdout.write("warm\n");
  await lines.next();
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => open(port, `idle-${i + j}`));
    sockets.push(...await Promise.all(batch));
  }
  process.stdout.write(`open ${sockets.length}\n`);
  await lines.next();
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------- servers

declare const Deno: {
  listen(options: { hostname: string; port: number }): {
    addr: { port: number };
    accept(): Promise<
      { read(buffer: Uint8Array): Promise<number | null>; write(b: Uint8Array): Promise<number> }
    >;
  };
};
declare const Bun: {
  listen(options: {
    hostname: string;
    port: number;
    socket: { data(socket: { write(b: Uint8Array): number; data: unknown }, data: Uint8Array): void };
  }): { port: number };
  gc(full: boolean): void;
};

/** The runtime alone: one pending read per accepted socket. */
function listenBare(): Promise<number> {
  if ("Deno" in globalThis) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    void (async () => {
      for (;;) {
        const conn = await listener.accept();
        void (async () => {
          const buffer = new Uint8Array(256);
          if (await conn.read(buffer) === null) return;
          await conn.write(CONNACK);
          while (await conn.read(buffer) !== null);
        })().catch(() => {});
      }
    })();
    return Promise.resolve(listener.addr.port);
  }
  if ("Bun" in globalThis) {
    return Promise.resolve(
      Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          data(socket) {
            if (socket.data === undefined) {
              socket.data = true;
              socket.write(CONNACK);
            }
          },
        },
      }).port,
    );
  }
  const server = createServer((socket) => socket.once("data", () => socket.write(CONNACK)));
  return new Promise<number>((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
  });
}

/** A sink of our transport that answers the first chunk with a CONNACK. */
class Answer {
  #answered = false;
  readonly transport: DirectTransport;
  constructor(transport: DirectTransport) {
    this.transport = transport;
  }
  data(): void {
    if (this.#answered) return;
    this.#answered = true;
    void this.transport.write(CONNACK)?.catch(() => {});
  }
  end(): void {}
}

async function listenTransport(): Promise<number> {
  const { runtimeNet } = await import("../../src/runtime/mod.ts");
  const net = await runtimeNet();
  const listener = await net.listenTcp({ hostname: "127.0.0.1", port: 0 });
  void (async () => {
    for await (const transport of listener) {
      const direct = transport.direct!;
      direct.start(new Answer(direct));
    }
  })();
  return listener.port;
}

async function listenBroker(): Promise<number> {
  const { Broker } = await import("../../src/broker/broker.ts");
  const broker = new Broker({ maxConnections: 1_000_000 });
  return (await broker.listen({ hostname: "127.0.0.1", port: 0 })).port;
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if ("Bun" in globalThis) Bun.gc(true);
  else if (gc !== undefined) {
    gc();
    gc();
  }
}

function rss(): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return match === null ? process.memoryUsage().rss : Number(match[1]) * 1024;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function serve(mode: Mode, count: number, snapshot: boolean, settleMs: number): Promise<void> {
  const port = mode === "bare"
    ? await listenBare()
    : mode === "transport"
    ? await listenTransport()
    : await listenBroker();
  const generator = spawn("node", [SCRIPT, "--generate", "--port", `${port}`, "--count", `${count}`], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: generator.stdout! })[Symbol.asyncIterator]();
  await lines.next();
  await sleep(500);
  collect();
  const snapshots: [string, string] | undefined = snapshot
    ? [
      join(tmpdir(), `idle-${process.pid}-before.heapsnapshot`),
      join(tmpdir(), `idle-${process.pid}-after.heapsnapshot`),
    ]
    : undefined;
  if (snapshots !== undefined) v8.writeHeapSnapshot(snapshots[0]);
  collect();
  const before = { ...process.memoryUsage(), rss: rss() };
  const spacesBefore = spaces();
  generator.stdin!.write("go\n");
  const opened = Number(((await lines.next()).value as string).split(" ")[1]);
  await sleep(settleMs);
  const rssAfter = rss();
  collect();
  await sleep(100);
  const after = process.memoryUsage();
  const measurement: Measurement = {
    runtime: "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node",
    mode,
    connections: opened,
    rss: rssAfter - before.rss,
    heapUsed: after.heapUsed - before.heapUsed,
    heapTotal: after.heapTotal - before.heapTotal,
    external: after.external - before.external,
    rssAfterGc: rss() - before.rss,
  };
  const spacesAfter = spaces();
  if (spacesBefore !== undefined && spacesAfter !== undefined) {
    measurement.spaces = {};
    for (const [name, space] of Object.entries(spacesAfter)) {
      const old = spacesBefore[name] ?? { committed: 0, used: 0 };
      if (space.committed === old.committed && space.used === old.used) continue;
      measurement.spaces[name] = { committed: space.committed - old.committed, used: space.used - old.used };
    }
  }
  if (snapshots !== undefined) {
    v8.writeHeapSnapshot(snapshots[1]);
    measurement.snapshots = snapshots;
  }
  process.stdout.write(`${JSON.stringify(measurement)}\n`);
  generator.stdin!.write("quit\n");
  await new Promise((resolve) => generator.once("exit", resolve));
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------- snapshots

/** Self size and count per object type (`type:name`) of a V8-format heap snapshot. */
function heapTypes(file: string): Map<string, { size: number; count: number }> {
  const json = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = json.snapshot.meta.node_fields;
  const types = json.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const totals = new Map<string, { size: number; count: number }>();
  const { nodes, strings } = json;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!]!;
    let name = type === "string" || type === "concatenated string" || type === "sliced string"
      ? "(string)"
      : strings[nodes[i + nameAt]!]!;
    if (type === "code" || type === "hidden") name = name.replace(/ \d+$/, "");
    if (name.length > 60) name = `${name.slice(0, 57)}...`;
    const key = `${type}: ${name}`;
    const entry = totals.get(key);
    if (entry === undefined) totals.set(key, { size: nodes[i + sizeAt]!, count: 1 });
    else {
      entry.size += nodes[i + sizeAt]!;
      entry.count++;
    }
  }
  return totals;
}

function snapshotDiff(files: [string, string], connections: number, top: number): string[] {
  const before = heapTypes(files[0]);
  const after = heapTypes(files[1]);
  const rows: { key: string; size: number; count: number }[] = [];
  for (const [key, entry] of after) {
    const old = before.get(key) ?? { size: 0, count: 0 };
    rows.push({ key, size: entry.size - old.size, count: entry.count - old.count });
  }
  rows.sort((a, b) => b.size - a.size);
  const total = rows.reduce((sum, row) => sum + row.size, 0);
  const lines = rows.slice(0, top).map((row) =>
    `    ${(row.size / connections).toFixed(0).padStart(6)} B  ${
      (row.count / connections).toFixed(2).padStart(6)
    } x  ${row.key}`
  );
  lines.push(`    ${(total / connections).toFixed(0).padStart(6)} B  in all (snapshot self sizes)`);
  return lines;
}

// ---------------------------------------------------------------------------------------------- driver

function run(command: string[]): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command[0]!, command.slice(1), {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, RUST_BACKTRACE: "0", NO_COLOR: "1" },
    });
    let out = "";
    child.stdout!.on("data", (data) => out += data);
    child.once("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(line) as Measurement);
      } catch {
        reject(new Error(`${command.join(" ")} exited with ${code}: ${out}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const count = Number(option("--count") ?? 10_000);
  const runtimes = (option("--runtimes") ?? "deno,bun").split(",");
  const modes = (option("--modes") ?? MODES.join(",")).split(",") as Mode[];
  const snapshot = argv.includes("--snapshot");
  const top = Number(option("--top") ?? 12);
  const extra = [
    ...(snapshot ? ["--snapshot"] : []),
    "--count",
    `${count}`,
    "--settle",
    option("--settle") ?? "1500",
  ];
  const kib = (bytes: number, n: number) => (bytes / n / 1024).toFixed(2).padStart(9);
  process.stdout.write(
    `${count} idle MQTT 3.1.1 connections; KiB per connection (native = rss - heapTotal - external)\n` +
      `runtime  mode           rss  rss(gc)  heapUsed  heapTotal  external   native\n`,
  );
  for (const runtime of runtimes) {
    for (const mode of modes) {
      const command = runtime === "deno"
        ? ["deno", "run", "-A", "--v8-flags=--expose-gc", SCRIPT, "--serve", mode, ...extra]
        : runtime === "bun"
        ? ["bun", SCRIPT, "--serve", mode, ...extra]
        : ["node", "--expose-gc", SCRIPT, "--serve", mode, ...extra];
      const m = await run(command);
      const n = m.connections;
      process.stdout.write(
        `${runtime.padEnd(8)} ${mode.padEnd(9)} ${kib(m.rss, n)}${kib(m.rssAfterGc, n)} ${
          kib(m.heapUsed, n)
        }  ${kib(m.heapTotal, n)} ${kib(m.external, n)}${kib(m.rssAfterGc - m.heapTotal - m.external, n)}\n`,
      );
      if (m.spaces !== undefined) {
        const parts = Object.entries(m.spaces).map(([name, space]) =>
          `${name} ${(space.committed / n / 1024).toFixed(2)} (used ${(space.used / n / 1024).toFixed(2)})`
        );
        process.stdout.write(`  V8 heap spaces, committed KiB per connection: ${parts.join(", ")}\n`);
      }
      if (m.snapshots !== undefined) {
        process.stdout.write(`  heap growth per connection, by object type (${runtime}, ${mode}):\n`);
        process.stdout.write(`${snapshotDiff(m.snapshots, n, top).join("\n")}\n`);
        for (const file of m.snapshots) rmSync(file, { force: true });
      }
    }
  }
}

if (argv.includes("--generate")) {
  await generate(Number(option("--port")), Number(option("--count")));
} else if (option("--serve") !== undefined) {
  await serve(
    option("--serve") as Mode,
    Number(option("--count") ?? 10_000),
    argv.includes("--snapshot"),
    Number(option("--settle") ?? 1500),
  );
} else {
  await main();
}
