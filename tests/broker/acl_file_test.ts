import { test } from "node:test";
import assert from "node:assert/strict";
import { canPublish, canRead, canSubscribe, parseAclFile } from "../../src/broker/acl_file.ts";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";
import { memoryPair } from "../../src/transport/memory.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";

const ACL = `
# anonymous clients
topic read public/#

user ada
topic readwrite ada/#
topic deny ada/secret
topic write log

pattern readwrite devices/%c/#
pattern read users/%u/inbox
`;

test("the mosquitto ACL format: anonymous topics, users, deny, and %c / %u patterns", () => {
  const acl = parseAclFile(ACL);
  const anon = { clientId: "anon1" };
  const ada = { clientId: "laptop", username: "ada" };
  assert.equal(canSubscribe(acl, anon, "public/+/x"), true);
  assert.equal(canPublish(acl, anon, "public/x"), false);
  // "#" matches public/…, which is readable; the other topics are filtered per message.
  assert.equal(canSubscribe(acl, anon, "#"), true);
  assert.equal(canSubscribe(acl, anon, "private/#"), false);
  assert.equal(canPublish(acl, ada, "ada/notes"), true);
  assert.equal(canPublish(acl, ada, "ada/secret"), false);
  assert.equal(canSubscribe(acl, ada, "ada/secret"), false);
  // A filter that also matches a denied topic is granted; the denied topic is never delivered.
  assert.equal(canSubscribe(acl, ada, "ada/#"), true);
  assert.equal(canRead(acl, ada, "ada/secret"), false);
  assert.equal(canSubscribe(acl, ada, "ada/notes/+"), true);
  assert.equal(canPublish(acl, ada, "log"), true);
  assert.equal(canSubscribe(acl, ada, "log"), false);
  assert.equal(canSubscribe(acl, ada, "public/x"), false, "anonymous rules are not ada's");
  assert.equal(canPublish(acl, ada, "devices/laptop/state"), true);
  assert.equal(canPublish(acl, ada, "devices/phone/state"), false);
  assert.equal(canSubscribe(acl, ada, "users/ada/inbox"), true);
  assert.equal(canSubscribe(acl, { clientId: "x", username: "bob" }, "users/ada/inbox"), false);
  assert.equal(
    canSubscribe(acl, anon, "users//inbox"),
    false,
    "%u patterns do not apply without a user name",
  );
  // A client id with wildcards cannot widen a %c pattern.
  assert.equal(canPublish(acl, { clientId: "#" }, "devices/x/y"), false);
  assert.equal(canSubscribe(acl, ada, "$share/g/ada/notes"), true);
});

const anonymous = { clientId: "c" };

/** `[filter, granted]` rows checked with {@linkcode canSubscribe}. */
function subscribeTable(
  text: string,
  client: { clientId: string; username?: string },
  rows: [string, boolean][],
) {
  const acl = parseAclFile(text);
  for (const [filter, granted] of rows) {
    assert.equal(canSubscribe(acl, client, filter), granted, `canSubscribe("${filter}") in:\n${text}`);
  }
}

/** `[topic, readable]` rows checked with {@linkcode canRead}. */
function readTable(text: string, client: { clientId: string; username?: string }, rows: [string, boolean][]) {
  const acl = parseAclFile(text);
  for (const [topic, readable] of rows) {
    assert.equal(canRead(acl, client, topic), readable, `canRead("${topic}") in:\n${text}`);
  }
}

test("canSubscribe() grants +/+ beside a deny rule, as mosquitto does, and refuses the denied topic itself", () => {
  const text = "topic deny test/nosubscribe\ntopic readwrite #\n";
  subscribeTable(text, anonymous, [
    ["+/+", true],
    ["#", true],
    ["test/#", true],
    ["+/nosubscribe", true],
    ["test/nosubscribe", false],
    ["test/other", true],
  ]);
  readTable(text, anonymous, [
    ["test/nosubscribe", false],
    ["test/other", true],
    ["test/nosubscribe/deeper", true],
    ["test", true],
  ]);
});

test("canSubscribe() grants # when only part of the tree is readable, as mosquitto does", () => {
  const text = "topic read public/#\n";
  subscribeTable(text, anonymous, [
    ["#", true],
    ["+/news", true],
    ["+", true], // "public" itself: "public/#" also matches its parent level
    ["public/#", true],
    ["private/#", false],
    ["private", false],
    ["+/+/+", true],
    ["publicity/#", false],
  ]);
  readTable(text, anonymous, [
    ["public", true],
    ["public/news", true],
    ["private/news", false],
    ["publicity", false],
  ]);
});

test("canSubscribe() refuses a filter that matches nothing readable: write-only, denied, or no rule at all", () => {
  subscribeTable("topic write inbox\ntopic read box/#\ntopic deny box/+/secret\n", anonymous, [
    ["inbox", false], // write only
    ["box/a/secret", false],
    ["box/+/secret", false], // one deny rule covers all of it
    ["box/+/secret/#", true], // box/a/secret/x is readable
    ["box/+/+", true],
    ["nothing/#", false],
  ]);
  subscribeTable("", anonymous, [["#", false], ["a", false]]);
  // Several deny rules that only together hide everything: granted (documented), and nothing is readable.
  const text = "topic read a/#\ntopic deny a\ntopic deny a/+/#\n";
  subscribeTable(text, anonymous, [["a/#", true], ["a", false], ["a/b", false]]);
  readTable(text, anonymous, [["a", false], ["a/b", false], ["a/b/c", false]]);
});

test("canSubscribe() and canRead() apply %c and %u patterns to the client's own id and user name", () => {
  const text = "pattern read devices/%c/#\npattern read users/%u/inbox\npattern deny devices/%c/keys\n";
  const ada = { clientId: "d1", username: "ada" };
  subscribeTable(text, ada, [
    ["devices/d1/#", true],
    ["devices/+/state", true],
    ["devices/d2/#", false],
    ["devices/d1/keys", false],
    ["users/ada/inbox", true],
    ["users/+/inbox", true],
    ["users/bob/inbox", false],
  ]);
  readTable(text, ada, [
    ["devices/d1/state", true],
    ["devices/d2/state", false],
    ["devices/d1/keys", false],
    ["users/ada/inbox", true],
    ["users/bob/inbox", false],
  ]);
  // Without a user name %u patterns mean nothing; a client id with a wildcard widens nothing.
  subscribeTable(text, { clientId: "d1" }, [["users/+/inbox", false], ["devices/d1/x", true]]);
  subscribeTable(text, { clientId: "+" }, [["devices/+/state", false], ["devices/x/state", false]]);
  readTable(text, { clientId: "+" }, [["devices/x/state", false]]);
  // User rules and anonymous rules stay apart.
  const mixed = "topic read open/#\nuser ada\ntopic read ada/#\n";
  subscribeTable(mixed, ada, [["open/#", false], ["ada/#", true], ["#", true]]);
  subscribeTable(mixed, anonymous, [["open/#", true], ["ada/#", false], ["#", true]]);
  readTable(mixed, ada, [["open/x", false], ["ada/x", true]]);
});

test("canSubscribe() judges a shared subscription $share/GROUP/FILTER by its filter [MQTT-4.8.2-1]", () => {
  subscribeTable("topic read jobs/#\ntopic deny jobs/secret\n", anonymous, [
    ["$share/g/jobs/+", true],
    ["$share/g/#", true],
    ["$share/g/jobs/secret", false],
    ["$share/g/other/#", false],
    ["$share/jobs/x", false], // group "jobs", filter "x"
  ]);
});

test("canSubscribe() and canRead(): a leading wildcard does not reach $ topics [MQTT-4.7.2-1]", () => {
  const text = "topic read #\ntopic deny +/secret\n";
  subscribeTable(text, anonymous, [
    ["#", true],
    ["$SYS/#", false],
    ["$SYS/broker/uptime", false],
    ["+/+", true],
  ]);
  readTable(text, anonymous, [["$SYS/broker/uptime", false], ["a/b", true], ["$SYS/secret", false]]);
  const sys = "topic read $SYS/#\ntopic deny #\n";
  // "deny #" does not reach $SYS either, so $SYS stays readable.
  subscribeTable(sys, anonymous, [["$SYS/#", true], ["#", false], ["+/broker/#", false]]);
  readTable(sys, anonymous, [["$SYS/broker/uptime", true], ["a", false]]);
  subscribeTable("topic read +/broker/#\n", anonymous, [["$SYS/broker/#", false], ["x/broker/y", true]]);
});

test("bad ACL lines say where", () => {
  assert.throws(() => parseAclFile("user\n"), /line 1: "user" needs a name/);
  assert.throws(() => parseAclFile("\n\nallow everything"), /line 3: expected "user", "topic" or "pattern"/);
  assert.throws(() => parseAclFile("topic read"), /needs a topic/);
});

test("the broker applies the ACL: MQTT 5 gets 0x87, 3.1.1 publishes are dropped", async () => {
  const broker = new Broker({ acl: parseAclFile("topic read public/#\ntopic write inbox\n") });
  const open = () => {
    const [client, server] = memoryPair();
    void broker.handle(server);
    return Promise.resolve(client);
  };
  const v5 = await connect({ transport: open });
  await assert.rejects(
    v5.publish("public/x", "no", { qos: 1 }),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.NotAuthorized,
  );
  await assert.rejects(
    v5.subscribe("inbox"),
    (e) => e instanceof MqttError && e.reasonCode === ReasonCode.NotAuthorized,
  );
  const reader = await v5.subscribe("public/#", { qos: 1 });
  const v4 = await connect({ transport: open, protocolVersion: 4 });
  await v4.publish("public/x", "dropped", { qos: 1 });
  broker.publish("public/x", "from the host");
  for await (const message of reader) {
    assert.equal(message.text(), "from the host");
    break;
  }
  await v4.close();
  await v5.close();
  await broker.close();
});
