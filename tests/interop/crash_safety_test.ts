/**
 * Crash safety of the broker as users run it (`broker.ts --persistence sqlite:…`, a child process of the runtime
 * under test): an unpaced publisher and a subscriber, both our client with persistent sessions, run while the
 * broker is killed with SIGKILL at several points and restarted on the same port and database. Every publish the
 * broker acknowledged must reach the subscriber, and no QoS 2 message twice.
 *
 * Set `CRASH_VERBOSE=1` to print each run's figures.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { connect } from "../../src/client/connect.ts";
import type { MqttClient } from "../../src/client/mqtt_client.ts";
import { type RunningBroker, startBroker } from "../_broker_process.ts";
import { freePort } from "../_mosquitto.ts";
import { seededRandom } from "../_random.ts";

/** Messages per run: enough for the kills to land mid-stream, few enough for a run of a few seconds. */
const COUNT = 4000;
/** The most publishes unsettled at once. */
const WINDOW = 32;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits for a promise to settle, or `ms` at most; never rejects. The timer is cleared as soon as the promise
 * settles, so that no forgotten timer keeps the runner's event loop alive.
 */
function bounded(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (promise === undefined) return Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(() => {}, () => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]).finally(() => clearTimeout(timer));
}

/** SIGKILLs a broker and waits (at most 5 s) until it is gone, so its port and database are free. */
async function killBroker(broker: RunningBroker): Promise<void> {
  broker.child.kill("SIGKILL");
  await bounded(broker.exited, 5000);
}

/** What one run measured. */
interface CrashReport {
  resolved: number;
  rejected: number;
  unsettled: number;
  /** Acknowledged messages the subscriber never received, as `topic:seq`. */
  lost: string[];
  qos1Duplicates: number;
  qos2Duplicates: number;
  kills: number;
  /** Resolved publishes when each kill happened. */
  killedAt: number[];
  durationMs: number;
  /** Connections the publisher and the subscriber made after their first. */
  reconnects: number;
  /** The first reasons publishes were rejected for. */
  errors: string[];
}

function describe(version: 4 | 5, report: CrashReport): string {
  return `MQTT ${
    version === 5 ? "5" : "3.1.1"
  }: resolved ${report.resolved}/${COUNT}, lost ${report.lost.length}` +
    `${report.lost.length > 0 ? ` (${report.lost.slice(0, 10).join(", ")}…)` : ""}, ` +
    `QoS 2 duplicates ${report.qos2Duplicates}, QoS 1 duplicates ${report.qos1Duplicates}, ` +
    `rejected ${report.rejected}, unsettled ${report.unsettled}, kills ${report.kills} ` +
    `(at ${report.killedAt.join(", ")} resolved), reconnects ${report.reconnects}, ${report.durationMs} ms` +
    `${report.errors.length > 0 ? `; errors: ${report.errors.join("; ")}` : ""}`;
}

/** Our client with a persistent session that reconnects every 0-100 ms while the broker is down. */
function persistentClient(
  port: number,
  clientId: string,
  version: 4 | 5,
  onConnected: () => void,
): Promise<MqttClient> {
  return connect({
    url: `mqtt://127.0.0.1:${port}`,
    clientId,
    protocolVersion: version,
    cleanStart: false,
    sessionExpiryInterval: version === 5 ? 3600 : undefined,
    keepAlive: 30,
    reconnect: { initialDelayMs: 100, maxDelayMs: 100 },
    onStateChange: (event) => {
      if (event.type === "connected") onConnected();
    },
  });
}

/**
 * Runs one publisher and one subscriber through `kills` SIGKILLs of the broker and reports what arrived.
 *
 * The kills fall after seeded numbers of resolved publishes; the second restart is followed by a kill 50-250 ms
 * later, while both clients are still resending what the previous broker had not settled.
 */
async function runCrashes(version: 4 | 5, seed: number): Promise<CrashReport> {
  const started = performance.now();
  const random = seededRandom(seed);
  const dir = mkdtempSync(join(tmpdir(), "crash-safety-"));
  const port = await freePort();
  // The listener on a fixed port, so that the clients find each new broker. A small queue bound: after a
  // restart the publisher may reconnect well before the subscriber, and what goes past the bound must be kept
  // (its acknowledgement held back), not dropped.
  const config = join(dir, "broker.json");
  writeFileSync(
    config,
    JSON.stringify({
      listeners: [{ type: "tcp", host: "127.0.0.1", port }],
      limits: { maxQueuedMessages: 100 },
    }),
  );
  const args = ["--config", config, "--persistence", `sqlite:${join(dir, "broker.db")}`];
  let broker = await startBroker(args);
  const clients: MqttClient[] = [];
  let reading: Promise<void> | undefined;
  let killing: Promise<void> | undefined;
  try {
    const received = new Map<string, number>();
    let connects = 0;
    const connected = () => void connects++;
    const subscriber = await persistentClient(port, `crash-sub-${version}`, version, connected);
    clients.push(subscriber);
    const subscription = await subscriber.subscribe("crash/#", { qos: 2 });
    reading = (async () => {
      for await (const message of subscription) {
        const key = `${message.topic}:${message.text()}`;
        received.set(key, (received.get(key) ?? 0) + 1);
      }
    })();
    const publisher = await persistentClient(port, `crash-pub-${version}`, version, connected);
    clients.push(publisher);

    const resolved = new Set<string>();
    const errors: string[] = [];
    let rejected = 0;
    let finished = false;
    const killedAt: number[] = [];
    // Three points between 10 % and 80 % of the stream, in order; after the second, a kill as soon as the new
    // broker has acknowledged a few publishes, while the clients still resend what the last one left unsettled.
    const points = [0, 1, 2].map(() => Math.floor(COUNT * (0.1 + 0.7 * random()))).sort((a, b) => a - b);
    const kill = async (at: number) => {
      while (resolved.size < at && !finished) await sleep(2);
      // A kill once everything settled proves nothing: it is not counted, and the test fails.
      if (resolved.size >= COUNT || finished) return;
      killedAt.push(resolved.size);
      await killBroker(broker);
      broker = await startBroker(args);
    };
    killing = (async () => {
      for (let k = 0; k < points.length; k++) {
        await kill(points[k]);
        if (k === 1) await kill(resolved.size + 1 + Math.floor(20 * random()));
      }
    })();

    const pending = new Set<Promise<void>>();
    for (let seq = 0; seq < COUNT; seq++) {
      // Bounded: a publish that never settles is caught by the deadline below, not by waiting here forever.
      while (pending.size >= WINDOW) await bounded(Promise.race(pending), 1000);
      const qos = seq % 2 === 0 ? 1 : 2;
      const key = `crash/q${qos}:${seq}`;
      const settled: Promise<void> = publisher.publish(`crash/q${qos}`, String(seq), { qos }).then(
        () => void resolved.add(key),
        (error) => {
          rejected++;
          if (errors.length < 10) errors.push(`publish ${key} rejected: ${(error as Error).message}`);
        },
      ).finally(() => pending.delete(settled));
      pending.add(settled);
    }
    const settleBy = performance.now() + 30_000;
    while (pending.size > 0 && performance.now() < settleBy) {
      await bounded(Promise.race(pending), 100);
    }
    const unsettled = pending.size;
    finished = true;
    await killing;

    // The subscriber catches up, then a moment more for late duplicates.
    const missing = () => [...resolved].filter((key) => !received.has(key));
    const drainBy = performance.now() + 20_000;
    while (missing().length > 0 && performance.now() < drainBy) await sleep(50);
    await sleep(300);
    let qos1Duplicates = 0;
    let qos2Duplicates = 0;
    for (const [key, times] of received) {
      if (times < 2) continue;
      if (key.startsWith("crash/q2:")) qos2Duplicates += times - 1;
      else qos1Duplicates += times - 1;
    }
    const byNumber = (a: string, b: string) => Number(a.split(":")[1]) - Number(b.split(":")[1]);
    return {
      resolved: resolved.size,
      rejected,
      unsettled,
      lost: missing().sort(byNumber),
      qos1Duplicates,
      qos2Duplicates,
      kills: killedAt.length,
      killedAt,
      durationMs: Math.round(performance.now() - started),
      reconnects: connects - 2,
      errors,
    };
  } finally {
    await bounded(killing, 15_000);
    await Promise.all(clients.map((client) => bounded(client.close(), 5000)));
    await bounded(reading, 5000);
    await killBroker(broker);
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const version of [5, 4] as const) {
  test(
    `broker.ts --persistence sqlite: every message it acknowledged over MQTT ${
      version === 5 ? "5" : "3.1.1"
    } reaches a persistent subscriber across four kill -9s, QoS 2 exactly once`,
    async () => {
      const report = await runCrashes(version, 0x5eed + version);
      const line = describe(version, report);
      if (process.env.CRASH_VERBOSE) console.log(line);
      assert.equal(report.kills, 4, `the broker was killed 4 times: ${line}`);
      assert.equal(report.unsettled, 0, `every publish settled: ${line}`);
      assert.ok(report.resolved > COUNT / 2, `most publishes were acknowledged: ${line}`);
      assert.deepEqual(report.lost, [], `no acknowledged message lost: ${line}`);
      assert.equal(report.qos2Duplicates, 0, `no QoS 2 message twice: ${line}`);
    },
  );
}
