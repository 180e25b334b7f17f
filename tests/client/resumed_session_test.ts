/**
 * A new client on a session the broker kept (`cleanStart: false`): what the broker queued while it was away
 * arrives right after CONNACK, before the application could call `subscribe()`. It must reach the subscription
 * made then, not be acknowledged and dropped; what no subscription claims is let go after `unclaimedHoldMs`.
 * Against our broker and mosquitto.
 */

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { connect } from "../../src/client/connect.ts";
import { SERVERS } from "../_servers.ts";
import { sleep, take } from "../_helpers.ts";

for (const [name, { start, skip }] of Object.entries(SERVERS)) {
  for (const protocolVersion of [4, 5] as const) {
    describe(`a resumed session's queued messages, MQTT ${protocolVersion === 5 ? "5" : "3.1.1"}, ${name}`, {
      skip,
    }, () => {
      const stops: (() => Promise<void>)[] = [];
      after(async () => {
        for (const stop of stops.reverse()) await stop();
      });

      it("reach the subscription made after connect(), and what none claims is let go in time", async () => {
        const server = await start();
        stops.push(() => server.stop());
        const options = {
          clientId: `resumed-${protocolVersion}`,
          protocolVersion,
          cleanStart: false,
          sessionExpiryInterval: 300,
          reconnect: false,
          unclaimedHoldMs: 500,
        };
        let client = await connect(server.url, options);
        await client.subscribe(["queued/#", "other/#"], { qos: 1 });
        await client.close();
        const publisher = await connect(server.url, { protocolVersion, reconnect: false });
        stops.push(() => publisher.close());
        for (const n of [1, 2, 3]) await publisher.publish(`queued/${n}`, `while away ${n}`, { qos: 1 });
        await publisher.publish("other/1", "nobody asks again", { qos: 1 });

        client = await connect(server.url, options);
        stops.push(() => client.close());
        const subscription = await client.subscribe("queued/#", { qos: 1 });
        const got = (await take(subscription, 3)).map((m) => m.text());
        assert.deepEqual(got, ["while away 1", "while away 2", "while away 3"]);
        // other/1 came too, and no subscription took it: let go (acknowledged) once the window closed.
        await sleep(800);
        assert.equal(client.releasedUnclaimed, 1);
        await publisher.publish("queued/4", "live", { qos: 1 });
        assert.deepEqual((await take(subscription, 1)).map((m) => m.text()), ["live"]);
      });

      it("lets none go when more wait than a subscription buffers: reading pauses instead", async () => {
        const server = await start();
        stops.push(() => server.stop());
        const options = {
          clientId: `many-${protocolVersion}`,
          protocolVersion,
          cleanStart: false,
          sessionExpiryInterval: 300,
          reconnect: false,
          subscriptionBufferLimit: 5,
        };
        let client = await connect(server.url, options);
        await client.subscribe("many/#", { qos: 1 });
        await client.close();
        const publisher = await connect(server.url, { protocolVersion, reconnect: false });
        stops.push(() => publisher.close());
        for (let n = 0; n < 40; n++) await publisher.publish(`many/${n}`, String(n), { qos: 1 });
        client = await connect(server.url, options);
        stops.push(() => client.close());
        // The application is slow to subscribe: the broker sent what it had meanwhile.
        await sleep(300);
        const subscription = await client.subscribe("many/#", { qos: 1 });
        const got = (await take(subscription, 40)).map((m) => Number(m.text()));
        assert.deepEqual(got, [...Array(40).keys()]);
        assert.equal(client.releasedUnclaimed, 0);
      });
    });
  }
}
