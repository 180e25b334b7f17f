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
import { settledWithin, sleep } from "../_helpers.ts";
import { Ledger } from "../_ledger.ts";
import { seededRandom } from "../_random.ts";

/** Messages per run: enough for the kills to land mid-stream, few enough for a run of a few seconds. */
const COUNT = 4000;
/** The most publishes unsettled at once. */
const WINDOW = 32;

/** SIGKILLs a broker and waits (at most 5 s) until it is gone, so its port and database are free. */
async function killBroker(broker: RunningBroker): Promise<void> {
  broker.child.kill("SIGKILL");
  await settledWithin(broker.exited, 5000);
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
    const ledger = new Ledger();
    let connects = 0;
    const connected = () => void connects++;
    const subscriber = await persistentClient(port, `crash-sub-${version}`, version, connected);
    clients.push(subscriber);
    const subscription = await subscriber.subscribe("crash/#", { qos: 2 });
    reading = (async () => {
      for await (const message of subscription) ledger.receive(message.topic, message.text());
    })();
    const publisher = await persistentClient(port, `crash-pub-${version}`, version, connected);
    clients.push(publisher);

    const resolved = ledger.resolved;
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

    await ledger.publish("crash", (topic, payload, qos) => publisher.publish(topic, payload, { qos }), {
      more: (seq) => seq < COUNT,
      window: WINDOW,
    });
    const unsettled = await ledger.settle(30_000);
    finished = true;
    await killing;

    await ledger.drain(20_000);
    const duplicates = ledger.duplicates();
    return {
      resolved: resolved.size,
      rejected: ledger.rejected,
      unsettled,
      lost: ledger.missing(),
      qos1Duplicates: duplicates.qos1,
      qos2Duplicates: duplicates.qos2,
      kills: killedAt.length,
      killedAt,
      durationMs: Math.round(performance.now() - started),
      reconnects: connects - 2,
      errors: ledger.errors,
    };
  } finally {
    await settledWithin(killing, 15_000);
    await Promise.all(clients.map((client) => settledWithin(client.close(), 5000)));
    await settledWithin(reading, 5000);
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
