/**
 * The broker's keep-alive limit (`maxKeepAlive`, as mosquitto's `max_keepalive`) and its answer to CONNECTs of
 * protocol levels it does not speak, over real sockets.
 *
 * What mosquitto does, checked with raw sockets against Debian's mosquitto 2.0.11:
 * - `max_keepalive 30`: an MQTT 5 client asking for 60 or 0 gets CONNACK with Server Keep Alive 30
 *   (`20 09 00 00 06 22 00 0a 13 00 1e`), one asking for 30 or less gets none. 3.1.1 and 3.1 clients are let in
 *   whatever they ask (`20 02 00 00`): 2.0.11's documentation says the option "only applies to MQTT v5
 *   clients". Later mosquitto (the 2.1 manual and `connect__on_authorised` in its source) refuses a 3.1.1 or
 *   3.1 client asking for more than the maximum, or for 0, with CONNACK "identifier rejected" (0x02): that is
 *   what we do, since such a client cannot be told to use less. 2.0.11 refuses to start with a value below 10,
 *   and its default, 65535, gives MQTT 5 clients asking for 0 a Server Keep Alive of 65535; 2.1 defaults to
 *   0, no maximum, which is our default.
 * - A CONNECT of protocol level 0, 1, 2, 6 or 255 (and 3 with "MQTT", 4 or 5 with "MQIsdp") gets
 *   `20 02 00 01`, the 3.1.1 CONNACK "unacceptable protocol version", then the connection closes. A protocol
 *   name other than "MQTT" or "MQIsdp" is closed without a CONNACK. (mosquitto also accepts levels 0x83 and
 *   0x84, the bridge bit; we refuse them like any unknown level.)
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { Broker } from "../../src/broker/broker.ts";
import type { ProtocolVersion } from "../../src/codec/packet.ts";
import { ReasonCode } from "../../src/errors.ts";
import { mosquittoMissing, startMosquitto } from "../_mosquitto.ts";
import { rawConnect } from "../_raw_client.ts";

/** A CONNECT with any protocol name and level, byte by byte (the encoder writes only levels it knows). */
function connectBytes(name: string, level: number, keepAlive = 0): Uint8Array {
  const body = [
    0,
    name.length,
    ...[...name].map((c) => c.charCodeAt(0)),
    level,
    0x02,
    keepAlive >> 8,
    keepAlive,
  ];
  if (level === 5) body.push(0); // an empty property length
  body.push(0, 1, 0x63); // client id "c"
  return Uint8Array.of(0x10, body.length, ...body.map((b) => b & 0xff));
}

/** Sends bytes on a new connection; resolves with what came back and whether the server closed within `ms`. */
function exchange(
  port: number,
  bytes: Uint8Array,
  ms = 2000,
): Promise<{ received: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const chunks: number[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ received: hex(chunks), closed: false });
    }, ms);
    socket.on("data", (chunk: Uint8Array) => chunks.push(...chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ received: hex(chunks), closed: true });
    });
    socket.connect(port, "127.0.0.1", () => socket.write(bytes));
  });
}

function hex(bytes: number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

test("maxKeepAlive: an MQTT 5 client asking for more, or for 0, gets the maximum as Server Keep Alive [MQTT-3.2.2-21] [MQTT-3.1.2-21]", async () => {
  const broker = new Broker({ maxKeepAlive: 30, sysInterval: 0 });
  const { port } = await broker.listen({ port: 0 });
  try {
    for (
      const [keepAlive, told] of [[60, 30], [0, 30], [65_535, 30], [31, 30], [30, undefined], [5, undefined]]
    ) {
      const client = await rawConnect(port, { clientId: `v5-${keepAlive}`, keepAlive }, 5);
      assert.equal(client.connack.reasonCode, ReasonCode.Success, `keep-alive ${keepAlive}`);
      assert.equal(client.connack.properties?.serverKeepAlive, told, `keep-alive ${keepAlive}`);
      client.close();
    }
  } finally {
    await broker.close();
  }
});

test("maxKeepAlive: the broker closes an MQTT 5 client after 1.5 times the Server Keep Alive it sent, not its own [MQTT-3.1.2-22] [MQTT-3.2.2-21]", async () => {
  const broker = new Broker({ maxKeepAlive: 1, sysInterval: 0 });
  const { port } = await broker.listen({ port: 0 });
  try {
    const client = await rawConnect(port, { clientId: "quiet", keepAlive: 60 }, 5);
    const start = Date.now();
    assert.equal(client.connack.properties?.serverKeepAlive, 1);
    const disconnect = await client.next((p) => p.type === "disconnect", 5000);
    await client.ended;
    const elapsed = Date.now() - start;
    assert.ok(disconnect.type === "disconnect" && disconnect.reasonCode === ReasonCode.KeepAliveTimeout);
    assert.ok(elapsed >= 1300 && elapsed < 4000, `closed after ${elapsed} ms`);
  } finally {
    await broker.close();
  }
});

for (const version of [3, 4] as ProtocolVersion[]) {
  test(`maxKeepAlive: a v${version} client asking for more, or for 0, is refused with CONNACK 0x02 identifier rejected, as mosquitto 2.1 [MQTT-3.2.2-5]`, async () => {
    const lines: string[] = [];
    const broker = new Broker({ maxKeepAlive: 30, sysInterval: 0, log: (_level, line) => lines.push(line) });
    const { port } = await broker.listen({ port: 0 });
    try {
      for (const keepAlive of [60, 0]) {
        const client = await rawConnect(port, { clientId: `old-${keepAlive}`, keepAlive }, version);
        // Return code 0x02 decodes to the MQTT 5 code 0x85.
        assert.deepEqual(client.connack, {
          type: "connack",
          sessionPresent: false,
          reasonCode: ReasonCode.ClientIdentifierNotValid,
        });
        await client.ended;
      }
      const raw = await exchange(port, connectBytes(version === 3 ? "MQIsdp" : "MQTT", version, 31));
      assert.deepEqual(raw, { received: "20 02 00 02", closed: true });
      assert.ok(lines.some((line) => /keep-alive 60, not 1 to maxKeepAlive 30/.test(line)), lines.join("\n"));
      const within = await rawConnect(port, { clientId: "ok", keepAlive: 30 }, version);
      assert.equal(within.connack.reasonCode, ReasonCode.Success);
      within.close();
    } finally {
      await broker.close();
    }
  });
}

test("without maxKeepAlive (or with 0) every client keeps the keep-alive it asked for [MQTT-3.2.2-22]", async () => {
  for (const options of [{}, { maxKeepAlive: 0 }]) {
    const broker = new Broker({ ...options, sysInterval: 0 });
    const { port } = await broker.listen({ port: 0 });
    try {
      for (const keepAlive of [0, 65_535]) {
        const v5 = await rawConnect(port, { clientId: `v5-${keepAlive}`, keepAlive }, 5);
        assert.equal(v5.connack.reasonCode, ReasonCode.Success);
        assert.equal(v5.connack.properties?.serverKeepAlive, undefined);
        v5.close();
        const v4 = await rawConnect(port, { clientId: `v4-${keepAlive}`, keepAlive }, 4);
        assert.equal(v4.connack.reasonCode, ReasonCode.Success);
        v4.close();
      }
    } finally {
      await broker.close();
    }
  }
});

test("new Broker() refuses a maxKeepAlive outside 0 to 65535", () => {
  for (const maxKeepAlive of [-1, 65_536, 1.5, Number.NaN]) {
    assert.throws(() => new Broker({ maxKeepAlive }), RangeError);
  }
});

const UNKNOWN_LEVELS: [string, number][] = [
  ["MQTT", 0],
  ["MQTT", 1],
  ["MQTT", 2],
  ["MQTT", 3],
  ["MQTT", 6],
  ["MQTT", 255],
  ["MQIsdp", 4],
  ["MQIsdp", 5],
];

test("the broker answers a CONNECT of an unknown protocol level with the 3.1.1 CONNACK 0x01 and closes [MQTT-3.1.2-2]", async () => {
  const broker = new Broker({ sysInterval: 0 });
  const { port } = await broker.listen({ port: 0 });
  try {
    for (const [name, level] of UNKNOWN_LEVELS) {
      assert.deepEqual(
        await exchange(port, connectBytes(name, level)),
        { received: "20 02 00 01", closed: true },
        `${name} level ${level}`,
      );
    }
    // A protocol name that is neither: closed without a word [MQTT-3.1.2-1].
    assert.deepEqual(await exchange(port, connectBytes("MQTX", 5)), { received: "", closed: true });
    // A malformed MQTT 5 CONNECT (the reserved flag set) still gets an MQTT 5 CONNACK with its reason code.
    const bad = connectBytes("MQTT", 5);
    bad[9] |= 0x01;
    assert.deepEqual(await exchange(port, bad), { received: "20 03 00 81 00", closed: true });
  } finally {
    await broker.close();
  }
});

test("the broker answers unknown protocol levels and names with the same bytes as mosquitto", {
  skip: mosquittoMissing(),
}, async () => {
  const mosquitto = await startMosquitto();
  const broker = new Broker({ sysInterval: 0 });
  const { port } = await broker.listen({ port: 0 });
  try {
    for (const [name, level] of [...UNKNOWN_LEVELS, ["MQTX", 5], ["MQTX", 4]] as [string, number][]) {
      const bytes = connectBytes(name, level);
      assert.deepEqual(
        await exchange(port, bytes),
        await exchange(mosquitto.port, bytes),
        `${name} level ${level}`,
      );
    }
  } finally {
    await broker.close();
    await mosquitto.stop();
  }
});
