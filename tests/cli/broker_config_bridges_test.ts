import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBrokerConfig } from "../../src/cli/broker_config.ts";

function bridges(...entries: unknown[]) {
  return parseBrokerConfig(JSON.stringify({ bridges: entries })).bridges;
}

const minimal = { name: "b", url: "mqtt://remote:1883", topics: [{ pattern: "#" }] };

test("parseBrokerConfig() reads every key of a bridge", () => {
  const full = {
    name: "cloud",
    urls: ["mqtts://a.example:8883", "wss://b.example/mqtt"],
    protocolVersion: 5,
    clientId: "site-north",
    localClientId: "local-north",
    localUsername: "edge",
    username: "north",
    password: "secret",
    tls: {
      ca: "ca.pem",
      caPath: "/etc/ssl/certs",
      cert: "c.pem",
      key: "k.pem",
      serverName: "cloud.example",
      insecure: false,
    },
    cleanStart: false,
    sessionExpiryInterval: 3600,
    keepAlive: 30,
    topics: [
      { pattern: "#", direction: "both", qos: 1, localPrefix: "local/", remotePrefix: "remote/" },
      { pattern: "", direction: "in", qos: 2, localPrefix: "a/b", remotePrefix: "c/d" },
      { pattern: "x/+", localPrefix: "", remotePrefix: "" },
    ],
    tryPrivate: false,
    notifications: true,
    notificationTopic: "bridges/cloud",
    notificationsLocalOnly: true,
    restartTimeout: { base: 0.5, cap: 60 },
    maxInflight: 10,
    startType: "lazy",
    threshold: 5,
    idleTimeout: 30,
  };
  assert.deepEqual(bridges(full), [{
    ...full,
    topics: [
      { pattern: "#", direction: "both", qos: 1, localPrefix: "local/", remotePrefix: "remote/" },
      { pattern: "", direction: "in", qos: 2, localPrefix: "a/b", remotePrefix: "c/d" },
      { pattern: "x/+", direction: "out", qos: 0 },
    ],
  }]);
  assert.deepEqual(bridges(minimal), [{
    name: "b",
    urls: ["mqtt://remote:1883"],
    topics: [{ pattern: "#", direction: "out", qos: 0 }],
  }]);
  assert.equal(parseBrokerConfig("{}").bridges, undefined);
  assert.deepEqual(bridges(), []);
  // A password alone is MQTT 5's.
  assert.equal(bridges({ ...minimal, protocolVersion: 5, password: "p" })?.[0].password, "p");
});

test("parseBrokerConfig() refuses a bad bridge, naming the key", () => {
  const bad: [unknown, RegExp][] = [
    [{ ...minimal, port: 1 }, /"bridges\[0\]\.port": unknown key/],
    [{ ...minimal, name: undefined }, /"bridges\[0\]\.name": expected a non-empty string/],
    [
      { ...minimal, name: "a b" },
      /"bridges\[0\]\.name": a bridge name is one or more characters without spaces/,
    ],
    [{ ...minimal, name: "a/b" }, /"bridges\[0\]\.name"/],
    [{ ...minimal, urls: ["mqtt://x"] }, /"bridges\[0\]\.urls": give url or urls, not both/],
    [{ ...minimal, url: undefined }, /"bridges\[0\]\.url": expected url or a non-empty urls/],
    [{ ...minimal, url: undefined, urls: [] }, /"bridges\[0\]\.url": expected url or a non-empty urls/],
    [{ ...minimal, url: "http://x" }, /"bridges\[0\]\.url": Cannot use broker URL "http:\/\/x"/],
    [
      { ...minimal, url: undefined, urls: ["mqtt://a", 3] },
      /"bridges\[0\]\.urls\[1\]": expected a non-empty/,
    ],
    [{ ...minimal, protocolVersion: 6 }, /"bridges\[0\]\.protocolVersion": expected 3, 4 or 5, got 6/],
    [{ ...minimal, clientId: "" }, /"bridges\[0\]\.clientId": expected a non-empty string/],
    [{ ...minimal, localClientId: 1 }, /"bridges\[0\]\.localClientId"/],
    [{ ...minimal, localUsername: "" }, /"bridges\[0\]\.localUsername": expected a non-empty string/],
    [
      { ...minimal, startType: "sometimes" },
      /"bridges\[0\]\.startType": expected "automatic", "lazy" or "once"/,
    ],
    [{ ...minimal, threshold: 0 }, /"bridges\[0\]\.threshold"/],
    [{ ...minimal, idleTimeout: 0.5 }, /"bridges\[0\]\.idleTimeout"/],
    [{ ...minimal, password: "p" }, /"bridges\[0\]\.password": a password needs a username before MQTT 5/],
    [
      { ...minimal, tls: { ca: "ca.pem" } },
      /"bridges\[0\]\.tls": no URL of this bridge is mqtts:\/\/ or wss:\/\//,
    ],
    [{ ...minimal, url: "mqtts://x", tls: { cert: "c" } }, /"bridges\[0\]\.tls": cert and key go together/],
    [{ ...minimal, url: "mqtts://x", tls: { cafile: "c" } }, /"bridges\[0\]\.tls\.cafile": unknown key/],
    [
      { ...minimal, url: "mqtts://x", tls: { insecure: "yes" } },
      /"bridges\[0\]\.tls\.insecure": expected true/,
    ],
    [{ ...minimal, url: "mqtts://x", tls: [] }, /"bridges\[0\]\.tls": expected an object/],
    [{ ...minimal, cleanStart: 1 }, /"bridges\[0\]\.cleanStart": expected true or false/],
    [{ ...minimal, tryPrivate: "no" }, /"bridges\[0\]\.tryPrivate"/],
    [{ ...minimal, notifications: null }, /"bridges\[0\]\.notifications"/],
    [{ ...minimal, notificationsLocalOnly: 0 }, /"bridges\[0\]\.notificationsLocalOnly"/],
    [
      { ...minimal, sessionExpiryInterval: -1 },
      /"bridges\[0\]\.sessionExpiryInterval": expected a whole number/,
    ],
    [{ ...minimal, keepAlive: 65_536 }, /"bridges\[0\]\.keepAlive": expected a whole number from 0 to 65535/],
    [{ ...minimal, maxInflight: 0 }, /"bridges\[0\]\.maxInflight": expected a whole number from 1 to 65535/],
    [{ ...minimal, notificationTopic: "a/#" }, /"bridges\[0\]\.notificationTopic": not a topic name/],
    [{ ...minimal, restartTimeout: 5 }, /"bridges\[0\]\.restartTimeout": expected an object/],
    [{ ...minimal, restartTimeout: { base: 5 } }, /"bridges\[0\]\.restartTimeout\.cap": expected seconds/],
    [
      { ...minimal, restartTimeout: { base: 0, cap: 1 } },
      /"bridges\[0\]\.restartTimeout\.base": expected seconds/,
    ],
    [
      { ...minimal, restartTimeout: { base: 9, cap: 1 } },
      /"bridges\[0\]\.restartTimeout\.cap": expected at least/,
    ],
    [
      { ...minimal, restartTimeout: { base: 1, cap: 2, max: 3 } },
      /"bridges\[0\]\.restartTimeout\.max": unknown/,
    ],
    [{ ...minimal, topics: [] }, /"bridges\[0\]\.topics": .*a bridge needs at least one topic/],
    [{ ...minimal, topics: undefined }, /"bridges\[0\]\.topics"/],
    [{ ...minimal, topics: [{ pattern: "#", way: "in" }] }, /"bridges\[0\]\.topics\[0\]\.way": unknown key/],
    [{ ...minimal, topics: [{}] }, /"bridges\[0\]\.topics\[0\]\.pattern": expected a string/],
    [{ ...minimal, topics: [{ pattern: "#", direction: "up" }] }, /"bridges\[0\]\.topics\[0\]\.direction"/],
    [
      { ...minimal, topics: [{ pattern: "#", qos: 3 }] },
      /"bridges\[0\]\.topics\[0\]\.qos": expected a whole/,
    ],
    [{ ...minimal, topics: [{ pattern: "#", localPrefix: 1 }] }, /"bridges\[0\]\.topics\[0\]\.localPrefix"/],
    [
      { ...minimal, topics: [{ pattern: "a/#/b" }] },
      /"bridges\[0\]\.topics\[0\]": the pattern "a\/#\/b" is not/,
    ],
    [
      { ...minimal, topics: [{ pattern: "#", localPrefix: "+/" }] },
      /the local prefix "\+\/" must not contain/,
    ],
    [{ ...minimal, topics: [{ pattern: "#", remotePrefix: "a/#" }] }, /the remote prefix "a\/#" must not/],
    [
      { ...minimal, topics: [{ pattern: "#", remotePrefix: "a" }] },
      /the remote prefix and the pattern make "a#"/,
    ],
    [
      { ...minimal, topics: [{ pattern: "", localPrefix: "a" }] },
      /an empty pattern needs both a local and a/,
    ],
    [{ ...minimal, topics: [{ pattern: "$share/g/a" }] }, /is a shared subscription/],
  ];
  for (const [entry, pattern] of bad) {
    assert.throws(() => bridges(entry), pattern, JSON.stringify(entry));
  }
  assert.throws(() => bridges(minimal, minimal), /"bridges\[1\]\.name": another bridge is named "b"/);
  assert.throws(() => parseBrokerConfig(`{"bridges": {}}`), /"bridges": expected an array/);
  assert.throws(() => bridges(3), /"bridges\[0\]": expected an object/);
});
