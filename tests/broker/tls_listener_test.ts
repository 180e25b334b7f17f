import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";

const read = (name: string) =>
  readFileSync(fileURLToPath(new URL(`../_certs/${name}`, import.meta.url)), "utf8");

test("mqtts:// listener: our client, verified against the test CA, and MQTT.js exchange messages", async () => {
  const broker = new Broker({ sysInterval: 0 });
  try {
    const { port } = await broker.listen({ port: 0, cert: read("server.pem"), key: read("server.key") });
    const url = `mqtts://127.0.0.1:${port}`;
    const ours = await connect(url, { reconnect: false, tls: { caCerts: [read("ca.pem")] } });
    const subscription = await ours.subscribe("secure/#", { qos: 1 });
    const js = await mqtt.connectAsync(url, { ca: read("ca.pem"), reconnectPeriod: 0, protocolVersion: 5 });
    await js.publishAsync("secure/1", "over TLS", { qos: 1 });
    for await (const message of subscription) {
      assert.equal(message.text(), "over TLS");
      break;
    }
    await js.endAsync();
    await ours.close();
  } finally {
    await broker.close();
  }
});

test("wss:// listener: MQTT.js clients verified against the test CA exchange messages", async () => {
  // Our client's WebSocket is the platform's, which trusts the system's CAs only: MQTT.js (ws package) plays
  // both sides here.
  const broker = new Broker({ sysInterval: 0 });
  try {
    const { port } = await broker.listen({
      port: 0,
      websocket: true,
      cert: read("server.pem"),
      key: read("server.key"),
    });
    const url = `wss://127.0.0.1:${port}/mqtt`;
    const subscriber = await mqtt.connectAsync(url, { ca: read("ca.pem"), reconnectPeriod: 0 });
    const got = new Promise<string>((resolve) =>
      subscriber.on("message", (_t, payload) => resolve(String(payload)))
    );
    await subscriber.subscribeAsync("secure/ws", { qos: 1 });
    const publisher = await mqtt.connectAsync(url, {
      ca: read("ca.pem"),
      reconnectPeriod: 0,
      protocolVersion: 5,
    });
    await publisher.publishAsync("secure/ws", "over wss", { qos: 1 });
    assert.equal(await got, "over wss");
    await publisher.endAsync();
    await subscriber.endAsync();
  } finally {
    await broker.close();
  }
});
