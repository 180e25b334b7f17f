/**
 * Broker cluster benchmark (issue 16): our broker as a cluster on NATS JetStream, one node and two, against
 * nats-server's own MQTT gateway (one server, and two joined by routes) and mosquitto alone, on loopback, with
 * the same load generator as `scripts/bench/broker.ts`, the CPU of every process, and the goals checked at the
 * end.
 *
 * Run from the repository root (node_modules installed, `PATH=node_modules/.bin:$PATH`; nats-server and
 * mosquitto on the PATH; Linux, since CPU is read from `/proc`):
 *
 *     node scripts/bench/cluster.ts [--quick] [--only ours-2,nats-mqtt-2] [--cases qos0,latency] [--json]
 *
 * - `--only a,b`: run only these targets (`ours-1 ours-2 nats-mqtt nats-mqtt-2 mosquitto`).
 * - `--cases a,b`: run only these cases (`qos0 qos1 fanout latency connect`).
 * - `--runtime deno|bun|node`: the runtime of our nodes (default deno).
 * - `--quick`: one short pass per case and 500 connections in the connect case (about a minute).
 * - `--json`: print the results as JSON instead of tables (progress still goes to stderr).
 *
 * Targets, each started by the script on free ports of 127.0.0.1 and stopped at the end (nats-servers are
 * killed and their temporary directories removed even on Ctrl-C, by `_cluster_procs.ts`):
 * - `ours-1`: a cluster of one: `nats-server` with JetStream (`-js`, a temporary store) and one node,
 *   `deno run -A broker.ts --port P --persistence memory --cluster nats://127.0.0.1:N --node a`;
 * - `ours-2`: two such nodes on one nats-server; publishers connect to node A, subscribers to node B (the
 *   first, and every other one in the fan-out, whose subscribers alternate B, A, B, …), so that 1 → 1
 *   messages cross from one node to the other through NATS;
 * - `nats-mqtt`: nats-server 2.9's MQTT gateway (`mqtt { listen }`, JetStream on; MQTT 3.1.1, QoS 0 and 1
 *   only; its QoS 1 subscriptions are JetStream consumers), one server;
 * - `nats-mqtt-2`: two nats-servers joined in a NATS cluster (routes), each with its MQTT gateway, publishers
 *   on the first and subscribers on the second (alternating in the fan-out, as for `ours-2`);
 * - `mosquitto`: one process, as in `broker.ts` (`max_inflight_messages 1000`, `max_queued_messages
 *   100000`), the reference for one machine without a cluster.
 *
 * Cases, run by `_broker_load.ts` as in `broker.ts` (each throughput pass connects, warms up, counts what
 * arrives in a window, stops the publishers and waits for what is in flight; the passes of a case take the
 * targets in turn and the figure is the median pass):
 * 1. QoS 0, 1 → 1 (across nodes), 64 B payloads: messages per second received by the subscriber;
 * 2. QoS 1, 1 → 1 (across nodes), 64 B, 128 in flight, the subscriber acknowledging;
 * 3. fan-out: 1 → 50, QoS 0, 64 B, subscribers spread over the nodes: deliveries per second in total;
 * 4. latency: 2,000 QoS 0 messages per second across nodes, p50/p90/p99/max of publish → receive;
 * 5. connect: connections per second with persistent sessions: N clients (`clean session` false, fresh
 *    client identifiers) connect in batches of 50 to the publishers' node, each waiting for its CONNACK, and
 *    disconnect, so that a cluster registers and parks N sessions; CONNACKs per second over the N.
 *
 * Besides each figure it prints the CPU use of every process of the target (utime + stime from `/proc`, in %
 * of one core, the busiest thread in parentheses: near 100 % means a single-threaded event loop is
 * saturated) and of the generator, and names the processes whose busiest thread was at 80 % or more. With two
 * cores for everything, a cluster of two nodes, nats-server and the generator share them: absolute numbers
 * depend on the machine; compare ratios and read the CPU columns.
 *
 * @module
 */

import { Socket } from "node:net";
import { availableParallelism } from "node:os";
import process from "node:process";
import { formatTable, runtimeName } from "./_bench.ts";
import {
  type CaseResult,
  formatCount,
  type LatencyCase,
  type LoadTarget,
  mergePasses,
  runLatency,
  runThroughput,
  type ThroughputCase,
  type Timing,
} from "./_broker_load.ts";
import { type BrokerProcess, cpuTimes, type CpuUse, cpuUse, startBroker } from "./_broker_procs.ts";
import { type NatsProcess, startNats, startNatsCluster } from "./_cluster_procs.ts";

/** The targets, in the order the passes take them. */
const TARGET_NAMES = ["ours-1", "ours-2", "nats-mqtt", "nats-mqtt-2", "mosquitto"] as const;
type TargetName = typeof TARGET_NAMES[number];

/** The main process's label per target, for the CPU column (the others come labelled). */
const MAIN_LABEL: Record<TargetName, string> = {
  "ours-1": "node A",
  "ours-2": "node A",
  "nats-mqtt": "nats",
  "nats-mqtt-2": "nats 1",
  "mosquitto": "mosquitto",
};

/** The connections-per-second case. */
interface ConnectCase {
  kind: "connect";
  key: string;
  title: string;
}
type ClusterCase = ThroughputCase | LatencyCase | ConnectCase;

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const json = argv.includes("--json");
function listOption(flag: string): string[] | undefined {
  const index = argv.indexOf(flag);
  return index === -1 ? undefined : (argv[index + 1] ?? "").split(",").filter((s) => s);
}
const only = listOption("--only") ?? [...TARGET_NAMES];
for (const name of only) {
  if (!(TARGET_NAMES as readonly string[]).includes(name)) {
    process.stderr.write(`Error: unknown target "${name}" (known: ${TARGET_NAMES.join(", ")})\n`);
    process.exit(2);
  }
}
const targets = TARGET_NAMES.filter((name) => only.includes(name));
const onlyCases = listOption("--cases");
/** The runtime of our nodes (`--runtime deno|bun|node`). */
const nodeRuntime = (listOption("--runtime")?.[0] ?? "deno") as "deno" | "bun" | "node";
if (!["deno", "bun", "node"].includes(nodeRuntime)) throw new Error("--runtime takes deno, bun or node");

const timing: Timing = quick
  ? { warmupMs: 300, windowMs: 400, passes: 1, latencyMs: 1000, idleConnections: 0, windowBytes: 0 }
  : { warmupMs: 500, windowMs: 800, passes: 3, latencyMs: 1000, idleConnections: 0, windowBytes: 0 };
/** Connections of one pass of the connect case. */
const connectCount = quick ? 500 : 2000;

const CASES: ClusterCase[] = [
  {
    kind: "throughput",
    key: "qos0",
    title: "QoS 0, 1 → 1 across nodes, 64 B",
    qos: 0,
    payload: 64,
    publishers: 1,
    subscribers: 1,
    inflight: 0,
  },
  {
    kind: "throughput",
    key: "qos1",
    title: "QoS 1, 1 → 1 across nodes, 64 B, 128 in flight",
    qos: 1,
    payload: 64,
    publishers: 1,
    subscribers: 1,
    inflight: 128,
  },
  {
    kind: "throughput",
    key: "fanout",
    title: "fan-out, 1 → 50 spread over the nodes, QoS 0, 64 B (deliveries)",
    qos: 0,
    payload: 64,
    publishers: 1,
    subscribers: 50,
    inflight: 0,
  },
  {
    kind: "latency",
    key: "latency",
    title: "latency at 2,000 msg/s across nodes, QoS 0, 64 B",
    payload: 64,
    ratePerSecond: 2000,
  },
  {
    kind: "connect",
    key: "connect",
    title: `connections per second, persistent sessions (${formatCount(connectCount)} per pass)`,
  },
];
const selected = CASES.filter((spec) => onlyCases === undefined || onlyCases.includes(spec.key));

function progress(text: string): void {
  process.stderr.write(text + "\n");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// -------------------------------------------------------------------------------------------------------
// Targets

/** A running target: its processes and what the load needs. */
interface Target {
  load: LoadTarget;
  brokers: BrokerProcess[];
  nats: NatsProcess[];
}

const running = new Map<TargetName, Target>();
const targetNotes = new Map<TargetName, string[]>(targets.map((name) => [name, []]));

/** Which process of a target exited on its own, if one did. */
function exitedOf(brokers: readonly BrokerProcess[], nats: readonly NatsProcess[]): string | undefined {
  for (const process of [...brokers, ...nats]) {
    const exit = process.exited();
    if (exit !== undefined) return `${"name" in process ? process.name : "a process"}: ${exit}`;
  }
  return undefined;
}

async function startTarget(name: TargetName): Promise<Target> {
  const brokers: BrokerProcess[] = [];
  const nats: NatsProcess[] = [];
  const node = (engine: NatsProcess, id: string) =>
    startBroker(`ours-${nodeRuntime}`, {
      args: ["--cluster", `nats://127.0.0.1:${engine.port}`, "--node", id],
    });
  const target = (load: Omit<LoadTarget, "exited">): Target => ({
    load: { ...load, exited: () => exitedOf(brokers, nats) },
    brokers,
    nats,
  });
  try {
    switch (name) {
      case "ours-1": {
        nats.push(await startNats("ours-1-engine"));
        brokers.push(await node(nats[0], "a"));
        return target({
          port: brokers[0].port,
          pid: brokers[0].pid,
          otherPids: new Map([["nats", nats[0].pid]]),
        });
      }
      case "ours-2": {
        nats.push(await startNats("ours-2-engine"));
        brokers.push(await node(nats[0], "a"));
        brokers.push(await node(nats[0], "b"));
        const [a, b] = brokers;
        return target({
          port: a.port,
          subscriberPorts: [b.port, a.port],
          pid: a.pid,
          otherPids: new Map([["node B", b.pid], ["nats", nats[0].pid]]),
        });
      }
      case "nats-mqtt": {
        nats.push(await startNats("mqtt-solo", { mqtt: true }));
        return target({ port: nats[0].mqttPort ?? 0, pid: nats[0].pid });
      }
      case "nats-mqtt-2": {
        nats.push(...await startNatsCluster("mqtt-pair", 2, { mqtt: true }));
        const [one, two] = nats;
        return target({
          port: one.mqttPort ?? 0,
          subscriberPorts: [two.mqttPort ?? 0, one.mqttPort ?? 0],
          pid: one.pid,
          otherPids: new Map([["nats 2", two.pid]]),
        });
      }
      case "mosquitto": {
        brokers.push(await startBroker("mosquitto"));
        return target({ port: brokers[0].port, pid: brokers[0].pid });
      }
      default: {
        const unreachable: never = name;
        throw new Error(`Unknown target ${unreachable}`);
      }
    }
  } catch (error) {
    await Promise.all([...brokers, ...nats].map((p) => p.stop()));
    throw error;
  }
}

/** Stops a target and keeps what its logs said that looks like a warning or an error. */
async function stop(name: TargetName): Promise<void> {
  const target = running.get(name);
  if (target === undefined) return;
  running.delete(name);
  const notes = targetNotes.get(name);
  const exited = target.load.exited();
  if (exited !== undefined) notes?.push(`a process exited on its own (${exited})`);
  for (const broker of target.brokers) {
    if (broker.warningCount > 0) {
      notes?.push(
        `${broker.name} (port ${broker.port}): ${broker.warningCount} warning or error lines, first: ${
          broker.warnings.slice(0, 3).join(" | ")
        }`,
      );
    }
  }
  for (const server of target.nats) {
    if (server.warningCount > 0) {
      notes?.push(
        `nats-server ${server.name}: ${server.warningCount} [WRN]/[ERR] lines, first: ${
          server.warnings.slice(0, 3).join(" | ")
        }`,
      );
    }
  }
  await Promise.all([...target.brokers, ...target.nats].map((p) => p.stop()));
}

async function stopAll(): Promise<void> {
  await Promise.all([...running.keys()].map(stop));
}

/** The target's processes: started if not running, restarted (with a note) if one of them died. */
async function ensure(name: TargetName): Promise<Target | undefined> {
  const current = running.get(name);
  if (current !== undefined && current.load.exited() === undefined) return current;
  if (current !== undefined) {
    await stop(name);
    targetNotes.get(name)?.push("restarted after a process exited");
  }
  try {
    const target = await startTarget(name);
    running.set(name, target);
    return target;
  } catch (error) {
    const message = (error as Error).message;
    const notes = targetNotes.get(name);
    if (notes !== undefined && !notes.some((note) => note.startsWith("could not start"))) {
      notes.push(`could not start: ${message.split("\n")[0]}`);
      progress(`  ${name} could not start: ${message}`);
    }
    return undefined;
  }
}

process.on("SIGINT", () => {
  void stopAll().then(() => process.exit(130));
});

// -------------------------------------------------------------------------------------------------------
// The connect case

/** MQTT 3.1.1 CONNECT with clean session false and keep-alive off; DISCONNECT. */
function connectPacket(clientId: string): Uint8Array {
  const id = new TextEncoder().encode(clientId);
  const rest = 10 + 2 + id.length;
  return Uint8Array.from([
    0x10,
    rest,
    0,
    4,
    0x4d,
    0x51,
    0x54,
    0x54,
    4,
    0,
    0,
    0,
    id.length >> 8,
    id.length & 255,
    ...id,
  ]);
}
const DISCONNECT = Uint8Array.from([0xe0, 0]);

/** Connects with a persistent session, waits for CONNACK (accepted), sends DISCONNECT and closes. */
function connectOnce(port: number, clientId: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.setNoDelay(true);
    let got = new Uint8Array(0);
    const timer = setTimeout(
      () => fail(new Error(`no CONNACK for ${clientId} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    function fail(error: Error): void {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    }
    socket.once("error", fail);
    socket.once("close", () => fail(new Error(`closed before CONNACK (${clientId})`)));
    socket.on("data", (chunk: Uint8Array) => {
      got = Uint8Array.from([...got, ...chunk]);
      if (got.length < 4) return;
      if (got[0] !== 0x20 || got[3] !== 0) {
        fail(new Error(`CONNACK refused ${clientId}: ${[...got.subarray(0, 4)].join(" ")}`));
        return;
      }
      clearTimeout(timer);
      socket.removeAllListeners("close");
      socket.end(DISCONNECT);
      resolve();
    });
    socket.connect(port, "127.0.0.1", () => socket.write(connectPacket(clientId)));
  });
}

/**
 * Opens `count` connections with persistent sessions (clean session false, fresh identifiers) to the
 * publishers' node in batches of 50, each waiting for its CONNACK and then sending DISCONNECT.
 */
async function runConnect(name: TargetName, target: Target, count: number): Promise<CaseResult> {
  const result: CaseResult = { rate: NaN, rounds: [], notes: [] };
  const run = `conn-${Date.now().toString(36)}`;
  const pids = [[MAIN_LABEL[name], target.load.pid] as const, ...(target.load.otherPids ?? [])];
  const cpuBefore = pids.map(([label, pid]) => ({ label, pid, at: cpuTimes(pid) }));
  const selfBefore = cpuTimes(process.pid);
  const started = performance.now();
  let failed = 0;
  let firstError: string | undefined;
  try {
    for (let i = 0; i < count; i += 50) {
      const settled = await Promise.allSettled(
        Array.from(
          { length: Math.min(50, count - i) },
          (_, j) => connectOnce(target.load.port, `${run}-${i + j}`, 15_000),
        ),
      );
      let batchFailed = 0;
      for (const outcome of settled) {
        if (outcome.status === "rejected") {
          batchFailed++;
          firstError ??= (outcome.reason as Error).message;
        }
      }
      failed += batchFailed;
      if (batchFailed === settled.length) break;
    }
    const seconds = (performance.now() - started) / 1000;
    if (target.load.exited() !== undefined) throw new Error(`a process exited (${target.load.exited()})`);
    if (failed >= count) throw new Error(`no connection succeeded (${firstError})`);
    if (failed > 0) result.notes.push(`${failed} connections failed (${firstError})`);
    result.rate = (count - failed) / seconds;
    result.rounds.push(result.rate);
    const uses = cpuBefore.map(({ label, pid, at }) => [label, cpuUse(at, cpuTimes(pid), seconds)] as const);
    result.brokerCpu = uses[0][1];
    if (uses.length > 1) result.otherCpu = Object.fromEntries(uses.slice(1));
    result.generatorCpu = cpuUse(selfBefore, cpuTimes(process.pid), seconds);
  } catch (error) {
    result.error = (error as Error).message;
  }
  await sleep(300);
  return result;
}

// -------------------------------------------------------------------------------------------------------
// Run

/** Results by target, then by case key. */
const results = new Map<TargetName, Map<string, CaseResult>>(targets.map((name) => [name, new Map()]));

function describe(result: CaseResult): string {
  if (result.error !== undefined) return `FAILED: ${result.error}`;
  if (result.latency) {
    return `p50 ${result.latency.p50.toFixed(2)} ms, p99 ${result.latency.p99.toFixed(2)} ms`;
  }
  return `${formatCount(result.rate)}/s${
    result.lost === undefined ? "" : `, ${formatCount(result.lost)} lost`
  }`;
}

progress(
  `Cluster benchmark: generator on ${runtimeName()}, ${availableParallelism()} CPUs${
    quick ? ", --quick" : ""
  }`,
);
try {
  for (const name of targets) {
    progress(`starting ${name}`);
    await ensure(name);
  }
  for (const spec of selected) {
    const passes = new Map<TargetName, CaseResult[]>(targets.map((name) => [name, []]));
    for (let pass = 0; pass < timing.passes; pass++) {
      const line: string[] = [];
      for (const name of targets) {
        const target = await ensure(name);
        const result: CaseResult = target === undefined
          ? { rate: NaN, rounds: [], notes: [], error: "the target did not start" }
          : spec.kind === "throughput"
          ? await runThroughput(target.load, spec, timing)
          : spec.kind === "latency"
          ? await runLatency(target.load, spec, timing)
          : await runConnect(name, target, connectCount);
        passes.get(name)?.push(result);
        line.push(`${name} ${describe(result)}${result.notes.length ? ` [${result.notes.join("; ")}]` : ""}`);
      }
      progress(`${spec.title}, pass ${pass + 1}/${timing.passes}: ${line.join(", ")}`);
    }
    for (const name of targets) results.get(name)?.set(spec.key, mergePasses(passes.get(name) ?? []));
  }
} finally {
  await stopAll();
}

// -------------------------------------------------------------------------------------------------------
// Report

function value(name: TargetName, key: string): number | undefined {
  const r = results.get(name)?.get(key);
  if (r === undefined || r.error !== undefined || !Number.isFinite(r.rate)) return undefined;
  return key === "latency" ? r.latency?.p99 : r.rate;
}

function ratio(name: TargetName, base: TargetName, key: string): number | undefined {
  const a = value(name, key);
  const b = value(base, key);
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

function times(x: number | undefined): string {
  return x === undefined ? "n/a" : `${x.toFixed(2)}×`;
}

function lostText(r: CaseResult): string {
  if (r.lost === undefined) return "";
  if (r.lost === 0 || !r.expected) return formatCount(r.lost);
  const share = (100 * r.lost) / r.expected;
  return `${formatCount(r.lost)} (${share < 0.01 ? "< 0.01" : share.toFixed(2)} %)`;
}

function percent(cpu: CpuUse): string {
  return `${Math.round(cpu.total)}% (${Math.round(cpu.busiest)}%)`;
}

/** Every process's CPU use, labelled. */
function processCpu(name: TargetName, r: CaseResult): [string, CpuUse][] {
  return [
    ...(r.brokerCpu ? [[MAIN_LABEL[name], r.brokerCpu] as [string, CpuUse]] : []),
    ...Object.entries(r.otherCpu ?? {}),
  ];
}

function cpuText(name: TargetName, r: CaseResult): string {
  return processCpu(name, r).map(([label, cpu]) => `${label} ${percent(cpu)}`).join(", ");
}

/** The processes whose busiest thread was at 80 % or more, or the shared CPUs, or nothing saturated. */
function limitOf(name: TargetName, r: CaseResult): string {
  const all = processCpu(name, r);
  if (r.generatorCpu) all.push(["generator", r.generatorCpu]);
  if (all.length === 0) return "";
  const busy = all.filter(([, cpu]) => cpu.busiest >= 80).map(([label]) => label);
  if (busy.length > 0) return busy.join(" + ");
  const total = all.reduce((sum, [, cpu]) => sum + cpu.total, 0);
  if (total >= 0.9 * 100 * availableParallelism()) return "CPUs (shared)";
  return "neither (round trips)";
}

interface Goal {
  text: string;
  key: string;
  measure: () => number | undefined;
  pass: (x: number) => boolean;
  show: (x: number) => string;
}

const GOALS: Goal[] = [
  {
    text: "cross-node QoS 0: ours-2 ≥ 2× nats-mqtt-2",
    key: "qos0",
    measure: () => ratio("ours-2", "nats-mqtt-2", "qos0"),
    pass: (x) => x >= 2,
    show: times,
  },
  {
    text: "cross-node QoS 0: ours-2 ≥ 0.5× ours-1",
    key: "qos0",
    measure: () => ratio("ours-2", "ours-1", "qos0"),
    pass: (x) => x >= 0.5,
    show: times,
  },
  {
    text: "cross-node QoS 1: ours-2 ≥ 1× nats-mqtt-2",
    key: "qos1",
    measure: () => ratio("ours-2", "nats-mqtt-2", "qos1"),
    pass: (x) => x >= 1,
    show: times,
  },
  {
    text: "ours-2 p99 at 2,000 msg/s across nodes ≤ 3 ms",
    key: "latency",
    measure: () => value("ours-2", "latency"),
    pass: (x) => x <= 3,
    show: (x) => `${x.toFixed(2)} ms`,
  },
];

function goalRows(): { goal: string; value: number | undefined; met: boolean | undefined }[] {
  return GOALS.filter((goal) => selected.some((spec) => spec.key === goal.key)).map((goal) => {
    const x = goal.measure();
    return { goal: goal.text, value: x, met: x === undefined ? undefined : goal.pass(x) };
  });
}

/** The ratios a case's table shows, against the targets that ran. */
const BASES = (["ours-1", "nats-mqtt-2", "mosquitto"] as const).filter((name) => targets.includes(name));

if (json) {
  console.log(JSON.stringify(
    {
      generator: runtimeName(),
      cpus: availableParallelism(),
      quick,
      timing,
      connectCount,
      cases: selected.map(({ key, title }) => ({ key, title })),
      targets: Object.fromEntries(targets.map((name) => [name, {
        notes: targetNotes.get(name) ?? [],
        results: Object.fromEntries(
          [...(results.get(name) ?? [])].map(([key, r]) => [key, {
            ...r,
            rate: Number.isFinite(r.rate) ? r.rate : null,
            cpu: Object.fromEntries(processCpu(name, r)),
            limit: limitOf(name, r),
            ratios: Object.fromEntries(BASES.map((base) => [base, ratio(name, base, key) ?? null])),
          }]),
        ),
      }])),
      goals: goalRows().map((row) => ({ ...row, value: row.value ?? null, met: row.met ?? null })),
    },
    null,
    2,
  ));
} else {
  const lines: string[] = [];
  const cpus = availableParallelism();
  lines.push(
    `Cluster benchmark on 127.0.0.1: generator on ${runtimeName()}, ${cpus} CPUs shared by every process` +
      `${quick ? " (--quick)" : ""}; ours on Deno with nats-server ${"(JetStream)"}; publishers on the ` +
      "first node, subscribers on the second (fan-out: alternating).",
    `Timing: per case and target ${timing.passes} passes taken in turn with the other targets, each a ` +
      `warm-up of ${timing.warmupMs} ms and a window of ${timing.windowMs} ms (median pass; latency: ` +
      `${timing.latencyMs} ms per pass, percentiles over all). CPU: % of one core, busiest thread in ` +
      "parentheses.",
  );
  CASES.forEach((spec, index) => {
    if (!selected.includes(spec)) return;
    lines.push("", `${index + 1}. ${spec.title}`);
    const rows: string[][] = [];
    const notes: string[] = [];
    for (const name of targets) {
      const r = results.get(name)?.get(spec.key);
      if (r === undefined) {
        rows.push([name, "not run"]);
        continue;
      }
      if (r.error !== undefined) notes.push(`${name}: FAILED: ${r.error}`);
      for (const note of r.notes) notes.push(`${name}: ${note}`);
      const failed = r.error !== undefined;
      const ratios = BASES.map((base) => times(ratio(name, base, spec.key)));
      if (spec.kind === "latency") {
        const l = r.latency;
        rows.push([
          name,
          l ? l.p50.toFixed(2) : "failed",
          l ? l.p90.toFixed(2) : "",
          l ? l.p99.toFixed(2) : "",
          l ? l.max.toFixed(2) : "",
          ...ratios,
          l ? `${formatCount(l.samples)} at ${formatCount(l.sentPerSecond)}/s` : "",
          cpuText(name, r),
        ]);
      } else {
        rows.push([
          name,
          failed ? "failed" : formatCount(r.rate),
          ...ratios,
          ...(spec.kind === "throughput" ? [lostText(r)] : []),
          failed ? "" : r.rounds.map(formatCount).join(" "),
          cpuText(name, r),
          r.generatorCpu ? percent(r.generatorCpu) : "",
          failed ? "" : limitOf(name, r),
        ]);
      }
    }
    const ratioHeads = BASES.map((base) => spec.kind === "latency" ? `p99 vs ${base}` : `vs ${base}`);
    const header = spec.kind === "latency"
      ? ["target", "p50 ms", "p90 ms", "p99 ms", "max ms", ...ratioHeads, "samples", "CPU per process"]
      : [
        "target",
        spec.key === "fanout" ? "deliveries/s" : spec.kind === "connect" ? "connects/s" : "msg/s",
        ...ratioHeads,
        ...(spec.kind === "throughput" ? ["lost"] : []),
        "passes",
        "CPU per process",
        "generator CPU",
        "limit",
      ];
    lines.push(formatTable(header, rows));
    for (const note of notes) lines.push(`  ${note}`);
  });
  lines.push(
    "",
    "Limit: the processes whose busiest thread was at 80 % of a core or more; " +
      `"CPUs (shared)" when all of them together used 90 % of the ${cpus} CPUs; "neither (round trips)" ` +
      "when nothing was saturated. Lost: deliveries that never arrived after the drain, summed over the " +
      "passes.",
  );
  const notes = targets.flatMap((name) => (targetNotes.get(name) ?? []).map((note) => `${name}: ${note}`));
  if (notes.length > 0) lines.push("", "Target notes:", ...notes.map((note) => `  ${note}`));
  const rows = goalRows();
  if (rows.length > 0) {
    lines.push("", "Goals (this run):");
    const width = Math.max(...GOALS.map((goal) => goal.text.length));
    for (const row of rows) {
      const goal = GOALS.find((g) => g.text === row.goal)!;
      lines.push(
        `  ${row.met === undefined ? "n/a    " : row.met ? "met    " : "not met"}  ${
          row.goal.padEnd(width)
        }  ${row.value === undefined ? "no figure" : goal.show(row.value)}`,
      );
    }
  }
  console.log(lines.join("\n"));
}
