import { test } from "node:test";
import assert from "node:assert/strict";
import { encode } from "../../src/codec/encode.ts";
import type { ConnectPacket, ProtocolVersion } from "../../src/codec/packet.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";
import { SessionMachine } from "../../src/machine/session_machine.ts";
import { Harness } from "./_broker_helpers.ts";

const VERSIONS: ProtocolVersion[] = [3, 4, 5];

function connectPacket(version: ProtocolVersion, fields: Partial<ConnectPacket> = {}): ConnectPacket {
  return {
    type: "connect",
    protocolVersion: version,
    clientId: "c",
    cleanStart: true,
    keepAlive: 0,
    ...fields,
  };
}

for (const version of VERSIONS) {
  test(`SessionMachine.accept() answers CONNECT with CONNACK 0x00, v${version} ${version === 5 ? "[MQTT-3.1.4-5]" : "[MQTT-3.1.4-4]"}`, () => {
    const h = new Harness();
    const client = h.connect("c", version, { manual: true });
    const event = client.events.shift();
    assert.equal(event?.type, "connect");
    assert.equal(client.session.state, "connecting");
    assert.deepStrictEqual(client.take(), []);
    client.session.accept(h.now);
    h.pump();
    assert.deepStrictEqual(client.take(), [{
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      ...(version === 5 ? { properties: { topicAliasMaximum: 16, maximumPacketSize: 1_048_576 } } : {}),
    }]);
    assert.equal(client.session.state, "connected");
  });

  test(`SessionMachine.reject() sends CONNACK with the refusal and closes, v${version} ${version === 5 ? "[MQTT-3.2.2-6] [MQTT-3.2.2-7]" : "[MQTT-3.2.2-4] [MQTT-3.2.2-5]"}`, () => {
    const h = new Harness();
    const client = h.connect("c", version, { manual: true });
    client.events.shift();
    client.session.reject(h.now, ReasonCode.NotAuthorized);
    h.pump();
    const [connack] = client.take();
    assert.equal(connack.type, "connack");
    // 3.x gets the mapped return code 5 (not authorized), which decodes back to 0x87.
    assert.deepStrictEqual(connack, {
      type: "connack",
      sessionPresent: false,
      reasonCode: ReasonCode.NotAuthorized,
    });
    assert.equal(client.session.state, "closed");
    assert.equal(client.closed?.type, "closed");
  });

  test(`SessionMachine answers PINGREQ with PINGRESP, v${version} [MQTT-3.12.4-1]`, () => {
    const h = new Harness();
    const client = h.connected("c", version);
    client.send({ type: "pingreq" });
    assert.deepStrictEqual(client.take(), [{ type: "pingresp" }]);
  });

  test(`SessionMachine closes after 1.5 × keep-alive of silence, v${version} ${version === 5 ? "[MQTT-3.1.2-22]" : "[MQTT-3.1.2-24]"}`, () => {
    const h = new Harness();
    const client = h.connected("c", version, { keepAlive: 10 });
    assert.equal(client.session.pollTimeout(), 15_000);
    h.now = 9_000;
    client.send({ type: "pingreq" });
    client.take();
    assert.equal(client.session.pollTimeout(), 24_000);
    client.session.handleTimeout(23_999);
    assert.equal(client.session.state, "connected");
    assert.equal(h.advance(), 24_000);
    assert.equal(client.session.state, "closed");
    const closed = client.closed;
    assert.ok(closed?.type === "closed" && closed.error?.reasonCode === ReasonCode.KeepAliveTimeout);
    // MQTT 5 tells the client why; 3.x just closes.
    assert.deepStrictEqual(
      client.take(),
      version === 5 ? [{ type: "disconnect", reasonCode: ReasonCode.KeepAliveTimeout }] : [],
    );
  });

  test(`SessionMachine treats a second CONNECT as a protocol error, v${version} [MQTT-3.1.0-2]`, () => {
    const h = new Harness();
    const client = h.connected("c", version);
    client.send(connectPacket(version));
    assert.equal(client.session.state, "closed");
    const closed = client.closed;
    assert.ok(closed?.type === "closed" && closed.error?.reasonCode === ReasonCode.ProtocolError);
    assert.deepStrictEqual(
      client.take(),
      version === 5 ? [{ type: "disconnect", reasonCode: ReasonCode.ProtocolError }] : [],
    );
  });

  test(`SessionMachine discards the will on DISCONNECT, v${version} [MQTT-3.14.4-3]`, () => {
    const h = new Harness();
    const will = { topic: "w", payload: new Uint8Array([1]), qos: 0 as const, retain: false };
    const client = h.connected("c", version, { will });
    assert.deepStrictEqual(client.session.will, will);
    client.send({ type: "disconnect", reasonCode: 0 });
    assert.equal(client.session.will, undefined);
    assert.deepStrictEqual(client.closed, { type: "closed" });
  });

  test(`SessionMachine keeps the will when the connection drops, v${version} [MQTT-3.1.2-8]`, () => {
    const h = new Harness();
    const will = { topic: "w", payload: new Uint8Array([1]), qos: 1 as const, retain: true };
    const client = h.connected("c", version, { will });
    client.drop();
    assert.deepStrictEqual(client.session.will, will);
    assert.ok(client.closed?.type === "closed" && client.closed.error?.source === "transport");
  });

  test(`SessionMachine handles packets sent before the CONNECT was accepted, after it, v${version}`, () => {
    const h = new Harness();
    const client = h.connect("c", version, { manual: true });
    client.send({ type: "pingreq" });
    assert.deepStrictEqual(client.take(), []);
    client.events.shift();
    h.broker.attach(h.now, client.session);
    h.pump();
    assert.deepStrictEqual(client.take().map((p) => p.type), ["connack", "pingresp"]);
  });

  test(`SessionMachine emits closed exactly once, as the last event, v${version}`, () => {
    const session = new SessionMachine(0);
    session.handleBytes(0, encode(connectPacket(version), version));
    assert.equal(session.pollEvent()?.type, "connect");
    session.accept(0);
    session.handleBytes(1, encode({ type: "pingreq" }, version));
    session.disconnect(2, ReasonCode.ServerShuttingDown);
    session.handleClose(3);
    session.handleBytes(4, encode({ type: "pingreq" }, version));
    session.handleTimeout(1e9);
    const events = [];
    for (let e = session.pollEvent(); e; e = session.pollEvent()) events.push(e);
    assert.equal(events.length, 1);
    assert.equal(events[0].type, "closed");
    assert.equal(session.pollTimeout(), undefined);
  });
}

test("SessionMachine closes a connection that sends no CONNECT within the connect timeout", () => {
  const session = new SessionMachine(100, { connectTimeoutMs: 5_000 });
  assert.equal(session.pollTimeout(), 5_100);
  session.handleTimeout(5_099);
  assert.equal(session.state, "waiting");
  session.handleTimeout(5_100);
  assert.equal(session.state, "closed");
  const event = session.pollEvent();
  assert.ok(event?.type === "closed" && event.error instanceof MqttError);
  assert.equal(session.pollTransmit(), undefined);
});

/** A CONNECT with any protocol name and level, byte by byte (the encoder writes only levels it knows). */
function rawConnect(name: string, level: number, properties: boolean): Uint8Array {
  const body = [0, name.length, ...[...name].map((c) => c.charCodeAt(0)), level, 0x02, 0, 60];
  if (properties) body.push(0); // an empty MQTT 5 property length
  body.push(0, 1, 0x63); // client id "c"
  return Uint8Array.of(0x10, body.length, ...body);
}

test("SessionMachine answers a CONNECT of an unknown protocol level with CONNACK 0x01 in the 3.1.1 form and closes [MQTT-3.1.2-2]", () => {
  // Levels 0-2 and 6-255 (but a bridge's 0x83 with "MQIsdp" and 0x84 with "MQTT"), 3 with "MQTT" and 4 or 5
  // with "MQIsdp": mosquitto 2.0.11 answers each of them with the same four bytes, which a client of any level
  // can read.
  const cases: [string, number][] = [
    ["MQTT", 0],
    ["MQTT", 1],
    ["MQTT", 2],
    ["MQTT", 3],
    ["MQTT", 6],
    ["MQTT", 7],
    ["MQTT", 0x83],
    ["MQTT", 0x85],
    ["MQTT", 255],
    ["MQIsdp", 4],
    ["MQIsdp", 5],
    ["MQIsdp", 0x84],
  ];
  for (const [name, level] of cases) {
    for (const properties of [false, true]) {
      const bytes = rawConnect(name, level, properties);
      for (const cut of [1, 3, 9, bytes.length]) {
        const session = new SessionMachine(0);
        session.handleBytes(0, bytes.subarray(0, cut)); // in two chunks: the level may arrive later
        session.handleBytes(0, bytes.subarray(cut));
        const what = `${name} level ${level}${properties ? " with a property length" : ""}, cut at ${cut}`;
        assert.deepStrictEqual(session.pollTransmit(), Uint8Array.of(0x20, 0x02, 0x00, 0x01), what);
        assert.equal(session.pollTransmit(), undefined, what);
        const event = session.pollEvent();
        assert.ok(
          event?.type === "closed" && event.error?.reasonCode === ReasonCode.UnsupportedProtocolVersion,
          what,
        );
        assert.equal(session.state, "closed", what);
      }
    }
  }
});

test("SessionMachine takes a bridge's CONNECT (level 0x84 with MQTT, 0x83 with MQIsdp) as 3.1.1 or 3.1 and knows it is a bridge", () => {
  for (const [name, level] of [["MQTT", 0x84], ["MQIsdp", 0x83]] as const) {
    const session = new SessionMachine(0);
    session.handleBytes(0, rawConnect(name, level, false));
    const event = session.pollEvent();
    assert.equal(event?.type, "connect", name);
    assert.equal(session.version, level & 0x7f);
    assert.equal(session.bridge, true);
  }
  const plain = new SessionMachine(0);
  plain.handleBytes(0, rawConnect("MQTT", 4, false));
  plain.pollEvent();
  assert.equal(plain.bridge, false);
});

test("SessionMachine answers a malformed MQTT 5 CONNECT with an MQTT 5 CONNACK and its reason code [MQTT-3.1.2-3] [MQTT-3.1.4-1]", () => {
  const bytes = rawConnect("MQTT", 5, true);
  bytes[9] = 0x03; // the reserved flag set
  const session = new SessionMachine(0);
  session.handleBytes(0, bytes);
  assert.deepStrictEqual(session.pollTransmit(), Uint8Array.of(0x20, 0x03, 0x00, 0x81, 0x00));
  const event = session.pollEvent();
  assert.ok(event?.type === "closed" && event.error?.reasonCode === ReasonCode.MalformedPacket);
});

test("SessionMachine closes a CONNECT whose protocol name is neither MQTT nor MQIsdp without CONNACK [MQTT-3.1.2-1]", () => {
  for (const level of [3, 4, 5, 6]) {
    const session = new SessionMachine(0);
    session.handleBytes(0, rawConnect("MQTX", level, level === 5));
    assert.equal(session.pollTransmit(), undefined, `level ${level}`);
    const event = session.pollEvent();
    assert.ok(event?.type === "closed" && event.error?.reasonCode === ReasonCode.ProtocolError);
  }
});

test("SessionMachine.accept() with a Server Keep Alive sends it in CONNACK and enforces 1.5 times it instead of the client's [MQTT-3.2.2-21] [MQTT-3.1.2-22]", () => {
  for (const asked of [0, 60]) {
    const session = new SessionMachine(0, { topicAliasMaximum: 0, maximumPacketSize: 0 });
    session.handleBytes(0, encode(connectPacket(5, { keepAlive: asked }), 5));
    assert.equal(session.pollEvent()?.type, "connect");
    session.accept(1_000, { properties: { serverKeepAlive: 10 } });
    // CONNACK with property 0x13 Server Keep Alive = 10.
    assert.deepStrictEqual(
      session.pollTransmit(),
      Uint8Array.of(0x20, 0x06, 0x00, 0x00, 0x03, 0x13, 0x00, 0x0a),
    );
    assert.equal(session.pollTimeout(), 16_000);
    session.handleBytes(5_000, encode({ type: "pingreq" }, 5));
    assert.equal(session.pollTimeout(), 20_000);
    session.handleTimeout(19_999);
    assert.equal(session.state, "connected");
    session.handleTimeout(20_000);
    assert.equal(session.state, "closed");
  }
});

test("SessionMachine.accept() without a Server Keep Alive keeps the client's Keep Alive [MQTT-3.2.2-22]", () => {
  const session = new SessionMachine(0, { topicAliasMaximum: 0, maximumPacketSize: 0 });
  session.handleBytes(0, encode(connectPacket(5, { keepAlive: 60 }), 5));
  session.pollEvent();
  session.accept(0);
  assert.deepStrictEqual(session.pollTransmit(), Uint8Array.of(0x20, 0x03, 0x00, 0x00, 0x00));
  assert.equal(session.pollTimeout(), 90_000);
});

test("SessionMachine answers an MQTT 5 CONNECT with an invalid will topic with CONNACK 0x90 [MQTT-3.1.3-11]", () => {
  const bytes = encode(
    connectPacket(5, { will: { topic: "a/b", payload: new Uint8Array(0), qos: 0, retain: false } }),
    5,
  );
  const at = bytes.findIndex((b, i) => b === 0x61 && bytes[i + 1] === 0x2f && bytes[i + 2] === 0x62);
  bytes[at + 1] = 0x2b; // "a+b"
  const session = new SessionMachine(0);
  session.handleBytes(0, bytes);
  assert.deepStrictEqual(session.pollTransmit(), Uint8Array.of(0x20, 0x03, 0x00, 0x90, 0x00));
  const event = session.pollEvent();
  assert.ok(event?.type === "closed" && event.error?.reasonCode === ReasonCode.TopicNameInvalid);
});

test("SessionMachine closes a 3.1.1 CONNECT that does not conform without CONNACK [MQTT-3.1.4-1]", () => {
  const bytes = encode(
    connectPacket(4, { will: { topic: "a/b", payload: new Uint8Array(0), qos: 0, retain: false } }),
    4,
  );
  const at = bytes.findIndex((b, i) => b === 0x61 && bytes[i + 1] === 0x2f && bytes[i + 2] === 0x62);
  bytes[at + 1] = 0x23; // "a#b"
  const session = new SessionMachine(0);
  session.handleBytes(0, bytes);
  assert.equal(session.pollTransmit(), undefined);
  assert.equal(session.pollEvent()?.type, "closed");
});

test("SessionMachine refuses a zero-byte client id without clean session, 3.1.1 [MQTT-3.1.3-8]", () => {
  const h = new Harness();
  const client = h.connect("", 4, { cleanStart: false });
  assert.deepStrictEqual(client.take(), [{
    type: "connack",
    sessionPresent: false,
    reasonCode: ReasonCode.ClientIdentifierNotValid,
  }]);
  assert.equal(client.session.state, "closed");
});

test("BrokerMachine.attach() assigns a client id to an empty one and returns it in CONNACK [MQTT-3.1.3-6] [MQTT-3.2.2-16]", () => {
  const h = new Harness();
  const client = h.connect("", 5);
  const [connack] = client.take();
  assert.ok(connack.type === "connack" && connack.reasonCode === 0);
  const assigned = connack.properties?.assignedClientIdentifier;
  assert.ok(assigned !== undefined && assigned.length > 0);
  assert.equal(client.session.clientId, assigned);
  assert.ok(h.broker.hasSession(assigned));
  // 3.1.1 with clean session: accepted, the id stays internal.
  const old = h.connect("", 4);
  assert.deepStrictEqual(old.take(), [{ type: "connack", sessionPresent: false, reasonCode: 0 }]);
  assert.notEqual(old.session.clientId, assigned);
});

test("SessionMachine answers a malformed packet with DISCONNECT 0x81, v5 [MQTT-4.13.1-1] [MQTT-3.3.1-4]", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.sendBytes(Uint8Array.of(0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01)); // PUBLISH with QoS 3
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.MalformedPacket }]);
  assert.ok(
    client.closed?.type === "closed" && client.closed.error?.reasonCode === ReasonCode.MalformedPacket,
  );
});

test("SessionMachine closes a 3.1.1 connection on a malformed packet without a word [MQTT-4.8.0-1]", () => {
  const h = new Harness();
  const client = h.connected("c", 4);
  client.sendBytes(Uint8Array.of(0x36, 0x03, 0x00, 0x01, 0x61));
  assert.deepStrictEqual(client.take(), []);
  assert.equal(client.session.state, "closed");
});

test("SessionMachine answers a packet over its maximum packet size with DISCONNECT 0x95 [MQTT-3.2.2-15]", () => {
  const h = new Harness();
  const client = h.connected("c", 5, { session: { maximumPacketSize: 64 } });
  client.publish("a", new Uint8Array(100));
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.PacketTooLarge }]);
});

/** A PUBLISH fixed header announcing a remaining length of 1 MiB - 3: a packet of 1 MiB + 1 byte. */
const OVER_ONE_MIB = Uint8Array.of(0x30, 0xfd, 0xff, 0x3f);

for (const version of VERSIONS) {
  test(`SessionMachine refuses by default a packet over 1 MiB from its fixed header alone, v${version}`, () => {
    const h = new Harness();
    const client = h.connected("c", version);
    client.sendBytes(OVER_ONE_MIB);
    // Nothing of the body was read: the four header bytes were enough to refuse.
    assert.equal(client.session.state, "closed");
    assert.deepStrictEqual(
      client.take(),
      version === 5 ? [{ type: "disconnect", reasonCode: ReasonCode.PacketTooLarge }] : [],
    );
    const closed = client.closed;
    assert.ok(closed?.type === "closed");
    assert.equal(closed.error?.reasonCode, ReasonCode.PacketTooLarge);
  });
}

test("SessionMachine refuses by default a CONNECT over 1 MiB from its fixed header alone", () => {
  const session = new SessionMachine(0);
  session.handleBytes(0, Uint8Array.of(0x10, 0xfd, 0xff, 0x3f));
  assert.equal(session.state, "closed");
  assert.equal(session.pollTransmit(), undefined);
});

test("SessionMachine accepts by default a packet of exactly 1 MiB", () => {
  const h = new Harness();
  const client = h.connected("c", 4);
  // 1 fixed byte + 3 bytes of remaining length + 3 bytes of topic "a" + the payload = 1 MiB.
  const payload = new Uint8Array(1_048_576 - 7);
  assert.equal(
    encode({ type: "publish", topic: "a", payload, qos: 0, retain: false, dup: false }, 4).length,
    1_048_576,
  );
  client.publish("a", payload);
  assert.equal(client.session.state, "connected");
});

test("SessionMachine with maximumPacketSize 0 sets no limit but the protocol's and advertises none, v5", () => {
  const h = new Harness();
  const client = h.connected("c", 5, { session: { maximumPacketSize: 0, topicAliasMaximum: 0 } });
  client.sendBytes(OVER_ONE_MIB);
  assert.equal(client.session.state, "connected");
  assert.deepStrictEqual(client.take(), []);
  const fresh = h.connect("d", 5, { session: { maximumPacketSize: 0, topicAliasMaximum: 0 } });
  assert.deepStrictEqual(fresh.take(), [{ type: "connack", sessionPresent: false, reasonCode: 0 }]);
  assert.throws(() => new SessionMachine(0, { maximumPacketSize: 1 }), RangeError);
});

test("SessionMachine advertises its maximum packet size and receive maximum in CONNACK, v5", () => {
  const h = new Harness();
  const client = h.connect("c", 5, {
    session: { maximumPacketSize: 1024, receiveMaximum: 10, topicAliasMaximum: 0 },
  });
  assert.deepStrictEqual(client.take(), [{
    type: "connack",
    sessionPresent: false,
    reasonCode: 0,
    properties: { receiveMaximum: 10, maximumPacketSize: 1024 },
  }]);
});

test("SessionMachine keeps the will on DISCONNECT 0x04, v5", () => {
  const h = new Harness();
  const will = { topic: "w", payload: new Uint8Array([1]), qos: 0 as const, retain: false };
  const client = h.connected("c", 5, { will });
  client.send({ type: "disconnect", reasonCode: ReasonCode.DisconnectWithWillMessage });
  assert.deepStrictEqual(client.session.will, will);
  assert.deepStrictEqual(client.closed, { type: "closed" });
});

test("SessionMachine refuses a session expiry set in DISCONNECT after 0 in CONNECT, v5", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.send({ type: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.ProtocolError }]);
});

test("SessionMachine.disconnect() sends DISCONNECT with the reason to an MQTT 5 client and never a session expiry [MQTT-3.14.2-2]", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.session.disconnect(h.now, ReasonCode.ServerShuttingDown, {
    sessionExpiryInterval: 5,
    reasonString: "bye",
  });
  h.pump();
  assert.deepStrictEqual(client.take(), [{
    type: "disconnect",
    reasonCode: ReasonCode.ServerShuttingDown,
    properties: { reasonString: "bye" },
  }]);
  assert.ok(
    client.closed?.type === "closed" && client.closed.error?.reasonCode === ReasonCode.ServerShuttingDown,
  );
});

test("SessionMachine runs an enhanced authentication exchange, v5 [MQTT-4.12.0-2] [MQTT-4.12.0-5]", () => {
  const h = new Harness();
  const client = h.connect("c", 5, {
    manual: true,
    properties: { authenticationMethod: "SCRAM", authenticationData: Uint8Array.of(1) },
  });
  const connect = client.events.shift();
  assert.ok(connect?.type === "connect");
  assert.deepStrictEqual(connect.packet.properties?.authenticationData, Uint8Array.of(1));
  client.session.authenticate(h.now, ReasonCode.ContinueAuthentication, {
    authenticationData: Uint8Array.of(2),
  });
  h.pump();
  assert.deepStrictEqual(client.take(), [{
    type: "auth",
    reasonCode: ReasonCode.ContinueAuthentication,
    properties: { authenticationData: Uint8Array.of(2), authenticationMethod: "SCRAM" },
  }]);
  client.send({
    type: "auth",
    reasonCode: ReasonCode.ContinueAuthentication,
    properties: { authenticationMethod: "SCRAM", authenticationData: Uint8Array.of(3) },
  });
  const auth = client.events.shift();
  assert.ok(auth?.type === "auth");
  assert.deepStrictEqual(auth.packet.properties?.authenticationData, Uint8Array.of(3));
  h.broker.attach(h.now, client.session, {
    properties: { authenticationMethod: "SCRAM", authenticationData: Uint8Array.of(4) },
  });
  h.pump();
  assert.deepStrictEqual(client.take(), [{
    type: "connack",
    sessionPresent: false,
    reasonCode: 0,
    properties: {
      authenticationMethod: "SCRAM",
      authenticationData: Uint8Array.of(4),
      topicAliasMaximum: 16,
      maximumPacketSize: 1_048_576,
    },
  }]);
  // Re-authentication [MQTT-4.12.1-1].
  client.send({
    type: "auth",
    reasonCode: ReasonCode.ReAuthenticate,
    properties: { authenticationMethod: "SCRAM" },
  });
  assert.equal(client.events.shift()?.type, "auth");
  client.session.authenticate(h.now, ReasonCode.Success);
  h.pump();
  assert.deepStrictEqual(client.take(), [{
    type: "auth",
    reasonCode: 0,
    properties: { authenticationMethod: "SCRAM" },
  }]);
});

test("SessionMachine refuses AUTH from a client that gave no authentication method, v5 [MQTT-4.12.0-7]", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.send({
    type: "auth",
    reasonCode: ReasonCode.ReAuthenticate,
    properties: { authenticationMethod: "X" },
  });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.ProtocolError }]);
  assert.throws(() => new SessionMachine(0).authenticate(0, ReasonCode.ContinueAuthentication), Error);
});

test("SessionMachine refuses packets only a server sends", () => {
  const h = new Harness();
  const client = h.connected("c", 5);
  client.send({ type: "pingresp" });
  assert.deepStrictEqual(client.take(), [{ type: "disconnect", reasonCode: ReasonCode.ProtocolError }]);
});

test("SessionMachine commands throw on the caller's mistakes", () => {
  const session = new SessionMachine(0);
  assert.throws(() => session.accept(0), /no CONNECT/);
  assert.throws(() => session.reject(0, ReasonCode.Success), RangeError);
  assert.throws(() => new SessionMachine(0, { receiveMaximum: 0 }), RangeError);
  session.handleBytes(0, encode(connectPacket(5), 5));
  session.accept(0);
  assert.throws(() => session.acknowledge(0, 9), /no PUBLISH/);
});

test("SessionMachine refuses a client that floods before its CONNECT is answered", () => {
  const h = new Harness();
  const client = h.connect("c", 5, { manual: true });
  for (let i = 0; i < 1001; i++) client.send({ type: "pingreq" });
  assert.deepStrictEqual(client.take(), [{
    type: "connack",
    sessionPresent: false,
    reasonCode: ReasonCode.QuotaExceeded,
  }]);
  assert.equal(client.session.state, "closed");
});

for (const version of VERSIONS) {
  test(
    `SessionMachine processes nothing the client sent after a refused CONNECT, v${version} ${
      version === 5 ? "[MQTT-3.1.4-6]" : "[MQTT-3.1.4-5]"
    }`,
    () => {
      const h = new Harness();
      const watcher = h.connected("w", version);
      watcher.subscribe("t");
      const client = h.connect("c", version, { manual: true });
      client.publish("t", "before the answer");
      client.events.shift();
      client.session.reject(h.now, ReasonCode.NotAuthorized);
      h.pump();
      client.publish("t", "after the answer");
      assert.deepStrictEqual(client.take().map((p) => p.type), ["connack"]);
      assert.deepStrictEqual(client.events, []);
      assert.deepStrictEqual(watcher.take(), []);
    },
  );

  test(
    `SessionMachine sends CONNACK before anything else and only once, v${version} ${
      version === 5 ? "[MQTT-3.2.0-1] [MQTT-3.2.0-2]" : "[MQTT-3.2.0-1]"
    }`,
    () => {
      const h = new Harness();
      const options = version === 5 ? { cleanStart: false, properties: { sessionExpiryInterval: 60 } } : {
        cleanStart: false,
      };
      const sub = h.connected("s", version, options);
      sub.subscribe("t", 1);
      sub.drop();
      h.connected("p", version).publish("t", "queued", { qos: 1, packetId: 1 });
      const again = h.connect("s", version, options);
      assert.deepStrictEqual(again.take().map((p) => p.type), ["connack", "publish"]);
      assert.throws(() => again.session.accept(h.now), /no CONNECT/);
    },
  );
}

test("SessionMachine.accept() never reports a session present after a clean start [MQTT-3.2.2-2]", () => {
  const session = new SessionMachine(0, { topicAliasMaximum: 0, maximumPacketSize: 0 });
  session.handleBytes(0, encode(connectPacket(5, { cleanStart: true }), 5));
  session.pollEvent();
  session.accept(0, { sessionPresent: true });
  assert.deepStrictEqual(session.pollTransmit(), Uint8Array.of(0x20, 0x03, 0x00, 0x00, 0x00));
});

test("SessionMachine leaves out reason strings and user properties that would exceed the client's Maximum Packet Size [MQTT-3.2.2-19] [MQTT-3.2.2-20] [MQTT-3.14.2-3] [MQTT-3.14.2-4]", () => {
  const h = new Harness();
  const client = h.connect("c", 5, { manual: true, properties: { maximumPacketSize: 40 } });
  client.events.shift();
  const long = "x".repeat(50);
  h.broker.attach(h.now, client.session, { properties: { reasonString: long, serverKeepAlive: 5 } });
  client.session.disconnect(h.now, ReasonCode.AdministrativeAction, {
    reasonString: long,
    userProperties: [["k", "v"]],
  });
  h.pump();
  assert.deepStrictEqual(client.take(), [
    {
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      properties: { serverKeepAlive: 5, topicAliasMaximum: 16, maximumPacketSize: 1_048_576 },
    },
    { type: "disconnect", reasonCode: ReasonCode.AdministrativeAction },
  ]);
});

test("SessionMachine sends no reason string on AUTH to a client that asked for no problem information [MQTT-3.1.2-29]", () => {
  const h = new Harness();
  const client = h.connect("c", 5, {
    manual: true,
    properties: { authenticationMethod: "M", requestProblemInformation: false },
  });
  client.events.shift();
  client.session.authenticate(h.now, ReasonCode.ContinueAuthentication, { reasonString: "more" });
  h.pump();
  assert.deepStrictEqual(client.take(), [{
    type: "auth",
    reasonCode: ReasonCode.ContinueAuthentication,
    properties: { authenticationMethod: "M" },
  }]);
});

test("SessionMachine.disconnect() sends no DISCONNECT before CONNACK [MQTT-3.14.0-1]", () => {
  const h = new Harness();
  const client = h.connect("c", 5, { manual: true });
  client.session.disconnect(h.now, ReasonCode.ServerShuttingDown);
  h.pump();
  assert.deepStrictEqual(client.take(), []);
  assert.equal(client.session.state, "closed");
});

test("BrokerMachine accepts 1 to 23 character client ids of digits and letters [MQTT-3.1.3-5]", () => {
  const h = new Harness();
  for (const version of VERSIONS) {
    const id = `${version}abcdefghijXYZ0123456789`.slice(0, 23);
    const client = h.connect(id, version);
    const [connack] = client.take();
    assert.ok(connack.type === "connack" && connack.reasonCode === 0);
    assert.equal(client.session.clientId, id);
  }
});
