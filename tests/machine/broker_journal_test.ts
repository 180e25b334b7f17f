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
