import { test } from "node:test";
import assert from "node:assert/strict";
import type { ProtocolVersion, PublishPacket, Will } from "../../src/codec/packet.ts";
import { ReasonCode } from "../../src/errors.ts";
import { BrokerMachine } from "../../src/machine/broker_machine.ts";
import { createMessage, SessionState } from "../../src/machine/session_state.ts";
import { bytes, type ConnectOptions, Harness, text } from "./_broker_helpers.ts";

const VERSIONS: ProtocolVersion[] = [3, 4, 5];

/** Connect options for a session that outlives its connection, in each version's terms. */
function persistent(version: ProtocolVersion, seconds = 0xffffffff): ConnectOptions {
  return version === 5
    ? { cleanStart: false, properties: { sessionExpiryInterval: seconds } }
    : { cleanStart: false };
}

function will(topic = "will", extra: Partial<Will> = {}): Will {
  return { topic, payload: new TextEncoder().encode("gone"), qos: 1, retain: false, ...extra };
}

for (const version of VERSIONS) {
  test(`BrokerMachine takes over a connected client id: the old connection closes, v${version} ${version === 5 ? "[MQTT-3.1.4-3]" : "[MQTT-3.1.4-2]"}`, () => {
    const h = new Harness();
    const first = h.connected("same", version);
    const second = h.connected("same", version);
    assert.equal(first.session.state, "closed");
    assert.ok(
      first.closed?.type === "closed" && first.closed.error?.reasonCode === ReasonCode.SessionTakenOver,
    );
    assert.deepStrictEqual(
      first.take(),
      version === 5 ? [{ type: "disconnect", reasonCode: ReasonCode.SessionTakenOver }] : [],
    );
    assert.equal(second.session.state, "connected");
    assert.equal(h.broker.sessionCount, 1);
    // The new connection still receives.
    second.subscribe("t");
    h.connected("p", version).publish("t", "x");
    assert.equal(second.takePublishes().length, 1);
  });

  test(`BrokerMachine resumes a session: Session Present 1 and its subscriptions kept, v${version} ${version === 5 ? "[MQTT-3.1.2-5] [MQTT-3.2.2-3]" : "[MQTT-3.1.2-4] [MQTT-3.2.2-2]"}`, () => {
    if (version === 3) return; // MQTT 3.1 has no Session Present flag
    const h = new Harness();
    const first = h.connected("c", version, persistent(version));
    first.subscribe("t", 1);
    first.drop();
    const again = h.connect("c", version, persistent(version));
    const [connack] = again.take();
    assert.ok(connack.type === "connack" && connack.sessionPresent);
    h.connected("p", version).publish("t", "x", { qos: 1, packetId: 1 });
    assert.equal(again.takePublishes().length, 1);
  });

  test(`BrokerMachine discards the session on a clean start: Session Present 0, v${version} ${version === 5 ? "[MQTT-3.1.2-4] [MQTT-3.2.2-2]" : "[MQTT-3.1.2-6] [MQTT-3.2.2-1]"}`, () => {
    const h = new Harness();
    const first = h.connected("c", version, persistent(version));
    first.subscribe("t", 1);
    first.drop();
    const again = h.connect("c", version, { cleanStart: true });
    assert.deepStrictEqual(again.take()[0], {
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      ...(version === 5 ? { properties: { topicAliasMaximum: 16, maximumPacketSize: 1_048_576 } } : {}),
    });
    h.connected("p", version).publish("t", "x");
    assert.equal(again.takePublishes().length, 0);
  });

  test(`BrokerMachine queues QoS 1 and 2 for an offline session and sends them on resumption, v${version} ${version === 5 ? "[MQTT-4.5.0-1]" : "[MQTT-3.1.2-5] [MQTT-4.5.0-1]"}`, () => {
    const h = new Harness();
    const sub = h.connected("c", version, persistent(version));
    sub.subscribe("t", 2);
    sub.drop();
    const pub = h.connected("p", version);
    pub.publish("t", "q0");
    pub.publish("t", "q1", { qos: 1, packetId: 1 });
    pub.publish("t", "q2", { qos: 2, packetId: 2 });
    const again = h.connect("c", version, persistent(version));
    const got = again.takePublishes();
    assert.deepStrictEqual(got.map((p) => [text(p.payload), p.qos, p.dup]), [["q1", 1, false], [
      "q2",
      2,
      false,
    ]]);
  });

  test(`BrokerMachine resends unacknowledged PUBLISH with DUP and PUBREL on resumption, in order, v${version} [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-3.3.1-3] [MQTT-4.6.0-1]`, () => {
    const h = new Harness();
    const sub = h.connected("c", version, persistent(version));
    sub.subscribe("t", 2);
    const pub = h.connected("p", version);
    pub.publish("t", "a", { qos: 1, packetId: 1 });
    pub.publish("t", "b", { qos: 2, packetId: 2 });
    pub.publish("t", "c", { qos: 2, packetId: 3 });
    const sent = sub.takePublishes();
    assert.deepStrictEqual(sent.map((p) => p.dup), [false, false, false]);
    sub.send({ type: "pubrec", packetId: sent[1].packetId as number, reasonCode: 0 });
    sub.take();
    sub.drop();
    const again = h.connect("c", version, persistent(version));
    const packets = again.take();
    assert.deepStrictEqual(packets.map((p) => p.type), ["connack", "publish", "pubrel", "publish"]);
    const [, first, pubrel, third] = packets;
    assert.ok(first.type === "publish" && third.type === "publish" && pubrel.type === "pubrel");
    assert.deepStrictEqual([first.packetId, first.dup, text(first.payload)], [sent[0].packetId, true, "a"]);
    assert.equal(pubrel.packetId, sent[1].packetId);
    assert.deepStrictEqual([third.packetId, third.dup, text(third.payload)], [sent[2].packetId, true, "c"]);
    // [MQTT-4.3.3-6] the released message is not sent again; completing clears everything.
    again.send({ type: "puback", packetId: first.packetId as number, reasonCode: 0 });
    again.send({ type: "pubcomp", packetId: pubrel.packetId, reasonCode: 0 });
    again.send({ type: "pubrec", packetId: third.packetId as number, reasonCode: 0 });
    again.send({ type: "pubcomp", packetId: third.packetId as number, reasonCode: 0 });
    assert.equal(again.session.session.inflight.size, 0);
  });

  test(`BrokerMachine publishes the will when the connection drops, v${version} ${version === 5 ? "[MQTT-3.1.2-8] [MQTT-3.1.2-14]" : "[MQTT-3.1.2-8] [MQTT-3.1.2-16]"}`, () => {
    const h = new Harness();
    const watcher = h.connected("w", version);
    watcher.subscribe("will", 1);
    const client = h.connected("c", version, { will: will() });
    client.drop();
    const [p] = watcher.takePublishes();
    assert.deepStrictEqual([p.topic, text(p.payload), p.qos, p.retain], ["will", "gone", 1, false]);
  });

  test(`BrokerMachine does not publish the will after DISCONNECT, v${version} [MQTT-3.14.4-3] [MQTT-3.1.2-10]`, () => {
    const h = new Harness();
    const watcher = h.connected("w", version);
    watcher.subscribe("will", 1);
    const client = h.connected("c", version, { will: will() });
    client.send({ type: "disconnect", reasonCode: 0 });
    assert.deepStrictEqual(watcher.take(), []);
  });

  test(`BrokerMachine publishes a will with RETAIN as retained, v${version} ${version === 5 ? "[MQTT-3.1.2-15]" : "[MQTT-3.1.2-17]"}`, () => {
    const h = new Harness();
    const client = h.connected("c", version, { will: will("status", { retain: true }) });
    client.drop();
    const late = h.connected("late", version);
    late.subscribe("status", 1);
    const [p] = late.takePublishes();
    assert.deepStrictEqual([text(p.payload), p.retain], ["gone", true]);
  });

  test(`BrokerMachine publishes the old connection's will on takeover with a clean start, v${version}`, () => {
    const h = new Harness();
    const watcher = h.connected("w", version);
    watcher.subscribe("will", 1);
    h.connected("c", version, { will: will() });
    h.connected("c", version);
    assert.equal(watcher.takePublishes().length, 1);
  });
}

test("BrokerMachine publishes the will after the will delay [MQTT-3.1.2-8]", () => {
  const h = new Harness();
  const watcher = h.connected("w", 5);
  watcher.subscribe("will", 1);
  const client = h.connected("c", 5, {
    will: will("will", { properties: { willDelayInterval: 30, userProperties: [["b", "1"], ["a", "2"]] } }),
    properties: { sessionExpiryInterval: 300 },
  });
  client.drop();
  assert.deepStrictEqual(watcher.take(), []);
  assert.equal(h.broker.pollTimeout(), 30_000);
  h.advance();
  const [p] = watcher.takePublishes();
  // [MQTT-3.1.3-10] the will's user properties keep their order; the delay is not forwarded.
  assert.deepStrictEqual(p.properties, { userProperties: [["b", "1"], ["a", "2"]] });
  assert.equal(h.broker.pollTimeout(), 300_000);
});

test("BrokerMachine does not publish the will when the client reconnects within the will delay [MQTT-3.1.3-9]", () => {
  const h = new Harness();
  const watcher = h.connected("w", 5);
  watcher.subscribe("will", 1);
  const options = {
    cleanStart: false,
    will: will("will", { properties: { willDelayInterval: 30 } }),
    properties: { sessionExpiryInterval: 300 },
  };
  h.connected("c", 5, options).drop();
  h.now = 10_000;
  h.connected("c", 5, options);
  assert.equal(h.broker.pollTimeout(), undefined);
  h.now = 100_000;
  h.broker.handleTimeout(h.now);
  h.pump();
  assert.deepStrictEqual(watcher.take(), []);
});

test("BrokerMachine publishes the will when the session ends before the will delay [MQTT-3.1.2-8]", () => {
  const h = new Harness();
  const watcher = h.connected("w", 5);
  watcher.subscribe("will", 1);
  h.connected("c", 5, {
    will: will("will", { properties: { willDelayInterval: 60 } }),
    properties: { sessionExpiryInterval: 10 },
  }).drop();
  assert.equal(h.advance(), 10_000);
  assert.equal(watcher.takePublishes().length, 1);
  assert.equal(h.broker.hasSession("c"), false);
});

test("BrokerMachine ends a session when its expiry interval passes [MQTT-4.1.0-2] [MQTT-3.1.2-23]", () => {
  const h = new Harness();
  const sub = h.connected("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  sub.subscribe("t", 1);
  sub.drop();
  assert.equal(h.broker.hasSession("c"), true);
  h.now = 59_999;
  h.broker.handleTimeout(h.now);
  assert.equal(h.broker.hasSession("c"), true);
  assert.equal(h.advance(), 60_000);
  assert.equal(h.broker.hasSession("c"), false);
  const again = h.connect("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  const [connack] = again.take();
  assert.ok(connack.type === "connack" && !connack.sessionPresent);
});

test("BrokerMachine ends a session with expiry 0 when the connection closes, v5 [MQTT-3.1.2-23]", () => {
  const h = new Harness();
  h.connected("c", 5, { cleanStart: false }).drop();
  assert.equal(h.broker.hasSession("c"), false);
});

test("BrokerMachine honours a session expiry changed in DISCONNECT, v5", () => {
  const h = new Harness();
  const client = h.connected("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  client.send({ type: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  assert.equal(h.broker.hasSession("c"), false);
});

test("BrokerMachine keeps 3.1.1 persistent sessions forever by default, or for the configured interval", () => {
  const h = new Harness();
  h.connected("c", 4, { cleanStart: false }).drop();
  assert.equal(h.broker.hasSession("c"), true);
  assert.equal(h.broker.pollTimeout(), undefined);
  const limited = new Harness({ persistentSessionExpiryInterval: 5 });
  limited.connected("c", 4, { cleanStart: false }).drop();
  assert.equal(limited.advance(), 5_000);
  assert.equal(limited.broker.hasSession("c"), false);
});

test("BrokerMachine keeps QoS 1 messages past an offline session's queue bounds and holds their PUBACK until it has room", () => {
  const h = new Harness({ maxQueuedMessages: 3, maxQueuedBytes: 1000 });
  const sub = h.connected("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  sub.subscribe("t", 1);
  sub.drop();
  const pub = h.connected("p", 5);
  for (let i = 1; i <= 5; i++) pub.publish("t", `${i}`, { qos: 1, packetId: i });
  // Three fit the bounds and are acknowledged; the last two are kept, their acknowledgements held back.
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [1, 2, 3]);
  const bytesLimited = h.connected("b", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  bytesLimited.subscribe("big", 1);
  bytesLimited.drop();
  for (let i = 1; i <= 3; i++) pub.publish("big", new Uint8Array(400), { qos: 1, packetId: 10 + i });
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [11, 12]);
  assert.equal(h.broker.stats.dropped, 0);

  // Back online with a Receive Maximum of 2: the queue drains as the client acknowledges, and the held PUBACKs
  // go out once the queue is within its bounds again.
  const again = h.connect("c", 5, {
    cleanStart: false,
    properties: { sessionExpiryInterval: 600, receiveMaximum: 2 },
  });
  const got: string[] = [];
  for (let round = 0; round < 5 && got.length < 5; round++) {
    got.push(...again.ackAll().map((p) => text(p.payload)));
  }
  assert.deepStrictEqual(got, ["1", "2", "3", "4", "5"]);
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [4, 5]);
  const big = h.connect("b", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  assert.equal(big.ackAll().length, 3);
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [13]);
});

test("BrokerMachine sends the held PUBACK when a session over its bounds ends, and acknowledges a message for several sessions once all have room", () => {
  const h = new Harness({ maxQueuedMessages: 1 });
  const a = h.connected("a", 5, { cleanStart: false, properties: { sessionExpiryInterval: 10 } });
  a.subscribe("t", 1);
  a.drop();
  const b = h.connected("b", 4, { cleanStart: false });
  b.subscribe("t", 2);
  b.drop();
  const pub = h.connected("p", 5);
  pub.publish("t", "1", { qos: 2, packetId: 1 });
  pub.publish("t", "2", { qos: 2, packetId: 2 });
  assert.deepStrictEqual(pub.take().map((p) => [p.type, "packetId" in p && p.packetId]), [["pubrec", 1]]);
  // "a" expires: its queue is gone, but "b" still holds message 2 beyond its bounds.
  h.advance(10_000);
  assert.equal(h.broker.hasSession("a"), false);
  assert.deepStrictEqual(pub.take(), []);
  const back = h.connect("b", 4, { cleanStart: false });
  assert.deepStrictEqual(back.ackAll().map((p) => text(p.payload)), ["1", "2"]);
  assert.deepStrictEqual(pub.take().map((p) => [p.type, "packetId" in p && p.packetId]), [["pubrec", 2]]);
});

test("BrokerMachine stops holding publishers back for a session over its bounds past slowConsumerTimeout, then drops what does not fit until it has room", () => {
  const h = new Harness({ maxQueuedMessages: 2, slowConsumerTimeout: 5_000 });
  const sub = h.connected("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  sub.subscribe("t", 1);
  sub.drop();
  const pub = h.connected("p", 5);
  for (let i = 1; i <= 3; i++) pub.publish("t", `${i}`, { qos: 1, packetId: i });
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [1, 2]);
  assert.equal(h.broker.pollTimeout(), 5_000);
  h.advance();
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [3]);
  // Stalled: the next one does not fit and is dropped (counted), acknowledged since nobody else waits.
  pub.publish("t", "4", { qos: 1, packetId: 4 });
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [4]);
  assert.equal(h.broker.stats.dropped, 1);
  const again = h.connect("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  assert.deepStrictEqual(again.ackAll().map((p) => text(p.payload)), ["1", "2", "3"]);
  // With room again, the session holds its publishers back again instead of dropping.
  again.drop();
  for (let i = 5; i <= 7; i++) pub.publish("t", `${i}`, { qos: 1, packetId: i });
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [5, 6]);
  assert.equal(h.broker.stats.dropped, 1);
});

test("BrokerMachine bounds offline QoS 0 queues in count, dropping what does not fit", () => {
  const h = new Harness({ queueQoS0: true, maxQueuedMessages: 2 });
  const sub = h.connected("c", 4, { cleanStart: false });
  sub.subscribe("t", 0);
  sub.drop();
  const pub = h.connected("p", 4);
  for (let i = 1; i <= 4; i++) pub.publish("t", `${i}`);
  assert.equal(h.broker.stats.dropped, 2);
  const again = h.connect("c", 4, { cleanStart: false });
  assert.deepStrictEqual(again.takePublishes().map((p) => text(p.payload)), ["1", "2"]);
});

test("BrokerMachine drops queued messages that expire while the session is offline [MQTT-3.3.2-5]", () => {
  const h = new Harness();
  const sub = h.connected("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  sub.subscribe("t", 1);
  sub.drop();
  const pub = h.connected("p", 5);
  pub.publish("t", "short", { qos: 1, packetId: 1, properties: { messageExpiryInterval: 5 } });
  pub.publish("t", "long", { qos: 1, packetId: 2, properties: { messageExpiryInterval: 50 } });
  h.now = 20_000;
  const again = h.connect("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  const got = again.takePublishes();
  assert.deepStrictEqual(got.map((p) => [text(p.payload), p.properties?.messageExpiryInterval]), [[
    "long",
    30,
  ]]);
  assert.equal(h.broker.stats.droppedExpired, 1);
  assert.equal(h.broker.stats.dropped, 1);
});

test("BrokerMachine queues QoS 0 for offline sessions only when configured", () => {
  const h = new Harness({ queueQoS0: true });
  const sub = h.connected("c", 4, { cleanStart: false });
  sub.subscribe("t", 0);
  sub.drop();
  h.connected("p", 4).publish("t", "x");
  const again = h.connect("c", 4, { cleanStart: false });
  assert.equal(again.takePublishes().length, 1);
});

test("BrokerMachine delivers a shared subscription to its connected members, queueing only when all are offline [MQTT-4.8.2-3]", () => {
  const h = new Harness();
  const a = h.connected("a", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  a.subscribe("$share/g/t", 1);
  const b = h.connected("b", 5);
  b.subscribe("$share/g/t", 1);
  a.drop();
  const pub = h.connected("p", 5);
  for (let i = 0; i < 4; i++) pub.publish("t", `${i}`, { qos: 1, packetId: i + 1 });
  assert.equal(b.ackAll().length, 4); // acknowledged: nothing is handed back to the group when b leaves
  b.send({ type: "disconnect", reasonCode: 0 });
  pub.publish("t", "late", { qos: 1, packetId: 9 });
  const back = h.connect("a", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  assert.deepStrictEqual(back.takePublishes().map((p) => text(p.payload)), ["late"]);
});

test("BrokerMachine.exportState() and restoreState() carry sessions, queues, in-flight and retained messages", () => {
  const h = new Harness();
  const sub = h.connected("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  sub.subscribe("t/#", 2, 4);
  const pub = h.connected("p", 5);
  pub.publish("t/1", "inflight", { qos: 1, packetId: 1 });
  sub.take();
  sub.drop();
  pub.publish("t/2", "queued", { qos: 2, packetId: 2, properties: { messageExpiryInterval: 100 } });
  pub.publish("t/r", "retained", { retain: true });
  h.now = 10_000;
  const snapshot = h.broker.exportState(h.now);
  const copy = structuredClone(snapshot);
  assert.deepStrictEqual(copy, snapshot);
  const session = snapshot.sessions.find((s) => s.clientId === "c");
  assert.equal(session?.expiresInMs, 590_000);
  assert.equal(session?.queue[0].message.expiresInMs, 90_000);

  const h2 = new Harness();
  h2.now = 1_000_000;
  h2.broker.restoreState(h2.now, copy);
  // The publisher was connected with no session expiry: restored, its session ends at once.
  assert.equal(h2.broker.pollTimeout(), 1_000_000);
  h2.advance();
  assert.equal(h2.broker.hasSession("p"), false);
  assert.equal(h2.broker.pollTimeout(), 1_590_000);
  const again = h2.connect("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
  const packets = again.take();
  assert.deepStrictEqual(packets.map((p) => p.type), ["connack", "publish", "publish"]);
  const [connack, first, second] = packets;
  assert.ok(connack.type === "connack" && connack.sessionPresent);
  assert.ok(first.type === "publish" && second.type === "publish");
  assert.deepStrictEqual([text(first.payload), first.dup, first.properties?.subscriptionIdentifiers], [
    "inflight",
    true,
    [4],
  ]);
  assert.deepStrictEqual([text(second.payload), second.qos, second.properties?.messageExpiryInterval], [
    "queued",
    2,
    90,
  ]);
  assert.notEqual(first.packetId, second.packetId);
  // The subscription is live again.
  h2.connected("p", 5).publish("t/x", "live");
  assert.deepStrictEqual(again.takePublishes().map((p) => text(p.payload)), ["live"]);
  // Retained messages came along too.
  assert.equal(h2.broker.retainedCount, 1);
  const late = h2.connected("late", 4);
  late.subscribe("t/r");
  assert.deepStrictEqual(late.takePublishes().map((p) => text(p.payload)), ["retained"]);
});

test("BrokerMachine.attach() throws for a session without a pending CONNECT, subscribe() for one not attached", () => {
  const broker = new BrokerMachine();
  const h = new Harness();
  const client = h.connected("c", 5);
  assert.throws(() => broker.attach(0, client.session), /no CONNECT/);
  assert.throws(
    () => broker.subscribe(0, client.session, { type: "subscribe", packetId: 1, subscriptions: [] }),
    /not attached/,
  );
});

test("BrokerMachine publishes the will when the broker closes the connection for keep-alive [MQTT-3.1.2-8]", () => {
  const h = new Harness();
  const watcher = h.connected("w", 4);
  watcher.subscribe("will", 1);
  h.connected("c", 4, { will: will(), keepAlive: 2 });
  assert.equal(h.advance(), 3_000);
  assert.equal(watcher.takePublishes().length, 1);
});

test("BrokerMachine resends a QoS 2 message in flight on resumption even after its expiry [MQTT-4.3.3-7]", () => {
  const h = new Harness();
  const options = { cleanStart: false, properties: { sessionExpiryInterval: 600 } };
  const sub = h.connected("s", 5, options);
  sub.subscribe("t", 2);
  h.connected("p", 5).publish("t", "x", { qos: 2, packetId: 1, properties: { messageExpiryInterval: 2 } });
  assert.equal(sub.takePublishes().length, 1);
  sub.drop();
  h.now = 10_000;
  const again = h.connect("s", 5, options);
  const [p] = again.takePublishes();
  assert.deepStrictEqual([text(p.payload), p.dup], ["x", true]);
});

test("BrokerMachine does not offer a shared message refused by its member to the others [MQTT-4.8.2-6]", () => {
  const h = new Harness();
  const a = h.connected("a", 5);
  a.subscribe("$share/g/t", 1);
  const b = h.connected("b", 5);
  b.subscribe("$share/g/t", 1);
  h.connected("p", 5).publish("t", "x", { qos: 1, packetId: 1 });
  const [holder, other] = a.inbox.length > 0 ? [a, b] : [b, a];
  const [p] = holder.takePublishes();
  holder.send({ type: "puback", packetId: p.packetId as number, reasonCode: ReasonCode.UnspecifiedError });
  assert.equal(holder.session.session.inflight.size, 0);
  assert.deepStrictEqual(other.take(), []);
});

test("BrokerMachine.exportState() saves a connected session as if its connection closed when restored", () => {
  const h = new Harness();
  const client = h.connected("c", 5, {
    cleanStart: false,
    properties: { sessionExpiryInterval: 100 },
    will: will("will", { properties: { willDelayInterval: 10 } }),
  });
  client.subscribe("t", 1);
  const ephemeral = h.connected("e", 4, { will: will("will") });
  void ephemeral;
  const snapshot = structuredClone(h.broker.exportState(h.now));
  const c = snapshot.sessions.find((s) => s.clientId === "c");
  assert.deepStrictEqual([c?.expiresInMs, c?.willInMs, c?.will?.topic], [100_000, 10_000, "will"]);
  const e = snapshot.sessions.find((s) => s.clientId === "e");
  assert.deepStrictEqual([e?.expiresInMs, e?.willInMs], [0, 0]);

  const restored = new Harness();
  restored.now = 5_000;
  const watcher = restored.connected("w", 5);
  watcher.subscribe("will", 1);
  restored.broker.restoreState(restored.now, snapshot);
  assert.equal(restored.advance(), 5_000); // the 3.1.1 session ends at once and its will goes out
  assert.equal(watcher.takePublishes().length, 1);
  assert.equal(restored.broker.hasSession("e"), false);
  assert.equal(restored.advance(), 15_000); // the MQTT 5 will after its delay
  assert.equal(watcher.takePublishes().length, 1);
  assert.equal(restored.broker.hasSession("c"), true);
  assert.equal(restored.advance(), 105_000);
  assert.equal(restored.broker.hasSession("c"), false);
});

test("BrokerMachine.restoreState() takes over a connected session it replaces", () => {
  const h = new Harness();
  const snapshot = h.broker.exportState(h.now);
  const other = new Harness();
  const source = other.connected("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  source.subscribe("t", 1);
  const saved = other.broker.exportState(other.now);
  const live = h.connected("c", 5);
  h.broker.restoreState(h.now, { ...snapshot, sessions: saved.sessions });
  h.pump();
  assert.equal(live.session.state, "closed");
  assert.deepStrictEqual(live.take(), [{ type: "disconnect", reasonCode: ReasonCode.SessionTakenOver }]);
  const again = h.connect("c", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  const [connack] = again.take();
  assert.ok(connack.type === "connack" && connack.sessionPresent);
});

test("SessionMachine resends a resumed session's in-flight messages only as far as the client's new Receive Maximum allows, the rest with their packet identifiers as acknowledgements come [MQTT-4.4.0-1] [MQTT-3.3.4-9]", () => {
  const h = new Harness();
  const options = (receiveMaximum: number) => ({
    cleanStart: false,
    properties: { sessionExpiryInterval: 600, receiveMaximum },
  });
  const sub = h.connected("c", 5, options(10));
  sub.subscribe("t", 2);
  const pub = h.connected("p", 5);
  for (let i = 1; i <= 5; i++) pub.publish("t", `${i}`, { qos: i === 3 ? 2 : 1, packetId: i });
  const first = sub.takePublishes();
  assert.equal(first.length, 5);
  sub.drop();
  const again = h.connect("c", 5, options(2));
  const resent = (packets: PublishPacket[]) => packets.map((p) => [text(p.payload), p.packetId, p.dup]);
  let got = again.takePublishes();
  assert.deepStrictEqual(resent(got), [["1", first[0].packetId, true], ["2", first[1].packetId, true]]);
  again.send({ type: "puback", packetId: got[0].packetId as number, reasonCode: 0 });
  got = again.takePublishes();
  assert.deepStrictEqual(resent(got), [["3", first[2].packetId, true]]);
  // PUBACK for one the client had from the last connection and not yet resent: it is not sent again, and
  // it frees no room, as it was not counted on this connection.
  again.send({ type: "puback", packetId: first[3].packetId as number, reasonCode: 0 });
  assert.deepStrictEqual(again.takePublishes(), []);
  again.send({ type: "puback", packetId: first[1].packetId as number, reasonCode: 0 });
  got = again.takePublishes();
  assert.deepStrictEqual(resent(got), [["5", first[4].packetId, true]]);
});

test("SessionMachine keeps messages delivered before it was accepted in the state it is accepted with", () => {
  const h = new Harness();
  const client = h.connect("c", 4, { manual: true });
  const event = client.events.shift();
  assert.equal(event?.type, "connect");
  const message = createMessage(0, {
    type: "publish",
    topic: "t",
    payload: bytes("early"),
    qos: 1,
    retain: false,
    dup: false,
  });
  client.session.deliver(0, { message, qos: 1, retain: false, subscriptionIdentifiers: undefined });
  client.session.accept(0, { state: new SessionState("c") });
  h.pump();
  assert.deepStrictEqual(client.takePublishes().map((p) => text(p.payload)), ["early"]);
});

test("BrokerMachine keeps QoS 1 messages queued behind a connected subscriber's full window past the queue bounds, holding their PUBACK, and delivers every one", () => {
  // The 3.1.1 subscriber that reads slowly: its window (here 2) is full, its queue (bound 2) fills behind it.
  const h = new Harness({ maxQueuedMessages: 2 });
  const sub = h.connected("s", 4, { session: { maxInflightMessages: 2 } });
  sub.subscribe("t", 1);
  const pub = h.connected("p", 4);
  for (let i = 1; i <= 6; i++) pub.publish("t", `${i}`, { qos: 1, packetId: i });
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [1, 2, 3, 4]);
  const got: string[] = [];
  for (let round = 0; round < 6 && got.length < 6; round++) {
    got.push(...sub.ackAll().map((p) => text(p.payload)));
  }
  assert.deepStrictEqual(got, ["1", "2", "3", "4", "5", "6"]);
  assert.deepStrictEqual(pub.take().map((p) => p.type === "puback" && p.packetId), [5, 6]);
  assert.equal(h.broker.stats.dropped, 0);
});

test("BrokerMachine acknowledges a refused PUBLISH at once, even after the broker's own message went past a queue's bounds", () => {
  const h = new Harness({ maxQueuedMessages: 1 });
  const sub = h.connected("s", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  sub.subscribe("t", 1);
  sub.drop();
  for (let i = 0; i < 3; i++) {
    h.broker.route(h.now, undefined, {
      type: "publish",
      topic: "t",
      payload: bytes("own"),
      qos: 1,
      retain: false,
      dup: false,
    });
  }
  h.hooks.publish = () => ReasonCode.NotAuthorized;
  const pub = h.connected("p", 5);
  pub.publish("t", "x", { qos: 1, packetId: 1 });
  assert.deepStrictEqual(pub.take(), [{ type: "puback", packetId: 1, reasonCode: ReasonCode.NotAuthorized }]);
});
