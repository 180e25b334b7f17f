import { test } from "node:test";
import assert from "node:assert/strict";
import { canPublish, canSubscribe, parseAclFile } from "../../src/broker/acl_file.ts";
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
  assert.equal(canSubscribe(acl, anon, "#"), false);
  assert.equal(canPublish(acl, ada, "ada/notes"), true);
  assert.equal(canPublish(acl, ada, "ada/secret"), false);
  assert.equal(canSubscribe(acl, ada, "ada/secret"), false);
  // A filter that would include a denied topic is refused as a whole.
  assert.equal(canSubscribe(acl, ada, "ada/#"), false);
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
