/**
 * The broker with a SQLite store, restarted: after a graceful close and after a crash (the store stops taking
 * writes at an arbitrary point, as when the process dies), nothing the broker acknowledged is lost, in-flight
 * messages are resent with DUP, subscriptions and retained messages are back, and wills that came due while
 * the broker was down are published when it starts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Broker } from "../../src/broker/broker.ts";
import { type BrokerStore, openSqliteStore } from "../../src/broker/store.ts";
import { connect } from "../../src/client/connect.ts";
import type { PublishPacket } from "../../src/codec/packet.ts";
import { rawConnect } from "../_raw_client.ts";

const text = (p: PublishPacket) => new TextDecoder().decode(p.payload);

function tempDb(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-persist-"));
  return { path: join(dir, "broker.db"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A store that can "crash": from then on it takes no more writes, as a killed process would not. */
function crashable(store: BrokerStore): BrokerStore & { crash(): void } {
  let alive = true;
  return {
    load: () => store.load(),
    write: (changes, replace) => {
      if (alive) store.write(changes, replace);
    },
    close: () => store.close(),
    crash: () => alive = false,
  };
}

test("persistence: a graceful restart keeps sessions, subscriptions, queued QoS 1 and 2 messages and retained messages", async () => {
  const db = tempDb();
  try {
    let broker = new Broker({ store: await openSqliteStore(db.path), sysInterval: 0 });
    let { port } = await broker.listen({ port: 0 });
    const sub = await rawConnect(port, { clientId: "sub", properties: { sessionExpiryInterval: 3600 } });
    await sub.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "p/#",
        qos: 2,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    });
    assert.equal((await sub.next()).type, "suback");
    await sub.send({ type: "disconnect", reasonCode: 0 });
    await sub.ended;

    const pub = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false, clientId: "pub" });
    for (let i = 0; i < 20; i++) await pub.publish("p/one", `q1-${i}`, { qos: 1 });
    for (let i = 0; i < 5; i++) await pub.publish("p/two", `q2-${i}`, { qos: 2 });
    await pub.publish("r/x", "kept", { qos: 1, retain: true });
    await pub.close();
    await broker.close();

    broker = new Broker({ store: await openSqliteStore(db.path), sysInterval: 0 });
    ({ port } = await broker.listen({ port: 0 }));
    const back = await rawConnect(port, {
      clientId: "sub",
      cleanStart: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(back.connack.sessionPresent, true);
    const got = await back.publishes(25);
    assert.deepStrictEqual(got.map(text), [
      ...Array.from({ length: 20 }, (_, i) => `q1-${i}`),
      ...Array.from({ length: 5 }, (_, i) => `q2-${i}`),
    ]);
    assert.deepStrictEqual(got.map((p) => p.qos), [...Array(20).fill(1), ...Array(5).fill(2)]);
    for (const p of got) {
      if (p.qos === 1) await back.send({ type: "puback", packetId: p.packetId!, reasonCode: 0 });
      else await back.send({ type: "pubrec", packetId: p.packetId!, reasonCode: 0 });
    }
    // The subscription came back too: a new message is routed to it.
    const probe = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false, clientId: "probe" });
    await probe.publish("p/three", "after restart", { qos: 1 });
    const retained = await probe.subscribe("r/#");
    for await (const message of retained) {
      assert.equal(message.text(), "kept");
      assert.equal(message.retain, true);
      break;
    }
    await probe.close();
    const live = await back.next((p) => p.type === "publish" && p.topic === "p/three");
    assert.equal(text(live as PublishPacket), "after restart");
    back.close();
    await broker.close();
  } finally {
    db.remove();
  }
});

test("persistence: after a crash, in-flight messages are resent with DUP and a will due meanwhile is published", async () => {
  const db = tempDb();
  try {
    const store = crashable(await openSqliteStore(db.path));
    const first = new Broker({ store, sysInterval: 0 });
    const { port } = await first.listen({ port: 0 });
    const sub = await rawConnect(port, { clientId: "sub", properties: { sessionExpiryInterval: 3600 } });
    await sub.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [
        { topicFilter: "p/#", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { topicFilter: "will/#", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
    });
    assert.equal((await sub.next()).type, "suback");
    // A client that will "die" with the broker: its will waits one second after the connection is gone.
    const dying = await rawConnect(port, {
      clientId: "dying",
      will: {
        topic: "will/dying",
        payload: new TextEncoder().encode("gone"),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 1 },
      },
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(dying.connack.reasonCode, 0);
    const pub = await rawConnect(port, { clientId: "pub" });
    for (let i = 1; i <= 5; i++) {
      await pub.send({
        type: "publish",
        topic: "p/x",
        payload: new TextEncoder().encode(`m${i}`),
        qos: 1,
        retain: false,
        dup: false,
        packetId: i,
      });
    }
    // Every PUBACK means the message is written.
    for (let i = 0; i < 5; i++) assert.equal((await pub.next((p) => p.type === "puback")).type, "puback");
    // The subscriber received them and acknowledges only the first two before the crash.
    const before = await sub.publishes(5);
    for (const p of before.slice(0, 2)) {
      await sub.send({ type: "puback", packetId: p.packetId!, reasonCode: 0 });
    }
    // Wait until the broker has handled those PUBACKs (a PINGREQ answered after them).
    await sub.send({ type: "pingreq" });
    await sub.next((p) => p.type === "pingresp");
    store.crash();
    await first.close(); // nothing of the shutdown reaches the store
    for (const c of [sub, dying, pub]) c.close();

    const started = Date.now();
    const second = new Broker({ store: await openSqliteStore(db.path), sysInterval: 0 });
    const { port: port2 } = await second.listen({ port: 0 });
    const back = await rawConnect(port2, {
      clientId: "sub",
      cleanStart: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(back.connack.sessionPresent, true);
    const resent = await back.publishes(3);
    assert.deepStrictEqual(resent.map(text), ["m3", "m4", "m5"]);
    assert.ok(resent.every((p) => p.dup), "in-flight messages are resent with DUP");
    assert.deepStrictEqual(resent.map((p) => p.packetId), before.slice(2).map((p) => p.packetId));
    for (const p of resent) await back.send({ type: "puback", packetId: p.packetId!, reasonCode: 0 });
    const will = await back.next(
      (p) => p.type === "publish" && p.topic === "will/dying",
      5000,
    ) as PublishPacket;
    assert.equal(text(will), "gone");
    assert.ok(Date.now() - started >= 900, "the will waited for its delay, counted from the restart");
    back.close();
    await second.close();
  } finally {
    db.remove();
  }
});

test("persistence: a will whose delay passed while the broker was down is published at start; an expired session is gone", async () => {
  const db = tempDb();
  try {
    let wall = Date.now();
    const clock = () => wall;
    let broker = new Broker({ store: await openSqliteStore(db.path, { clock }), sysInterval: 0 });
    let { port } = await broker.listen({ port: 0 });
    const watcher = await rawConnect(port, {
      clientId: "watcher",
      properties: { sessionExpiryInterval: 3600 },
    });
    await watcher.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "will/#",
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    });
    await watcher.next((p) => p.type === "suback");
    await watcher.send({ type: "disconnect", reasonCode: 0 });
    // Drops its connection without DISCONNECT: its will waits 60 s, its session lasts 120 s.
    const dropped = await rawConnect(port, {
      clientId: "dropped",
      will: {
        topic: "will/dropped",
        payload: new TextEncoder().encode("late"),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 60 },
      },
      properties: { sessionExpiryInterval: 120 },
    });
    const shortLived = await rawConnect(port, {
      clientId: "short",
      properties: { sessionExpiryInterval: 10 },
    });
    await shortLived.send({ type: "disconnect", reasonCode: 0 });
    dropped.close();
    await dropped.ended;
    await new Promise((r) => setTimeout(r, 50));
    await broker.close();
    assert.equal(broker.machine.sessionCount, 3);

    // The broker is down for 90 seconds (of the store's clock).
    wall += 90_000;
    broker = new Broker({ store: await openSqliteStore(db.path, { clock }), sysInterval: 0 });
    assert.equal(
      broker.machine.hasSession("short"),
      false,
      "the 10 s session expired while the broker was down",
    );
    assert.equal(broker.machine.hasSession("dropped"), true, "the 120 s session is still there");
    ({ port } = await broker.listen({ port: 0 }));
    const back = await rawConnect(port, {
      clientId: "watcher",
      cleanStart: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    const [will] = await back.publishes(1);
    assert.equal(will.topic, "will/dropped");
    assert.equal(text(will), "late");
    back.close();
    await broker.close();
  } finally {
    db.remove();
  }
});
