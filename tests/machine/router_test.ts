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
  const router = new LocalRouter<FakeSession>({ authorize: (s) => !refused.has(s.clientId) });
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

test("LocalRouter.match(message, only) gives the message to the next member in turn of that one group, or to none", () => {
  const router = new LocalRouter<FakeSession>();
  const [a, b, c, d] = [session("a"), session("b"), session("c"), session("d")];
  subscribe(router, a, "$share/g/jobs/+", 1);
  subscribe(router, b, "$share/g/jobs/+", 2, { identifier: 5 });
  subscribe(router, c, "$share/h/jobs/+");
  subscribe(router, d, "jobs/#");
  const picked = [];
  for (let i = 0; i < 4; i++) {
    const matches = router.match(message("jobs/1"), "$share/g/jobs/+");
    assert.equal(matches.length, 1);
    picked.push(matches[0]);
  }
  assert.deepEqual(picked.map((m) => m.session.clientId), ["a", "b", "a", "b"]);
  assert.deepEqual(picked.slice(0, 2).map((m) => [m.qos, m.identifiers, m.shared]), [
    [1, undefined, "$share/g/jobs/+"],
    [2, [5], "$share/g/jobs/+"],
  ]);
  // The whole match, with the group's turn moved on by the calls above; ordinary matches are not shared.
  const all = router.match(message("jobs/1"));
  assert.deepEqual(all.map((m) => [m.session.clientId, m.shared]), [
    ["d", undefined],
    ["a", "$share/g/jobs/+"],
    ["c", "$share/h/jobs/+"],
  ]);
  assert.deepEqual(router.match(message("jobs/1"), "$share/x/jobs/+"), []); // no such group
  assert.deepEqual(router.match(message("jobs/1"), "$share/g/jobs/#"), []); // another filter, another group
  assert.deepEqual(router.match(message("other"), "$share/g/jobs/+"), []); // the topic does not match
  router.remove(a, "$share/g/jobs/+");
  router.remove(b, "$share/g/jobs/+");
  assert.deepEqual(router.match(message("jobs/1"), "$share/g/jobs/+"), []);
});

test("LocalRouter.match(message, only) prefers connected members and skips those the read rules refuse", () => {
  const router = new LocalRouter<FakeSession>({ authorize: (s) => s.clientId !== "b" });
  const [a, b, c] = [session("a", false), session("b"), session("c")];
  for (const s of [a, b, c]) subscribe(router, s, "$share/g/t", 1);
  const only = (): string[] => router.match(message("t"), "$share/g/t").map((m) => m.session.clientId);
  assert.deepEqual([only(), only()], [["c"], ["c"]]);
  c.connection = undefined;
  assert.deepEqual(only(), ["a"]);
});

test("LocalRouter with sharedGroups external leaves the shared groups out of match(message), not out of match(message, only)", () => {
  const router = new LocalRouter<FakeSession>({ sharedGroups: "external" });
  const [a, b] = [session("a"), session("b")];
  subscribe(router, a, "$share/g/t/+");
  subscribe(router, b, "t/#");
  assert.deepEqual(targets(router, "t/1"), ["b"]);
  router.remove(b, "t/#");
  assert.deepEqual(targets(router, "t/1"), []);
  assert.deepEqual(router.match(message("t/1"), "$share/g/t/+").map((m) => m.session.clientId), ["a"]);
  // The default is local: the group takes part in every match.
  const local = new LocalRouter<FakeSession>({ sharedGroups: "local" });
  subscribe(local, a, "$share/g/t/+");
  assert.deepEqual(targets(local, "t/1"), ["a"]);
});

test("LocalRouter tells onInterest when a filter gets its first subscription and loses its last one", () => {
  const told: [string, boolean][] = [];
  const router = new LocalRouter<FakeSession>({
    onInterest: (filter, present) => told.push([filter, present]),
  });
  const [a, b] = [session("a"), session("b")];
  subscribe(router, a, "t/+");
  subscribe(router, b, "t/+");
  subscribe(router, a, "t/+", 1); // a replaces its own subscription: no news
  assert.deepEqual(told, [["t/+", true]]);
  router.remove(a, "t/+");
  assert.deepEqual(told, [["t/+", true]]);
  router.remove(a, "t/+"); // gone already: no news
  router.remove(b, "t/+");
  assert.deepEqual(told, [["t/+", true], ["t/+", false]]);
  told.length = 0;
  // Shared subscriptions by their whole name; each group is a filter of its own, and so is the plain filter.
  subscribe(router, a, "$share/g/t/+");
  subscribe(router, b, "$share/g/t/+");
  subscribe(router, b, "$share/h/t/+");
  subscribe(router, b, "t/+");
  router.remove(a, "$share/g/t/+");
  router.remove(b, "$share/g/t/+");
  router.remove(b, "$share/h/t/+");
  router.remove(b, "$share/h/t/+");
  assert.deepEqual(told, [
    ["$share/g/t/+", true],
    ["$share/h/t/+", true],
    ["t/+", true],
    ["$share/g/t/+", false],
    ["$share/h/t/+", false],
  ]);
  // Again after it was gone: present once more.
  subscribe(router, a, "$share/g/t/+");
  assert.deepEqual(told.at(-1), ["$share/g/t/+", true]);
});
