/**
 * Broker load benchmark: our broker on Deno and on Bun against mosquitto and aedes, on loopback, in one run,
 * with every figure also given as a ratio to mosquitto's and the project's goals checked at the end.
 *
 * Run from the repository root (node_modules installed, `PATH=node_modules/.bin:$PATH`; mosquitto on the
 * PATH; Linux, since CPU and memory are read from `/proc`):
 *
 *     node scripts/bench/broker.ts [--quick] [--only ours-deno,mosquitto] [--json]
 *     deno run -A scripts/bench/broker.ts [...]
 *     bun scripts/bench/broker.ts [...]
 *
 * - `--only a,b`: run only these brokers (`ours-deno`, `ours-bun`, `mosquitto`, `aedes`); ratios need
 *   mosquitto.
 * - `--quick`: one short pass per case and 2,000 idle connections (about a minute for all four brokers).
 * - `--json`: print the results as JSON instead of tables (progress still goes to stderr).
 * - `--cases qos0,latency`: run only these cases (`qos0 qos1 qos2 fanin fanout slowsub large latency idle`);
 *   `slowsub` brings `fanout` along, its baseline.
 * - `--window-kib N`: turn on a QoS 0 flow-control window of N KiB (default 0, off; see below).
 *
 * The default run takes about three minutes plus the drains after the passes (up to 30 s a pass for a broker
 * that buffered a lot; mosquitto's fan-out passes took about 9 s each in trials). Each broker is started by
 * the script on a free port of 127.0.0.1 and stopped at the end: ours with `deno run -A broker.ts --port P
 * --persistence memory` and `bun broker.ts --port P --persistence memory`, mosquitto with a temporary
 * configuration (`max_inflight_messages 1000`, `max_queued_messages 100000`, `persistence false`; otherwise
 * its defaults, so Nagle's algorithm stays on), aedes 1.x in a child Node.js process (`_broker_aedes.ts`).
 * Every broker gets the same load from this process, the generator: MQTT 3.1.1 (aedes has no MQTT 5) over raw
 * `node:net` sockets, PUBLISH packets pre-encoded by our codec and copied into writes of up to 64 KiB, a
 * frame scanner instead of a decoder on the receiving side (Node reads into one reused buffer), and
 * acknowledgements and further publishes written once per turn of the event loop, so that a message costs the
 * generator much less than it costs a broker.
 *
 * Cases; each throughput pass connects, warms up for 0.5 s and counts what arrives in a 0.8 s window, and
 * each case runs 3 passes per broker taken in turn (broker A, B, C, D, A, B, …) so that a disturbance of the
 * machine hits all brokers alike; the figure is the median pass:
 * 1. QoS 0, 1 → 1, 64 B payloads: messages per second received by the subscriber;
 * 2. QoS 1, 1 → 1, 128 in flight: the publisher keeps 128 PUBLISH unacknowledged, the subscriber
 *    acknowledges;
 * 3. QoS 2, 1 → 1, 128 in flight, with PUBREC/PUBREL/PUBCOMP on both sides;
 * 4. fan-in: 10 publishers → 1 subscriber (`+` wildcard), QoS 0;
 * 5. fan-out: 1 publisher → 50 subscribers, QoS 0: deliveries per second received in total;
 * 6. slow subscriber: the fan-out with one of the 50 subscribers stuck: once subscribed it pauses its socket
 *    (`socket.pause()`, from before the warm-up to the end of the pass; on Node one read of up to 64 KiB
 *    still completed after it in trials), so the broker's sends to it stop once the socket buffers are full.
 *    Deliveries per second received by the other 49, in total and per subscriber, and the key figure: that
 *    per-subscriber rate as a share of the same broker's fan-out rate per subscriber in this run (goal:
 *    ≥ 90 %, one stuck subscriber does not stall the others). A broker may disconnect the stuck one (a
 *    slow-consumer limit); that is reported, not counted against it, and its losses are not counted;
 * 7. 16 KiB payloads, QoS 0, 1 → 1: messages and payload megabytes (10^6 B) per second;
 * 8. latency: 2,000 QoS 0 messages per second paced by a 1 ms timer, each stamped with its send time; p50,
 *    p90, p99 and max of publish → receive over all passes (1 s each after the warm-up);
 * 9. memory, first, on freshly started brokers: 100 connections opened and closed, VmRSS read, then 10,000
 *    idle connections (keep-alive off) opened in batches of 100, each waiting for its CONNACK (mosquitto
 *    listens with a backlog of 100: batches of 500 opened about 400 connections/s there, batches of 100 about
 *    10,000/s), 1.5 s of rest, VmRSS again; the figure is (after − before) / connections.
 *
 * Flow control is the broker's: QoS 0 publishers write as fast as their socket takes it and stop only while
 * it reports backpressure (`write()` false until "drain"), so a broker that reads its publishers faster than
 * its subscribers take the messages must slow the publishers (stop reading them: TCP backpressure) or lose
 * messages; only received messages count. `--window-kib N` adds an application-level window as older runs had
 * (1024 then): publishers also stop while they are more than N KiB of PUBLISH (over all reading subscribers'
 * streams) ahead of what the subscribers received (sequence numbers in the payloads). QoS 1 and 2 publishers
 * keep their fixed number in flight. After each pass the publishers stop, the script waits for what is in
 * flight (until everything arrived, or nothing new arrived for 1 s; at most 30 s, for a broker that buffered
 * a lot) and reports, in the `lost` column of every throughput case, the deliveries that never arrived:
 * messages sent × reading subscribers − messages received, summed over the case's passes, with their share of
 * the deliveries expected. The notes say where they were missing (by sequence number: before the first
 * received, in gaps, after the last) and give duplicates, unexpected packets, lost connections and broker
 * processes that died (restarted for the next pass).
 *
 * Besides each figure it prints the CPU use of the broker process and of the generator (utime + stime from
 * `/proc`, in % of one core, the busiest thread in parentheses) and which side was the limit: a busiest
 * thread at 80 % or more means that event loop is saturated; "both" means the figure may understate the
 * broker. Absolute numbers depend on the machine and on how many cores the broker and the generator share;
 * compare ratios.
 *
 * @module
 */

import { availableParallelism } from "node:os";
import process from "node:process";
import { formatTable, runtimeName } from "./_bench.ts";
import {
  type BenchCase,
  type CaseResult,
  formatCount,
  mergePasses,
  runIdle,
  runLatency,
  runThroughput,
  type ThroughputCase,
  type Timing,
} from "./_broker_load.ts";
import {
  BROKER_NAMES,
  type BrokerName,
  type BrokerProcess,
  type CpuUse,
  fileLimits,
  startBroker,
} from "./_broker_procs.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const json = argv.includes("--json");
const onlyIndex = argv.indexOf("--only");
const only = onlyIndex === -1 ? [...BROKER_NAMES] : (argv[onlyIndex + 1] ?? "").split(",").filter((s) => s);
for (const name of only) {
  if (!(BROKER_NAMES as readonly string[]).includes(name)) {
    process.stderr.write(`Error: unknown broker "${name}" (known: ${BROKER_NAMES.join(", ")})\n`);
    process.exit(2);
  }
}
const brokers = BROKER_NAMES.filter((name) => only.includes(name));
const windowIndex = argv.indexOf("--window-kib");
const windowKiB = windowIndex === -1 ? 0 : Number(argv[windowIndex + 1]);
if (!Number.isInteger(windowKiB) || windowKiB < 0) {
  process.stderr.write(`Error: --window-kib wants a whole number of KiB (0: off)\n`);
  process.exit(2);
}
const casesIndex = argv.indexOf("--cases");
const onlyCases = casesIndex === -1 ? undefined : (argv[casesIndex + 1] ?? "").split(",");
// The slow-subscriber case is read against the plain fan-out of the same run.
if (onlyCases?.includes("slowsub") && !onlyCases.includes("fanout")) onlyCases.push("fanout");

const timing: Timing = quick
  ? {
    warmupMs: 300,
    windowMs: 400,
    passes: 1,
    latencyMs: 1000,
    idleConnections: 2000,
    windowBytes: windowKiB << 10,
  }
  : {
    warmupMs: 500,
    windowMs: 800,
    passes: 3,
    latencyMs: 1000,
    idleConnections: 10_000,
    windowBytes: windowKiB << 10,
  };

const setupNotes: string[] = [];
const limits = fileLimits();
if (limits !== undefined && limits.soft < timing.idleConnections + 200) {
  const usable = Math.max(0, limits.soft - 200);
  setupNotes.push(
    `open-file limit ${limits.soft} (hard ${limits.hard}) is too low for ${
      formatCount(timing.idleConnections)
    } connections: using ${formatCount(usable)}; raise it with \`ulimit -n 65536\` for the full case`,
  );
  timing.idleConnections = usable;
}

const CASES: BenchCase[] = [
  {
    kind: "throughput",
    key: "qos0",
    title: "QoS 0, 1 → 1, 64 B",
    qos: 0,
    payload: 64,
    publishers: 1,
    subscribers: 1,
    inflight: 0,
  },
  {
    kind: "throughput",
    key: "qos1",
    title: "QoS 1, 1 → 1, 64 B, 128 in flight",
    qos: 1,
    payload: 64,
    publishers: 1,
    subscribers: 1,
    inflight: 128,
  },
  {
    kind: "throughput",
    key: "qos2",
    title: "QoS 2, 1 → 1, 64 B, 128 in flight",
    qos: 2,
    payload: 64,
    publishers: 1,
    subscribers: 1,
    inflight: 128,
  },
  {
    kind: "throughput",
    key: "fanin",
    title: "fan-in, 10 → 1, QoS 0, 64 B",
    qos: 0,
    payload: 64,
    publishers: 10,
    subscribers: 1,
    inflight: 0,
  },
  {
    kind: "throughput",
    key: "fanout",
    title: "fan-out, 1 → 50, QoS 0, 64 B (deliveries)",
    qos: 0,
    payload: 64,
    publishers: 1,
    subscribers: 50,
    inflight: 0,
  },
  {
    kind: "throughput",
    key: "slowsub",
    title: "slow subscriber: fan-out 1 → 50, QoS 0, 64 B, 1 stops reading (deliveries to the other 49)",
    qos: 0,
    payload: 64,
    publishers: 1,
    subscribers: 50,
    stuck: 1,
    inflight: 0,
  },
  {
    kind: "throughput",
    key: "large",
    title: "QoS 0, 1 → 1, 16 KiB",
    qos: 0,
    payload: 16_384,
    publishers: 1,
    subscribers: 1,
    inflight: 0,
  },
  {
    kind: "latency",
    key: "latency",
    title: "latency at 2,000 msg/s, QoS 0, 64 B",
    payload: 64,
    ratePerSecond: 2000,
  },
  { kind: "idle", key: "idle", title: `memory per idle connection` },
];

/** Results by broker, then by case key. */
const results = new Map<BrokerName, Map<string, CaseResult>>(brokers.map((name) => [name, new Map()]));
/** Broker-level problems (start failures, restarts, warnings in its log). */
const brokerNotes = new Map<BrokerName, string[]>(brokers.map((name) => [name, []]));
/** The running broker processes, by name. */
const running = new Map<BrokerName, BrokerProcess>();

function progress(text: string): void {
  process.stderr.write(text + "\n");
}

/** Stops a broker and keeps what its log said that looks like a warning or an error. */
async function stop(name: BrokerName): Promise<void> {
  const broker = running.get(name);
  if (broker === undefined) return;
  running.delete(name);
  const exited = broker.exited();
  if (exited !== undefined) {
    brokerNotes.get(name)?.push(
      `exited on its own (${exited}); last output: ${broker.tail().slice(-5).join(" | ")}`,
    );
  }
  if (broker.warningCount > 0) {
    brokerNotes.get(name)?.push(
      `${broker.warningCount} warning or error lines in its log, first: ${
        broker.warnings.slice(0, 3).join(" | ")
      }`,
    );
  }
  await broker.stop();
}

async function stopAll(): Promise<void> {
  await Promise.all([...running.keys()].map(stop));
}

/** The broker's running process: started if it is not running, restarted (with a note) if it died. */
async function ensure(name: BrokerName): Promise<BrokerProcess | undefined> {
  const current = running.get(name);
  if (current !== undefined && current.exited() === undefined) return current;
  if (current !== undefined) {
    await stop(name);
    brokerNotes.get(name)?.push("restarted after it exited");
  }
  try {
    const broker = await startBroker(name);
    running.set(name, broker);
    return broker;
  } catch (error) {
    const message = (error as Error).message;
    const notes = brokerNotes.get(name);
    if (notes !== undefined && !notes.some((note) => note.startsWith("could not start"))) {
      notes.push(`could not start: ${message}`);
      progress(`  ${name} could not start: ${message}`);
    }
    return undefined;
  }
}

process.on("SIGINT", () => {
  void stopAll().then(() => process.exit(130));
});

function describe(result: CaseResult): string {
  if (result.error !== undefined) return `FAILED: ${result.error}`;
  if (result.idle) return `${result.idle.kibPerConnection.toFixed(2)} KiB/conn`;
  if (result.latency) {
    return `p50 ${result.latency.p50.toFixed(2)} ms, p99 ${result.latency.p99.toFixed(2)} ms`;
  }
  return `${formatCount(result.rate)}/s${
    result.lost === undefined ? "" : `, ${formatCount(result.lost)} lost`
  }`;
}

progress(
  `Broker benchmark: generator on ${runtimeName()}, ${availableParallelism()} CPUs${
    quick ? ", --quick" : ""
  }`,
);
const selected = CASES.filter((spec) => onlyCases === undefined || onlyCases.includes(spec.key));

// Memory first, on brokers that have served nothing else; then fresh brokers for the load cases.
const idle = selected.find((spec) => spec.kind === "idle");
if (idle !== undefined && timing.idleConnections > 0) {
  for (const name of brokers) {
    const broker = await ensure(name);
    const result = broker === undefined
      ? { rate: NaN, rounds: [], notes: [], error: "the broker did not start" }
      : await runIdle(broker, timing);
    results.get(name)?.set(idle.key, result);
    progress(
      `${idle.title}: ${name} ${describe(result)}${
        result.notes.length ? ` [${result.notes.join("; ")}]` : ""
      }`,
    );
    await stop(name);
  }
}

// Load cases: every pass runs each broker in turn, so a disturbance of the machine hits all of them alike.
for (const spec of selected) {
  if (spec.kind === "idle") continue;
  const passes = new Map<BrokerName, CaseResult[]>(brokers.map((name) => [name, []]));
  for (let pass = 0; pass < timing.passes; pass++) {
    const line: string[] = [];
    for (const name of brokers) {
      const broker = await ensure(name);
      const result = broker === undefined
        ? { rate: NaN, rounds: [], notes: [], error: "the broker did not start" }
        : spec.kind === "throughput"
        ? await runThroughput(broker, spec, timing)
        : await runLatency(broker, spec, timing);
      passes.get(name)?.push(result);
      line.push(`${name} ${describe(result)}${result.notes.length ? ` [${result.notes.join("; ")}]` : ""}`);
    }
    progress(`${spec.title}, pass ${pass + 1}/${timing.passes}: ${line.join(", ")}`);
  }
  for (const name of brokers) results.get(name)?.set(spec.key, mergePasses(passes.get(name) ?? []));
}
await stopAll();

// -------------------------------------------------------------------------------------------------------
// Report

function ratio(
  name: BrokerName,
  key: string,
  value: (r: CaseResult) => number | undefined,
): number | undefined {
  const base = results.get("mosquitto")?.get(key);
  const mine = results.get(name)?.get(key);
  if (base === undefined || mine === undefined || base.error !== undefined || mine.error !== undefined) {
    return undefined;
  }
  const a = value(mine);
  const b = value(base);
  return a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0
    ? undefined
    : a / b;
}

function times(x: number | undefined): string {
  return x === undefined ? "n/a" : `${x.toFixed(2)}×`;
}

/** The lost deliveries and their share of those expected, such as `1,234 (0.52 %)`. */
function lostText(r: CaseResult): string {
  if (r.lost === undefined) return "";
  if (r.lost === 0 || !r.expected) return formatCount(r.lost);
  const share = (100 * r.lost) / r.expected;
  return `${formatCount(r.lost)} (${share < 0.01 ? "< 0.01" : share.toFixed(2)} %)`;
}

/** Deliveries per second to one reading subscriber. */
function perSubscriber(r: CaseResult, spec: ThroughputCase): number {
  return r.rate / (r.readingSubscribers ?? spec.subscribers - (spec.stuck ?? 0));
}

/**
 * The slow-subscriber case's key figure: deliveries per second to each of the other 49, as a share of the
 * same broker's fan-out rate per subscriber in this run.
 */
function vsFanout(name: BrokerName): number | undefined {
  const slow = results.get(name)?.get("slowsub");
  const plain = results.get(name)?.get("fanout");
  const slowSpec = CASES.find((spec) => spec.key === "slowsub");
  const plainSpec = CASES.find((spec) => spec.key === "fanout");
  if (
    slow === undefined || plain === undefined || slow.error !== undefined || plain.error !== undefined ||
    slowSpec?.kind !== "throughput" || plainSpec?.kind !== "throughput"
  ) {
    return undefined;
  }
  const x = perSubscriber(slow, slowSpec) / perSubscriber(plain, plainSpec);
  return Number.isFinite(x) ? x : undefined;
}

function percent(cpu: CpuUse | undefined): string {
  return cpu === undefined ? "" : `${Math.round(cpu.total)}% (${Math.round(cpu.busiest)}%)`;
}

function limitOf(result: CaseResult): string {
  const broker = result.brokerCpu;
  const generator = result.generatorCpu;
  if (broker === undefined || generator === undefined) return "";
  const brokerBusy = broker.busiest >= 80;
  const generatorBusy = generator.busiest >= 80;
  if (brokerBusy && generatorBusy) return "both";
  if (brokerBusy) return "broker";
  if (generatorBusy) return "generator";
  if (broker.total + generator.total >= 0.9 * 100 * availableParallelism()) return "CPUs (shared)";
  return "neither (round trips)";
}

interface Goal {
  text: string;
  key: string;
  /** The figure compared: our value / mosquitto's, or an absolute value. */
  measure: (name: BrokerName) => number | undefined;
  pass: (x: number, name: BrokerName) => boolean;
  show: (x: number) => string;
}

const rateOf = (r: CaseResult) => r.rate;
const GOALS: Goal[] = [
  ...[["qos0", "QoS 0 1 → 1"], ["fanin", "fan-in 10 → 1"], ["fanout", "fan-out 1 → 50"]].map((
    [key, label],
  ) => ({
    text: `${label} ≥ 2× mosquitto`,
    key,
    measure: (name: BrokerName) => ratio(name, key, rateOf),
    pass: (x: number) => x >= 2,
    show: times,
  })),
  ...[["qos1", "QoS 1 1 → 1"], ["qos2", "QoS 2 1 → 1"]].map(([key, label]) => ({
    text: `${label} ≥ 1.5× mosquitto`,
    key,
    measure: (name: BrokerName) => ratio(name, key, rateOf),
    pass: (x: number) => x >= 1.5,
    show: times,
  })),
  {
    text: "16 KiB QoS 0 ≥ 1.2× mosquitto's MB/s",
    key: "large",
    measure: (name) => ratio(name, "large", (r) => r.megabytesPerSecond),
    pass: (x) => x >= 1.2,
    show: times,
  },
  {
    text: "slow subscriber: other 49 ≥ 90 % of fan-out",
    key: "slowsub",
    measure: vsFanout,
    pass: (x) => x >= 0.9,
    show: (x) => `${(100 * x).toFixed(1)} %`,
  },
  ...[
    ["qos0", "QoS 0 1 → 1"],
    ["fanin", "fan-in 10 → 1"],
    ["fanout", "fan-out 1 → 50"],
    ["slowsub", "slow subscriber (other 49)"],
    ["large", "16 KiB QoS 0"],
  ].map(([key, label]) => ({
    text: `${label}: 0 lost`,
    key,
    measure: (name: BrokerName) => {
      const r = results.get(name)?.get(key);
      return r?.error === undefined ? r?.lost : undefined;
    },
    pass: (x: number) => x === 0,
    show: formatCount,
  })),
  {
    text: "p99 latency ≤ 1.5× mosquitto's",
    key: "latency",
    measure: (name) => ratio(name, "latency", (r) => r.latency?.p99),
    pass: (x) => x <= 1.5,
    show: times,
  },
  {
    // Issue 13's goals: Deno holds 6.5 KiB per connection before any of our code (a bare Deno.listen server).
    text: "≤ 8 KiB (Deno), ≤ 3 KiB (Bun) per idle connection",
    key: "idle",
    measure: (name) => {
      const r = results.get(name)?.get("idle");
      return r?.error === undefined ? r?.idle?.kibPerConnection : undefined;
    },
    pass: (x, name) => x <= (name === "ours-deno" ? 8 : 3),
    show: (x) => `${x.toFixed(2)} KiB`,
  },
];
const ours = brokers.filter((name) => name.startsWith("ours-"));

function goalRows(): {
  broker: BrokerName;
  goal: string;
  value: number | undefined;
  pass: boolean | undefined;
}[] {
  return GOALS.filter((goal) => selected.some((spec) => spec.key === goal.key)).flatMap((goal) =>
    ours.map((name) => {
      const value = goal.measure(name);
      return {
        broker: name,
        goal: goal.text,
        value,
        pass: value === undefined ? undefined : goal.pass(value, name),
      };
    })
  );
}

if (json) {
  const out = {
    generator: runtimeName(),
    cpus: availableParallelism(),
    quick,
    timing,
    notes: setupNotes,
    cases: selected.map(({ key, title }) => ({ key, title })),
    brokers: Object.fromEntries(
      brokers.map((name) => [name, {
        notes: brokerNotes.get(name) ?? [],
        results: Object.fromEntries(
          [...(results.get(name) ?? [])].map(([key, r]) => [key, {
            ...r,
            rate: Number.isFinite(r.rate) ? r.rate : null,
            vsMosquitto: key === "latency"
              ? ratio(name, key, (x) => x.latency?.p99) ?? null
              : key === "idle"
              ? ratio(name, key, (x) => x.idle?.kibPerConnection) ?? null
              : ratio(name, key, rateOf) ?? null,
            ...(key === "slowsub" ? { vsFanout: vsFanout(name) ?? null } : {}),
          }]),
        ),
      }]),
    ),
    goals: goalRows().map((row) => ({ ...row, value: row.value ?? null, pass: row.pass ?? null })),
  };
  console.log(JSON.stringify(out, null, 2));
} else {
  const lines: string[] = [];
  const cpus = availableParallelism();
  lines.push(
    `Broker benchmark on 127.0.0.1: generator on ${runtimeName()}, ${cpus} CPUs shared by the broker and ` +
      `the generator${quick ? " (--quick)" : ""}`,
  );
  const idleCount = formatCount(timing.idleConnections);
  lines.push(
    `Timing: per case and broker ${timing.passes} passes taken in turn with the other brokers, each a ` +
      `warm-up of ${timing.warmupMs} ms and a window of ${timing.windowMs} ms (median pass; latency: ` +
      `${timing.latencyMs} ms per pass, percentiles over all); ${idleCount} idle connections. QoS 0 ` +
      `flow-control window: ${
        timing.windowBytes > 0
          ? `${timing.windowBytes >> 10} KiB`
          : "off (publishers slowed by TCP backpressure only)"
      }. CPU: % of one core, busiest thread in parentheses.`,
  );
  for (const note of setupNotes) lines.push(`Note: ${note}`);
  CASES.forEach((spec, index) => {
    if (!selected.includes(spec)) return;
    lines.push("", `${index + 1}. ${spec.title}`);
    const rows: string[][] = [];
    const notes: string[] = [];
    for (const name of brokers) {
      const r = results.get(name)?.get(spec.key);
      if (r === undefined) {
        rows.push([name, "not run"]);
        continue;
      }
      if (r.error !== undefined) notes.push(`${name}: FAILED: ${r.error}`);
      for (const note of r.notes) notes.push(`${name}: ${note}`);
      const failed = r.error !== undefined;
      if (spec.kind === "throughput") {
        const row = [name, failed ? "failed" : formatCount(r.rate)];
        if (spec.key === "slowsub") {
          const share = vsFanout(name);
          row.push(
            failed ? "" : formatCount(perSubscriber(r, spec)),
            share === undefined ? "n/a" : `${(100 * share).toFixed(1)} %`,
          );
        }
        row.push(times(ratio(name, spec.key, rateOf)));
        if (spec.key === "large") {
          row.push(failed ? "" : (r.megabytesPerSecond ?? 0).toFixed(1));
        }
        row.push(
          lostText(r),
          failed ? "" : r.rounds.map(formatCount).join(" "),
          percent(r.brokerCpu),
          percent(r.generatorCpu),
          failed ? "" : limitOf(r),
        );
        rows.push(row);
      } else if (spec.kind === "latency") {
        const l = r.latency;
        rows.push([
          name,
          l ? l.p50.toFixed(2) : "failed",
          l ? l.p90.toFixed(2) : "",
          l ? l.p99.toFixed(2) : "",
          l ? l.max.toFixed(2) : "",
          times(ratio(name, spec.key, (x) => x.latency?.p99)),
          l ? `${formatCount(l.samples)} at ${formatCount(l.sentPerSecond)}/s` : "",
          percent(r.brokerCpu),
        ]);
      } else {
        const m = r.idle;
        rows.push([
          name,
          m ? m.kibPerConnection.toFixed(2) : "failed",
          times(ratio(name, spec.key, (x) => x.idle?.kibPerConnection)),
          m ? formatCount(m.connections) : "",
          m ? (m.rssBeforeKiB / 1024).toFixed(1) : "",
          m ? (m.rssAfterKiB / 1024).toFixed(1) : "",
        ]);
      }
    }
    const header = spec.kind === "throughput"
      ? [
        "broker",
        spec.key === "slowsub"
          ? `deliveries/s (${spec.subscribers - (spec.stuck ?? 0)})`
          : spec.key === "fanout"
          ? "deliveries/s"
          : "msg/s",
        ...(spec.key === "slowsub" ? ["per subscriber", "vs fan-out"] : []),
        "vs mosquitto",
        ...(spec.key === "large" ? ["MB/s"] : []),
        "lost",
        "passes",
        "broker CPU",
        "generator CPU",
        "limit",
      ]
      : spec.kind === "latency"
      ? ["broker", "p50 ms", "p90 ms", "p99 ms", "max ms", "p99 vs mosquitto", "samples", "broker CPU"]
      : [
        "broker",
        "KiB/conn",
        "vs mosquitto",
        "connections",
        "RSS before MiB",
        "RSS after MiB",
      ];
    lines.push(formatTable(header, rows));
    for (const note of notes) lines.push(`  ${note}`);
  });
  lines.push(
    "",
    "Limit: which side's busiest thread was at 80 % of a core or more (broker, generator, both); " +
      `"CPUs (shared)" when the two processes together used 90 % of the ${availableParallelism()} CPUs; ` +
      `"neither (round trips)" when nothing was saturated, so waiting (flow control, acknowledgements, ` +
      "write completions) set the pace.",
    `Lost: deliveries that never arrived after the drain (messages sent × reading subscribers − received), ` +
      `summed over the ${timing.passes} pass${timing.passes === 1 ? "" : "es"}, with their share of the ` +
      "deliveries expected; the stuck subscriber of the slow-subscriber case is not counted. vs fan-out: " +
      "deliveries per second to each of the other 49, as a share of the same broker's fan-out rate per " +
      "subscriber in this run.",
  );
  const notes = brokers.flatMap((name) => (brokerNotes.get(name) ?? []).map((note) => `${name}: ${note}`));
  if (notes.length > 0) lines.push("", "Broker notes:", ...notes.map((note) => `  ${note}`));
  if (ours.length > 0) {
    lines.push("", "Goals (ours against mosquitto, this run):");
    const goalWidth = Math.max(...GOALS.map((goal) => goal.text.length));
    for (const row of goalRows()) {
      const mark = row.pass === undefined ? "n/a " : row.pass ? "PASS" : "FAIL";
      const goal = GOALS.find((g) => g.text === row.goal)!;
      lines.push(
        `  ${mark}  ${row.broker.padEnd(9)}  ${row.goal.padEnd(goalWidth)}  ${
          row.value === undefined ? "no figure" : goal.show(row.value)
        }`,
      );
    }
  }
  console.log(lines.join("\n"));
}
