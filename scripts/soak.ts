/**
 * Soak run of our broker (not a test, not run in CI): starts `broker.ts` as a child process on each runtime in
 * turn, applies minutes of steady mixed load from this process with our client, samples the broker's memory, and
 * checks that nothing acknowledged went missing meanwhile.
 *
 * Run from the repository root (node_modules installed, `PATH=node_modules/.bin:$PATH` so that `deno`, `bun`
 * and Node 24 are found; Linux, for `/proc`):
 *
 *     node scripts/soak.ts [--minutes 10] [--runtime deno|bun|node|deno,bun] [--rate 2000] [--sample-s 10]
 *     deno run -A scripts/soak.ts [...]   # or: bun scripts/soak.ts [...]
 *
 * The load, all on 127.0.0.1:
 * - 4 streams, `--rate` publishes per second in all (paced every 20 ms, at most 2,000 unsettled per stream),
 *   40 % QoS 0, 30 % QoS 1, 30 % QoS 2, payloads of 20-260 bytes; each stream has its own subscriber, and
 *   stream 0 also a persistent-session subscriber whose connection is dropped every 15 s (it reconnects and
 *   resumes its session).
 * - 10 short-lived clients a second (at most 50 at once): MQTT 3.1, 3.1.1 and 5 in turn, clean or persistent
 *   sessions (a pool of 64 identifiers), each with a will; they subscribe (retained messages come), publish a
 *   little, set or clear a retained message, then leave after 0.3-3 s: two in three with DISCONNECT, one in
 *   three by dropping the connection, so its will fires.
 * - The broker publishes `$SYS` every second; RSS (VmRSS of `/proc/PID/status`) and `$SYS/broker/heap/current`
 *   are sampled every `--sample-s` seconds.
 *
 * Checked: every QoS 1 and 2 message acknowledged to its publisher reaches every subscriber of its stream
 * (lost), QoS 2 arrives once (duplicates), a will comes for each dropped client and none for the others, and
 * the retained messages left at the end are the last ones set. Printed per runtime: the samples, a plot of RSS,
 * the flatness check (the last minute's mean RSS within 5 % of the second minute's) and the totals. Exits 1 when
 * a check failed.
 *
 * @module
 */

import process from "node:process";
import { connect, type ConnectOptions, type MqttClient, openTransport, parseBrokerUrl } from "../mod.ts";
import type { Transport } from "../src/transport/transport.ts";
import { settledWithin, sleep, within } from "../tests/_helpers.ts";
import { seededRandom } from "../tests/_random.ts";
import { type BrokerProcess, rssKiB, startBroker } from "./bench/_broker_procs.ts";

const RUNTIMES = ["deno", "bun", "node"] as const;
type Runtime = typeof RUNTIMES[number];

/** The command line, checked. */
interface SoakOptions {
  minutes: number;
  runtimes: Runtime[];
  rate: number;
  sampleS: number;
  seed: number;
}

const STREAMS = 4;
/** QoS by sequence number modulo 10: 40 % QoS 0, 30 % QoS 1, 30 % QoS 2. */
const QOS_PATTERN = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0] as const;
const TICK_MS = 20;
const MAX_UNSETTLED = 2000;
const ROAM_EVERY_MS = 15_000;
const CHURN_PER_S = 10;
const MAX_CHURNERS = 50;
const PERSISTENT_POOL = 64;
const CHATTER_GROUPS = 16;
const RETAINED_KEYS = 50;
const PAD = "x".repeat(256);

function parseArgs(argv: string[]): SoakOptions {
  const options: SoakOptions = { minutes: 10, runtimes: [...RUNTIMES], rate: 2000, sampleS: 10, seed: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    const number = Number(value);
    switch (flag) {
      case "--minutes":
        if (!(number > 0 && number <= 24 * 60)) throw new Error(`--minutes: expected 0 < minutes <= 1440`);
        options.minutes = number;
        break;
      case "--rate":
        if (!(number > 0 && number <= 50_000)) throw new Error(`--rate: expected 0 < messages/s <= 50000`);
        options.rate = number;
        break;
      case "--sample-s":
        if (!(number >= 1 && number <= 600)) throw new Error(`--sample-s: expected 1 <= seconds <= 600`);
        options.sampleS = number;
        break;
      case "--seed":
        if (!Number.isInteger(number)) throw new Error(`--seed: expected an integer`);
        options.seed = number;
        break;
      case "--runtime": {
        const names = value.split(",");
        for (const name of names) {
          if (!(RUNTIMES as readonly string[]).includes(name)) {
            throw new Error(`--runtime: unknown runtime "${name}" (known: ${RUNTIMES.join(", ")})`);
          }
        }
        options.runtimes = names as Runtime[];
        break;
      }
      default:
        throw new Error(`Unknown option "${flag}"`);
    }
  }
  return options;
}

/** Copies received (or acknowledgements) per sequence number, at most 255, growing as numbers come. */
class Counts {
  #bytes = new Uint8Array(4096);

  get(seq: number): number {
    return seq < this.#bytes.length ? this.#bytes[seq] : 0;
  }

  add(seq: number): void {
    if (seq >= this.#bytes.length) {
      let length = this.#bytes.length;
      while (length <= seq) length *= 2;
      const bytes = new Uint8Array(length);
      bytes.set(this.#bytes);
      this.#bytes = bytes;
    }
    if (this.#bytes[seq] < 255) this.#bytes[seq]++;
  }
}

/** One publisher, its numbered messages and the subscribers that must get them. */
interface Stream {
  index: number;
  publisher: MqttClient;
  /** The next sequence number. */
  next: number;
  unsettled: number;
  /** 1 for each message whose publish resolved (acknowledged for QoS 1 and 2, written for QoS 0). */
  acknowledged: Counts;
  receivers: { name: string; counts: Counts }[];
}

/** One memory sample of the broker. */
interface Sample {
  seconds: number;
  rssMiB: number;
  heapMiB: number;
  clients: number;
}

/** What one runtime's run measured and found. */
interface RunReport {
  runtime: Runtime;
  samples: Sample[];
  published: number[];
  received: number[];
  rejected: number;
  /** Publishes not made because a stream had too many unsettled (the broker fell behind). */
  skipped: number;
  lost: number;
  /** QoS 0 messages written by the publisher and not received (allowed; the roaming subscriber misses some). */
  missedQos0: number;
  duplicatesQos1: number;
  duplicatesQos2: number;
  churn: { started: number; skipped: number; persistent: number; dropped: number; closed: number };
  wills: { expected: number; received: number; unexpected: number };
  retained: { checked: number; wrong: number };
  droppedBySys: number;
  errors: number;
}

let errorLines: string[] = [];
let errorCount = 0;

/** Prints an error as it happens (the first 30 of a run), and counts it. */
function error(what: string): void {
  errorCount++;
  if (errorLines.length < 30) {
    errorLines.push(what);
    process.stderr.write(`  error: ${what}\n`);
  } else if (errorLines.length === 30) {
    errorLines.push("…");
    process.stderr.write("  error: (further errors are counted, not printed)\n");
  }
}

function qosOf(seq: number): 0 | 1 | 2 {
  return QOS_PATTERN[seq % QOS_PATTERN.length];
}

/** The sequence number at the start of a payload (`"123 xxx…"`). */
function parseSeq(payload: Uint8Array): number {
  let seq = 0;
  for (const byte of payload) {
    if (byte < 0x30 || byte > 0x39) break;
    seq = seq * 10 + byte - 0x30;
  }
  return seq;
}

/** A client whose connection can be dropped without DISCONNECT: its transport is closed under it. */
async function droppableClient(
  url: string,
  options: ConnectOptions,
): Promise<{ client: MqttClient; drop: () => Promise<void> }> {
  const address = parseBrokerUrl(url);
  let current: Transport | undefined;
  const client = await within(
    connect({
      ...options,
      transport: async (signal) => current = await openTransport(address, {}, signal),
    }),
    10_000,
    `connecting ${options.clientId}`,
  );
  return { client, drop: async () => await current?.close() };
}

function emptyReport(runtime: Runtime): RunReport {
  return {
    runtime,
    samples: [],
    published: [0, 0, 0],
    received: [0, 0, 0],
    rejected: 0,
    skipped: 0,
    lost: 0,
    missedQos0: 0,
    duplicatesQos1: 0,
    duplicatesQos2: 0,
    churn: { started: 0, skipped: 0, persistent: 0, dropped: 0, closed: 0 },
    wills: { expected: 0, received: 0, unexpected: 0 },
    retained: { checked: 0, wrong: 0 },
    droppedBySys: 0,
    errors: 0,
  };
}

/** One runtime's run: the load on one broker process, and its accounting. */
class SoakRun {
  readonly report: RunReport;
  readonly #options: SoakOptions;
  readonly #url: string;
  readonly #random: () => number;
  readonly #clients: MqttClient[] = [];
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  /** The broker's latest `$SYS` values. */
  readonly #sys = new Map<string, string>();
  readonly #streams: Stream[] = [];
  readonly #willsExpected = new Set<number>();
  readonly #willsReceived = new Set<number>();
  readonly #churners = new Set<Promise<void>>();
  readonly #poolBusy = new Set<number>();
  readonly #retainedBusy = new Set<number>();
  /** The last value acknowledged per retained key; "" when cleared, null when unknown (a publish failed). */
  readonly #retainedExpected = new Map<number, string | null>();
  #roamerConnected = true;
  #stopping = false;

  constructor(runtime: Runtime, options: SoakOptions, port: number) {
    this.report = emptyReport(runtime);
    this.#options = options;
    this.#url = `mqtt://127.0.0.1:${port}`;
    this.#random = seededRandom(options.seed);
  }

  /** Connects a client that is not meant to lose its connection, and closes it at the end. */
  async #client(clientId: string, options: ConnectOptions = {}): Promise<MqttClient> {
    const client = await within(
      connect(this.#url, {
        clientId,
        reconnect: false,
        onStateChange: this.#watch(clientId, () => false),
        ...options,
      }),
      10_000,
      `connecting ${clientId}`,
    );
    this.#clients.push(client);
    return client;
  }

  /** Reports a connection a client lost when it was not meant to. */
  #watch(name: string, expected: () => boolean): ConnectOptions["onStateChange"] {
    return (event) => {
      if (event.type === "disconnected" && event.error !== undefined && !expected() && !this.#stopping) {
        error(`${name} lost its connection: ${event.error.message}`);
      }
    };
  }

  /** Starts the monitor, the will watcher, the streams and the short-lived clients. */
  async start(): Promise<void> {
    const monitor = await this.#client("soak-monitor");
    const sys = await within(monitor.subscribe("$SYS/broker/#"), 5000, "subscribing to $SYS");
    void (async () => {
      for await (const message of sys) this.#sys.set(message.topic, message.text());
    })();

    const watcher = await this.#client("soak-wills");
    const wills = await within(watcher.subscribe("soak/will/+", { qos: 1 }), 5000, "subscribing to wills");
    void (async () => {
      for await (const message of wills) {
        const n = Number(message.topic.slice("soak/will/".length));
        if (!this.#willsExpected.has(n)) {
          this.report.wills.unexpected++;
          error(`will of client ${n}, which left with DISCONNECT`);
        }
        this.#willsReceived.add(n);
      }
    })();

    for (let index = 0; index < STREAMS; index++) {
      const subscriber = await this.#client(`soak-sub-${index}`);
      const publisher = await this.#client(`soak-pub-${index}`);
      const stream: Stream = {
        index,
        publisher,
        next: 0,
        unsettled: 0,
        acknowledged: new Counts(),
        receivers: [],
      };
      const subscription = await within(subscriber.subscribe(`soak/stream/${index}/+`, { qos: 2 }), 5000);
      this.#read(stream, `soak-sub-${index}`, subscription);
      this.#streams.push(stream);
    }
    await this.#startRoamer();

    // Steady publishing: `rate` a second over the streams in turn, never more than a second's worth at once.
    const started = performance.now();
    let issued = 0;
    this.#timers.push(setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * this.#options.rate);
      for (let n = Math.min(due - issued, this.#options.rate); n > 0; n--) {
        const stream = this.#streams[issued++ % STREAMS];
        if (stream.unsettled >= MAX_UNSETTLED) this.report.skipped++;
        else this.#publish(stream);
      }
    }, TICK_MS));

    let churnNumber = 0;
    this.#timers.push(setInterval(() => {
      if (this.#churners.size >= MAX_CHURNERS) {
        this.report.churn.skipped++;
        return;
      }
      this.report.churn.started++;
      const n = churnNumber++;
      const running: Promise<void> = this.#churn(n)
        .catch((e) => error(`client ${n}: ${(e as Error).message}`))
        .finally(() => this.#churners.delete(running));
      this.#churners.add(running);
    }, 1000 / CHURN_PER_S));
  }

  /** Counts the messages of `stream` that `name` receives. */
  #read(
    stream: Stream,
    name: string,
    subscription: AsyncIterable<{ payload: Uint8Array; qos: number }>,
  ): void {
    const counts = new Counts();
    stream.receivers.push({ name, counts });
    void (async () => {
      for await (const message of subscription) {
        const seq = parseSeq(message.payload);
        const qos = qosOf(seq);
        if (message.qos !== qos) {
          error(`${name} got message ${seq} with QoS ${message.qos}, published with ${qos}`);
        }
        counts.add(seq);
        this.report.received[qos]++;
      }
    })().catch((e) => error(`${name} stopped reading: ${(e as Error).message}`));
  }

  /** A second subscriber of stream 0, with a persistent session, whose connection is dropped now and then. */
  async #startRoamer(): Promise<void> {
    let dropping = false;
    const roamer = await droppableClient(this.#url, {
      clientId: "soak-roamer",
      cleanStart: false,
      sessionExpiryInterval: 600,
      reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      onStateChange: (event) => {
        this.#roamerConnected = event.type === "connected";
        if (event.type === "connected") dropping = false;
        if (event.type === "disconnected" && event.error !== undefined && !dropping && !this.#stopping) {
          error(`soak-roamer lost its connection: ${event.error.message}`);
        }
      },
    });
    this.#clients.push(roamer.client);
    const subscription = await within(roamer.client.subscribe("soak/stream/0/+", { qos: 2 }), 5000);
    this.#read(this.#streams[0], "soak-roamer", subscription);
    this.#timers.push(setInterval(() => {
      dropping = true;
      void roamer.drop();
    }, ROAM_EVERY_MS));
  }

  #publish(stream: Stream): void {
    const seq = stream.next++;
    const qos = qosOf(seq);
    stream.unsettled++;
    const payload = `${seq} ${PAD.slice(0, 16 + (seq * 37) % 240)}`;
    stream.publisher.publish(`soak/stream/${stream.index}/q${qos}`, payload, { qos }).then(
      () => {
        stream.acknowledged.add(seq);
        this.report.published[qos]++;
      },
      (e) => {
        this.report.rejected++;
        error(`publish ${stream.index}/${seq} (QoS ${qos}) rejected: ${(e as Error).message}`);
      },
    ).finally(() => stream.unsettled--);
  }

  /**
   * One short-lived client: connects (MQTT 3.1, 3.1.1 or 5; clean or persistent), subscribes, publishes a
   * little, sets or clears a retained message, then leaves with DISCONNECT or drops its connection.
   */
  async #churn(n: number): Promise<void> {
    const random = this.#random;
    const version = ([3, 4, 5] as const)[n % 3];
    const slot = n % PERSISTENT_POOL;
    const persistent = random() < 0.5 && !this.#poolBusy.has(slot);
    if (persistent) {
      this.#poolBusy.add(slot);
      this.report.churn.persistent++;
    }
    let dropping = false;
    const name = persistent ? `soak-p${slot}` : `soak-c${n}`;
    try {
      const { client, drop } = await droppableClient(this.#url, {
        clientId: name,
        protocolVersion: version,
        cleanStart: !persistent,
        sessionExpiryInterval: persistent && version === 5 ? 60 : undefined,
        keepAlive: 30,
        will: { topic: `soak/will/${n}`, payload: name, qos: 1 },
        reconnect: false,
        onStateChange: this.#watch(name, () => dropping),
      });
      try {
        const group = n % CHATTER_GROUPS;
        const chatter = await within(
          client.subscribe(`soak/chatter/${group}/+`, { qos: 1 }),
          5000,
          "chatter",
        );
        const key = (n * 7) % RETAINED_KEYS;
        const retained = await within(client.subscribe(`soak/retained/${key}`, { qos: 1 }), 5000, "retained");
        for (const subscription of [chatter, retained]) {
          void (async () => {
            for await (const _ of subscription) { /* taken, so acknowledged */ }
          })();
        }
        for (let i = 0; i < 3; i++) {
          await within(
            client.publish(`soak/chatter/${group}/${n}`, `${n}:${i}`, { qos: i === 1 ? 1 : 0 }),
            5000,
          );
        }
        const own = n % RETAINED_KEYS;
        if (!this.#retainedBusy.has(own)) {
          this.#retainedBusy.add(own);
          const value = random() < 0.6 ? name : "";
          try {
            await within(client.publish(`soak/retained/${own}`, value, { qos: 1, retain: true }), 5000);
            this.#retainedExpected.set(own, value);
          } catch (e) {
            this.#retainedExpected.set(own, null);
            throw e;
          } finally {
            this.#retainedBusy.delete(own);
          }
        }
        await sleep(300 + random() * 2700);
        if (random() < 1 / 3) {
          dropping = true;
          this.#willsExpected.add(n);
          this.report.churn.dropped++;
          await drop();
          await settledWithin(client.closed, 5000);
        } else {
          await within(client.close(), 5000, `closing ${name}`);
          this.report.churn.closed++;
        }
      } finally {
        await settledWithin(client.close(), 5000);
      }
    } finally {
      // The identifier is used again a second later, not at once: the broker reads the DISCONNECT and the
      // next CONNECT on different connections, and one taken over before its DISCONNECT was read leaves a will.
      if (persistent) setTimeout(() => this.#poolBusy.delete(slot), 1000);
    }
  }

  /** Takes one memory sample of the broker process. */
  sample(pid: number, seconds: number): Sample {
    const sample: Sample = {
      seconds,
      rssMiB: rssKiB(pid) / 1024,
      heapMiB: Number(this.#sys.get("$SYS/broker/heap/current") ?? NaN) / 1024 / 1024,
      clients: Number(this.#sys.get("$SYS/broker/clients/connected") ?? NaN),
    };
    this.report.samples.push(sample);
    const published = this.report.published.reduce((a, b) => a + b, 0);
    process.stdout.write(
      `  ${this.report.runtime} ${clock(seconds)}  RSS ${sample.rssMiB.toFixed(1)} MiB  heap ${
        sample.heapMiB.toFixed(1)
      } MiB  clients ${sample.clients}  published ${published}  errors ${errorCount}\n`,
    );
    return sample;
  }

  /** Stops the load, lets what is in flight settle (each wait bounded), then counts and checks. */
  async finish(): Promise<void> {
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    const streams = this.#streams;
    await settledWithin(Promise.all(this.#churners), 20_000);
    for (let waited = 0; waited < 15_000 && streams.some((s) => s.unsettled > 0); waited += 100) {
      await sleep(100);
    }
    for (let waited = 0; waited < 10_000 && !this.#roamerConnected; waited += 100) await sleep(100);
    for (let waited = 0; waited < 15_000 && missing(streams) > 0; waited += 250) await sleep(250);
    const wills = this.#willsExpected;
    for (let waited = 0; waited < 5000 && this.#willsReceived.size < wills.size; waited += 100) {
      await sleep(100);
    }
    const report = this.report;
    for (const stream of streams) {
      for (let seq = 0; seq < stream.next; seq++) {
        const qos = qosOf(seq);
        const acknowledged = stream.acknowledged.get(seq) > 0;
        for (const { counts } of stream.receivers) {
          const copies = counts.get(seq);
          if (acknowledged && copies === 0) {
            if (qos === 0) report.missedQos0++;
            else report.lost++;
          }
          if (copies > 1 && qos === 1) report.duplicatesQos1 += copies - 1;
          if (copies > 1 && qos === 2) report.duplicatesQos2 += copies - 1;
        }
      }
    }
    if (report.lost > 0) error(`${report.lost} QoS 1/2 messages acknowledged and never received`);
    if (report.duplicatesQos2 > 0) error(`${report.duplicatesQos2} QoS 2 messages received twice`);
    report.wills.expected = wills.size;
    report.wills.received = this.#willsReceived.size;
    if (this.#willsReceived.size < wills.size) {
      error(`${wills.size - this.#willsReceived.size} of ${wills.size} wills did not come`);
    }
    await this.#checkRetained();
    report.droppedBySys = Number(this.#sys.get("$SYS/broker/publish/messages/dropped") ?? 0);
  }

  /** Subscribes to every retained key and compares what comes with the last value acknowledged per key. */
  async #checkRetained(): Promise<void> {
    const client = await this.#client("soak-retained");
    const got = new Map<number, string>();
    const subscription = await within(client.subscribe("soak/retained/+", { qos: 1 }), 5000, "retained");
    const reading = (async () => {
      for await (const message of subscription) {
        got.set(Number(message.topic.slice("soak/retained/".length)), message.text());
      }
    })();
    await sleep(1500);
    await within(client.close(), 5000, "closing the checker");
    await settledWithin(reading, 1000);
    for (const [key, value] of this.#retainedExpected) {
      if (value === null) continue;
      this.report.retained.checked++;
      if ((got.get(key) ?? "") !== value) {
        this.report.retained.wrong++;
        error(`retained soak/retained/${key} is "${got.get(key) ?? ""}", expected "${value}"`);
      }
    }
  }

  /** Stops everything still running and closes every client. */
  async close(): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    await settledWithin(Promise.all(this.#churners), 10_000);
    await settledWithin(Promise.all(this.#clients.map((client) => client.close())), 5000);
  }
}

async function soak(runtime: Runtime, options: SoakOptions): Promise<RunReport> {
  errorLines = [];
  errorCount = 0;
  const broker: BrokerProcess = await startBroker(`ours-${runtime}`, { sysInterval: 1 });
  const run = new SoakRun(runtime, options, broker.port);
  try {
    await run.start();
    const started = performance.now();
    const sampleMs = options.sampleS * 1000;
    const endAt = started + options.minutes * 60_000;
    for (let at = started + sampleMs; at <= endAt + 1; at += sampleMs) {
      await sleep(Math.max(0, at - performance.now()));
      const exited = broker.exited();
      if (exited !== undefined) {
        error(`the broker exited (${exited}):\n${broker.tail().join("\n")}`);
        break;
      }
      run.sample(broker.pid, Math.round((performance.now() - started) / 1000));
    }
    await run.finish();
    const exited = broker.exited();
    if (exited !== undefined) error(`the broker exited: ${exited}`);
    for (const line of broker.warnings) error(`broker: ${line}`);
  } catch (e) {
    error(`the run stopped: ${(e as Error).stack ?? e}`);
  } finally {
    await run.close();
    await broker.stop();
  }
  run.report.errors = errorCount;
  return run.report;
}

/** QoS 1 and 2 messages acknowledged and not yet received, over every subscriber of every stream. */
function missing(streams: Stream[]): number {
  let count = 0;
  for (const stream of streams) {
    for (let seq = 0; seq < stream.next; seq++) {
      if (qosOf(seq) === 0 || stream.acknowledged.get(seq) === 0) continue;
      for (const { counts } of stream.receivers) if (counts.get(seq) === 0) count++;
    }
  }
  return count;
}

function clock(seconds: number): string {
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Mean RSS of the samples in minute `minute` (1-based: seconds in (60 (minute - 1), 60 minute]). */
function minuteMean(samples: Sample[], minute: number): number {
  const inside = samples.filter((s) => s.seconds > 60 * (minute - 1) && s.seconds <= 60 * minute + 1);
  return inside.length === 0 ? NaN : mean(inside.map((s) => s.rssMiB));
}

/** The flatness check: the last minute's mean RSS within 5 % of the second minute's. */
function flatness(samples: Sample[], minutes: number): { line: string; pass: boolean | undefined } {
  const last = Math.ceil(minutes);
  if (last < 3) return { line: "flatness: n/a (needs --minutes 3 or more)", pass: undefined };
  const second = minuteMean(samples, 2);
  const final = minuteMean(samples, last);
  if (Number.isNaN(second) || Number.isNaN(final)) {
    return { line: "flatness: FAIL (samples missing)", pass: false };
  }
  const change = (final - second) / second;
  const pass = Math.abs(change) <= 0.05;
  return {
    line: `flatness: minute 2 mean ${second.toFixed(1)} MiB, minute ${last} mean ${final.toFixed(1)} MiB, ${
      change >= 0 ? "+" : ""
    }${(100 * change).toFixed(1)} % (limit ±5 %): ${pass ? "PASS" : "FAIL"}`,
    pass,
  };
}

/** A small ASCII plot of RSS over time: one column per sample (averaged down to 60 columns), 8 rows. */
function plot(samples: Sample[]): string[] {
  const values = samples.map((s) => s.rssMiB).filter((v) => !Number.isNaN(v));
  if (values.length === 0) return ["(no samples)"];
  const width = Math.min(60, values.length);
  const columns: number[] = [];
  for (let c = 0; c < width; c++) {
    const from = Math.floor((c * values.length) / width);
    const to = Math.max(from + 1, Math.floor(((c + 1) * values.length) / width));
    columns.push(mean(values.slice(from, to)));
  }
  const height = 8;
  const low = Math.min(...columns);
  // At least 10 % of the top as range, so that noise does not look like growth.
  const high = Math.max(Math.max(...columns), low * 1.1);
  const rowOf = (v: number) => Math.round(((v - low) / (high - low)) * (height - 1));
  const lines: string[] = [];
  for (let row = height - 1; row >= 0; row--) {
    const label = row === height - 1 ? high.toFixed(1) : row === 0 ? low.toFixed(1) : "";
    const cells = columns.map((v) => rowOf(v) === row ? "*" : rowOf(v) > row ? ":" : " ").join("");
    lines.push(`${label.padStart(7)} |${cells}`.trimEnd());
  }
  const end = clock(samples[samples.length - 1].seconds);
  lines.push(`${"".padStart(7)} +${"-".repeat(width)}`);
  lines.push(`${"".padStart(7)}  0:00${end.padStart(Math.max(end.length + 1, width - 4))}`);
  return ["RSS MiB over time", ...lines];
}

function print(report: RunReport, options: SoakOptions): boolean {
  const out: string[] = [];
  out.push("", `== ours on ${report.runtime}: ${options.minutes} min, ${options.rate} msg/s`);
  out.push("  time  minute  RSS MiB  heap MiB  clients");
  for (const s of report.samples) {
    out.push(
      `${clock(s.seconds).padStart(6)}  ${String(Math.max(1, Math.ceil(s.seconds / 60))).padStart(6)}  ${
        s.rssMiB.toFixed(1).padStart(7)
      }  ${s.heapMiB.toFixed(1).padStart(8)}  ${String(s.clients).padStart(7)}`,
    );
  }
  out.push("", ...plot(report.samples), "");
  const flat = flatness(report.samples, options.minutes);
  out.push(flat.line);
  const [q0, q1, q2] = report.published;
  out.push(
    `messages: published ${q0 + q1 + q2} (QoS 0 ${q0}, QoS 1 ${q1}, QoS 2 ${q2}), received ${
      report.received.reduce((a, b) => a + b, 0)
    }, rejected ${report.rejected}, skipped (broker behind) ${report.skipped}`,
  );
  out.push(
    `correctness: lost ${report.lost} (QoS 1/2), QoS 2 duplicates ${report.duplicatesQos2}, QoS 1 duplicates ${report.duplicatesQos1}, QoS 0 not received ${report.missedQos0}, dropped by the broker ($SYS) ${report.droppedBySys}`,
  );
  const c = report.churn;
  out.push(
    `clients: ${c.started} short-lived (${c.persistent} persistent sessions; ${c.closed} left with DISCONNECT, ${c.dropped} dropped), ${c.skipped} starts skipped at the limit`,
  );
  out.push(
    `wills: ${report.wills.received} of ${report.wills.expected} expected, ${report.wills.unexpected} unexpected; retained: ${
      report.retained.checked - report.retained.wrong
    } of ${report.retained.checked} keys as last set`,
  );
  const pass = flat.pass !== false && report.errors === 0 && report.samples.length > 0;
  out.push(`errors: ${report.errors}`, `result: ${pass ? "PASS" : "FAIL"}`);
  process.stdout.write(out.join("\n") + "\n");
  return pass;
}

async function main(): Promise<number> {
  let options: SoakOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`Error: ${(e as Error).message}\n`);
    return 2;
  }
  process.stdout.write(
    `soak: ${
      options.runtimes.join(", ")
    }; ${options.minutes} min each, ${options.rate} msg/s, a sample every ${options.sampleS} s\n`,
  );
  const results: { runtime: Runtime; pass: boolean }[] = [];
  for (const runtime of options.runtimes) {
    const report = await soak(runtime, options);
    results.push({ runtime, pass: print(report, options) });
  }
  process.stdout.write(`\n${results.map((r) => `${r.runtime}: ${r.pass ? "PASS" : "FAIL"}`).join(", ")}\n`);
  return results.every((r) => r.pass) ? 0 : 1;
}

process.exitCode = await main();
