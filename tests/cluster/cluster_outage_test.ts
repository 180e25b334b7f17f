/**
 * `broker.ts --cluster` processes through NATS outages: nats-server restarted (same storage) while a node's
 * publisher is busy, and one node cut off NATS by a proxy (`_nats_proxy.ts`) while its MQTT clients stay
 * connected. Every wait is bounded; each test takes about 5 seconds.
 */

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { connect } from "../../src/client/connect.ts";
import type { MqttClient } from "../../src/client/mqtt_client.ts";
import type { Message } from "../../src/client/message.ts";
import type { Subscription } from "../../src/client/subscription.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";
import { type RunningBroker, startBroker } from "../_broker_process.ts";
import { settledWithin, sleep, take, within } from "../_helpers.ts";
import { rawConnect } from "../_raw_client.ts";
import { type NatsServer, natsSkipReason, startNats } from "./_nats.ts";
import { type PartitionProxy, startPartitionProxy } from "./_nats_proxy.ts";

/** The port a broker process says it listens on. */
function portOf(broker: RunningBroker): number {
  const match = /listening on mqtt:\/\/[^:]+:(\d+)/.exec(broker.log());
  assert(match !== null, broker.log());
  return Number(match[1]);
}

/** The `mqtt://` URL of a broker process. */
function urlOf(broker: RunningBroker): string {
  return `mqtt://127.0.0.1:${portOf(broker)}`;
}

/** Polls until `check()` holds, failing with `what` (and the logs of `brokers`) after `ms`. */
async function until(
  check: () => boolean,
  ms: number,
  what: string,
  brokers: RunningBroker[] = [],
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      assert.fail(`Timed out after ${ms} ms: ${what}\n${brokers.map((b) => b.log()).join("\n---\n")}`);
    }
    await sleep(25);
  }
}

/** Counts the lines of a broker's log that match. */
function lines(broker: RunningBroker, pattern: RegExp): number {
  return broker.log().split("\n").filter((line) => pattern.test(line)).length;
}

/** What a subscription delivered so far, read in the background. */
interface Inbox {
  readonly messages: Message[];
  texts(): string[];
}

/** Starts reading a subscription in the background. */
function collect(subscription: Subscription): Inbox {
  const messages: Message[] = [];
  void (async () => {
    for await (const message of subscription) messages.push(message);
  })().catch(() => {});
  return { messages, texts: () => messages.map((m) => m.text()) };
}

/** For `assert.rejects`: an `MqttError` with this reason code. */
function refusedWith(code: ReasonCode): (error: unknown) => boolean {
  return (error) => {
    assert(error instanceof MqttError, `expected an MqttError, got ${error}`);
    assert.equal(error.reasonCode, code, error.message);
    return true;
  };
}

const skip = await natsSkipReason();
if (skip !== undefined) console.log(skip);

describe("broker.ts --cluster through NATS outages", () => {
  const brokers: RunningBroker[] = [];
  const clients: MqttClient[] = [];
  const servers: NatsServer[] = [];
  const proxies: PartitionProxy[] = [];
  const node = async (cluster: string, name: string) => {
    const broker = await startBroker(["--port", "0", "--cluster", cluster, "--node", name], 20_000);
    brokers.push(broker);
    return broker;
  };
  const client = async (broker: RunningBroker, options: Parameters<typeof connect>[1] = {}) => {
    const connected = await connect(urlOf(broker), { reconnect: false, ...options });
    clients.push(connected);
    return connected;
  };

  after(async () => {
    await Promise.all(clients.map((c) => settledWithin(c.close(), 2000)));
    await Promise.all(brokers.map(async (broker) => {
      if (broker.child.exitCode !== null || broker.child.signalCode !== null) return;
      broker.child.kill("SIGTERM");
      await settledWithin(broker.exited, 5000);
      if (broker.child.exitCode === null) broker.child.kill("SIGKILL");
    }));
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await Promise.all(servers.map((server) => server.stop()));
  });

  it(
    "NATS restart under load: nodes reconnect, nothing acknowledged is lost, retained messages and sessions stay",
    {
      skip,
    },
    async () => {
      const started = Date.now();
      const nats = await startNats() as NatsServer;
      servers.push(nats);
      // b, the subscriber's node, reaches NATS through a proxy that holds it off a little longer than a after the
      // restart: what a has acknowledged meanwhile, b can only get from the stream.
      const proxy = await startPartitionProxy(nats.port);
      proxies.push(proxy);
      const [a, b] = await Promise.all([node(nats.url, "ra"), node(`nats://127.0.0.1:${proxy.port}`, "rb")]);
      const publisher = await client(a, { clientId: "restart-pub" });
      await publisher.publish("restart/status", "set before the restart", { qos: 1, retain: true });
      const subscriber = await client(b, {
        clientId: "restart-sub",
        cleanStart: false,
        sessionExpiryInterval: 3600,
      });
      const inbox = collect(await subscriber.subscribe("restart/load/#", { qos: 1 }));

      // A bounded load of numbered messages, WINDOW publishes in flight. nats-server restarts (SIGTERM, then the
      // same storage) once a third is acknowledged, with publishes in flight; from then on each worker pauses
      // after each acknowledgement, so that the load goes on after nats-server is back, both while b is still
      // away and once it is back. A refused publish (PUBACK 0x83: the cluster could not store it) is not
      // acknowledged, so it goes again a bit later.
      const COUNT = 400;
      const WINDOW = 16;
      const PAUSE_MS = 150;
      const acked = new Set<number>();
      let refused = 0;
      let nextIndex = 0;
      let restart: Promise<void> | undefined;
      let phase: "before" | "outage" | "aOnly" | "both" = "before";
      /** Acknowledged once nats-server was back: while b was still away, and once b was back too. */
      const ackedAfter = { aOnly: 0, both: 0 };
      const deadline = Date.now() + 25_000;
      const outage = async () => {
        phase = "outage";
        proxy.partition();
        await nats.restart();
        await until(() => lines(a, /reachable again/) > 0, 10_000, "a reconnected", [a]);
        phase = "aOnly";
        await until(() => ackedAfter.aOnly >= 20, 10_000, "a's publishes acknowledged while b is away", [a]);
        proxy.heal();
        await until(() => lines(b, /reachable again/) > 0, 10_000, "b reconnected", [b]);
        phase = "both";
      };
      const worker = async () => {
        for (let i = nextIndex++; i < COUNT; i = nextIndex++) {
          for (;;) {
            try {
              await publisher.publish(`restart/load/${i % 8}`, `m${i}`, { qos: 1 });
              break;
            } catch (error) {
              refusedWith(ReasonCode.ImplementationSpecificError)(error);
              refused++;
              assert(Date.now() < deadline, `m${i} was still refused after 25 s:\n${a.log()}`);
              await sleep(50);
            }
          }
          acked.add(i);
          if (phase === "aOnly" || phase === "both") ackedAfter[phase]++;
          if (acked.size === Math.floor(COUNT / 3) && restart === undefined) {
            restart = outage();
            restart.catch(() => {}); // awaited below
          }
          if (phase !== "before") await sleep(PAUSE_MS);
        }
      };
      await within(Promise.all(Array.from({ length: WINDOW }, worker)), 30_000, "the publisher's load");
      await within(restart as Promise<void>, 10_000, "the restart of nats-server");
      assert.equal(acked.size, COUNT);
      // Under load: publishes were refused while NATS was away, and acknowledged again once it was back, before
      // and after b was.
      assert(refused > 0, "no publish was refused: the restart did not happen under load");
      assert(
        ackedAfter.both > 0,
        `no publish was acknowledged once b was back: make the load longer (${ackedAfter.aOnly})`,
      );

      // Both nodes saw NATS go and come back.
      await until(
        () => lines(a, /reachable again/) > 0 && lines(b, /reachable again/) > 0,
        10_000,
        "both nodes reconnected",
        [a, b],
      );
      assert(lines(a, /Cluster engine unreachable/) > 0 && lines(b, /Cluster engine unreachable/) > 0);

      // Every acknowledged publish reached the subscriber (QoS 1: repeats allowed, nothing missing).
      const missing = () => {
        const got = new Set(inbox.texts());
        return [...acked].filter((i) => !got.has(`m${i}`)).sort((x, y) => x - y);
      };
      await until(() => missing().length === 0, 15_000, "every acknowledged message delivered").catch(
        () => {},
      );
      assert.deepEqual(
        missing().map((i) => `m${i}`),
        [],
        `acknowledged but never delivered (${refused} refusals; after the restart ${ackedAfter.aOnly} acknowledged while b was away, ${ackedAfter.both} once it was back):\n${b.log()}`,
      );
      assert(inbox.texts().every((text) => /^m\d+$/.test(text) && Number(text.slice(1)) < COUNT));

      // The retained message outlived the restart: on the nodes that were up, and on one that joins only now
      // (from the bucket that nats-server read back from its storage).
      const c = await node(nats.url, "rc");
      for (const broker of [a, b, c]) {
        const fresh = await client(broker);
        const [status] = await take(await fresh.subscribe("restart/status", { qos: 1 }), 1, 10_000);
        assert.equal(status.text(), "set before the restart", `on ${urlOf(broker)}`);
        assert.equal(status.retain, true);
        await fresh.close();
      }

      // So did the persistent session: it moves from b to a, with what was queued for it meanwhile.
      await subscriber.close();
      for (let i = 0; i < 5; i++) await publisher.publish("restart/load/queued", `q${i}`, { qos: 1 });
      const back = await rawConnect(portOf(a), {
        clientId: "restart-sub",
        cleanStart: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      try {
        assert.equal(back.connack.reasonCode, 0);
        assert.equal(back.connack.sessionPresent, true);
        const queued: string[] = [];
        while (queued.length < 5) {
          // Repeats of the load (QoS 1) may come first.
          const packet = await back.next((p) => p.type === "publish", 10_000);
          const text = packet.type === "publish" ? new TextDecoder().decode(packet.payload) : "";
          if (text.startsWith("q")) queued.push(text);
        }
        assert.deepEqual(queued, ["q0", "q1", "q2", "q3", "q4"]);
      } finally {
        back.close();
      }
      await publisher.close();
      assert(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
    },
  );

  it("partition of one node from NATS: its clients are told, and it rejoins cleanly", { skip }, async () => {
    const started = Date.now();
    const nats = await startNats() as NatsServer;
    servers.push(nats);
    const proxy = await startPartitionProxy(nats.port);
    proxies.push(proxy);
    const [a, b] = await Promise.all([
      node(`nats://127.0.0.1:${proxy.port}`, "pa"),
      node(nats.url, "pb"),
    ]);
    const onA = collect(await (await client(a, { clientId: "part-sub-a" })).subscribe("part/#", { qos: 1 }));
    const onB = collect(await (await client(b, { clientId: "part-sub-b" })).subscribe("part/#", { qos: 1 }));
    const publisherA = await client(a, { clientId: "part-pub-a" });
    const publisherB = await client(b, { clientId: "part-pub-b" });
    // Joined: QoS 1 crosses both ways.
    await publisherA.publish("part/before/a", "a0", { qos: 1 });
    await publisherB.publish("part/before/b", "b0", { qos: 1 });
    await until(
      () => ["a0", "b0"].every((t) => onA.texts().includes(t) && onB.texts().includes(t)),
      10_000,
      "QoS 1 across before the partition",
      [a, b],
    );

    // Cut a off NATS for CUT_MS: its clients stay connected to it.
    const CUT_MS = 3000;
    const cutAt = Date.now();
    proxy.partition();
    await until(() => lines(a, /Cluster engine unreachable/) > 0, 5000, "a saw NATS go", [a]);
    // QoS 0 still goes to a's own clients.
    await publisherA.publish("part/during/local", "local", { qos: 0 });
    await until(() => onA.texts().includes("local"), 5000, "QoS 0 on a while cut off", [a]);
    // QoS 1 cannot be stored: refused with 0x83, and not delivered even here.
    await assert.rejects(
      publisherA.publish("part/during/refused", "refused", { qos: 1 }),
      refusedWith(ReasonCode.ImplementationSpecificError),
    );
    // A persistent session cannot be claimed: 0x88; a clean one is served here alone.
    await assert.rejects(
      connect(urlOf(a), {
        clientId: "part-persistent",
        cleanStart: false,
        sessionExpiryInterval: 60,
        reconnect: false,
      }),
      refusedWith(ReasonCode.ServerUnavailable),
    );
    const clean = await client(a, { clientId: "part-clean" }).catch((error) =>
      assert.fail(`a clean session on the cut-off node was refused: ${error}`)
    );
    await clean.close();
    // b is not affected, and stores what a's subscriber misses meanwhile.
    await publisherB.publish("part/during/b", "b1", { qos: 1 });
    await until(() => onB.texts().includes("b1"), 5000, "QoS 1 on b during the partition", [b]);
    assert.equal(lines(b, /unreachable/), 0, b.log());
    // A few seconds, fewer than 10, during which a tried to reconnect and was refused.
    await sleep(cutAt + CUT_MS - Date.now());
    await until(() => proxy.refused >= 2, 5000, "a tried to reconnect while cut off", [a]);
    const cutFor = Date.now() - cutAt;
    assert(cutFor < 10_000, `cut off for ${cutFor} ms`);

    proxy.heal();
    await until(() => lines(a, /reachable again/) > 0, 10_000, "a rejoined", [a]);
    // What b stored meanwhile comes first, then QoS 1 goes both ways again.
    await until(() => onA.texts().includes("b1"), 10_000, "a caught up on b1 stored while it was away", [a]);
    await publisherA.publish("part/after/a", "a2", { qos: 1 });
    await publisherB.publish("part/after/b", "b2", { qos: 1 });
    await until(
      () => ["a2", "b2"].every((t) => onA.texts().includes(t) && onB.texts().includes(t)),
      10_000,
      "QoS 1 across after the rejoin",
      [a, b],
    );
    assert.deepEqual(onA.texts(), ["a0", "b0", "local", "b1", "a2", "b2"]);
    // QoS 0 crosses at most once: "local" may or may not have reached b.
    assert.deepEqual(onB.texts().filter((t) => t !== "local"), ["a0", "b0", "b1", "a2", "b2"]);
    // A persistent session is served on a again.
    const persistent = await client(a, {
      clientId: "part-persistent",
      cleanStart: false,
      sessionExpiryInterval: 60,
    });
    await persistent.close();
    assert(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
  });
});
