/**
 * The load cases of `scripts/bench/broker.ts`, run against one broker process: steady throughput (QoS 0, 1
 * and 2; one to one, fan-in, fan-out, fan-out with subscribers that stop reading; small and large payloads),
 * publish-to-receive latency at a fixed rate, and resident memory per idle connection. The same generator,
 * over {@linkcode BenchClient}, serves every broker.
 *
 * @module
 */

import process from "node:process";
import type { QoS } from "../../src/codec/packet.ts";
import {
  ACK,
  AckQueue,
  BenchClient,
  fillPublishes,
  PAYLOAD,
  type PublishTemplate,
  publishTemplate,
  repeatTemplate,
} from "./_broker_wire.ts";
import { type BrokerProcess, cpuTimes, type CpuUse, cpuUse, rssKiB } from "./_broker_procs.ts";

/**
 * What the load cases need of a broker: a single {@linkcode BrokerProcess}, or several processes (a cluster)
 * put together by the caller.
 */
export type LoadTarget = Pick<BrokerProcess, "port" | "pid" | "exited" | "subscriberPorts" | "otherPids">;

/** How long the cases run. */
export interface Timing {
  /** Untimed running before the timed window of each pass. */
  warmupMs: number;
  /** Length of the timed window of one throughput pass. */
  windowMs: number;
  /** Passes per case and broker, alternating between the brokers; the result is the median pass. */
  passes: number;
  /** Length of the timed part of one latency pass (after a warm-up of `warmupMs`). */
  latencyMs: number;
  /** Idle connections of the memory case. */
  idleConnections: number;
  /**
   * QoS 0 flow control: the most bytes of PUBLISH (summed over all subscribers' streams) the publishers may
   * be ahead of what the subscribers received; 0 turns the window off, so that only socket backpressure
   * (`write()` false until "drain") slows the publishers.
   */
  windowBytes: number;
}

/** A throughput case: publishers flood, subscribers count what arrives. */
export interface ThroughputCase {
  kind: "throughput";
  key: string;
  title: string;
  qos: QoS;
  payload: number;
  publishers: number;
  subscribers: number;
  /** QoS 1 and 2: unacknowledged PUBLISH packets each publisher keeps outstanding. */
  inflight: number;
  /**
   * How many of the subscribers stop reading their socket once subscribed (`socket.pause()`, never resumed
   * during the pass); they are left out of the rate, the losses and the checks. Default 0.
   */
  stuck?: number;
}

/** The latency case: one publisher at a fixed rate, one subscriber. */
export interface LatencyCase {
  kind: "latency";
  key: string;
  title: string;
  payload: number;
  ratePerSecond: number;
}

/** The memory case: many idle connections. */
export interface IdleCase {
  kind: "idle";
  key: string;
  title: string;
}

/** Any case. */
export type BenchCase = ThroughputCase | LatencyCase | IdleCase;

/** Publish-to-receive latency statistics, in milliseconds. */
export interface LatencyStats {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  samples: number;
  /** Messages per second actually sent while timed. */
  sentPerSecond: number;
}

/** Memory of idle connections. */
export interface IdleStats {
  connections: number;
  failed: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  kibPerConnection: number;
  /** Connections opened per second (each waits for its CONNACK; batches of 100). */
  connectsPerSecond: number;
}

/** What one case measured on one broker (one pass, or the passes merged by {@linkcode mergePasses}). */
export interface CaseResult {
  /** Messages (or deliveries) received per second: the median pass. NaN when the case failed. */
  rate: number;
  /** Every pass's rate. */
  rounds: number[];
  /** Payload megabytes (10^6 bytes) received per second. */
  megabytesPerSecond?: number;
  /**
   * Deliveries to the reading subscribers that never arrived: messages sent × reading subscribers − messages
   * received, after the drain (0 when more arrived). Merged: summed over the passes that finished.
   */
  lost?: number;
  /** The deliveries expected with {@linkcode CaseResult.lost} (summed like it). */
  expected?: number;
  /** Subscribers that read (and are counted in the rate): all but the stuck ones. */
  readingSubscribers?: number;
  brokerCpu?: CpuUse;
  /** CPU use of the target's {@linkcode BrokerProcess.otherPids}, by label. */
  otherCpu?: Record<string, CpuUse>;
  generatorCpu?: CpuUse;
  latency?: LatencyStats;
  /** The latency samples of a pass, in ms, for merging; dropped by {@linkcode mergePasses}. */
  samples?: number[];
  idle?: IdleStats;
  /** Anything odd: losses, duplicates, unexpected packets. */
  notes: string[];
  /** Why the case failed, when it did. */
  error?: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Receives and acknowledges PUBLISH packets and records how far each publisher's sequence has arrived. */
class Subscriber {
  readonly client: BenchClient;
  received = 0;
  payloadBytes = 0;
  /** The highest sequence number received, by publisher index. */
  readonly highest: number[];
  /** Sequence numbers skipped (a gap in one publisher's order), and the first one received by publisher. */
  skipped = 0;
  /** Messages whose sequence number was not above the highest one received: duplicates or out of order. */
  reordered = 0;
  readonly first: number[];
  /** The first few gaps, as `from-to` sequence ranges. */
  readonly gaps: string[] = [];
  /** Latency samples (ms) while recording, else undefined. */
  latencies: number[] | undefined;

  constructor(client: BenchClient, publishers: number, onProgress: () => void) {
    this.client = client;
    this.highest = new Array(publishers).fill(0);
    this.first = new Array(publishers).fill(0);
    const acks = new AckQueue(client);
    client.onFrame = (first, b, body, end) => {
      const type = first >> 4;
      if (type === 3) {
        const qos = (first >> 1) & 3;
        let p = body + 2 + ((b[body] << 8) | b[body + 1]);
        if (qos !== 0) {
          acks.push(qos === 1 ? ACK.puback : ACK.pubrec, b, p);
          p += 2;
        }
        this.received++;
        this.payloadBytes += end - p;
        const seq = ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
        const publisher = (b[p + PAYLOAD.publisher] << 8) | b[p + PAYLOAD.publisher + 1];
        const highest = this.highest[publisher];
        if (seq > highest) {
          if (highest === 0) this.first[publisher] = seq;
          else if (seq !== highest + 1) {
            this.skipped += seq - highest - 1;
            if (this.gaps.length < 10) this.gaps.push(`${highest + 1}-${seq - 1}`);
          }
          this.highest[publisher] = seq;
        } else this.reordered++;
        if (this.latencies !== undefined) {
          const sentAt = new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(p + PAYLOAD.sentAt);
          this.latencies.push(performance.now() - sentAt);
        }
      } else if (type === 6) {
        acks.push(ACK.pubcomp, b, body);
      } else {
        client.unexpected.set(type, (client.unexpected.get(type) ?? 0) + 1);
      }
    };
    client.afterChunk = () => {
      acks.flush();
      onProgress();
    };
  }
}

/**
 * Publishes as fast as flow control allows: QoS 0 while the socket takes writes (and, with a window, up to a
 * bounded amount ahead of the subscribers), QoS 1 and 2 with a fixed number of packet ids in flight.
 */
class Publisher {
  readonly client: BenchClient;
  sent = 0;
  completed = 0;
  stopped = true;
  readonly #template: PublishTemplate;
  readonly #block: Uint8Array;
  readonly #qos: QoS;
  readonly #ids: number[] = [];
  readonly #batch: number;
  readonly #cap: number;
  readonly #progress: () => number;
  #blocked = false;
  #scheduled = false;

  constructor(
    client: BenchClient,
    template: PublishTemplate,
    /** `cap`: QoS 0 messages the publisher may be ahead of `progress()`; Infinity: no window. */
    options: { qos: QoS; inflight: number; batch: number; cap: number; progress: () => number },
  ) {
    this.client = client;
    this.#template = template;
    this.#qos = options.qos;
    this.#batch = options.batch;
    this.#cap = options.cap;
    this.#progress = options.progress;
    this.#block = repeatTemplate(template, Math.max(options.batch, options.inflight));
    for (let id = options.inflight; id >= 1; id--) this.#ids.push(id);
    const acks = new AckQueue(client);
    client.onFrame = (first, b, body) => {
      const type = first >> 4;
      if (type === 4 || type === 7) {
        this.#ids.push((b[body] << 8) | b[body + 1]);
        this.completed++;
      } else if (type === 5) {
        acks.push(ACK.pubrel, b, body);
      } else {
        client.unexpected.set(type, (client.unexpected.get(type) ?? 0) + 1);
      }
    };
    client.afterChunk = () => {
      acks.flush();
      this.pump();
    };
  }

  /** Writes as many PUBLISH packets as flow control allows now (a bounded amount per call). */
  pump(): void {
    if (this.stopped || this.#blocked) return;
    for (let i = 0; i < 64; i++) {
      let count: number;
      if (this.#qos === 0) {
        if (this.#cap !== Infinity && this.#cap - (this.sent - this.#progress()) < this.#batch) return;
        count = this.#batch;
      } else {
        count = this.#ids.length;
        if (count === 0) return;
      }
      const bytes = fillPublishes(
        this.#block,
        this.#template,
        count,
        this.sent + 1,
        this.#qos === 0 ? undefined : this.#ids,
      );
      this.sent += count;
      if (!this.client.write(bytes)) {
        this.#blocked = true;
        this.client.socket.once("drain", () => {
          this.#blocked = false;
          this.pump();
        });
        return;
      }
      if (this.#qos !== 0) return;
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.pump();
      });
    }
  }
}

/** Opens one connection per client identifier, 50 at a time; client i to `ports[i % ports.length]`. */
async function openClients(ports: readonly number[], ids: string[]): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  try {
    for (let i = 0; i < ids.length; i += 50) {
      clients.push(
        ...await Promise.all(
          ids.slice(i, i + 50).map((id, j) => BenchClient.connect(ports[(i + j) % ports.length], id)),
        ),
      );
    }
  } catch (error) {
    for (const client of clients) client.destroy();
    throw error;
  }
  return clients;
}

function lostConnections(clients: readonly BenchClient[]): string | undefined {
  const lost = clients.filter((client) => client.lostReason !== undefined);
  if (lost.length === 0) return undefined;
  return `${lost.length} of ${clients.length} connections lost (${lost[0].clientId}: ${lost[0].lostReason})`;
}

function unexpectedPackets(clients: readonly BenchClient[]): string | undefined {
  const counts = new Map<number, number>();
  for (const client of clients) {
    for (const [type, count] of client.unexpected) counts.set(type, (counts.get(type) ?? 0) + count);
  }
  if (counts.size === 0) return undefined;
  return `unexpected packets from the broker: ${
    [...counts].map(([type, count]) => `${count} of type ${type}`).join(", ")
  }`;
}

function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The ports subscribers connect to. */
function subscriberPorts(broker: LoadTarget): readonly number[] {
  return broker.subscriberPorts?.length ? broker.subscriberPorts : [broker.port];
}

/** Reads broker (and its other processes') and generator CPU over a stretch of time. */
function cpuMeter(
  broker: LoadTarget,
): () => { broker: CpuUse; generator: CpuUse; others?: Record<string, CpuUse> } {
  const start = performance.now();
  const brokerBefore = cpuTimes(broker.pid);
  const othersBefore = [...(broker.otherPids ?? [])].map(([label, pid]) => ({
    label,
    pid,
    at: cpuTimes(pid),
  }));
  const selfBefore = cpuTimes(process.pid);
  return () => {
    const seconds = (performance.now() - start) / 1000;
    return {
      broker: cpuUse(brokerBefore, cpuTimes(broker.pid), seconds),
      generator: cpuUse(selfBefore, cpuTimes(process.pid), seconds),
      ...(othersBefore.length === 0 ? {} : {
        others: Object.fromEntries(
          othersBefore.map(({ label, pid, at }) => [label, cpuUse(at, cpuTimes(pid), seconds)]),
        ),
      }),
    };
  };
}

/** The drain after a pass ends once nothing new arrived for this long (or everything arrived). */
const DRAIN_QUIET_MS = 1000;
/** The drain never lasts longer than this, even while deliveries keep arriving. */
const DRAIN_LIMIT_MS = 30_000;

/**
 * Runs one pass of a throughput case: connects the subscribers and publishers, lets them run for the warm-up,
 * then counts what the subscribers receive in one window of `windowMs`; then stops the publishers, waits for
 * what is in flight (the drain: until everything arrived, or nothing new arrived for 1 s, at most 30 s) and
 * checks that every delivery arrived once.
 *
 * Stuck subscribers (`spec.stuck`) subscribe like the others, then pause their socket for the rest of the
 * pass: the broker's sends to them fill the socket buffers and then wait on the broker. They are not counted,
 * and a broker that disconnects them (a slow-consumer limit) is within its rights.
 *
 * @param broker The broker.
 * @param spec The case.
 * @param timing Durations and the flow-control window.
 * @returns The window's rate, CPU use and the deliveries lost; `error` when the pass could not finish.
 */
export async function runThroughput(
  broker: LoadTarget,
  spec: ThroughputCase,
  timing: Timing,
): Promise<CaseResult> {
  const result: CaseResult = { rate: NaN, rounds: [], notes: [] };
  const run = `${spec.key}-${Date.now().toString(36)}`;
  const fanIn = spec.publishers > 1;
  const topicOf = (i: number) => fanIn ? `bench/${run}/in/${i}` : `bench/${run}/t`;
  const filter = fanIn ? `bench/${run}/in/+` : `bench/${run}/t`;
  const readingCount = spec.subscribers - (spec.stuck ?? 0);
  let subscribers: Subscriber[] = [];
  let publishers: Publisher[] = [];
  /** The publishers and the reading subscribers: their connections are checked. */
  const clients: BenchClient[] = [];
  /** Subscribers that stopped reading. */
  const stuck: BenchClient[] = [];
  try {
    const subClients = await openClients(
      subscriberPorts(broker),
      Array.from({ length: spec.subscribers }, (_, i) => `${run}-sub-${i}`),
    );
    clients.push(...subClients.slice(0, readingCount));
    stuck.push(...subClients.slice(readingCount));
    await Promise.all(subClients.map((client) => client.subscribe(filter, spec.qos)));
    // From here on, before anything is published, the stuck subscribers read nothing.
    for (const client of stuck) client.socket.pause();
    const pubClients = await openClients(
      [broker.port],
      Array.from({ length: spec.publishers }, (_, i) => `${run}-pub-${i}`),
    );
    clients.push(...pubClients);
    const templates = pubClients.map((_, i) => publishTemplate(topicOf(i), spec.payload, spec.qos, i));
    const frame = templates[0].bytes.length;
    // Each write carries up to 64 KiB. With a window, QoS 0 publishers may be `windowBytes` (over all
    // reading subscribers' streams) ahead, and a write carries at most a quarter of that so that writing goes
    // on while the subscribers catch up.
    const windowed = timing.windowBytes > 0;
    const cap = windowed
      ? Math.max(4, Math.floor(timing.windowBytes / (frame * readingCount * spec.publishers)))
      : Infinity;
    const batch = Math.max(1, Math.min(Math.floor(65_536 / frame), Math.floor(cap / 4)));
    const pump = () => {
      for (const publisher of publishers) publisher.pump();
    };
    subscribers = subClients.slice(0, readingCount).map((client) =>
      new Subscriber(client, spec.publishers, pump)
    );
    publishers = pubClients.map((client, i) =>
      new Publisher(client, templates[i], {
        qos: spec.qos,
        inflight: spec.inflight,
        batch,
        cap,
        progress: subscribers.length === 1
          ? () => subscribers[0].highest[i]
          : () => subscribers.reduce((least, s) => Math.min(least, s.highest[i]), Infinity),
      })
    );
    const received = () => subscribers.reduce((sum, s) => sum + s.received, 0);
    const payloadBytes = () => subscribers.reduce((sum, s) => sum + s.payloadBytes, 0);
    for (const publisher of publishers) publisher.stopped = false;
    pump();
    await sleep(timing.warmupMs);
    if (received() === 0) throw new Error(`nothing received during the ${timing.warmupMs} ms warm-up`);
    const meter = cpuMeter(broker);
    const bytesBefore = payloadBytes();
    const countBefore = received();
    const start = performance.now();
    await sleep(timing.windowMs);
    const inWindow = received() - countBefore;
    const seconds = (performance.now() - start) / 1000;
    const cpu = meter();
    const lost = lostConnections(clients);
    if (lost !== undefined) throw new Error(lost);
    if (broker.exited() !== undefined) throw new Error(`the broker exited (${broker.exited()})`);
    if (inWindow === 0) throw new Error(`stalled: nothing received for ${timing.windowMs} ms`);
    result.brokerCpu = cpu.broker;
    if (cpu.others !== undefined) result.otherCpu = cpu.others;
    result.generatorCpu = cpu.generator;
    result.rate = inWindow / seconds;
    result.rounds.push(result.rate);
    result.megabytesPerSecond = (payloadBytes() - bytesBefore) / seconds / 1e6;
    // Stop, let what is in flight arrive (a broker may have buffered a lot), then check nothing was lost or
    // duplicated.
    for (const publisher of publishers) publisher.stopped = true;
    const sent = publishers.reduce((sum, p) => sum + p.sent, 0);
    const expected = sent * subscribers.length;
    const drainStart = performance.now();
    let last = received();
    let lastChange = drainStart;
    while (received() < expected) {
      await sleep(50);
      const now = performance.now();
      if (received() !== last) {
        last = received();
        lastChange = now;
      } else if (now - lastChange >= DRAIN_QUIET_MS) break;
      if (now - drainStart >= DRAIN_LIMIT_MS) {
        result.notes.push(`drain cut after ${DRAIN_LIMIT_MS / 1000} s while deliveries still arrived`);
        break;
      }
    }
    const got = received();
    result.lost = Math.max(0, expected - got);
    result.expected = expected;
    result.readingSubscribers = subscribers.length;
    if (got < expected) {
      const skipped = subscribers.reduce((sum, s) => sum + s.skipped, 0);
      const late = subscribers.reduce(
        (sum, s) => sum + s.first.reduce((a, b) => a + Math.max(0, b - 1), 0),
        0,
      );
      const tail = publishers.reduce(
        (sum, p, i) => sum + subscribers.reduce((a, s) => a + Math.max(0, p.sent - s.highest[i]), 0),
        0,
      );
      result.notes.push(
        `${formatCount(expected - got)} of ${formatCount(expected)} deliveries missing (${
          ((100 * (expected - got)) / expected).toFixed(2)
        }%: ${formatCount(late)} before the first received, ${formatCount(skipped)} in gaps, ${
          formatCount(tail)
        } after the last received${
          skipped > 0 ? `; first gaps: ${subscribers.flatMap((s) => s.gaps).slice(0, 5).join(", ")}` : ""
        })`,
      );
    } else if (got > expected) {
      result.notes.push(`${formatCount(got - expected)} more deliveries than sent (duplicates)`);
    }
    const reordered = subscribers.reduce((sum, s) => sum + s.reordered, 0);
    if (reordered > 0) result.notes.push(`${formatCount(reordered)} deliveries out of order or repeated`);
    const lostAfter = lostConnections(clients);
    if (lostAfter !== undefined) result.notes.push(`after the timed part: ${lostAfter}`);
    const dropped = stuck.filter((client) => client.lostReason !== undefined);
    if (dropped.length > 0) {
      result.notes.push(
        `${dropped.length} of ${stuck.length} stuck subscribers disconnected by the broker (allowed: ${
          dropped[0].lostReason
        })`,
      );
    }
  } catch (error) {
    result.error = (error as Error).message;
    result.rate = NaN;
    result.rounds = [];
    delete result.lost;
    delete result.expected;
  } finally {
    for (const publisher of publishers) publisher.stopped = true;
    const unexpected = unexpectedPackets(clients);
    if (unexpected !== undefined) result.notes.push(unexpected);
    // A paused socket would not see the broker's FIN; close the stuck ones at once.
    for (const client of stuck) client.destroy();
    await Promise.all(clients.map((client) => client.close()));
    await sleep(200);
  }
  return result;
}

/**
 * Runs one pass of the latency case: one QoS 0 publisher at a fixed rate, paced by a 1 ms timer (each tick
 * sends the messages that are due, stamped with the time of the write), and one subscriber that records the
 * delay of each message when it is read.
 *
 * @param broker The broker.
 * @param spec The case.
 * @param timing Warm-up and the length of the timed part.
 * @returns The percentiles, and the samples for {@linkcode mergePasses}.
 */
export async function runLatency(
  broker: LoadTarget,
  spec: LatencyCase,
  timing: Timing,
): Promise<CaseResult> {
  const result: CaseResult = { rate: NaN, rounds: [], notes: [] };
  const run = `${spec.key}-${Date.now().toString(36)}`;
  const topic = `bench/${run}/t`;
  const clients: BenchClient[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    const [subClient] = await openClients(subscriberPorts(broker), [`${run}-sub`]);
    clients.push(subClient);
    const [pubClient] = await openClients([broker.port], [`${run}-pub`]);
    clients.push(pubClient);
    await subClient.subscribe(topic, 0);
    const subscriber = new Subscriber(subClient, 1, () => {});
    pubClient.onFrame = (first) => {
      pubClient.unexpected.set(first >> 4, (pubClient.unexpected.get(first >> 4) ?? 0) + 1);
    };
    const template = publishTemplate(topic, spec.payload, 0, 0);
    const block = repeatTemplate(template, 50);
    let sent = 0;
    let sentTimed = 0;
    let timed = false;
    const start = performance.now();
    timer = setInterval(() => {
      const now = performance.now();
      const due = Math.min(50, Math.floor(((now - start) * spec.ratePerSecond) / 1000) - sent);
      if (due <= 0) return;
      pubClient.write(fillPublishes(block, template, due, sent + 1, undefined, now));
      sent += due;
      if (timed) sentTimed += due;
    }, 1);
    await sleep(timing.warmupMs);
    if (subscriber.received === 0) {
      throw new Error(`nothing received during the ${timing.warmupMs} ms warm-up`);
    }
    const meter = cpuMeter(broker);
    subscriber.latencies = [];
    timed = true;
    const t0 = performance.now();
    await sleep(timing.latencyMs);
    timed = false;
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(timer);
    timer = undefined;
    const samples = subscriber.latencies;
    subscriber.latencies = undefined;
    const cpu = meter();
    result.brokerCpu = cpu.broker;
    if (cpu.others !== undefined) result.otherCpu = cpu.others;
    result.generatorCpu = cpu.generator;
    await sleep(200);
    const lost = lostConnections(clients);
    if (lost !== undefined) throw new Error(lost);
    if (samples.length === 0) throw new Error("no message received while timed");
    result.samples = samples;
    result.latency = latencyStats(samples, sentTimed / seconds);
    result.rate = result.latency.p99;
    if (subscriber.received < sent) {
      result.notes.push(
        `${formatCount(sent - subscriber.received)} of ${formatCount(sent)} messages missing`,
      );
    }
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    if (timer !== undefined) clearInterval(timer);
    const unexpected = unexpectedPackets(clients);
    if (unexpected !== undefined) result.notes.push(unexpected);
    await Promise.all(clients.map((client) => client.close()));
    await sleep(200);
  }
  return result;
}

/**
 * Runs the memory case on a broker that has served nothing else: opens and closes 100 connections (so that
 * code paths are loaded), reads the broker's RSS, opens `timing.idleConnections` connections in batches of
 * 100 (each waits for its CONNACK), waits 1.5 s and reads the RSS again.
 *
 * @param broker A freshly started broker.
 * @param timing How many connections.
 * @returns The memory per connection; notes when some could not connect.
 */
export async function runIdle(broker: LoadTarget, timing: Timing): Promise<CaseResult> {
  const result: CaseResult = { rate: NaN, rounds: [], notes: [] };
  const run = `idle-${Date.now().toString(36)}`;
  const clients: BenchClient[] = [];
  try {
    const warm = await openClients([broker.port], Array.from({ length: 100 }, (_, i) => `${run}-warm-${i}`));
    await Promise.all(warm.map((client) => client.close()));
    await sleep(500);
    const before = rssKiB(broker.pid);
    let failed = 0;
    let firstError: string | undefined;
    const t0 = performance.now();
    const BATCH = 100;
    for (let i = 0; i < timing.idleConnections; i += BATCH) {
      const batch = Array.from(
        { length: Math.min(BATCH, timing.idleConnections - i) },
        (_, j) => BenchClient.connect(broker.port, `${run}-${i + j}`, 15_000),
      );
      const settled = await Promise.allSettled(batch);
      let batchFailed = 0;
      for (const outcome of settled) {
        if (outcome.status === "fulfilled") clients.push(outcome.value);
        else {
          batchFailed++;
          firstError ??= (outcome.reason as Error).message;
        }
      }
      failed += batchFailed;
      if (batchFailed === settled.length) break;
    }
    const openSeconds = (performance.now() - t0) / 1000;
    await sleep(1500);
    const after = rssKiB(broker.pid);
    const open = clients.filter((client) => client.open).length;
    if (failed > 0) result.notes.push(`${failed} connections failed (${firstError})`);
    if (open < clients.length) {
      result.notes.push(`${clients.length - open} connections were closed by the broker while idle`);
    }
    if (broker.exited() !== undefined) throw new Error(`the broker exited (${broker.exited()})`);
    if (clients.length === 0) throw new Error(`no connection succeeded (${firstError})`);
    result.idle = {
      connections: clients.length,
      failed,
      rssBeforeKiB: before,
      rssAfterKiB: after,
      kibPerConnection: (after - before) / clients.length,
      connectsPerSecond: clients.length / openSeconds,
    };
    result.rate = result.idle.kibPerConnection;
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    for (const client of clients) client.destroy();
    await sleep(300);
  }
  return result;
}

function latencyStats(samples: number[], sentPerSecond: number): LatencyStats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  return {
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted[sorted.length - 1],
    samples: sorted.length,
    sentPerSecond,
  };
}

function meanCpu(uses: (CpuUse | undefined)[]): CpuUse | undefined {
  const known = uses.filter((use) => use !== undefined);
  if (known.length === 0) return undefined;
  return {
    total: known.reduce((sum, use) => sum + use.total, 0) / known.length,
    busiest: known.reduce((sum, use) => sum + use.busiest, 0) / known.length,
  };
}

/**
 * Merges the passes of one case on one broker: the median pass's rate (throughput), the deliveries lost
 * summed over the passes, percentiles over every pass's samples (latency), mean CPU use, and the notes of
 * each pass. A failed pass is reported in the notes; the case fails only when every pass failed.
 *
 * @param passes The passes, in order.
 * @returns The merged result.
 */
export function mergePasses(passes: readonly CaseResult[]): CaseResult {
  const good = passes.filter((pass) => pass.error === undefined);
  const notes: string[] = [];
  passes.forEach((pass, index) => {
    const label = passes.length > 1 ? `pass ${index + 1}: ` : "";
    if (pass.error !== undefined && good.length > 0) notes.push(`${label}FAILED: ${pass.error}`);
    for (const note of pass.notes) notes.push(`${label}${note}`);
  });
  const merged: CaseResult = {
    rate: median(good.map((pass) => pass.rate)),
    rounds: good.map((pass) => pass.rate),
    notes,
  };
  if (good.length === 0) {
    merged.error = passes.map((pass) => pass.error).filter((e, i, all) => all.indexOf(e) === i).join("; ");
    return merged;
  }
  merged.brokerCpu = meanCpu(good.map((pass) => pass.brokerCpu));
  merged.generatorCpu = meanCpu(good.map((pass) => pass.generatorCpu));
  const labels = Object.keys(good[0].otherCpu ?? {});
  if (labels.length > 0) {
    merged.otherCpu = {};
    for (const label of labels) {
      const mean = meanCpu(good.map((pass) => pass.otherCpu?.[label]));
      if (mean !== undefined) merged.otherCpu[label] = mean;
    }
  }
  if (good.every((pass) => pass.lost !== undefined)) {
    merged.lost = good.reduce((sum, pass) => sum + (pass.lost ?? 0), 0);
    merged.expected = good.reduce((sum, pass) => sum + (pass.expected ?? 0), 0);
    merged.readingSubscribers = good[0].readingSubscribers;
  }
  const megabytes = good.map((pass) => pass.megabytesPerSecond).filter((x) => x !== undefined);
  if (megabytes.length > 0) merged.megabytesPerSecond = median(megabytes);
  if (good[0].latency !== undefined) {
    const samples = good.flatMap((pass) => pass.samples ?? []);
    const sent = good.reduce((sum, pass) => sum + (pass.latency?.sentPerSecond ?? 0), 0) / good.length;
    merged.latency = latencyStats(samples, sent);
    merged.rate = merged.latency.p99;
  }
  if (good[0].idle !== undefined) {
    merged.idle = good[0].idle;
    merged.rate = good[0].rate;
  }
  return merged;
}

/**
 * Formats a count with thousands separators.
 *
 * @param n The count.
 * @returns Such as `12,345`.
 */
export function formatCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
