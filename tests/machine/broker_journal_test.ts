/**
 * The BrokerMachine's journal: applied in order to a model store, the changes from `pollChanges()` keep the
 * store equal to what `exportState()` says must be kept, after every step of seeded random runs (connects of
 * every version with and without sessions and wills, takeovers, subscriptions, publishes at every QoS with and
 * without retain and expiry, acknowledgements or none, abrupt and clean disconnects, time passing).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type BrokerChange, BrokerMachine } from "../../src/machine/broker_machine.ts";
import { Harness } from "./_broker_helpers.ts";
import { ModelStore, runJournal } from "./_journal_helpers.ts";

for (const seed of [1, 2, 3, 7, 99, 2024]) {
  test(`BrokerMachine.pollChanges() keeps a store equal to the state to persist at every step (seed ${seed})`, () => {
    const { writes, restarts } = runJournal(seed, 600);
    assert.ok(writes > 200, `only ${writes} changes written`);
    assert.ok(restarts > 3, `only ${restarts} restarts`);
  });
}

test("BrokerMachine.pollChanges() reports nothing for sessions that end with their connection", () => {
  const h = new Harness({ journal: true });
  const a = h.connected("a", 4);
  a.subscribe("t", 1);
  const b = h.connected("b", 5);
  b.publish("t", "x", { qos: 1 });
  a.drop();
  assert.deepStrictEqual(h.broker.pollChanges(h.now), []);
});

test("BrokerMachine.pollChanges() reports a persistent session, its queued message, and its end", () => {
  const h = new Harness({ journal: true });
  const a = h.connected("a", 5, { cleanStart: true, properties: { sessionExpiryInterval: 10 } });
  a.subscribe("t", 1);
  a.drop();
  const first = h.broker.pollChanges(h.now);
  assert.deepStrictEqual(first.map((c) => c.type), ["session"]);
  const meta = (first[0] as Extract<BrokerChange, { type: "session" }>).session;
  assert.equal(meta.expiresInMs, 10_000);
  assert.deepStrictEqual(meta.subscriptions.map((s) => s.topicFilter), ["t"]);
  const b = h.connected("b", 5);
  b.publish("t", "queued", { qos: 1 });
  const second = h.broker.pollChanges(h.now);
  assert.equal(second.length, 1);
  assert.equal(second[0].type, "delivery");
  const delivery = (second[0] as Extract<BrokerChange, { type: "delivery" }>).delivery;
  assert.equal(new TextDecoder().decode(delivery?.message.payload), "queued");
  h.advance(10_000);
  const third = h.broker.pollChanges(h.now);
  assert.deepStrictEqual(third.filter((c) => c.type === "sessionEnded"), [{
    type: "sessionEnded",
    clientId: "a",
  }]);
});

test("BrokerMachine.pollChanges() throws without the journal option", () => {
  assert.throws(() => new BrokerMachine().pollChanges(0), /no journal/);
});

test("BrokerMachine.pollChanges() deletes queued messages that expired to make room", () => {
  const h = new Harness({ journal: true, maxQueuedMessages: 2, queueQoS0: true });
  const store = new ModelStore();
  const a = h.connected("a", 5, { properties: { sessionExpiryInterval: 100 } });
  a.subscribe("t", 0);
  a.drop();
  const b = h.connected("b", 5);
  // QoS 0: what does not fit is dropped, expired messages first.
  b.publish("t", "old", { properties: { messageExpiryInterval: 1 } });
  b.publish("t", "kept");
  store.apply(h.now, h.broker.pollChanges(h.now));
  h.advance(h.now + 2000);
  b.publish("t", "new");
  store.apply(h.now, h.broker.pollChanges(h.now));
  const queued = store.snapshot(h.now).sessions.find((s) => s.clientId === "a")?.queue;
  assert.deepStrictEqual(queued?.map((d) => new TextDecoder().decode(d.message.payload)), ["kept", "new"]);
});

test("BrokerMachine.pollChanges() keeps an inbound QoS 2 identifier only once its message is routed and acknowledged", () => {
  const h = new Harness({ journal: true });
  const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 60 } };
  const sub = h.connected("sub", 5, persistent);
  sub.subscribe("t", 2);
  const pub = h.connected("pub", 5, persistent);
  const store = new ModelStore();
  store.apply(h.now, h.broker.pollChanges(h.now));
  // A broker writes its store before every flush, so a write can fall between the receipt and the routing.
  let written = false;
  h.hooks.publish = () => {
    store.apply(h.now, h.broker.pollChanges(h.now));
    written = true;
    return undefined;
  };
  pub.publish("t", "m", { qos: 2, packetId: 7 });
  assert.ok(written);
  // Restored from that write, the broker must take the resend of packet 7 for a new message, not a duplicate.
  const early = store.snapshot(h.now).sessions.find((s) => s.clientId === "pub");
  assert.deepStrictEqual(early?.inboundQoS2, []);
  assert.deepStrictEqual(store.snapshot(h.now).sessions.find((s) => s.clientId === "sub")?.inflight, []);
  // Routed and acknowledged, the identifier and the delivery are written together.
  store.apply(h.now, h.broker.pollChanges(h.now));
  const late = store.snapshot(h.now);
  assert.deepStrictEqual(late.sessions.find((s) => s.clientId === "pub")?.inboundQoS2, [7]);
  assert.equal(late.sessions.find((s) => s.clientId === "sub")?.inflight.length, 1);
});

test("BrokerMachine.pollChanges() keeps an inbound QoS 2 identifier once its message is routed, while its PUBREC waits for a full queue", () => {
  const h = new Harness({ journal: true, maxQueuedMessages: 1 });
  const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 60 } };
  const sub = h.connected("sub", 5, persistent);
  sub.subscribe("t", 2);
  sub.drop();
  const pub = h.connected("pub", 5, persistent);
  const store = new ModelStore();
  pub.publish("t", "1", { qos: 2, packetId: 1 });
  pub.publish("t", "2", { qos: 2, packetId: 2 });
  // PUBREC 2 waits for room in the subscriber's queue; message 2 is queued and its identifier owned.
  assert.deepStrictEqual(pub.take().map((p) => [p.type, "packetId" in p && p.packetId]), [["pubrec", 1]]);
  store.apply(h.now, h.broker.pollChanges(h.now));
  const saved = store.snapshot(h.now).sessions;
  assert.deepStrictEqual(saved.find((s) => s.clientId === "pub")?.inboundQoS2, [1, 2]);
  assert.equal(saved.find((s) => s.clientId === "sub")?.queue.length, 2);
});
