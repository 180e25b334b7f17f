import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import mqtt from "mqtt";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import { memoryPair } from "../../src/transport/memory.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";
import { mosquittoMissing } from "../_mosquitto.ts";
import { take, within } from "../_helpers.ts";
import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type { Packet } from "../../src/codec/packet.ts";
import { concat } from "../../src/bytes.ts";

test("our client and our broker over an in-memory transport: QoS 0, 1, 2 and retained", async () => {
  const broker = new Broker();
  const open = () => {
    const [client, server] = memoryPair();
    void broker.handle(server, "memory");
    return Promise.resolve(client);
  };
  const a = await connect({ transport: open, clientId: "a" });
  const b = await connect({ transport: open, clientId: "b", protocolVersion: 4 });
  await a.publish("mem/retained", "kept", { qos: 1, retain: true });
  const subscription = await b.subscribe("mem/#", { qos: 2 });
  for (const qos of [0, 1, 2] as const) await a.publish(`mem/${qos}`, `q${qos}`, { qos });
  const messages = await take(subscription, 4);
  assert.equal(messages[0].topic, "mem/retained");
  assert.equal(messages[0].retain, true);
  assert.deepEqual(messages.slice(1).map((m) => m.text()).sort(), ["q0", "q1", "q2"]);
  await a.close();
  await b.close();
  await broker.close();
});

test("hooks: authentication, publish and subscribe authorization", async () => {
  const broker = new Broker({
    allowAnonymous: false,
    authenticate: (_client, password) => new TextDecoder().decode(password) === "right",
    authorizePublish: (_client, packet) => !packet.topic.startsWith("admin/"),
    authorizeSubscribe: (_client, subscription) => subscription.topicFilter.startsWith("secret/") ? false : 1,
  });
  const { port } = await broker.listen({ port: 0 });
  await assert.rejects(
    connect(`mqtt://127.0.0.1:${port}`, { reconnect: false }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.NotAuthorized,
  );
  await assert.rejects(
    connect(`mqtt://u:wrong@127.0.0.1:${port}`, { reconnect: false }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.BadUserNameOrPassword,
  );
  const client = await connect(`mqtt://u:right@127.0.0.1:${port}`, { reconnect: false });
  await assert.rejects(
    client.publish("admin/x", "no", { qos: 1 }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.NotAuthorized && e.source === "peer",
  );
  await assert.rejects(
    client.subscribe("secret/#"),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.NotAuthorized,
  );
  const granted = await client.subscribe("open/#", { qos: 2 });
  assert.deepEqual(granted.reasonCodes, [1]);
  await client.close();
  await broker.close();
});

test("MQTT.js (3.1.1 and 5) publishes and subscribes through our broker over TCP", async () => {
  const broker = new Broker();
  const { port } = await broker.listen({ port: 0 });
  for (const protocolVersion of [4, 5] as const) {
    const js = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion, reconnectPeriod: 0 });
    const received: string[] = [];
    const done = new Promise<void>((resolve) => {
      js.on("message", (topic, payload) => {
        received.push(`${topic}=${payload}`);
        if (received.length === 3) resolve();
      });
    });
    await js.subscribeAsync("js/#", { qos: 2 });
    const ours = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false });
    for (const qos of [0, 1, 2] as const) await ours.publish(`js/${qos}`, `v${protocolVersion}`, { qos });
    await done;
    assert.deepEqual(received.sort(), [
      `js/0=v${protocolVersion}`,
      `js/1=v${protocolVersion}`,
      `js/2=v${protocolVersion}`,
    ]);
    await js.endAsync();
    await ours.close();
  }
  await broker.close();
});

test("mosquitto_pub and mosquitto_sub work against our broker", { skip: mosquittoMissing() }, async () => {
  const broker = new Broker();
  const { port } = await broker.listen({ port: 0 });
  const run = (command: string, args: string[]) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      const child = spawn(command, args);
      let out = "";
      child.stdout.on("data", (d) => out += d);
      child.on("close", (code) => resolve({ code: code ?? -1, out }));
    });
  const sub = run("mosquitto_sub", [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-t",
    "m/#",
    "-v",
    "-C",
    "2",
    "-W",
    "10",
    "-q",
    "2",
  ]);
  await new Promise((resolve) => setTimeout(resolve, 400));
  assert.equal(
    (await run("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(port), "-t", "m/1", "-m", "a", "-q", "1"]))
      .code,
    0,
  );
  assert.equal(
    (await run("mosquitto_pub", [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-t",
      "m/2",
      "-m",
      "b",
      "-q",
      "2",
      "-V",
      "mqttv5",
    ])).code,
    0,
  );
  const result = await sub;
  assert.equal(result.code, 0);
  assert.equal(result.out, "m/1 a\nm/2 b\n");
  await broker.close();
});

test("close() sends MQTT 5 clients DISCONNECT 0x8B, server shutting down", async () => {
  const broker = new Broker();
  const { port } = await broker.listen({ port: 0 });
  const errors: (MqttError | undefined)[] = [];
  const client = await connect(`mqtt://127.0.0.1:${port}`, {
    reconnect: false,
    onStateChange: (event) => {
      if (event.type === "disconnected") errors.push(event.error);
    },
  });
  await broker.close();
  await client.closed;
  assert.equal(client.connected, false);
  assert.equal(errors[0]?.reasonCode, ReasonCode.ServerShuttingDown);
  assert.equal(errors[0]?.source, "peer");
});

test("$SYS/broker topics: version, uptime, clients, messages and bytes, retained, heap, every sysInterval", async () => {
  const broker = new Broker({ sysInterval: 1 });
  const { port } = await broker.listen({ port: 0 });
  const client = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false });
  await client.publish("some/topic", "x", { qos: 1 });
  const sys = await client.subscribe("$SYS/broker/#");
  const seen = new Map<string, string>();
  for await (const message of sys) {
    seen.set(message.topic, message.text());
    const received = seen.get("$SYS/broker/messages/received") === "1";
    const heap = seen.has("$SYS/broker/heap/current");
    if (received && heap && seen.size >= 11 && Number(seen.get("$SYS/broker/bytes/received")) > 0) break;
  }
  assert.match(seen.get("$SYS/broker/version") ?? "", /^@x\/mqtt \d+\.\d+\.\d+$/);
  assert.match(seen.get("$SYS/broker/uptime") ?? "", /^\d+ seconds$/);
  assert.equal(seen.get("$SYS/broker/clients/connected"), "1");
  assert.ok(Number(seen.get("$SYS/broker/bytes/received")) > 0);
  // Bytes of JavaScript heap in use, as mosquitto's "$SYS/broker/heap/current".
  assert.match(seen.get("$SYS/broker/heap/current") ?? "", /^[1-9]\d*$/);
  // A wildcard subscription does not see $SYS [MQTT-4.7.2-1].
  const all = await client.subscribe("#");
  await client.publish("plain", "p");
  for await (const message of all) {
    assert.equal(message.topic, "plain");
    break;
  }
  await client.close();
  await broker.close();
});

test("logPackets traces every packet in and out at debug level, without payloads or passwords", async () => {
  const lines: string[] = [];
  const broker = new Broker({
    logPackets: true,
    sysInterval: 0,
    log: (level, m) => lines.push(`${level} ${m}`),
  });
  const [clientSide, serverSide] = memoryPair();
  void broker.handle(serverSide);
  const client = await connect({
    transport: () => Promise.resolve(clientSide),
    clientId: "tracer",
    username: "u",
    password: "hunter2",
  });
  await client.publish("traced/topic", "secret payload", { qos: 1 });
  await client.close();
  await broker.close();
  const text = lines.join("\n");
  assert.match(text, /debug Received CONNECT \(p5, c1, k60, id 'tracer', u 'u'\)/);
  assert.match(text, /debug Sending CONNACK \(sp0, rc0x0\) to "tracer"/);
  assert.match(
    text,
    /debug Received PUBLISH \(d0, q1, r0, m1, 'traced\/topic', \.\.\. \(14 bytes\)\) from "tracer"/,
  );
  assert.match(text, /debug Sending PUBACK \(m1, rc0x0\) to "tracer"/);
  assert.doesNotMatch(text, /hunter2|secret payload/);
});

test("limits: client id length, topic length and levels, messages per second", async () => {
  const broker = new Broker({
    maxClientIdLength: 8,
    maxTopicLevels: 3,
    maxTopicLength: 20,
    maxMessagesPerSecond: 5,
    sysInterval: 0,
  });
  const open = () => {
    const [client, server] = memoryPair();
    void broker.handle(server);
    return Promise.resolve(client);
  };
  await assert.rejects(
    connect({ transport: open, clientId: "much-too-long", reconnect: false }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.ClientIdentifierNotValid,
  );
  const client = await connect({ transport: open, clientId: "short" });
  await assert.rejects(
    client.publish("a/b/c/d", "x", { qos: 1 }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.TopicNameInvalid,
  );
  await assert.rejects(
    client.publish("a".repeat(21), "x", { qos: 1 }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.TopicNameInvalid,
  );
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, () => client.publish("ok", "x", { qos: 1 })),
  );
  const refused = results.filter((r) =>
    r.status === "rejected" && (r.reason as MqttError).reasonCode === ReasonCode.QuotaExceeded
  );
  assert.ok(refused.length >= 10, `${refused.length} of 20 refused at 5 per second`);
  await client.close();
  await broker.close();
});

test("empty client identifiers: assigned with autoIdPrefix, or refused with allowZeroLengthClientId false", async () => {
  const opener = (broker: Broker) => () => {
    const [client, server] = memoryPair();
    void broker.handle(server);
    return Promise.resolve(client);
  };
  const assigning = new Broker({ autoIdPrefix: "edge-", sysInterval: 0 });
  const refusing = new Broker({ allowZeroLengthClientId: false, sysInterval: 0 });
  try {
    const v5 = await connect({
      transport: opener(assigning),
      clientId: "",
      protocolVersion: 5,
      reconnect: false,
    });
    assert.match(v5.clientId, /^edge-\d+$/);
    await v5.close();
    for (const protocolVersion of [5, 4] as const) {
      await assert.rejects(
        connect({ transport: opener(refusing), clientId: "", protocolVersion, reconnect: false }),
        (e) => e instanceof MqttError && e.reasonCode === ReasonCode.ClientIdentifierNotValid,
      );
    }
    const named = await connect({ transport: opener(refusing), clientId: "named", reconnect: false });
    await named.close();
  } finally {
    await assigning.close();
    await refusing.close();
  }
});

test("a publish hook answering with a code PUBACK cannot carry is sent as 0x80, not a crash", async () => {
  const broker = new Broker({ sysInterval: 0, authorizePublish: () => ReasonCode.TopicFilterInvalid });
  const [clientSide, serverSide] = memoryPair();
  void broker.handle(serverSide);
  const client = await connect({ transport: () => Promise.resolve(clientSide), reconnect: false });
  await assert.rejects(
    client.publish("t", "x", { qos: 1 }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.UnspecifiedError,
  );
  await client.close();
  await broker.close();
});

test("MQTT 5 enhanced authentication: challenge and response with our client, refusal, and no hook", async () => {
  const steps: string[] = [];
  const broker = new Broker({
    sysInterval: 0,
    enhancedAuthenticate: (_client, step) => {
      const data = new TextDecoder().decode(step.data ?? new Uint8Array());
      steps.push(`${step.method}:${data}`);
      if (data === "hello") return { challenge: new TextEncoder().encode("prove it") };
      if (data === "proof") return { accept: true };
      return ReasonCode.NotAuthorized;
    },
  });
  const open = () => {
    const [client, server] = memoryPair();
    void broker.handle(server);
    return Promise.resolve(client);
  };
  const client = await connect({
    transport: open,
    reconnect: false,
    properties: { authenticationMethod: "TOY", authenticationData: new TextEncoder().encode("hello") },
    authenticate: (challenge) => {
      assert.equal(new TextDecoder().decode(challenge.properties?.authenticationData), "prove it");
      return { authenticationMethod: "TOY", authenticationData: new TextEncoder().encode("proof") };
    },
  });
  assert.deepEqual(steps, ["TOY:hello", "TOY:proof"]);
  await client.close();
  await assert.rejects(
    connect({
      transport: open,
      reconnect: false,
      properties: { authenticationMethod: "TOY", authenticationData: new TextEncoder().encode("wrong") },
    }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.NotAuthorized,
  );
  await broker.close();
  const plain = new Broker({ sysInterval: 0 });
  const [c, s] = memoryPair();
  void plain.handle(s);
  await assert.rejects(
    connect({
      transport: () => Promise.resolve(c),
      reconnect: false,
      properties: { authenticationMethod: "TOY" },
    }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.BadAuthenticationMethod,
  );
  await plain.close();
});

test("MQTT 5 re-authentication (AUTH 0x19): a challenge answered keeps the connection, a refusal ends it with its code", async () => {
  const steps: string[] = [];
  const broker = new Broker({
    sysInterval: 0,
    enhancedAuthenticate: (_client, step) => {
      const data = new TextDecoder().decode(step.data ?? new Uint8Array());
      steps.push(`${step.reauthenticating ? "re" : "new"}:${data}`);
      if (data === "hello" || data === "again") return { challenge: new TextEncoder().encode("prove it") };
      if (data === "proof") return { accept: true, data: new TextEncoder().encode("welcome") };
      return ReasonCode.NotAuthorized;
    },
  });
  const [c, s] = memoryPair();
  void broker.handle(s);
  const events: string[] = [];
  const client = await connect({
    transport: () => Promise.resolve(c),
    reconnect: false,
    properties: { authenticationMethod: "TOY", authenticationData: new TextEncoder().encode("hello") },
    authenticate: () => ({
      authenticationMethod: "TOY",
      authenticationData: new TextEncoder().encode("proof"),
    }),
    onPacket: (direction, packet) => {
      if (packet.type === "auth") events.push(`${direction}:0x${packet.reasonCode.toString(16)}`);
    },
  });
  const subscription = await client.subscribe("t");
  events.length = 0;
  client.reauthenticate({
    authenticationMethod: "TOY",
    authenticationData: new TextEncoder().encode("again"),
  });
  await within(
    (async () => {
      while (!events.includes("in:0x0")) await new Promise((r) => setTimeout(r, 5));
    })(),
    3000,
    "the AUTH 0x00 that ends the re-authentication",
  );
  // out 0x19, in 0x18 (challenge), out 0x18 (proof), in 0x00 (done)
  assert.deepEqual(events, ["out:0x19", "in:0x18", "out:0x18", "in:0x0"]);
  await client.publish("t", "still connected", { qos: 1 });
  assert.equal((await take(subscription, 1))[0].text(), "still connected");
  // A re-authentication the hook refuses: DISCONNECT 0x87 and the connection is over.
  client.reauthenticate({
    authenticationMethod: "TOY",
    authenticationData: new TextEncoder().encode("forged"),
  });
  await within(client.closed, 3000, "the connection to close");
  assert.equal(client.connected, false);
  assert.deepEqual(steps, ["new:hello", "new:proof", "re:again", "re:proof", "re:forged"]);
  await broker.close();
});

test("the log names each client's address on connect, refusal and disconnect", async () => {
  const lines: string[] = [];
  const broker = new Broker({
    sysInterval: 0,
    allowAnonymous: false,
    log: (_level, line) => lines.push(line),
  });
  const { port } = await broker.listen({ port: 0 });
  await assert.rejects(connect(`mqtt://127.0.0.1:${port}`, { reconnect: false, clientId: "anon" }));
  const ok = await connect(`mqtt://127.0.0.1:${port}`, {
    reconnect: false,
    clientId: "named",
    username: "ada",
    password: "pw",
  });
  await ok.close();
  await broker.close();
  assert.ok(lines.some((l) => /Client "named" connected .* from 127\.0\.0\.1:\d+/.test(l)), lines.join("\n"));
  assert.ok(lines.some((l) => /Refused "anon".*127\.0\.0\.1:\d+/.test(l)), lines.join("\n"));
  assert.ok(
    lines.some((l) => /Client "named" \(127\.0\.0\.1:\d+\) (disconnected|closed)/.test(l)),
    lines.join("\n"),
  );
  assert.ok(!lines.some((l) => l.includes("pw")), "no password in the log");
});

test("a chunk of 20,000 PUBLISH packets is routed without recursion and acknowledged in a few writes", async () => {
  const broker = new Broker();
  const count = 20_000;
  async function rawClient(clientId: string) {
    const [client, server] = memoryPair();
    void broker.handle(server, "memory");
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    const decoder = new PacketDecoder({ version: 4 });
    let chunks = 0;
    async function next(): Promise<Packet> {
      for (;;) {
        const packet = decoder.next();
        if (packet !== undefined) return packet;
        const { value, done } = await within(reader.read(), 5000, `a packet for ${clientId}`);
        if (done) throw new Error(`${clientId}: the broker closed the connection`);
        chunks++;
        decoder.push(value);
      }
    }
    await writer.write(
      encode({ type: "connect", protocolVersion: 4, clientId, cleanStart: true, keepAlive: 0 }, 4),
    );
    assert.equal((await next()).type, "connack");
    return { writer, next, chunks: () => chunks, close: () => client.close() };
  }
  const subscriber = await rawClient("sub");
  await subscriber.writer.write(
    encode({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "flood",
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    }, 4),
  );
  assert.equal((await subscriber.next()).type, "suback");
  const publisher = await rawClient("pub");
  const parts: Uint8Array[] = [];
  for (let i = 1; i <= count; i++) {
    const payload = new TextEncoder().encode(`${i}`);
    parts.push(
      encode({ type: "publish", topic: "flood", payload, qos: 1, packetId: i, retain: false, dup: false }, 4),
    );
  }
  const before = publisher.chunks();
  await publisher.writer.write(concat(parts));
  for (let i = 1; i <= count; i++) {
    const ack = await publisher.next();
    assert.deepEqual([ack.type, ack.type === "puback" && ack.packetId], ["puback", i]);
  }
  assert.ok(publisher.chunks() - before <= 10, `${publisher.chunks() - before} writes of PUBACKs`);
  let received = 0;
  while (received < count) {
    const message = await subscriber.next();
    assert.equal(message.type, "publish");
    if (message.type !== "publish") break;
    received++;
    assert.equal(new TextDecoder().decode(message.payload), `${received}`);
    await subscriber.writer.write(
      encode({ type: "puback", packetId: message.packetId as number, reasonCode: 0 }, 4),
    );
  }
  await publisher.close();
  await subscriber.close();
  await broker.close();
});

test("our client writes the QoS 0 publishes of one turn in one write, and each settles once it is written", async () => {
  const broker = new Broker();
  let writes = 0;
  const open = () => {
    const [client, server] = memoryPair();
    void broker.handle(server, "memory");
    const writer = client.writable.getWriter();
    const counting = new WritableStream<Uint8Array>({
      write(chunk) {
        writes++;
        return writer.write(chunk);
      },
      close: () => writer.close(),
      abort: (reason) => writer.abort(reason),
    });
    return Promise.resolve({ readable: client.readable, writable: counting, close: () => client.close() });
  };
  const client = await connect({ transport: open, clientId: "batch", reconnect: false });
  const subscriber = await connect({ transport: open, clientId: "batch-sub", reconnect: false });
  const subscription = await subscriber.subscribe("batch");
  const before = writes;
  await within(Promise.all(Array.from({ length: 100 }, (_, i) => client.publish("batch", `${i}`))));
  assert.equal(writes - before, 1);
  const messages = await take(subscription, 100);
  assert.deepEqual(messages.map((m) => m.text()), Array.from({ length: 100 }, (_, i) => `${i}`));
  await client.close();
  await subscriber.close();
  await broker.close();
});

test("a consumer slower than the flood loses no QoS 0 message: the client pauses reading while its buffer is full", async () => {
  const broker = new Broker();
  const open = () => {
    const [client, server] = memoryPair();
    void broker.handle(server, "memory");
    return Promise.resolve(client);
  };
  const publisher = await connect({ transport: open, clientId: "flood-pub", reconnect: false });
  const subscriber = await connect({
    transport: open,
    clientId: "flood-sub",
    reconnect: false,
    subscriptionBufferLimit: 10,
  });
  const subscription = await subscriber.subscribe("flood/#");
  const count = 500;
  await Promise.all(Array.from({ length: count }, (_, i) => publisher.publish("flood/x", `${i}`)));
  const received: string[] = [];
  await within(
    (async () => {
      for await (const message of subscription) {
        received.push(message.text());
        if (received.length % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
        if (received.length === count) break;
      }
    })(),
    10_000,
    "500 messages",
  ).catch((e) => {
    throw new Error(`${e.message}: ${received.length} received, ${subscription.dropped} dropped`);
  });
  assert.equal(subscription.dropped, 0);
  assert.deepEqual(received, Array.from({ length: count }, (_, i) => `${i}`));
  await publisher.close();
  await subscriber.close();
  await broker.close();
});
