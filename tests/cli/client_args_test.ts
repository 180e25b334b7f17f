import { test } from "node:test";
import assert from "node:assert/strict";
import { parseClientArgs, UsageError } from "../../src/cli/client_args.ts";

test("pub: mosquitto_pub's flags", () => {
  const args = parseClientArgs("pub", [
    "-h",
    "127.0.0.1",
    "-p",
    "1884",
    "-t",
    "sensors/1",
    "-m",
    "21.5",
    "-q",
    "1",
    "-r",
    "-i",
    "me",
    "-u",
    "ada",
    "-P",
    "pw",
    "-k",
    "30",
    "-V",
    "311",
    "--will-topic",
    "w",
    "--will-payload",
    "gone",
    "--will-qos",
    "2",
    "--will-retain",
  ]);
  assert.equal(args.url, "mqtt://127.0.0.1:1884");
  assert.deepEqual(args.topics, ["sensors/1"]);
  assert.deepEqual(args.payload, { kind: "message", text: "21.5" });
  assert.equal(args.qos, 1);
  assert.equal(args.retain, true);
  assert.equal(args.clientId, "me");
  assert.equal(args.username, "ada");
  assert.equal(args.password, "pw");
  assert.equal(args.keepAlive, 30);
  assert.equal(args.protocolVersion, 4);
  assert.deepEqual(args.will, { topic: "w", payload: "gone", qos: 2, retain: true });
});

test("sub: several filters, -v -N -C -W, a URL with credentials, TLS by flag", () => {
  const args = parseClientArgs("sub", [
    "-L",
    "mqtts://u:p@broker:8884",
    "-t",
    "a/#",
    "-t",
    "b",
    "-v",
    "-N",
    "-C",
    "3",
    "-W",
    "10",
  ]);
  assert.equal(args.url, "mqtts://u:p@broker:8884");
  assert.equal(args.username, "u");
  assert.equal(args.password, "p");
  assert.deepEqual(args.topics, ["a/#", "b"]);
  assert.deepEqual([args.verbose, args.noNewline, args.count, args.timeoutSeconds], [true, true, 3, 10]);
  assert.equal(parseClientArgs("sub", ["-t", "x", "--cafile", "ca.pem"]).url, "mqtts://localhost:8883");
  assert.equal(parseClientArgs("sub", ["-t", "x", "-h", "::1"]).url, "mqtt://[::1]:1883");
});

test("-D sets MQTT 5 properties", () => {
  const args = parseClientArgs("pub", [
    "-t",
    "t",
    "-n",
    "-D",
    "connect",
    "session-expiry-interval",
    "60",
    "-D",
    "publish",
    "user-property",
    "k",
    "v",
    "-D",
    "publish",
    "content-type",
    "text/plain",
    "-D",
    "publish",
    "message-expiry-interval",
    "5",
  ]);
  assert.deepEqual(args.payload, { kind: "null" });
  assert.equal(args.connectProperties.sessionExpiryInterval, 60);
  assert.deepEqual(args.publishProperties, {
    userProperties: [["k", "v"]],
    contentType: "text/plain",
    messageExpiryInterval: 5,
  });
  assert.throws(
    () => parseClientArgs("pub", ["-t", "t", "-n", "-V", "311", "-D", "publish", "content-type", "x"]),
    /-V 5/,
  );
});

test("bad arguments are usage errors that say what is wrong", () => {
  const cases: [string[], RegExp][] = [
    [["-m", "x"], /-t/],
    [["-t", "a"], /needs one of -m/],
    [["-t", "a", "-m", "x", "-n"], /only one/],
    [["-t", "a", "-m", "x", "-q", "3"], /0, 1 or 2/],
    [["-t", "a", "-m", "x", "-p", "70000"], /65535/],
    [["-t", "a", "-m", "x", "-V", "4"], /31, 311 or 5/],
    [["-t", "a", "-m", "x", "--frobnicate"], /Unknown option "--frobnicate"/],
    [["-t", "a", "-m"], /-m needs a value/],
    [["-t", "a", "-t", "b", "-m", "x"], /exactly one/],
    [["-t", "a", "-m", "x", "-L", "http://h"], /scheme/],
    [["-t", "a", "-m", "x", "--cert", "c.pem"], /--cert and --key/],
  ];
  for (const [argv, pattern] of cases) {
    assert.throws(
      () => parseClientArgs("pub", argv),
      (e) => e instanceof UsageError && pattern.test(e.message),
      argv.join(" "),
    );
  }
  assert.throws(() => parseClientArgs("sub", ["-t", "a", "-m", "x"]), UsageError);
});
