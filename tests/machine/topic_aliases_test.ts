import { test } from "node:test";
import assert from "node:assert/strict";
import { bytes, FakeServer } from "./_client_helpers.ts";
import type { PublishPacket } from "../../src/codec/packet.ts";
import { ReasonCode } from "../../src/errors.ts";
import { TopicAliases } from "../../src/machine/_topic_aliases.ts";
import {
  INBOUND_NEW,
  INBOUND_PENDING,
  INBOUND_RECEIVED,
  inboundStep,
  pubCompCode,
} from "../../src/machine/_inbound_qos.ts";

function publish(topic: string, alias: number): PublishPacket {
  return {
    type: "publish",
    topic,
    payload: bytes("m"),
    qos: 0,
    retain: false,
    dup: false,
    properties: { topicAlias: alias },
  };
}

test("TopicAliases.resolve() sets an alias from a topic and resolves an empty topic with it (MQTT 5 §3.3.4)", () => {
  const aliases = new TopicAliases();
  assert.equal(aliases.resolve(publish("a/b", 2), 2, 4), undefined);
  const later = publish("", 2);
  assert.equal(aliases.resolve(later, 2, 4), undefined);
  assert.equal(later.topic, "a/b");
  assert.equal(aliases.resolve(publish("c", 2), 2, 4), undefined); // a topic replaces the mapping
  const again = publish("", 2);
  aliases.resolve(again, 2, 4);
  assert.equal(again.topic, "c");
});

test("TopicAliases.resolve() refuses an alias of 0 or above the maximum with 0x94 [MQTT-3.3.2-10] [MQTT-3.3.2-12]", () => {
  const aliases = new TopicAliases();
  assert.equal(aliases.resolve(publish("a", 0), 0, 4)?.reasonCode, ReasonCode.TopicAliasInvalid);
  assert.equal(aliases.resolve(publish("a", 5), 5, 4)?.reasonCode, ReasonCode.TopicAliasInvalid);
  assert.equal(aliases.resolve(publish("a", 1), 1, 0)?.reasonCode, ReasonCode.TopicAliasInvalid);
});

test("TopicAliases.resolve() refuses an empty topic with an alias never set as a Protocol Error 0x82 (MQTT 5 §3.3.4)", () => {
  const aliases = new TopicAliases();
  assert.equal(aliases.resolve(publish("", 3), 3, 4)?.reasonCode, ReasonCode.ProtocolError);
});

test("TopicAliases.nextOutbound() hands out 1 up to the peer's maximum, then 0 [MQTT-3.3.2-11]", () => {
  const aliases = new TopicAliases();
  assert.equal(aliases.nextOutbound(0), 0);
  assert.equal(aliases.nextOutbound(2), 1);
  aliases.addOutbound("a", 1);
  assert.equal(aliases.outbound("a"), 1);
  assert.equal(aliases.nextOutbound(2), 2);
  aliases.addOutbound("b", 2);
  assert.equal(aliases.nextOutbound(2), 0);
  aliases.clear();
  assert.equal(aliases.outbound("a"), undefined);
  assert.equal(aliases.nextOutbound(2), 1);
});

test("ClientMachine closes with DISCONNECT 0x82 on an empty topic with an alias never set (MQTT 5 §3.3.4)", () => {
  const s = new FakeServer();
  s.connect({ properties: { topicAliasMaximum: 4 } });
  s.events();
  s.send(publish("", 3));
  const [closed] = s.events();
  assert.ok(closed.type === "closed" && closed.error?.reasonCode === ReasonCode.ProtocolError);
  const sent = s.received();
  assert.deepEqual(sent.map((p) => p.type), ["disconnect"]);
  assert.equal(sent[0].type === "disconnect" && sent[0].reasonCode, ReasonCode.ProtocolError);
});

test("inboundStep() tells a new PUBLISH from a pending resend and a QoS 2 resend before PUBREL [MQTT-4.3.3-10]", () => {
  const received = new Set([7]);
  assert.equal(inboundStep(2, 8, false, received), INBOUND_NEW);
  assert.equal(inboundStep(2, 7, false, received), INBOUND_RECEIVED);
  assert.equal(inboundStep(2, 7, true, received), INBOUND_PENDING);
  assert.equal(inboundStep(1, 7, false, received), INBOUND_NEW);
  assert.equal(inboundStep(1, 9, true, received), INBOUND_PENDING);
});

test("pubCompCode() answers an unknown PUBREL with 0x92 only when strict and MQTT 5 [MQTT-4.3.3-11]", () => {
  assert.equal(pubCompCode(true, 5, true), ReasonCode.Success);
  assert.equal(pubCompCode(false, 5, true), ReasonCode.PacketIdentifierNotFound);
  assert.equal(pubCompCode(false, 4, true), ReasonCode.Success);
  assert.equal(pubCompCode(false, 5, false), ReasonCode.Success);
});
