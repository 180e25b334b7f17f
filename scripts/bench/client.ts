/**
 * Client benchmark: this library's client on Deno, Bun and Node 24 beside MQTT.js 5 on Node 24, against the
 * same broker in the same run, with the CPU of every process involved so that each row names its limit, and
 * every figure given as a ratio to MQTT.js's (the goal: at least 2× on every row).
 *
 * Run from the repository root (node_modules installed, `PATH=node_modules/.bin:$PATH`; mosquitto on the
 * PATH; Linux, since CPU is read from `/proc`):
 *
 *     node scripts/bench/client.ts [--quick] [--broker mosquitto,ours-deno,ours-bun,stub]
 *       [--clients ours-deno,ours-bun,ours-node,mqttjs] [--cases pub0,pub1,pub2,recv0,recv1] [--inflight N]
 *     deno run -A scripts/bench/client.ts [...]
 *
 * - `--broker a,b`: the brokers to run against, each started by the script on a free port of 127.0.0.1 and
 *   stopped after its table (`_broker_procs.ts`: mosquitto with `max_inflight_messages 1000`,
 *   `max_queued_messages 100000`, `persistence false`; ours with `deno run -A broker.ts` or `bun broker.ts`,
 *   `--persistence memory`). Default `mosquitto,ours-bun`. While mosquitto is the faster broker it caps
 *   every client below 2× MQTT.js (it reaches about 135 k, 60 k and 30 k msg/s at QoS 0, 1 and 2 here, MQTT.js
 *   about 80 k, 36 k and 17 k), which the broker CPU column shows. `stub` is no broker but a stand-in in this
 *   process (`_client_stub.ts`) that answers the client itself: the raw peer's role runs on the client's own
 *   connection, so no broker's ceiling caps the figure and the rows show what each client can do (its CPU
 *   is then the limit); the broker CPU column stays empty, the stub's CPU being the raw peer's.
 * - `--quick`: one pass per row, 300 ms of warm-up and a 500 ms window (about a minute with the defaults).
 *   The full run takes 3 passes per row, 500 ms and 1 s (about 4 minutes with the defaults).
 * - `--clients`, `--cases`: run only these; ratios need `mqttjs`.
 * - `--inflight N`: the publishes each client keeps outstanding (default 128).
 *
 * Each client under test runs in a child process of its own (`_client_worker.ts`): `ours-deno` (`deno run
 * -A`), `ours-bun` (`bun`), `ours-node` and `mqttjs` (`node`, which strips the types). Both clients speak
 * MQTT 3.1.1, clean session, keep-alive and reconnection off, 64-byte payloads, each a new buffer that
 * carries a sequence number. The raw peers live in this process (`_client_raw.ts`, over the broker
 * benchmark's wire layer `_broker_wire.ts`: pre-encoded packets, a frame scanner, acknowledgements coalesced
 * per turn), so that a message costs them much less than it costs the client.
 *
 * Cases (rows); each runs the clients in turn (ours-deno, ours-bun, ours-node, mqttjs, ours-deno, …), so a
 * disturbance of the machine hits all alike, and reports the median pass:
 * - publish QoS 0, 1, 2 (`pub0 pub1 pub2`): the client keeps N publishes outstanding, N lanes each awaiting
 *   its publish before the next (ours: `await client.publish()`; MQTT.js: `await client.publishAsync()`).
 *   Both settle a QoS 0 publish once the socket took its bytes (or after "drain" when it did not), on PUBACK
 *   at QoS 1 and on PUBCOMP at QoS 2, so the lanes respect back-pressure and nothing piles up in memory. The
 *   figure is not what the client says it did but what the broker delivered to a raw subscriber of this
 *   process (subscribed at the same QoS, acknowledging) inside the window, in messages per second; the
 *   `settled/s` column is what the client saw settle (at QoS 0 it may run ahead while the kernel's socket
 *   buffers fill, which is why it is not the figure). After the window the client stops, waits for its
 *   outstanding publishes and reports how many it issued; the subscriber must then have received each one:
 *   a loss at QoS 1 or 2 or a duplicate at QoS 2 fails the row (a loss at QoS 0, or a duplicate at QoS 1,
 *   is a note).
 * - receive QoS 0, 1 (`recv0 recv1`): a raw publisher of this process floods the topic the client subscribed
 *   to at that QoS (QoS 1: up to 1,000 unacknowledged), never more than 20,000 messages ahead of what the
 *   client reported taking or dropping (every 5 ms), so that no broker has to drop or disconnect anyone. The
 *   figure is the messages the client took per second (ours: `for await` over the subscription, which
 *   acknowledges QoS 1 when a message is taken; MQTT.js: `message` events, acknowledged by MQTT.js). After
 *   the window the publisher stops and the client must receive every message: a loss at QoS 1 fails the row.
 *
 * Each pass: connect, warm up (receive: from the first message), then the window; CPU is utime + stime over
 * the window from `/proc`, in % of one core, the busiest thread in parentheses, for the client, the broker
 * and this process (the raw peers). `limit` names the processes whose busiest thread was at 80 % or more
 * (that event loop is saturated); "CPUs" when all of them together used 90 % of the machine's cores; else
 * "round trips" (waiting set the pace). The ratio is each client's figure over MQTT.js's in the same row and
 * broker; the last lines give the smallest ratio per broker. Absolute numbers depend on the machine and on
 * how many cores the three processes share; compare ratios. A failed row prints FAILED and the exit code is 1.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import process from "node:process";
import type { QoS } from "../../src/codec/packet.ts";
import { formatTable } from "./_bench.ts";
import {
  BROKER_NAMES,
  type BrokerProcess,
  type CpuTimes,
  cpuTimes,
  type CpuUse,
  cpuUse,
  ROOT,
  startBroker,
} from "./_broker_procs.ts";
import { RawPublisher, RawSubscriber } from "./_client_raw.ts";
import { StubBroker } from "./_client_stub.ts";

const WORKER = "scripts/bench/_client_worker.ts";
const CLIENTS = {
  "ours-deno": ["deno", "run", "-A", WORKER, "--impl", "ours"],
  "ours-bun": ["bun", WORKER, "--impl", "ours"],
  "ours-node": ["node", WORKER, "--impl", "ours"],
  "mqttjs": ["node", WORKER, "--impl", "mqttjs"],
} as const;
type ClientName = keyof typeof CLIENTS;
const CLIENT_NAMES = Object.keys(CLIENTS) as ClientName[];
/** The brokers `--broker` takes: real ones, and the stand-in of `_client_stub.ts`. */
const TARGETS = [...BROKER_NAMES, "stub"] as const;
type Target = typeof TARGETS[number];
/** A running broker, or the stand-in. */
type Server = BrokerProcess | StubBroker;
const CASES = ["pub0", "pub1", "pub2", "recv0", "recv1"] as const;
type CaseName = typeof CASES[number];
const CASE_TITLES: Record<CaseName, string> = {
  pub0: "publish QoS 0",
  pub1: "publish QoS 1",
  pub2: "publish QoS 2",
  recv0: "receive QoS 0",
  recv1: "receive QoS 1",
};
/** Receive cases: how far the raw publisher may be ahead of the client, and its QoS 1 window. */
const AHEAD = 20_000;
const PUBLISHER_INFLIGHT = 1_000;

function listArg<T extends string>(name: string, all: readonly T[], fallback: readonly T[]): T[] {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return [...fallback];
  const items = (process.argv[i + 1] ?? "").split(",").filter((s) => s !== "");
  for (const item of items) {
    if (!all.includes(item as T)) {
      process.stderr.write(`Error: unknown --${name} entry "${item}" (known: ${all.join(", ")})\n`);
      process.exit(2);
    }
  }
  return items as T[];
}

const quick = process.argv.includes("--quick");
const brokers = listArg<Target>("broker", TARGETS, ["mosquitto", "ours-bun"]);
const clients = listArg<ClientName>("clients", CLIENT_NAMES, CLIENT_NAMES);
const cases = listArg<CaseName>("cases", CASES, CASES);
const inflightIndex = process.argv.indexOf("--inflight");
const inflight = inflightIndex === -1 ? 128 : Number(process.argv[inflightIndex + 1]);
const warmupMs = quick ? 300 : 500;
const windowMs = quick ? 500 : 1000;
const passes = quick ? 1 : 3;
const cpus = availableParallelism();

/** One client's pass of one row. */
interface Run {
  /** Messages per second: delivered by the broker (publish), or taken by the client (receive). */
  rate: number;
  /** Publishes the client saw settle per second (publish rows), else NaN. */
  settled: number;
  client?: CpuUse;
  broker?: CpuUse;
  peer?: CpuUse;
  notes: string[];
  error?: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function progress(text: string): void {
  process.stderr.write(text + "\n");
}

/** Calls `onLine` for each line the child writes to stdout. */
function readLines(child: ChildProcess, onLine: (line: string) => void): void {
  const decoder = new TextDecoder();
  let partial = "";
  child.stdout?.on("data", (chunk: Uint8Array) => {
    const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
    partial = parts.pop() ?? "";
    for (const line of parts) onLine(line);
  });
}

/** CPU readings of the client, the broker and this process, opened at the start of a window. */
function cpuMeter(
  childPid: number,
  brokerPid: number,
): () => { client: CpuUse; broker: CpuUse; peer: CpuUse } {
  const start = performance.now();
  const before: CpuTimes[] = [cpuTimes(childPid), cpuTimes(brokerPid), cpuTimes(process.pid)];
  return () => {
    const seconds = (performance.now() - start) / 1000;
    const [client, broker, peer] = [childPid, brokerPid, process.pid].map((pid, i) =>
      cpuUse(before[i], cpuTimes(pid), seconds)
    );
    return { client, broker, peer };
  };
}

/** Waits until `count()` reaches `target`, or stops changing for `quietMs`. */
async function settle(count: () => number, target: number, quietMs: number): Promise<void> {
  let last = count();
  let quietSince = performance.now();
  while (count() < target) {
    await sleep(20);
    if (count() !== last) {
      last = count();
      quietSince = performance.now();
    } else if (performance.now() - quietSince > quietMs) return;
  }
}

/** Runs one pass of one row for one client. */
async function runOne(broker: Server, client: ClientName, kind: CaseName): Promise<Run> {
  const run: Run = { rate: NaN, settled: NaN, notes: [] };
  const qos = Number(kind.slice(-1)) as QoS;
  const publishing = kind.startsWith("pub");
  const topic = `bench/${kind}/${client}/${Date.now().toString(36)}`;
  // The raw peers; with the stand-in broker, its side of the client's connection once that connected.
  const peers: { sub?: RawSubscriber; pub?: RawPublisher } = {};
  const stub = broker instanceof StubBroker ? broker : undefined;
  let child: ChildProcess | undefined;
  try {
    const limits = { ahead: AHEAD, inflight: PUBLISHER_INFLIGHT };
    if (stub !== undefined) {
      stub.onSession = publishing
        ? (connection) => peers.sub = RawSubscriber.over(connection)
        : (connection) => peers.pub = RawPublisher.over(connection, topic, qos, limits);
    } else if (publishing) {
      peers.sub = await RawSubscriber.open(broker.port, topic, qos);
    } else {
      peers.pub = await RawPublisher.open(broker.port, topic, qos, limits);
    }
    const [command, ...args] = CLIENTS[client];
    const spawned = spawn(command, [
      ...args,
      ...["--case", kind, "--port", `${broker.port}`, "--topic", topic],
      ...["--warmup", `${warmupMs}`, "--window", `${windowMs}`, "--inflight", `${inflight}`],
    ], {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", RUST_BACKTRACE: "0" },
    });
    child = spawned;
    let stderr = "";
    spawned.stderr?.on("data", (chunk: Uint8Array) => {
      stderr = (stderr + new TextDecoder().decode(chunk)).slice(-2000);
    });
    spawned.on("error", (error) => stderr += `\nspawn failed: ${error.message}`);
    const exited = new Promise<number | null>((resolve) => {
      spawned.once("exit", (code) => resolve(code));
      spawned.once("error", () => resolve(-1));
    });
    let meter: ReturnType<typeof cpuMeter> | undefined;
    let startedAt = 0;
    let deliveredAtStart = 0;
    let done: string[] | undefined;
    let failure: string | undefined;
    readLines(spawned, (line) => {
      const { sub, pub } = peers;
      const [word, ...rest] = line.split(" ");
      const numbers = rest.map(Number);
      switch (word) {
        case "ready":
          if (pub !== undefined) {
            pub.running = true;
            pub.pump();
          }
          break;
        case "progress":
          if (pub !== undefined) {
            pub.taken = numbers[0];
            pub.pump();
          }
          break;
        case "start":
          meter = cpuMeter(spawned.pid ?? 0, broker.pid);
          startedAt = performance.now();
          deliveredAtStart = sub?.tracker.received ?? 0;
          break;
        case "end": {
          if (meter === undefined) break;
          const seconds = (performance.now() - startedAt) / 1000;
          Object.assign(run, meter());
          // The stand-in broker is this process: its CPU is the raw peer's column.
          if (stub !== undefined) run.broker = undefined;
          const [count, clientSeconds] = numbers;
          if (sub !== undefined) {
            run.rate = (sub.tracker.received - deliveredAtStart) / seconds;
            run.settled = count / clientSeconds;
          } else if (pub !== undefined) {
            run.rate = count / clientSeconds;
            pub.running = false;
            spawned.stdin?.write(`stop ${pub.sent}\n`);
          }
          break;
        }
        case "done":
          done = rest;
          break;
        case "error":
          failure = rest.join(" ");
          break;
        default:
          if (line.trim() !== "") stderr += `\n(stdout) ${line}`;
      }
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      exited,
      new Promise<"timeout">((resolve) =>
        timer = setTimeout(() => resolve("timeout"), warmupMs + windowMs + 30_000)
      ),
    ]);
    clearTimeout(timer);
    if (code === "timeout") throw new Error("timed out (the client hung)");
    if (failure !== undefined) throw new Error(`the client reported: ${failure}`);
    if (code !== 0 || done === undefined || Number.isNaN(run.rate)) {
      throw new Error(
        `the worker exited with code ${code}: ${stderr.trim().split("\n").slice(-6).join(" | ")}`,
      );
    }
    if (broker.exited() !== undefined) throw new Error(`the broker exited (${broker.exited()})`);
    const { sub, pub } = peers;
    if (sub === undefined && pub === undefined) throw new Error("the client never connected to the stub");
    const peerCheck = () => {
      for (const peer of [sub?.client, pub?.client]) {
        if (peer?.lostReason !== undefined) {
          throw new Error(`the raw peer lost its connection (${peer.lostReason}), so the figure is wrong`);
        }
      }
    };
    peerCheck();
    if (sub !== undefined) {
      // Everything the client published must reach the subscriber: once at QoS 2, at least once at QoS 1.
      const [issued, settled] = done.map(Number);
      if (settled !== issued) {
        throw new Error(`${issued - settled} of ${issued} publishes never settled after the client stopped`);
      }
      await settle(() => sub.tracker.received, issued, 1000);
      const check = sub.tracker.check(issued);
      const missing = check.missing > 0
        ? `${check.missing} of ${issued} publishes never reached the subscriber (first gaps ${
          check.gaps.join(", ")
        })`
        : undefined;
      if (check.foreign > 0) throw new Error(`${check.foreign} deliveries with sequence numbers never sent`);
      if (qos > 0 && missing !== undefined) throw new Error(missing);
      if (qos === 2 && check.duplicates > 0) throw new Error(`${check.duplicates} duplicates at QoS 2`);
      if (missing !== undefined) run.notes.push(missing);
      if (check.duplicates > 0) run.notes.push(`${check.duplicates} duplicates`);
    } else if (pub !== undefined) {
      const [received, missing, duplicates, foreign, dropped] = done.slice(0, 5).map(Number);
      const lost = `${missing} of ${pub.sent} messages never reached the client${
        dropped > 0 ? ` (its subscription dropped ${dropped})` : ""
      }${done[5] !== "-" ? `; first gaps ${done[5]}` : ""}${
        duplicates > 0 ? `; ${duplicates} duplicates` : ""
      }`;
      if (foreign > 0) throw new Error(`${foreign} messages with sequence numbers never sent`);
      await settle(() => -pub.unacknowledged, 0, 500);
      if (pub.unacknowledged > 0) {
        run.notes.push(`the broker never acknowledged ${pub.unacknowledged} of the raw publisher's messages`);
      }
      if (qos > 0 && missing > 0) throw new Error(lost);
      if (missing > 0) run.notes.push(lost);
      if (duplicates > 0) run.notes.push(`${duplicates} duplicates (of ${received} received)`);
    }
    peerCheck();
    for (const peer of [sub?.client, pub?.client]) {
      if (peer !== undefined && peer.unexpected.size > 0) {
        run.notes.push(
          `unexpected packets at the raw peer: ${
            [...peer.unexpected].map(([t, n]) => `${n} of type ${t}`).join(", ")
          }`,
        );
      }
    }
  } catch (error) {
    run.error = (error as Error).message;
    run.rate = NaN;
  } finally {
    if (peers.pub !== undefined) peers.pub.running = false;
    if (stub !== undefined) stub.onSession = undefined;
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
    // The stub's side of the connection just closes (MQTT 3.1.1 has no DISCONNECT from the server).
    if (stub !== undefined) { for (const peer of [peers.sub, peers.pub]) peer?.client.destroy(); }
    else await Promise.all([peers.sub?.client.close(), peers.pub?.client.close()]);
  }
  return run;
}

/** The running broker, restarted when it died. */
async function ensure(name: Target, current: Server | undefined): Promise<Server> {
  if (current !== undefined && current.exited() === undefined) return current;
  if (current !== undefined) {
    progress(`  ${name} exited (${current.exited()}): ${current.tail().slice(-3).join(" | ")}; restarting`);
    await current.stop();
  }
  return name === "stub" ? await StubBroker.start() : await startBroker(name);
}

function median(runs: readonly Run[]): Run | undefined {
  const good = runs.filter((r) => r.error === undefined).sort((a, b) => a.rate - b.rate);
  return good[(good.length - 1) >> 1];
}

function count(n: number): string {
  if (!Number.isFinite(n)) return "";
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} k` : Math.round(n).toLocaleString("en-US");
}

function percent(use: CpuUse | undefined): string {
  return use === undefined ? "" : `${Math.round(use.total)}% (${Math.round(use.busiest)}%)`;
}

function limitOf(run: Run): string {
  const { client, broker, peer } = run;
  if (client === undefined || peer === undefined) return "";
  const busy: [string, CpuUse][] = [["client", client], ["raw peer", peer]];
  if (broker !== undefined) busy.splice(1, 0, ["broker", broker]);
  const saturated = busy.filter(([, use]) => use.busiest >= 80).map(([name]) => name);
  if (saturated.length > 0) return saturated.join(" + ");
  if (busy.reduce((sum, [, use]) => sum + use.total, 0) >= 0.9 * 100 * cpus) return "CPUs";
  return "round trips";
}

progress(
  `Client benchmark: brokers ${brokers.join(", ")}; clients ${clients.join(", ")}; ${cpus} CPUs${
    quick ? "; --quick" : ""
  }`,
);
const out: string[] = [
  `Client benchmark on 127.0.0.1: MQTT 3.1.1, 64 B payloads, ${inflight} publishes outstanding; ` +
  `${passes} pass(es) per row taken in turn, median; ${warmupMs} ms warm-up, ${windowMs} ms window; ` +
  `${cpus} CPUs shared by client, broker and raw peer. CPU: % of one core (busiest thread).`,
];
const summary: string[] = [];
let failed = false;
for (const brokerName of brokers) {
  let broker: Server | undefined;
  try {
    broker = await ensure(brokerName, undefined);
  } catch (error) {
    out.push("", `Broker ${brokerName}: could not start: ${(error as Error).message}`);
    failed = true;
    continue;
  }
  const rows: string[][] = [];
  const notes: string[] = [];
  /** Per client of ours: the smallest ratio and its row. */
  const worst = new Map<ClientName, { ratio: number; row: string }>();
  try {
    for (const kind of cases) {
      const passList = new Map<ClientName, Run[]>(clients.map((c) => [c, []]));
      for (let pass = 0; pass < passes; pass++) {
        const line: string[] = [];
        for (const client of clients) {
          broker = await ensure(brokerName, broker);
          const run = await runOne(broker, client, kind);
          passList.get(client)?.push(run);
          line.push(
            `${client} ${run.error !== undefined ? `FAILED (${run.error})` : `${count(run.rate)}/s`}`,
          );
        }
        progress(`${brokerName} ${CASE_TITLES[kind]}, pass ${pass + 1}/${passes}: ${line.join(", ")}`);
      }
      const chosen = new Map<ClientName, Run | undefined>(
        clients.map((c) => [c, median(passList.get(c) ?? [])]),
      );
      const reference = chosen.get("mqttjs")?.rate;
      for (const client of clients) {
        const all = passList.get(client) ?? [];
        const run = chosen.get(client);
        for (const r of all) {
          if (r.error !== undefined) {
            failed = true;
            notes.push(`${CASE_TITLES[kind]}, ${client}: FAILED: ${r.error}`);
          }
        }
        for (const note of new Set(all.flatMap((r) => r.notes))) {
          notes.push(`${CASE_TITLES[kind]}, ${client}: ${note}`);
        }
        if (run === undefined) {
          rows.push([CASE_TITLES[kind], client, "FAILED", "", "", "", "", "", "", ""]);
          continue;
        }
        const ratio = reference === undefined ? NaN : run.rate / reference;
        if (client !== "mqttjs" && Number.isFinite(ratio)) {
          const previous = worst.get(client);
          if (previous === undefined || ratio < previous.ratio) {
            worst.set(client, { ratio, row: CASE_TITLES[kind] });
          }
        }
        rows.push([
          CASE_TITLES[kind],
          client,
          count(run.rate),
          count(run.settled),
          client === "mqttjs" || !Number.isFinite(ratio) ? "" : `${ratio.toFixed(2)}×`,
          passes > 1 ? all.map((r) => r.error === undefined ? count(r.rate) : "failed").join(" / ") : "",
          percent(run.client),
          percent(run.broker),
          percent(run.peer),
          limitOf(run),
        ]);
      }
    }
  } finally {
    await broker?.stop();
  }
  if (broker !== undefined && broker.warningCount > 0) {
    notes.push(
      `the broker logged ${broker.warningCount} warnings or errors, first: ${
        broker.warnings.slice(0, 2).join(" | ")
      }`,
    );
  }
  out.push("", `Broker: ${brokerName}`);
  out.push(formatTable(
    [
      "case",
      "client",
      "msg/s",
      "settled/s",
      "vs MQTT.js",
      "passes",
      "client CPU",
      "broker CPU",
      "raw peer CPU",
      "limit",
    ],
    rows,
  ));
  for (const note of notes) out.push(`  ${note}`);
  if (worst.size > 0) {
    const lowest = [...worst].sort((a, b) => a[1].ratio - b[1].ratio)[0];
    summary.push(
      `${brokerName}: min ratio ours/MQTT.js ${lowest[1].ratio.toFixed(2)}× (${lowest[0]}, ${
        lowest[1].row
      }); ` +
        `per runtime: ${[...worst].map(([c, w]) => `${c} ${w.ratio.toFixed(2)}×`).join(", ")}; goal ≥ 2×: ${
          lowest[1].ratio >= 2 ? "met" : "not met"
        }`,
    );
  } else {
    summary.push(`${brokerName}: no ratio (MQTT.js or our clients missing or failed)`);
  }
}
out.push(
  "",
  "msg/s: delivered by the broker to the raw subscriber (publish rows) or taken by the client (receive " +
    'rows). limit: processes whose busiest thread was at 80 % of a core or more; "CPUs" when together ' +
    `they used 90 % of the ${cpus} CPUs; "round trips" when nothing was saturated.`,
  "",
  ...summary,
);
console.log(out.join("\n"));
if (failed) process.exitCode = 1;
