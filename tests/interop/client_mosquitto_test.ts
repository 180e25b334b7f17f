import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Mosquitto, mosquittoMissing, nodeTcpTransport, startMosquitto } from "../_mosquitto.ts";
import { MqttClient } from "../../src/client/mqtt_client.ts";
import { take } from "../_helpers.ts";

const missing = mosquittoMissing();

describe("the async client against mosquitto", { skip: missing }, () => {
  let broker: Mosquitto;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    await broker?.stop();
  });

  const client = (
    protocolVersion: 3 | 4 | 5,
    extra: Partial<ConstructorParameters<typeof MqttClient>[0]> = {},
  ) =>
    new MqttClient({
      transport: () => nodeTcpTransport(broker.port),
      protocolVersion,
      reconnect: false,
      ...extra,
    });

  for (const protocolVersion of [3, 4, 5] as const) {
    test(`MQTT ${["3.1", "3.1.1", "5.0"][protocolVersion - 3]}: QoS 0, 1 and 2 round trip, in order per QoS`, async () => {
      const subscriber = client(protocolVersion);
      const publisher = client(protocolVersion);
      await subscriber.start();
      await publisher.start();
      const topic = `interop/v${protocolVersion}/qos`;
      const subscription = await subscriber.subscribe(topic, { qos: 2 });
      assert.deepEqual(subscription.reasonCodes, [2]);
      const sent: Promise<void>[] = [];
      for (let i = 0; i < 30; i++) {
        sent.push(publisher.publish(topic, `m${i}`, { qos: (i % 3) as 0 | 1 | 2 }));
      }
      await Promise.all(sent);
      const messages = await take(subscription, 30);
      // Order holds per QoS level [MQTT-4.6.0-5]; mosquitto forwards a QoS 2 message once it has PUBREL.
      for (const qos of [0, 1, 2]) {
        const expected = Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 3 === qos).map((i) =>
          `m${i}`
        );
        assert.deepEqual(messages.filter((m) => m.qos === qos).map((m) => m.text()), expected);
      }
      await publisher.close();
      await subscriber.close();
    });
  }

  test("retained messages are delivered on subscribe and cleared by an empty payload", async () => {
    const c = client(5);
    await c.start();
    await c.publish("interop/retained", "kept", { qos: 1, retain: true });
    const first = await c.subscribe("interop/retained");
    const [message] = await take(first, 1);
    assert.equal(message.text(), "kept");
    assert.equal(message.retain, true);
    await first.unsubscribe();
    await c.publish("interop/retained", new Uint8Array(0), { qos: 1, retain: true });
    const second = await c.subscribe(["interop/retained", "interop/marker"]);
    await c.publish("interop/marker", "after");
    const [next] = await take(second, 1);
    assert.equal(next.topic, "interop/marker");
    await c.close();
  });

  test("a will is published when the connection drops, and not after a normal disconnect", async () => {
    const watcher = client(4);
    await watcher.start();
    const wills = await watcher.subscribe("interop/will/#");
    const normal = client(4, { will: { topic: "interop/will/normal", payload: "gone" } });
    await normal.start();
    await normal.close();
    let transport: import("../../src/transport/transport.ts").Transport | undefined;
    const dying = client(4, {
      will: { topic: "interop/will/dying", payload: "lost", qos: 1 },
      transport: async () => transport = await nodeTcpTransport(broker.port),
    });
    await dying.start();
    await transport?.close();
    const [will] = await take(wills, 1);
    assert.equal(will.topic, "interop/will/dying");
    assert.equal(will.text(), "lost");
    await dying.close();
    await watcher.close();
  });

  test("MQTT 5 properties travel end to end: user properties, content type, request/response", async () => {
    const responder = client(5);
    const requester = client(5);
    await responder.start();
    await requester.start();
    const requests = await responder.subscribe("interop/rpc");
    (async () => {
      for await (const request of requests) {
        await responder.publish(request.properties.responseTopic as string, request.text().toUpperCase(), {
          properties: {
            correlationData: request.properties.correlationData,
            contentType: "text/plain",
            userProperties: [["handled-by", "responder"], ["handled-by", "again"]],
          },
        });
      }
    })();
    const response = await requester.request("interop/rpc", "ping", { timeoutMs: 5000 });
    assert.equal(response.text(), "PING");
    assert.equal(response.properties.contentType, "text/plain");
    assert.deepEqual(response.properties.userProperties, [["handled-by", "responder"], [
      "handled-by",
      "again",
    ]]);
    await requester.close();
    await responder.close();
  });
});
