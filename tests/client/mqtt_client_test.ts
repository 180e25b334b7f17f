import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeBroker } from "./_fake_broker.ts";
import { type ConnectionEvent, MemorySessionStore, MqttClient } from "../../src/client/mqtt_client.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";
import { take, within } from "../_helpers.ts";

for (const protocolVersion of [4, 5] as const) {
  test(`v${protocolVersion}: publish settles per QoS and a subscription receives matching messages as they come`, async () => {
    const broker = new FakeBroker();
    const client = new MqttClient({ transport: broker.transport, protocolVersion, clientId: "t1" });
    await within(client.start());
    assert.equal(client.connected, true);
    const subscription = await client.subscribe(["a/+", "json"], { qos: 2 });
    assert.deepEqual(subscription.reasonCodes, [2, 2]);
    await client.publish("a/1", "zero");
    await client.publish("a/2", new TextEncoder().encode("one"), { qos: 1 });
    await client.publish("json", JSON.stringify({ n: 2 }), { qos: 2 });
    await client.publish("elsewhere", "not for us");
    const messages = await within(take(subscription, 3));
    assert.deepEqual(messages.map((m) => [m.topic, m.qos]), [["a/1", 0], ["a/2", 1], ["json", 2]]);
    assert.equal(messages[1].text(), "one");
    assert.deepEqual(messages[2].json(), { n: 2 });
    await client.close();
    await client.closed;
    assert.equal(broker.received.at(-1)?.type, "disconnect");
  });
}

test("a QoS 1 message is acknowledged only when the subscriber takes it", async () => {
  const broker = new FakeBroker();
  const client = new MqttClient({ transport: broker.transport });
  await client.start();
  const subscription = await client.subscribe("slow", { qos: 1 });
  await client.publish("slow", "x", { qos: 1 });
  // The broker echoed the message with packet id 1; give the client time to read it.
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(broker.received.some((p) => p.type === "puback"), false);
  const [message] = await take(subscription, 1);
  assert.equal(message.text(), "x");
  await within(broker.until((p) => p.type === "puback"));
  await client.close();
});

test("a refused connection rejects with the broker's reason code and is not retried", async () => {
  const broker = new FakeBroker();
  broker.refuse = ReasonCode.NotAuthorized;
  const client = new MqttClient({ transport: broker.transport });
  await assert.rejects(
    within(client.start()),
    (error) =>
      error instanceof MqttError && error.reasonCode === ReasonCode.NotAuthorized && error.source === "peer",
  );
  await within(client.closed);
  assert.equal(broker.connections, 1);
});

test("after a dropped connection the client reconnects, subscribes again and keeps delivering", async () => {
  const broker = new FakeBroker();
  const events: ConnectionEvent["type"][] = [];
  const attempts: number[] = [];
  const client = new MqttClient({
    transport: broker.transport,
    reconnect: { initialDelayMs: 10, maxDelayMs: 20 },
    onStateChange: (event) => events.push(event.type),
    beforeConnect: (attempt) => {
      attempts.push(attempt);
      return { username: `token-${attempt}` };
    },
  });
  await client.start();
  const subscription = await client.subscribe("r/#", { qos: 1 });
  await broker.drop();
  await within(broker.until((p) => p.type === "connect" && p.username === "token-1"));
  await within(
    broker.until((p) =>
      p.type === "subscribe" && broker.received.filter((q) => q.type === "subscribe").length === 2
    ),
  );
  await client.publish("r/1", "after", { qos: 1 });
  const [message] = await within(take(subscription, 1));
  assert.equal(message.text(), "after");
  assert.deepEqual(attempts, [1]);
  assert.deepEqual(events.slice(0, 4), ["connected", "disconnected", "reconnecting", "connected"]);
  await client.close();
});

test("publishes made while disconnected wait in the outbox and go out after reconnecting", async () => {
  const broker = new FakeBroker();
  const client = new MqttClient({
    transport: broker.transport,
    reconnect: { initialDelayMs: 30, maxDelayMs: 30 },
  });
  await client.start();
  await broker.drop();
  await new Promise((resolve) => setTimeout(resolve, 5));
  const controller = new AbortController();
  const kept = client.publish("o/1", "kept", { qos: 1 });
  const aborted = client.publish("o/2", "aborted", { qos: 1, signal: controller.signal });
  controller.abort(new Error("changed my mind"));
  await assert.rejects(aborted, /changed my mind/);
  await within(kept);
  const published = broker.received.filter((p) => p.type === "publish").map((p) =>
    p.type === "publish" && p.topic
  );
  assert.deepEqual(published, ["o/1"]);
  await client.close();
});

test("a publish that waited in the outbox leaves no listener on its signal once sent or settled", async () => {
  const broker = new FakeBroker();
  const client = new MqttClient({
    transport: broker.transport,
    reconnect: { initialDelayMs: 200, maxDelayMs: 200 },
  });
  await client.start();
  await broker.drop();
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(client.connected, false);
  // One long-lived signal for many publishes, as an application-wide AbortController would be.
  const signal = new AbortController().signal;
  let listeners = 0;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...args: Parameters<typeof add>) => {
    listeners++;
    add(...args);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
    listeners--;
    remove(...args);
  }) as typeof signal.removeEventListener;
  try {
    const sent = [1, 2, 3].map((i) => client.publish(`o/${i}`, "x", { qos: 1, signal }));
    assert.ok(listeners > 0);
    await within(Promise.all(sent));
    assert.equal(listeners, 0);
  } finally {
    await client.close();
  }
});

test("close() settles every pending promise and ends subscriptions; closed never rejects", async () => {
  const broker = new FakeBroker();
  broker.silent = true;
  const client = new MqttClient({ transport: broker.transport });
  await client.start();
  const subscription = await client.subscribe("y");
  const pending = client.publish("z", "never acknowledged", { qos: 1 });
  await within(broker.until((p) => p.type === "publish"));
  await client.close();
  await assert.rejects(pending, MqttError);
  assert.deepEqual(await within(take(subscription, 5)), []);
  await client.closed;
  await assert.rejects(client.publish("z", "late"), MqttError);
});

test("a subscription the broker refuses rejects with its reason code", async () => {
  const broker = new FakeBroker();
  const client = new MqttClient({ transport: broker.transport });
  await client.start();
  await assert.rejects(
    client.subscribe("forbidden/x"),
    (error) => error instanceof MqttError && error.reasonCode === ReasonCode.NotAuthorized,
  );
  await client.close();
});

test("two subscriptions to one filter both receive; leaving with one keeps the other", async () => {
  const broker = new FakeBroker();
  const client = new MqttClient({ transport: broker.transport });
  await client.start();
  const first = await client.subscribe("shared/+");
  const second = await client.subscribe("shared/+");
  await client.publish("shared/1", "both");
  assert.equal((await within(take(first, 1)))[0].text(), "both");
  assert.equal((await within(take(second, 1)))[0].text(), "both");
  await first.unsubscribe();
  assert.equal(broker.received.some((p) => p.type === "unsubscribe"), false);
  await client.publish("shared/2", "second only");
  assert.equal((await within(take(second, 1)))[0].text(), "second only");
  await second.unsubscribe();
  await within(broker.until((p) => p.type === "unsubscribe"));
  await client.close();
});

test("request() publishes with a response topic and correlation data and resolves with the matching response", async () => {
  const broker = new FakeBroker();
  const server = new MqttClient({ transport: broker.transport, clientId: "server" });
  await server.start();
  const requests = await server.subscribe("rpc/add");
  (async () => {
    for await (const request of requests) {
      const { a, b } = request.json<{ a: number; b: number }>();
      await server.publish(request.properties.responseTopic as string, JSON.stringify(a + b), {
        properties: { correlationData: request.properties.correlationData },
      });
    }
  })();
  const [first, second] = await within(Promise.all([
    server.request("rpc/add", JSON.stringify({ a: 1, b: 2 })),
    server.request("rpc/add", JSON.stringify({ a: 10, b: 20 })),
  ]));
  assert.equal(first.json(), 3);
  assert.equal(second.json(), 30);
  await assert.rejects(
    server.request("rpc/nobody", "x", { timeoutMs: 30 }),
    (e) => (e as Error).name === "TimeoutError",
  );
  await server.close();
});

test("a session store carries unfinished publishes and subscriptions into a new client", async () => {
  const broker = new FakeBroker();
  broker.silent = true;
  const store = new MemorySessionStore();
  const first = new MqttClient({
    transport: broker.transport,
    clientId: "durable",
    cleanStart: false,
    sessionStore: store,
  });
  await first.start();
  await first.subscribe("d/#", { qos: 1 });
  const lost = first.publish("d/1", "unacknowledged", { qos: 1 });
  await within(broker.until((p) => p.type === "publish"));
  await new Promise((resolve) => setTimeout(resolve, 10));
  await first.close();
  await assert.rejects(lost, MqttError);
  const saved = await store.get("durable");
  assert.equal(saved?.outgoing.length, 1);
  assert.deepEqual(saved?.subscriptions.map((s) => s.filters.map((f) => f.topicFilter)), [["d/#"]]);
  broker.silent = false;
  const second = new MqttClient({
    transport: broker.transport,
    clientId: "durable",
    cleanStart: false,
    sessionStore: store,
  });
  await second.start();
  // The fake broker does not keep sessions: the restored subscription is made again, the publish is dropped.
  await within(
    broker.until((p) =>
      p.type === "subscribe" && broker.received.filter((q) => q.type === "subscribe").length === 2
    ),
  );
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal((await store.get("durable"))?.outgoing.length, 0);
  await second.close();
});

test("MQTT 5 enhanced authentication: the authenticate hook answers the server's challenge", async () => {
  const broker = new FakeBroker();
  const challenges: string[] = [];
  const client = new MqttClient({
    transport: broker.transport,
    properties: { authenticationMethod: "TOY" },
    authenticate: (challenge) => {
      challenges.push(new TextDecoder().decode(challenge.properties?.authenticationData));
      return { authenticationMethod: "TOY", authenticationData: new TextEncoder().encode("response") };
    },
  });
  await within(client.start());
  assert.deepEqual(challenges, ["challenge"]);
  await client.close();
  const wrong = new MqttClient({
    transport: broker.transport,
    reconnect: false,
    properties: { authenticationMethod: "TOY" },
    authenticate: () => ({
      authenticationMethod: "TOY",
      authenticationData: new TextEncoder().encode("guess"),
    }),
  });
  await assert.rejects(
    within(wrong.start()),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.NotAuthorized,
  );
});

test("client.unsubscribe(filters) takes filters off the wire for every subscription", async () => {
  const broker = new FakeBroker();
  const client = new MqttClient({ transport: broker.transport });
  await client.start();
  const both = await client.subscribe(["f/a", "f/b"]);
  const onlyA = await client.subscribe("f/a");
  await client.unsubscribe("f/a");
  const unsubscribe = await within(broker.until((p) => p.type === "unsubscribe"));
  assert.deepEqual(unsubscribe.type === "unsubscribe" && unsubscribe.topicFilters, ["f/a"]);
  assert.equal(onlyA.ended, true);
  assert.equal(both.ended, false);
  await client.publish("f/b", "still here");
  assert.equal((await within(take(both, 1)))[0].text(), "still here");
  await client.close();
});

test("after a credentials refusal, reconnecting continues only if beforeConnect changes the credentials", async () => {
  const broker = new FakeBroker();
  const client = new MqttClient({
    transport: broker.transport,
    reconnect: { initialDelayMs: 5, maxDelayMs: 5 },
    username: "u",
    password: "old",
    beforeConnect: (attempt) => attempt === 1 ? { password: "new" } : { password: "new" },
  });
  await client.start();
  broker.refuse = ReasonCode.BadUserNameOrPassword;
  await broker.drop();
  // Attempt 1 brings a new password (refused too); attempt 2 brings the same one again: the client gives up.
  await within(client.closed);
  const connects = broker.received.filter((p) => p.type === "connect");
  assert.equal(connects.length, 2);
  assert.deepEqual(connects.map((p) => p.type === "connect" && new TextDecoder().decode(p.password)), [
    "old",
    "new",
  ]);
});

test("a burst of commands, one per microtask, leaves in a few writes; a lone command leaves at once", async () => {
  const broker = new FakeBroker();
  let writes = 0;
  const client = new MqttClient({
    transport: async () => {
      const transport = await broker.transport();
      const writer = transport.writable.getWriter();
      // Counts the writes the client hands over, each a chunk of one flush.
      const counted = new WritableStream<Uint8Array>({
        write: (chunk) => {
          writes++;
          return writer.write(chunk);
        },
        close: () => writer.close(),
      });
      return { readable: transport.readable, writable: counted, close: transport.close };
    },
    protocolVersion: 5,
    clientId: "burst",
  });
  await within(client.start());
  // A lone publish is written in its own turn of the event loop, without waiting for the next one.
  let before = writes;
  void client.publish("lone", "x");
  for (let i = 0; i < 20; i++) await Promise.resolve();
  assert.equal(writes - before, 1);
  await new Promise((resolve) => setTimeout(resolve, 10));
  // A consumer republishing what it receives publishes one message per microtask: one write each would be one
  // system call per message.
  before = writes;
  const published: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) {
    published.push(client.publish("burst", String(i)));
    await Promise.resolve();
  }
  await within(Promise.all(published));
  assert.ok(writes - before <= 10, `${writes - before} writes for 200 publishes`);
  for (let i = 0; i < 100 && broker.received.filter((p) => p.type === "publish").length < 201; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const burst = broker.received.filter((p) => p.type === "publish" && p.topic === "burst");
  assert.deepEqual(
    burst.map((p) => p.type === "publish" && new TextDecoder().decode(p.payload)),
    [
      ...Array(200).keys(),
    ].map(String),
  );
  await client.close();
});
