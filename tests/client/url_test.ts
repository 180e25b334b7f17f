import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBrokerUrl } from "../../src/client/url.ts";

test("broker URLs: schemes, default ports, credentials and WebSocket paths", () => {
  assert.deepEqual(parseBrokerUrl("mqtt://localhost"), {
    protocol: "mqtt",
    hostname: "localhost",
    port: 1883,
    path: "/mqtt",
  });
  assert.deepEqual(parseBrokerUrl("mqtts://ada:se%40cret@broker.example"), {
    protocol: "mqtts",
    hostname: "broker.example",
    port: 8883,
    path: "/mqtt",
    username: "ada",
    password: "se@cret",
  });
  assert.equal(parseBrokerUrl("ws://h").port, 80);
  assert.equal(parseBrokerUrl("wss://h").port, 443);
  assert.equal(parseBrokerUrl("wss://h:8443/custom?x=1").path, "/custom?x=1");
  assert.equal(parseBrokerUrl("tcp://127.0.0.1:1884").protocol, "mqtt");
  assert.equal(parseBrokerUrl("ssl://h").protocol, "mqtts");
  assert.equal(parseBrokerUrl("mqtt://[::1]:1883").hostname, "::1");
  assert.throws(() => parseBrokerUrl("http://h"), TypeError);
  assert.throws(() => parseBrokerUrl("not a url"), TypeError);
});
