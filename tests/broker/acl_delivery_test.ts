/**
 * The ACL and `authorizeRead` over real sockets: subscriptions are granted when something they match is
 * readable (as mosquitto grants `+/+` and `#`), refused when nothing is (0x80 in 3.1.1, 0x87 in 5), and every
 * delivery (live, retained, queued for an offline session, across a restart with the SQLite store) reaches
 * only clients allowed to read it. Side by side with mosquitto when it is installed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAclFile } from "../../src/broker/acl_file.ts";
import { Broker, type BrokerOptions } from "../../src/broker/broker.ts";
import { openSqliteStore } from "../../src/broker/store.ts";
import { connect } from "../../src/client/connect.ts";
import type { ProtocolVersion, SubAckPacket } from "../../src/codec/packet.ts";
import { mosquittoMissing, startMosquitto } from "../_mosquitto.ts";
import { type RawClient, rawConnect } from "../_raw_client.ts";

/** mosquitto's two examples, plus a user allowed to write anywhere (the anonymous one may not). */
const DENY_FILE = "topic deny test/nosubscribe\ntopic readwrite #\nuser writer\ntopic write #\n";
const PUBLIC_FILE = "topic read public/#\nuser writer\ntopic write #\n";

/** Subscribes at QoS 1 to each filter in one SUBSCRIBE; resolves with the SUBACK's reason codes. */
async function subscribe(client: RawClient, packetId: number, ...filters: string[]): Promise<number[]> {
  await client.send({
    type: "subscribe",
    packetId,
    subscriptions: filters.map((topicFilter) => ({
      topicFilter,
      qos: 1,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    })),
  });
  const suback = await client.next((p) => p.type === "suback") as SubAckPacket;
  return suback.reasonCodes;
}

/** The topics of the PUBLISHes that arrive before one on `marker`, each acknowledged. */
async function topicsUntil(client: RawClient, marker: string): Promise<string[]> {
  const topics: string[] = [];
  for (;;) {
    const [publish] = await client.publishes(1);
    if (publish.qos > 0) await client.send({ type: "puback", packetId: publish.packetId!, reasonCode: 0 });
    if (publish.topic === marker) return topics;
    topics.push(publish.topic);
  }
}

/** Publishes each topic at QoS 1 as the user `writer`, waiting for each PUBACK. */
async function publishAll(port: number, topics: string[], retain = false): Promise<void> {
  const writer = await connect(`mqtt://127.0.0.1:${port}`, {
    clientId: "writer",
    username: "writer",
    reconnect: false,
  });
  for (const topic of topics) await writer.publish(topic, topic, { qos: 1, retain });
  await writer.close();
}

async function withBroker(options: BrokerOptions, run: (broker: Broker, port: number) => Promise<void>) {
  const broker = new Broker({ sysInterval: 0, ...options });
  try {
    const { port } = await broker.listen({ port: 0 });
    await run(broker, port);
  } finally {
    await broker.close();
  }
}

const refused = (version: ProtocolVersion) => version === 5 ? 0x87 : 0x80;

for (const version of [4, 5] as const) {
  test(`Broker ACL: "topic deny test/nosubscribe" beside "topic readwrite #" grants +/+ and #, and never delivers test/nosubscribe (MQTT ${version})`, async () => {
    await withBroker({ acl: parseAclFile(DENY_FILE) }, async (broker, port) => {
      const reader = await rawConnect(port, { clientId: "reader" }, version);
      assert.deepStrictEqual(await subscribe(reader, 1, "+/+", "#"), [1, 1]);
      // The denied topic itself has nothing readable [MQTT-3.9.3-1].
      assert.deepStrictEqual(await subscribe(reader, 2, "test/nosubscribe"), [refused(version)]);
      await publishAll(port, ["test/nosubscribe", "test/ok"]);
      assert.equal(broker.publish("test/nosubscribe", "from the host", { qos: 1 }), 0);
      assert.equal(broker.publish("test/end", "end", { qos: 1 }), 1);
      assert.deepStrictEqual(await topicsUntil(reader, "test/end"), ["test/ok"]);
      reader.close();
    });
  });

  test(`Broker ACL: "topic read public/#" grants #, delivers only public/… live and retained, and refuses private/# (MQTT ${version})`, async () => {
    await withBroker({ acl: parseAclFile(PUBLIC_FILE) }, async (broker, port) => {
      await publishAll(port, ["private/kept", "public/kept"], true);
      const reader = await rawConnect(port, { clientId: "reader" }, version);
      assert.deepStrictEqual(await subscribe(reader, 1, "#"), [1]);
      assert.deepStrictEqual(await subscribe(reader, 2, "private/#", "$SYS/#"), [
        refused(version),
        refused(version),
      ]);
      await publishAll(port, ["private/live", "public/live"]);
      broker.publish("public/end", "end", { qos: 1 });
      assert.deepStrictEqual(await topicsUntil(reader, "public/end"), ["public/kept", "public/live"]);
      reader.close();
    });
  });
}

for (const restart of [false, true]) {
  test(
    `Broker ACL: messages queued for an offline session are checked with its user's rules${
      restart ? ", after a restart with the SQLite store" : ""
    }`,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "mqtt-acl-"));
      const path = join(dir, "broker.db");
      // Anonymous clients read other/…; ada reads ada/… but not ada/secret. A session that lost its user name
      // would get other/x and not ada/ok.
      const acl = parseAclFile(
        "topic read other/#\nuser ada\ntopic read ada/#\ntopic deny ada/secret\nuser writer\ntopic write #\n",
      );
      const options = async (): Promise<BrokerOptions> => ({
        acl,
        sysInterval: 0,
        store: restart ? await openSqliteStore(path) : undefined,
      });
      const session = {
        clientId: "ada-laptop",
        username: "ada",
        properties: { sessionExpiryInterval: 3600 },
      };
      let broker = new Broker(await options());
      try {
        let { port } = await broker.listen({ port: 0 });
        const first = await rawConnect(port, session);
        assert.deepStrictEqual(await subscribe(first, 1, "#"), [1]);
        await first.send({ type: "disconnect", reasonCode: 0 });
        await first.ended;
        if (restart) {
          await broker.close();
          broker = new Broker(await options());
          ({ port } = await broker.listen({ port: 0 }));
        }
        await publishAll(port, ["other/x", "ada/secret", "ada/ok", "ada/end"]);
        const back = await rawConnect(port, { ...session, cleanStart: false });
        assert.equal(back.connack.sessionPresent, true);
        assert.deepStrictEqual(await topicsUntil(back, "ada/end"), ["ada/ok"]);
        back.close();
      } finally {
        await broker.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}

test("Broker ACL: a session resumed under another user name is checked with the new user's rules", async () => {
  const acl = parseAclFile("topic read other/#\nuser ada\ntopic read ada/#\nuser writer\ntopic write #\n");
  await withBroker({ acl }, async (_broker, port) => {
    const session = { clientId: "shared-device", properties: { sessionExpiryInterval: 3600 } };
    const anonymous = await rawConnect(port, session);
    assert.deepStrictEqual(await subscribe(anonymous, 1, "#"), [1]);
    await publishAll(port, ["ada/x", "other/x", "other/end"]);
    assert.deepStrictEqual(await topicsUntil(anonymous, "other/end"), ["other/x"]);
    await anonymous.send({ type: "disconnect", reasonCode: 0 });
    await anonymous.ended;
    const ada = await rawConnect(port, { ...session, username: "ada", cleanStart: false });
    assert.equal(ada.connack.sessionPresent, true);
    await publishAll(port, ["other/y", "ada/y", "ada/end"]);
    assert.deepStrictEqual(await topicsUntil(ada, "ada/end"), ["ada/y"]);
    ada.close();
  });
});

test("Broker authorizeRead: filters every delivery, live and retained, with the client's id and user name", async () => {
  const calls: string[] = [];
  await withBroker({
    authorizeRead(client, message) {
      calls.push(`${client.clientId}/${client.username}:${message.topic}`);
      if (message.topic === "boom") throw new Error("a broken hook refuses");
      return new TextDecoder().decode(message.payload) !== "hidden";
    },
  }, async (broker, port) => {
    broker.publish("r/hidden", "hidden", { retain: true });
    broker.publish("r/shown", "shown", { retain: true });
    const reader = await rawConnect(port, { clientId: "reader", username: "ada" });
    assert.deepStrictEqual(await subscribe(reader, 1, "#"), [1]);
    assert.equal(broker.publish("live/hidden", "hidden", { qos: 1 }), 0);
    assert.equal(broker.publish("boom", "shown", { qos: 1 }), 0);
    assert.equal(broker.publish("live/shown", "shown", { qos: 1 }), 1);
    broker.publish("end", "end", { qos: 1 });
    assert.deepStrictEqual(await topicsUntil(reader, "end"), ["r/shown", "live/shown"]);
    assert.ok(calls.includes("reader/ada:r/hidden"), calls.join(" "));
    assert.ok(calls.includes("reader/ada:live/hidden"), calls.join(" "));
    reader.close();
  });
});

test("Broker authorizeRead and an ACL: a message goes only where both allow it", async () => {
  await withBroker({
    acl: parseAclFile("topic read a/#\n"),
    authorizeRead: (_client, message) => message.topic !== "a/vetoed",
  }, async (broker, port) => {
    const reader = await rawConnect(port, { clientId: "reader" }, 4);
    assert.deepStrictEqual(await subscribe(reader, 1, "#"), [1]);
    for (const topic of ["b/unreadable", "a/vetoed", "a/ok"]) broker.publish(topic, topic, { qos: 1 });
    broker.publish("a/end", "end", { qos: 1 });
    assert.deepStrictEqual(await topicsUntil(reader, "a/end"), ["a/ok"]);
    reader.close();
  });
});

test("Broker ACL grants the subscriptions mosquitto grants and delivers the same messages", {
  skip: mosquittoMissing(),
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-acl-"));
  try {
    const cases = [
      {
        file: DENY_FILE,
        publish: ["test/nosubscribe", "test/ok"],
        marker: "test/end",
        expected: ["test/ok"],
      },
      { file: PUBLIC_FILE, publish: ["private/x", "public/x"], marker: "public/end", expected: ["public/x"] },
    ];
    for (const [i, { file, publish, marker, expected }] of cases.entries()) {
      const path = join(dir, `acl${i}`);
      writeFileSync(path, file);
      const mosquitto = await startMosquitto([`acl_file ${path}`]);
      const ours = new Broker({ acl: parseAclFile(file), sysInterval: 0 });
      try {
        const { port } = await ours.listen({ port: 0 });
        for (const [name, at] of [["mosquitto", mosquitto.port], ["ours", port]] as const) {
          for (const version of [4, 5] as const) {
            const reader = await rawConnect(at, { clientId: `reader${version}` }, version);
            assert.deepStrictEqual(await subscribe(reader, 1, "+/+", "#"), [1, 1], `${name} ${version}`);
            await publishAll(at, [...publish, marker]);
            // mosquitto sends a copy per matching subscription in MQTT 5 (allowed [MQTT-3.3.4-2]); we send one.
            const topics = [...new Set(await topicsUntil(reader, marker))];
            assert.deepStrictEqual(topics, expected, `${name} ${version}`);
            reader.close();
          }
        }
      } finally {
        await ours.close();
        await mosquitto.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
