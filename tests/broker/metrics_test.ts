/**
 * The HTTP listener's `GET /metrics`: Prometheus' text format, checked by Prometheus' own `promtool check
 * metrics` (Debian's `prometheus` package; skipped with a message without it), scraped while clients publish,
 * subscribe and get refused, with every counter asserted against what the clients did.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, describe, it } from "node:test";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
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

describe("GET /metrics of an HTTP listener", () => {
  const brokers: Broker[] = [];
  after(async () => {
    await Promise.all(brokers.map((broker) => broker.close()));
  });

  it("serves Prometheus' text format whose counters follow what the clients do", async () => {
    const broker = new Broker({
      sysInterval: 0,
      authenticate: (client) => client.username === "intruder" ? ReasonCode.BadUserNameOrPassword : true,
    });
    brokers.push(broker);
    const mqtt = await broker.listen({ hostname: "127.0.0.1", port: 0 });
    const http = await broker.listen({ hostname: "127.0.0.1", port: 0, http: true });
    const before = await scrape(http.port);
    assert.equal(value(before, "mqtt_connections"), 0);
    assert.equal(value(before, 'mqtt_messages_received_total{qos="1"}'), 0);

    const subscriber = await connect(`mqtt://127.0.0.1:${mqtt.port}`, { clientId: "metrics-sub" });
    const messages = await subscriber.subscribe("load/#", { qos: 2 });
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
    const sent = { 0: 50, 1: 30, 2: 20 } as const;
    const load = (async () => {
      for (const qos of [0, 1, 2] as const) {
        for (let i = 0; i < sent[qos]; i++) await publisher.publish(`load/${qos}`, `m${i}`, { qos });
      }
    })();
    // A scrape while the load runs: counters never go back.
    const during = await scrape(http.port);
    await load;
    for (let waited = 0; received < 100 && waited < 5000; waited += 20) await sleep(20);
    assert.equal(received, 100);
    const end = await scrape(http.port);

    for (const qos of [0, 1, 2]) {
      const sample = `mqtt_messages_received_total{qos="${qos}"}`;
      assert.equal(value(end, sample) - value(before, sample), sent[qos as 0 | 1 | 2], sample);
      assert.ok(value(during, sample) <= value(end, sample), sample);
    }
    assert.equal(value(end, "mqtt_connections"), 2);
    assert.equal(value(end, "mqtt_connections_total") - value(before, "mqtt_connections_total"), 4);
    assert.equal(value(end, 'mqtt_connections_refused_total{reason="bad_user_name_or_password"}'), 2);
    assert.equal(value(end, 'mqtt_sessions{state="connected"}'), 2);
    // The subscriber's QoS 2 subscription gets each message at its own QoS.
    for (const qos of [0, 1, 2]) {
      const sample = `mqtt_deliveries_total{qos="${qos}"}`;
      assert.equal(value(end, sample) - value(before, sample), sent[qos as 0 | 1 | 2], sample);
    }
    assert.ok(value(end, "mqtt_messages_routed_total") >= 100);
    assert.equal(value(end, "mqtt_messages_dropped_total"), 0);
    // At least every payload's bytes each way, and the counters only grow.
    assert.ok(value(end, "mqtt_received_bytes_total") - value(before, "mqtt_received_bytes_total") > 100 * 8);
    assert.ok(value(end, "mqtt_sent_bytes_total") > value(during, "mqtt_sent_bytes_total"));
    assert.ok(value(end, "mqtt_uptime_seconds") >= value(before, "mqtt_uptime_seconds"));

    await publisher.publish("kept", "retained", { qos: 1, retain: true });
    await publisher.close();
    await sleep(50);
    const closed = await scrape(http.port);
    assert.equal(value(closed, "mqtt_connections"), 1);
    assert.equal(value(closed, "mqtt_retained_messages"), 1);
    await subscriber.close();

    const missing = await fetch(`http://127.0.0.1:${http.port}/nothing-here`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
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
    assert.equal(value(await scrape(http.port), "mqtt_connections"), 1);
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
