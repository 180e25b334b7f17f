/**
 * The pieces a bridge stands on, against our broker and mosquitto alike:
 *
 * - the bridge bit of a 3.1.1 CONNECT (mosquitto's `try_private`): the broker sends the client none of its own
 *   messages back and keeps the retain flag of what it forwards;
 * - `manualAck` subscriptions: a message taken but not acknowledged is the broker's still, and comes again
 *   after a reconnect; one acknowledged does not.
 */

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { connect } from "../../src/client/connect.ts";
import type { Message } from "../../src/client/message.ts";
import { SERVERS } from "../_servers.ts";
import { sleep, take } from "../_helpers.ts";

for (const [name, { start, skip }] of Object.entries(SERVERS)) {
  describe(`bridge pieces against ${name}`, { skip }, () => {
    const stops: (() => Promise<void>)[] = [];
    after(async () => {
      for (const stop of stops.reverse()) await stop();
    });

    it("a 3.1.1 client with the bridge bit gets none of its own messages back, and keeps the retain flag", async () => {
      const server = await start();
      stops.push(() => server.stop());
      const bridge = await connect(server.url, {
        clientId: "bridge-bit",
        protocolVersion: 4,
        bridge: true,
        reconnect: false,
      });
      const plain = await connect(server.url, { clientId: "plain", protocolVersion: 4, reconnect: false });
      stops.push(() => bridge.close(), () => plain.close());
      const fromBridge = await bridge.subscribe("loop/#", { qos: 1 });
      const fromPlain = await plain.subscribe("loop/#", { qos: 1 });
      await bridge.publish("loop/own", "from the bridge", { qos: 1 });
      await plain.publish("loop/kept", "retained, live", { qos: 1, retain: true });
      await plain.publish("loop/plain", "not retained", { qos: 1 });
      const got = (await take(fromBridge, 2)).map((m: Message) => `${m.topic} ${m.retain}`);
      assert.deepEqual(got, ["loop/kept true", "loop/plain false"]);
      // A plain 3.1.1 subscriber gets all three, live ones without the retain flag [MQTT-3.3.1-9].
      const plainGot = (await take(fromPlain, 3)).map((m: Message) => `${m.topic} ${m.retain}`);
      assert.deepEqual(plainGot, ["loop/own false", "loop/kept false", "loop/plain false"]);
      // Nothing more came to the bridge: its own message would have been next.
      await plain.publish("loop/last", "x", { qos: 1 });
      assert.deepEqual((await take(fromBridge, 1)).map((m) => m.topic), ["loop/last"]);
    });

    it("a manualAck message taken but not acknowledged comes again after a reconnect; an acknowledged one does not", async () => {
      const server = await start();
      stops.push(() => server.stop());
      const publisher = await connect(server.url, { clientId: "ack-publisher", reconnect: false });
      stops.push(() => publisher.close());
      const options = {
        clientId: "ack-reader",
        cleanStart: false,
        sessionExpiryInterval: 300,
        reconnect: false,
      };

      let reader = await connect(server.url, options);
      let subscription = await reader.subscribe("ack/#", { qos: 1, manualAck: true });
      await publisher.publish("ack/1", "one", { qos: 1 });
      const [first] = await take(subscription, 1);
      assert.equal(first.text(), "one");
      assert.equal(subscription.unacknowledged, 1);
      await reader.close();

      reader = await connect(server.url, options);
      subscription = await reader.subscribe("ack/#", { qos: 1, manualAck: true });
      const [again] = await take(subscription, 1);
      assert.equal(again.text(), "one", "the message not acknowledged comes again");
      subscription.ack(again);
      assert.equal(subscription.unacknowledged, 0);
      await publisher.publish("ack/2", "two", { qos: 1 });
      const [second] = await take(subscription, 1);
      assert.equal(second.text(), "two");
      subscription.ack(second);
      await sleep(100);
      await reader.close();

      reader = await connect(server.url, options);
      stops.push(() => reader.close());
      subscription = await reader.subscribe("ack/#", { qos: 1, manualAck: true });
      await publisher.publish("ack/3", "three", { qos: 1 });
      const [third] = await take(subscription, 1);
      assert.equal(third.text(), "three", "nothing acknowledged came again");
    });
  });
}
