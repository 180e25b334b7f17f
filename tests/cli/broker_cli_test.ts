import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { BROKER_USAGE, parseBrokerArgs } from "../../src/cli/broker_cli.ts";
import { connect } from "../../src/client/connect.ts";
import { ReasonCode } from "../../src/errors.ts";
import { startBroker } from "../_broker_process.ts";
import { freePort } from "../_mosquitto.ts";
import { rawConnect } from "../_raw_client.ts";
import { take } from "../_helpers.ts";

test("broker arguments", () => {
  assert.deepEqual(parseBrokerArgs([]), {
    host: "127.0.0.1",
    port: 1883,
    allowAnonymous: true,
    verbose: false,
  });
  assert.deepEqual(parseBrokerArgs(["--host", "::1", "--port", "0", "--allow-anonymous", "false", "-v"]), {
    host: "::1",
    port: 0,
    allowAnonymous: false,
    verbose: true,
  });
  assert.throws(() => parseBrokerArgs(["--port", "99999"]), /--port/);
  assert.throws(() => parseBrokerArgs(["--allow-anonymous", "maybe"]), /true or false/);
  assert.throws(() => parseBrokerArgs(["--nope"]), /Unknown option "--nope"/);
  assert.deepEqual(
    parseBrokerArgs([
      "--tls-port",
      "8883",
      "--cert",
      "c.pem",
      "--key",
      "k.pem",
      "--persistence",
      "sqlite:b.db",
    ]),
    {
      host: "127.0.0.1",
      port: 1883,
      allowAnonymous: true,
      verbose: false,
      tlsPort: 8883,
      cert: "c.pem",
      key: "k.pem",
      persistence: { sqlite: "b.db" },
      persistenceGiven: true,
    },
  );
  assert.equal(parseBrokerArgs(["--persistence", "memory"]).persistence, undefined);
  assert.throws(
    () => parseBrokerArgs(["--persistence", "disk"]),
    /--persistence takes "memory" or "sqlite:PATH"/,
  );
  assert.throws(() => parseBrokerArgs(["--tls-port", "8883"]), /--tls-port needs --cert and --key/);
  assert.throws(() => parseBrokerArgs(["--cert", "c.pem"]), /need --tls-port/);
});

test("broker arguments: --max-keepalive takes 0 to 65535 seconds, as mosquitto's max_keepalive", () => {
  assert.equal(parseBrokerArgs(["--max-keepalive", "30"]).maxKeepAlive, 30);
  assert.equal(parseBrokerArgs(["--max-keepalive", "0"]).maxKeepAlive, 0);
  assert.equal(parseBrokerArgs(["--max-keepalive", "65535"]).maxKeepAlive, 65_535);
  assert.equal(parseBrokerArgs([]).maxKeepAlive, undefined);
  for (const bad of ["65536", "-1", "1.5", "ten", ""]) {
    assert.throws(
      () => parseBrokerArgs(["--max-keepalive", bad]),
      /--max-keepalive takes 0 to 65535 seconds/,
    );
  }
  assert.throws(() => parseBrokerArgs(["--max-keepalive"]), /--max-keepalive needs a value/);
  assert.match(BROKER_USAGE, /--max-keepalive SECONDS/);
});

test("broker.ts --max-keepalive overrides the file's limits.maxKeepAlive: MQTT 5 clients get it as Server Keep Alive, 3.1.1 ones asking for more are refused [MQTT-3.2.2-21]", async () => {
  const dir = mkdtempSync(join(tmpdir(), "config-"));
  const file = join(dir, "broker.json");
  const port = await freePort();
  writeFileSync(
    file,
    JSON.stringify({ listeners: [{ port }], limits: { maxKeepAlive: 100 }, sysInterval: 0 }),
  );
  const broker = await startBroker(["--config", file, "--max-keepalive", "20"]);
  try {
    const v5 = await rawConnect(port, { clientId: "v5", keepAlive: 60 }, 5);
    assert.equal(v5.connack.properties?.serverKeepAlive, 20, broker.log());
    // No maximum packet size configured: the default, 1 MiB, is advertised.
    assert.equal(v5.connack.properties?.maximumPacketSize, 1_048_576);
    v5.close();
    const v4 = await rawConnect(port, { clientId: "v4", keepAlive: 60 }, 4);
    assert.equal(v4.connack.reasonCode, ReasonCode.ClientIdentifierNotValid, broker.log());
    v4.close();
  } finally {
    broker.child.kill("SIGTERM");
    await broker.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("broker arguments: --max-packet-size takes 0 or 2 to 268435460 bytes", () => {
  assert.equal(parseBrokerArgs(["--max-packet-size", "4096"]).maxPacketSize, 4096);
  assert.equal(parseBrokerArgs(["--max-packet-size", "0"]).maxPacketSize, 0);
  assert.equal(parseBrokerArgs([]).maxPacketSize, undefined);
  for (const bad of ["1", "-5", "1e3", "268435461", "big"]) {
    assert.throws(
      () => parseBrokerArgs(["--max-packet-size", bad]),
      /--max-packet-size takes 0 \(none\) or 2/,
    );
  }
  assert.match(BROKER_USAGE, /--max-packet-size BYTES/);
});

test("broker.ts --max-packet-size overrides the file's limits.maximumPacketSize and is advertised in CONNACK", async () => {
  const dir = mkdtempSync(join(tmpdir(), "config-"));
  const file = join(dir, "broker.json");
  const port = await freePort();
  writeFileSync(
    file,
    JSON.stringify({ listeners: [{ port }], limits: { maximumPacketSize: 100_000 }, sysInterval: 0 }),
  );
  const broker = await startBroker(["--config", file, "--max-packet-size", "4096"]);
  try {
    const v5 = await rawConnect(port, { clientId: "v5" }, 5);
    assert.equal(v5.connack.properties?.maximumPacketSize, 4096, broker.log());
    // One byte over: refused from the fixed header with DISCONNECT 0x95.
    // 1 + 2 bytes of fixed header, 3 of topic, 1 of property length and 4,090 of payload: 4,097 bytes.
    const payload = new Uint8Array(4090);
    await v5.send({ type: "publish", topic: "t", payload, qos: 0, retain: false, dup: false });
    assert.deepEqual(await v5.next(), { type: "disconnect", reasonCode: ReasonCode.PacketTooLarge });
    await v5.ended;
  } finally {
    broker.child.kill("SIGTERM");
    await broker.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("broker.ts starts, says where it listens, serves a client and exits 0 on SIGTERM", async () => {
  const port = await freePort();
  const script = new URL("../../broker.ts", import.meta.url).pathname;
  const args = "Deno" in globalThis ? ["run", "-A", script] : [script];
  const child = spawn(process.execPath, [...args, "--port", String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stderr.on("data", (d) => log += d);
  const exited = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? -1)));
  try {
    for (let i = 0; i < 100 && !log.includes("listening on"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(
      log,
      new RegExp(
        `listening on mqtt://127\\.0\\.0\\.1:${port} \\(state in memory, anonymous clients allowed\\)`,
      ),
    );
    const client = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false, clientId: "probe" });
    const subscription = await client.subscribe("t");
    await client.publish("t", "through the CLI broker");
    for await (const message of subscription) {
      assert.equal(message.text(), "through the CLI broker");
      break;
    }
    await client.close();
  } finally {
    child.kill("SIGTERM");
  }
  const code = await exited;
  // Deno's node:child_process reports a child it signalled as killed even when the child exits 0 (checked with
  // a shell that traps SIGTERM), so only the other runtimes can check the code.
  if (!("Deno" in globalThis)) assert.equal(code, 0, log);
  assert.match(log, /Shutting down/);
  assert.match(log, /Client "probe" connected/);
});

test("broker.ts passwd writes a file the broker's --password-file accepts", async () => {
  const dir = mkdtempSync(join(tmpdir(), "passwd-"));
  const file = join(dir, "passwords");
  const script = new URL("../../broker.ts", import.meta.url).pathname;
  const prefix = "Deno" in globalThis ? ["run", "-A", script] : [script];
  const runSync = (args: string[]) => spawnSync(process.execPath, [...prefix, ...args], { encoding: "utf8" });
  assert.equal(runSync(["passwd", "-c", file, "ada", "pw1"]).status, 0);
  assert.equal(runSync(["passwd", file, "bob", "pw2"]).status, 0);
  assert.equal(runSync(["passwd", file, "ada", "pw3"]).status, 0);
  assert.equal(runSync(["passwd", "-D", file, "bob"]).status, 0);
  const lines = readFileSync(file, "utf8").trim().split("\n");
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^ada:\$7\$101\$/);
  const port = await freePort();
  const child = spawn(process.execPath, [
    ...prefix,
    "--port",
    String(port),
    "--password-file",
    file,
    "--allow-anonymous",
    "false",
  ], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stderr.on("data", (d) => log += d);
  const exited = new Promise((resolve) => child.on("close", resolve));
  try {
    for (let i = 0; i < 100 && !log.includes("listening on"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const ok = await connect(`mqtt://ada:pw3@127.0.0.1:${port}`, { reconnect: false });
    await ok.close();
    await assert.rejects(
      connect(`mqtt://ada:pw1@127.0.0.1:${port}`, { reconnect: false }),
      /Bad user name or password/,
    );
    await assert.rejects(connect(`mqtt://127.0.0.1:${port}`, { reconnect: false }), /Not authorized/);
    assert.doesNotMatch(log, /pw3|pw1/);
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("configuration files: defaults, every listener type, and errors that name the key", async () => {
  const { parseBrokerConfig } = await import("../../src/cli/broker_config.ts");
  const config = parseBrokerConfig(JSON.stringify({
    listeners: [{ type: "tcp", port: 1883 }, { type: "ws", port: 9001 }, {
      type: "wss",
      port: 9002,
      cert: "c",
      key: "k",
    }, { type: "http", host: "0.0.0.0", port: 8080 }],
    allowAnonymous: false,
    limits: {
      maxConnections: 10,
      maximumPacketSize: 1024,
      maxKeepAlive: 300,
      persistentSessionExpiryInterval: 0xfffffffe,
    },
    logLevel: "warn",
  }));
  assert.deepEqual(config.listeners, [
    { type: "tcp", host: "127.0.0.1", port: 1883 },
    { type: "ws", host: "127.0.0.1", port: 9001, path: "/mqtt" },
    { type: "wss", host: "127.0.0.1", port: 9002, path: "/mqtt", cert: "c", key: "k" },
    { type: "http", host: "0.0.0.0", port: 8080, path: "/mqtt" },
  ]);
  assert.deepEqual(config.limits, {
    maxConnections: 10,
    maximumPacketSize: 1024,
    maxKeepAlive: 300,
    persistentSessionExpiryInterval: 0xfffffffe,
  });
  assert.deepEqual(parseBrokerConfig("{}").listeners, [{ type: "tcp", host: "127.0.0.1", port: 1883 }]);
  assert.equal(parseBrokerConfig("{}").persistence, undefined);
  assert.equal(parseBrokerConfig(`{"queueQoS0": true}`).queueQoS0, true);
  const ids = parseBrokerConfig(`{"allowZeroLengthClientId": false, "autoIdPrefix": "edge-"}`);
  assert.deepEqual([ids.allowZeroLengthClientId, ids.autoIdPrefix], [false, "edge-"]);
  assert.equal(parseBrokerConfig(`{"persistence": "memory"}`).persistence, undefined);
  assert.deepEqual(parseBrokerConfig(`{"persistence": "sqlite:/var/lib/b.db"}`).persistence, {
    sqlite: "/var/lib/b.db",
  });
  assert.equal(
    parseBrokerConfig(`{"listeners": [{"port": 1, "maxConnections": 5}]}`).listeners[0].maxConnections,
    5,
  );
  const bad: [unknown, RegExp][] = [
    [{ listeners: [{ type: "udp", port: 1 }] }, /"listeners\[0\]\.type"/],
    [{ listeners: [{ port: 70000 }] }, /"listeners\[0\]\.port"/],
    [{ listeners: [{ type: "tls", port: 1 }] }, /"listeners\[0\]\.cert"/],
    [{ limits: { maxConections: 1 } }, /"limits\.maxConections": unknown key/],
    [{ limits: { maxKeepAlive: 65_536 } }, /"limits\.maxKeepAlive": expected a whole number from 0 to 65535/],
    [{ limits: { maximumPacketSize: 1 } }, /"limits\.maximumPacketSize": expected 0 \(no limit\) or 2/],
    [{ logLevel: "loud" }, /"logLevel"/],
    [{ queueQoS0: "yes" }, /"queueQoS0": expected true or false/],
    [{ allowZeroLengthClientId: 0 }, /"allowZeroLengthClientId": expected true or false/],
    [{ autoIdPrefix: "" }, /"autoIdPrefix": expected a non-empty string/],
    [{ extra: true }, /"extra": unknown key/],
    [{ persistence: "redis:x" }, /"persistence": it takes "memory" or "sqlite:PATH"/],
    [{ persistence: "sqlite:" }, /"persistence"/],
    [{ listeners: [{ port: 1, maxConnections: -1 }] }, /"listeners\[0\]\.maxConnections"/],
  ];
  for (const [value, pattern] of bad) assert.throws(() => parseBrokerConfig(JSON.stringify(value)), pattern);
  assert.throws(() => parseBrokerConfig("{ nope"), /not JSON/);
});

test("broker.ts --config with a bad file says why, exits 1 and starts nothing", () => {
  const dir = mkdtempSync(join(tmpdir(), "config-"));
  const file = join(dir, "broker.json");
  writeFileSync(file, JSON.stringify({ listeners: [{ port: "x" }] }));
  const script = new URL("../../broker.ts", import.meta.url).pathname;
  const prefix = "Deno" in globalThis ? ["run", "-A", script] : [script];
  const result = spawnSync(process.execPath, [...prefix, "--config", file], {
    encoding: "utf8",
    timeout: 20_000,
  });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /Invalid configuration at "listeners\[0\]\.port"/);
  assert.doesNotMatch(result.stderr, /listening/);
});

test("broker.ts --config starts every listener of the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "config-"));
  const file = join(dir, "broker.json");
  const tcpPort = await freePort();
  const wsPort = await freePort();
  writeFileSync(
    file,
    JSON.stringify({
      listeners: [{ type: "tcp", port: tcpPort }, { type: "ws", port: wsPort }],
      sysInterval: 0,
    }),
  );
  const script = new URL("../../broker.ts", import.meta.url).pathname;
  const prefix = "Deno" in globalThis ? ["run", "-A", script] : [script];
  const child = spawn(process.execPath, [...prefix, "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (d) => log += d);
  const exited = new Promise((resolve) => child.on("close", resolve));
  try {
    for (let i = 0; i < 100 && !log.includes("listening on"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(
      log,
      new RegExp(`mqtt://127\\.0\\.0\\.1:${tcpPort} and ws://127\\.0\\.0\\.1:${wsPort}/mqtt`),
    );
    const a = await connect(`ws://127.0.0.1:${wsPort}/mqtt`, { reconnect: false });
    const b = await connect(`mqtt://127.0.0.1:${tcpPort}`, { reconnect: false });
    const subscription = await a.subscribe("cfg");
    await b.publish("cfg", "across listeners");
    for await (const message of subscription) {
      assert.equal(message.text(), "across listeners");
      break;
    }
    await a.close();
    await b.close();
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--log-format json: one JSON object a line, with the client and what happened", async () => {
  const broker = await startBroker(["--port", "0", "--log-format", "json"]);
  try {
    const lines = () => broker.log().split("\n").filter((line) => line !== "");
    const started = lines().map((line) => JSON.parse(line)).find((record) => record.event === "listening");
    assert.ok(started !== undefined, broker.log());
    const port = Number(/mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(started.message)?.[1]);
    const client = await connect(`mqtt://127.0.0.1:${port}`, { clientId: "json-1", reconnect: false });
    await client.close();
    for (let i = 0; i < 100 && !broker.log().includes('"disconnected"'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const records = lines().map((line) => JSON.parse(line));
    for (const record of records) {
      assert.ok(!Number.isNaN(Date.parse(record.time)), JSON.stringify(record));
      assert.ok(["debug", "info", "warn", "error"].includes(record.level), JSON.stringify(record));
      assert.equal(typeof record.message, "string");
    }
    const about = records.filter((r) => r.client === "json-1").map((r) => r.event);
    assert.deepEqual(about, ["connected", "disconnected"]);
  } finally {
    broker.child.kill("SIGTERM");
    await broker.exited;
  }
  assert.throws(() => parseBrokerArgs(["--log-format", "xml"]), /--log-format takes text or json/);
});

test("broker.ts with queueQoS0 (mosquitto's queue_qos0_messages) queues QoS 0 for an offline persistent session", async () => {
  const dir = mkdtempSync(join(tmpdir(), "config-"));
  const file = join(dir, "broker.json");
  const port = await freePort();
  writeFileSync(file, JSON.stringify({ listeners: [{ port }], queueQoS0: true, sysInterval: 0 }));
  const broker = await startBroker(["--config", file]);
  try {
    const url = `mqtt://127.0.0.1:${port}`;
    const options = { clientId: "away", protocolVersion: 4, cleanStart: false, reconnect: false } as const;
    let away = await connect(url, options);
    await away.subscribe("q0/#", { qos: 1 });
    await away.close();
    const publisher = await connect(url, { reconnect: false });
    await publisher.publish("q0/while-away", "kept", { qos: 0 });
    await publisher.close();
    away = await connect(url, options);
    const subscription = await away.subscribe("q0/#", { qos: 1 });
    const [message] = await take(subscription, 1);
    assert.equal(message.text(), "kept", broker.log());
    await away.close();
  } finally {
    broker.child.kill("SIGTERM");
    await broker.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
