import { test } from "node:test";
import assert from "node:assert/strict";
import { bytes, FakeServer } from "./_client_helpers.ts";
import type { Packet, PublishPacket } from "../../src/codec/packet.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";

function types(packets: { type: string }[]): string[] {
  return packets.map((p) => p.type);
}

function only<T extends Packet["type"]>(packets: Packet[], type: T): Extract<Packet, { type: T }> {
  assert.deepEqual(types(packets), [type]);
  return packets[0] as Extract<Packet, { type: T }>;
}

function incoming(fields: Partial<PublishPacket>): PublishPacket {
  return { type: "publish", topic: "t", payload: bytes("m"), qos: 0, retain: false, dup: false, ...fields };
}

for (const version of [3, 4, 5] as const) {
  test(`v${version}: CONNECT carries the options, CONNACK makes it connected`, () => {
    const s = new FakeServer({ protocolVersion: version, keepAlive: 30 });
    assert.equal(s.client.state, "idle");
    assert.throws(() => s.client.publish(0, { topic: "t", payload: bytes("x") }), MqttError);
    const sent = s.connect({ username: "u", password: bytes("p"), cleanStart: true });
    const connect = only(sent, "connect");
    assert.equal(connect.protocolVersion, version);
    assert.equal(connect.clientId, "c1");
    assert.equal(connect.keepAlive, 30);
    assert.equal(connect.username, "u");
    const events = s.events();
    assert.equal(events.length, 1);
    assert.equal(events[0].type, "connected");
    assert.equal(s.client.state, "connected");
  });

  test(`v${version}: [MQTT-4.3.2-2] [MQTT-4.3.2-3] a QoS 1 publish is sent with DUP 0 and settles on PUBACK`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect();
    s.events();
    const packetId = s.client.publish(s.now, { topic: "a/b", payload: bytes("hi"), qos: 1 }) as number;
    const publish = only(s.received(), "publish");
    assert.equal(publish.packetId, packetId);
    assert.equal(publish.dup, false);
    assert.equal(publish.qos, 1);
    assert.deepEqual(s.events(), []);
    s.send({ type: "puback", packetId, reasonCode: 0 });
    assert.deepEqual(s.events(), [{ type: "published", packetId, reasonCode: 0 }]);
    assert.equal(s.client.inFlight, 0);
  });

  test(`v${version}: [MQTT-4.3.3-4] [MQTT-4.3.3-5] a QoS 2 publish answers PUBREC with PUBREL and settles on PUBCOMP`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect();
    s.events();
    const packetId = s.client.publish(s.now, { topic: "a", payload: bytes("x"), qos: 2 }) as number;
    assert.equal(only(s.received(), "publish").qos, 2);
    s.send({ type: "pubrec", packetId, reasonCode: 0 });
    assert.equal(only(s.received(), "pubrel").packetId, packetId);
    assert.deepEqual(s.events(), []);
    s.send({ type: "pubcomp", packetId, reasonCode: 0 });
    assert.deepEqual(s.events(), [{ type: "published", packetId, reasonCode: 0 }]);
  });

  test(`v${version}: [MQTT-4.3.2-4] a received QoS 1 message is delivered and acknowledged with its packet id`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect();
    s.events();
    s.send(incoming({ qos: 1, packetId: 7 }));
    const events = s.events();
    assert.equal(events[0].type, "message");
    assert.deepEqual(only(s.received(), "puback"), { type: "puback", packetId: 7, reasonCode: 0 });
  });

  test(`v${version}: [MQTT-4.3.3-10] [MQTT-4.3.3-11] a QoS 2 duplicate before PUBREL is acknowledged, not delivered again`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect();
    s.events();
    s.send(incoming({ qos: 2, packetId: 9 }));
    assert.equal(s.events().filter((e) => e.type === "message").length, 1);
    assert.equal(only(s.received(), "pubrec").packetId, 9);
    s.send(incoming({ qos: 2, packetId: 9, dup: true }));
    assert.deepEqual(s.events(), []);
    assert.equal(only(s.received(), "pubrec").packetId, 9);
    s.send({ type: "pubrel", packetId: 9, reasonCode: 0 });
    assert.equal(only(s.received(), "pubcomp").packetId, 9);
    // [MQTT-4.3.3-12]: after PUBCOMP the same id is a new message.
    s.send(incoming({ qos: 2, packetId: 9 }));
    assert.equal(s.events().filter((e) => e.type === "message").length, 1);
  });

  test(`v${version}: [MQTT-3.1.2-20] keep-alive sends PINGREQ after the interval of silence, and a missing PINGRESP closes`, () => {
    const s = new FakeServer({ protocolVersion: version, keepAlive: 10, pingTimeoutMs: 3000 });
    s.connect();
    s.events();
    s.received();
    assert.equal(s.client.pollTimeout(), 10_000);
    // Sending something pushes the ping back.
    s.now = 4000;
    s.client.publish(s.now, { topic: "t", payload: bytes("x") });
    s.received();
    assert.equal(s.client.pollTimeout(), 14_000);
    s.client.handleTimeout(13_999); // early: nothing
    assert.deepEqual(s.received(), []);
    assert.equal(s.advance(), 14_000);
    only(s.received(), "pingreq");
    assert.equal(s.client.pollTimeout(), 17_000);
    s.send({ type: "pingresp" });
    assert.equal(s.client.pollTimeout(), 24_000);
    s.advance();
    only(s.received(), "pingreq");
    s.advance();
    const [closed] = s.events();
    assert.equal(closed.type, "closed");
    assert.ok(closed.type === "closed" && closed.error?.reasonCode === ReasonCode.KeepAliveTimeout);
    assert.equal(s.client.state, "closed");
    assert.equal(s.client.pollTimeout(), undefined);
  });

  test(`v${version}: no CONNACK within the connect timeout closes with an error`, () => {
    const s = new FakeServer({ protocolVersion: version, connectTimeoutMs: 5000 });
    s.client.connect(0);
    assert.equal(s.client.pollTimeout(), 5000);
    s.advance();
    const [closed] = s.events();
    assert.ok(closed.type === "closed" && closed.error instanceof MqttError);
  });

  test(`v${version}: [MQTT-4.4.0-1] [MQTT-4.6.0-1] with the session present, unfinished publishes are resent with DUP, in order, and PUBREL again`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect({ cleanStart: false });
    s.events();
    const a = s.client.publish(s.now, { topic: "a", payload: bytes("1"), qos: 1 }) as number;
    const b = s.client.publish(s.now, { topic: "b", payload: bytes("2"), qos: 2 }) as number;
    const c = s.client.publish(s.now, { topic: "c", payload: bytes("3"), qos: 2 }) as number;
    s.received();
    s.send({ type: "pubrec", packetId: b, reasonCode: 0 });
    s.received();
    s.client.handleClose(s.now, new Error("reset"));
    const [closed] = s.events();
    assert.ok(closed.type === "closed" && closed.error?.source === "transport");
    const sent = s.connect({ cleanStart: false }, { sessionPresent: true });
    assert.equal(only(sent, "connect").cleanStart, false);
    const resent = s.received();
    assert.deepEqual(
      resent.map((p) => [p.type, "packetId" in p ? p.packetId : 0, p.type === "publish" ? p.dup : undefined]),
      [["publish", a, true], ["pubrel", b, undefined], ["publish", c, true]],
    );
    s.send({ type: "puback", packetId: a, reasonCode: 0 }, { type: "pubcomp", packetId: b, reasonCode: 0 });
    const published = s.events().filter((e) => e.type === "published");
    assert.deepEqual(published.map((e) => e.type === "published" && e.packetId), [a, b]);
  });

  if (version > 3) {
    test(`v${version}: [MQTT-3.2.2-5] without the session, unfinished publishes fail and subscriptions are sent again`, () => {
      const s = new FakeServer({ protocolVersion: version });
      s.connect({ cleanStart: false });
      s.events();
      s.client.subscribe(s.now, [{ topicFilter: "x/#", qos: 1 }]);
      const sub = only(s.received(), "subscribe");
      s.send({ type: "suback", packetId: sub.packetId, reasonCodes: [1] });
      const packetId = s.client.publish(s.now, { topic: "a", payload: bytes("1"), qos: 1 }) as number;
      s.received();
      s.events();
      s.client.handleClose(s.now);
      s.events();
      s.connect({ cleanStart: false }, { sessionPresent: false });
      const events = s.events();
      const failed = events.find((e) => e.type === "published");
      assert.ok(
        failed?.type === "published" && failed.packetId === packetId && failed.error instanceof MqttError,
      );
      const again = only(s.received(), "subscribe");
      assert.deepEqual(again.subscriptions.map((x) => [x.topicFilter, x.qos]), [["x/#", 1]]);
      // Its SUBACK is the machine's own business, not an event.
      s.send({ type: "suback", packetId: again.packetId, reasonCodes: [1] });
      assert.deepEqual(s.events(), []);
    });
  }

  test(`v${version}: a local subscription gets the messages matching its filters; shared filters stay on the wire until the last one leaves`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect();
    s.events();
    const one = s.client.subscribe(s.now, [{ topicFilter: "a/+" }, { topicFilter: "b" }]);
    const two = s.client.subscribe(s.now, [{ topicFilter: "a/+" }]);
    const subs = s.received();
    assert.deepEqual(types(subs), ["subscribe", "subscribe"]);
    s.send({ type: "suback", packetId: one.packetId, reasonCodes: [0, 0] });
    s.send({ type: "suback", packetId: two.packetId, reasonCodes: [0] });
    const acks = s.events();
    assert.deepEqual(acks.map((e) => e.type), ["subscribed", "subscribed"]);
    s.send(incoming({ topic: "a/x" }), incoming({ topic: "b" }), incoming({ topic: "c" }));
    const messages = s.events().map((e) => e.type === "message" ? [e.packet.topic, e.subscriptions] : []);
    assert.deepEqual(messages, [["a/x", [one.subscription, two.subscription]], ["b", [one.subscription]], [
      "c",
      [],
    ]]);
    // Leaving with one: only "b" goes, "a/+" is still wanted by two.
    const leave = s.client.unsubscribe(s.now, one.subscription) as number;
    const unsubscribe = only(s.received(), "unsubscribe");
    assert.deepEqual(unsubscribe.topicFilters, ["b"]);
    assert.equal(unsubscribe.packetId, leave);
    s.send({ type: "unsuback", packetId: leave, reasonCodes: version === 5 ? [0] : [] });
    assert.equal(s.events()[0].type, "unsubscribed");
    s.send(incoming({ topic: "a/y" }));
    const [message] = s.events();
    assert.ok(message.type === "message");
    assert.deepEqual(message.subscriptions, [two.subscription]);
  });

  test(`v${version}: messages to one topic follow every change of the subscriptions that match it`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect();
    s.events();
    const routeOf = () => {
      s.send(incoming({ topic: "a/x" }));
      const [event] = s.events();
      assert.ok(event.type === "message");
      return [...event.subscriptions].sort((x, y) => x - y);
    };
    const one = s.client.subscribe(s.now, [{ topicFilter: "a/x" }]);
    assert.deepEqual(routeOf(), [one.subscription]);
    assert.deepEqual(routeOf(), [one.subscription]);
    // A second local subscription to the same filter (no new wire subscription), then a new wildcard filter.
    const two = s.client.subscribe(s.now, [{ topicFilter: "a/x" }]);
    assert.deepEqual(routeOf(), [one.subscription, two.subscription]);
    const three = s.client.subscribe(s.now, [{ topicFilter: "a/#" }]);
    assert.deepEqual(routeOf(), [one.subscription, two.subscription, three.subscription]);
    // Leaving: one local subscription of a filter still wanted, then a whole wire subscription.
    s.client.unsubscribe(s.now, one.subscription);
    assert.deepEqual(routeOf(), [two.subscription, three.subscription]);
    s.client.unsubscribe(s.now, three.subscription);
    assert.deepEqual(routeOf(), [two.subscription]);
    s.client.unsubscribe(s.now, two.subscription);
    assert.deepEqual(routeOf(), []);
  });

  test(`v${version}: a server DISCONNECT closes with its reason code`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect();
    s.events();
    s.send({ type: "disconnect", reasonCode: version === 5 ? ReasonCode.ServerShuttingDown : 0 });
    const [closed] = s.events();
    assert.ok(closed.type === "closed");
    assert.equal(closed.error?.source, "peer");
    assert.equal(closed.disconnect?.type, "disconnect");
  });

  test(`v${version}: a refused CONNACK closes with the refusal [MQTT-4.13.2-1]`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.client.connect(0);
    s.received();
    s.send({ type: "connack", sessionPresent: false, reasonCode: ReasonCode.NotAuthorized });
    const [closed] = s.events();
    assert.ok(closed.type === "closed" && closed.error?.reasonCode === ReasonCode.NotAuthorized);
    assert.equal(closed.error?.source, "peer");
    assert.equal(s.client.state, "closed");
  });

  if (version > 3) {
    test(`v${version}: [MQTT-3.2.2-4] session present after a clean start is a protocol error`, () => {
      const s = new FakeServer({ protocolVersion: version });
      s.connect({ cleanStart: true }, { sessionPresent: true });
      const [closed] = s.events();
      assert.ok(closed.type === "closed" && /MQTT-3\.2\.2-4/.test(closed.error?.message ?? ""));
    });
  }

  test(`v${version}: malformed bytes from the server close the connection with 0x81`, () => {
    const s = new FakeServer({ protocolVersion: version });
    s.connect();
    s.events();
    s.received();
    s.client.handleBytes(s.now, Uint8Array.of(0x36, 0));
    const [closed] = s.events();
    assert.ok(closed.type === "closed" && closed.error?.reasonCode === ReasonCode.MalformedPacket);
    if (version === 5) assert.equal(only(s.received(), "disconnect").reasonCode, ReasonCode.MalformedPacket);
  });
}

test("[MQTT-4.6.0-2] with manual acknowledgement, PUBACKs leave in the order the messages arrived", () => {
  const s = new FakeServer({ manualAck: true });
  s.connect();
  s.events();
  s.send(
    incoming({ qos: 1, packetId: 1 }),
    incoming({ qos: 1, packetId: 2 }),
    incoming({ qos: 2, packetId: 3 }),
  );
  assert.equal(s.events().length, 3);
  assert.deepEqual(s.received(), []);
  s.client.acknowledge(s.now, 2);
  assert.deepEqual(s.received(), []);
  s.client.acknowledge(s.now, 1);
  assert.deepEqual(types(s.received()), ["puback", "puback"]);
  s.client.acknowledge(s.now, 3, ReasonCode.QuotaExceeded);
  assert.deepEqual(s.received(), [{ type: "pubrec", packetId: 3, reasonCode: ReasonCode.QuotaExceeded }]);
  // [MQTT-4.3.3-9]: after a failed PUBREC the id is new again.
  s.send(incoming({ qos: 2, packetId: 3 }));
  assert.equal(s.events().length, 1);
});

test("[MQTT-4.6.0-2] a backlog of 5,000 messages acknowledged one by one, while more arrive, keeps PUBACK order", () => {
  const s = new FakeServer({ manualAck: true });
  s.connect();
  s.events();
  const acked: number[] = [];
  let next = 1;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 1000; i++, next++) s.send(incoming({ qos: 1, packetId: next }));
    s.events();
    // Take three quarters of what is waiting, oldest first, then let more arrive.
    const waiting = next - 1 - acked.length;
    for (let i = 0; i < Math.floor(waiting * 0.75); i++) {
      s.client.acknowledge(s.now, acked.length + i + 1);
      for (const p of s.received()) acked.push(p.type === "puback" ? p.packetId : -1);
    }
  }
  for (let id = acked.length + 1; id < next; id++) {
    s.client.acknowledge(s.now, id);
    for (const p of s.received()) acked.push(p.type === "puback" ? p.packetId : -1);
  }
  assert.deepEqual(acked, Array.from({ length: 5000 }, (_, i) => i + 1));
});

test("[MQTT-3.3.4-7] [MQTT-4.9.0-2] publishes beyond the server's Receive Maximum wait, in order, for the quota", () => {
  const s = new FakeServer();
  s.connect({}, { properties: { receiveMaximum: 2 } });
  s.events();
  const ids = [1, 2, 3, 4].map((n) =>
    s.client.publish(s.now, { topic: "t", payload: bytes(`${n}`), qos: 1 }) as number
  );
  assert.deepEqual(s.received().map((p) => p.type === "publish" && p.packetId), ids.slice(0, 2));
  // [MQTT-4.9.0-3]: other packets still flow while the quota is used up.
  s.client.subscribe(s.now, [{ topicFilter: "x" }]);
  assert.deepEqual(types(s.received()), ["subscribe"]);
  s.send({ type: "puback", packetId: ids[1], reasonCode: 0 });
  assert.deepEqual(s.received().map((p) => p.type === "publish" && p.packetId), [ids[2]]);
  s.send({ type: "puback", packetId: ids[0], reasonCode: ReasonCode.QuotaExceeded });
  assert.deepEqual(s.received().map((p) => p.type === "publish" && p.packetId), [ids[3]]);
  const failed = s.events().find((e) => e.type === "published" && e.packetId === ids[0]);
  assert.ok(failed?.type === "published" && failed.error?.reasonCode === ReasonCode.QuotaExceeded);
});

test("a server exceeding the client's Receive Maximum is taken, not disconnected (MQTT 5 §3.3.4: a MAY; a loop otherwise)", () => {
  const s = new FakeServer({ manualAck: true });
  s.connect({ properties: { receiveMaximum: 2 } });
  s.events();
  s.send(
    incoming({ qos: 1, packetId: 1 }),
    incoming({ qos: 2, packetId: 2 }),
    incoming({ qos: 1, packetId: 3 }),
    incoming({ qos: 1, packetId: 3, dup: true }),
  );
  const events = s.events();
  assert.deepEqual(events.map((e) => e.type === "message" && e.packet.packetId), [1, 2, 3]);
  assert.equal(s.client.state, "connected");
  assert.deepEqual(s.received(), []);
  for (const id of [1, 2, 3]) s.client.acknowledge(1, id);
  assert.deepEqual(s.received().map((p) => [p.type, "packetId" in p && p.packetId]), [
    ["puback", 1],
    ["pubrec", 2],
    ["puback", 3],
  ]);
});

test("[MQTT-3.2.2-17] [MQTT-3.2.2-18] topic aliases go out only within the server's Topic Alias Maximum", () => {
  const none = new FakeServer();
  none.connect();
  none.client.publish(0, { topic: "a", payload: bytes("x") });
  assert.equal(only(none.received(), "publish").properties, undefined);

  const s = new FakeServer();
  s.connect({}, { properties: { topicAliasMaximum: 1 } });
  for (const topic of ["long/topic", "long/topic", "other"]) {
    s.client.publish(s.now, { topic, payload: bytes("x") });
  }
  const sent = s.received() as PublishPacket[];
  assert.deepEqual(sent.map((p) => [p.topic, p.properties?.topicAlias]), [
    ["long/topic", 1],
    ["", 1],
    ["other", undefined],
  ]);
});

test("[MQTT-3.3.2-10] incoming topic aliases resolve within the client's maximum; others are 0x94", () => {
  const s = new FakeServer();
  s.connect({ properties: { topicAliasMaximum: 2 } });
  s.events();
  s.send(
    incoming({ topic: "x/y", properties: { topicAlias: 2 } }),
    incoming({ topic: "", properties: { topicAlias: 2 } }),
  );
  const topics = s.events().map((e) => e.type === "message" && e.packet.topic);
  assert.deepEqual(topics, ["x/y", "x/y"]);
  s.send(incoming({ topic: "z", properties: { topicAlias: 3 } }));
  const [closed] = s.events();
  assert.ok(closed.type === "closed" && closed.error?.reasonCode === ReasonCode.TopicAliasInvalid);
  assert.equal(only(s.received(), "disconnect").reasonCode, ReasonCode.TopicAliasInvalid);
});

test("[MQTT-3.1.2-21] the server's keep-alive replaces the client's", () => {
  const s = new FakeServer({ keepAlive: 60 });
  s.connect({}, { properties: { serverKeepAlive: 5 } });
  assert.equal(s.client.pollTimeout(), 5000);
});

test("[MQTT-3.2.2-15] [MQTT-3.2.2-11] [MQTT-3.2.2-14] publishes the server cannot take fail locally", () => {
  const s = new FakeServer();
  s.connect({}, { properties: { maximumPacketSize: 50, maximumQoS: 1, retainAvailable: false } });
  assert.throws(
    () => s.client.publish(0, { topic: "t", payload: new Uint8Array(100) }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.PacketTooLarge,
  );
  assert.throws(
    () => s.client.publish(0, { topic: "t", payload: bytes("x"), qos: 2 }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.QoSNotSupported,
  );
  assert.throws(
    () => s.client.publish(0, { topic: "t", payload: bytes("x"), retain: true }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.RetainNotSupported,
  );
  assert.throws(() => s.client.publish(0, { topic: "a/+", payload: bytes("x") }), MqttError);
  assert.equal(s.client.publish(0, { topic: "t", payload: bytes("x"), qos: 1 }), 1);
});

test("subscription identifiers route a message to exactly the subscriptions it was delivered for", () => {
  const s = new FakeServer();
  s.connect();
  s.events();
  const plain = s.client.subscribe(s.now, [{ topicFilter: "jobs/#" }]);
  const shared = s.client.subscribe(s.now, [{ topicFilter: "$share/g/jobs/#" }]);
  const [a, b] = s.received() as Extract<Packet, { type: "subscribe" }>[];
  const idA = a.properties?.subscriptionIdentifier as number;
  const idB = b.properties?.subscriptionIdentifier as number;
  assert.notEqual(idA, idB);
  s.send(
    incoming({ topic: "jobs/1", properties: { subscriptionIdentifiers: [idB] } }),
    incoming({ topic: "jobs/1", properties: { subscriptionIdentifiers: [idA] } }),
  );
  const routes = s.events().filter((e) => e.type === "message").map((e) =>
    e.type === "message" && e.subscriptions
  );
  assert.deepEqual(routes, [[shared.subscription], [plain.subscription]]);
});

test("enhanced authentication: AUTH from the server is an event and the client answers with auth()", () => {
  const s = new FakeServer();
  s.client.connect(0, {
    properties: { authenticationMethod: "SCRAM-SHA-1", authenticationData: bytes("first") },
  });
  s.received();
  s.send({
    type: "auth",
    reasonCode: ReasonCode.ContinueAuthentication,
    properties: { authenticationMethod: "SCRAM-SHA-1" },
  });
  const [event] = s.events();
  assert.ok(event.type === "auth" && event.packet.reasonCode === ReasonCode.ContinueAuthentication);
  s.client.auth(s.now, ReasonCode.ContinueAuthentication, {
    authenticationMethod: "SCRAM-SHA-1",
    authenticationData: bytes("final"),
  });
  assert.equal(only(s.received(), "auth").reasonCode, ReasonCode.ContinueAuthentication);
  s.send({ type: "connack", sessionPresent: false, reasonCode: 0 });
  assert.equal(s.events()[0].type, "connected");
});

test("disconnect() sends DISCONNECT and closes without an error", () => {
  const s = new FakeServer();
  s.connect();
  s.events();
  s.client.disconnect(s.now, ReasonCode.DisconnectWithWillMessage);
  assert.equal(only(s.received(), "disconnect").reasonCode, ReasonCode.DisconnectWithWillMessage);
  assert.deepEqual(s.events(), [{ type: "closed" }]);
});

test("a refused CONNACK naming another server is surfaced with the closed event", () => {
  const s = new FakeServer();
  s.client.connect(0);
  s.received();
  s.send({
    type: "connack",
    sessionPresent: false,
    reasonCode: ReasonCode.UseAnotherServer,
    properties: { serverReference: "other.example:1883" },
  });
  const [closed] = s.events();
  assert.ok(closed.type === "closed");
  assert.equal(closed.error?.reasonCode, ReasonCode.UseAnotherServer);
  assert.equal(closed.connack?.properties?.serverReference, "other.example:1883");
});

test("[MQTT-3.1.2-24] a packet over the client's Maximum Packet Size closes the connection with 0x95", () => {
  const s = new FakeServer();
  s.connect({ properties: { maximumPacketSize: 64 } });
  s.events();
  s.send(incoming({ payload: new Uint8Array(100) }));
  const [closed] = s.events();
  assert.ok(closed.type === "closed" && closed.error?.reasonCode === ReasonCode.PacketTooLarge);
  assert.equal(only(s.received(), "disconnect").reasonCode, ReasonCode.PacketTooLarge);
});

test("[MQTT-3.2.2-15] the size check counts the topic alias a first use adds: a PUBLISH that fits only without it is refused", () => {
  const s = new FakeServer();
  // v5 PUBLISH QoS 1 to "t" with 20 bytes of payload: 2 + 3 + 2 + 1 + 20 = 28 bytes; the first use of an
  // alias adds 3 (property 0x23 and two bytes).
  s.connect({}, { properties: { maximumPacketSize: 29, topicAliasMaximum: 4 } });
  s.events();
  assert.throws(
    () => s.client.publish(s.now, { topic: "t", payload: new Uint8Array(20), qos: 1 }),
    (error) => error instanceof MqttError && error.reasonCode === ReasonCode.PacketTooLarge,
  );
  s.client.publish(s.now, { topic: "t", payload: new Uint8Array(17), qos: 1 });
  const [publish] = s.received();
  assert.equal(publish.type === "publish" && publish.properties?.topicAlias, 1);
});

test("[MQTT-3.2.2-15] a publish in flight that a reconnected server's lower Maximum Packet Size cannot take fails instead of being resent", () => {
  const s = new FakeServer();
  s.connect({ cleanStart: false });
  s.events();
  const big = s.client.publish(s.now, { topic: "t", payload: new Uint8Array(100), qos: 1 }) as number;
  const small = s.client.publish(s.now, { topic: "t", payload: new Uint8Array(10), qos: 1 }) as number;
  s.received();
  s.client.handleClose(s.now);
  s.events();
  s.connect({ cleanStart: false }, { sessionPresent: true, properties: { maximumPacketSize: 64 } });
  const events = s.events();
  const failed = events.find((e) => e.type === "published" && e.packetId === big);
  assert.ok(failed?.type === "published" && failed.error?.reasonCode === ReasonCode.PacketTooLarge);
  assert.deepEqual(
    s.received().filter((p) => p.type === "publish").map((p) => p.type === "publish" && [p.packetId, p.dup]),
    [[small, true]],
  );
});

test("an exported session restores into a new machine and resumes its flows and subscriptions", () => {
  const s = new FakeServer({ clientId: "keeper" });
  s.connect({ cleanStart: false });
  s.events();
  s.client.subscribe(s.now, [{ topicFilter: "cmd/#", qos: 1 }]);
  const a = s.client.publish(s.now, { topic: "a", payload: bytes("1"), qos: 1 }) as number;
  const b = s.client.publish(s.now, { topic: "b", payload: bytes("2"), qos: 2 }) as number;
  s.received();
  s.send({ type: "pubrec", packetId: b, reasonCode: 0 });
  s.send(incoming({ qos: 2, packetId: 40 }));
  s.received();
  const state = JSON.parse(
    JSON.stringify(s.client.exportSession(), (_k, v) => v instanceof Uint8Array ? [...v] : v),
  );
  for (const entry of state.outgoing) entry.packet.payload = Uint8Array.from(entry.packet.payload);

  const t = new FakeServer({ clientId: "keeper" });
  const [subscription] = t.client.restoreSession(state);
  t.connect({ cleanStart: false }, { sessionPresent: true });
  const resent = t.received();
  assert.deepEqual(resent.map((p) => [p.type, "packetId" in p ? p.packetId : 0]), [["publish", a], [
    "pubrel",
    b,
  ]]);
  // The inbound QoS 2 message is still awaiting PUBREL: a duplicate is not delivered again.
  t.events();
  t.send(incoming({ qos: 2, packetId: 40, dup: true }));
  assert.deepEqual(t.events(), []);
  t.send(incoming({ topic: "cmd/go" }));
  const [message] = t.events();
  assert.ok(message.type === "message");
  assert.deepEqual(message.subscriptions, [subscription]);
  // A new publish does not reuse a restored packet id.
  const c = t.client.publish(t.now, { topic: "c", payload: bytes("3"), qos: 1 });
  assert.ok(c !== a && c !== b);
});

test("PUBCOMP 0x92 after a PUBREL resent on recovery completes the publish without an error", () => {
  const s = new FakeServer();
  s.connect({ cleanStart: false });
  s.events();
  const packetId = s.client.publish(s.now, { topic: "t", payload: bytes("x"), qos: 2 }) as number;
  s.received();
  s.send({ type: "pubrec", packetId, reasonCode: 0 });
  s.received();
  s.client.handleClose(s.now);
  s.events();
  s.connect({ cleanStart: false }, { sessionPresent: true });
  assert.equal(only(s.received(), "pubrel").packetId, packetId);
  s.events();
  s.send({ type: "pubcomp", packetId, reasonCode: ReasonCode.PacketIdentifierNotFound });
  const [published] = s.events();
  assert.ok(published.type === "published" && published.error === undefined);
});
