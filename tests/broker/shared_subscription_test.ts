/**
 * Shared subscriptions through the broker over TCP: what a member received without acknowledging goes to
 * another member of the group once the member's connection is gone (MQTT 5 §4.8.2).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import { rawConnect } from "../_raw_client.ts";
import { take } from "../_helpers.ts";

test("a shared subscription's QoS 1 messages left unacknowledged by a member that drops go to the other member", async () => {
  const broker = new Broker();
  const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
  // Member a: a bare client that receives and never acknowledges.
  const a = await rawConnect(port, { clientId: "a" });
  await a.send({
    type: "subscribe",
    packetId: 1,
    subscriptions: [{
      topicFilter: "$share/g/t",
      qos: 1,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    }],
  });
  assert.equal((await a.next((p) => p.type === "suback")).type, "suback");
  // Member b: our client, which acknowledges what it receives.
  const b = await connect(`mqtt://127.0.0.1:${port}`, { clientId: "b", reconnect: false });
  const subscription = await b.subscribe("$share/g/t", { qos: 1 });
  const publisher = await connect(`mqtt://127.0.0.1:${port}`, { clientId: "p", reconnect: false });
  const sent = ["m0", "m1", "m2", "m3", "m4", "m5"];
  // Each is acknowledged to the publisher, the group's members taking them in turn.
  for (const payload of sent) await publisher.publish("t", payload, { qos: 1 });
  const atA = await a.publishes(3);
  assert.ok(atA.every((p) => p.qos === 1));
  a.close(); // gone without a PUBACK
  const atB = await take(subscription, 6);
  assert.deepEqual(atB.map((m) => m.text()).sort(), sent);
  const fromA = atA.map((p) => new TextDecoder().decode(p.payload));
  assert.ok(fromA.every((payload) => atB.some((m) => m.text() === payload)));
  await publisher.close();
  await b.close();
  await broker.close();
});
