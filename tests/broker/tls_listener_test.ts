import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import { spawn } from "node:child_process";
import { mosquittoMissing } from "../_mosquitto.ts";

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

test("mqtts:// listener: mosquitto_pub and mosquitto_sub, verifying against the test CA", {
  skip: mosquittoMissing(),
}, async () => {
  const broker = new Broker({ sysInterval: 0 });
  try {
    const { port } = await broker.listen({ port: 0, cert: read("server.pem"), key: read("server.key") });
    const ca = fileURLToPath(new URL("../_certs/ca.pem", import.meta.url));
    const common = ["-h", "127.0.0.1", "-p", String(port), "--cafile", ca];
    const run = (command: string, args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        const child = spawn(command, args);
        let out = "";
        let err = "";
        child.stdout.on("data", (d) => out += d);
        child.stderr.on("data", (d) => err += d);
        child.on("close", (code) => resolve({ code: code ?? -1, out, err }));
      });
    const sub = run("mosquitto_sub", [...common, "-t", "secure/#", "-v", "-C", "1", "-W", "10", "-q", "1"]);
    await new Promise((r) => setTimeout(r, 400));
    const pub = await run("mosquitto_pub", [
      ...common,
      "-t",
      "secure/m",
      "-m",
      "via TLS",
      "-q",
      "2",
      "-V",
      "mqttv5",
    ]);
    assert.equal(pub.code, 0, pub.err);
    const got = await sub;
    assert.equal(got.code, 0, got.err);
    assert.equal(got.out, "secure/m via TLS\n");
    // A CA that did not sign the server's certificate: mosquitto_pub refuses to talk.
    const other = fileURLToPath(new URL("../_certs/other_ca.pem", import.meta.url));
    const refused = await run("mosquitto_pub", [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "--cafile",
      other,
      "-t",
      "x",
      "-m",
      "x",
    ]);
    assert.notEqual(refused.code, 0);
  } finally {
    await broker.close();
  }
});
