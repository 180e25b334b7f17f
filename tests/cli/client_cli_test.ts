import { test } from "node:test";
import assert from "node:assert/strict";
import { type CliIo, EXIT_TIMEOUT, runClientCommand } from "../../src/cli/client_cli.ts";
import type { ConnectOptions } from "../../src/client/connect.ts";
import { MqttClient } from "../../src/client/mqtt_client.ts";
import { FakeBroker } from "../client/_fake_broker.ts";
import { ReasonCode } from "../../src/errors.ts";

function fakeIo(stdin = ""): CliIo & { out: string; err: string } {
  const io = {
    out: "",
    err: "",
    stdout(text: string) {
      io.out += text;
    },
    stderr(text: string) {
      io.err += text;
    },
    stdin: () => new Blob([stdin]).stream(),
    readFile: (path: string) => Promise.resolve(new TextEncoder().encode(`contents of ${path}`)),
    onInterrupt: () => () => {},
  };
  return io;
}

function via(
  broker: FakeBroker,
  seen: ConnectOptions[] = [],
): (options: ConnectOptions) => Promise<MqttClient> {
  return async (options) => {
    seen.push(options);
    const client = new MqttClient({ ...options, transport: broker.transport });
    await client.start();
    return client;
  };
}

test("pub -m publishes one message with the flags' QoS and retain, then disconnects", async () => {
  const broker = new FakeBroker();
  const seen: ConnectOptions[] = [];
  const io = fakeIo();
  const code = await runClientCommand(
    "pub",
    ["-t", "a/b", "-m", "hi", "-q", "1", "-r", "-i", "cli", "-u", "ada", "-P", "pw"],
    io,
    via(broker, seen),
  );
  assert.equal(code, 0, io.err);
  assert.equal(seen[0].clientId, "cli");
  assert.equal(seen[0].username, "ada");
  const publish = broker.received.find((p) => p.type === "publish");
  assert.ok(publish?.type === "publish");
  assert.deepEqual([publish.topic, new TextDecoder().decode(publish.payload), publish.qos, publish.retain], [
    "a/b",
    "hi",
    1,
    true,
  ]);
  assert.equal(broker.received.at(-1)?.type, "disconnect");
});

test("pub -l sends one message per line of standard input; -s sends it whole; -f a file; -n nothing", async () => {
  for (
    const [flags, stdin, payloads] of [
      [["-l"], "one\ntwo\r\nthree", ["one", "two", "three"]],
      [["-s"], "all\nof it", ["all\nof it"]],
      [["-f", "x.txt"], "", ["contents of x.txt"]],
      [["-n"], "", [""]],
    ] as [string[], string, string[]][]
  ) {
    const broker = new FakeBroker();
    const code = await runClientCommand("pub", ["-t", "t", ...flags], fakeIo(stdin), via(broker));
    assert.equal(code, 0);
    const sent = broker.received.filter((p) => p.type === "publish").map((p) =>
      p.type === "publish" ? new TextDecoder().decode(p.payload) : ""
    );
    assert.deepEqual(sent, payloads, flags.join(" "));
  }
});

test("sub -v -C prints topic and payload of each message and stops after the count", async () => {
  const broker = new FakeBroker();
  const io = fakeIo();
  const running = runClientCommand("sub", ["-t", "s/#", "-v", "-C", "2"], io, via(broker));
  await broker.until((p) => p.type === "subscribe");
  for (const [topic, text] of [["s/1", "a"], ["s/2", "b"], ["s/3", "c"]]) {
    await broker.send({
      type: "publish",
      topic,
      payload: new TextEncoder().encode(text),
      qos: 0,
      retain: false,
      dup: false,
    });
  }
  assert.equal(await running, 0);
  assert.equal(io.out, "s/1 a\ns/2 b\n");
});

test("sub -W exits with 27 after the timeout, as mosquitto_sub does", async () => {
  const broker = new FakeBroker();
  const io = fakeIo();
  const code = await runClientCommand("sub", ["-t", "quiet", "-W", "1"], io, via(broker));
  assert.equal(code, EXIT_TIMEOUT);
  assert.match(io.err, /Timed out/);
});

test("errors: bad arguments print the usage, refusals say why, both exit with 1", async () => {
  const io = fakeIo();
  assert.equal(
    await runClientCommand("pub", ["-t", "t", "-q", "7", "-m", "x"], io, via(new FakeBroker())),
    1,
  );
  assert.match(io.err, /-q takes 0, 1 or 2/);
  assert.match(io.err, /Usage:/);
  const refused = new FakeBroker();
  refused.refuse = ReasonCode.NotAuthorized;
  const io2 = fakeIo();
  assert.equal(await runClientCommand("pub", ["-t", "t", "-m", "x"], io2, via(refused)), 1);
  assert.match(io2.err, /Not authorized/);
  const io3 = fakeIo();
  assert.equal(await runClientCommand("pub", ["-t", "a/+", "-m", "x"], io3, via(new FakeBroker())), 1);
  assert.match(io3.err, /wildcard/);
  const help = fakeIo();
  assert.equal(await runClientCommand("sub", ["--help"], help, via(new FakeBroker())), 0);
  assert.match(help.out, /Usage:/);
});

test("-d prints every packet sent and received, without payloads or passwords", async () => {
  const io = fakeIo();
  const code = await runClientCommand(
    "pub",
    ["-t", "d/1", "-m", "secret-payload", "-q", "1", "-d", "-u", "ada", "-P", "hunter2"],
    io,
    via(new FakeBroker()),
  );
  assert.equal(code, 0, io.err);
  assert.match(io.err, /Client sending CONNECT \(p5, c1, k60, id '[^']+', u 'ada'\)/);
  assert.match(io.err, /Client received CONNACK \(sp0, rc0x0\)/);
  assert.match(io.err, /Client sending PUBLISH \(d0, q1, r0, m1, 'd\/1', \.\.\. \(14 bytes\)\)/);
  assert.match(io.err, /Client received PUBACK \(m1, rc0x0\)/);
  assert.doesNotMatch(io.err, /secret-payload|hunter2/);
});
