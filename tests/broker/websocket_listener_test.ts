import { test } from "node:test";
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import { connectWebSocket } from "../../src/transport/websocket.ts";

test("the broker's WebSocket listener serves our client and MQTT.js, and speaks only the mqtt subprotocol", async () => {
  const broker = new Broker();
  const { port } = await broker.listen({ port: 0, websocket: true });
  const url = `ws://127.0.0.1:${port}/mqtt`;
  const ours = await connect(url, { reconnect: false });
  const subscription = await ours.subscribe("ws/#", { qos: 1 });
  const js = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
  await js.publishAsync("ws/from-mqttjs", "hello", { qos: 1 });
  for await (const message of subscription) {
    assert.equal(message.topic, "ws/from-mqttjs");
    assert.equal(message.text(), "hello");
    break;
  }
  await js.endAsync();
  // A client that does not offer "mqtt" is refused.
  await assert.rejects(connectWebSocket(url, { protocols: ["chat"] }));
  await ours.close();
  await broker.close();
});
