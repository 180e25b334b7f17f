import { test } from "node:test";
import assert from "node:assert/strict";
import {
  parseSharedSubscription,
  topicFilterProblem,
  topicMatches,
  topicNameProblem,
  validateTopicFilter,
  validateTopicName,
} from "../../src/codec/topic.ts";
import { MqttError, ReasonCode } from "../../src/errors.ts";

// [filter, topic, matches]
const MATCHES: [string, string, boolean][] = [
  ["a/b", "a/b", true],
  ["a/b", "a/c", false],
  ["a/b", "a", false],
  ["a", "a/b", false],
  ["ab", "a", false],
  ["a", "ab", false],
  ["sport/tennis/player1/#", "sport/tennis/player1", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
  ["sport/#", "sport", true],
  ["#", "sport", true],
  ["#", "a/b/c", true],
  ["#", "/", true],
  ["sport/tennis/+", "sport/tennis/player1", true],
  ["sport/tennis/+", "sport/tennis/player1/ranking", false],
  ["sport/+", "sport", false],
  ["sport/+", "sport/", true],
  ["+/+", "/finance", true],
  ["/+", "/finance", true],
  ["+", "/finance", false],
  ["+", "finance", true],
  ["a/+/c", "a//c", true],
  ["a/", "a/", true],
  ["a/", "a", false],
  ["+/tennis/#", "sport/tennis", true],
  ["+/tennis/#", "sport/tennis/x/y", true],
  ["a/+/#", "a", false],
  ["a/+/#", "a/b", true],
  // [MQTT-4.7.2-1]: a leading wildcard never matches a topic starting with '$'.
  ["#", "$SYS/uptime", false],
  ["+/monitor/Clients", "$SYS/monitor/Clients", false],
  ["$SYS/#", "$SYS/monitor/Clients", true],
  ["$SYS/monitor/+", "$SYS/monitor/Clients", true],
  // Case and characters are compared exactly, without normalization [MQTT-4.7.3-4].
  ["ACCOUNTS", "Accounts", false],
  ["caf\u00e9", "cafe\u0301", false],
  ["\u{1F600}/+", "\u{1F600}/x", true],
  // Shared subscriptions match what their inner filter matches.
  ["$share/g/a/+", "a/b", true],
  ["$share/g/#", "x/y", true],
  ["$share/g/a", "b", false],
];

for (const [filter, topic, expected] of MATCHES) {
  test(`topicMatches("${filter}", "${topic}") is ${expected}`, () => {
    assert.equal(topicMatches(filter, topic), expected);
  });
}

test("topic names: valid ones pass", () => {
  for (const name of ["a", "/", "a/b", "a//b", "$SYS/x", " ", "\u{1F600}"]) {
    assert.equal(topicNameProblem(name), undefined, name);
    validateTopicName(name);
  }
});

test("topic names: wildcards [MQTT-4.7.0-1], empty [MQTT-4.7.3-1], U+0000 [MQTT-4.7.3-2] and length [MQTT-4.7.3-3] are refused", () => {
  const cases: [string, string][] = [
    ["a/+", "MQTT-4.7.0-1"],
    ["#", "MQTT-4.7.0-1"],
    ["a#", "MQTT-4.7.0-1"],
    ["", "MQTT-4.7.3-1"],
    ["a\0b", "MQTT-4.7.3-2"],
    ["\u00e9".repeat(40_000), "MQTT-4.7.3-3"],
  ];
  for (const [name, id] of cases) {
    assert.match(topicNameProblem(name) ?? "", new RegExp(`\\[${id}\\]`), JSON.stringify(name.slice(0, 10)));
    assert.throws(
      () => validateTopicName(name),
      (error) => error instanceof MqttError && error.reasonCode === ReasonCode.TopicNameInvalid,
    );
  }
  assert.equal(topicNameProblem("a".repeat(65_535)), undefined);
  assert.notEqual(topicNameProblem("a".repeat(65_536)), undefined);
});

test("topic filters: valid ones pass", () => {
  for (
    const filter of [
      "#",
      "+",
      "a/#",
      "+/+",
      "/+",
      "a/+/b",
      "+/#",
      "$SYS/#",
      "$share/g/a/#",
      "$share/g/+",
      "a//b",
    ]
  ) {
    assert.equal(topicFilterProblem(filter), undefined, filter);
    validateTopicFilter(filter);
  }
});

test("topic filters: misplaced '#' [MQTT-4.7.1-1] and '+' [MQTT-4.7.1-2] are refused", () => {
  const cases: [string, string][] = [
    ["a/#/b", "MQTT-4.7.1-1"],
    ["a#", "MQTT-4.7.1-1"],
    ["#/", "MQTT-4.7.1-1"],
    ["##", "MQTT-4.7.1-1"],
    ["a+", "MQTT-4.7.1-2"],
    ["+a", "MQTT-4.7.1-2"],
    ["a/b+/c", "MQTT-4.7.1-2"],
    ["", "MQTT-4.7.3-1"],
    ["a\0", "MQTT-4.7.3-2"],
  ];
  for (const [filter, id] of cases) {
    assert.match(topicFilterProblem(filter) ?? "", new RegExp(`\\[${id}\\]`), filter);
    assert.throws(
      () => validateTopicFilter(filter),
      (error) => error instanceof MqttError && error.reasonCode === ReasonCode.TopicFilterInvalid,
    );
  }
});

test("shared subscriptions: a share name without wildcards [MQTT-4.8.2-1] and a filter [MQTT-4.8.2-2]", () => {
  assert.match(topicFilterProblem("$share//a") ?? "", /MQTT-4\.8\.2-1/);
  assert.match(topicFilterProblem("$share/g+/a") ?? "", /MQTT-4\.8\.2-1/);
  assert.match(topicFilterProblem("$share/#/a") ?? "", /MQTT-4\.8\.2-1/);
  assert.match(topicFilterProblem("$share/g") ?? "", /MQTT-4\.8\.2-2/);
  assert.match(topicFilterProblem("$share/g/") ?? "", /MQTT-4\.8\.2-2/);
  assert.match(topicFilterProblem("$share/g/a/#/b") ?? "", /MQTT-4\.7\.1-1/);
  assert.deepEqual(parseSharedSubscription("$share/workers/jobs/#"), { group: "workers", filter: "jobs/#" });
  assert.deepEqual(parseSharedSubscription("$share/g/a/b/c"), { group: "g", filter: "a/b/c" });
  assert.equal(parseSharedSubscription("jobs/#"), undefined);
  assert.equal(parseSharedSubscription("$share/g"), undefined);
  assert.equal(parseSharedSubscription("$share//a"), undefined);
  assert.equal(parseSharedSubscription("$shared/g/a"), undefined);
});
