/**
 * Chaos tests: nothing acknowledged is lost when connections drop. A proxy resets both sides of every
 * connection every 50-200 ms (the fast profile, unpaced publisher) or every 300-900 ms (the default profile,
 * 250 publishes/s) while a publisher and a subscriber with persistent sessions, each reconnecting on its own,
 * run through it: against our broker and mosquitto, MQTT 3.1.1 and 5, our client on both sides and mixed with
 * MQTT.js. Every resolved publish reaches the subscriber, QoS 2 exactly once, every publish settles and no
 * client keeps reconnecting once the cuts stop. MQTT.js on both sides runs in the same test as a yardstick
 * for duplicates. The seed is in every failure message.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { Broker } from "../../src/broker/broker.ts";
import { mosquittoMissing, startMosquitto } from "../_mosquitto.ts";
import { type ChaosOptions, type ChaosReport, describeReport, type Peer, runChaos } from "./_scenario.ts";

const missing = mosquittoMissing();
const seed = Number(process.env.CHAOS_SEED ?? 0x5eed);
let runs = 0;

interface Target {
  port: number;
  stop(): Promise<void>;
}

async function ourBroker(): Promise<Target> {
  const broker = new Broker({ sysInterval: 0 });
  const { port } = await broker.listen({ port: 0 });
  return { port, stop: () => broker.close() };
}

async function mosquitto(): Promise<Target> {
  // Unbounded queues: mosquitto drops queued messages past max_queued_messages (1000) while acknowledging them,
  // which is its documented limit, not what is tested here.
  const server = await startMosquitto(["max_queued_messages 0"]);
  return { port: server.port, stop: () => server.stop() };
}

const FAST = { paceMs: 0, cutMinMs: 50, cutMaxMs: 200, count: 8000 };
const DEFAULT = { paceMs: 4, cutMinMs: 300, cutMaxMs: 900, count: 600 };

type Pair = Pick<ChaosOptions, "publisher" | "subscriber">;

/** Runs one scenario on a fresh broker and checks what must hold for our client and broker. */
async function scenario(
  target: () => Promise<Target>,
  version: 4 | 5,
  pair: Pair,
  profile: typeof FAST,
): Promise<ChaosReport> {
  const broker = await target();
  const runSeed = seed + runs;
  try {
    return await runChaos({
      brokerPort: broker.port,
      version,
      ...pair,
      ...profile,
      seed: runSeed,
      name: `chaos-${process.pid}-${runs++}`,
    });
  } finally {
    await broker.stop();
  }
}

function check(
  what: string,
  broker: string,
  publisher: Peer,
  report: ChaosReport,
  baseline?: ChaosReport,
): void {
  const text = `${what}: ${describeReport(report)}${
    baseline === undefined ? "" : `\n  MQTT.js on both sides: ${describeReport(baseline)}`
  }\n  (seed ${seed}; CHAOS_SEED=${seed} replays the run)${
    report.errors.length > 0 ? `\n  ${report.errors.slice(0, 5).join("\n  ")}` : ""
  }`;
  assert.equal(report.unsettled, 0, `every publish settles; ${text}`);
  // MQTT.js fails some publishes itself when its connection closes ("Connection closed"), whatever the broker.
  if (publisher === "ours") assert.equal(report.rejected, 0, `no publish is rejected; ${text}`);
  assert.deepEqual(report.lost, [], `every acknowledged message is delivered; ${text}`);
  // mosquitto 2.0.11 itself breaks exactly once under this load, rarely: after many reconnects in a row it
  // goes back from resending PUBREL to resending the PUBLISH of a message its subscriber already completed
  // (its verbose log shows "Sending PUBREL … (m3566)" again and again, then "Sending PUBLISH … (d1, q2, …
  // m3566 …)"), which any client must take for a new message: seen with MQTT.js subscribing, our client not
  // involved. Exactly once is asserted where the broker is ours.
  if (broker === "our broker") {
    assert.equal(report.qos2Duplicates, 0, `QoS 2 is delivered exactly once; ${text}`);
  }
  // A livelock (reconnect, the same resend, disconnect) goes on after the cuts stop.
  assert.ok(report.reconnectsAfterCalm <= 2, `no client keeps reconnecting once the cuts stop; ${text}`);
  assert.ok(report.cuts > 0, `the proxy cut the connections; ${text}`);
}

const brokers: [string, () => Promise<Target>, string | undefined][] = [
  ["our broker", ourBroker, undefined],
  ["mosquitto", mosquitto, missing],
];
const pairs: [string, Pair][] = [
  ["our publisher and subscriber", { publisher: "ours", subscriber: "ours" }],
  ["our publisher, MQTT.js subscriber", { publisher: "ours", subscriber: "mqttjs" }],
  ["MQTT.js publisher, our subscriber", { publisher: "mqttjs", subscriber: "ours" }],
];

for (const [brokerName, target, skip] of brokers) {
  for (const version of [5, 4] as const) {
    const level = version === 5 ? "MQTT 5" : "MQTT 3.1.1";
    test(
      `chaos, fast profile (cuts every 50-200 ms, unpaced), ${brokerName}, ${level}: nothing acknowledged is lost, ${
        brokerName === "our broker" ? "QoS 2 exactly once, " : ""
      }no livelock`,
      { skip },
      async () => {
        const baseline = await scenario(target, version, { publisher: "mqttjs", subscriber: "mqttjs" }, FAST);
        console.log(`MQTT.js publisher and subscriber, ${brokerName}, ${level}: ${describeReport(baseline)}`);
        for (const [name, pair] of pairs) {
          const report = await scenario(target, version, pair, FAST);
          console.log(`${name}, ${brokerName}, ${level}: ${describeReport(report)}`);
          check(`${name}, ${brokerName}, ${level}`, brokerName, pair.publisher, report, baseline);
          if (
            pair.publisher === "ours" && pair.subscriber === "ours" && brokerName === "our broker" &&
            version === 5
          ) {
            // Resend only what is unacknowledged: a cut duplicates at most the publisher's window and what was
            // in flight to the subscriber (our client's Receive Maximum, 100, which our broker keeps to; 3.1.1
            // has no Receive Maximum, so no such bound).
            assert.ok(
              report.qos1Duplicates <= report.cuts * (32 + 100),
              `QoS 1 duplicates within what a cut leaves unacknowledged; ${
                describeReport(report)
              }\n  MQTT.js: ${describeReport(baseline)}`,
            );
          }
        }
      },
    );
    test(
      `chaos, default profile (cuts every 300-900 ms, 250 publishes/s), ${brokerName}, ${level}: nothing acknowledged is lost`,
      { skip },
      async () => {
        const report = await scenario(target, version, pairs[0][1], DEFAULT);
        console.log(`${pairs[0][0]}, ${brokerName}, ${level}, default profile: ${describeReport(report)}`);
        check(`${pairs[0][0]}, ${brokerName}, ${level}, default profile`, brokerName, "ours", report);
      },
    );
  }
}
