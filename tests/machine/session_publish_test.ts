import { test } from "node:test";
import assert from "node:assert/strict";
import type { ProtocolVersion, PublishPacket } from "../../src/codec/packet.ts";
import { ReasonCode } from "../../src/errors.ts";
import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import { SessionMachine } from "../../src/machine/session_machine.ts";
import { createMessage } from "../../src/machine/session_state.ts";
import { bytes, Harness, text } from "./_broker_helpers.ts";

const VERSIONS: ProtocolVersion[] = [3, 4, 5];

for (const version of VERSIONS) {
  test(`SessionMachine sends no acknowledgement for an inbound QoS 0 PUBLISH, v${version} [MQTT-3.3.4-1]`, () => {
    const h = new Harness();
    const client = h.connected("c", version);
    client.publish("a", "x");
    assert.deepStrictEqual(client.take(), []);
  });

  test(`SessionMachine acknowledges an inbound QoS 1 PUBLISH with PUBACK once routed, v${version} ${version === 5 ? "[MQTT-4.3.2-4] [MQTT-2.2.1-5]" : "[MQTT-4.3.2-2] [MQTT-2.3.1-6]"}`, () => {
    const h = new Harness();
    h.hooks.holdAcks = true;
    const client = h.connected("c", version);
    client.publish("a", "x", { qos: 1, packetId: 42 });
    assert.deepStrictEqual(client.take(), []);
    assert.equal(client.pendingPublishes.length, 1);
    client.session.acknowledge(h.now, 42);
    h.pump();
    assert.deepStrictEqual(client.take(), [{ type: "puback", packetId: 42, reasonCode: 0 }]);
    // [MQTT-4.3.2-5] after PUBACK the same identifier is a new message.
    client.publish("a", "y", { qos: 1, packetId: 42 });
    assert.equal(client.pendingPublishes.length, 2);
  });

  test(`SessionMachine answers inbound QoS 2 with PUBREC, dedupes until PUBREL, then PUBCOMP, v${version} ${version === 5 ? "[MQTT-4.3.3-8] [MQTT-4.3.3-10] [MQTT-4.3.3-11]" : "[MQTT-4.3.3-2]"}`, () => {
    const h = new Harness();
    const sub = h.connected("s", version);
    sub.subscribe("a", 2);
    const client = h.connected("c", version);
    client.publish("a", "x", { qos: 2, packetId: 7 });
    assert.deepStrictEqual(client.take(), [{ type: "pubrec", packetId: 7, reasonCode: 0 }]);
    // A duplicate before PUBREL: PUBREC again, no second delivery.
    client.publish("a", "x", { qos: 2, packetId: 7, dup: true });
    assert.deepStrictEqual(client.take(), [{ type: "pubrec", packetId: 7, reasonCode: 0 }]);
    assert.equal(sub.takePublishes().length, 1);
    client.send({ type: "pubrel", packetId: 7, reasonCode: 0 });
    assert.deepStrictEqual(client.take(), [{ type: "pubcomp", packetId: 7, reasonCode: 0 }]);
    // [MQTT-4.3.3-12] after PUBCOMP the identifier is a new message.
    client.publish("a", "z", { qos: 2, packetId: 7 });
    assert.deepStrictEqual(client.take(), [{ type: "pubrec", packetId: 7, reasonCode: 0 }]);
    assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["z"]);
  });

  test(`SessionMachine delivers QoS 1 to the client and completes on PUBACK, v${version} ${version === 5 ? "[MQTT-4.3.2-1] [MQTT-4.3.2-2] [MQTT-4.3.2-3]" : "[MQTT-4.3.2-1]"}`, () => {
    const h = new Harness();
    const sub = h.connected("s", version);
    sub.subscribe("a", 1);
    const pub = h.connected("p", version);
    pub.publish("a", "1", { qos: 1, packetId: 1 });
    pub.publish("a", "2", { qos: 1, packetId: 2 });
    const [first, second] = sub.takePublishes();
    assert.equal(first.qos, 1);
    assert.equal(first.dup, false);
    assert.notEqual(first.packetId, second.packetId);
    assert.equal(sub.session.session.inflight.size, 2);
    sub.send({ type: "puback", packetId: first.packetId as number, reasonCode: 0 });
    assert.equal(sub.session.session.inflight.size, 1);
    sub.send({ type: "puback", packetId: second.packetId as number, reasonCode: 0 });
    assert.equal(sub.session.session.inflight.size, 0);
  });

  test(`SessionMachine delivers QoS 2 to the client: PUBREL on PUBREC, done on PUBCOMP, v${version} ${version === 5 ? "[MQTT-4.3.3-1] [MQTT-4.3.3-3] [MQTT-4.3.3-4] [MQTT-4.3.3-5]" : "[MQTT-4.3.3-1]"}`, () => {
    const h = new Harness();
    const sub = h.connected("s", version);
    sub.subscribe("a", 2);
    const pub = h.connected("p", version);
    pub.publish("a", "1", { qos: 2, packetId: 1 });
    const [publish] = sub.takePublishes();
    assert.equal(publish.qos, 2);
    assert.equal(publish.dup, false);
    const packetId = publish.packetId as number;
    sub.send({ type: "pubrec", packetId, reasonCode: 0 });
    assert.deepStrictEqual(sub.take(), [{ type: "pubrel", packetId, reasonCode: 0 }]);
    assert.equal(sub.session.session.inflight.get(packetId)?.released, true);
    sub.send({ type: "pubcomp", packetId, reasonCode: 0 });
    assert.equal(sub.session.session.inflight.size, 0);
  });
}

test("SessionMachine acknowledges with the driver's refusal code, v5 [MQTT-3.4.2-1]", () => {
  const h = new Harness();
  h.hooks.publish = () => ReasonCode.NotAuthorized;
  const client = h.connected("c", 5);
  client.publish("a", "x", { qos: 1, packetId: 3 });
  assert.deepStrictEqual(client.take(), [{
    type: "puback",
    packetId: 3,
    reasonCode: ReasonCode.NotAuthorized,
  }]);
  client.publish("a", "x", { qos: 2, packetId: 4 });
  assert.deepStrictEqual(client.take(), [{
    type: "pubrec",
    packetId: 4,
    reasonCode: ReasonCode.NotAuthorized,
  }]);
  // [MQTT-4.3.3-9] after a refused PUBREC the identifier is new: the next PUBLISH with it is a new message.
  h.hooks.publish = undefined;
  const sub = h.connected("s", 5);
  sub.subscribe("a", 2);
  client.publish("a", "y", { qos: 2, packetId: 4 });
  assert.deepStrictEqual(client.take(), [{ type: "pubrec", packetId: 4, reasonCode: ReasonCode.Success }]);
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["y"]);
});

test("SessionMachine takes a resend (DUP) beyond its Receive Maximum, v5: a client resending after a reconnect may count differently", () => {
  const h = new Harness();
  h.hooks.holdAcks = true;
  const sub = h.connected("s", 5);
  sub.subscribe("a", 2);
  const client = h.connected("c", 5, { session: { receiveMaximum: 2 } });
  client.publish("a", "1", { qos: 1, packetId: 1 });
  client.publish("a", "2", { qos: 2, packetId: 2 });
  client.publish("a", "3", { qos: 1, packetId: 3, dup: true });
  // A resend of one still undecided is not a new message either.
  client.publish("a", "3", { qos: 1, packetId: 3, dup: true });
  assert.deepStrictEqual(client.take(), []);
  assert.equal(client.closed, undefined);
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["1", "2", "3"]);
});

test("SessionMachine disconnects a client whose new PUBLISH exceeds its Receive Maximum with 0x93, v5 [MQTT-3.3.4-7]", () => {
  const h = new Harness();
  h.hooks.holdAcks = true;
  const client = h.connected("c", 5, { session: { receiveMaximum: 2 } });
  client.publish("a", "1", { qos: 1, packetId: 1 });
  client.publish("a", "2", { qos: 2, packetId: 2 });
  assert.deepStrictEqual(client.take(), []);
  client.publish("a", "3", { qos: 1, packetId: 3 });
  assert.deepStrictEqual(client.take(), [{
    type: "disconnect",
    reasonCode: ReasonCode.ReceiveMaximumExceeded,
  }]);
});

test("SessionMachine counts a QoS 2 message as unacknowledged until its PUBREL, v5 [MQTT-3.3.4-7]", () => {
  const h = new Harness();
  const client = h.connected("c", 5, { session: { receiveMaximum: 2 } });
  client.publish("a", "1", { qos: 2, packetId: 1 });
  client.publish("a", "2", { qos: 1, packetId: 2 });
  client.publish("a", "3", { qos: 1, packetId: 3 });
  assert.deepStrictEqual(client.take().map((p) => p.type), ["pubrec", "puback", "puback"]);
  client.publish("a", "4", { qos: 2, packetId: 4 });
  client.publish("a", "5", { qos: 1, packetId: 5 });
  assert.deepStrictEqual(client.take().map((p) => p.type), ["pubrec", "disconnect"]);
});

test("SessionMachine resolves inbound topic aliases [MQTT-3.3.2-12]", () => {
  const h = new Harness();
  const sub = h.connected("s", 4);
  sub.subscribe("long/topic/name", 0);
  const client = h.connected("c", 5, { session: { topicAliasMaximum: 4 } });
  client.publish("long/topic/name", "1", { properties: { topicAlias: 3 } });
  client.publish("", "2", { properties: { topicAlias: 3 } });
  const got = sub.takePublishes();
  assert.deepStrictEqual(got.map((p) => [p.topic, text(p.payload)]), [["long/topic/name", "1"], [
    "long/topic/name",
    "2",
  ]]);
});

test("SessionMachine refuses a topic alias above its maximum with DISCONNECT 0x94 [MQTT-3.3.2-12]", () => {
  const h = new Harness();
  const client = h.connected("c", 5, { session: { topicAliasMaximum: 4 } });
  client.publish("a", "1", { properties: { topicAlias: 5 } });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.TopicAliasInvalid }]);
});

test("SessionMachine refuses an alias that was never set with a protocol error", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.publish("", "1", { properties: { topicAlias: 2 } });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.ProtocolError }]);
});

test("SessionMachine refuses a subscription identifier in a PUBLISH from a client [MQTT-3.3.4-6]", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.publish("a", "1", { properties: { subscriptionIdentifiers: [1] } });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.ProtocolError }]);
});

test("SessionMachine keeps at most the client's Receive Maximum in flight and queues the rest in order [MQTT-3.3.4-9] [MQTT-4.9.0-2]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5, { properties: { receiveMaximum: 2 } });
  sub.subscribe("a", 1);
  const pub = h.connected("p", 5);
  for (let i = 1; i <= 5; i++) pub.publish("a", `${i}`, { qos: 1, packetId: i });
  pub.publish("a", "q0", { qos: 0 });
  const first = sub.takePublishes();
  // QoS 0 does not use the quota; ordering is per QoS [MQTT-4.6.0-5], so it is not held behind QoS 1.
  assert.deepStrictEqual(first.map((p) => text(p.payload)), ["1", "2", "q0"]);
  sub.send({ type: "puback", packetId: first[0].packetId as number, reasonCode: 0 });
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["3"]);
  // [MQTT-4.9.0-3] other packets are still answered while the quota is used up.
  sub.send({ type: "pingreq" });
  assert.deepStrictEqual(sub.take(), [{ type: "pingresp" }]);
  const acked = sub.ackAll();
  assert.deepStrictEqual(acked, []);
  sub.send({ type: "puback", packetId: first[1].packetId as number, reasonCode: 0 });
  sub.send({ type: "puback", packetId: 3, reasonCode: 0 });
  const rest = sub.takePublishes();
  assert.deepStrictEqual(rest.map((p) => text(p.payload)), ["4", "5"]);
  assert.ok(sub.session.session.inflight.size <= 2);
});

test("SessionMachine assigns topic aliases within the client's Topic Alias Maximum [MQTT-3.3.2-11] [MQTT-3.1.2-26]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5, { properties: { topicAliasMaximum: 1 } });
  sub.subscribe("#", 0);
  const pub = h.connected("p", 5);
  pub.publish("t/1", "a");
  pub.publish("t/1", "b");
  pub.publish("t/2", "c");
  const got = sub.takePublishes();
  assert.deepStrictEqual(got.map((p) => [p.topic, p.properties?.topicAlias]), [
    ["t/1", 1],
    ["", 1],
    ["t/2", undefined],
  ]);
});

test("SessionMachine sends no topic alias to a client without a Topic Alias Maximum [MQTT-3.1.2-27]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5);
  sub.subscribe("#", 0);
  const pub = h.connected("p", 5);
  pub.publish("t/1", "a");
  pub.publish("t/1", "b");
  assert.deepStrictEqual(sub.takePublishes().map((p) => p.properties?.topicAlias), [undefined, undefined]);
});

test("SessionMachine drops a PUBLISH larger than the client's Maximum Packet Size as if sent [MQTT-3.1.2-24] [MQTT-3.1.2-25]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5, { properties: { maximumPacketSize: 64 } });
  sub.subscribe("a", 1);
  const pub = h.connected("p", 5);
  pub.publish("a", new Uint8Array(100), { qos: 1, packetId: 1 });
  pub.publish("a", "small", { qos: 1, packetId: 2 });
  const got = sub.takePublishes();
  assert.deepStrictEqual(got.map((p) => text(p.payload)), ["small"]);
  assert.equal(sub.session.session.inflight.size, 1);
});

test("SessionMachine forwards the remaining message expiry interval [MQTT-3.3.2-6] and drops expired messages [MQTT-3.3.2-5]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5, { properties: { receiveMaximum: 1 } });
  sub.subscribe("a", 1);
  const pub = h.connected("p", 5);
  pub.publish("a", "1", { qos: 1, packetId: 1, properties: { messageExpiryInterval: 10 } });
  pub.publish("a", "2", { qos: 1, packetId: 2, properties: { messageExpiryInterval: 5 } });
  pub.publish("a", "3", { qos: 1, packetId: 3, properties: { messageExpiryInterval: 20 } });
  const [first] = sub.takePublishes();
  assert.equal(first.properties?.messageExpiryInterval, 10);
  h.now = 6_000;
  sub.send({ type: "puback", packetId: first.packetId as number, reasonCode: 0 });
  // "2" expired while queued; "3" has 14 seconds left.
  const [third] = sub.takePublishes();
  assert.equal(text(third.payload), "3");
  assert.equal(third.properties?.messageExpiryInterval, 14);
  assert.equal(sub.session.session.dropped, 1);
  assert.equal(h.broker.stats.droppedExpired, 1);
  // One that expired before its delivery started is dropped too, and counted.
  sub.send({ type: "puback", packetId: third.packetId as number, reasonCode: 0 });
  pub.publish("a", "4", { qos: 1, packetId: 4, properties: { messageExpiryInterval: 0 } });
  assert.equal(sub.takePublishes().length, 0);
  assert.equal(h.broker.stats.droppedExpired, 2);
  assert.equal(h.broker.stats.dropped, 2);
});

test("SessionMachine forwards publish properties unaltered to MQTT 5 clients and none to 3.1.1 [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]", () => {
  const h = new Harness();
  const v5 = h.connected("v5", 5);
  v5.subscribe("a", 0);
  const v4 = h.connected("v4", 4);
  v4.subscribe("a", 0);
  const pub = h.connected("p", 5);
  const properties = {
    payloadFormatIndicator: true,
    contentType: "text/plain",
    responseTopic: "r/1",
    correlationData: bytes("id"),
    userProperties: [["b", "2"], ["a", "1"], ["b", "3"]] as [string, string][],
  };
  pub.publish("a", "x", { properties });
  assert.deepStrictEqual(v5.takePublishes()[0].properties, properties);
  assert.equal(v4.takePublishes()[0].properties, undefined);
});

test("SessionMachine answers a PUBREL resent after its PUBCOMP was lost with PUBCOMP 0x00, v5 (MQTT.js fails the publish on 0x92)", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.send({ type: "pubrel", packetId: 9, reasonCode: 0 });
  assert.deepStrictEqual(client.take(), [{ type: "pubcomp", packetId: 9, reasonCode: ReasonCode.Success }]);
});

test("SessionMachine treats a refused PUBREC as the end of the delivery [MQTT-4.4.0-2]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5);
  sub.subscribe("a", 2);
  const pub = h.connected("p", 5);
  pub.publish("a", "x", { qos: 2, packetId: 1 });
  const [p] = sub.takePublishes() as PublishPacket[];
  sub.send({ type: "pubrec", packetId: p.packetId as number, reasonCode: ReasonCode.QuotaExceeded });
  assert.deepStrictEqual(sub.take(), []);
  assert.equal(sub.session.session.inflight.size, 0);
});

test("SessionMachine advertises Maximum QoS and refuses PUBLISH above it, v5 [MQTT-3.2.2-9] [MQTT-3.2.2-11]", () => {
  const h = new Harness();
  const client = h.connect("c", 5, { session: { maximumQoS: 1, topicAliasMaximum: 0 } });
  assert.deepStrictEqual(client.take(), [{
    type: "connack",
    sessionPresent: false,
    reasonCode: 0,
    properties: { maximumQoS: 1, maximumPacketSize: 1_048_576 },
  }]);
  // [MQTT-3.2.2-10] subscriptions are still granted up to QoS 2.
  assert.deepStrictEqual(client.subscribe("a", 2), [2]);
  client.publish("a", "x", { qos: 2, packetId: 1 });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.QoSNotSupported }]);
});

test("SessionMachine refuses a will above its Maximum QoS with CONNACK 0x9B [MQTT-3.2.2-12]", () => {
  const h = new Harness();
  const client = h.connect("c", 5, {
    session: { maximumQoS: 0 },
    will: { topic: "w", payload: new Uint8Array(0), qos: 1, retain: false },
  });
  assert.deepStrictEqual(client.take(), [{
    type: "connack",
    sessionPresent: false,
    reasonCode: ReasonCode.QoSNotSupported,
  }]);
});

test("SessionMachine without retain refuses a retained will (0x9A) and retained PUBLISH [MQTT-3.2.2-13] [MQTT-3.2.2-14]", () => {
  const h = new Harness();
  const willClient = h.connect("w", 5, {
    session: { retainAvailable: false },
    will: { topic: "w", payload: new Uint8Array(0), qos: 0, retain: true },
  });
  assert.deepStrictEqual(willClient.take(), [{
    type: "connack",
    sessionPresent: false,
    reasonCode: ReasonCode.RetainNotSupported,
  }]);
  const client = h.connect("c", 5, { session: { retainAvailable: false, topicAliasMaximum: 0 } });
  assert.deepStrictEqual(client.take(), [{
    type: "connack",
    sessionPresent: false,
    reasonCode: 0,
    properties: { retainAvailable: false, maximumPacketSize: 1_048_576 },
  }]);
  client.publish("a", "x", { retain: true });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.RetainNotSupported }]);
});

test("SessionMachine uses the server keep-alive it sent in CONNACK [MQTT-3.2.2-22]", () => {
  const h = new Harness();
  const client = h.connect("c", 5, { manual: true, keepAlive: 100 });
  client.events.shift();
  h.broker.attach(h.now, client.session, { properties: { serverKeepAlive: 20 } });
  h.pump();
  const [connack] = client.take();
  assert.ok(connack.type === "connack" && connack.properties?.serverKeepAlive === 20);
  assert.equal(client.session.pollTimeout(), 30_000);
});

test("SessionMachine recognises a QoS 2 resend after a takeover as a duplicate [MQTT-4.3.3-10]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5);
  sub.subscribe("a", 2);
  h.hooks.holdAcks = true;
  const options = { cleanStart: false, properties: { sessionExpiryInterval: 60 } };
  const first = h.connected("c", 5, options);
  first.publish("a", "once", { qos: 2, packetId: 9 });
  assert.equal(sub.takePublishes().length, 1);
  h.hooks.holdAcks = false;
  const second = h.connected("c", 5, options);
  assert.equal(first.session.state, "closed");
  second.publish("a", "once", { qos: 2, packetId: 9, dup: true });
  assert.deepStrictEqual(second.take(), [{ type: "pubrec", packetId: 9, reasonCode: 0 }]);
  second.send({ type: "pubrel", packetId: 9, reasonCode: 0 });
  assert.deepStrictEqual(second.take(), [{ type: "pubcomp", packetId: 9, reasonCode: 0 }]);
  assert.equal(sub.takePublishes().length, 0);
});

test("SessionMachine limits messages in flight to its own maximum for clients of any version", () => {
  const h = new Harness();
  const sub = h.connected("s", 4, { session: { maxInflightMessages: 2 } });
  sub.subscribe("a", 1);
  const pub = h.connected("p", 4);
  for (let i = 1; i <= 4; i++) pub.publish("a", `${i}`, { qos: 1, packetId: i });
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["1", "2"]);
  sub.send({ type: "puback", packetId: 1, reasonCode: 0 });
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["3"]);
});

test("SessionMachine starts topic aliases afresh on every connection [MQTT-3.3.2-7]", () => {
  const h = new Harness();
  const options = { cleanStart: false, properties: { sessionExpiryInterval: 60, topicAliasMaximum: 5 } };
  const sub = h.connected("s", 5, options);
  sub.subscribe("t/#", 0);
  const pub = h.connected("p", 5);
  pub.publish("t/1", "a");
  pub.publish("t/1", "b");
  assert.deepStrictEqual(sub.takePublishes().map((p) => p.topic), ["t/1", ""]);
  sub.drop();
  const again = h.connected("s", 5, options);
  pub.publish("t/1", "c");
  const [p] = again.takePublishes();
  assert.deepStrictEqual([p.topic, p.properties?.topicAlias], ["t/1", 1]);
});

test("SessionMachine sends a reason string on acknowledgements unless the client asked for no problem information [MQTT-3.1.2-29]", () => {
  for (const requestProblemInformation of [true, false]) {
    const h = new Harness();
    h.hooks.holdAcks = true;
    const client = h.connected("c", 5, { properties: { requestProblemInformation } });
    client.publish("a", "x", { qos: 1, packetId: 1 });
    client.session.acknowledge(h.now, 1, ReasonCode.NotAuthorized, { reasonString: "no" });
    client.send({
      type: "subscribe",
      packetId: 2,
      subscriptions: [{
        topicFilter: "a",
        qos: 0,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    });
    h.pump();
    const [puback, suback] = client.take();
    const expected = requestProblemInformation ? { reasonString: "no" } : undefined;
    assert.deepStrictEqual(puback, {
      type: "puback",
      packetId: 1,
      reasonCode: ReasonCode.NotAuthorized,
      ...(expected ? { properties: expected } : {}),
    });
    assert.equal(suback.type, "suback");
  }
});

test("SessionMachine acknowledges a refused PUBLISH normally before MQTT 5 [MQTT-3.3.5-2]", () => {
  const h = new Harness();
  h.hooks.publish = () => ReasonCode.NotAuthorized;
  const sub = h.connected("s", 4);
  sub.subscribe("a", 1);
  const client = h.connected("c", 4);
  client.publish("a", "x", { qos: 1, packetId: 3 });
  assert.deepStrictEqual(client.take(), [{ type: "puback", packetId: 3, reasonCode: 0 }]);
  assert.deepStrictEqual(sub.take(), []);
});

test("SessionMachine.deliver() sends a createMessage() message without a BrokerMachine", () => {
  const session = new SessionMachine(0, { topicAliasMaximum: 0 });
  session.handleBytes(
    0,
    encode({ type: "connect", protocolVersion: 5, clientId: "c", cleanStart: true, keepAlive: 0 }, 5),
  );
  session.pollEvent();
  session.accept(0);
  session.pollTransmit();
  const message = createMessage(0, {
    type: "publish",
    topic: "t",
    payload: bytes("hi"),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 9,
    properties: { messageExpiryInterval: 10 },
  });
  session.deliver(4_000, { message, qos: 1, retain: false, subscriptionIdentifiers: [3] });
  const decoder = new PacketDecoder({ version: 5 });
  decoder.push(session.pollTransmit() as Uint8Array);
  assert.deepStrictEqual(decoder.next(), {
    type: "publish",
    topic: "t",
    payload: bytes("hi"),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 1,
    properties: { messageExpiryInterval: 6, subscriptionIdentifiers: [3] },
  });
});

test("SessionMachine drops QoS 0 and queues QoS 1 while congested, and sends the queue when it clears", () => {
  const h = new Harness();
  const sub = h.connected("s", 5);
  sub.subscribe("a", 1);
  const pub = h.connected("p", 5);
  pub.publish("a", "before", { qos: 0 });
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["before"]);
  sub.session.setCongested(h.now, true);
  assert.equal(sub.session.congested, true);
  pub.publish("a", "dropped", { qos: 0 });
  pub.publish("a", "q1", { qos: 1, packetId: 1 });
  pub.publish("a", "q2", { qos: 1, packetId: 2 });
  // Nothing goes out but answers: a PINGREQ still gets its PINGRESP.
  assert.deepStrictEqual(sub.takePublishes(), []);
  sub.send({ type: "pingreq" });
  assert.deepStrictEqual(sub.take(), [{ type: "pingresp" }]);
  assert.equal(sub.session.session.queue.length, 2);
  assert.equal(sub.session.droppedWhileCongested, 1);
  sub.session.setCongested(h.now, false);
  h.pump();
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["q1", "q2"]);
  pub.publish("a", "after", { qos: 0 });
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["after"]);
  assert.equal(sub.session.droppedWhileCongested, 1);
});
