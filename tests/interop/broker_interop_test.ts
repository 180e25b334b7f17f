/**
 * Real clients against our broker as users run it (`broker.ts`, a child process of the runtime under test):
 * persistent sessions of MQTT.js (3.1.1 and 5) and mosquitto_sub across a `kill -9` with SQLite persistence;
 * wills of MQTT.js and mosquitto_sub; a password file written by mosquitto_passwd and an ACL file; `$SYS` read
 * by mosquitto_sub.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { startBroker } from "../_broker_process.ts";
import { freePort, mosquittoMissing } from "../_mosquitto.ts";
import { run } from "../_helpers.ts";

const missing = mosquittoMissing();

const mosq = (port: number, ...args: string[]) => ["-h", "127.0.0.1", "-p", String(port), ...args];

test(
  "broker.ts --persistence sqlite: persistent sessions of MQTT.js 3.1.1 and 5 and mosquitto_sub survive kill -9",
  {
    skip: missing,
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "broker-interop-"));
    const port = await freePort();
    const args = ["--port", String(port), "--persistence", `sqlite:${join(dir, "broker.db")}`];
    let broker = await startBroker(args);
    try {
      assert.match(broker.log(), /state in sqlite:/);
      const url = `mqtt://127.0.0.1:${port}`;
      // Three persistent sessions subscribe and go away.
      for (const protocolVersion of [4, 5] as const) {
        const js = await mqtt.connectAsync(url, {
          protocolVersion,
          clientId: `js${protocolVersion}`,
          clean: false,
          reconnectPeriod: 0,
          properties: protocolVersion === 5 ? { sessionExpiryInterval: 3600 } : undefined,
        });
        await js.subscribeAsync("persist/#", { qos: protocolVersion === 5 ? 1 : 2 });
        await js.endAsync();
      }
      const subscribed = await run(
        "mosquitto_sub",
        mosq(port, "-c", "-i", "mosq", "-q", "1", "-t", "persist/#", "-E"),
      );
      assert.equal(subscribed.code, 0, subscribed.stderr);

      // Eleven messages, each acknowledged by the broker before the next.
      const publisher = await mqtt.connectAsync(url, { clientId: "publisher", reconnectPeriod: 0 });
      for (let i = 1; i <= 10; i++) await publisher.publishAsync("persist/js", `m${i}`, { qos: 1 });
      await publisher.endAsync();
      const pub = await run("mosquitto_pub", mosq(port, "-q", "2", "-t", "persist/mosq", "-m", "m11"));
      assert.equal(pub.code, 0, pub.stderr);

      broker.child.kill("SIGKILL");
      await broker.exited;
      broker = await startBroker(args);
      assert.match(broker.log(), /Restored 3 sessions/);

      const expected = Array.from({ length: 11 }, (_, i) => `m${i + 1}`);
      for (const protocolVersion of [4, 5] as const) {
        const received: string[] = [];
        let done!: () => void;
        const all = new Promise<void>((resolve) => done = resolve);
        const js = mqtt.connect(url, {
          protocolVersion,
          clientId: `js${protocolVersion}`,
          clean: false,
          reconnectPeriod: 0,
          properties: protocolVersion === 5 ? { sessionExpiryInterval: 3600 } : undefined,
        });
        let sessionPresent: boolean | undefined;
        js.on("connect", (connack) => sessionPresent = connack.sessionPresent);
        js.on("message", (_topic, payload) => {
          received.push(String(payload));
          if (received.length === expected.length) done();
        });
        const timeout = setTimeout(done, 10_000);
        await all;
        clearTimeout(timeout);
        assert.equal(sessionPresent, true, `MQTT.js ${protocolVersion}: session present`);
        assert.deepEqual(received, expected, `MQTT.js ${protocolVersion}`);
        await js.endAsync();
      }
      const resumed = await run(
        "mosquitto_sub",
        mosq(port, "-c", "-i", "mosq", "-q", "1", "-t", "persist/#", "-C", "11", "-W", "10"),
      );
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.deepEqual(resumed.stdout.trim().split("\n"), expected);
    } finally {
      broker.child.kill("SIGKILL");
      await broker.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("broker.ts with a mosquitto_passwd file and an ACL: MQTT.js and mosquitto clients, wills, and $SYS", {
  skip: missing,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "broker-interop-"));
  const passwords = join(dir, "passwords");
  const acl = join(dir, "acl");
  const made = await run("mosquitto_passwd", ["-c", "-b", passwords, "ada", "s3cret"]);
  assert.equal(made.code, 0, made.stderr);
  writeFileSync(
    acl,
    [
      "topic read $SYS/#",
      "topic readwrite will/#",
      "user ada",
      "topic readwrite ada/#",
      "topic readwrite will/#",
      "",
    ].join("\n"),
  );
  const port = await freePort();
  const broker = await startBroker(["--port", String(port), "--password-file", passwords, "--acl-file", acl]);
  const url = `mqtt://127.0.0.1:${port}`;
  try {
    // A wrong password is refused, for mosquitto_pub and MQTT.js alike; the log does not show it.
    const wrong = await run("mosquitto_pub", mosq(port, "-u", "ada", "-P", "nope", "-t", "ada/x", "-m", "x"));
    assert.notEqual(wrong.code, 0);
    await assert.rejects(
      mqtt.connectAsync(url, { username: "ada", password: "nope", reconnectPeriod: 0, protocolVersion: 5 }),
    );
    assert.doesNotMatch(broker.log(), /nope|s3cret/);

    // ada may use ada/#, not other/#.
    const ada = await mqtt.connectAsync(url, {
      username: "ada",
      password: "s3cret",
      protocolVersion: 5,
      clientId: "ada",
      reconnectPeriod: 0,
    });
    const granted = await ada.subscribeAsync("ada/#", { qos: 1 });
    assert.deepEqual(granted.map((g) => g.qos), [1]);
    // SUBACK 0x87, which MQTT.js turns into an error.
    await assert.rejects(ada.subscribeAsync("other/#", { qos: 1 }), /Not authorized/);
    await assert.rejects(ada.publishAsync("other/x", "no", { qos: 1 }), /135|Not authorized/i);
    const echo = new Promise<string>((resolve) => ada.once("message", (t, p) => resolve(`${t} ${p}`)));
    const allowed = await run(
      "mosquitto_pub",
      mosq(port, "-u", "ada", "-P", "s3cret", "-t", "ada/x", "-m", "hi", "-q", "1"),
    );
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(await echo, "ada/x hi");
    await ada.endAsync();

    // Wills: MQTT.js's connection dies, then mosquitto_sub's; each will reaches the other kind of client.
    const willWatcher = run("mosquitto_sub", mosq(port, "-t", "will/#", "-v", "-C", "1", "-W", "10"));
    await new Promise((r) => setTimeout(r, 400));
    const dying = await mqtt.connectAsync(url, {
      reconnectPeriod: 0,
      will: { topic: "will/js", payload: Buffer.from("js gone"), qos: 1, retain: false },
    });
    dying.stream.destroy();
    const got = await willWatcher;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, "will/js js gone\n");

    const watcher = await mqtt.connectAsync(url, { reconnectPeriod: 0, protocolVersion: 4 });
    await watcher.subscribeAsync("will/#", { qos: 1 });
    const willArrived = new Promise<string>((resolve) =>
      watcher.once("message", (t, p) => resolve(`${t} ${p}`))
    );
    const mosquittoSub = spawn(
      "mosquitto_sub",
      mosq(port, "-t", "will/none", "--will-topic", "will/mosq", "--will-payload", "mosq gone"),
    );
    await new Promise((r) => setTimeout(r, 400));
    mosquittoSub.kill("SIGKILL");
    assert.equal(await willArrived, "will/mosq mosq gone");
    await watcher.endAsync();

    // $SYS, as mosquitto_sub reads it from mosquitto.
    const sys = await run(
      "mosquitto_sub",
      mosq(
        port,
        "-t",
        "$SYS/broker/version",
        "-t",
        "$SYS/broker/clients/connected",
        "-v",
        "-C",
        "2",
        "-W",
        "10",
      ),
    );
    assert.equal(sys.code, 0, sys.stderr);
    assert.match(sys.stdout, /^\$SYS\/broker\/version @x\/mqtt \S+$/m);
    assert.match(sys.stdout, /^\$SYS\/broker\/clients\/connected \d+$/m);
  } finally {
    broker.child.kill("SIGKILL");
    await broker.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
