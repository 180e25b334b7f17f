import { test } from "node:test";
import assert from "node:assert/strict";
import type { ProtocolVersion, QoS } from "../../src/codec/packet.ts";
import { encode } from "../../src/codec/encode.ts";
import { ReasonCode } from "../../src/errors.ts";
import { publishEncodeCounter } from "../../src/machine/_delivery.ts";
import { Harness, text } from "./_broker_helpers.ts";

const VERSIONS: ProtocolVersion[] = [3, 4, 5];

test("BrokerMachine.route() delivers to +, # and exact filters, not $ topics to leading wildcards [MQTT-4.7.2-1]", () => {
  const h = new Harness();
  const plus = h.connected("plus", 5);
  plus.subscribe("a/+/c");
  const hash = h.connected("hash", 5);
  hash.subscribe("#");
  const sys = h.connected("sys", 5);
  sys.subscribe("$SYS/#");
  const pub = h.connected("p", 5);
  pub.publish("a/b/c", "1");
  pub.publish("$SYS/x", "2");
  pub.publish("a/b", "3");
  assert.deepStrictEqual(plus.takePublishes().map((p) => p.topic), ["a/b/c"]);
  assert.deepStrictEqual(hash.takePublishes().map((p) => p.topic), ["a/b/c", "a/b"]);
  assert.deepStrictEqual(sys.takePublishes().map((p) => p.topic), ["$SYS/x"]);
});

for (const version of VERSIONS) {
  test(`BrokerMachine sends one copy for overlapping subscriptions at the highest QoS, v${version} ${version === 5 ? "[MQTT-3.3.4-2]" : "[MQTT-3.3.5-1]"}`, () => {
    const h = new Harness();
    const sub = h.connected("s", version);
    sub.subscribe("a/#", 1);
    sub.subscribe("a/+", 2);
    sub.subscribe("a/b", 0);
    const pub = h.connected("p", version);
    pub.publish("a/b", "x", { qos: 2, packetId: 1 });
    const got = sub.takePublishes();
    assert.equal(got.length, 1);
    assert.equal(got[0].qos, 2);
  });

  test(`BrokerMachine delivers at the lower of the published and the granted QoS, v${version} ${version === 5 ? "[MQTT-3.8.4-8]" : "[MQTT-3.8.4-6]"}`, () => {
    const h = new Harness();
    const sub = h.connected("s", version);
    sub.subscribe("q/0", 0);
    sub.subscribe("q/1", 1);
    sub.subscribe("q/2", 2);
    const pub = h.connected("p", version);
    const cases: [string, QoS, QoS][] = [["q/0", 2, 0], ["q/1", 2, 1], ["q/2", 1, 1], ["q/2", 0, 0], [
      "q/1",
      0,
      0,
    ]];
    let id = 1;
    for (const [topic, qos, expected] of cases) {
      pub.publish(topic, "x", { qos, packetId: id++ });
      pub.take();
      if (qos === 2) pub.send({ type: "pubrel", packetId: id - 1, reasonCode: 0 });
      const [got] = sub.ackAll();
      assert.equal(got.qos, expected, `${topic} at ${qos}`);
    }
  });

  test(`BrokerMachine.subscribe() answers SUBACK with one code per filter in order, v${version} ${version === 5 ? "[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5] [MQTT-3.9.3-1]" : "[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-4] [MQTT-3.9.3-1]"}`, () => {
    const h = new Harness();
    h.hooks.subscribe = (_c, subs) =>
      subs.map((s) => s.topicFilter === "denied" ? ReasonCode.NotAuthorized : 1);
    const sub = h.connected("s", version);
    const subscriptions = ["x/#", "denied", "bad/#/x", "y"].map((topicFilter) => ({
      topicFilter,
      qos: 2 as QoS,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0 as const,
    }));
    sub.send({ type: "subscribe", packetId: 77, subscriptions });
    const v5 = version === 5;
    assert.deepStrictEqual(sub.take(), [{
      type: "suback",
      packetId: 77,
      // 3.x encodes every failure as 0x80, which decodes as 0x80.
      reasonCodes: [1, v5 ? ReasonCode.NotAuthorized : 0x80, v5 ? ReasonCode.TopicFilterInvalid : 0x80, 1],
    }]);
  });

  test(`BrokerMachine.subscribe() refuses a filter deeper than maxTopicLevels (default 128) and keeps nothing of it, v${version}`, () => {
    const h = new Harness();
    const sub = h.connected("s", version);
    const filter = (levels: number) => Array.from({ length: levels }, (_, i) => `l${i}`).join("/");
    const subscriptions = [filter(128), filter(129), filter(10_000), `$share/g/${filter(128)}`].map((
      topicFilter,
    ) => ({
      topicFilter,
      qos: 1 as QoS,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0 as const,
    }));
    sub.send({ type: "subscribe", packetId: 9, subscriptions });
    const refused = version === 5 ? ReasonCode.TopicFilterInvalid : 0x80;
    assert.deepStrictEqual(sub.take(), [{
      type: "suback",
      packetId: 9,
      reasonCodes: [1, refused, refused, 1],
    }]);
    // The refused filters were not added: nothing published to their topics reaches the subscriber.
    const pub = h.connected("p", version);
    pub.publish(filter(129), "x");
    pub.publish(filter(10_000), "x");
    assert.deepStrictEqual(sub.takePublishes(), []);
    pub.publish(filter(128), "x");
    assert.ok(sub.takePublishes().length > 0);
    const narrow = new Harness({ maxTopicLevels: 2 });
    const client = narrow.connected("c", version);
    assert.deepStrictEqual(client.subscribe("a/b", 0), [0]);
    assert.deepStrictEqual(client.subscribe("a/b/c", 0), [refused]);
  });

  test(`BrokerMachine.unsubscribe() stops deliveries and answers UNSUBACK even for unknown filters, v${version} [MQTT-3.10.4-2] [MQTT-3.10.4-4] [MQTT-3.10.4-5]`, () => {
    const h = new Harness();
    const sub = h.connected("s", version);
    sub.subscribe("a", 0);
    sub.send({ type: "unsubscribe", packetId: 5, topicFilters: ["a", "nope"] });
    assert.deepStrictEqual(sub.take(), [{
      type: "unsuback",
      packetId: 5,
      reasonCodes: version === 5 ? [0, ReasonCode.NoSubscriptionExisted] : [],
    }]);
    const pub = h.connected("p", version);
    pub.publish("a", "x");
    assert.deepStrictEqual(sub.take(), []);
  });

  test(`BrokerMachine stores, replaces and clears retained messages and sends them on subscribe, v${version} ${version === 5 ? "[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7] [MQTT-3.3.1-8]" : "[MQTT-3.3.1-5] [MQTT-3.3.1-8] [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] [MQTT-3.3.1-12]"}`, () => {
    const h = new Harness();
    const pub = h.connected("p", version);
    pub.publish("r/1", "first", { retain: true });
    pub.publish("r/1", "second", { retain: true });
    pub.publish("r/2", "other", { retain: true, qos: 1, packetId: 1 });
    pub.publish("r/3", "gone", { retain: true });
    pub.publish("r/3", "", { retain: true });
    pub.publish("r/4", "not retained");
    assert.equal(h.broker.retainedCount, 2);
    const sub = h.connected("s", version);
    sub.subscribe("r/+", 1);
    const got = sub.takePublishes();
    assert.deepStrictEqual(got.map((p) => [p.topic, text(p.payload), p.retain, p.qos]).sort(), [
      ["r/1", "second", true, 0],
      ["r/2", "other", true, 1],
    ]);
    // Live messages to an established subscription: RETAIN 0 [MQTT-3.3.1-9] (3.1.1).
    pub.publish("r/1", "live", { retain: true });
    assert.deepStrictEqual(sub.takePublishes().map((p) => p.retain), [false]);
  });

  test(`BrokerMachine shares a subscription among a group in turn, v${version} ${version === 5 ? "[MQTT-4.8.2-3]" : "(no 3.1.1 statement)"}`, () => {
    const h = new Harness();
    const members = ["m1", "m2", "m3"].map((id) => {
      const c = h.connected(id, version);
      c.subscribe("$share/g/jobs/+", 1);
      return c;
    });
    const other = h.connected("other", version);
    other.subscribe("$share/h/jobs/#", 0);
    const pub = h.connected("p", version);
    for (let i = 0; i < 6; i++) pub.publish(`jobs/${i}`, `${i}`);
    const counts = members.map((m) => m.takePublishes().length);
    assert.deepStrictEqual(counts, [2, 2, 2]);
    assert.equal(other.takePublishes().length, 6);
  });
}

test("BrokerMachine gives a single copy every matching subscription identifier [MQTT-3.3.4-3] [MQTT-3.3.4-4]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5);
  sub.subscribe("a/#", 1, 10);
  sub.subscribe("a/+", 0, 20);
  sub.subscribe("a/b", 0);
  const pub = h.connected("p", 5);
  pub.publish("a/b", "x", { qos: 1, packetId: 1 });
  const got = sub.takePublishes();
  assert.equal(got.length, 1);
  assert.deepStrictEqual(got[0].properties?.subscriptionIdentifiers?.sort(), [10, 20]);
});

test("BrokerMachine does not send a message back to its publisher with No Local [MQTT-3.8.3-3]", () => {
  const h = new Harness();
  const c = h.connected("c", 5);
  c.subscribe({ topicFilter: "a", noLocal: true });
  const other = h.connected("o", 5);
  other.subscribe({ topicFilter: "a", noLocal: true });
  c.publish("a", "x");
  assert.deepStrictEqual(c.take(), []);
  assert.equal(other.takePublishes().length, 1);
});

test("BrokerMachine keeps RETAIN only with Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13]", () => {
  const h = new Harness();
  const asPublished = h.connected("rap", 5);
  asPublished.subscribe({ topicFilter: "a", retainAsPublished: true });
  const plain = h.connected("plain", 5);
  plain.subscribe({ topicFilter: "a", retainAsPublished: false });
  const pub = h.connected("p", 5);
  pub.publish("a", "x", { retain: true });
  assert.deepStrictEqual(asPublished.takePublishes().map((p) => p.retain), [true]);
  assert.deepStrictEqual(plain.takePublishes().map((p) => p.retain), [false]);
});

test("BrokerMachine follows retain handling 0, 1 and 2 [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] [MQTT-3.8.4-4]", () => {
  const h = new Harness();
  const pub = h.connected("p", 5);
  pub.publish("r", "kept", { retain: true });
  const sub = h.connected("s", 5);
  sub.subscribe({ topicFilter: "r", retainHandling: 2 });
  assert.equal(sub.takePublishes().length, 0);
  sub.subscribe({ topicFilter: "r", retainHandling: 1 }); // exists already: none
  assert.equal(sub.takePublishes().length, 0);
  sub.subscribe({ topicFilter: "r", retainHandling: 0 }); // always
  assert.equal(sub.takePublishes().length, 1);
  const fresh = h.connected("f", 5);
  fresh.subscribe({ topicFilter: "r", retainHandling: 1 }); // new: sent
  assert.equal(fresh.takePublishes().length, 1);
  const shared = h.connected("sh", 5);
  shared.subscribe({ topicFilter: "$share/g/r", retainHandling: 0 }); // never to shared subscriptions
  assert.equal(shared.takePublishes().length, 0);
});

test("BrokerMachine replaces an identical subscription instead of adding one [MQTT-3.8.4-3]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5);
  sub.subscribe("a", 2);
  sub.subscribe("a", 0);
  const pub = h.connected("p", 5);
  pub.publish("a", "x", { qos: 2, packetId: 1 });
  const got = sub.takePublishes();
  assert.equal(got.length, 1);
  assert.equal(got[0].qos, 0);
});

test("BrokerMachine lets a 3.1.1 publisher and a 5.0 subscriber exchange messages both ways", () => {
  const h = new Harness();
  const v4 = h.connected("v4", 4);
  const v5 = h.connected("v5", 5);
  const v3 = h.connected("v3", 3);
  v4.subscribe("to/v4", 2);
  v5.subscribe("to/v5", 2, 3);
  v3.subscribe("to/v3", 1);
  v4.publish("to/v5", "from 3.1.1", { qos: 1, packetId: 1 });
  v5.publish("to/v4", "from 5.0", { qos: 2, packetId: 1, properties: { userProperties: [["k", "v"]] } });
  v5.send({ type: "pubrel", packetId: 1, reasonCode: 0 });
  v5.publish("to/v3", "to 3.1", { qos: 2, packetId: 2 });
  const [toV5] = v5.takePublishes();
  assert.deepStrictEqual([toV5.topic, text(toV5.payload), toV5.qos, toV5.properties], [
    "to/v5",
    "from 3.1.1",
    1,
    { subscriptionIdentifiers: [3] },
  ]);
  const [toV4] = v4.takePublishes();
  assert.deepStrictEqual([toV4.topic, text(toV4.payload), toV4.qos, toV4.properties], [
    "to/v4",
    "from 5.0",
    2,
    undefined,
  ]);
  const [toV3] = v3.takePublishes();
  assert.deepStrictEqual([toV3.topic, text(toV3.payload), toV3.qos], ["to/v3", "to 3.1", 1]);
});

test("BrokerMachine.route() encodes a PUBLISH once per version, QoS and properties, whatever the fan-out", () => {
  const h = new Harness();
  const subscribers = [];
  for (let i = 0; i < 30; i++) {
    const version = ([3, 4, 5] as const)[i % 3];
    const c = h.connected(`s${i}`, version);
    c.subscribe("fan/out", i % 2 === 0 ? 1 : 0);
    subscribers.push(c);
  }
  const pub = h.connected("p", 5);
  const before = publishEncodeCounter.count;
  pub.publish("fan/out", "payload", { qos: 1, packetId: 1 });
  // (MQTT 5, or 3.1 and 3.1.1, whose PUBLISH are alike) × 2 QoS levels.
  assert.equal(publishEncodeCounter.count - before, 4);
  const ids = new Set<number>();
  for (const c of subscribers) {
    const [p] = c.takePublishes();
    assert.equal(text(p.payload), "payload");
    if (p.qos === 1) ids.add(p.packetId as number);
  }
  assert.equal(ids.size, 1); // each session numbers from 1: the patched identifier is the session's own
});

test("BrokerMachine.route() patches each session's own packet identifier into the shared encoding [MQTT-2.2.1-4]", () => {
  const h = new Harness();
  const a = h.connected("a", 5);
  a.subscribe("x", 1);
  a.subscribe("y", 1);
  const b = h.connected("b", 5);
  b.subscribe("y", 1);
  const pub = h.connected("p", 5);
  pub.publish("x", "1", { qos: 1, packetId: 1 });
  pub.publish("y", "2", { qos: 1, packetId: 2 });
  assert.deepStrictEqual(a.takePublishes().map((p) => p.packetId), [1, 2]);
  assert.deepStrictEqual(b.takePublishes().map((p) => p.packetId), [1]);
});

test("BrokerMachine copies payloads it keeps beyond the turn", () => {
  const h = new Harness();
  const pub = h.connected("p", 5);
  const chunk = new Uint8Array(64);
  const sub = h.connected("s", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  sub.subscribe("q", 1);
  sub.drop();
  const message = new TextEncoder().encode("abc");
  pub.send({ type: "publish", topic: "q", payload: message, qos: 1, packetId: 1, retain: true, dup: false });
  chunk.fill(0);
  const back = h.connect("s", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  const got = back.takePublishes();
  assert.deepStrictEqual(got.map((p) => text(p.payload)), ["abc"]);
  const exported = h.broker.exportState(h.now);
  assert.deepStrictEqual(text(exported.retained[0].payload), "abc");
});

test("BrokerMachine does not send a retained message that has expired [MQTT-3.3.2-5]", () => {
  const h = new Harness();
  const pub = h.connected("p", 5);
  pub.publish("r", "short", { retain: true, properties: { messageExpiryInterval: 5 } });
  pub.publish("q", "long", { retain: true, properties: { messageExpiryInterval: 50 } });
  h.now = 10_000;
  const sub = h.connected("s", 5);
  sub.subscribe("#");
  const got = sub.takePublishes();
  assert.deepStrictEqual(got.map((p) => [p.topic, p.properties?.messageExpiryInterval]), [["q", 40]]);
  assert.equal(h.broker.retainedCount, 1);
});

test("BrokerMachine sends a shared and a non-shared match as separate copies, each with its own identifier [MQTT-3.3.4-5]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5);
  sub.subscribe("$share/g/a", 1, 1);
  sub.subscribe("a", 1, 2);
  h.connected("p", 5).publish("a", "x", { qos: 1, packetId: 1 });
  const got = sub.takePublishes().map((p) => p.properties?.subscriptionIdentifiers);
  assert.deepStrictEqual(got.sort(), [[1], [2]]);
});

test("SessionMachine refuses No Local on a shared subscription with a protocol error [MQTT-3.8.3-4]", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.send({
    type: "subscribe",
    packetId: 1,
    subscriptions: [{
      topicFilter: "$share/g/a",
      qos: 0,
      noLocal: true,
      retainAsPublished: false,
      retainHandling: 0,
    }],
  });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.ProtocolError }]);
});

test("BrokerMachine matches filters character by character, without normalizing [MQTT-4.7.3-4] [MQTT-3.10.4-1]", () => {
  const h = new Harness();
  const sub = h.connected("s", 5);
  sub.subscribe("caf\u00e9");
  sub.subscribe("A/b");
  const pub = h.connected("p", 5);
  pub.publish("cafe\u0301", "decomposed");
  pub.publish("a/b", "lower");
  pub.publish("caf\u00e9", "composed");
  assert.deepStrictEqual(sub.takePublishes().map((p) => text(p.payload)), ["composed"]);
  sub.send({ type: "unsubscribe", packetId: 2, topicFilters: ["a/b"] });
  assert.deepStrictEqual(sub.take(), [{
    type: "unsuback",
    packetId: 2,
    reasonCodes: [ReasonCode.NoSubscriptionExisted],
  }]);
});

test("BrokerMachine forwards messages in the order received, per publisher [MQTT-4.6.0-5] [MQTT-4.6.0-6]", () => {
  const h = new Harness();
  const sub = h.connected("s", 4);
  sub.subscribe("t", 1);
  const pub = h.connected("p", 4);
  for (let i = 1; i <= 20; i++) pub.publish("t", `${i}`, { qos: 1, packetId: i });
  assert.deepStrictEqual(
    sub.takePublishes().map((p) => Number(text(p.payload))),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});

test("BrokerMachine.pollSession() returns each session with new output once", () => {
  const h = new Harness();
  const a = h.connected("a", 5);
  a.subscribe("x");
  const b = h.connected("b", 4);
  b.subscribe("x");
  const c = h.connected("c", 5);
  c.subscribe("y");
  while (h.broker.pollSession() !== undefined);
  const publisher = h.connected("p", 5);
  while (h.broker.pollSession() !== undefined);
  const packet = {
    type: "publish" as const,
    topic: "x",
    payload: new Uint8Array([1]),
    qos: 0 as const,
    retain: false,
    dup: false,
  };
  assert.equal(h.broker.route(h.now, publisher.session, packet), 2);
  assert.equal(h.broker.route(h.now, publisher.session, packet), 2);
  const dirty = [];
  for (let s = h.broker.pollSession(); s !== undefined; s = h.broker.pollSession()) dirty.push(s);
  assert.deepStrictEqual(dirty, [a.session, b.session]);
  assert.equal(h.broker.stats.routed, 2);
  assert.equal(h.broker.stats.delivered, 4);
  // Takeover makes the old connection dirty: it has a DISCONNECT and a closed event to flush.
  const takeover = new Harness();
  const old = takeover.connected("same", 5);
  while (takeover.broker.pollSession() !== undefined);
  const fresh = takeover.connect("same", 5, { manual: true });
  fresh.events.shift();
  takeover.broker.attach(takeover.now, fresh.session);
  assert.deepStrictEqual([takeover.broker.pollSession(), takeover.broker.pollSession()], [
    old.session,
    fresh.session,
  ]);
});

test("BrokerMachine sends the topic name as published, matching the subscription's filter [MQTT-3.3.2-3]", () => {
  const h = new Harness();
  const sub = h.connected("s", 4);
  sub.subscribe("sport/+/player1/#");
  const pub = h.connected("p", 4);
  pub.publish("sport/tennis/player1/ranking", "1");
  pub.publish("sport/tennis/player2", "2");
  assert.deepStrictEqual(sub.takePublishes().map((p) => p.topic), ["sport/tennis/player1/ranking"]);
});

test("BrokerMachine keeps its own copy of the correlation data of a message it keeps", () => {
  const h = new Harness();
  const pub = h.connected("p", 5);
  const chunk = encode({
    type: "publish",
    topic: "r",
    payload: new Uint8Array([1]),
    qos: 0,
    retain: true,
    dup: false,
    properties: { correlationData: Uint8Array.of(7, 7) },
  }, 5);
  pub.sendBytes(chunk);
  chunk.fill(0); // a driver never reuses chunks, but nothing kept may depend on that
  const sub = h.connected("s", 5);
  sub.subscribe("r");
  const [p] = sub.takePublishes();
  assert.deepStrictEqual([p.payload, p.properties?.correlationData], [Uint8Array.of(1), Uint8Array.of(7, 7)]);
});

test("BrokerMachine passes a shared subscription's message on to a member the read rules allow, not to one they refuse", () => {
  const h = new Harness({ authorizeDelivery: (session) => session.clientId !== "a" });
  const a = h.connected("a", 5);
  a.subscribe("$share/g/t", 0);
  const b = h.connected("b", 5);
  b.subscribe("$share/g/t", 0);
  const pub = h.connected("p", 5);
  for (let i = 1; i <= 4; i++) pub.publish("t", `${i}`);
  assert.deepStrictEqual(a.takePublishes(), []);
  assert.deepStrictEqual(b.takePublishes().map((p) => text(p.payload)), ["1", "2", "3", "4"]);
});
