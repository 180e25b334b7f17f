/**
 * What a cluster of brokers must do, as tests that run against any way of making one: brokers of one process
 * on the in-memory engine, and brokers on a real nats-server. Every client is a real socket on 127.0.0.1.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Broker } from "../../src/broker/broker.ts";
import type { PublishPacket, Subscription } from "../../src/codec/packet.ts";
import { type RawClient, rawConnect } from "../_raw_client.ts";
import { sleep } from "../_helpers.ts";

/** A running cluster of brokers. */
export interface ClusterFixture {
  /** The MQTT port of each node. */
  ports: number[];
  /** Each node's broker. */
  brokers: Broker[];
  /** The lines each node logged so far. */
  logs: string[][];
  /** Cuts the engine off (`false`) or brings it back, for `node` or, when it cannot be told apart, for all. */
  setEngine(up: boolean, node: number): Promise<void>;
  /** Whether `setEngine` cuts off one node alone (the others go on storing meanwhile). */
  partial?: boolean;
  /** Stops one node (its broker closes, leaving its sessions in the cluster); the others go on. */
  stopNode(node: number): Promise<void>;
  /** How many messages the cluster's stream holds, when the fixture can tell. */
  stored?(): Promise<number>;
  /** Stops everything. */
  close(): Promise<void>;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (value: string) => new TextEncoder().encode(value);

function sub(filter: string, qos: 0 | 1 | 2, options: Partial<Subscription> = {}): Subscription {
  return {
    topicFilter: filter,
    qos,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0,
    ...options,
  };
}

function publish(
  topic: string,
  payload: string,
  qos: 0 | 1 | 2,
  extra: Partial<PublishPacket> = {},
): PublishPacket {
  return { type: "publish", topic, payload: bytes(payload), qos, retain: false, dup: false, ...extra };
}

/** Subscribes and waits for the SUBACK; returns its reason codes. */
async function subscribe(
  client: RawClient,
  packetId: number,
  subscriptions: Subscription[],
  identifier?: number,
): Promise<number[]> {
  await client.send({
    type: "subscribe",
    packetId,
    subscriptions,
    ...(identifier === undefined ? {} : { properties: { subscriptionIdentifier: identifier } }),
  });
  const suback = await client.next((p) => p.type === "suback");
  assert(suback.type === "suback");
  return suback.reasonCodes;
}

/** Publishes at QoS 1 or 2 and completes the flow; returns the PUBACK or PUBREC reason code. */
async function publishAcked(client: RawClient, packet: PublishPacket): Promise<number> {
  await client.send(packet);
  const ack = await client.next((p) =>
    (p.type === "puback" || p.type === "pubrec") && p.packetId === packet.packetId
  );
  assert(ack.type === "puback" || ack.type === "pubrec");
  if (ack.type === "pubrec" && ack.reasonCode < 0x80) {
    await client.send({ type: "pubrel", packetId: ack.packetId, reasonCode: 0 });
    await client.next((p) => p.type === "pubcomp" && p.packetId === packet.packetId);
  }
  return ack.reasonCode;
}

/** Acknowledges a received PUBLISH as its QoS asks. */
async function ackPublish(client: RawClient, packet: PublishPacket): Promise<void> {
  if (packet.qos === 1) {
    await client.send({ type: "puback", packetId: packet.packetId as number, reasonCode: 0 });
  }
  if (packet.qos === 2) {
    await client.send({ type: "pubrec", packetId: packet.packetId as number, reasonCode: 0 });
    await client.next((p) => p.type === "pubrel" && p.packetId === packet.packetId);
    await client.send({ type: "pubcomp", packetId: packet.packetId as number, reasonCode: 0 });
  }
}

/** Whether no PUBLISH comes within `ms`. */
async function noPublish(client: RawClient, ms = 300): Promise<void> {
  await assert.rejects(client.next((p) => p.type === "publish", ms), /No packet within/);
}

/** Waits until `check` holds, for at most `ms`. */
async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 5000,
  what = "the condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * Registers the cluster scenarios.
 *
 * @param name The suite's name.
 * @param open Starts a cluster of `nodes` brokers; `undefined` skips (say why first).
 */
export function clusterScenarios(
  name: string,
  open: (nodes: number) => Promise<ClusterFixture | undefined>,
): void {
  describe(name, () => {
    let cluster: ClusterFixture | undefined;
    const clients: RawClient[] = [];
    const connect = async (
      node: number,
      ...args: Parameters<typeof rawConnect> extends [number, ...infer R] ? R : never
    ) => {
      const client = await rawConnect((cluster as ClusterFixture).ports[node], ...args);
      clients.push(client);
      return client;
    };

    before(async () => {
      cluster = await open(3);
    });
    after(async () => {
      for (const client of clients) client.close();
      await cluster?.close();
    });

    it("routes a message to every matching subscription on every node, with MQTT semantics", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const b = await connect(1, { clientId: "route-b" });
      assert.deepEqual(await subscribe(b, 1, [sub("r/+/x", 1)], 7), [1]);
      assert.deepEqual(await subscribe(b, 2, [sub("r/#", 2, { retainAsPublished: true })], 9), [2]);
      const c = await connect(2, { clientId: "route-c" });
      assert.deepEqual(await subscribe(c, 1, [sub("r/a/x", 0), sub("#", 0), sub("$app/#", 0)]), [0, 0, 0]);
      const a = await connect(0, { clientId: "route-a" });
      assert.deepEqual(await subscribe(a, 1, [sub("r/#", 1, { noLocal: true })]), [1]);
      // On the publisher's node: routed there once, not again when the engine brings it back.
      const near = await connect(0, { clientId: "route-near" });
      assert.deepEqual(await subscribe(near, 1, [sub("r/a/x", 0), sub("r/+/x", 0)]), [0, 0]);

      // Overlapping subscriptions: one copy at the highest granted QoS, with both identifiers.
      assert.equal(await publishAcked(a, publish("r/a/x", "one", 2, { packetId: 1 })), 0);
      const [atB] = await b.publishes(1);
      assert.equal(text(atB.payload), "one");
      assert.equal(atB.qos, 2);
      assert.deepEqual([...(atB.properties?.subscriptionIdentifiers ?? [])].sort(), [7, 9]);
      await ackPublish(b, atB);
      // Downgraded to the granted QoS on another node; once per session although "#" matches too.
      const [atC] = await c.publishes(1);
      assert.equal(atC.qos, 0);
      assert.equal(text(atC.payload), "one");
      const [atNear] = await near.publishes(1);
      assert.equal(text(atNear.payload), "one");
      // No Local: not back to the publisher.
      await noPublish(a, 200);
      await noPublish(near, 1);
      await noPublish(c, 200);

      // Retain as published: kept only for the subscription that asked.
      await publishAcked(a, publish("r/b/x", "kept", 1, { packetId: 2, retain: true }));
      const [retained] = await b.publishes(1);
      assert.equal(retained.retain, true);
      assert.equal(retained.qos, 1);
      await ackPublish(b, retained);
      const [plain] = await c.publishes(1);
      assert.equal(plain.retain, false);

      // `$` topics are not matched by a wildcard at the first level.
      await publishAcked(a, publish("$app/x", "dollar", 1, { packetId: 3 }));
      const [dollar] = await c.publishes(1);
      assert.equal(dollar.topic, "$app/x");
      await noPublish(c, 200);

      // Topic aliases are per connection: resolved before the message leaves its node.
      await a.send({
        type: "publish",
        topic: "r/alias/x",
        payload: bytes("a1"),
        qos: 0,
        retain: false,
        dup: false,
        properties: { topicAlias: 3 },
      });
      await a.send({
        type: "publish",
        topic: "",
        payload: bytes("a2"),
        qos: 0,
        retain: false,
        dup: false,
        properties: { topicAlias: 3 },
      });
      const aliased = await b.publishes(2);
      assert.deepEqual(aliased.map((p) => [p.topic, text(p.payload)]), [["r/alias/x", "a1"], [
        "r/alias/x",
        "a2",
      ]]);

      // Message expiry goes on counting across the hop; properties cross it.
      await publishAcked(
        a,
        publish("r/e/x", "expiring", 1, {
          packetId: 4,
          properties: { messageExpiryInterval: 60, contentType: "text/plain", userProperties: [["k", "v"]] },
        }),
      );
      const [expiring] = await b.publishes(1);
      assert(expiring.properties?.messageExpiryInterval !== undefined);
      assert(
        expiring.properties.messageExpiryInterval <= 60 && expiring.properties.messageExpiryInterval >= 58,
      );
      assert.equal(expiring.properties.contentType, "text/plain");
      assert.deepEqual(expiring.properties.userProperties, [["k", "v"]]);
      await ackPublish(b, expiring);
    });

    it("acknowledges QoS 1 and 2 once stored, delivers QoS 2 exactly once and keeps each publisher's order", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const b = await connect(1, { clientId: "order-b" });
      await subscribe(b, 1, [sub("o/#", 2)]);
      const a = await connect(0, { clientId: "order-a" });
      const before = await cluster.stored?.();
      const count = 120;
      for (let i = 1; i <= count; i++) {
        const qos = i % 3 === 0 ? 2 : 1;
        await a.send(publish(`o/${i % 2}`, String(i), qos, { packetId: i }));
      }
      const got: PublishPacket[] = [];
      const receive = async () => {
        while (got.length < count) {
          const packet = await b.next((p) => p.type === "publish", 10_000) as PublishPacket;
          got.push(packet);
          await ackPublish(b, packet);
        }
      };
      const acknowledged = async () => {
        for (let acked = 1; acked <= count; acked++) {
          const packet = await a.next((p) => p.type === "puback" || p.type === "pubrec", 10_000);
          assert((packet.type === "puback" || packet.type === "pubrec") && packet.reasonCode === 0);
          if (packet.type === "pubrec") {
            await a.send({ type: "pubrel", packetId: packet.packetId, reasonCode: 0 });
          }
          // Every acknowledgement so far stands for a stored message.
          if (cluster?.stored !== undefined && before !== undefined) {
            assert((await cluster.stored()) - before >= acked);
          }
        }
      };
      await Promise.all([receive(), acknowledged()]);
      const values = got.map((p) => Number(text(p.payload)));
      assert.equal(new Set(values).size, count, "no duplicates");
      for (const topic of [0, 1]) {
        const sequence = values.filter((v) => v % 2 === topic);
        assert.deepEqual(sequence, [...sequence].sort((x, y) => x - y), `order on o/${topic}`);
      }
      await noPublish(b, 300);
    });

    for (const version of [5, 4] as const) {
      it(`resumes a persistent session on another node (MQTT ${version === 5 ? "5" : "3.1.1"})`, async (t) => {
        if (cluster === undefined) return t.skip("no cluster");
        const id = `roam-${version}`;
        const persistent = version === 5
          ? { cleanStart: false, properties: { sessionExpiryInterval: 3600 } }
          : { cleanStart: false };
        const first = await connect(1, { clientId: id, ...persistent }, version);
        await subscribe(first, 1, [sub(`roam${version}/#`, 2)]);
        await first.send({ type: "disconnect", reasonCode: 0 });
        await first.ended;
        const a = await connect(0, { clientId: `${id}-pub` });
        for (let i = 1; i <= 10; i++) {
          assert.equal(
            await publishAcked(a, publish(`roam${version}/t`, `m${i}`, i % 2 === 0 ? 2 : 1, { packetId: i })),
            0,
          );
        }
        const back = await connect(2, { clientId: id, ...persistent }, version);
        assert.equal(back.connack.sessionPresent, true);
        const queued = await back.publishes(10);
        assert.deepEqual(
          queued.map((p) => text(p.payload)),
          Array.from({ length: 10 }, (_, i) => `m${i + 1}`),
        );
        for (const p of queued) await ackPublish(back, p);
        // Its subscriptions came along: what is published now reaches it on its new node.
        await publishAcked(a, publish(`roam${version}/t`, "after", 1, { packetId: 11 }));
        const [after] = await back.publishes(1);
        assert.equal(text(after.payload), "after");
        await ackPublish(back, after);
        // And no longer on the old one.
        await noPublish(first, 100).catch(() => {});
      });
    }

    it("moves a session between nodes under load without losing or repeating a QoS 2 message", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const id = "mover";
      const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };
      let client = await connect(1, { clientId: id, ...persistent });
      await subscribe(client, 1, [sub("mv/#", 2)]);
      const got: string[] = [];
      // The client's side of QoS 2, kept across its connections: identifiers received, PUBREL not yet.
      const awaiting = new Set<number>();
      const count = 300;
      const a = await connect(0, { clientId: "mover-pub" });
      const publishing = (async () => {
        for (let i = 1; i <= count; i++) {
          await a.send(publish(`mv/${i % 3}`, String(i), 2, { packetId: i }));
          if (i % 20 === 0) await sleep(5);
        }
        for (let acked = 0; acked < count; acked++) {
          const ack = await a.next((p) => p.type === "pubrec", 20_000);
          assert(ack.type === "pubrec" && ack.reasonCode === 0);
          await a.send({ type: "pubrel", packetId: ack.packetId, reasonCode: 0 });
        }
      })();
      /** Reads and acknowledges for `ms`, as a QoS 2 client must. */
      const read = async (ms: number) => {
        const until = Date.now() + ms;
        for (;;) {
          const left = until - Date.now();
          if (left <= 0) return;
          const packet = await client.next((p) => p.type === "publish" || p.type === "pubrel", left)
            .catch(() => undefined);
          if (packet === undefined) return;
          if (packet.type === "publish") {
            const packetId = packet.packetId as number;
            if (!awaiting.has(packetId)) {
              awaiting.add(packetId);
              got.push(text(packet.payload));
            }
            await client.send({ type: "pubrec", packetId, reasonCode: 0 });
          } else if (packet.type === "pubrel") {
            awaiting.delete(packet.packetId);
            await client.send({ type: "pubcomp", packetId: packet.packetId, reasonCode: 0 });
          }
        }
      };
      for (const [node, abrupt] of [[2, true], [1, false], [2, false], [1, true], [2, true]] as const) {
        await read(60);
        if (abrupt) client.close();
        else await client.send({ type: "disconnect", reasonCode: 0 });
        client = await connect(node, { clientId: id, ...persistent });
        assert.equal(client.connack.sessionPresent, true);
      }
      await publishing;
      await eventually(
        async () => {
          await read(100);
          return got.length >= count;
        },
        20_000,
        `all ${count} messages (${got.length} so far)`,
      );
      await read(300);
      assert.equal(got.length, count, "none twice");
      assert.deepEqual(new Set(got).size, count);
    });

    it("lets the same client connect on another node: the older connection is taken over", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const first = await connect(0, {
        clientId: "twice",
        cleanStart: false,
        properties: { sessionExpiryInterval: 60 },
      });
      await subscribe(first, 1, [sub("twice/#", 1)]);
      const second = await connect(2, {
        clientId: "twice",
        cleanStart: false,
        properties: { sessionExpiryInterval: 60 },
      });
      assert.equal(second.connack.sessionPresent, true);
      const disconnect = await first.next((p) => p.type === "disconnect");
      assert(disconnect.type === "disconnect");
      assert.equal(disconnect.reasonCode, 0x8e);
      await first.ended;
      const third = await connect(1, { clientId: "twice", cleanStart: true });
      assert.equal(third.connack.sessionPresent, false);
      await second.ended;
    });

    it("ends a session when its expiry passes, wherever the client comes back", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const first = await connect(1, {
        clientId: "expiring",
        cleanStart: false,
        properties: { sessionExpiryInterval: 1 },
      });
      await subscribe(first, 1, [sub("exp/#", 1)]);
      await first.send({ type: "disconnect", reasonCode: 0 });
      await first.ended;
      await sleep(1500);
      const back = await connect(0, {
        clientId: "expiring",
        cleanStart: false,
        properties: { sessionExpiryInterval: 1 },
      });
      assert.equal(back.connack.sessionPresent, false);
    });

    it("shares retained messages: set on one node, delivered on every node, cleared everywhere", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const a = await connect(0, { clientId: "ret-a" });
      await publishAcked(a, publish("ret/1", "kept", 1, { packetId: 1, retain: true }));
      await publishAcked(
        a,
        publish("ret/short", "gone soon", 1, {
          packetId: 2,
          retain: true,
          properties: { messageExpiryInterval: 1 },
        }),
      );
      for (const node of [1, 2]) {
        await eventually(
          () => (cluster as ClusterFixture).brokers[node].machine.retainedCount >= 2,
          5000,
          "retained",
        );
        const s = await connect(node, { clientId: `ret-s${node}` });
        await subscribe(s, 1, [sub("ret/#", 1)]);
        const got = await s.publishes(2);
        assert.deepEqual(got.map((p) => [p.topic, text(p.payload), p.retain]).sort(), [
          ["ret/1", "kept", true],
          ["ret/short", "gone soon", true],
        ]);
        for (const p of got) await ackPublish(s, p);
      }
      await sleep(1100);
      const c = await connect(2, { clientId: "ret-c" });
      await publishAcked(c, publish("ret/1", "", 1, { packetId: 1, retain: true }));
      for (const node of [0, 1]) {
        const machine = (cluster as ClusterFixture).brokers[node].machine;
        await eventually(
          () => !machine.exportState(0).retained.some((m) => m.topic === "ret/1"),
          5000,
          "cleared",
        );
        const s = await connect(node, { clientId: `ret-t${node}` });
        await subscribe(s, 1, [sub("ret/#", 1)]);
        // The expired one is not sent either.
        await noPublish(s, 300);
      }
    });

    it("hands each message of a shared subscription to exactly one member across nodes", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const members = [
        await connect(0, { clientId: "m0" }),
        await connect(1, { clientId: "m1" }),
        await connect(2, { clientId: "m2" }),
      ];
      for (const m of members) assert.deepEqual(await subscribe(m, 1, [sub("$share/g/sh/#", 1)]), [1]);
      const ordinary = await connect(1, { clientId: "sh-plain" });
      await subscribe(ordinary, 1, [sub("sh/#", 1)]);
      const a = await connect(0, { clientId: "sh-pub" });
      const count = 60;
      for (let i = 1; i <= count; i++) await publishAcked(a, publish("sh/t", String(i), 1, { packetId: i }));
      const plain = await ordinary.publishes(count);
      assert.equal(plain.length, count);
      const received: string[][] = [[], [], []];
      await eventually(
        async () => {
          for (let i = 0; i < 3; i++) {
            for (;;) {
              const p = await members[i].next((q) => q.type === "publish", 10).catch(() => undefined);
              if (p === undefined || p.type !== "publish") break;
              received[i].push(text(p.payload));
              await ackPublish(members[i], p);
            }
          }
          return received.flat().length >= count;
        },
        10_000,
        "shared deliveries",
      );
      await sleep(200);
      const all = received.flat();
      assert.equal(all.length, count, "each message once");
      assert.equal(new Set(all).size, count);
      assert(
        received.filter((r) => r.length > 0).length >= 2,
        `spread over nodes: ${received.map((r) => r.length)}`,
      );
    });

    it("hands a shared message its member did not acknowledge to another member, on another node", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const slow = await connect(1, { clientId: "slow-member" });
      await subscribe(slow, 1, [sub("$share/h/hand/#", 1)]);
      const a = await connect(0, { clientId: "hand-pub" });
      for (let i = 1; i <= 5; i++) await publishAcked(a, publish("hand/t", String(i), 1, { packetId: i }));
      // Received, never acknowledged.
      assert.equal((await slow.publishes(5)).length, 5);
      const other = await connect(2, { clientId: "other-member" });
      await subscribe(other, 1, [sub("$share/h/hand/#", 1)]);
      slow.close();
      const moved = await other.publishes(5, 10_000);
      assert.deepEqual(moved.map((p) => text(p.payload)).sort(), ["1", "2", "3", "4", "5"]);
    });

    it("publishes wills on every node, after their delay", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const watcher = await connect(1, { clientId: "will-watch" });
      await subscribe(watcher, 1, [sub("will/#", 1)]);
      const now = await connect(0, {
        clientId: "will-now",
        will: { topic: "will/now", payload: bytes("gone"), qos: 1, retain: false },
      });
      const delayed = await connect(2, {
        clientId: "will-later",
        properties: { sessionExpiryInterval: 10 },
        will: {
          topic: "will/later",
          payload: bytes("gone later"),
          qos: 1,
          retain: false,
          properties: { willDelayInterval: 1 },
        },
      });
      now.close();
      const [first] = await watcher.publishes(1);
      assert.equal(first.topic, "will/now");
      await ackPublish(watcher, first);
      const closedAt = Date.now();
      delayed.close();
      const [second] = await watcher.publishes(1, 5000);
      assert.equal(second.topic, "will/later");
      assert(Date.now() - closedAt >= 900, `the will waited its delay (${Date.now() - closedAt} ms)`);
    });

    it("gives each node its own $SYS and the cluster's figures, and names the node in its logs", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const fixture = cluster;
      await eventually(
        () => fixture.brokers[1].sysValues().get("$SYS/cluster/nodes") === "3",
        5000,
        "3 nodes",
      );
      const values = fixture.brokers[1].sysValues();
      assert.equal(values.get("$SYS/cluster/engine"), "connected");
      assert(values.has("$SYS/broker/clients/connected"));
      assert.notEqual(
        fixture.brokers[0].sysValues().get("$SYS/cluster/node"),
        values.get("$SYS/cluster/node"),
      );
      const node = values.get("$SYS/cluster/node") as string;
      assert(fixture.logs[1].some((line) => line.startsWith(`[${node}] `)), "logs name the node");
      // Per node: a node's $SYS topics stay on that node.
      assert.equal(Number(fixture.brokers[0].sysValues().get("$SYS/cluster/messages/forwarded")) > 0, true);
    });

    it("keeps serving local clients while the engine is away, refuses what it cannot guarantee, and recovers", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const fixture = cluster;
      const remote = await connect(1, { clientId: "trouble-remote" });
      await subscribe(remote, 1, [sub("tr/#", 1)]);
      const local = await connect(0, { clientId: "trouble-local" });
      await subscribe(local, 1, [sub("tr/#", 1)]);
      const v5 = await connect(0, { clientId: "trouble-v5" });
      await fixture.setEngine(false, 0);
      await eventually(
        () => fixture.brokers[0].sysValues().get("$SYS/cluster/engine") === "disconnected",
        10_000,
        "disconnected",
      );
      assert(fixture.logs[0].some((line) => line.includes("unreachable")));
      // QoS 0 still reaches the node's own clients.
      await v5.send(publish("tr/0", "local", 0));
      const [got] = await local.publishes(1);
      assert.equal(text(got.payload), "local");
      // QoS 1 cannot be stored: refused with a reason code (MQTT 5) ...
      assert.equal(await publishAcked(v5, publish("tr/1", "refused", 1, { packetId: 1 })), 0x83);
      // ... or by closing the connection (3.1.1), without a PUBACK.
      const old = await connect(0, { clientId: "trouble-311" }, 4);
      await old.send(publish("tr/1", "refused", 1, { packetId: 1 }));
      await old.ended;
      // A persistent session cannot be claimed; a clean one is served here.
      const persistent = await connect(0, {
        clientId: "trouble-p",
        cleanStart: false,
        properties: { sessionExpiryInterval: 60 },
      });
      assert.equal(persistent.connack.reasonCode, 0x88);
      const clean = await connect(0, { clientId: "trouble-clean" });
      assert.equal(clean.connack.reasonCode, 0);
      await noPublish(local, 100);
      // Stored by another node while this one is away: routed here once it is back.
      const other = fixture.partial ? await connect(1, { clientId: "trouble-other" }) : undefined;
      if (other !== undefined) {
        assert.equal(await publishAcked(other, publish("tr/missed", "while away", 1, { packetId: 1 })), 0);
        const [atRemote] = await remote.publishes(1);
        await ackPublish(remote, atRemote);
      }

      await fixture.setEngine(true, 0);
      await eventually(
        () => fixture.brokers[0].sysValues().get("$SYS/cluster/engine") === "connected",
        20_000,
        "reconnected",
      );
      assert(fixture.logs[0].some((line) => line.includes("reachable again")));
      if (other !== undefined) {
        const missed = await local.next((p) => p.type === "publish", 10_000);
        assert(missed.type === "publish");
        assert.equal(text(missed.payload), "while away");
        await ackPublish(local, missed);
      }
      // Interest is back: what node 0 publishes reaches node 1's subscriber, and the other way round.
      await eventually(
        async () => {
          const code = await publishAcked(v5, publish("tr/2", "again", 1, { packetId: 2 })).catch(() => -1);
          const p = await remote.next((q) => q.type === "publish", 500).catch(() => undefined);
          if (p?.type === "publish") await ackPublish(remote, p);
          return code === 0 && p !== undefined;
        },
        20_000,
        "cross-node delivery after the engine came back",
      );
      const b = await connect(1, { clientId: "trouble-b" });
      await publishAcked(b, publish("tr/3", "from b", 1, { packetId: 1 }));
      const fromB = await local.next((p) => p.type === "publish" && text(p.payload) === "from b", 5000);
      assert(fromB.type === "publish");
    });

    it("publishes the will and ends the session of a client whose node stopped and who never came back", async (t) => {
      if (cluster === undefined) return t.skip("no cluster");
      const fixture = cluster;
      // After the engine trouble above, every node must be back before sessions can be claimed.
      await eventually(
        () => fixture.brokers.every((b) => b.sysValues().get("$SYS/cluster/engine") === "connected"),
        20_000,
        "every node reconnected",
      );
      const watcher = await connect(0, { clientId: "parked-watch" });
      await subscribe(watcher, 1, [sub("will/#", 1)]);
      const client = await connect(2, {
        clientId: "parked",
        properties: { sessionExpiryInterval: 2 },
        will: {
          topic: "will/parked",
          payload: bytes("gone for good"),
          qos: 1,
          retain: false,
          properties: { willDelayInterval: 1 },
        },
      });
      assert.equal(client.connack.reasonCode, 0);
      await subscribe(client, 1, [sub("pk/#", 1)]);
      const stoppedAt = Date.now();
      // Its node stops: the session (and its will, waiting for its delay) is left in the cluster.
      await cluster.stopNode(2);
      const [will] = await watcher.publishes(1, 5000);
      assert.equal(will.topic, "will/parked");
      assert.equal(text(will.payload), "gone for good");
      assert(Date.now() - stoppedAt >= 900, `the will waited its delay (${Date.now() - stoppedAt} ms)`);
      await ackPublish(watcher, will);
      // Published by one node only, though every node watches over it.
      await noPublish(watcher, 1500);
      await sleep(Math.max(0, stoppedAt + 2300 - Date.now()));
      const back = await connect(1, {
        clientId: "parked",
        cleanStart: false,
        properties: { sessionExpiryInterval: 2 },
      });
      assert.equal(back.connack.sessionPresent, false, "expired everywhere");
    });
  });
}
