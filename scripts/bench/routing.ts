/**
 * Broker routing throughput: messages routed per second through a `BrokerMachine` holding 10,000 subscriptions
 * (exact and wildcard) from 50 connected sessions, with no sockets: the bytes are what a driver would write.
 *
 * Run from the repository root (node_modules installed, `PATH=node_modules/.bin:$PATH`):
 *
 *     deno run -A scripts/bench/routing.ts [--quick]
 *     bun scripts/bench/routing.ts [--quick]
 *     node scripts/bench/routing.ts [--quick]
 *
 * Setup: 50 sessions (25 at MQTT 5.0, 25 at 3.1.1) each hold 200 subscriptions: 100 exact filters
 * `s/{session}/{n}`, 99 wildcard filters `w/{session}/+/{n}` and `fan/#`, 10,000 in all. Cases:
 * - fan-out QoS 0: a 64-byte PUBLISH to `fan/{n}` goes to all 50 sessions; each session's output is taken
 *   (`pollTransmit`), as a driver does before writing;
 * - fan-out QoS 1: the same at QoS 1, and every session is then fed its client's PUBACK, so the in-flight table
 *   stays small and the cost of completing each delivery is included;
 * - one exact match: a PUBLISH to `s/{session}/{n}` goes to one session among the 10,000 subscriptions;
 * - one wildcard match: a PUBLISH to `w/{session}/x/{n}`.
 *
 * Prints messages routed per second and deliveries per second (messages × matching sessions), median of 5
 * rounds after a warm-up (`--quick`: shorter). Absolute numbers depend on the machine.
 *
 * @module
 */

import process from "node:process";
import { encode } from "../../src/codec/encode.ts";
import type { ProtocolVersion, PublishPacket } from "../../src/codec/packet.ts";
import { BrokerMachine } from "../../src/machine/broker_machine.ts";
import { SessionMachine } from "../../src/machine/session_machine.ts";
import { publishEncodeCounter } from "../../src/machine/_delivery.ts";
import { formatRate, formatTable, measureEach, runtimeName, sinkValue } from "./_bench.ts";

const quick = process.argv.includes("--quick");
const SESSIONS = 50;
const EXACT = 100;
const WILDCARD = 99;

const broker = new BrokerMachine();
const sessions: SessionMachine[] = [];
const versions: ProtocolVersion[] = [];

for (let s = 0; s < SESSIONS; s++) {
  const version: ProtocolVersion = s % 2 === 0 ? 5 : 4;
  const session = new SessionMachine(0, { connectTimeoutMs: 0 });
  session.handleBytes(
    0,
    encode(
      { type: "connect", protocolVersion: version, clientId: `c${s}`, cleanStart: true, keepAlive: 0 },
      version,
    ),
  );
  session.pollEvent();
  broker.attach(0, session);
  const subscriptions = [];
  for (let n = 0; n < EXACT; n++) subscriptions.push(`s/${s}/${n}`);
  for (let n = 0; n < WILDCARD; n++) subscriptions.push(`w/${s}/+/${n}`);
  subscriptions.push("fan/#");
  session.handleBytes(
    0,
    encode({
      type: "subscribe",
      packetId: 1,
      subscriptions: subscriptions.map((topicFilter) => ({
        topicFilter,
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      })),
    }, version),
  );
  const event = session.pollEvent();
  if (event?.type !== "subscribe") throw new Error("expected a subscribe event");
  broker.subscribe(0, session, event.packet);
  session.pollTransmit();
  sessions.push(session);
  versions.push(version);
}
while (broker.pollSession() !== undefined);

const payload = new Uint8Array(64).fill(0x61);
const fanTopics = Array.from({ length: 1000 }, (_, i) => `fan/${i}`);
const exactTopics = Array.from({ length: 1000 }, (_, i) => `s/${i % SESSIONS}/${i % EXACT}`);
const wildcardTopics = Array.from({ length: 1000 }, (_, i) => `w/${i % SESSIONS}/x/${i % WILDCARD}`);
/** PUBACK bytes for every packet id, by version, pre-encoded as a client would send them. */
const pubacks: Record<number, Uint8Array[]> = { 4: [], 5: [] };
for (const version of [4, 5] as const) {
  for (let id = 1; id <= 65_535; id++) {
    pubacks[version][id] = encode({ type: "puback", packetId: id, reasonCode: 0 }, version);
  }
}
function puback(version: ProtocolVersion, packetId: number): Uint8Array {
  return pubacks[version][packetId];
}

let now = 1;
let i = 0;
/** Each session numbers its deliveries from 1 and all get every fan-out message, so they stay in step. */
let nextId = 1;

function publish(topic: string, qos: 0 | 1): PublishPacket {
  return qos === 0
    ? { type: "publish", topic, payload, qos, retain: false, dup: false }
    : { type: "publish", topic, payload, qos, retain: false, dup: false, packetId: 1 };
}

function drain(): number {
  let bytes = 0;
  for (let s = broker.pollSession(); s !== undefined; s = broker.pollSession()) {
    bytes += s.pollTransmit()?.length ?? 0;
  }
  return bytes;
}

function fanOut0(): number {
  broker.route(now, undefined, publish(fanTopics[i++ % 1000], 0));
  return drain();
}

function fanOut1(): number {
  broker.route(now, undefined, publish(fanTopics[i++ % 1000], 1));
  const bytes = drain();
  const id = nextId;
  nextId = nextId === 65_535 ? 1 : nextId + 1;
  for (let s = 0; s < SESSIONS; s++) sessions[s].handleBytes(now, puback(versions[s], id));
  now++;
  return bytes;
}

function exact(): number {
  broker.route(now, undefined, publish(exactTopics[i++ % 1000], 0));
  return drain();
}

function wildcard(): number {
  broker.route(now, undefined, publish(wildcardTopics[i++ % 1000], 0));
  return drain();
}

// Check before timing: every case reaches the sessions it should.
const encodesBefore = publishEncodeCounter.count;
if (broker.route(0, undefined, publish("fan/1", 1)) !== SESSIONS) {
  throw new Error("fan-out does not reach 50");
}
drain();
for (let s = 0; s < SESSIONS; s++) sessions[s].handleBytes(0, puback(versions[s], nextId));
nextId++;
const encodes = publishEncodeCounter.count - encodesBefore;
if (broker.route(0, undefined, publish("s/3/7", 0)) !== 1) throw new Error("exact match does not reach 1");
if (broker.route(0, undefined, publish("w/3/x/7", 0)) !== 1) {
  throw new Error("wildcard match does not reach 1");
}
drain();

const options = quick ? { durationMs: 200, warmupMs: 60 } : { durationMs: 1000, warmupMs: 300 };
const cases: [string, () => number, number][] = [
  ["fan-out to 50, QoS 0", fanOut0, SESSIONS],
  ["fan-out to 50, QoS 1 + PUBACK", fanOut1, SESSIONS],
  ["1 exact match of 10,000", exact, 1],
  ["1 wildcard match of 10,000", wildcard, 1],
];
const rates = measureEach(cases.map(([, fn]) => fn), options);

console.log(`Broker routing, ${runtimeName()}: ${SESSIONS} sessions, ${SESSIONS * 200} subscriptions`);
console.log(
  formatTable(
    ["case", "messages/s", "deliveries/s"],
    cases.map((
      [name, , fanOut],
      index,
    ) => [name, formatRate(rates[index]), formatRate(rates[index] * fanOut)]),
  ),
);
console.log(`PUBLISH encodings per fan-out message (2 versions): ${encodes}`);
console.log(`(sink ${sinkValue()})`);
