import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseMosquittoConf } from "../../src/cli/mosquitto_conf.ts";
import { connect } from "../../src/client/connect.ts";
import { startBroker } from "../_broker_process.ts";
import { freePort, mosquittoMissing } from "../_mosquitto.ts";
import { settledWithin } from "../_helpers.ts";

const certs = new URL("../_certs", import.meta.url).pathname;

function fixture(port: number, remotePort: number): string {
  return readFileSync(new URL("../fixtures/mosquitto_bridge.conf", import.meta.url), "utf8")
    .replaceAll("@PORT@", String(port))
    .replaceAll("@REMOTE_PORT@", String(remotePort))
    .replaceAll("@CERTS@", certs);
}

function parse(text: string, notes: [number, string][] = []) {
  return parseMosquittoConf(text, { hostname: "pi", onNote: (line, note) => notes.push([line, note]) });
}

/** A bridge section with a topic around `lines`. */
function section(...lines: string[]): string {
  return ["connection b", "address 127.0.0.1", "topic #", ...lines].join("\n");
}

test("parseMosquittoConf() reads every key of the fixture", () => {
  const notes: [number, string][] = [];
  const config = parse(fixture(1884, 1885), notes);
  assert.deepEqual(config, {
    listeners: [{ type: "tcp", host: "127.0.0.1", port: 1884, maxConnections: 50 }],
    allowAnonymous: true,
    limits: {
      maxKeepAlive: 300,
      maximumPacketSize: 65536,
      maxQueuedMessages: 500,
      maxQueuedBytes: 1048576,
      persistentSessionExpiryInterval: 14 * 86_400,
      maxInflightMessages: 65535,
    },
    logLevel: "info",
    queueQoS0: true,
    allowZeroLengthClientId: true,
    autoIdPrefix: "site-",
    sysInterval: 15,
    bridges: [
      {
        name: "cloud",
        urls: ["mqtts://127.0.0.1:1885", "mqtts://localhost:1885"],
        protocolVersion: 4,
        clientId: "site-north",
        localClientId: "local-north",
        username: "north",
        password: "two words",
        cleanStart: true,
        keepAlive: 30,
        tryPrivate: false,
        notifications: true,
        notificationTopic: "bridges/cloud/state",
        notificationsLocalOnly: true,
        restartTimeout: { base: 2, cap: 20 },
        startType: "automatic",
        localUsername: "edge",
        tls: { ca: `${certs}/ca.pem`, caPath: certs, insecure: false },
        topics: [
          { pattern: "sensors/#", direction: "out", qos: 1, localPrefix: "site/", remotePrefix: "north/" },
          { pattern: "#", direction: "both", qos: 1, localPrefix: "local/", remotePrefix: "remote/" },
          { pattern: "", direction: "out", qos: 0, localPrefix: "a/b", remotePrefix: "c/d" },
          { pattern: "commands/+", direction: "in", qos: 0 },
          { pattern: "status", direction: "out", qos: 0 },
          { pattern: "x/#", direction: "in", qos: 2, remotePrefix: "remote/" },
        ],
      },
      {
        name: "backup",
        urls: ["mqtt://127.0.0.1:1885"],
        protocolVersion: 5,
        clientId: "backup-north",
        username: "north",
        password: "secret",
        restartTimeout: { base: 10, cap: 10 },
        startType: "lazy",
        threshold: 5,
        idleTimeout: 30,
        topics: [{ pattern: "#", direction: "out", qos: 2 }],
      },
    ],
  });
  assert.deepEqual(notes.map(([line]) => line), [20, 21, 39, 45]);
  assert.match(notes[0][1], /log_dest is ignored: the broker logs to standard error/);
  assert.match(notes[2][1], /bridge_attempt_unsubscribe is ignored/);
  assert.match(notes[3][1], /bridge_tls_version is ignored: TLS 1\.2 or later/);
});

test("mosquitto itself starts with the fixture (it is a valid mosquitto.conf)", async (t) => {
  const missing = mosquittoMissing();
  if (missing !== undefined) return t.skip(missing);
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-conf-"));
  const file = join(dir, "mosquitto.conf");
  const port = await freePort();
  // Started as root, mosquitto switches to its own user and then cannot read the CA file.
  const root = process.getuid?.() === 0 ? "user root\n" : "";
  writeFileSync(file, fixture(port, await freePort()) + root);
  const child = spawn("mosquitto", ["-c", file], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout?.on("data", (chunk) => log += chunk);
  child.stderr?.on("data", (chunk) => log += chunk);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const accepts = () =>
    new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once("connect", () => resolve(socket.destroy() !== undefined));
      socket.once("error", () => resolve(false));
      socket.connect(port, "127.0.0.1");
    });
  try {
    let up = false;
    for (let i = 0; i < 100 && !up && child.exitCode === null; i++) {
      up = await accepts();
      if (!up) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(up, `mosquitto did not start with the fixture:\n${log}`);
    assert.equal(child.exitCode, null, log);
    assert.doesNotMatch(log, /Error found at/);
  } finally {
    child.kill("SIGTERM");
    await settledWithin(exited, 2000);
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("mosquitto refuses a bad bridge QoS as parseMosquittoConf() does (the mosquitto check can fail)", (t) => {
  const missing = mosquittoMissing();
  if (missing !== undefined) return t.skip(missing);
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-conf-"));
  const file = join(dir, "mosquitto.conf");
  writeFileSync(file, "listener 1\nconnection b\naddress 127.0.0.1\ntopic a in 7\n");
  const result = spawnSync("mosquitto", ["-c", file], { encoding: "utf8", timeout: 5_000 });
  rmSync(dir, { recursive: true, force: true });
  assert.match(result.stderr + result.stdout, /Error found at .*:4/);
  assert.throws(
    () => parse("connection b\naddress 127.0.0.1\ntopic a in 7\n"),
    /^Error: line 3: topic takes/,
  );
});

test("parseMosquittoConf() defaults: the client id is HOSTNAME.NAME, port 1883 (TLS too), topic out at QoS 0", () => {
  let asked = 0;
  const config = parseMosquittoConf("connection north\naddress remote.example\ntopic a/#\n", {
    hostname: () => `host${++asked}`,
  });
  assert.deepEqual(config.bridges, [{
    name: "north",
    urls: ["mqtt://remote.example:1883"],
    clientId: "host1.north",
    topics: [{ pattern: "a/#", direction: "out", qos: 0 }],
  }]);
  assert.equal(
    parseMosquittoConf("# only comments\n\nsys_interval 5\n", { hostname: () => `host${++asked}` })
      .sysInterval,
    5,
  );
  assert.equal(asked, 1, "the host name is asked for only when a bridge needs it");
  // Without listeners: one on 127.0.0.1:1883 and anonymous clients allowed, as mosquitto 2.0.
  assert.deepEqual(parse("").listeners, [{ type: "tcp", host: "127.0.0.1", port: 1883 }]);
  assert.equal(parse("").allowAnonymous, true);
  assert.equal(parse("listener 1883").allowAnonymous, false);
  assert.equal(parse("port 1883").allowAnonymous, false);
  assert.equal(parse("listener 1883\nallow_anonymous true").allowAnonymous, true);
  assert.equal(parse("allow_anonymous false").allowAnonymous, false);
  assert.deepEqual(parse(section("bridge_certfile c.pem", "bridge_keyfile k.pem")).bridges?.[0].urls, [
    "mqtts://127.0.0.1:1883",
  ]);
  assert.deepEqual(parse(section("bridge_certfile c.pem", "bridge_keyfile k.pem")).bridges?.[0].tls, {
    cert: "c.pem",
    key: "k.pem",
  });
  // A CA directory makes the connection TLS as a CA file does.
  const capath = parse(section("bridge_capath /etc/ssl/certs")).bridges?.[0];
  assert.deepEqual(capath?.urls, ["mqtts://127.0.0.1:1883"]);
  assert.deepEqual(capath?.tls, { caPath: "/etc/ssl/certs" });
  // The bridge's side here logs in as local_username, for the ACL; local_password is not needed.
  const notes: [number, string][] = [];
  const local = parse(section("local_username edge", "local_password pw"), notes).bridges?.[0];
  assert.equal(local?.localUsername, "edge");
  assert.equal("localPassword" in (local ?? {}), false);
  assert.deepEqual(notes, [[
    5,
    "local_password is ignored: the bridge's side on this broker is not asked for a password",
  ]]);
});

test("parseMosquittoConf() reads topic lines in every form", () => {
  const topics = (line: string) => parse(`connection b\naddress h\n${line}\n`).bridges?.[0].topics;
  assert.deepEqual(topics("topic # both 1 local/ remote/"), [
    { pattern: "#", direction: "both", qos: 1, localPrefix: "local/", remotePrefix: "remote/" },
  ]);
  assert.deepEqual(topics('topic "" out 0 a/b c/d'), [
    { pattern: "", direction: "out", qos: 0, localPrefix: "a/b", remotePrefix: "c/d" },
  ]);
  assert.deepEqual(topics('topic a/# in 2 "" ""'), [{ pattern: "a/#", direction: "in", qos: 2 }]);
  assert.deepEqual(topics('topic a/# out 1 "" r/'), [{
    pattern: "a/#",
    direction: "out",
    qos: 1,
    remotePrefix: "r/",
  }]);
  assert.deepEqual(topics("topic a/# both 1 l/"), [{
    pattern: "a/#",
    direction: "both",
    qos: 1,
    localPrefix: "l/",
  }]);
  assert.deepEqual(topics("topic a IN"), [{ pattern: "a", direction: "in", qos: 0 }]);
  assert.deepEqual(topics("topic   a   both   2"), [{ pattern: "a", direction: "both", qos: 2 }]);
  assert.deepEqual(topics("topic a\ntopic b in"), [
    { pattern: "a", direction: "out", qos: 0 },
    { pattern: "b", direction: "in", qos: 0 },
  ]);
});

test("parseMosquittoConf() reads the general keys", () => {
  assert.deepEqual(
    parse(
      "listener 8883 ::1\ncertfile s.pem\nkeyfile s.key\nlistener 9001\nprotocol websockets\nmax_connections -1",
    )
      .listeners,
    [
      { type: "tls", host: "::1", port: 8883, cert: "s.pem", key: "s.key" },
      { type: "ws", host: "0.0.0.0", port: 9001, path: "/mqtt" },
    ],
  );
  assert.deepEqual(parse("listener 9002\nprotocol websockets\ncertfile s.pem\nkeyfile s.key").listeners, [
    { type: "wss", host: "0.0.0.0", port: 9002, path: "/mqtt", cert: "s.pem", key: "s.key" },
  ]);
  assert.deepEqual(parse("port 1884\nbind_address 10.0.0.1\nmax_connections 7\nlistener 1885").listeners, [
    { type: "tcp", host: "10.0.0.1", port: 1884, maxConnections: 7 },
    { type: "tcp", host: "0.0.0.0", port: 1885 },
  ]);
  assert.deepEqual(parse("bind_address 10.0.0.2").listeners, [{ type: "tcp", host: "10.0.0.2", port: 1883 }]);
  const config = parse(
    "password_file /etc/mosquitto/pass words\nacl_file /etc/mosquitto/acl\nmax_inflight_messages 20\n" +
      "max_packet_size 0\nmax_keepalive 0\nsys_interval 0",
  );
  assert.equal(config.passwordFile, "/etc/mosquitto/pass words");
  assert.equal(config.aclFile, "/etc/mosquitto/acl");
  assert.deepEqual(config.limits, { maxInflightMessages: 20, maximumPacketSize: 0, maxKeepAlive: 0 });
  assert.equal(config.sysInterval, 0);
  const ids = parse("allow_zero_length_clientid false\nauto_id_prefix edge-\nset_tcp_nodelay true");
  assert.deepEqual([ids.allowZeroLengthClientId, ids.autoIdPrefix], [false, "edge-"]);
  const nodelay: [number, string][] = [];
  parse("set_tcp_nodelay false", nodelay);
  assert.deepEqual(nodelay, [[1, "set_tcp_nodelay false is ignored: TCP_NODELAY is always on"]]);
  for (
    const [duration, seconds] of [["12h", 43_200], ["2w", 1_209_600], ["1m", 2_592_000], ["1y", 31_536_000]]
  ) {
    assert.equal(
      parse(`persistent_client_expiration ${duration}`).limits.persistentSessionExpiryInterval,
      seconds,
    );
  }
  assert.equal(parse("persistence false\npersistence_location /var/lib/m/").persistence, undefined);
  assert.deepEqual(parse("persistence true").persistence, { sqlite: "mosquitto.sqlite" });
  assert.deepEqual(parse("persistence true\npersistence_location /var/lib/m/").persistence, {
    sqlite: "/var/lib/m/mosquitto.sqlite",
  });
  assert.deepEqual(
    parse("persistence_file state.db\npersistence true\npersistence_location /d").persistence,
    {
      sqlite: "/d/state.db",
    },
  );
  const notes: [number, string][] = [];
  parse("pid_file /run/m.pid\nuser mosquitto\nautosave_interval 60\nlog_timestamp true\n", notes);
  assert.deepEqual(notes.map(([line]) => line), [1, 2, 3, 4]);
  assert.match(notes[0][1], /^pid_file is ignored: the broker writes no pid file$/);
  assert.match(notes[2][1], /^autosave_interval is ignored: the SQLite store writes every change$/);
});

test("parseMosquittoConf() reads addresses: several, commas, IPv6", () => {
  const urls = (line: string) => parse(`connection b\n${line}\ntopic #`).bridges?.[0].urls;
  assert.deepEqual(urls("address a:1 b"), ["mqtt://a:1", "mqtt://b:1883"]);
  assert.deepEqual(urls("addresses a:1,b:2, c"), ["mqtt://a:1", "mqtt://b:2", "mqtt://c:1883"]);
  assert.deepEqual(urls("address ::1:1884 [fe80::1]:1885 [::2]"), [
    "mqtt://[::1]:1884",
    "mqtt://[fe80::1]:1885",
    "mqtt://[::2]:1883",
  ]);
  assert.deepEqual(parse(section("round_robin false")).bridges?.[0].urls, ["mqtt://127.0.0.1:1883"]);
});

test("parseMosquittoConf() refuses what it cannot honour, naming the line and the key", () => {
  const bad: [string, RegExp][] = [
    [section("round_robin false", "address a b"), /address is given twice/],
    [
      "connection b\naddress a b\ntopic #\nround_robin false",
      /^Error: line 4: bridge key round_robin false is not supported/,
    ],
    [section("bridge_alpn mqtt"), /^Error: line 4: bridge key bridge_alpn is not supported/],
    [
      section("bridge_bind_address 10.0.0.1"),
      /^Error: line 4: bridge key bridge_bind_address is not supported/,
    ],
    [
      section("bridge_identity me"),
      /^Error: line 4: bridge key bridge_identity is not supported: TLS with a pre-shared/,
    ],
    [section("bridge_psk 00ff"), /^Error: line 4: bridge key bridge_psk is not supported/],
    [section("bridge_require_ocsp true"), /^Error: line 4: bridge key bridge_require_ocsp is not supported/],
    [
      section("bridge_max_packet_size 1000"),
      /^Error: line 4: bridge key bridge_max_packet_size is not supported/,
    ],
    [section("local_cleansession true"), /^Error: line 4: bridge key local_cleansession is not supported/],
    [section("local_username a", "local_username b"), /^Error: line 5: local_username is given twice/],
    [section("start_type sometimes"), /^Error: line 4: start_type takes automatic, lazy or once/],
    [
      "persistent_client_expiration 5",
      /^Error: line 1: persistent_client_expiration takes a duration such as 12h/,
    ],
    ["persistent_client_expiration 2s", /^Error: line 1: persistent_client_expiration takes a duration/],
    ["max_queued_bytes 0", /^Error: line 1: max_queued_bytes 0 \(no limit\) is not supported/],
    ["queue_qos0_messages yes", /^Error: line 1: queue_qos0_messages takes true or false/],
    ["max_queued_bytes 1\nmax_queued_bytes 2", /^Error: line 2: max_queued_bytes is given twice/],
    [section("threshold 0"), /^Error: line 4: threshold/],
    [section("idle_timeout x"), /^Error: line 4: idle_timeout/],
    [
      section("bridge_tls_version tlsv1.1"),
      /^Error: line 4: bridge key bridge_tls_version tlsv1\.1 is not supported/,
    ],
    [
      section("bridge_outgoing_retain false"),
      /^Error: line 4: bridge key bridge_outgoing_retain false is not supported/,
    ],
    [
      section("bridge_protocol_version mqttv6"),
      /^Error: line 4: bridge_protocol_version takes mqttv31, mqttv311 or/,
    ],
    [
      section("keepalive_interval 4"),
      /^Error: line 4: keepalive_interval takes a whole number from 5 to 65535/,
    ],
    [section("cleansession yes"), /^Error: line 4: cleansession takes true or false, not "yes"/],
    [
      section("restart_timeout 30 10"),
      /^Error: line 4: restart_timeout: the cap \(10\) is less than the base \(30\)/,
    ],
    [section("restart_timeout 1 2 3"), /^Error: line 4: restart_timeout takes BASE CAP or one CONSTANT/],
    [section("notification_topic a/+"), /^Error: line 4: notification_topic "a\/\+" is not valid/],
    [
      section("remote_clientid a", "clientid b"),
      /^Error: line 5: clientid is given twice \(as remote_clientid/,
    ],
    [
      section("remote_password p"),
      /^Error: line 1: connection b has a remote_password without a remote_username/,
    ],
    [
      section("bridge_certfile c.pem"),
      /^Error: line 1: connection b needs both bridge_certfile and bridge_keyfile/,
    ],
    [section("bridge_insecure true"), /^Error: line 1: connection b has bridge_insecure without TLS/],
    ["connection b\ntopic #", /^Error: line 1: connection b has no address/],
    ["connection b\naddress h", /^Error: line 1: connection b has no topic/],
    ["connection b\naddress h:0\ntopic #", /^Error: line 2: address: "h:0" is not host\[:port\]/],
    ["connection b\naddress h:x\ntopic #", /^Error: line 2: address: "h:x" is not host\[:port\]/],
    ["connection b\naddresses\ntopic #", /^Error: line 2: addresses needs one or more host\[:port\]/],
    ["connection a/b", /^Error: line 1: a bridge name is one or more characters without spaces, "\/"/],
    [
      "connection b\naddress h\ntopic #\nconnection b",
      /^Error: line 4: another connection \(line 1\) is named "b"/,
    ],
    ["address h", /^Error: line 1: address is a bridge key: it needs a connection line before it/],
    ["\n\ntopic #", /^Error: line 3: topic is a bridge key/],
    [section("topic a sideways"), /^Error: line 4: topic direction is out, in or both, not "sideways"/],
    [section("topic a in 3"), /^Error: line 4: topic takes a whole number from 0 to 2, not "3"/],
    [section("topic a/#/b"), /^Error: line 4: topic: the pattern "a\/#\/b" is not a topic filter/],
    [
      section("topic $share/g/a"),
      /^Error: line 4: topic: the pattern "\$share\/g\/a" is a shared subscription/,
    ],
    [
      section("topic # out 0 a/+/ b/"),
      /^Error: line 4: topic: the local prefix "a\/\+\/" must not contain \+ or #/,
    ],
    [
      section("topic # out 0 a/ b/#"),
      /^Error: line 4: topic: the remote prefix "b\/#" must not contain \+ or #/,
    ],
    [
      section("topic # out 0 a b/"),
      /^Error: line 4: topic: the local prefix and the pattern make "a#", not a topic filter/,
    ],
    [
      section('topic "" out 0 a/b'),
      /^Error: line 4: topic: an empty pattern needs both a local and a remote prefix/,
    ],
    [section('topic "" out 0 "" c/d'), /^Error: line 4: topic: an empty pattern needs both/],
    [section('topic ""'), /^Error: line 4: topic: an empty pattern needs both/],
    [section("topic a out 0 l/ r/ extra"), /^Error: line 4: topic takes at most 5 values/],
    [section("topic"), /^Error: line 4: topic needs a pattern/],
    ["listener 0 /tmp/m.sock", /^Error: line 1: listener port 0 \(a unix socket\) is not supported/],
    ["listener", /^Error: line 1: listener takes a port and an optional address/],
    ["listener 70000", /^Error: line 1: listener takes a whole number from 0 to 65535/],
    [
      "listener 1883\nport 1884",
      /^Error: line 2: port sets the default listener: put it before the listener lines/,
    ],
    [
      "certfile s.pem",
      /^Error: line 1: certfile belongs to a listener: it needs a listener \(or port\) line before it/,
    ],
    [
      "listener 1883\ncertfile s.pem",
      /^Error: line 1: the listener needs both certfile and keyfile, or neither/,
    ],
    ["listener 1883\nprotocol http", /^Error: line 2: protocol takes mqtt or websockets, not "http"/],
    ["listener 1883\nprotocol mqtt\nprotocol websockets", /^Error: line 3: protocol is given twice/],
    ["per_listener_settings true", /^Error: line 1: per_listener_settings true is not supported/],
    ["max_packet_size 19", /^Error: line 1: max_packet_size takes 0 \(no limit\) or 20 to 268435460, not 19/],
    ["max_queued_messages 0", /^Error: line 1: max_queued_messages 0 \(no limit\) is not supported/],
    ["max_keepalive 65536", /^Error: line 1: max_keepalive takes a whole number from 0 to 65535/],
    ["sys_interval -1", /^Error: line 1: sys_interval takes a whole number from 0 to 86400, not "-1"/],
    ["allow_anonymous true\nallow_anonymous false", /^Error: line 2: allow_anonymous is given twice/],
    ["password_file", /^Error: line 1: password_file needs a value/],
    ["sys_interval 1 2", /^Error: line 1: sys_interval takes one value, not "1 2"/],
    ["include_dir /etc/mosquitto/conf.d", /^Error: line 1: key include_dir is not supported/],
    ["require_certificate true", /^Error: line 1: key require_certificate is not supported/],
    ["mount_point m/", /^Error: line 1: key mount_point is not supported/],
    ["constructor x", /^Error: line 1: key constructor is not supported/],
    ["listenr 1883", /^Error: line 1: key listenr is not supported/],
  ];
  for (const [text, pattern] of bad) assert.throws(() => parse(text), pattern, text);
});

test("broker.ts -c x.conf starts with a bridge section, says so, serves clients; a bad one exits 1 naming the line", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-conf-"));
  const port = await freePort();
  const file = join(dir, "broker.conf");
  writeFileSync(file, fixture(port, await freePort()));
  const broker = await startBroker(["-c", file]);
  try {
    assert.match(
      broker.log(),
      new RegExp(
        `listening on mqtt://127\\.0\\.0\\.1:${port} .*bridges cloud to mqtts://127\\.0\\.0\\.1:\\d+ `,
      ),
    );
    assert.match(broker.log(), /Note: .*broker\.conf, line 20: log_dest is ignored/);
    const client = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false });
    await client.close();
  } finally {
    broker.child.kill("SIGTERM");
    await broker.exited;
  }
  // Not named .conf: read as a mosquitto.conf since it does not start with "{".
  const other = join(dir, "broker.cfg");
  writeFileSync(
    other,
    `# bridges\nlistener ${port} 127.0.0.1\nconnection b\naddress a b\ntopic #\nround_robin false\n`,
  );
  const script = new URL("../../broker.ts", import.meta.url).pathname;
  const prefix = "Deno" in globalThis ? ["run", "-A", script] : [script];
  const result = spawnSync(process.execPath, [...prefix, "--config", other], {
    encoding: "utf8",
    timeout: 20_000,
  });
  // A missing CA file of a bridge is reported before anything starts.
  writeFileSync(file, fixture(port, 1).replace(`${certs}/ca.pem`, join(dir, "missing.pem")));
  const missing = spawnSync(process.execPath, [...prefix, "-c", file], { encoding: "utf8", timeout: 20_000 });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(result.status, 1);
  assert.match(
    result.stderr,
    /^Error: .*broker\.cfg, line 6: bridge key round_robin false is not supported/m,
  );
  assert.doesNotMatch(result.stderr, /listening/);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /Error: cannot read the CA file of bridge cloud, ".*missing\.pem"/);
});
