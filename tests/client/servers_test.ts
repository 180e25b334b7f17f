/**
 * A client given several brokers (`connect([urlA, urlB])`, `servers`): it connects to the first that answers
 * and, when its connection is lost, tries the next in turn; against brokers of one cluster, its session follows
 * it.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import { Cluster } from "../../src/cluster/cluster.ts";
import { MemoryHub } from "../../src/cluster/memory_engine.ts";
import { freePort } from "../_mosquitto.ts";
import { take, within } from "../_helpers.ts";

const fast = { initialDelayMs: 20, maxDelayMs: 50 };

test("connect() with several URLs skips one that does not answer and takes the next", async () => {
  const broker = new Broker({ sysInterval: 0 });
  const { port } = await broker.listen({ port: 0 });
  const dead = await freePort();
  const client = await within(
    connect([`mqtt://127.0.0.1:${dead}`, `mqtt://127.0.0.1:${port}`], {
      clientId: "second",
      reconnect: fast,
    }),
  );
  assert.ok(broker.machine.hasSession("second"));
  await client.close();
  await broker.close();
});

test("connect() with no URL that answers fails once each was tried", async () => {
  const dead = [await freePort(), await freePort()].map((port) => `mqtt://127.0.0.1:${port}`);
  await assert.rejects(within(connect({ servers: dead, reconnect: fast })));
});

test("a client of two brokers of one cluster goes on with its session on the other when its broker stops", async () => {
  const hub = new MemoryHub();
  const brokers = ["a", "b"].map((node) =>
    new Broker({ sysInterval: 0, cluster: new Cluster({ engine: hub.engine(), node, heartbeatMs: 200 }) })
  );
  const urls: string[] = [];
  for (const broker of brokers) urls.push(`mqtt://127.0.0.1:${(await broker.listen({ port: 0 })).port}`);
  const states: string[] = [];
  const client = await connect({
    servers: urls,
    clientId: "follower",
    cleanStart: false,
    sessionExpiryInterval: 3600,
    reconnect: fast,
    onStateChange: (event) => states.push(event.type),
  });
  const messages = await client.subscribe("f/#", { qos: 1 });
  assert.ok(brokers[0].machine.hasSession("follower"));
  // Its broker stops: it reconnects to the other, which takes the session over from the cluster.
  await brokers[0].close();
  const publisher = await connect(urls[1], { reconnect: false });
  await within(
    (async () => {
      while (!brokers[1].machine.hasSession("follower")) await new Promise((r) => setTimeout(r, 20));
    })(),
    5000,
    "the session on the other broker",
  );
  await publisher.publish("f/1", "after the move", { qos: 1 });
  const [message] = await take(messages, 1);
  assert.equal(message.text(), "after the move");
  assert.ok(states.includes("reconnecting"));
  await publisher.close();
  await client.close();
  await brokers[1].close();
});
