/**
 * The HTTP listener's `GET /metrics`: Prometheus' text format, checked by Prometheus' own `promtool check
 * metrics` (Debian's `prometheus` package; skipped with a message without it), scraped while clients publish,
 * subscribe and get refused, with every counter asserted against what the clients did: messages and payload
 * bytes by QoS, connections by listener, authentication failures and authorization denials, subscriptions,
 * what sessions queue, and what is dropped, by cause.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Socket } from "node:net";
import { after, describe, it } from "node:test";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import { encode } from "../../src/codec/encode.ts";
import { Cluster } from "../../src/cluster/cluster.ts";
import { MemoryHub } from "../../src/cluster/memory_engine.ts";
import { ReasonCode } from "../../src/errors.ts";
import { startBroker } from "../_broker_process.ts";
import { run, sleep } from "../_helpers.ts";

const promtool = spawnSync("promtool", ["--version"]).error === undefined;
if (!promtool) console.log("skipping promtool's check: it is not installed (apt-get install -y prometheus)");

/** Samples of a scrape: `name{labels}` to value. */
type Scrape = Map<string, number>;

/** Reads the samples of the text format (comments left out). */
function parse(text: string): Scrape {
  const samples: Scrape = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** Fetches `/metrics`, checks its content type and, when promtool is here, its format and naming. */
async function scrape(port: number): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await response.text();
  if (promtool) {
    const checked = await run("promtool", ["check", "metrics"], text);
    assert.equal(checked.code, 0, `promtool: ${checked.stdout}${checked.stderr}\n${text}`);
  }
  return parse(text);
}

const value = (scrape: Scrape, sample: string) => scrape.get(sample) ?? 0;

/** Scrapes until `done` holds, for up to 2 seconds; the last scrape. */
async function scrapeUntil(port: number, done: (scrape: Scrape) => boolean): Promise<Scrape> {
  let got = await scrape(port);
  for (let waited = 0; !done(got) && waited < 2000; waited += 20) {
    await sleep(20);
    got = await scrape(port);
  }
  assert.ok(done(got), [...got].map(([sample, value]) => `${sample} ${value}`).join("\n"));
  return got;
}

describe("GET /metrics of an HTTP listener", () => {
  const brokers: Broker[] = [];
  after(async () => {
    await Promise.all(brokers.map((broker) => broker.close()));
  });

  it("serves Prometheus' text format whose counters follow what the clients do", async () => {
    const broker = new Broker({
      sysInterval: 0,
      authenticate: (client) => client.username === "intruder" ? ReasonCode.BadUserNameOrPassword : true,
      authorizePublish: (_client, packet) => !packet.topic.startsWith("secret/"),
      authorizeSubscribe: (_client, subscription) => !subscription.topicFilter.startsWith("secret/"),
    });
    brokers.push(broker);
    const mqtt = await broker.listen({ hostname: "127.0.0.1", port: 0 });
    const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
    const listener = `{listener="mqtt://127.0.0.1:${mqtt.port}"}`;
    const before = await scrape(http.port);
    assert.equal(value(before, "mqtt_connections"), 0);
    assert.equal(value(before, 'mqtt_messages_received_total{qos="1"}'), 0);
    assert.equal(value(before, "mqtt_subscriptions"), 0);
    assert.ok(before.has(`mqtt_listener_connections${listener}`));

    const subscriber = await connect(`mqtt://127.0.0.1:${mqtt.port}`, { clientId: "metrics-sub" });
    // Two filters granted, one refused by authorizeSubscribe.
    const messages = await subscriber.subscribe(["load/#", "secret/#", "other/#"], { qos: 2 });
    assert.deepEqual(messages.reasonCodes, [2, ReasonCode.NotAuthorized, 2]);
    let received = 0;
    void (async () => {
      for await (const _ of messages) received++;
    })();
    const publisher = await connect(`mqtt://127.0.0.1:${mqtt.port}`);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        connect(`mqtt://intruder@127.0.0.1:${mqtt.port}`, { password: "guess", reconnect: false }),
      );
    }
    await assert.rejects(publisher.publish("secret/plans", "x", { qos: 1 }));
    const sent = { 0: 50, 1: 30, 2: 20 } as const;
    const load = (async () => {
      for (const qos of [0, 1, 2] as const) {
        for (let i = 0; i < sent[qos]; i++) await publisher.publish(`load/${qos}`, `m${i}`, { qos });
      }
    })();
    // A scrape while the load runs: counters never go back.
    const during = await scrape(http.port);
    assert.equal(value(during, "mqtt_subscriptions"), 2);
    await load;
    for (let waited = 0; received < 100 && waited < 5000; waited += 20) await sleep(20);
    assert.equal(received, 100);
    const end = await scrape(http.port);

    // Payloads m0, m1, …: the bytes of `count` of them.
    const payloadBytes = (count: number) =>
      Array.from({ length: count }, (_, i) => `m${i}`.length).reduce((a, b) => a + b, 0);
    for (const qos of [0, 1, 2]) {
      const sample = `mqtt_messages_received_total{qos="${qos}"}`;
      // The refused QoS 1 PUBLISH to secret/plans counts as received too.
      const refused = qos === 1 ? 1 : 0;
      assert.equal(value(end, sample) - value(before, sample), sent[qos as 0 | 1 | 2] + refused, sample);
      assert.ok(value(during, sample) <= value(end, sample), sample);
      const bytes = `mqtt_received_payload_bytes_total{qos="${qos}"}`;
      assert.equal(
        value(end, bytes) - value(before, bytes),
        payloadBytes(sent[qos as 0 | 1 | 2]) + refused,
        bytes,
      );
      assert.ok(value(during, bytes) <= value(end, bytes), bytes);
    }
    assert.equal(value(end, "mqtt_connections"), 2);
    assert.equal(value(end, "mqtt_connections_total") - value(before, "mqtt_connections_total"), 4);
    assert.equal(value(end, `mqtt_listener_connections${listener}`), 2);
    assert.equal(value(end, `mqtt_listener_connections_total${listener}`), 4);
    assert.equal(value(end, `mqtt_listener_connections{listener="http://127.0.0.1:${http.port}"}`), 0);
    assert.equal(value(end, 'mqtt_connections_refused_total{reason="bad_user_name_or_password"}'), 2);
    assert.equal(value(end, "mqtt_authentication_failures_total"), 2);
    assert.equal(value(end, 'mqtt_authorization_denials_total{action="publish"}'), 1);
    assert.equal(value(end, 'mqtt_authorization_denials_total{action="subscribe"}'), 1);
    assert.equal(value(end, "mqtt_subscriptions"), 2);
    assert.equal(value(end, 'mqtt_sessions{state="connected"}'), 2);
    // The subscriber's QoS 2 subscription gets each message at its own QoS.
    for (const qos of [0, 1, 2]) {
      const sample = `mqtt_deliveries_total{qos="${qos}"}`;
      assert.equal(value(end, sample) - value(before, sample), sent[qos as 0 | 1 | 2], sample);
      const bytes = `mqtt_delivered_payload_bytes_total{qos="${qos}"}`;
      assert.equal(value(end, bytes) - value(before, bytes), payloadBytes(sent[qos as 0 | 1 | 2]), bytes);
    }
    assert.ok(value(end, "mqtt_messages_routed_total") >= 100);
    for (const cause of ["queue_full", "slow_consumer", "congested", "expired"]) {
      assert.equal(value(end, `mqtt_messages_dropped_total{cause="${cause}"}`), 0, cause);
    }
    assert.equal(value(end, "mqtt_queued_messages"), 0);
    // At least every payload's bytes each way, and the counters only grow.
    assert.ok(value(end, "mqtt_received_bytes_total") - value(before, "mqtt_received_bytes_total") > 100 * 8);
    assert.ok(value(end, "mqtt_sent_bytes_total") > value(during, "mqtt_sent_bytes_total"));
    assert.ok(value(end, "mqtt_uptime_seconds") >= value(before, "mqtt_uptime_seconds"));

    await publisher.publish("kept", "retained", { qos: 1, retain: true });
    await publisher.close();
    await sleep(50);
    const closed = await scrape(http.port);
    assert.equal(value(closed, "mqtt_connections"), 1);
    assert.equal(value(closed, `mqtt_listener_connections${listener}`), 1);
    assert.equal(value(closed, "mqtt_retained_messages"), 1);
    await subscriber.close();
    await sleep(50);
    // The subscriber's session ended with its connection, and its subscriptions with it.
    assert.equal(value(await scrape(http.port), "mqtt_subscriptions"), 0);

    const missing = await fetch(`http://127.0.0.1:${http.port}/nothing-here`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  });

  it("counts what sessions queue and what is dropped, by cause", async () => {
    const broker = new Broker({
      sysInterval: 0,
      queueQoS0: true,
      maxQueuedMessages: 2,
      slowConsumerTimeout: 300,
    });
    brokers.push(broker);
    const mqtt = await broker.listen({ hostname: "127.0.0.1", port: 0 });
    const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
    const url = `mqtt://127.0.0.1:${mqtt.port}`;
    const persistent = { clientId: "away", cleanStart: false, sessionExpiryInterval: 3600 };
    const away = await connect(url, persistent);
    await away.subscribe("drop/#", { qos: 1 });
    await away.close();
    const publisher = await connect(url);
    const dropped = (scrape: Scrape, cause: string) =>
      value(scrape, `mqtt_messages_dropped_total{cause="${cause}"}`);

    // QoS 0 for the offline session (queueQoS0): 2 fit its queue, 3 do not.
    for (let i = 0; i < 5; i++) await publisher.publish("drop/0", "zero", { qos: 0 });
    await scrapeUntil(http.port, (got) => dropped(got, "queue_full") === 3);
    // The broker's own QoS 1 messages wait for no one: queued up to twice the bounds (5 in all), the rest dropped.
    for (let i = 0; i < 4; i++) broker.publish("drop/own", "own!", { qos: 1 });
    // A client's QoS 1 message is queued past the bounds: its PUBACK waits for slowConsumerTimeout (the session
    // stays over its bounds), after which the session is a slow consumer and what does not fit is dropped.
    const expiring = publisher.publish("drop/1", "expires", {
      qos: 1,
      properties: { messageExpiryInterval: 1 },
    });
    const held = await scrapeUntil(http.port, (got) => value(got, "mqtt_queued_messages") === 6);
    assert.equal(value(held, "mqtt_queued_payload_bytes"), 2 * 4 + 3 * 4 + 7);
    assert.equal(value(held, "mqtt_subscriptions"), 1, "the offline session's");
    assert.equal(dropped(held, "queue_full"), 3 + 1);
    assert.equal(dropped(held, "slow_consumer"), 0);
    await expiring;
    for (let i = 0; i < 2; i++) await publisher.publish("drop/1", "late", { qos: 1 });
    const stalled = await scrape(http.port);
    assert.equal(dropped(stalled, "slow_consumer"), 2);
    assert.equal(dropped(stalled, "expired"), 0);
    assert.equal(value(stalled, "mqtt_queued_messages"), 6);

    // Back after the message expired: it is dropped, the 5 others are sent (our client takes them before it
    // subscribes again, and acknowledges them).
    await sleep(1100);
    const back = await connect(url, persistent);
    await scrapeUntil(http.port, (got) => value(got, "mqtt_queued_messages") === 0);
    const end = await scrape(http.port);
    assert.equal(dropped(end, "expired"), 1);
    assert.equal(dropped(end, "queue_full"), 4);
    assert.equal(dropped(end, "congested"), 0);
    assert.equal(value(end, "mqtt_queued_messages"), 0);
    assert.equal(value(end, "mqtt_queued_payload_bytes"), 0);
    // $SYS keeps the total.
    assert.equal(broker.sysValues().get("$SYS/broker/publish/messages/dropped"), String(4 + 2 + 1));
    await Promise.all([back.close(), publisher.close()]);
  });

  it("counts QoS 0 messages dropped for a client behind on its connection as congested", async () => {
    const broker = new Broker({
      sysInterval: 0,
      backpressureBytes: 64 * 1024,
      maxOutgoingBytes: 256 * 1024,
      maxPublisherPause: 100,
      maxWriteStall: 50,
    });
    brokers.push(broker);
    const mqtt = await broker.listen({ hostname: "127.0.0.1", port: 0 });
    const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
    // A subscriber that stops reading once subscribed: a raw socket, since our client always reads.
    const stuck = new Socket();
    stuck.on("error", () => {});
    await new Promise<void>((resolve) => stuck.connect(mqtt.port, "127.0.0.1", resolve));
    const decoder = new PacketDecoder({ version: 4 });
    const subscribed = new Promise<void>((resolve) =>
      stuck.on("data", (data: Uint8Array) => {
        decoder.push(new Uint8Array(data));
        for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
          if (packet.type === "suback") resolve();
        }
      })
    );
    stuck.write(
      encode({ type: "connect", protocolVersion: 4, clientId: "stuck", cleanStart: true, keepAlive: 0 }, 4),
    );
    stuck.write(encode({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "fast/#",
        qos: 0,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    }, 4));
    await subscribed;
    stuck.pause();
    const publisher = await connect(`mqtt://127.0.0.1:${mqtt.port}`);
    const payload = new Uint8Array(64 * 1024);
    try {
      // Far more than the socket buffers between the broker and the stuck subscriber hold.
      for (let i = 0; i < 400; i++) await publisher.publish("fast/x", payload, { qos: 0 });
      // Acknowledged once routed, so after every message before it.
      await publisher.publish("fast-done", "", { qos: 1 });
      const behind = await scrape(http.port);
      const congested = value(behind, 'mqtt_messages_dropped_total{cause="congested"}');
      assert.ok(
        congested > 0 && congested < 400,
        `${congested} dropped: the stuck one got what its buffers took`,
      );
      assert.equal(broker.sysValues().get("$SYS/broker/publish/messages/dropped"), String(congested));
      // Its connection closed, what it dropped stays counted.
      stuck.destroy();
      const closed = await scrapeUntil(http.port, (got) => value(got, "mqtt_connections") === 1);
      assert.equal(value(closed, 'mqtt_messages_dropped_total{cause="congested"}'), congested);
    } finally {
      stuck.destroy();
      await publisher.close();
    }
  });

  it("serves MQTT over WebSocket at /mqtt on the same port", async () => {
    const broker = new Broker({ sysInterval: 0 });
    brokers.push(broker);
    const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
    const client = await connect(`ws://127.0.0.1:${http.port}/mqtt`);
    const messages = await client.subscribe("over/ws", { qos: 1 });
    await client.publish("over/ws", "hello", { qos: 1 });
    for await (const message of messages) {
      assert.equal(message.text(), "hello");
      break;
    }
    const got = await scrape(http.port);
    assert.equal(value(got, "mqtt_connections"), 1);
    assert.equal(value(got, `mqtt_listener_connections{listener="http://127.0.0.1:${http.port}"}`), 1);
    assert.equal(value(got, `mqtt_listener_connections_total{listener="http://127.0.0.1:${http.port}"}`), 1);
    await client.close();
  });

  it("labels a cluster node's metrics with its node and adds the cluster's", async () => {
    const broker = new Broker({
      sysInterval: 0,
      cluster: new Cluster({ engine: new MemoryHub().engine(), node: "n1" }),
    });
    brokers.push(broker);
    const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
    const got = await scrape(http.port);
    assert.equal(value(got, 'mqtt_cluster_engine_up{node="n1"}'), 1);
    assert.equal(value(got, 'mqtt_cluster_nodes{node="n1"}'), 1);
    assert.ok(got.has('mqtt_connections{node="n1"}'));
  });

  it("broker.ts --http-port serves them on 127.0.0.1", async () => {
    const running = await startBroker(["--port", "0", "--http-port", "0"]);
    try {
      const match = /http:\/\/127\.0\.0\.1:(\d+)/.exec(running.log());
      assert(match !== null, running.log());
      const got = await scrape(Number(match[1]));
      assert.equal(value(got, "mqtt_connections"), 0);
    } finally {
      running.child.kill("SIGTERM");
      await running.exited;
    }
  });
});
