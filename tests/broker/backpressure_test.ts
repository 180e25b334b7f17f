/**
 * Backpressure before loss: a subscriber that falls behind pauses the reads of the connections feeding it, so
 * their clients slow down instead of the broker dropping QoS 0 messages; a subscriber that stays behind past
 * `maxPublisherPause` counts as slow (its QoS 0 messages dropped, then disconnected) and holds up no one.
 * Real sockets on 127.0.0.1; the publisher is a raw socket that honours TCP backpressure (`write()` false until
 * "drain"), so what the test sees is what a client would.
 */

import assert from "node:assert/strict";
import { Socket } from "node:net";
import { test } from "node:test";
import { Broker } from "../../src/broker/broker.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import { encode } from "../../src/codec/encode.ts";
import { settledWithin, sleep } from "../_helpers.ts";

const PAYLOAD = 16 * 1024;
/** Far more than the kernel's socket buffers on both sides of a subscriber hold (a few MiB each). */
const COUNT = 3000;

async function open(port: number): Promise<Socket> {
  const socket = new Socket();
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.connect(port, "127.0.0.1", () => resolve()));
  return socket;
}

/** Reads packets from `socket` into `packets` until told to stop; CONNACK and SUBACK included. */
function reader(socket: Socket) {
  const decoder = new PacketDecoder({ version: 4 });
  const state = { connacked: false, subacked: false, sequences: [] as number[], ended: false };
  socket.on("data", (data: Uint8Array) => {
    decoder.push(new Uint8Array(data));
    for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
      if (packet.type === "connack") state.connacked = true;
      else if (packet.type === "suback") state.subacked = true;
      else if (packet.type === "publish") {
        const view = new DataView(packet.payload.buffer, packet.payload.byteOffset, 4);
        state.sequences.push(view.getUint32(0));
      }
    }
  });
  socket.on("close", () => state.ended = true);
  return state;
}

async function until(what: () => boolean, ms: number, message: string): Promise<void> {
  for (const end = performance.now() + ms; !what();) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms: ${message}`);
    await sleep(5);
  }
}

/** A 3.1.1 subscriber of `topic` at QoS 0, connected and subscribed. */
async function subscriber(port: number, clientId: string, topic: string) {
  const socket = await open(port);
  const state = reader(socket);
  socket.write(encode({ type: "connect", protocolVersion: 4, clientId, cleanStart: true, keepAlive: 0 }, 4));
  socket.write(encode({
    type: "subscribe",
    packetId: 1,
    subscriptions: [{
      topicFilter: topic,
      qos: 0,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    }],
  }, 4));
  await until(() => state.subacked, 5000, `${clientId} subscribed`);
  return { socket, state };
}

/**
 * A 3.1.1 publisher of `count` QoS 0 messages of `PAYLOAD` bytes to `topic`, numbered in their first 4 bytes,
 * written as fast as its socket takes them: `stalledMs` is the longest it waited for "drain".
 */
async function publisher(port: number, topic: string, count: number) {
  const socket = await open(port);
  const progress = { sent: 0, waiting: false, stalledMs: 0, done: undefined as Promise<void> | undefined };
  // A keep-alive shorter than the pauses: the broker must not take a paused client for a silent one.
  socket.write(
    encode({ type: "connect", protocolVersion: 4, clientId: "pub", cleanStart: true, keepAlive: 1 }, 4),
  );
  progress.done = (async () => {
    for (let i = 0; i < count; i++) {
      const payload = new Uint8Array(PAYLOAD);
      new DataView(payload.buffer).setUint32(0, i);
      const more = socket.write(
        encode({ type: "publish", topic, payload, qos: 0, retain: false, dup: false }, 4),
      );
      progress.sent = i + 1;
      if (!more) {
        const since = performance.now();
        progress.waiting = true;
        await new Promise<void>((resolve, reject) => {
          const closed = () => reject(new Error("the broker closed the publisher"));
          socket.once("close", closed);
          socket.once("drain", () => {
            socket.off("close", closed);
            resolve();
          });
        });
        progress.waiting = false;
        progress.stalledMs = Math.max(progress.stalledMs, performance.now() - since);
      }
    }
  })();
  return { socket, progress };
}

function complete(sequences: number[], count: number): void {
  assert.equal(sequences.length, count, `${sequences.length} of ${count} arrived`);
  for (let i = 0; i < count; i++) {
    if (sequences[i] !== i) assert.fail(`message ${i} arrived as ${sequences[i]}`);
  }
}

test("a subscriber that falls behind pauses its publisher (TCP backpressure) instead of losing QoS 0, and the publisher goes on once it reads again", async () => {
  const log: string[] = [];
  const broker = new Broker({
    sysInterval: 0,
    backpressureBytes: 256 * 1024,
    // A subscriber that stopped reading keeps its publisher paused as long as this test needs.
    maxPublisherPause: 60_000,
    maxWriteStall: 60_000,
    // So high that only backpressure can keep the broker from taking all 48 MiB.
    maxOutgoingBytes: 256 * 1024 * 1024,
    log: (_level, message) => log.push(message),
  });
  const { port } = await broker.listen({ port: 0 });
  const sub = await subscriber(port, "sub", "bp");
  sub.socket.pause();
  const pub = await publisher(port, "bp", COUNT);
  try {
    // The publisher stalls: its socket stays full for a good while, well before all is written.
    await until(() => pub.progress.waiting, 10_000, "the publisher's socket filled up");
    // Past 1.5 times the publisher's keep-alive of 1 s.
    await sleep(2000);
    assert.ok(pub.progress.waiting, "the publisher is still waiting for its socket to drain");
    const stalledAt = pub.progress.sent;
    assert.ok(stalledAt < COUNT / 2, `the publisher stalled after ${stalledAt} of ${COUNT} messages`);
    assert.equal(broker.sysValues().get("$SYS/broker/publish/messages/dropped"), "0");
    // Reading again lets everything through: nothing was dropped.
    sub.socket.resume();
    await settledWithin(pub.progress.done, 30_000);
    await until(() => sub.state.sequences.length >= COUNT, 30_000, "every message arrived");
    complete(sub.state.sequences, COUNT);
    assert.equal(broker.sysValues().get("$SYS/broker/publish/messages/dropped"), "0");
    assert.ok(!log.some((m) => /is behind|slow consumer/.test(m)), log.join("\n"));
  } finally {
    pub.socket.destroy();
    sub.socket.destroy();
    await broker.close();
  }
});

test("a subscriber that stays behind past maxPublisherPause loses its QoS 0 messages and is disconnected; the publisher and the other subscribers go on without loss", async () => {
  const log: string[] = [];
  const broker = new Broker({
    sysInterval: 0,
    backpressureBytes: 256 * 1024,
    maxPublisherPause: 300,
    slowConsumerTimeout: 1000,
    log: (_level, message) => log.push(message),
  });
  const { port } = await broker.listen({ port: 0 });
  const stuck = await subscriber(port, "stuck", "bp");
  const good = await Promise.all([subscriber(port, "good-1", "bp"), subscriber(port, "good-2", "bp")]);
  stuck.socket.pause();
  const pub = await publisher(port, "bp", COUNT);
  try {
    // Without the bound the publisher would wait for the stuck subscriber for good.
    await settledWithin(pub.progress.done, 30_000);
    for (const { state } of good) {
      await until(() => state.sequences.length >= COUNT, 30_000, "the good subscribers got every message");
      complete(state.sequences, COUNT);
    }
    // It was held up at most about maxPublisherPause at a time (a loaded machine gets generous slack).
    assert.ok(pub.progress.stalledMs < 5000, `the publisher waited ${pub.progress.stalledMs} ms at most`);
    await until(
      () => log.some((m) => /slow consumer "stuck"/.test(m)),
      5000,
      "the stuck one was disconnected",
    );
    assert.ok(log.some((m) => /Client "stuck" is behind/.test(m)), log.join("\n"));
    assert.ok(!log.some((m) => /"good-\d" is behind|slow consumer "good/.test(m)), log.join("\n"));
    const dropped = Number(broker.sysValues().get("$SYS/broker/publish/messages/dropped"));
    assert.ok(dropped > 0, `${dropped} QoS 0 messages dropped for the stuck subscriber`);
    assert.ok(dropped < COUNT, `${dropped} dropped: the stuck one got what its buffers took`);
    assert.match(broker.metrics(), /^mqtt_slow_consumer_disconnects_total 1$/m);
  } finally {
    pub.socket.destroy();
    stuck.socket.destroy();
    for (const { socket } of good) socket.destroy();
    await broker.close();
  }
});

test("a subscriber that stops reading holds its publisher up for about maxWriteStall, not maxPublisherPause", async () => {
  const log: string[] = [];
  const broker = new Broker({
    sysInterval: 0,
    backpressureBytes: 256 * 1024,
    // Without the stall rule the publisher would wait this long.
    maxPublisherPause: 60_000,
    log: (_level, message) => log.push(message),
  });
  const { port } = await broker.listen({ port: 0 });
  const stuck = await subscriber(port, "stuck", "bp");
  const good = await subscriber(port, "good", "bp");
  stuck.socket.pause();
  const pub = await publisher(port, "bp", COUNT);
  try {
    await settledWithin(pub.progress.done, 30_000);
    await until(() => good.state.sequences.length >= COUNT, 30_000, "the good subscriber got every message");
    complete(good.state.sequences, COUNT);
    assert.ok(pub.progress.stalledMs < 5000, `the publisher waited ${pub.progress.stalledMs} ms at most`);
    assert.ok(log.some((m) => /Client "stuck" is behind/.test(m)), log.join("\n"));
  } finally {
    pub.socket.destroy();
    stuck.socket.destroy();
    good.socket.destroy();
    await broker.close();
  }
});

test("a subscriber that reads slowly but keeps reading holds its publisher to its pace and loses nothing", async () => {
  const log: string[] = [];
  const broker = new Broker({
    sysInterval: 0,
    backpressureBytes: 256 * 1024,
    maxPublisherPause: 60_000,
    // Its writes complete in bursts, a third of the socket's send buffer at a time (about every 0.5 s here).
    maxWriteStall: 3000,
    log: (_level, message) => log.push(message),
  });
  const { port } = await broker.listen({ port: 0 });
  const slow = await subscriber(port, "slow", "bp");
  const count = 400;
  // Reads about 64 KiB every 20 ms (3 MB/s, far below what the publisher sends): slowly, but it goes on.
  let burst = 0;
  let reading = true;
  slow.socket.on("data", (data: Uint8Array) => {
    burst += data.length;
    if (burst < 65_536 || !reading) return;
    burst = 0;
    slow.socket.pause();
    setTimeout(() => slow.socket.resume(), 20);
  });
  const pub = await publisher(port, "bp", count);
  try {
    await settledWithin(pub.progress.done, 60_000);
    await until(() => slow.state.sequences.length >= count, 60_000, "every message arrived");
    complete(slow.state.sequences, count);
    assert.equal(broker.sysValues().get("$SYS/broker/publish/messages/dropped"), "0");
    assert.ok(!log.some((m) => /is behind|slow consumer/.test(m)), log.join("\n"));
    assert.ok(pub.progress.stalledMs > 0, "the publisher was slowed down");
  } finally {
    reading = false;
    pub.socket.destroy();
    slow.socket.destroy();
    await broker.close();
  }
});

/**
 * A connection whose bytes the test hands over by hand, on the callback path (`direct`): it honours pause and
 * resume, and its writes are taken only when `drain()` says so.
 */
class HandTransport {
  readonly readable = new ReadableStream<Uint8Array>();
  readonly writable = new WritableStream<Uint8Array>();
  readonly written: Uint8Array[] = [];
  paused = false;
  closed = false;
  /** Writes waiting to be taken; `undefined` while writes are taken at once. */
  waiting: (() => void)[] | undefined;
  #sink: { data(chunk: Uint8Array): void; end(error?: unknown): void } | undefined;
  #queued: Uint8Array[] = [];
  /** Delay between a resume and the first chunk read after it, as on a busy machine. */
  resumeLagMs = 0;
  readonly direct = {
    start: (sink: { data(chunk: Uint8Array): void; end(error?: unknown): void }) => this.#sink = sink,
    write: (chunk: Uint8Array) => {
      if (this.closed) throw new Error("closed");
      this.written.push(chunk);
      if (this.waiting === undefined) return undefined;
      return new Promise<void>((resolve) => (this.waiting as (() => void)[]).push(resolve));
    },
    end: () => {},
    pause: () => this.paused = true,
    resume: () => {
      if (!this.paused) return;
      this.paused = false;
      setTimeout(() => this.#flush(), this.resumeLagMs);
    },
  };
  /** The client sends bytes: read at once unless paused. */
  send(bytes: Uint8Array): void {
    this.#queued.push(bytes);
    if (!this.paused) this.#flush();
  }
  /** Takes every waiting write, and the later ones at once. */
  drain(): void {
    const waiting = this.waiting ?? [];
    this.waiting = undefined;
    for (const resolve of waiting) resolve();
  }
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.#sink?.end();
    }
    return Promise.resolve();
  }
  #flush(): void {
    while (!this.paused && this.#queued.length > 0 && !this.closed) {
      this.#sink?.data(this.#queued.shift() as Uint8Array);
    }
  }
}

test("a publisher paused longer than its keep-alive is not closed as silent when what it sent comes in late after the pause", async () => {
  const log: string[] = [];
  const broker = new Broker({
    sysInterval: 0,
    backpressureBytes: 64 * 1024,
    maxPublisherPause: 60_000,
    maxWriteStall: 60_000,
    log: (_level, message) => log.push(message),
  });
  const sub = new HandTransport();
  const pub = new HandTransport();
  void broker.handle(sub);
  void broker.handle(pub);
  try {
    sub.send(
      encode({ type: "connect", protocolVersion: 4, clientId: "sub", cleanStart: true, keepAlive: 0 }, 4),
    );
    sub.send(encode({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "k",
        qos: 0,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    }, 4));
    await sleep(50);
    // The subscriber stops taking what is written to it; the publisher (keep-alive 1 s) sends 32 KiB messages.
    sub.waiting = [];
    pub.resumeLagMs = 400;
    pub.send(
      encode({ type: "connect", protocolVersion: 4, clientId: "pub", cleanStart: true, keepAlive: 1 }, 4),
    );
    const payload = new Uint8Array(32 * 1024);
    for (let i = 0; i < 20; i++) {
      pub.send(encode({ type: "publish", topic: "k", payload, qos: 0, retain: false, dup: false }, 4));
    }
    assert.ok(pub.paused, "the publisher's reads are paused");
    // Paused for twice its keep-alive: what it sends meanwhile waits unread.
    await sleep(2000);
    assert.ok(pub.paused && !pub.closed);
    // The subscriber takes everything; the publisher's reads go on, its bytes come in 400 ms later.
    sub.drain();
    await sleep(1500);
    assert.ok(!pub.closed, log.join("\n"));
    assert.ok(!log.some((m) => m.includes("Cannot keep the connection")), log.join("\n"));
  } finally {
    await broker.close();
  }
});
