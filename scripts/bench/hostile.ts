/**
 * Memory under attack: the peak resident memory of a broker while this process feeds it hostile input, for our
 * broker on Deno and on Bun and for mosquitto, each with its default limits, and the goal of issue 13 (at most
 * 120 MiB) checked at the end.
 *
 * Run from the repository root (node_modules installed, `PATH=node_modules/.bin:$PATH`; mosquitto on the
 * PATH; Linux, since memory is read from `/proc`):
 *
 *     node scripts/bench/hostile.ts [--quick] [--only ours-deno,mosquitto] [--phases garbage,oversized]
 *     deno run -A scripts/bench/hostile.ts [...]
 *     bun scripts/bench/hostile.ts [...]
 *
 * - `--only a,b`: run only these brokers (`ours-deno`, `ours-bun`, `mosquitto`); ratios need mosquitto.
 * - `--quick`: fewer sockets and shorter phases (about 25 s per broker instead of about 50).
 * - `--phases a,b`: run only these phases (`garbage oversized levels flood slowloris idle`).
 * - `--args "..."`: more arguments for our `broker.ts` (split on spaces), e.g. `--args "-c limits.json"`.
 * - `--attach PORT:PID`: instead of starting brokers, measure one already listening on 127.0.0.1:PORT as
 *   process PID (started under a profiler, or with other runtime flags); it is reported as `ours-deno`.
 *
 * Each broker is started by the script on a free port of 127.0.0.1 (ours with `broker.ts --port P
 * --persistence memory`, mosquitto 2.0 with only a listener, anonymous access and no persistence: every
 * limit at its default) and gets the phases below in turn from this process, over raw `node:net` sockets; one
 * broker process goes through all of them, so a phase starts with what the earlier ones left behind (the
 * table shows the resident memory at each phase's start too). Sockets are opened in batches of 100, each
 * batch waiting for its connections, since mosquitto listens with a backlog of 100.
 * 1. `garbage`: 2,500 connections (1,000 with `--quick`), all open at once, each sending bytes that are not
 *    MQTT: a reserved packet type, `0xff` bytes, an HTTP request, a remaining length longer than 4 bytes, a
 *    CONNECT with another protocol name, 1 KiB of random bytes; each waits up to 3 s for the broker to close.
 * 2. `oversized`: 8 connections at once (4 with `--quick`) announce a packet of 32 MiB in its fixed header
 *    and then send it in 64 KiB writes (as fast as the broker reads): MQTT 3.1.1 and MQTT 5 PUBLISH after
 *    a CONNECT, and a CONNECT of 32 MiB (a password that long) before any authentication. Each stops when the
 *    broker closes or all is sent; the phase reports how much the broker read and whether it refused (MQTT
 *    5: DISCONNECT 0x95 Packet Too Large) or accepted.
 * 3. `levels`: 20 connections (MQTT 3.1.1 and 5) each SUBSCRIBE to a different filter of 10,000 levels and
 *    PUBLISH 50 QoS 1 messages to a topic of 10,000 levels (about 20 KB of topic each).
 * 4. `flood`: for 6 s (3 s) connections are opened as fast as 100 at a time allow: most send a CONNECT and
 *    close after its CONNACK, one in five sends half a CONNECT and stays open until the phase ends, one in
 *    ten closes at once; reports connections per second.
 * 5. `slowloris`: 1,000 sockets (500) dribble a byte per second for 12 s (6 s): half of them a CONNECT,
 *    which never completes (it is longer than that; a broker with a connect timeout closes them), half,
 *    after a whole CONNECT, the body of a PUBLISH whose header announced 1,000,000 bytes (under a 1 MiB
 *    limit; each byte resets the keep-alive), so a broker that allocates what a header announces holds
 *    about 1 MB per socket.
 * 6. `idle`: 2,000 sockets (1,000) connect and never send, held 12 s (6 s).
 *
 * Memory is the broker's VmRSS from `/proc/<pid>/status`, sampled every 50 ms, and its VmHWM (the kernel's
 * own peak, reset at each phase's start by writing 5 to `/proc/<pid>/clear_refs`), so no short peak is
 * missed between samples; a phase's figure is the larger of the two.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { readFileSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import process from "node:process";
import { formatTable, runtimeName } from "./_bench.ts";
import { type BrokerName, type BrokerProcess, fileLimits, rssKiB, startBroker } from "./_broker_procs.ts";
import { encode } from "../../src/codec/encode.ts";
import type { Packet, ProtocolVersion } from "../../src/codec/packet.ts";

const BROKERS: readonly BrokerName[] = ["ours-deno", "ours-bun", "mosquitto"];
const PHASES = ["garbage", "oversized", "levels", "flood", "slowloris", "idle"] as const;
type PhaseName = typeof PHASES[number];
/** The goal of issue 13, in MiB. */
const GOAL_MIB = 120;

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
function option(flag: string): string | undefined {
  const index = argv.indexOf(flag);
  return index === -1 ? undefined : argv[index + 1] ?? "";
}
function list<T extends string>(flag: string, known: readonly T[]): T[] {
  const value = option(flag);
  if (value === undefined) return [...known];
  const names = value.split(",").filter((s) => s);
  for (const name of names) {
    if (!(known as readonly string[]).includes(name)) {
      process.stderr.write(`Error: unknown ${flag.slice(2)} "${name}" (known: ${known.join(", ")})\n`);
      process.exit(2);
    }
  }
  return known.filter((name) => names.includes(name));
}
const brokers = list("--only", BROKERS);
const phases = list("--phases", PHASES);
const extraArgs = (option("--args") ?? "").split(" ").filter((s) => s);
const attach = option("--attach")?.split(":").map(Number);

const size = quick
  ? { garbage: 1000, oversized: 4, flood: 3000, slowloris: 500, slowMs: 6000, idle: 1000, idleMs: 6000 }
  : { garbage: 2500, oversized: 8, flood: 6000, slowloris: 1000, slowMs: 12_000, idle: 2000, idleMs: 12_000 };
const limits = fileLimits();
if (limits !== undefined && limits.soft < 3500) {
  process.stderr.write(
    `Note: the open-file limit is ${limits.soft}; raise it (ulimit -n 20000) for the full run\n`,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ------------------------------------------------------------------------------------------------ memory

/** Samples a process's resident memory; {@linkcode Sampler.phase} starts a new peak. */
class Sampler {
  #pid: number;
  #timer: ReturnType<typeof setInterval>;
  /** KiB: the largest sample since the phase began, and over the whole run. */
  peak = 0;
  overall = 0;
  constructor(pid: number) {
    this.#pid = pid;
    this.#timer = setInterval(() => this.sample(), 50);
  }
  sample(): number {
    const kib = rssKiB(this.#pid);
    if (kib > this.peak) this.peak = kib;
    if (kib > this.overall) this.overall = kib;
    return kib;
  }
  /** Starts a phase: resets the kernel's peak and ours, and returns the resident memory now. */
  phase(): number {
    try {
      writeFileSync(`/proc/${this.#pid}/clear_refs`, "5");
    } catch { /* not allowed: sampling alone */ }
    this.peak = 0;
    return this.sample();
  }
  /** The phase's peak: the larger of the samples and the kernel's VmHWM. */
  end(): number {
    this.sample();
    let hwm = 0;
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.#pid}/status`, "utf8"));
      if (match) hwm = Number(match[1]);
    } catch { /* gone */ }
    this.overall = Math.max(this.overall, hwm);
    return Math.max(this.peak, hwm);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

// ------------------------------------------------------------------------------------------------ sockets

/** A raw connection: what the broker sent (packet types, DISCONNECT reason codes) and how it ended. */
class Raw {
  readonly socket: Socket;
  /** Whether the broker ended it (FIN or reset) rather than us. */
  closedByPeer = false;
  closed = false;
  connack = -1;
  disconnect = -1;
  /** Bytes of packets received: first bytes, as a count per packet type. */
  received = 0;
  #pending: Uint8Array = new Uint8Array(0);
  #waiters: (() => void)[] = [];
  #ours = false;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Uint8Array) => this.#read(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      if (!this.#ours) this.closedByPeer = true;
      this.#wake();
    });
  }

  static open(port: number): Promise<Raw> {
    return new Promise((resolve) => {
      const socket = new Socket();
      socket.setNoDelay(true);
      const raw = new Raw(socket);
      socket.once("connect", () => resolve(raw));
      socket.once("close", () => resolve(raw));
      socket.connect(port, "127.0.0.1");
    });
  }

  #read(chunk: Uint8Array): void {
    this.received += chunk.length;
    // Keep at most a few KiB: only small answers matter here.
    let bytes = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    for (;;) {
      if (bytes.length < 2) break;
      let length = 0;
      let multiplier = 1;
      let i = 1;
      for (; i < 5 && i < bytes.length; i++) {
        length += (bytes[i] & 0x7f) * multiplier;
        multiplier *= 128;
        if ((bytes[i] & 0x80) === 0) break;
      }
      if (i >= bytes.length || bytes.length < i + 1 + length) break;
      const type = bytes[0] >> 4;
      if (type === 2) this.connack = bytes[i + 2] ?? 0;
      if (type === 14) this.disconnect = length === 0 ? 0 : bytes[i + 1];
      bytes = bytes.subarray(i + 1 + length);
    }
    this.#pending = bytes.length > 4096 ? new Uint8Array(0) : Uint8Array.from(bytes);
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits until `done()` holds or the connection closes, at most `ms`. */
  async until(done: () => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!done() && !this.closed) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return done();
  }

  /** Writes and resolves when the socket takes more (or has closed). */
  write(bytes: Uint8Array): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.socket.write(bytes)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.once("drain", done);
      this.socket.once("close", done);
    });
  }

  destroy(): void {
    if (this.closed) return;
    this.#ours = true;
    this.socket.destroy();
  }
}

/** Opens `count` sockets in batches of 100, calling `start` on each as it connects. */
async function openMany(
  port: number,
  count: number,
  start: (raw: Raw, index: number) => void,
): Promise<Raw[]> {
  const all: Raw[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, (_, j) =>
        Raw.open(port).then((raw) => {
          if (!raw.closed) start(raw, i + j);
          return raw;
        })),
    );
    all.push(...batch);
  }
  return all;
}

function connectBytes(version: ProtocolVersion, clientId: string): Uint8Array {
  return encode(
    { type: "connect", protocolVersion: version, clientId, cleanStart: true, keepAlive: 60 },
    version,
  );
}

function packet(p: Packet, version: ProtocolVersion): Uint8Array {
  return encode(p, version);
}

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

function countClosed(raws: readonly Raw[]): string {
  const byPeer = raws.filter((r) => r.closedByPeer).length;
  return `${byPeer}/${raws.length} closed by the broker`;
}

// ------------------------------------------------------------------------------------------------ phases

const GARBAGE: Uint8Array[] = [
  new Uint8Array([0x00, 0x00, 0x00, 0x00]),
  new Uint8Array(64).fill(0xff),
  new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n"),
  new Uint8Array([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]),
  new Uint8Array([0x10, 0x0c, 0x00, 0x04, 0x58, 0x59, 0x5a, 0x57, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]),
  Uint8Array.from({ length: 1024 }, () => Math.floor(Math.random() * 256)),
];

async function garbage(port: number): Promise<string> {
  const raws = await openMany(port, size.garbage, (raw, i) => raw.socket.write(GARBAGE[i % GARBAGE.length]));
  await Promise.all(raws.map((raw) => raw.until(() => false, 3000)));
  const note = countClosed(raws);
  for (const raw of raws) raw.destroy();
  return note;
}

const MiB = 1 << 20;

/** One oversized sender: how much it wrote before the broker closed, and the broker's answer. */
async function sendOversized(port: number, kind: "v4" | "v5" | "connect", index: number): Promise<string> {
  const total = 32 * MiB;
  const raw = await Raw.open(port);
  let header: Uint8Array;
  if (kind === "connect") {
    // A CONNECT announcing 32 MiB: flags 0xc2 (user name, password, clean session), a client id, user "u",
    // then a password length and bytes that go on (the packet is malformed, but only once it is all read).
    const id = new TextEncoder().encode(`big-${index}`);
    const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0xc2, 0, 60, 0, id.length, ...id, 0, 1, 0x75, 0xff, 0xff];
    header = Uint8Array.from([0x10, ...varint(total - 5), ...body]);
  } else {
    const version = kind === "v5" ? 5 : 4;
    await raw.write(connectBytes(version, `big-${index}`));
    await raw.until(() => raw.connack >= 0, 3000);
    const topic = new TextEncoder().encode(`big/${index}`);
    const variable = [0, topic.length, ...topic, ...(version === 5 ? [0] : [])];
    header = Uint8Array.from([0x30, ...varint(total - 5), ...variable]);
  }
  let sent = 0;
  const chunk = new Uint8Array(64 * 1024);
  await raw.write(header);
  sent += header.length;
  const deadline = performance.now() + (quick ? 6000 : 10_000);
  while (!raw.closed && sent < total && performance.now() < deadline) {
    const n = Math.min(chunk.length, total - sent);
    await raw.write(n === chunk.length ? chunk : chunk.subarray(0, n));
    sent += n;
  }
  await raw.until(() => false, raw.closed ? 0 : 1000);
  const answer = raw.disconnect >= 0
    ? `DISCONNECT 0x${raw.disconnect.toString(16)}`
    : raw.closedByPeer
    ? "closed"
    : "accepted";
  raw.destroy();
  return `${kind} ${answer} after ${(sent / MiB).toFixed(1)} MiB`;
}

async function oversized(port: number): Promise<string> {
  const kinds: ("v4" | "v5" | "connect")[] = quick
    ? ["v4", "v5", "connect", "v4"]
    : ["v4", "v4", "v4", "v5", "v5", "v5", "connect", "connect"];
  const results = await Promise.all(kinds.map((kind, i) => sendOversized(port, kind, i)));
  // Summarize: identical results counted.
  const counts = new Map<string, number>();
  for (const result of results) {
    const key = result.replace(/after [\d.]+ MiB/, (m) => (Number(m.split(" ")[1]) >= 31.9 ? "all sent" : m));
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => `${n}x ${key}`).join("; ");
}

async function levels(port: number): Promise<string> {
  const deep = Array.from({ length: 10_000 }, (_, i) => `l${i % 10}`).join("/");
  const raws = await openMany(port, 20, () => {});
  let subacks = 0;
  let refused = 0;
  await Promise.all(raws.map(async (raw, i) => {
    const version: ProtocolVersion = i % 2 === 0 ? 4 : 5;
    await raw.write(connectBytes(version, `deep-${i}`));
    if (!await raw.until(() => raw.connack >= 0, 3000)) return;
    const subscribe = packet({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: `s${i}/${deep}`,
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    }, version);
    await raw.write(subscribe);
    for (let n = 0; n < 50 && !raw.closed; n++) {
      await raw.write(packet({
        type: "publish",
        topic: `s${i}/${deep}`,
        payload: new Uint8Array(16),
        qos: 1,
        retain: false,
        dup: false,
        packetId: n + 2,
      }, version));
    }
    await raw.until(() => false, 1000);
    if (raw.closedByPeer) refused++;
    else subacks++;
  }));
  for (const raw of raws) raw.destroy();
  return `${subacks} stayed connected, ${refused} closed by the broker`;
}

async function flood(port: number): Promise<string> {
  const ms = size.flood;
  const deadline = performance.now() + ms;
  const held: Raw[] = [];
  let opened = 0;
  let connacks = 0;
  let refusedOpen = 0;
  const half = connectBytes(4, "half-open-client").subarray(0, 10);
  async function one(i: number): Promise<void> {
    const raw = await Raw.open(port);
    opened++;
    if (raw.closed) {
      refusedOpen++;
      return;
    }
    const kind = i % 10;
    if (kind === 0) {
      raw.destroy();
    } else if (kind <= 2) {
      raw.socket.write(half);
      held.push(raw);
    } else {
      raw.socket.write(connectBytes(i % 3 === 0 ? 5 : 4, `flood-${i}`));
      if (await raw.until(() => raw.connack >= 0, 2000)) connacks++;
      raw.destroy();
    }
  }
  let next = 0;
  const workers = Array.from({ length: 100 }, async () => {
    while (performance.now() < deadline) await one(next++);
  });
  await Promise.all(workers);
  const heldOpen = held.filter((r) => !r.closed).length;
  for (const raw of held) raw.destroy();
  const seconds = ms / 1000;
  return `${Math.round(opened / seconds)} connections/s, ${Math.round(connacks / seconds)} CONNACK/s, ` +
    `${held.length} half-CONNECTs (${heldOpen} still open at the end), ${refusedOpen} refused`;
}

async function slowloris(port: number): Promise<string> {
  const started = performance.now();
  const connect = connectBytes(4, `slowloris-client-with-a-long-identifier`);
  // A PUBLISH announcing 1,000,000 bytes (under a 1 MiB limit): its body, after a CONNECT sent whole.
  const publishHeader = Uint8Array.from([0x30, ...varint(1_000_000 - 4), 0, 1, 0x61]);
  const raws = await openMany(port, size.slowloris, (raw, i) => {
    if (i % 2 === 1) raw.socket.write(Buffer.concat([connectBytes(4, `slow-publisher-${i}`), publishHeader]));
  });
  let position = 0;
  while (performance.now() - started < size.slowMs) {
    for (let i = 0; i < raws.length; i++) {
      const raw = raws[i];
      if (raw.closed) continue;
      if (i % 2 === 1) raw.socket.write(Uint8Array.of(position & 0xff));
      else if (position < connect.length) raw.socket.write(connect.subarray(position, position + 1));
    }
    position++;
    await sleep(1000);
  }
  const connects = raws.filter((_, i) => i % 2 === 0);
  const publishers = raws.filter((_, i) => i % 2 === 1);
  const note = `CONNECT dribblers ${countClosed(connects)}; PUBLISH dribblers ${countClosed(publishers)}`;
  for (const raw of raws) raw.destroy();
  return note;
}

async function idle(port: number): Promise<string> {
  const started = performance.now();
  const raws = await openMany(port, size.idle, () => {});
  await sleep(Math.max(0, size.idleMs - (performance.now() - started)));
  const note = countClosed(raws);
  for (const raw of raws) raw.destroy();
  return note;
}

const RUN: Record<PhaseName, (port: number) => Promise<string>> = {
  garbage,
  oversized,
  levels,
  flood,
  slowloris,
  idle,
};

// ------------------------------------------------------------------------------------------------ main

interface PhaseResult {
  phase: PhaseName;
  startMiB: number;
  peakMiB: number;
  note: string;
  ms: number;
}

interface BrokerResult {
  name: BrokerName;
  baselineMiB: number;
  phases: PhaseResult[];
  overallMiB: number;
  died?: string;
}

const mib = (kib: number) => kib / 1024;

/** A broker started elsewhere (`--attach PORT:PID`), for a profiler: never stopped by this script. */
function attached(port: number, pid: number): BrokerProcess {
  return {
    name: "ours-deno",
    port,
    pid,
    warnings: [],
    warningCount: 0,
    tail: () => [],
    exited: () => (rssKiB(pid) > 0 ? undefined : "gone"),
    stop: () => Promise.resolve(),
  };
}

async function runBroker(name: BrokerName): Promise<BrokerResult> {
  const broker: BrokerProcess = attach === undefined
    ? await startBroker(name, { defaults: true, args: extraArgs })
    : attached(attach[0], attach[1]);
  const sampler = new Sampler(broker.pid);
  const result: BrokerResult = { name, baselineMiB: mib(sampler.sample()), phases: [], overallMiB: 0 };
  try {
    for (const phase of phases) {
      await sleep(500);
      const start = sampler.phase();
      const began = performance.now();
      process.stderr.write(`${name}: ${phase}… `);
      const note = await RUN[phase](broker.port);
      await sleep(300);
      const peak = sampler.end();
      const ms = performance.now() - began;
      process.stderr.write(`peak ${mib(peak).toFixed(1)} MiB (${(ms / 1000).toFixed(1)} s): ${note}\n`);
      result.phases.push({ phase, startMiB: mib(start), peakMiB: mib(peak), note, ms });
      const exit = broker.exited();
      if (exit !== undefined) {
        result.died = `${exit} during ${phase}`;
        process.stderr.write(`${name} died: ${exit}\n${broker.tail().join("\n")}\n`);
        break;
      }
    }
  } finally {
    sampler.stop();
    result.overallMiB = mib(sampler.overall);
    await broker.stop();
  }
  return result;
}

process.stderr.write(
  `Hostile input, ${quick ? "quick" : "full"} run on ${runtimeName()}: ${brokers.join(", ")}; phases ${
    phases.join(", ")
  }\n`,
);
const results: BrokerResult[] = [];
for (const name of attach === undefined ? brokers : ["ours-deno" as const]) {
  results.push(await runBroker(name));
}

const mosquitto = results.find((r) => r.name === "mosquitto");
const ratio = (value: number, base: number | undefined) =>
  base === undefined || base === 0 ? "" : ` (${(value / base).toFixed(1)}x)`;
const header = ["phase", ...results.map((r) => r.name)];
const rows: string[][] = [["baseline", ...results.map((r) => `${r.baselineMiB.toFixed(1)}`)]];
for (const phase of phases) {
  rows.push([
    phase,
    ...results.map((r) => {
      const p = r.phases.find((x) => x.phase === phase);
      if (p === undefined) return "-";
      const base = mosquitto?.phases.find((x) => x.phase === phase)?.peakMiB;
      return `${p.peakMiB.toFixed(1)}${r === mosquitto ? "" : ratio(p.peakMiB, base)} (from ${
        p.startMiB.toFixed(0)
      })`;
    }),
  ]);
}
rows.push([
  "overall peak",
  ...results.map((r) =>
    `${r.overallMiB.toFixed(1)}${r === mosquitto ? "" : ratio(r.overallMiB, mosquitto?.overallMiB)}`
  ),
]);
rows.push([
  `<= ${GOAL_MIB} MiB`,
  ...results.map((r) => (r.died !== undefined ? "FAIL (died)" : r.overallMiB <= GOAL_MIB ? "PASS" : "FAIL")),
]);
console.log("\nPeak resident memory (VmRSS/VmHWM, MiB; ratio to mosquitto; RSS at the phase's start)\n");
console.log(formatTable(header, rows));
console.log("\nWhat each broker did:");
for (const r of results) {
  console.log(`  ${r.name}${r.died ? ` (died: ${r.died})` : ""}`);
  for (const p of r.phases) console.log(`    ${p.phase}: ${p.note}`);
}
const failed = results.some((r) =>
  r.name !== "mosquitto" && (r.died !== undefined || r.overallMiB > GOAL_MIB)
);
process.exitCode = failed ? 1 : 0;
