/**
 * The broker machine's side for a cluster node (`machine.cluster`, and the `forward`, `onSessionEnded`,
 * `onInterest` and `sharedGroups` options), without sockets or an engine: what another node published is
 * routed here as one broker would, but not retained or forwarded again; a session is handed over as plain data;
 * what no publisher can be slowed down for does not grow a queue without bound.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { BrokerMessage } from "../../src/machine/_delivery.ts";
import type { MessageSnapshot } from "../../src/machine/broker_machine.ts";
import { encode } from "../../src/codec/encode.ts";
import { SessionMachine } from "../../src/machine/session_machine.ts";
import { bytes, Harness, text } from "./_broker_helpers.ts";

const message = (
  topic: string,
  payload: string,
  qos: 0 | 1 | 2 = 1,
  extra: Partial<MessageSnapshot> = {},
) => ({
  topic,
  payload: bytes(payload),
  qos,
  retain: false,
  ...extra,
});

test("forward is told of what is published here (sent or not), never of what came from another node", () => {
  const told: [string, boolean][] = [];
  const h = new Harness({
    forward: (_now, m: BrokerMessage, sent) => told.push([text(m.payload), sent]),
  });
  const sub = h.connected("sub");
  sub.subscribe("t/#", 1);
  const pub = h.connected("pub");
  pub.publish("t/a", "qos0");
  // As a cluster node's driver does once the engine stored it: routed with `forward` false.
  const stored = new SessionMachine(h.now);
  const connect = {
    type: "connect",
    protocolVersion: 5,
    clientId: "stored",
    cleanStart: true,
    keepAlive: 0,
  } as const;
  stored.handleBytes(h.now, encode(connect, 5));
  stored.pollEvent();
  h.broker.attach(h.now, stored);
  const publish = {
    type: "publish",
    topic: "t/b",
    payload: bytes("stored"),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 9,
  } as const;
  stored.handleBytes(h.now, encode(publish, 5));
  const event = stored.pollEvent();
  assert(event?.type === "publish");
  h.broker.publish(h.now, stored, event.packet, 0, false);
  h.broker.cluster.routeRemote(h.now, message("t/c", "remote"));
  h.pump();
  assert.deepEqual(told, [["qos0", false], ["stored", true]]);
  assert.deepEqual(sub.ackAll().map((p) => text(p.payload)), ["qos0", "stored", "remote"]);
});

test("routeRemote delivers with MQTT semantics but leaves the retained store alone", () => {
  const h = new Harness();
  const sub = h.connected("sub");
  sub.subscribe({ topicFilter: "r/+", retainAsPublished: true }, 2, 4);
  sub.subscribe({ topicFilter: "r/#", noLocal: true }, 1, 5);
  // No Local: the publisher's id travels with the message.
  h.broker.cluster.routeRemote(h.now, message("r/x", "from sub", 2, { publisher: "sub", retain: true }));
  h.broker.cluster.routeRemote(h.now, message("r/x", "from other", 2, { publisher: "other", retain: true }));
  h.pump();
  const got = sub.ackAll();
  assert.deepEqual(got.map((p) => [text(p.payload), p.qos, p.retain]), [
    ["from sub", 2, true],
    ["from other", 2, true],
  ]);
  assert.deepEqual(got[0].properties?.subscriptionIdentifiers, [4]);
  assert.deepEqual([...got[1].properties?.subscriptionIdentifiers ?? []].sort(), [4, 5]);
  assert.equal(h.broker.retainedCount, 0);
});

test("setRetained sets and clears what a new subscription gets", () => {
  const h = new Harness();
  h.broker.cluster.setRetained(h.now, "s/1", message("s/1", "kept", 1, { retain: true }));
  const sub = h.connected("sub");
  sub.subscribe("s/#", 1);
  assert.deepEqual(sub.ackAll().map((p) => [p.topic, text(p.payload), p.retain]), [["s/1", "kept", true]]);
  h.broker.cluster.setRetained(h.now, "s/1", undefined);
  const late = h.connected("late");
  late.subscribe("s/#", 1);
  assert.deepEqual(late.takePublishes(), []);
});

test("routeTo delivers to one session only, through its own subscriptions", () => {
  const h = new Harness();
  const a = h.connected("a");
  a.subscribe("m/#", 1);
  const b = h.connected("b");
  b.subscribe("m/#", 1);
  assert.equal(h.broker.cluster.routeTo(h.now, "a", message("m/1", "only a")), 1);
  assert.equal(h.broker.cluster.routeTo(h.now, "a", message("other/1", "no match")), 0);
  assert.equal(h.broker.cluster.routeTo(h.now, "nobody", message("m/1", "no session")), 0);
  h.pump();
  assert.deepEqual(a.ackAll().map((p) => text(p.payload)), ["only a"]);
  assert.deepEqual(b.takePublishes(), []);
  assert.deepEqual(h.broker.cluster.subscriptionsOf("a"), ["m/#"]);
});

test("takeSession hands a live session over: DISCONNECT 0x8E, its subscriptions and queue, not ended", () => {
  const ended: string[] = [];
  const h = new Harness({ onSessionEnded: (clientId) => ended.push(clientId) });
  const client = h.connected("roam", 5, {
    cleanStart: false,
    properties: { sessionExpiryInterval: 60 },
    will: {
      topic: "will/roam",
      payload: bytes("gone"),
      qos: 1,
      retain: false,
      properties: { willDelayInterval: 5 },
    },
  });
  client.subscribe("q/#", 1);
  h.broker.cluster.routeRemote(h.now, message("q/1", "in flight"));
  h.pump();
  const watcher = h.connected("watcher");
  watcher.subscribe("will/#", 1);
  const snapshot = h.broker.cluster.takeSession(h.now, "roam", false);
  h.pump();
  const disconnect = client.take().find((p) => p.type === "disconnect");
  assert(disconnect?.type === "disconnect");
  assert.equal(disconnect.reasonCode, 0x8e);
  assert(snapshot !== undefined);
  assert.deepEqual(snapshot.subscriptions.map((s) => s.topicFilter), ["q/#"]);
  assert.deepEqual(snapshot.inflight.map((d) => text(d.message.payload)), ["in flight"]);
  assert.equal(h.broker.hasSession("roam"), false);
  assert.deepEqual(ended, [], "moved, not ended");
  // Its delayed will is not published: the client goes on elsewhere.
  h.advance(h.now + 10_000);
  assert.deepEqual(watcher.takePublishes(), []);
  // Restored on another machine, it resumes there.
  const other = new Harness();
  other.broker.restoreState(other.now, { sessions: [snapshot], retained: [] });
  const back = other.connect("roam", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  const [connack, ...rest] = back.take();
  assert(connack.type === "connack" && connack.sessionPresent);
  assert.deepEqual(
    rest.filter((p) => p.type === "publish").map((p) => p.type === "publish" && text(p.payload)),
    [
      "in flight",
    ],
  );
});

test("takeSession with a clean start ends the session here and publishes its will", () => {
  const ended: string[] = [];
  const h = new Harness({ onSessionEnded: (clientId) => ended.push(clientId) });
  const watcher = h.connected("watcher");
  watcher.subscribe("will/#", 1);
  h.connected("gone", 5, {
    cleanStart: false,
    properties: { sessionExpiryInterval: 60 },
    will: { topic: "will/gone", payload: bytes("bye"), qos: 1, retain: false },
  });
  assert.equal(h.broker.cluster.takeSession(h.now, "gone", true), undefined);
  h.pump();
  assert.deepEqual(ended, ["gone"]);
  assert.deepEqual(watcher.ackAll().map((p) => text(p.payload)), ["bye"]);
});

test("what no publisher can be slowed down for stops at twice a session's bounds; a client's PUBLISH waits instead", () => {
  const h = new Harness({ maxQueuedMessages: 5 });
  const away = h.connected("away", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  away.subscribe("f/#", 1);
  away.drop();
  for (let i = 0; i < 20; i++) h.broker.cluster.routeRemote(h.now, message("f/1", `remote ${i}`));
  assert.equal(h.broker.stats.dropped, 9, "kept up to twice the bounds (11), the rest dropped and counted");
  // A client's QoS 1 PUBLISH is held (its PUBACK waits) rather than dropped.
  const pub = h.connected("pub");
  pub.publish("f/1", "held", { qos: 1, packetId: 7 });
  assert.equal(h.broker.stats.dropped, 9);
  assert.deepEqual(pub.take().filter((p) => p.type === "puback"), []);
  const back = h.connect("away", 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
  const got: string[] = [];
  for (let round = 0; round < 10 && got.length < 12; round++) {
    got.push(...back.ackAll().map((p) => text(p.payload)));
  }
  assert.deepEqual(got, [...Array.from({ length: 11 }, (_, i) => `remote ${i}`), "held"]);
  assert.equal(pub.take().filter((p) => p.type === "puback").length, 1);
});

test("a connected subscriber catching up on a burst from other nodes keeps far more than its bounds before losing any", () => {
  const h = new Harness({ maxQueuedMessages: 5 });
  // One message in flight at a time: the rest of the burst waits in its queue.
  const sub = h.connected("sub", 5, { properties: { receiveMaximum: 1 } });
  sub.subscribe("b/#", 1);
  for (let i = 0; i < 400; i++) h.broker.cluster.routeRemote(h.now, message("b/1", `m${i}`));
  h.pump();
  // In flight 1, queued up to 64 times the bound (and one more), the rest dropped and counted.
  const kept = 1 + 64 * 5 + 1;
  assert.equal(h.broker.stats.dropped, 400 - kept);
  const got: string[] = [];
  for (let round = 0; round < 1000 && got.length < kept; round++) {
    got.push(...sub.ackAll().map((p) => text(p.payload)));
  }
  assert.deepEqual(got, Array.from({ length: kept }, (_, i) => `m${i}`));
});
