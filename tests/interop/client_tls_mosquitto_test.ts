import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { freePort, type Mosquitto, mosquittoMissing, startMosquitto } from "../_mosquitto.ts";
import { connect } from "../../src/client/connect.ts";
import { MqttError } from "../../src/errors.ts";

const missing = mosquittoMissing();
const certs = (name: string) => fileURLToPath(new URL(`../_certs/${name}`, import.meta.url));

describe("mqtts:// against mosquitto with a test CA", { skip: missing }, () => {
  let broker: Mosquitto;
  let tlsPort = 0;
  before(async () => {
    tlsPort = await freePort();
    broker = await startMosquitto([
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${certs("ca.pem")}`,
      `certfile ${certs("server.pem")}`,
      `keyfile ${certs("server.key")}`,
    ]);
  });
  after(async () => {
    await broker?.stop();
  });

  test("verified against the test CA, the client publishes and receives over TLS", async () => {
    const client = await connect(`mqtts://127.0.0.1:${tlsPort}`, {
      tls: { caCerts: [readFileSync(certs("ca.pem"), "utf8")] },
      reconnect: false,
    });
    const subscription = await client.subscribe("tls/t", { qos: 1 });
    await client.publish("tls/t", "secret", { qos: 1 });
    for await (const message of subscription) {
      assert.equal(message.text(), "secret");
      break;
    }
    await client.close();
  });

  test("a server certificate from another CA is refused", async () => {
    await assert.rejects(
      connect(`mqtts://127.0.0.1:${tlsPort}`, {
        tls: { caCerts: [readFileSync(certs("other_ca.pem"), "utf8")] },
        reconnect: false,
        connectTimeoutMs: 3000,
      }),
      (error) => error instanceof MqttError && error.source === "transport",
    );
  });
});
