/**
 * Seeded fuzzing of the broker side: valid packet streams from every version, with bytes flipped, cut and
 * split at random, fed to SessionMachines attached to one BrokerMachine. Whatever arrives, `handleBytes()` never
 * throws, `closed` is emitted at most once and last, and the broker keeps routing for the healthy sessions.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { encode } from "../../src/codec/encode.ts";
import type { Packet, ProtocolVersion } from "../../src/codec/packet.ts";
import { ReasonCode } from "../../src/errors.ts";
import { Harness, TestClient } from "./_broker_helpers.ts";
import { seededRandom } from "../_random.ts";

function script(version: ProtocolVersion, n: number): Packet[] {
  const v5 = version === 5;
  return [
    {
      type: "connect",
      protocolVersion: version,
      clientId: `f${n}`,
      cleanStart: n % 2 === 0,
      keepAlive: 30,
      will: { topic: "will/x", payload: Uint8Array.of(1, 2), qos: 1, retain: false },
      ...(v5 ? { properties: { sessionExpiryInterval: 10, topicAliasMaximum: 3, receiveMaximum: 2 } } : {}),
    },
    {
      type: "subscribe",
      packetId: 1,
      subscriptions: [
        { topicFilter: "a/#", qos: 2, noLocal: false, retainAsPublished: v5, retainHandling: 0 },
        { topicFilter: "$share/g/a/+", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
      ...(v5 ? { properties: { subscriptionIdentifier: 7 } } : {}),
    },
    {
      type: "publish",
      topic: "a/b",
      payload: Uint8Array.of(9),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 2,
    },
    {
      type: "publish",
      topic: "a/c",
      payload: new Uint8Array(40),
      qos: 2,
      retain: false,
      dup: false,
      packetId: 3,
      ...(v5
        ? { properties: { topicAlias: 1, messageExpiryInterval: 5, userProperties: [["k", "v"]] } }
        : {}),
    },
    { type: "pubrel", packetId: 3, reasonCode: 0 },
    { type: "puback", packetId: 1, reasonCode: 0 },
    { type: "pubrec", packetId: 2, reasonCode: 0 },
    { type: "pubcomp", packetId: 2, reasonCode: 0 },
    { type: "pingreq" },
    { type: "unsubscribe", packetId: 4, topicFilters: ["a/#", "x"] },
    { type: "disconnect", reasonCode: v5 ? ReasonCode.DisconnectWithWillMessage : 0 },
  ];
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`SessionMachine never throws on corrupted input and closes once (seed ${seed}) [MQTT-4.13.1-1] [MQTT-4.8.0-1]`, () => {
    const rnd = seededRandom(seed);
    const h = new Harness();
    const watcher = h.connected("watcher", 5);
    watcher.subscribe("#", 2);
    let accepted = 0;
    for (let round = 0; round < 60; round++) {
      const version = ([3, 4, 5] as const)[round % 3];
      const client = new TestClient(h, version);
      h.clients.push(client);
      const encoded = script(version, round).map((p) => encode(p, version));
      const stream = new Uint8Array(encoded.reduce((n, b) => n + b.length, 0));
      let offset = 0;
      for (const bytes of encoded) {
        stream.set(bytes, offset);
        offset += bytes.length;
      }
      // Corrupt a few bytes (never the CONNECT for half of the rounds, so most connections get going).
      const start = round % 2 === 0 ? encoded[0].length : 0;
      const flips = Math.floor(rnd() * 4);
      for (let i = 0; i < flips; i++) {
        const at = start + Math.floor(rnd() * (stream.length - start));
        stream[at] = Math.floor(rnd() * 256);
      }
      const end = rnd() < 0.2 ? Math.floor(rnd() * stream.length) : stream.length;
      let position = 0;
      while (position < end) {
        const size = 1 + Math.floor(rnd() * 64);
        const chunk = stream.subarray(position, Math.min(end, position + size));
        position += chunk.length;
        assert.doesNotThrow(() => client.sendBytes(chunk));
      }
      if (client.inbox.some((p) => p.type === "connack" && p.reasonCode === 0)) accepted++;
      if (rnd() < 0.5) h.advance(h.now + 60_000);
      if (client.session.state !== "closed") client.drop();
      assert.equal(client.closed?.type, "closed");
      assert.equal(client.session.pollEvent(), undefined);
      watcher.ackAll();
    }
    assert.ok(accepted >= 20, `only ${accepted} connections got past CONNECT`);
    // The healthy session still works.
    const pub = h.connected("pub", 4);
    pub.publish("z", "alive");
    assert.ok(watcher.ackAll().some((p) => p.topic === "z"));
  });
}
