/**
 * `broker.ts --cluster` as users run it: broker processes on a nats-server the test starts, clients on each
 * node, every node restarted while the cluster keeps its retained messages and sessions.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "../../src/client/connect.ts";
import { type RunningBroker, startBroker } from "../_broker_process.ts";
import mqtt from "mqtt";
import { run, settledWithin, take } from "../_helpers.ts";
import { freePort, mosquittoMissing } from "../_mosquitto.ts";
import { rawConnect } from "../_raw_client.ts";
import { type NatsServer, natsSkipReason, startNats } from "./_nats.ts";

/** The port a broker process says it listens on. */
function portOf(broker: RunningBroker): number {
  const match = /listening on mqtt:\/\/[^:]+:(\d+)/.exec(broker.log());
  assert(match !== null, broker.log());
  return Number(match[1]);
}

async function stop(broker: RunningBroker): Promise<void> {
  broker.child.kill("SIGTERM");
  await broker.exited;
}

const skip = await natsSkipReason();
if (skip !== undefined) console.log(skip);

describe("broker.ts --cluster", () => {
  let nats: NatsServer | undefined;
  const running: RunningBroker[] = [];
  const dir = mkdtempSync(join(tmpdir(), "cluster-cli-"));
  const node = async (args: string[]) => {
    const broker = await startBroker(args.includes("--config") ? args : ["--port", "0", ...args], 20_000);
    running.push(broker);
    return broker;
  };

  before(async () => {
    if (skip === undefined) nats = await startNats();
  });
  after(async () => {
    await Promise.all(running.map((broker) => broker.child.exitCode === null ? stop(broker) : undefined));
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("routes between processes and keeps retained messages and sessions across the restart of every node", {
    skip,
  }, async () => {
    const url = (nats as NatsServer).url;
    const config = join(dir, "b.json");
    writeFileSync(
      config,
      JSON.stringify({ listeners: [{ port: 0 }], cluster: { servers: [url], node: "b" } }),
    );
    const a = await node(["--cluster", url, "--node", "a"]);
    const b = await node(["--config", config]);
    assert.match(a.log(), /node "a" listening/);
    assert.match(b.log(), /\[b\] Joined the cluster as node "b"/);

    const subscriber = await connect(`mqtt://127.0.0.1:${portOf(b)}`, {
      clientId: "roamer",
      cleanStart: false,
      sessionExpiryInterval: 3600,
      reconnect: false,
    });
    const live = await subscriber.subscribe("cli/#", { qos: 1 });
    const publisher = await connect(`mqtt://127.0.0.1:${portOf(a)}`, { reconnect: false });
    await publisher.publish("cli/status", "up", { qos: 1, retain: true });
    await publisher.publish("cli/live", "hello", { qos: 1 });
    const got = await take(live, 2, 10_000);
    assert.deepEqual(got.map((m) => [m.topic, m.text()]), [["cli/status", "up"], ["cli/live", "hello"]]);
    await subscriber.close();
    for (let i = 0; i < 3; i++) await publisher.publish("cli/queued", `q${i}`, { qos: 1 });
    // The subscriber's node goes first: what is published next waits in the stream for its session.
    await stop(b);
    for (let i = 3; i < 5; i++) await publisher.publish("cli/queued", `q${i}`, { qos: 1 });
    await publisher.close();

    // Every node goes; new ones take their place.
    await stop(a);
    const c = await node(["--cluster", url, "--node", "c"]);
    const fresh = await connect(`mqtt://127.0.0.1:${portOf(c)}`, { reconnect: false });
    const retained = await fresh.subscribe("cli/status", { qos: 1 });
    const [status] = await take(retained, 1, 10_000);
    assert.equal(status.text(), "up");
    assert.equal(status.retain, true);
    await fresh.close();

    // Real peers on different nodes: MQTT.js subscribes on one, mosquitto_pub and MQTT.js publish on the other.
    const d = await node(["--cluster", url, "--node", "d"]);
    const js = await mqtt.connectAsync(`mqtt://127.0.0.1:${portOf(d)}`, {
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const peers: string[] = [];
    const withMosquitto = mosquittoMissing() === undefined;
    if (!withMosquitto) console.log("skipping mosquitto_pub: mosquitto-clients is not installed");
    const expected = ["peer/js from MQTT.js 2", ...withMosquitto ? ["peer/mosq from mosquitto_pub 1"] : []];
    const all = new Promise<void>((resolve) => {
      js.on("message", (topic, payload, packet) => {
        peers.push(`${topic} ${payload} ${packet.qos}`);
        if (peers.length === expected.length) resolve();
      });
    });
    await js.subscribeAsync("peer/#", { qos: 2 });
    const publisherJs = await mqtt.connectAsync(`mqtt://127.0.0.1:${portOf(c)}`, { reconnectPeriod: 0 });
    await publisherJs.publishAsync("peer/js", "from MQTT.js", { qos: 2 });
    await publisherJs.endAsync();
    if (withMosquitto) {
      const args = [
        "-h",
        "127.0.0.1",
        "-p",
        String(portOf(c)),
        "-q",
        "1",
        "-t",
        "peer/mosq",
        "-m",
        "from mosquitto_pub",
      ];
      const sent = await run("mosquitto_pub", args);
      assert.equal(sent.code, 0, sent.stderr);
    }
    await settledWithin(all, 10_000);
    assert.deepEqual(peers.sort(), expected);
    await js.endAsync();
    // The session of a client that was away when its node stopped waits in the cluster, with its messages.
    const back = await rawConnect(portOf(c), {
      clientId: "roamer",
      cleanStart: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(back.connack.sessionPresent, true);
    const queued = await back.publishes(5, 10_000);
    assert.deepEqual(queued.map((p) => new TextDecoder().decode(p.payload)), ["q0", "q1", "q2", "q3", "q4"]);
    back.close();
  });
});

describe("broker.ts --cluster before NATS is up", () => {
  let nats: NatsServer | undefined;
  const running: RunningBroker[] = [];
  after(async () => {
    await Promise.all(running.map((broker) => broker.child.exitCode === null ? stop(broker) : undefined));
    await nats?.stop();
  });

  it("serves its own clients at once, refuses what it cannot guarantee, and joins when NATS comes", {
    skip,
  }, async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    const a = await startBroker(["--port", "0", "--cluster", url, "--node", "early"], 20_000);
    running.push(a);
    assert.match(a.log(), /not reachable yet/);
    // Its own clients: QoS 0 goes; a persistent session cannot be claimed.
    const local = await rawConnect(portOf(a), { clientId: "early-local" });
    await local.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "early/#",
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    });
    await local.next((p) => p.type === "suback");
    const persistent = await rawConnect(portOf(a), {
      clientId: "early-persistent",
      cleanStart: false,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(persistent.connack.reasonCode, 0x88);
    nats = await startNats({ port });
    // Joined: a node started later reaches its subscriber.
    const deadline = Date.now() + 15_000;
    while (!a.log().includes('Joined the cluster as node "early"') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.match(a.log(), /Joined the cluster as node "early"/);
    const b = await startBroker(["--port", "0", "--cluster", url, "--node", "late"], 20_000);
    running.push(b);
    const publisher = await connect(`mqtt://127.0.0.1:${portOf(b)}`, { reconnect: false });
    await publisher.publish("early/1", "across", { qos: 1 });
    await publisher.close();
    const [got] = await local.publishes(1, 10_000);
    assert.equal(new TextDecoder().decode(got.payload), "across");
    local.close();
  });
});
