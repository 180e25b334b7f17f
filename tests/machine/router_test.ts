import { test } from "node:test";
import assert from "node:assert/strict";
import type { QoS } from "../../src/codec/packet.ts";
import { type BrokerMessage, messageFromPublish } from "../../src/machine/_delivery.ts";
import type { SessionSubscription } from "../../src/machine/broker_types.ts";
import { deeperThan, LocalRouter, type RouterSession } from "../../src/machine/router.ts";

interface FakeSession extends RouterSession {
  clientId: string;
  connection: object | undefined;
}

function session(clientId: string, connected = true): FakeSession {
  return { clientId, connection: connected ? {} : undefined };
}

function subscription(
  topicFilter: string,
  qos: QoS = 0,
  extra: Partial<SessionSubscription> = {},
): SessionSubscription {
  return { topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...extra };
}

function message(topic: string, publisher?: string): BrokerMessage {
  return messageFromPublish(0, {
    type: "publish",
    topic,
    payload: new Uint8Array([1]),
    qos: 2,
    retain: false,
    dup: false,
  }, publisher);
}

function subscribe(
  router: LocalRouter<FakeSession>,
  who: FakeSession,
  filter: string,
  qos: QoS = 0,
  extra = {},
): void {
  router.add(who, filter, subscription(filter, qos, extra));
}

function targets(router: LocalRouter<FakeSession>, topic: string, publisher?: string): string[] {
  return router.match(message(topic, publisher)).map((m) => m.session.clientId);
}

test("LocalRouter.match() finds the sessions whose filters match, with + and # wildcards", () => {
  const router = new LocalRouter<FakeSession>();
  const [a, b, c] = [session("a"), session("b"), session("c")];
  subscribe(router, a, "sensors/+/temperature");
  subscribe(router, b, "sensors/#");
  subscribe(router, c, "other");
  assert.deepEqual(targets(router, "sensors/kitchen/temperature").sort(), ["a", "b"]);
  assert.deepEqual(targets(router, "sensors"), ["b"]);
  assert.deepEqual(targets(router, "nothing"), []);
});

test("LocalRouter.match() merges a session's overlapping subscriptions: highest QoS, every identifier [MQTT-3.3.4-2] [MQTT-3.3.4-4]", () => {
  const router = new LocalRouter<FakeSession>();
  const a = session("a");
  subscribe(router, a, "t/+", 0, { identifier: 1 });
  subscribe(router, a, "t/#", 2, { identifier: 2, retainAsPublished: true });
  subscribe(router, a, "t/x", 1);
  const matches = router.match(message("t/x"));
  assert.equal(matches.length, 1);
  assert.equal(matches[0].session, a);
  assert.equal(matches[0].qos, 2);
  assert.equal(matches[0].retainAsPublished, true);
  assert.deepEqual(matches[0].identifiers?.sort(), [1, 2]);
});

test("LocalRouter.match() skips the publisher's own No Local subscriptions [MQTT-3.8.3-3]", () => {
  const router = new LocalRouter<FakeSession>();
  const [a, b] = [session("a"), session("b")];
  subscribe(router, a, "t", 0, { noLocal: true });
  subscribe(router, b, "t", 0, { noLocal: true });
  assert.deepEqual(targets(router, "t", "a"), ["b"]);
  assert.deepEqual(targets(router, "t").sort(), ["a", "b"]);
});

test("LocalRouter.add() replaces a subscription with the same filter [MQTT-3.8.4-3], remove() takes it away", () => {
  const router = new LocalRouter<FakeSession>();
  const a = session("a");
  subscribe(router, a, "t", 0);
  subscribe(router, a, "t", 1);
  const matches = router.match(message("t"));
  assert.equal(matches.length, 1);
  assert.equal(matches[0].qos, 1);
  router.remove(a, "t");
  assert.deepEqual(targets(router, "t"), []);
  router.remove(a, "t"); // nothing left: no harm
});

test("LocalRouter.match() gives a shared group's messages to its members in turn, after the ordinary subscribers [MQTT-4.8.2-3]", () => {
  const router = new LocalRouter<FakeSession>();
  const [a, b, c] = [session("a"), session("b"), session("c")];
  subscribe(router, a, "$share/g/jobs/+");
  subscribe(router, b, "$share/g/jobs/+");
  subscribe(router, c, "jobs/#");
  const picked = [];
  for (let i = 0; i < 4; i++) {
    const names = targets(router, "jobs/1");
    assert.equal(names.length, 2);
    assert.equal(names[0], "c");
    picked.push(names[1]);
  }
  assert.deepEqual(picked, ["a", "b", "a", "b"]);
  router.remove(a, "$share/g/jobs/+");
  assert.deepEqual(targets(router, "jobs/2"), ["c", "b"]);
  router.remove(b, "$share/g/jobs/+");
  assert.deepEqual(targets(router, "jobs/3"), ["c"]);
});

test("LocalRouter.match() prefers connected members of a shared group, and skips those the read rules refuse", () => {
  const refused = new Set(["b"]);
  const router = new LocalRouter<FakeSession>((s) => !refused.has(s.clientId));
  const [a, b, c] = [session("a", false), session("b"), session("c")];
  for (const s of [a, b, c]) subscribe(router, s, "$share/g/t");
  assert.deepEqual(targets(router, "t"), ["c"]); // a is offline, b refused
  assert.deepEqual(targets(router, "t"), ["c"]);
  c.connection = undefined;
  assert.deepEqual(targets(router, "t"), ["a"]); // all offline: the next one in turn
  refused.add("a").add("c");
  assert.deepEqual(targets(router, "t"), []);
});

test("LocalRouter.match() sees subscriptions added after a topic's answer was cached", () => {
  const router = new LocalRouter<FakeSession>();
  const [a, b] = [session("a"), session("b")];
  subscribe(router, a, "x/y");
  assert.deepEqual(targets(router, "x/y"), ["a"]);
  subscribe(router, b, "x/+");
  assert.deepEqual(targets(router, "x/y").sort(), ["a", "b"]);
  router.remove(a, "x/y");
  assert.deepEqual(targets(router, "x/y"), ["b"]);
});

test("deeperThan() counts a filter's levels, a $share/NAME/ prefix left out", () => {
  assert.equal(deeperThan("a/b/c", 3), false);
  assert.equal(deeperThan("a/b/c/d", 3), true);
  assert.equal(deeperThan("$share/g/a/b/c", 3), false);
  assert.equal(deeperThan("$share/g/a/b/c/d", 3), true);
});
