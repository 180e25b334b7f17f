/**
 * A slow node: a subscriber on node B stops reading its socket while a publisher on node A sends QoS 0 and QoS 1
 * messages it subscribed to. Node B treats it by the single broker's rules: it counts as slow once its socket
 * took nothing for `maxWriteStall`, its QoS 0 messages are dropped and counted, its QoS 1 messages beyond 64
 * times its queue's bound are dropped and counted (no publisher waits for what another node sent), and it is
 * disconnected after `slowConsumerTimeout`. No one else waits for it: the publisher on A gets every PUBACK, and
 * the healthy subscribers on A and on B every QoS 1 message, about as fast as without it.
 *
 * Two brokers of this process, each with its own connection to a nats-server the test starts; every client is a
 * raw socket on 127.0.0.1 that honours TCP backpressure (`write()` false until "drain"), so what the test sees is
 * what a client would.
 */

import assert from "node:assert/strict";
import { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { Broker } from "../../src/broker/broker.ts";
import { natsCluster } from "../../src/cluster/mod.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import { encode } from "../../src/codec/encode.ts";
import type { Packet } from "../../src/codec/packet.ts";
import { sleep, within } from "../_helpers.ts";
import { type NatsServer, natsSkipReason, startNats } from "./_nats.ts";

const skip = await natsSkipReason();
if (skip !== undefined) console.log(skip);

/** QoS 1 messages per run, each acknowledged; their first 4 bytes number them. */
const QOS1_COUNT = 3000;
const QOS1_PAYLOAD = 1024;
/** QoS 0 messages per run, one after each QoS 1 message: far more than a socket that is not read takes. */
const QOS0_PAYLOAD = 8 * 1024;
/** QoS 1 messages the publisher has in flight at most. */
const WINDOW = 100;

/** A raw MQTT 5 connection: every packet decoded goes to `onPacket`; writes wait for "drain" when told to. */
class Peer {
  readonly socket: Socket;
  /** Set once the socket closed. */
  closed = false;
  readonly ended: Promise<void>;
  onPacket: (packet: Packet) => void = () => {};
  readonly #decoder = new PacketDecoder({ version: 5 });

  constructor(socket: Socket) {
    this.socket = socket;
    this.ended = new Promise((resolve) =>
      socket.once("close", () => {
        this.closed = true;
        resolve();
      })
    );
    socket.on("data", (data: Uint8Array) => {
      this.#decoder.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      for (let packet = this.#decoder.next(); packet !== undefined; packet = this.#decoder.next()) {
        this.onPacket(packet);
      }
    });
  }

  /** Writes a packet; resolves once the socket takes more (at once unless its buffer is full). */
  send(packet: Packet): Promise<void> {
    if (this.socket.write(encode(packet, 5))) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const closed = () => reject(new Error("the broker closed the connection"));
      this.socket.once("close", closed);
      this.socket.once("drain", () => {
        this.socket.off("close", closed);
        resolve();
      });
    });
  }

  /** Writes a packet without waiting for the socket to take more (acknowledgements: the socket buffers them). */
  post(packet: Packet): void {
    this.socket.write(encode(packet, 5));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Connects to 127.0.0.1:`port` as `clientId` (MQTT 5, clean start, no keep-alive, with a Receive Maximum if
 * given) and waits for the CONNACK.
 */
async function connectPeer(port: number, clientId: string, receiveMaximum?: number): Promise<Peer> {
  const socket = new Socket();
  socket.on("error", () => {});
  await within(
    new Promise<void>((resolve) => socket.connect(port, "127.0.0.1", () => resolve())),
    5000,
    `connecting "${clientId}"`,
  );
  const peer = new Peer(socket);
  const connack = new Promise<Packet>((resolve) => peer.onPacket = resolve);
  await peer.send({
    type: "connect",
    protocolVersion: 5,
    clientId,
    cleanStart: true,
    keepAlive: 0,
    ...(receiveMaximum === undefined ? {} : { properties: { receiveMaximum } }),
  });
  const packet = await within(connack, 5000, `the CONNACK of "${clientId}"`);
  assert(packet.type === "connack" && packet.reasonCode === 0, `"${clientId}" connected`);
  return peer;
}

/** Subscribes `slow/#` at QoS 1 and waits for the SUBACK; packets after it go to `onPacket` as set then. */
async function subscribeSlow(peer: Peer): Promise<void> {
  const suback = new Promise<Packet>((resolve) => peer.onPacket = resolve);
  await peer.send({
    type: "subscribe",
    packetId: 1,
    subscriptions: [{
      topicFilter: "slow/#",
      qos: 1,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    }],
  });
  const packet = await within(suback, 5000, "the SUBACK");
  assert(packet.type === "suback");
  assert.deepEqual(packet.reasonCodes, [1]);
}

/** A subscriber of `slow/#` that reads and acknowledges everything, and notes what it got and when. */
interface Healthy {
  readonly peer: Peer;
  /** Whether each QoS 1 message of the run arrived, by number. */
  readonly qos1: boolean[];
  /** How many QoS 1 messages of the run arrived (each counted once). */
  qos1Count: number;
  qos0Count: number;
  /** When the last QoS 1 message of the run arrived (`performance.now()`). */
  completedAt: number;
  /** Whether the message published after the run arrived. */
  gotAfter: boolean;
}

async function healthy(port: number, clientId: string): Promise<Healthy> {
  const peer = await connectPeer(port, clientId);
  await subscribeSlow(peer);
  const state: Healthy = {
    peer,
    qos1: new Array(QOS1_COUNT).fill(false),
    qos1Count: 0,
    qos0Count: 0,
    completedAt: 0,
    gotAfter: false,
  };
  peer.onPacket = (packet) => {
    if (packet.type !== "publish") return;
    if (packet.qos === 0) {
      state.qos0Count++;
      return;
    }
    peer.post({ type: "puback", packetId: packet.packetId as number, reasonCode: 0 });
    if (packet.topic === "slow/after") {
      state.gotAfter = true;
      return;
    }
    const n = new DataView(packet.payload.buffer, packet.payload.byteOffset, 4).getUint32(0);
    if (n < QOS1_COUNT && !state.qos1[n]) {
      state.qos1[n] = true;
      if (++state.qos1Count === QOS1_COUNT) state.completedAt = performance.now();
    }
  };
  return state;
}

/** A numbered payload of `size` bytes. */
function numbered(n: number, size: number): Uint8Array {
  const payload = new Uint8Array(size);
  new DataView(payload.buffer).setUint32(0, n);
  return payload;
}

/**
 * Publishes `QOS1_COUNT` QoS 1 messages on `slow/q1`, at most `WINDOW` unacknowledged, each followed by a QoS 0
 * one on `slow/q0`, and waits for every PUBACK (each must be a success).
 *
 * @returns When the last PUBACK came (`performance.now()`).
 */
async function publishLoad(peer: Peer, ms: number): Promise<number> {
  let inFlight = 0;
  let acked = 0;
  const failures: number[] = [];
  let wake: (() => void) | undefined;
  peer.onPacket = (packet) => {
    if (packet.type !== "puback") return;
    if (packet.reasonCode !== 0) failures.push(packet.reasonCode);
    inFlight--;
    acked++;
    wake?.();
  };
  const waitForAck = () => new Promise<void>((resolve) => wake = resolve);
  const run = (async () => {
    for (let n = 0; n < QOS1_COUNT; n++) {
      while (inFlight >= WINDOW) await waitForAck();
      inFlight++;
      await peer.send({
        type: "publish",
        topic: "slow/q1",
        payload: numbered(n, QOS1_PAYLOAD),
        qos: 1,
        packetId: n + 1,
        retain: false,
        dup: false,
      });
      await peer.send({
        type: "publish",
        topic: "slow/q0",
        payload: numbered(n, QOS0_PAYLOAD),
        qos: 0,
        retain: false,
        dup: false,
      });
    }
    while (acked < QOS1_COUNT) await waitForAck();
  })();
  run.catch(() => {});
  try {
    await within(run, ms, `${QOS1_COUNT} PUBACKs`);
  } catch (error) {
    throw new Error(`${(error as Error).message} (${acked} came)`, { cause: error });
  }
  assert.deepEqual(failures, [], "every PUBACK is a success");
  return performance.now();
}

/** Waits until `check` holds, for at most `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  for (const end = performance.now() + ms; !check();) {
    if (performance.now() > end) throw new Error(`Timed out after ${Math.round(ms)} ms: ${what}`);
    await sleep(10);
  }
}

function dropped(broker: Broker): number {
  return Number(broker.sysValues().get("$SYS/broker/publish/messages/dropped"));
}

/** What one run measured, in ms from the publisher's start. */
interface Run {
  publisher: number;
  healthyA: number;
  healthyB: number;
}

describe("a slow node", { skip }, () => {
  let server: NatsServer | undefined;
  const brokers: Broker[] = [];
  const logs: string[][] = [[], []];
  const peers: Peer[] = [];
  let portA = 0;
  let portB = 0;

  before(async () => {
    server = await startNats();
    assert(server !== undefined);
    for (const [i, node] of (["a", "b"] as const).entries()) {
      const broker = new Broker({
        cluster: await natsCluster({ servers: server.url, node, heartbeatMs: 200, reconnectWaitMs: 200 }),
        sysInterval: 0,
        // The single broker's rules with small limits (as in tests/broker/backpressure_test.ts): the stuck
        // subscriber counts as slow once its socket took nothing for maxWriteStall (100 ms by default), and is
        // disconnected when it stayed so for slowConsumerTimeout ...
        backpressureBytes: 256 * 1024,
        maxPublisherPause: 300,
        slowConsumerTimeout: 2000,
        // ... by those rules alone: not for the size of its backlog (16 MiB by default).
        maxOutgoingBytes: 256 * 1024 * 1024,
        // What another node sends is held back for no one: a connected session with more than 64 times this
        // many queued (1,280; by default 64,000) loses what comes on, counted as dropped.
        ...(node === "b" ? { maxQueuedMessages: 20 } : {}),
        log: (_level, message) => logs[i].push(message),
      });
      const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
      if (node === "a") portA = port;
      else portB = port;
      brokers.push(broker);
    }
  });

  after(async () => {
    for (const peer of peers) peer.destroy();
    await Promise.all(brokers.map((broker) => broker.close()));
    await server?.stop();
  });

  /**
   * One run of the load, with healthy subscribers on both nodes (named after `name`); with `limits`, each
   * measure fails once it takes longer than its limit.
   */
  async function run(name: string, limits?: Run): Promise<Run & { subscribers: Healthy[] }> {
    const subscribers = [
      await healthy(portA, `${name}-healthy-a`),
      await healthy(portB, `${name}-healthy-b`),
    ];
    peers.push(...subscribers.map((s) => s.peer));
    const publisher = await connectPeer(portA, `${name}-pub`);
    peers.push(publisher);
    const startedAt = performance.now();
    const limit = (key: keyof Run) => Math.max(0, startedAt + (limits?.[key] ?? 30_000) - performance.now());
    const doneAt = await publishLoad(publisher, limit("publisher"));
    for (const [i, s] of subscribers.entries()) {
      const key = i === 0 ? "healthyA" : "healthyB";
      await until(
        () => s.qos1Count === QOS1_COUNT,
        limit(key),
        `${name}: every QoS 1 message at the healthy subscriber on node ${"ab"[i]} within ` +
          `${Math.round(limits?.[key] ?? 30_000)} ms of the start, ${s.qos1Count} so far`,
      );
    }
    return {
      subscribers,
      publisher: doneAt - startedAt,
      healthyA: subscribers[0].completedAt - startedAt,
      healthyB: subscribers[1].completedAt - startedAt,
    };
  }

  it(
    "a stuck subscriber on B holds up neither the publisher on A nor the healthy subscribers; B treats it as one broker would",
    { timeout: 60_000 },
    async () => {
      const b = brokers[1];
      const baseline = await run("base");
      // Across nodes a publisher's QoS 0 messages trail its QoS 1 messages (each waits until the QoS 1 message
      // before it was stored): let them arrive (at most once) before the same load goes again, for new
      // healthy subscribers and the stuck one.
      await until(() => baseline.subscribers.every((s) => s.qos0Count === QOS1_COUNT), 2000, "QoS 0")
        .catch(() => {});
      for (const s of baseline.subscribers) s.peer.destroy();
      assert.equal(b.machine.stats.dropped, 0, "no QoS 1 message dropped without the stuck subscriber");
      const droppedBefore = dropped(b);

      // A subscriber on B that subscribes at QoS 1, then stops reading its socket, so it acknowledges nothing
      // either: with a Receive Maximum of 10 (as small clients have), its QoS 1 messages queue in its session
      // from the 11th on, whenever it counts as slow.
      const stuck = await connectPeer(portB, "stuck", 10);
      peers.push(stuck);
      await subscribeSlow(stuck);
      stuck.socket.pause();

      // (1) The publisher on A gets every PUBACK, and (2) the healthy subscribers on A and B every QoS 1
      // message, about as fast as without the stuck subscriber: a sanity bound, not a benchmark.
      const bound = (ms: number) => 5 * ms + 2000;
      console.log(`baseline (ms): ${JSON.stringify(baseline, ["publisher", "healthyA", "healthyB"])}`);
      const slow = await run("slow", {
        publisher: bound(baseline.publisher),
        healthyA: bound(baseline.healthyA),
        healthyB: bound(baseline.healthyB),
      });
      console.log(
        `with the stuck subscriber (ms): ${JSON.stringify(slow, ["publisher", "healthyA", "healthyB"])}`,
      );

      // (3) B treats the stuck subscriber as one broker would: it counts as slow (its socket took nothing), its
      // QoS 0 messages are dropped, and it is disconnected once it stayed so for slowConsumerTimeout.
      const logB = () => logs[1].join("\n");
      await until(
        () => logs[1].some((m) => /Client "stuck" is behind/.test(m)),
        5000,
        `"stuck" behind\n${logB()}`,
      );
      await until(
        () => logs[1].some((m) => /Disconnecting slow consumer "stuck"/.test(m)),
        5000,
        `"stuck" disconnected\n${logB()}`,
      );
      // Its socket was closed: once it reads again, it gets what its buffers held, then the end.
      stuck.socket.resume();
      await within(stuck.ended, 10_000, "the stuck subscriber's socket closed");
      // B's $SYS counts its QoS 0 messages dropped while it was behind, and its QoS 1 messages past 64 times
      // its queue's bound (the machine's `dropped`; the rest waited in its session until it was disconnected).
      const qos1Dropped = b.machine.stats.dropped;
      const qos0Dropped = dropped(b) - droppedBefore - qos1Dropped;
      assert(qos0Dropped > 0, `QoS 0 messages dropped for the stuck subscriber: ${qos0Dropped}\n${logB()}`);
      assert(qos1Dropped > 0, `QoS 1 messages dropped for the stuck subscriber: ${qos1Dropped}\n${logB()}`);

      // The healthy ones were not disconnected, and are still served: a message published now reaches both.
      assert(!logs.flat().some((m) => /slow consumer "(base|slow)-healthy/.test(m)), logs.flat().join("\n"));
      const late = await connectPeer(portA, "late-pub");
      peers.push(late);
      const puback = new Promise<Packet>((resolve) => late.onPacket = resolve);
      await late.send({
        type: "publish",
        topic: "slow/after",
        payload: numbered(0, 16),
        qos: 1,
        packetId: 1,
        retain: false,
        dup: false,
      });
      const ack = await within(puback, 5000, "the PUBACK of the message after");
      assert(ack.type === "puback" && ack.reasonCode === 0);
      for (const s of slow.subscribers) {
        await until(() => s.peer.closed || s.gotAfter, 5000, "the message after at every healthy subscriber");
        assert(!s.peer.closed);
      }
      console.log(
        logs.flat().filter((m) => /"stuck"|behind|slow consumer|[Cc]luster engine/.test(m)).join("\n"),
      );
      console.log(
        `B dropped ${qos0Dropped} QoS 0 and ${qos1Dropped} QoS 1 messages for the stuck subscriber ($SYS ` +
          `${dropped(b)}, A's ${dropped(brokers[0])}); QoS 0 at the healthy subscribers (A, B): baseline ` +
          `${baseline.subscribers.map((s) => s.qos0Count).join(", ")}, with the stuck one ` +
          slow.subscribers.map((s) => s.qos0Count).join(", "),
      );
    },
  );
});
