/**
 * A node that dies at the worst moment, in one process on the in-memory engine so that the moment is chosen
 * exactly: its journal write held back (the node has done something its clients must not see yet), then the
 * node cut off the engine and from its clients at once, as `kill -9` would. Another node takes over its
 * sessions from what the journal holds; nothing may reach a client twice.
 */

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import type { MqttClient } from "../../src/client/mqtt_client.ts";
import { Cluster } from "../../src/cluster/cluster.ts";
import type { ClusterEngine } from "../../src/cluster/engine.ts";
import { type MemoryEngine, MemoryHub } from "../../src/cluster/memory_engine.ts";
import { type CuttingProxy, startCuttingProxy } from "../chaos/_proxy.ts";
import type { Subscription } from "../../src/client/subscription.ts";
import { sleep } from "../_helpers.ts";

/** Every message of a subscription, as text, as they come. */
function collect(subscription: Subscription): string[] {
  const got: string[] = [];
  void (async () => {
    for await (const message of subscription) got.push(message.text());
  })();
  return got;
}

/** Waits until `got` holds `count` messages (at most `ms`), then returns a copy. */
async function until(got: string[], count: number, ms = 5000): Promise<string[]> {
  for (const deadline = Date.now() + ms; got.length < count && Date.now() < deadline;) await sleep(20);
  return [...got];
}

/** An engine whose stores on subjects under a prefix wait until released, as a slow server would make them. */
function holdable(inner: MemoryEngine): ClusterEngine & { hold(prefix: string): void; release(): void } {
  let held: string | undefined;
  const waiting: (() => void)[] = [];
  return new Proxy(inner, {
    get(target, key) {
      if (key === "hold") return (prefix: string) => held = prefix;
      if (key === "release") {
        return () => {
          held = undefined;
          for (const go of waiting.splice(0)) go();
        };
      }
      if (key === "store") {
        return (subject: string, data: Uint8Array) => {
          if (held === undefined || !subject.startsWith(held)) return target.store(subject, data);
          const copy = data.slice();
          return new Promise<number>((resolve, reject) => {
            waiting.push(() => target.store(subject, copy).then(resolve, reject));
          });
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as unknown as ClusterEngine & { hold(prefix: string): void; release(): void };
}

interface Setup {
  /** Node a's engine, whose journal can be held, and the proxy its clients come through. */
  engineA: ReturnType<typeof holdable>;
  rawA: MemoryEngine;
  proxyA: CuttingProxy;
  portA: number;
  portB: number;
  brokers: Broker[];
  logs: string[];
}

async function setUp(): Promise<Setup> {
  const hub = new MemoryHub();
  const rawA = hub.engine();
  const engineA = holdable(rawA);
  const logs: string[] = [];
  const broker = (engine: ClusterEngine, node: string) =>
    new Broker({
      cluster: new Cluster({ engine, node, heartbeatMs: 100 }),
      sysInterval: 0,
      log: (_level, message) => logs.push(message),
    });
  const a = broker(engineA, "a");
  const b = broker(hub.engine(), "b");
  const portA = (await a.listen({ hostname: "127.0.0.1", port: 0 })).port;
  const portB = (await b.listen({ hostname: "127.0.0.1", port: 0 })).port;
  const proxyA = await startCuttingProxy({ target: portA, seed: 1, minMs: 1e9, maxMs: 1e9 });
  return { engineA, rawA, proxyA, portA, portB, brokers: [a, b], logs };
}

/** Proxies still open (closing one twice never settles under Deno). */
const proxies = new Set<CuttingProxy>();

/** Node a dies: off the engine and away from its clients at once; what it held back is then refused. */
async function killA(setup: Setup): Promise<void> {
  setup.rawA.setConnected(false);
  proxies.delete(setup.proxyA);
  await setup.proxyA.close();
  setup.engineA.release();
}

/**
 * A persistent-session client of node a (through its proxy, unless `direct`) that moves to b when a is gone.
 */
function client(setup: Setup, clientId: string, resumed: boolean[], direct = false): Promise<MqttClient> {
  let first = true;
  const a = direct ? setup.portA : setup.proxyA.port;
  return connect([`mqtt://127.0.0.1:${a}`, `mqtt://127.0.0.1:${setup.portB}`], {
    clientId,
    cleanStart: false,
    sessionExpiryInterval: 600,
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    onStateChange: (event) => {
      if (event.type !== "connected") return;
      if (!first) resumed.push(event.sessionPresent);
      first = false;
    },
  });
}

describe("cluster: a node dies while its journal write is on its way", () => {
  const clients: MqttClient[] = [];
  const brokers: Broker[] = [];
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Promise.all([...proxies].map((p) => p.close()));
    await Promise.all(brokers.map((b) => b.close()));
  });

  it("a delivery its node had not journaled is not sent, and comes once from the node that takes over", async () => {
    const setup = await setUp();
    brokers.push(...setup.brokers);
    proxies.add(setup.proxyA);
    const resumed: boolean[] = [];
    const subscriber = await client(setup, "s", resumed);
    clients.push(subscriber);
    const got = collect(await subscriber.subscribe("t/#", { qos: 2 }));
    const publisher = await connect(`mqtt://127.0.0.1:${setup.portB}`);
    clients.push(publisher);
    await publisher.publish("t/1", "m1", { qos: 2 });
    assert.deepEqual(await until(got, 1), ["m1"]);

    setup.engineA.hold("mqtt_j.");
    await publisher.publish("t/1", "m2", { qos: 2 });
    // Routed to the subscriber's session on a, whose journal does not have it yet.
    await sleep(300);
    await killA(setup);
    await until(got, 2, 10_000);
    await sleep(300);
    assert.deepEqual(got, ["m1", "m2"], setup.logs.join("\n"));
    assert.deepEqual(resumed, [true]);
  });

  it("a QoS 2 message stored by a node that died before its PUBREC went out is not routed twice", async () => {
    const setup = await setUp();
    brokers.push(...setup.brokers);
    proxies.add(setup.proxyA);
    const subscriber = await connect(`mqtt://127.0.0.1:${setup.portB}`, {
      clientId: "s2",
      cleanStart: false,
      sessionExpiryInterval: 600,
    });
    clients.push(subscriber);
    const got = collect(await subscriber.subscribe("u/#", { qos: 2 }));
    const resumed: boolean[] = [];
    const publisher = await client(setup, "p2", resumed);
    clients.push(publisher);

    setup.engineA.hold("mqtt_j.");
    const published = publisher.publish("u/1", "n1", { qos: 2 });
    // Stored and routed to b's subscriber; its PUBREC waits for a's journal.
    assert.deepEqual(await until(got, 1), ["n1"]);
    await killA(setup);
    // The publisher sends it again on b, which acknowledges it without routing it.
    await published;
    await sleep(500);
    assert.deepEqual(got, ["n1"], setup.logs.join("\n"));
    assert.deepEqual(resumed, [true]);
  });

  it("a node cut off for longer than three heartbeats lets go of the sessions the cluster took over meanwhile", async () => {
    const setup = await setUp();
    brokers.push(...setup.brokers);
    proxies.add(setup.proxyA);
    // a's clients stay connected to it: it is cut off the engine only.
    proxies.delete(setup.proxyA);
    await setup.proxyA.close();
    const b = `mqtt://127.0.0.1:${setup.portB}`;
    const a = `mqtt://127.0.0.1:${setup.portA}`;
    const watcher = await connect(b);
    clients.push(watcher);
    const wills = collect(await watcher.subscribe("will/#", { qos: 1 }));
    const withWill = await connect(a, {
      clientId: "w",
      reconnect: false,
      will: { topic: "will/w", payload: "gone", qos: 1 },
    });
    clients.push(withWill);
    const resumed: boolean[] = [];
    const subscriber = await client(setup, "s3", resumed, true);
    clients.push(subscriber);
    const got = collect(await subscriber.subscribe("p/#", { qos: 1 }));

    setup.rawA.setConnected(false);
    // b takes a for dead: w's will goes out, s3's session waits in the cluster for its client.
    assert.deepEqual(await until(wills, 1, 5000), ["gone"], setup.logs.join("\n"));
    for (let i = 0; i < 100 && !setup.logs.some((l) => l.includes('Took over from node "a"')); i++) {
      await sleep(20);
    }
    const publisher = await connect(b);
    clients.push(publisher);
    await publisher.publish("p/1", "while a was away", { qos: 1 });

    // a is back: its clients are told to go, and s3 resumes where the cluster left its session.
    setup.rawA.setConnected(true);
    assert.deepEqual(await until(got, 1, 10_000), ["while a was away"], setup.logs.join("\n"));
    await sleep(500);
    assert.deepEqual(got, ["while a was away"]);
    assert.deepEqual(resumed, [true]);
    assert.deepEqual(wills, ["gone"], "the will went out once");
    assert.ok(setup.logs.some((l) => l.includes("took this node for dead")), setup.logs.join("\n"));
    // a goes on as a node: a new client there is served and reaches b.
    const fresh = await connect(a, { reconnect: false });
    clients.push(fresh);
    await fresh.publish("p/2", "a again", { qos: 1 });
    assert.deepEqual(await until(got, 2), ["while a was away", "a again"]);
  });
});
