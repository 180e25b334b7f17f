/**
 * Shared subscriptions (MQTT 5 §4.8.2): a QoS 1 or 2 message whose member goes away before acknowledging it is
 * handed to another member of the group. Its connection ending (or being taken over), its unsubscribing the
 * shared filter and its session ending each hand over what it has not completed; a QoS 2 message already
 * released stays; with no other member, nothing moves. The journal, the publishers' held acknowledgements and
 * a restored session keep up.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { PublishPacket, QoS } from "../../src/codec/packet.ts";
import { BrokerMachine, type BrokerMachineOptions } from "../../src/machine/broker_machine.ts";
import { type ConnectOptions, Harness, type TestClient, text } from "./_broker_helpers.ts";
import { canonical, ModelStore } from "./_journal_helpers.ts";

const GROUP = "$share/g/t";

/** A session that outlives its connection, with a Receive Maximum that queues what is beyond it. */
function persistent(receiveMaximum = 65_535, expiry = 600): ConnectOptions {
  return { cleanStart: false, properties: { sessionExpiryInterval: expiry, receiveMaximum } };
}

/** Publishes `count` messages "0", "1", … at `qos` to the group's topic. */
function publishAll(publisher: TestClient, count: number, qos: QoS, first = 0): void {
  for (let i = first; i < first + count; i++) publisher.publish("t", `${i}`, { qos, packetId: i + 1 });
}

function payloads(publishes: PublishPacket[]): string[] {
  return publishes.map((p) => text(p.payload));
}

/**
 * A group whose member `a` holds `inflight` + `queued` messages (receive maximum `inflight`) that it has not
 * acknowledged, and a member `b` that subscribed after they were routed (so that it got none).
 */
function loaded(qos: QoS, inflight: number, queued: number, options: BrokerMachineOptions = {}) {
  const h = new Harness(options);
  const a = h.connected("a", 5, persistent(inflight));
  a.subscribe(GROUP, qos);
  const publisher = h.connected("p", 5);
  publishAll(publisher, inflight + queued, qos);
  const received = a.takePublishes();
  assert.deepStrictEqual(payloads(received), [...Array(inflight).keys()].map(String));
  assert.equal(a.session.session.queue.length, queued);
  const b = h.connected("b", 5);
  b.subscribe(GROUP, qos);
  return { h, a, b, publisher, received };
}

for (const qos of [1, 2] as const) {
  test(`Shared subscription: QoS ${qos} messages in flight and queued go to another member when the connection drops (MQTT 5 §4.8.2)`, () => {
    const { h, a, b } = loaded(qos, 2, 2);
    a.drop();
    const moved = b.takePublishes();
    assert.deepStrictEqual(payloads(moved), ["0", "1", "2", "3"]);
    assert.ok(moved.every((p) => p.qos === qos && !p.dup));
    assert.equal(a.session.session.inflight.size, 0);
    assert.equal(a.session.session.queue.length, 0);
    // b completes them as usual.
    for (const p of moved) {
      if (qos === 1) b.send({ type: "puback", packetId: p.packetId!, reasonCode: 0 });
      else {
        b.send({ type: "pubrec", packetId: p.packetId!, reasonCode: 0 });
        b.send({ type: "pubcomp", packetId: p.packetId!, reasonCode: 0 });
      }
    }
    assert.equal(b.session.session.inflight.size, 0);
    // a resumes its session without them: nothing is resent, and its next messages flow.
    const back = h.connect("a", 5, persistent(2));
    const [connack, ...rest] = back.take();
    assert.ok(connack.type === "connack" && connack.sessionPresent);
    assert.deepStrictEqual(rest, []);
    h.connected("p2", 5).publish("t", "later", { qos, packetId: 1 });
    assert.equal(back.takePublishes().length + b.takePublishes().length, 1);
  });
}

test("Shared subscription: a QoS 2 message already released (PUBREC received) stays with its member; the others move", () => {
  const { h, a, b, received } = loaded(2, 3, 1);
  a.send({ type: "pubrec", packetId: received[1].packetId!, reasonCode: 0 });
  assert.deepStrictEqual(a.take(), [{ type: "pubrel", packetId: received[1].packetId!, reasonCode: 0 }]);
  a.drop();
  assert.deepStrictEqual(payloads(b.takePublishes()), ["0", "2", "3"]);
  const inflight = [...a.session.session.inflight.values()];
  assert.deepStrictEqual(inflight.map((d) => [text(d.message.payload), d.released]), [["1", true]]);
  // Back, a gets the PUBREL again [MQTT-4.4.0-1], not the PUBLISH.
  const back = h.connect("a", 5, persistent(3));
  assert.deepStrictEqual(back.take().slice(1), [
    { type: "pubrel", packetId: received[1].packetId!, reasonCode: 0 },
  ]);
});

test("Shared subscription: acknowledged messages and those of ordinary subscriptions never move", () => {
  const { h, a, b, received } = loaded(1, 3, 0);
  a.subscribe("u", 1); // an ordinary subscription
  h.connected("q", 5).publish("u", "plain", { qos: 1, packetId: 1 });
  assert.deepStrictEqual(a.take(), []); // queued: a's Receive Maximum is reached
  a.send({ type: "puback", packetId: received[0].packetId!, reasonCode: 0 });
  const [plain] = a.takePublishes(); // the room made goes to it
  assert.equal(text(plain.payload), "plain");
  a.drop();
  assert.deepStrictEqual(payloads(b.takePublishes()), ["1", "2"]);
  const back = h.connect("a", 5, persistent(3));
  assert.deepStrictEqual(back.takePublishes().map((p) => [text(p.payload), p.dup]), [["plain", true]]);
});

test("Shared subscription: with no other member the messages stay, and are resent when the member returns", () => {
  const h = new Harness();
  const a = h.connected("a", 5, persistent(1));
  a.subscribe(GROUP, 1);
  publishAll(h.connected("p", 5), 2, 1);
  assert.equal(a.takePublishes().length, 1);
  a.drop();
  assert.equal(a.session.session.inflight.size, 1);
  assert.equal(a.session.session.queue.length, 1);
  const back = h.connect("a", 5, persistent(2));
  const again = back.takePublishes();
  assert.deepStrictEqual(again.map((p) => [text(p.payload), p.dup]), [["0", true], ["1", false]]);
});

test("Shared subscription: with every other member offline, the messages go to an offline persistent member's queue", () => {
  const h = new Harness();
  const a = h.connected("a", 5, persistent(1));
  a.subscribe(GROUP, 1);
  const b = h.connected("b", 5, persistent());
  b.subscribe(GROUP, 1);
  b.drop();
  const c = h.connected("c", 5, persistent());
  c.subscribe(GROUP, 1);
  c.drop();
  publishAll(h.connected("p", 5), 4, 1);
  assert.equal(a.takePublishes().length, 1);
  a.drop();
  // In turn between b and c, never back to a while they are there.
  assert.equal(a.session.session.inflight.size + a.session.session.queue.length, 0);
  const backB = h.connect("b", 5, persistent());
  const backC = h.connect("c", 5, persistent());
  const got = [...payloads(backB.takePublishes()), ...payloads(backC.takePublishes())].sort();
  assert.deepStrictEqual(got, ["0", "1", "2", "3"]);
  assert.ok(backB.inbox.length === 0 && backC.inbox.length === 0);
});

test("Shared subscription: the messages go to the connected members in turn, each at its own subscription's QoS", () => {
  const h = new Harness();
  const a = h.connected("a", 5, persistent(10));
  a.subscribe(GROUP, 2);
  publishAll(h.connected("p", 5), 4, 2);
  assert.equal(a.takePublishes().length, 4);
  const b = h.connected("b", 5);
  b.subscribe(GROUP, 1);
  const c = h.connected("c", 5);
  c.send({
    type: "subscribe",
    packetId: 1,
    subscriptions: [{
      topicFilter: GROUP,
      qos: 2,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    }],
    properties: { subscriptionIdentifier: 9 },
  });
  c.take();
  a.drop();
  const toB = b.takePublishes();
  const toC = c.takePublishes();
  assert.deepStrictEqual([payloads(toB), payloads(toC)], [["0", "2"], ["1", "3"]]);
  assert.ok(toB.every((p) => p.qos === 1 && p.properties?.subscriptionIdentifiers === undefined));
  assert.ok(toC.every((p) => p.qos === 2 && p.properties?.subscriptionIdentifiers?.[0] === 9));
});

test("Shared subscription: unsubscribing the shared filter hands over the queued messages; those in flight complete [MQTT-3.10.4-3]", () => {
  const { a, b, received } = loaded(1, 2, 2);
  a.send({ type: "unsubscribe", packetId: 7, topicFilters: [GROUP] });
  assert.deepStrictEqual(a.take(), [{ type: "unsuback", packetId: 7, reasonCodes: [0] }]);
  assert.deepStrictEqual(payloads(b.takePublishes()), ["2", "3"]);
  assert.equal(a.session.session.queue.length, 0);
  // a still completes what it was sent.
  for (const p of received) a.send({ type: "puback", packetId: p.packetId!, reasonCode: 0 });
  assert.equal(a.session.session.inflight.size, 0);
  assert.deepStrictEqual(a.take(), []);
});

test("Shared subscription: unsubscribing another filter, or another group, hands over nothing", () => {
  const { h, a, b } = loaded(1, 1, 2);
  a.subscribe("$share/other/t", 1);
  a.subscribe("t/x", 1);
  a.send({ type: "unsubscribe", packetId: 7, topicFilters: ["$share/other/t", "t/x"] });
  a.take();
  assert.deepStrictEqual(b.take(), []);
  assert.equal(a.session.session.queue.length, 2);
  void h;
});

test("Shared subscription: a member's in-flight messages left after it unsubscribed move when its connection drops", () => {
  const { a, b } = loaded(1, 2, 0);
  a.send({ type: "unsubscribe", packetId: 7, topicFilters: [GROUP] });
  a.take();
  assert.deepStrictEqual(b.take(), []);
  a.drop();
  assert.deepStrictEqual(payloads(b.takePublishes()), ["0", "1"]);
});

test("Shared subscription: a session that ends hands over what it kept: on expiry, and on a clean start", () => {
  for (const end of ["expiry", "clean start"] as const) {
    const h = new Harness();
    const a = h.connected("a", 5, persistent(1, 10));
    a.subscribe(GROUP, 1);
    publishAll(h.connected("p", 5), 3, 1);
    a.drop(); // no other member yet: kept
    assert.equal(a.session.session.inflight.size + a.session.session.queue.length, 3);
    const b = h.connected("b", 5);
    b.subscribe(GROUP, 1);
    assert.deepStrictEqual(b.take(), []);
    if (end === "expiry") assert.equal(h.advance(), 10_000);
    else h.connected("a", 5, { cleanStart: true });
    assert.equal(h.broker.hasSession("a"), end === "clean start");
    assert.deepStrictEqual(payloads(b.takePublishes()), ["0", "1", "2"], end);
  }
});

test("Shared subscription: a member whose session ends with its connection (no expiry) hands over at once", () => {
  const h = new Harness();
  const a = h.connected("a", 5, { properties: { receiveMaximum: 1 } });
  a.subscribe(GROUP, 2);
  publishAll(h.connected("p", 5), 3, 2);
  const b = h.connected("b", 5);
  b.subscribe(GROUP, 2);
  a.send({ type: "disconnect", reasonCode: 0 });
  assert.equal(h.broker.hasSession("a"), false);
  assert.deepStrictEqual(payloads(b.takePublishes()), ["0", "1", "2"]);
});

test("Shared subscription: a takeover of the member's connection hands over its messages; the new connection gets none", () => {
  const { h, a, b } = loaded(1, 2, 1);
  const again = h.connect("a", 5, persistent(2));
  assert.equal(a.session.state, "closed");
  const [connack, ...rest] = again.take();
  assert.ok(connack.type === "connack" && connack.sessionPresent);
  assert.deepStrictEqual(rest, []);
  assert.deepStrictEqual(payloads(b.takePublishes()), ["0", "1", "2"]);
});

test("Shared subscription: the publisher's acknowledgement held back for a full queue goes out once the queue is handed over", () => {
  const h = new Harness({ maxQueuedMessages: 1 });
  const a = h.connected("a", 5, persistent(1));
  a.subscribe(GROUP, 1);
  const publisher = h.connected("p", 5);
  publishAll(publisher, 3, 1); // one in flight, one queued within the bounds, one beyond them
  const acks = (): number[] => publisher.take().flatMap((p) => p.type === "puback" ? [p.packetId] : []);
  assert.deepStrictEqual(acks(), [1, 2]); // PUBACK 3 waits for room in a's queue
  assert.equal(a.takePublishes().length, 1);
  const b = h.connected("b", 5);
  b.subscribe(GROUP, 1);
  a.drop();
  assert.deepStrictEqual(acks(), [3]);
  assert.deepStrictEqual(payloads(b.takePublishes()), ["0", "1", "2"]);
});

test("Shared subscription: the journal stays equal to the state to keep while deliveries move, and says which group each came through", () => {
  const h = new Harness({ journal: true });
  const store = new ModelStore();
  const check = (what: string): void => {
    store.apply(h.now, h.broker.pollChanges(h.now));
    assert.deepStrictEqual(store.snapshot(h.now), canonical(h.broker.exportState(h.now)), what);
  };
  const stored = (clientId: string): string[] =>
    [...store.deliveries.values()].filter((d) => d.clientId === clientId).map((d) =>
      `${text(d.delivery.message.payload)}${
        d.delivery.packetId === undefined ? "" : "*"
      } ${d.delivery.shared}`
    );
  const a = h.connected("a", 5, persistent(2));
  a.subscribe(GROUP, 2);
  const publisher = h.connected("p", 5);
  publishAll(publisher, 4, 1);
  check("routed to a");
  assert.deepStrictEqual(stored("a"), ["0* $share/g/t", "1* $share/g/t", "2 $share/g/t", "3 $share/g/t"]);
  const b = h.connected("b", 5, persistent(1));
  b.subscribe(GROUP, 1);
  const c = h.connected("c", 5, persistent(1));
  c.subscribe(GROUP, 1);
  check("b and c subscribed");
  a.send({ type: "unsubscribe", packetId: 3, topicFilters: [GROUP] });
  check("a unsubscribed: its queue went to b and c");
  assert.deepStrictEqual(stored("a"), ["0* $share/g/t", "1* $share/g/t"]);
  a.drop();
  check("a dropped: its messages in flight went to b and c");
  assert.deepStrictEqual(stored("a"), []);
  assert.equal(stored("b").length + stored("c").length, 4);
  b.drop();
  check("b dropped: to c");
  assert.deepStrictEqual(stored("b"), []);
  assert.equal(stored("c").length, 4);
  c.send({ type: "unsubscribe", packetId: 4, topicFilters: [GROUP] });
  check("c unsubscribed: its queue went to b, offline");
  assert.deepStrictEqual([stored("b").length, stored("c").length], [3, 1]);
  c.drop();
  check("c dropped: its message in flight went to b");
  assert.deepStrictEqual([stored("b").length, stored("c").length], [4, 0]);
  const d = h.connected("d", 5, persistent());
  d.subscribe(GROUP, 1);
  check("d subscribed: b's queue stays while b's session lasts");
  assert.equal(stored("b").length, 4);
  h.connected("b", 5, { cleanStart: true, properties: { sessionExpiryInterval: 600 } });
  check("b's session ended: to d");
  assert.deepStrictEqual(stored("b"), []);
  assert.equal(d.takePublishes().length, 4);
  assert.equal(stored("d").length, 4);
});

test("Shared subscription: a restored session keeps the group of each delivery and hands them over later", () => {
  const h = new Harness();
  const a = h.connected("a", 5, persistent(1));
  a.subscribe(GROUP, 1);
  publishAll(h.connected("p", 5), 2, 1);
  a.drop();
  const snapshot = structuredClone(h.broker.exportState(h.now));
  const saved = snapshot.sessions.find((s) => s.clientId === "a")!;
  assert.deepStrictEqual([...saved.inflight, ...saved.queue].map((d) => d.shared), [GROUP, GROUP]);

  const h2 = new Harness();
  h2.broker.restoreState(h2.now, snapshot);
  const b = h2.connected("b", 5);
  b.subscribe(GROUP, 1);
  const back = h2.connect("a", 5, persistent(1));
  assert.deepStrictEqual(back.takePublishes().map((p) => [text(p.payload), p.dup]), [["0", true]]);
  back.drop();
  assert.deepStrictEqual(payloads(b.takePublishes()), ["0", "1"]);
});

test("BrokerMachine with sharedGroups external: route() leaves the groups out, routeShared() gives one group's next member the message", () => {
  const told: [string, boolean][] = [];
  const h = new Harness({
    sharedGroups: "external",
    onInterest: (filter, present) => told.push([filter, present]),
  });
  const a = h.connected("a", 5, persistent());
  a.subscribe(GROUP, 1);
  const b = h.connected("b", 5);
  b.subscribe(GROUP, 2);
  const c = h.connected("c", 5);
  c.subscribe("t", 0);
  assert.deepStrictEqual(told, [[GROUP, true], ["t", true]]);
  h.connected("p", 5).publish("t", "to c only", { qos: 1, retain: true });
  assert.deepStrictEqual([a.take(), b.take(), payloads(c.takePublishes())], [[], [], ["to c only"]]);
  const packet = (payload: string): PublishPacket => ({
    type: "publish",
    topic: "t",
    payload: new TextEncoder().encode(payload),
    qos: 2,
    retain: true,
    dup: false,
  });
  const routed = h.broker.stats.routed;
  assert.equal(h.broker.cluster.routeShared(h.now, packet("x"), GROUP), 1);
  assert.equal(h.broker.cluster.routeShared(h.now, packet("y"), GROUP), 1);
  assert.equal(h.broker.cluster.routeShared(h.now, packet("z"), "$share/none/t"), 0);
  assert.equal(h.broker.cluster.routeShared(h.now, packet("z"), "$share/g/u"), 0);
  h.pump();
  const [x] = a.takePublishes();
  const [y] = b.takePublishes();
  assert.deepStrictEqual([text(x.payload), x.qos, text(y.payload), y.qos], ["x", 1, "y", 2]);
  assert.deepStrictEqual([x.retain, y.retain, c.take()], [false, false, []]);
  assert.equal(h.broker.stats.routed, routed); // counted where it was published
  assert.equal(h.broker.retainedCount, 1); // only the first message's
  // A message it routed moves on like any other: a leaves without acknowledging x.
  a.drop();
  assert.deepStrictEqual(payloads(b.takePublishes()), ["x"]);
  // The last subscriber of a filter gone, the filter is no longer of interest.
  b.send({ type: "unsubscribe", packetId: 2, topicFilters: [GROUP] });
  assert.deepStrictEqual(told.slice(2), []);
  h.connected("a", 5, { cleanStart: true }); // a's session (and its membership) ends
  c.drop();
  assert.deepStrictEqual(told.slice(2), [[GROUP, false], ["t", false]]);
});

test("BrokerMachine.cluster.routeShared() also works with local groups, and route() still serves them", () => {
  const h = new Harness();
  const a = h.connected("a", 5);
  a.subscribe(GROUP, 1);
  h.connected("p", 5).publish("t", "routed", { qos: 1 });
  assert.equal(
    h.broker.cluster.routeShared(h.now, {
      topic: "t",
      payload: new TextEncoder().encode("shared"),
      qos: 1,
      retain: false,
    }, GROUP),
    1,
  );
  h.pump();
  assert.deepStrictEqual(payloads(a.takePublishes()), ["routed", "shared"]);
});

test("BrokerMachine.cluster.routeShared() to a group nobody subscribed to delivers nothing", () => {
  const broker = new BrokerMachine();
  assert.equal(
    broker.cluster.routeShared(0, {
      topic: "t",
      payload: new Uint8Array(),
      qos: 0,
      retain: false,
    }, GROUP),
    0,
  );
});
