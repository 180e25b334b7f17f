import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { run } from "../_helpers.ts";
import { type Mosquitto, mosquittoMissing, startMosquitto } from "../_mosquitto.ts";

const missing = mosquittoMissing();

/** Our client.ts under the runtime running this test. */
function ours(args: string[], stdin?: string): ReturnType<typeof run> {
  const script = new URL("../../client.ts", import.meta.url).pathname;
  const prefix = "Deno" in globalThis ? ["run", "-A", script] : [script];
  return run(process.execPath, [...prefix, ...args], stdin);
}

describe("client.ts pub and sub against mosquitto_pub and mosquitto_sub", { skip: missing }, () => {
  let broker: Mosquitto;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    await broker?.stop();
  });

  test("client.ts pub -l is received by mosquitto_sub", async () => {
    const port = String(broker.port);
    const sub = run("mosquitto_sub", [
      "-h",
      "127.0.0.1",
      "-p",
      port,
      "-t",
      "cli/in",
      "-q",
      "1",
      "-C",
      "3",
      "-W",
      "10",
    ]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pub = await ours(
      ["pub", "-h", "127.0.0.1", "-p", port, "-t", "cli/in", "-q", "1", "-l"],
      "a\nb\nc\n",
    );
    assert.equal(pub.code, 0, pub.stderr);
    const received = await sub;
    assert.equal(received.code, 0, received.stderr);
    assert.equal(received.stdout, "a\nb\nc\n");
  });

  test("client.ts sub -v -C prints what mosquitto_pub sends, MQTT 3.1.1 and 5", async () => {
    const port = String(broker.port);
    for (const version of ["311", "5"]) {
      const sub = ours([
        "sub",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-t",
        "cli/out/#",
        "-v",
        "-C",
        "2",
        "-W",
        "10",
        "-V",
        version,
      ]);
      await new Promise((resolve) => setTimeout(resolve, "Deno" in globalThis ? 1500 : 800));
      for (const [topic, text] of [["cli/out/1", "one"], ["cli/out/2", "two"]]) {
        const pub = await run("mosquitto_pub", [
          "-h",
          "127.0.0.1",
          "-p",
          port,
          "-t",
          topic,
          "-m",
          text,
          "-q",
          "1",
        ]);
        assert.equal(pub.code, 0, pub.stderr);
      }
      const result = await sub;
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "cli/out/1 one\ncli/out/2 two\n", `-V ${version}`);
    }
  });

  test("exit codes: 27 on a -W timeout, 1 when the connection is refused", async () => {
    const timeout = await ours([
      "sub",
      "-h",
      "127.0.0.1",
      "-p",
      String(broker.port),
      "-t",
      "quiet",
      "-W",
      "1",
    ]);
    assert.equal(timeout.code, 27);
    assert.match(timeout.stderr, /Timed out/);
    const refused = await ours(["pub", "-h", "127.0.0.1", "-p", "1", "-t", "t", "-m", "x"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Error: Cannot connect/);
  });
});
