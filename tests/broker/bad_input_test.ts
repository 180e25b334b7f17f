/**
 * Bad input on every listener type: garbage, malformed and oversized packets, a flood of CONNECTs, sockets
 * that connect and say nothing, clients that stop talking. The broker logs each, closes those connections and
 * keeps serving a well-behaved client throughout.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { Broker, type LogLevel } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import type { MqttClient } from "../../src/client/mqtt_client.ts";
import type { Subscription } from "../../src/client/subscription.ts";
import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import { connectWebSocket } from "../../src/transport/websocket.ts";
import { runtimeNet } from "../../src/runtime/mod.ts";
import { settledWithin } from "../_helpers.ts";

/** Opens a raw TCP socket, writes `bytes`, and resolves when the broker closes it (or after `ms`). */
function raw(
  port: number,
  bytes: Uint8Array[],
  ms = 3000,
): Promise<{ closedByBroker: boolean; received: number }> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let received = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closedByBroker: false, received });
    }, ms);
    socket.on("data", (d) => received += d.length);
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ closedByBroker: true, received });
    });
    socket.connect(port, "127.0.0.1", () => {
      for (const chunk of bytes) socket.write(chunk);
    });
  });
}

async function roundTrip(client: MqttClient, subscription: Subscription, text: string): Promise<void> {
  await client.publish("health/check", text, { qos: 1 });
  for await (const message of subscription) {
    if (message.text() === text) return;
  }
  throw new Error("The subscription ended");
}

test("the broker survives bad input on TCP and WebSocket and keeps serving a good client", async () => {
  const log: [LogLevel, string][] = [];
  const broker = new Broker({
    connectTimeoutMs: 300,
    maximumPacketSize: 4096,
    maxConnections: 60,
    log: (level, message) => log.push([level, message]),
  });
  const tcp = await broker.listen({ port: 0 });
  const ws = await broker.listen({ port: 0, websocket: true });
  const good = await connect(`mqtt://127.0.0.1:${tcp.port}`, { reconnect: false, clientId: "good" });
  const subscription = await good.subscribe("health/#", { qos: 1 });
  await roundTrip(good, subscription, "before");

  const connectBytes = (id: string, keepAlive = 0) =>
    encode({ type: "connect", protocolVersion: 4, clientId: id, cleanStart: true, keepAlive }, 4);

  // Garbage, a packet that is not CONNECT first, a malformed CONNECT, an oversized PUBLISH.
  const cases: [string, Uint8Array[]][] = [
    ["garbage", [new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n")]],
    ["not CONNECT first", [encode({ type: "pingreq" }, 4)]],
    ["reserved CONNECT flag", [Uint8Array.of(0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x03, 0, 0, 0, 0)]],
    ["oversized", [connectBytes("big"), Uint8Array.of(0x30, 0xff, 0xff, 0x03)]],
    ["remaining length over 4 bytes", [
      connectBytes("long"),
      Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01),
    ]],
    ["QoS 3", [connectBytes("q3"), Uint8Array.of(0x36, 3, 0, 1, 0x61)]],
  ];
  for (const [name, bytes] of cases) {
    const result = await raw(tcp.port, bytes);
    assert.equal(result.closedByBroker, true, `the broker should close the "${name}" connection`);
    await roundTrip(good, subscription, `after ${name}`);
  }

  // Half-open sockets that never send CONNECT are closed after the connect timeout.
  const silent = await Promise.all(Array.from({ length: 10 }, () => raw(tcp.port, [], 3000)));
  assert.ok(silent.every((r) => r.closedByBroker), "silent sockets are closed");
  // A client that stops talking is closed after 1.5 × its keep-alive.
  const quiet = await raw(tcp.port, [connectBytes("quiet", 1)], 4000);
  assert.equal(quiet.closedByBroker, true);
  assert.ok(quiet.received >= 4, "it got its CONNACK first");
  await roundTrip(good, subscription, "after half-open");

  // A flood of CONNECTs: 100 connections at once against a limit of 60; those over it are closed at once, the
  // others are dropped by their side after a second; the good client stays.
  const flood = await Promise.all(
    Array.from({ length: 100 }, (_, i) => raw(tcp.port, [connectBytes(`flood-${i}`)], 1000)),
  );
  const refused = flood.filter((r) => r.closedByBroker && r.received === 0).length;
  assert.ok(refused >= 40, `${refused} of 100 were refused at the limit`);
  assert.ok(log.some(([, message]) => /Refused a connection/.test(message)), "the limit was hit and logged");
  await new Promise((resolve) => setTimeout(resolve, 100));
  await roundTrip(good, subscription, "after the flood");

  // Garbage over WebSocket: a malformed packet in a binary frame.
  const socket = await connectWebSocket(`ws://127.0.0.1:${ws.port}/mqtt`);
  const writer = socket.writable.getWriter();
  await writer.write(Uint8Array.of(0x10, 0xff, 0xff, 0xff, 0xff, 0x7f));
  const reader = socket.readable.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) { /* until the broker closes it */ }
  await roundTrip(good, subscription, "after WebSocket garbage");

  assert.ok(
    log.some(([, message]) => /closed: .*MQTT-|closed: /.test(message)),
    "protocol errors are logged",
  );
  assert.equal(good.connected, true);
  await good.close();
  await broker.close();
});

/** A raw 3.1.1 client that subscribes to `filters` (topic, QoS) and then reads only when told. */
async function rawSubscriber(port: number, clientId: string, filters: [string, 0 | 1][]): Promise<Socket> {
  const socket = new Socket();
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.connect(port, "127.0.0.1", () => resolve()));
  socket.write(encode({ type: "connect", protocolVersion: 4, clientId, cleanStart: true, keepAlive: 0 }, 4));
  socket.write(
    encode({
      type: "subscribe",
      packetId: 1,
      subscriptions: filters.map(([topicFilter, qos]) => ({
        topicFilter,
        qos,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0 as const,
      })),
    }, 4),
  );
  // CONNACK (4 bytes) and SUBACK (4 + one byte per filter).
  let seen = 0;
  await new Promise<void>((resolve) => {
    const onData = (data: Uint8Array) => {
      seen += data.length;
      if (seen >= 8 + filters.length) {
        socket.off("data", onData);
        resolve();
      }
    };
    socket.on("data", onData);
  });
  return socket;
}

async function waitFor(what: () => boolean, ms: number): Promise<void> {
  for (const end = performance.now() + ms; !what() && performance.now() < end;) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("a subscriber that stops reading loses its QoS 0 messages and is disconnected; the others keep receiving", async () => {
  const log: string[] = [];
  const broker = new Broker({
    maxOutgoingBytes: 1024 * 1024,
    slowConsumerTimeout: 500,
    sysInterval: 0,
    log: (_l, m) => log.push(m),
  });
  const { port } = await broker.listen({ port: 0 });
  const good = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false, clientId: "good" });
  const slow = await rawSubscriber(port, "slow", [["flood", 0]]);
  try {
    const goodSubscription = await good.subscribe("flood", { qos: 0 });
    slow.pause();
    const payload = new Uint8Array(16 * 1024);
    let received = 0;
    const reading = (async () => {
      for await (const _message of goodSubscription) if (++received === 2000) return;
    })();
    for (let i = 0; i < 2000; i++) {
      broker.publish("flood", payload);
      // A publisher at the pace of the good subscriber (never more than 512 KiB ahead of it): what the slow one
      // does must not slow it down or cost it a message.
      while (i - received >= 32 && good.connected) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await reading;
    assert.equal(received, 2000);
    assert.ok(log.some((m) => /Client "slow" is behind by \d+ bytes/.test(m)), "the slow one was behind");
    // A paused socket does not see its FIN, so the broker's log tells.
    await waitFor(() => log.some((m) => /slow consumer "slow"/.test(m)), 3000);
    assert.ok(log.some((m) => /slow consumer "slow"/.test(m)), "the slow consumer was disconnected");
    assert.ok(log.some((m) => /Client "slow" \(127\.0\.0\.1:\d+\) closed/.test(m)));
    assert.ok(!log.some((m) => /slow consumer "good"|Client "good" is behind/.test(m)), log.join("\n"));
    assert.equal(good.connected, true);
    // Most of the 2000 QoS 0 messages for the slow one were dropped, and counted.
    const dropped = Number(broker.sysValues().get("$SYS/broker/publish/messages/dropped"));
    assert.ok(dropped > 1000 && dropped < 2000, `${dropped} dropped`);
  } finally {
    slow.destroy();
    await good.close();
    await broker.close();
  }
});

test("a subscriber that falls behind and catches up keeps its connection and every QoS 1 message", async () => {
  const log: string[] = [];
  const broker = new Broker({
    maxOutgoingBytes: 1024 * 1024,
    slowConsumerTimeout: 10_000,
    sysInterval: 0,
    log: (_l, m) => log.push(m),
  });
  const { port } = await broker.listen({ port: 0 });
  const lagging = await rawSubscriber(port, "lagging", [["bulk", 0], ["important", 1]]);
  try {
    lagging.pause();
    const payload = new Uint8Array(16 * 1024);
    // Far more than the kernel's socket buffers take, in turns, as a publisher's socket would deliver it.
    for (let i = 0; i < 1000; i++) {
      broker.publish("bulk", payload);
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await waitFor(() => log.some((m) => /Client "lagging" is behind/.test(m)), 3000);
    assert.ok(log.some((m) => /Client "lagging" is behind/.test(m)), log.join("\n"));
    for (let i = 0; i < 5; i++) broker.publish("important", `message ${i}`, { qos: 1 });
    // Read everything the broker sends, and decode it.
    const decoder = new PacketDecoder({ version: 4 });
    const topics: string[] = [];
    const texts: string[] = [];
    lagging.on("data", (data: Uint8Array) => {
      decoder.push(data);
      for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
        if (packet.type !== "publish") continue;
        topics.push(packet.topic);
        if (packet.topic === "important") {
          texts.push(new TextDecoder().decode(packet.payload));
          lagging.write(encode({ type: "puback", packetId: packet.packetId!, reasonCode: 0 }, 4));
        }
      }
    });
    lagging.resume();
    await waitFor(() => texts.length === 5, 5000);
    assert.deepEqual(texts, ["message 0", "message 1", "message 2", "message 3", "message 4"]);
    const bulk = topics.filter((t) => t === "bulk").length;
    assert.ok(bulk > 0 && bulk < 1000, `${bulk} of 1000 QoS 0 messages arrived`);
    // The QoS 1 messages waited for the backlog and came after what was already written.
    assert.equal(topics.indexOf("important"), bulk);
    assert.ok(log.some((m) => /Client "lagging" caught up/.test(m)), log.join("\n"));
    assert.ok(!log.some((m) => /slow consumer "lagging"/.test(m)));
    assert.ok(!lagging.destroyed);
  } finally {
    lagging.destroy();
    await broker.close();
  }
});

test("a client that keeps sending after the broker ended its connection still reads the DISCONNECT and its reason, not a reset", async () => {
  const broker = new Broker({ sysInterval: 0 });
  const { port } = await broker.listen({ port: 0 });
  const socket = new Socket();
  try {
    const chunks: Uint8Array[] = [];
    let failure: Error | undefined;
    const ended = new Promise<void>((resolve) => {
      socket.on("data", (chunk: Uint8Array) => chunks.push(new Uint8Array(chunk)));
      socket.on("error", (error) => failure = error);
      socket.on("close", () => resolve());
    });
    await new Promise<void>((resolve) => socket.connect(port, "127.0.0.1", resolve));
    // Read nothing until the end: what the broker sent waits in this socket's buffer.
    socket.pause();
    const connect = encode({
      type: "connect",
      protocolVersion: 5,
      clientId: "c",
      cleanStart: true,
      keepAlive: 0,
    }, 5);
    socket.write(connect);
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.write(connect); // a second CONNECT: DISCONNECT 0x82, and the broker ends the connection
    // The client did not read it yet and goes on sending; a socket closed at once answers with a reset, which
    // discards what this side had not read.
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (!socket.destroyed) socket.write(encode({ type: "pingreq" }, 5));
    }
    socket.resume();
    await settledWithin(ended, 3000);
    assert.equal(failure, undefined, `no reset: ${failure?.message}`);
    const decoder = new PacketDecoder({ version: 5 });
    const packets = [];
    for (const chunk of chunks) {
      decoder.push(chunk);
      for (let p = decoder.next(); p !== undefined; p = decoder.next()) packets.push(p);
    }
    assert.deepEqual(packets.map((p) => p.type), ["connack", "disconnect"]);
    assert.equal(packets[1].type === "disconnect" && packets[1].reasonCode, 0x82);
  } finally {
    socket.destroy();
    await broker.close();
  }
});

test("a client that goes on sending after the broker ended its connection is cut off after 64 KiB, not read for the whole linger", async () => {
  const broker = new Broker({ sysInterval: 0 });
  const { port } = await broker.listen({ port: 0 });
  // Our transport: after the FIN that follows the DISCONNECT this side can go on sending (half-close).
  const transport = await (await runtimeNet()).connectTcp({ hostname: "127.0.0.1", port });
  const writer = transport.writable.getWriter();
  try {
    const connect = encode({
      type: "connect",
      protocolVersion: 5,
      clientId: "c",
      cleanStart: true,
      keepAlive: 0,
    }, 5);
    await writer.write(connect);
    await writer.write(connect); // a second CONNECT: DISCONNECT 0x82, and the broker ends the connection
    // Then a flood, as from a client that ignores the DISCONNECT: up to 64 MiB in 64 KiB writes.
    const started = performance.now();
    let written = 0;
    let failed = false;
    while (written < 64 << 20 && performance.now() - started < 5000) {
      try {
        await writer.write(new Uint8Array(65_536));
        written += 65_536;
      } catch {
        failed = true;
        break;
      }
    }
    const elapsed = performance.now() - started;
    assert.ok(
      failed,
      `the broker closed the connection (${written} bytes written in ${Math.round(elapsed)} ms)`,
    );
    // Well before the 1 s linger ran out.
    assert.ok(elapsed < 900, `closed after ${Math.round(elapsed)} ms`);
  } finally {
    await transport.close();
    await broker.close();
  }
});

test("connections that send no CONNECT are closed oldest first, after a second, once more than maxConnecting wait; clients that connect are served", async () => {
  const log: string[] = [];
  const broker = new Broker({ sysInterval: 0, maxConnecting: 5, log: (_l, m) => log.push(m) });
  const { port } = await broker.listen({ port: 0 });
  const silent: { socket: Socket; closed: boolean }[] = [];
  async function openSilent(): Promise<void> {
    const socket = new Socket();
    socket.on("error", () => {});
    const entry = { socket, closed: false };
    socket.on("close", () => entry.closed = true);
    await new Promise<void>((resolve) => socket.connect(port, "127.0.0.1", resolve));
    silent.push(entry);
  }
  try {
    // Ten at once: past the limit, but none has waited a second yet, so none is closed.
    for (let i = 0; i < 10; i++) await openSilent();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(silent.map((s) => s.closed), Array(10).fill(false));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // One more: the oldest six are closed, so that five are connecting with the new one.
    await openSilent();
    await waitFor(() => silent.filter((s) => s.closed).length >= 6, 3000);
    assert.deepEqual(silent.map((s) => s.closed), [...Array(6).fill(true), ...Array(5).fill(false)]);
    assert.ok(log.some((m) => /sent no CONNECT in \d+ ms: 5 are connecting/.test(m)), log.join("\n"));
    // A client that connects is not counted once its CONNECT arrived, and is served.
    const good = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false });
    const subscription = await good.subscribe("t");
    await good.publish("t", "still here");
    for await (const message of subscription) {
      assert.equal(message.text(), "still here");
      break;
    }
    await good.close();
  } finally {
    for (const { socket } of silent) socket.destroy();
    await broker.close();
  }
});
