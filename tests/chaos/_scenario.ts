/**
 * The chaos scenario: a publisher and a subscriber with persistent sessions talk to a broker through a proxy
 * that resets every connection every few tens of milliseconds, each reconnecting on its own. The publisher
 * sends seq 0..count-1 alternately to `chaos/q1` (QoS 1) and `chaos/q2` (QoS 2) with at most `window`
 * publishes unsettled; the subscriber (`chaos/#`, QoS 2) must receive every seq whose publish resolved, the
 * QoS 2 ones exactly once. Either side is our client or MQTT.js.
 */

import mqtt from "mqtt";
import { connect } from "../../src/client/connect.ts";
import type { MqttClient } from "../../src/client/mqtt_client.ts";
import { Ledger } from "../_ledger.ts";
import { startCuttingProxy } from "./_proxy.ts";

/** Which client plays a part. */
export type Peer = "ours" | "mqttjs";

/** Options of {@linkcode runChaos}. */
export interface ChaosOptions {
  /** The broker's port on 127.0.0.1. */
  brokerPort: number;
  /** 4 (MQTT 3.1.1) or 5. */
  version: 4 | 5;
  publisher: Peer;
  subscriber: Peer;
  /** How many messages to publish at least; more while the proxy has cut fewer than `minCuts` times. */
  count: number;
  /** The fewest cuts a run sees: a fast run goes on publishing (up to 10 × `count`) until then. @default 3 */
  minCuts?: number;
  /** The most publishes unsettled at once. @default 32 */
  window?: number;
  /** Milliseconds between two publishes; 0 sends as fast as the window allows. */
  paceMs: number;
  /** The proxy's seed. */
  seed: number;
  /** The shortest and longest time between two cuts, in milliseconds. */
  cutMinMs: number;
  cutMaxMs: number;
  /** How long the subscriber may take to catch up once the cuts stop. @default 20000 */
  drainMs?: number;
  /** A prefix for the client identifiers, unique per run. */
  name: string;
}

/** What a run measured. */
export interface ChaosReport {
  /** Publishes made: `count`, or more to see `minCuts` cuts. */
  sent: number;
  /** Publishes that resolved (acknowledged). */
  resolved: number;
  /** Publishes that rejected. */
  rejected: number;
  /** Publishes that had not settled when the run gave up on them. */
  unsettled: number;
  /** Acknowledged messages the subscriber never received, as `topic:seq`. */
  lost: string[];
  /** Extra copies of QoS 1 messages received. */
  qos1Duplicates: number;
  /** Extra copies of QoS 2 messages received (must be 0). */
  qos2Duplicates: number;
  /** Connections the publisher and the subscriber made after their first. */
  publisherReconnects: number;
  subscriberReconnects: number;
  /** Connections made after the cuts stopped (a livelock makes many). */
  reconnectsAfterCalm: number;
  /** How often the proxy cut every connection. */
  cuts: number;
  /** Milliseconds the whole run took. */
  durationMs: number;
  /** The first reasons publishes were rejected for, and why clients lost their connections. */
  errors: string[];
}

interface PublisherSide {
  publish(topic: string, payload: string, qos: 1 | 2): Promise<void>;
  readonly connects: number;
  close(): Promise<void>;
}

interface SubscriberSide {
  readonly connects: number;
  close(): Promise<void>;
}

const RECONNECT_MS = 100;

/**
 * Runs the scenario once and reports what happened; asserts nothing.
 *
 * @param options Peers, broker, counts and the proxy's schedule.
 * @returns The measurements.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = performance.now();
  const proxy = await startCuttingProxy({
    target: options.brokerPort,
    seed: options.seed,
    minMs: options.cutMinMs,
    maxMs: options.cutMaxMs,
  });
  const ledger = new Ledger();
  const note = (what: string) => ledger.note(what);
  const onMessage = (topic: string, payload: string) => ledger.receive(topic, payload);
  const url = `mqtt://127.0.0.1:${proxy.port}`;
  const subscriber = options.subscriber === "ours"
    ? await oursSubscriber(url, options, onMessage, note)
    : await mqttjsSubscriber(url, options, onMessage, note);
  const publisher = options.publisher === "ours"
    ? await oursPublisher(url, options, note)
    : await mqttjsPublisher(url, options, note);

  const minCuts = options.minCuts ?? 3;
  proxy.start();
  try {
    await ledger.publish("chaos", (topic, payload, qos) => publisher.publish(topic, payload, qos), {
      more: (seq) => seq < options.count || (proxy.cuts < minCuts && seq < 10 * options.count),
      window: options.window ?? 32,
      paceMs: options.paceMs,
    });
    // Every publish settles; the cuts go on meanwhile.
    const unsettled = await ledger.settle(30_000);
    proxy.calm();
    const calmConnects = publisher.connects + subscriber.connects;
    // The subscriber catches up once the connections stay.
    await ledger.drain(options.drainMs ?? 20_000);
    const reconnectsAfterCalm = publisher.connects + subscriber.connects - calmConnects;
    const duplicates = ledger.duplicates();
    return {
      sent: ledger.sent,
      resolved: ledger.resolved.size,
      rejected: ledger.rejected,
      unsettled,
      lost: ledger.missing(),
      qos1Duplicates: duplicates.qos1,
      qos2Duplicates: duplicates.qos2,
      publisherReconnects: publisher.connects - 1,
      subscriberReconnects: subscriber.connects - 1,
      reconnectsAfterCalm,
      cuts: proxy.cuts,
      durationMs: Math.round(performance.now() - started),
      errors: ledger.errors,
    };
  } finally {
    proxy.calm();
    await Promise.all([publisher.close(), subscriber.close()]);
    await proxy.close();
  }
}

/** One line for a report: what a person compares across runs. */
export function describeReport(report: ChaosReport): string {
  const lost = report.lost.length;
  const sample = lost > 0 ? ` (${summarize(report.lost)})` : "";
  return `lost ${lost}${sample}, QoS 2 duplicates ${report.qos2Duplicates}, QoS 1 duplicates ${report.qos1Duplicates}, ` +
    `resolved ${report.resolved}/${report.sent}, rejected ${report.rejected}, unsettled ${report.unsettled}, ` +
    `reconnects ${report.publisherReconnects}+${report.subscriberReconnects} (after calm ${report.reconnectsAfterCalm}), ` +
    `cuts ${report.cuts}, ${report.durationMs} ms`;
}

/** The lost keys as ranges per topic, the first few. */
function summarize(keys: string[]): string {
  const byTopic = new Map<string, number[]>();
  for (const key of keys) {
    const [topic, seq] = key.split(":");
    let list = byTopic.get(topic);
    if (list === undefined) byTopic.set(topic, list = []);
    list.push(Number(seq));
  }
  const parts: string[] = [];
  for (const [topic, seqs] of byTopic) {
    seqs.sort((a, b) => a - b);
    const ranges: string[] = [];
    let start = seqs[0];
    let last = seqs[0];
    for (const seq of [...seqs.slice(1), Infinity]) {
      if (seq === last + 2) {
        last = seq;
        continue;
      }
      ranges.push(start === last ? `${start}` : `${start}-${last}`);
      start = last = seq;
    }
    parts.push(`${topic} ${ranges.slice(0, 6).join(",")}${ranges.length > 6 ? ",…" : ""}`);
  }
  return parts.join("; ");
}

/** Our client, persistent session, reconnecting every 0-100 ms. */
async function oursClient(
  url: string,
  options: ChaosOptions,
  clientId: string,
  note: (what: string) => void,
): Promise<{ client: MqttClient; connects: () => number }> {
  let connects = 0;
  const client = await connect({
    url,
    clientId,
    protocolVersion: options.version,
    cleanStart: false,
    sessionExpiryInterval: options.version === 5 ? 3600 : undefined,
    keepAlive: 30,
    reconnect: { initialDelayMs: RECONNECT_MS, maxDelayMs: RECONNECT_MS },
    onStateChange: (event) => {
      if (event.type === "connected") connects++;
      else if (
        event.type === "disconnected" && event.error !== undefined && event.error.source !== "transport"
      ) {
        note(`${clientId} lost its connection: ${event.error.message}`);
      }
    },
  });
  return { client, connects: () => connects };
}

async function oursPublisher(
  url: string,
  options: ChaosOptions,
  note: (what: string) => void,
): Promise<PublisherSide> {
  const { client, connects } = await oursClient(url, options, `${options.name}-pub`, note);
  return {
    publish: (topic, payload, qos) => client.publish(topic, payload, { qos }),
    get connects() {
      return connects();
    },
    close: () => client.close(),
  };
}

async function oursSubscriber(
  url: string,
  options: ChaosOptions,
  onMessage: (topic: string, payload: string) => void,
  note: (what: string) => void,
): Promise<SubscriberSide> {
  const { client, connects } = await oursClient(url, options, `${options.name}-sub`, note);
  const subscription = await client.subscribe("chaos/#", { qos: 2 });
  const reading = (async () => {
    for await (const message of subscription) onMessage(message.topic, message.text());
  })();
  return {
    get connects() {
      return connects();
    },
    async close() {
      await client.close();
      await reading.catch(() => {});
    },
  };
}

/** MQTT.js, persistent session, reconnecting every 100 ms. */
function mqttjsClient(
  url: string,
  options: ChaosOptions,
  clientId: string,
  note: (what: string) => void,
): Promise<{ client: mqtt.MqttClient; connects: () => number }> {
  let connects = 0;
  const client = mqtt.connect(url, {
    clientId,
    protocolVersion: options.version,
    clean: false,
    properties: options.version === 5 ? { sessionExpiryInterval: 3600 } : undefined,
    keepalive: 30,
    reconnectPeriod: RECONNECT_MS,
    connectTimeout: 5000,
  });
  client.on("connect", () => connects++);
  client.on("error", (error) => note(`${clientId} (MQTT.js) error: ${error.message}`));
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve({ client, connects: () => connects }));
    client.once("error", reject);
  });
}

async function mqttjsPublisher(
  url: string,
  options: ChaosOptions,
  note: (what: string) => void,
): Promise<PublisherSide> {
  const { client, connects } = await mqttjsClient(url, options, `${options.name}-pub`, note);
  return {
    publish: (topic, payload, qos) =>
      new Promise<void>((resolve, reject) => {
        client.publish(topic, payload, { qos }, (error) => error ? reject(error) : resolve());
      }),
    get connects() {
      return connects();
    },
    close: () => client.endAsync(true).then(() => {}),
  };
}

async function mqttjsSubscriber(
  url: string,
  options: ChaosOptions,
  onMessage: (topic: string, payload: string) => void,
  note: (what: string) => void,
): Promise<SubscriberSide> {
  const { client, connects } = await mqttjsClient(url, options, `${options.name}-sub`, note);
  client.on("message", (topic, payload) => onMessage(topic, new TextDecoder().decode(payload)));
  await client.subscribeAsync("chaos/#", { qos: 2 });
  return {
    get connects() {
      return connects();
    },
    close: () => client.endAsync(true).then(() => {}),
  };
}
