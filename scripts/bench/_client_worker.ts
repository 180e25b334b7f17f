/**
 * One client under test for `scripts/bench/client.ts`, in a process of its own so that its CPU can be read
 * from `/proc`: this library's client (under Deno, Bun or Node) or MQTT.js (under Node), both at MQTT 3.1.1
 * with keep-alive and reconnection off.
 *
 *     <runtime> scripts/bench/_client_worker.ts --impl ours|mqttjs --case pub0|pub1|pub2|recv0|recv1
 *       --port P --topic T --warmup MS --window MS [--inflight N]
 *
 * It talks to the parent in lines. Out (stdout): `ready` once connected (and subscribed), `start` when the
 * measured window opens, `end COUNT SECONDS` when it closes, `progress N` every 5 ms while receiving
 * (messages taken or dropped so far, for the parent's flow control), `done …` after the check below, `error TEXT` when
 * an operation failed. In (stdin, receive cases): `stop SENT` once the parent stopped publishing.
 *
 * - `pubQ`: `inflight` lanes (default 128) each publish a 64-byte message at QoS Q to `T` and publish again
 *   as soon as it settled (ours: `await client.publish()`; MQTT.js: `await client.publishAsync()`; both
 *   settle when the socket took the bytes at QoS 0, on PUBACK at 1, on PUBCOMP at 2). Each payload is a new
 *   buffer holding the next sequence number. COUNT is the publishes settled inside the window. After it, the
 *   lanes stop and wait for what is outstanding: `done ISSUED SETTLED`.
 * - `recvQ`: subscribes to `T` at QoS Q and takes messages (ours: `for await` over the subscription, which
 *   acknowledges a QoS 1 message when it is taken; MQTT.js: its `message` event, acknowledged by MQTT.js),
 *   reading each one's sequence number. The window opens `warmup` ms after the first message. After `stop
 *   SENT` it waits until SENT messages arrived (or nothing arrived for 2 s): `done RECEIVED MISSING
 *   DUPLICATES FOREIGN DROPPED GAPS` (DROPPED: QoS 0 messages our subscription buffer dropped, else 0; GAPS:
 *   the first missing ranges, or `-`).
 *
 * @module
 */

import process from "node:process";
import { Buffer } from "node:buffer";
import { connect } from "../../client.ts";
import { readSeq, SeqTracker, writeSeq } from "./_client_seq.ts";

/**
 * How often a receiving client reports its count. The publisher stays at most `AHEAD` (client.ts) messages
 * ahead of the last report, so this bounds the receive rows at AHEAD per interval: 4 M msg/s at 5 ms (at 20 ms
 * it was 1 M/s, which capped the fastest client instead of its CPU).
 */
const PROGRESS_MS = 5;

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i === -1 ? fallback : process.argv[i + 1];
  if (value === undefined) throw new Error(`Missing --${name}`);
  return value;
}

const impl = arg("impl");
const kind = arg("case");
const port = Number(arg("port"));
const topic = arg("topic");
const warmupMs = Number(arg("warmup", "500"));
const windowMs = Number(arg("window", "1000"));
const inflight = Number(arg("inflight", "128"));
const qos = Number(kind.slice(-1)) as 0 | 1 | 2;
const url = `mqtt://127.0.0.1:${port}`;
const PAYLOAD_SIZE = 64;

function say(line: string): void {
  process.stdout.write(line + "\n");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client reduced to what the cases use. */
interface Client {
  /** Publishes one message carrying `seq`. */
  publish(seq: number): Promise<unknown>;
  /** Subscribes and calls `onPayload` for every message taken. */
  subscribe(onPayload: (payload: Uint8Array) => void): Promise<void>;
  /** QoS 0 messages dropped on the client's side. */
  dropped(): number;
  close(): Promise<void>;
}

async function ours(): Promise<Client> {
  const client = await connect(url, { protocolVersion: 4, reconnect: false, keepAlive: 0 });
  let dropped = () => 0;
  return {
    publish(seq) {
      const payload = new Uint8Array(PAYLOAD_SIZE);
      writeSeq(payload, seq);
      return client.publish(topic, payload, { qos });
    },
    async subscribe(onPayload) {
      const subscription = await client.subscribe(topic, { qos });
      dropped = () => subscription.dropped;
      void (async () => {
        for await (const message of subscription) onPayload(message.payload);
      })();
    },
    dropped: () => dropped(),
    close: () => client.close(),
  };
}

async function mqttjs(): Promise<Client> {
  const mqtt = (await import("mqtt")).default;
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    keepalive: 0,
    clean: true,
  });
  return {
    publish(seq) {
      const payload = Buffer.alloc(PAYLOAD_SIZE);
      payload.writeUInt32BE(seq, 0);
      return client.publishAsync(topic, payload, { qos });
    },
    async subscribe(onPayload) {
      client.on("message", (_topic: string, payload: Uint8Array) => onPayload(payload));
      await client.subscribeAsync(topic, { qos });
    },
    dropped: () => 0,
    close: () => client.endAsync(),
  };
}

function fail(error: unknown): never {
  say(`error ${(error as Error)?.message ?? String(error)}`.replace(/\n/g, " "));
  process.exit(1);
}

const client = await (impl === "ours" ? ours() : impl === "mqttjs" ? mqttjs() : undefined)?.catch(fail);
if (client === undefined) fail(new Error(`Unknown --impl ${impl}`));

let counting = false;
let count = 0;
let windowStart = 0;

async function measureWindow(): Promise<void> {
  await sleep(warmupMs);
  count = 0;
  counting = true;
  windowStart = performance.now();
  say("start");
  await sleep(windowMs);
  counting = false;
  say(`end ${count} ${((performance.now() - windowStart) / 1000).toFixed(4)}`);
}

if (kind.startsWith("pub")) {
  let running = true;
  let issued = 0;
  let settled = 0;
  /** One of `inflight` publishers that each keep one publish outstanding. */
  const lane = async (): Promise<void> => {
    while (running) {
      await client.publish(++issued);
      settled++;
      if (counting) count++;
    }
  };
  say("ready");
  const lanes = Promise.all(Array.from({ length: inflight }, lane)).catch(fail);
  await measureWindow();
  running = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    lanes,
    new Promise((resolve) => timer = setTimeout(resolve, 10_000)),
  ]);
  clearTimeout(timer);
  say(`done ${issued} ${settled}`);
} else if (kind.startsWith("recv")) {
  const tracker = new SeqTracker();
  let first: () => void = () => {};
  const started = new Promise<void>((resolve) => first = resolve);
  await client.subscribe((payload) => {
    tracker.add(readSeq(payload));
    if (counting) count++;
    if (tracker.received === 1) first();
  }).catch(fail);
  const progress = setInterval(() => say(`progress ${tracker.received + client.dropped()}`), PROGRESS_MS);
  let stopped: (sent: number) => void = () => {};
  const stop = new Promise<number>((resolve) => stopped = resolve);
  let input = "";
  process.stdin.on("data", (chunk: Uint8Array) => {
    input += new TextDecoder().decode(chunk);
    const match = /stop (\d+)\n/.exec(input);
    if (match) stopped(Number(match[1]));
  });
  say("ready");
  await started;
  await measureWindow();
  const sent = await stop;
  // Wait for the rest: until every message arrived, or nothing arrived for 2 s.
  for (let last = -1, quietSince = performance.now(); tracker.received < sent;) {
    await sleep(20);
    if (tracker.received !== last) {
      last = tracker.received;
      quietSince = performance.now();
    } else if (performance.now() - quietSince > 2000) break;
  }
  clearInterval(progress);
  const check = tracker.check(sent);
  say(
    `done ${tracker.received} ${check.missing} ${check.duplicates} ${check.foreign} ${client.dropped()} ${
      check.gaps.join(",") || "-"
    }`,
  );
} else {
  fail(new Error(`Unknown --case ${kind}`));
}
await client.close();
process.exit(0);
