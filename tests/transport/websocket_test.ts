/**
 * The WebSocket client transport against a server made with the `ws` package, in-process (it runs under
 * Deno, Bun and Node here).
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type WebSocket as WsSocket, WebSocketServer } from "ws";
import { connectWebSocket, fromWebSocket } from "../../src/transport/websocket.ts";
import type { Transport } from "../../src/transport/transport.ts";
import { within } from "../_helpers.ts";
import { concat } from "../../src/bytes.ts";

interface Server {
  url: string;
  sockets: WsSocket[];
  close(): Promise<void>;
}

/** A `ws` server on a free loopback port; `onConnection` gets each socket. */
async function serve(
  handleProtocols: (protocols: Set<string>) => string | false,
  onConnection: (socket: WsSocket) => void,
): Promise<Server> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols });
  await new Promise<void>((resolve, reject) => {
    wss.once("listening", resolve);
    wss.once("error", reject);
  });
  const sockets: WsSocket[] = [];
  wss.on("connection", (socket) => {
    sockets.push(socket);
    onConnection(socket);
  });
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}/mqtt`,
    sockets,
    async close() {
      for (const socket of sockets) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

const selectMqtt = (protocols: Set<string>) => protocols.has("mqtt") ? "mqtt" : false;

function echo(socket: WsSocket): void {
  socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
}

test("connectWebSocket() speaks subprotocol mqtt in binary frames, both ways", async () => {
  const server = await serve(selectMqtt, echo);
  try {
    const transport = await within(connectWebSocket(server.url), 2000, "connect");
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 50; i++) sent.push(new Uint8Array(1 + i * 37).fill(i));
    sent.push(new Uint8Array(2 << 20).map((_, i) => i & 0xff));
    const expected = concat(sent);
    const writer = transport.writable.getWriter();
    const writing = (async () => {
      for (const chunk of sent) await writer.write(chunk);
    })();
    const reader = transport.readable.getReader();
    const received: Uint8Array[] = [];
    let total = 0;
    while (total < expected.byteLength) {
      const { value, done } = await within(reader.read(), 5000, "echo");
      assert.equal(done, false);
      assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype);
      received.push(value!);
      total += value!.byteLength;
    }
    await writing;
    assert.deepEqual(concat(received), expected);
    assert.equal(server.sockets[0].protocol, "mqtt");
    await within(Promise.resolve(transport.close()), 2000, "close");
  } finally {
    await server.close();
  }
});

test("connectWebSocket() rejects a server that did not select mqtt [MQTT-6.0.0-3]", async () => {
  const server = await serve(() => false, echo);
  try {
    // Deno's WebSocket opens anyway and the transport's own check rejects; Bun and Node fail the handshake.
    await assert.rejects(
      within(connectWebSocket(server.url), 2000, "connect"),
      /subprotocol|connection failed/,
    );
  } finally {
    await server.close();
  }
});

test("connectWebSocket() ends the readable with an error on a text frame [MQTT-6.0.0-1]", async () => {
  const server = await serve(selectMqtt, (socket) => socket.send("not mqtt"));
  try {
    const transport = await within(connectWebSocket(server.url), 2000, "connect");
    await assert.rejects(within(transport.readable.getReader().read(), 2000, "read"), /text frame/);
    await transport.close();
  } finally {
    await server.close();
  }
});

test("connectWebSocket(): the server closing ends the readable; close() is idempotent; writes then reject", async () => {
  const server = await serve(selectMqtt, (socket) => setTimeout(() => socket.close(1000), 5));
  try {
    const transport = await within(connectWebSocket(server.url), 2000, "connect");
    const reader = transport.readable.getReader();
    assert.equal((await within(reader.read(), 2000, "end")).done, true);
    await within(Promise.all([transport.close(), transport.close()]), 2000, "close twice");
    await assert.rejects(transport.writable.getWriter().write(new Uint8Array([1])));
  } finally {
    await server.close();
  }
});

test("connectWebSocket() close() ends the local readable and settles", async () => {
  const server = await serve(selectMqtt, echo);
  try {
    const transport = await within(connectWebSocket(server.url), 2000, "connect");
    const read = transport.readable.getReader().read();
    await within(Promise.resolve(transport.close()), 2000, "close");
    assert.equal((await within(read, 2000, "read ends")).done, true);
  } finally {
    await server.close();
  }
});

test("connectWebSocket() rejects on an aborted signal and on a refused port", async () => {
  const reason = new Error("stop");
  await assert.rejects(
    connectWebSocket("ws://127.0.0.1:1/mqtt", { signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  const server = await serve(selectMqtt, echo);
  const url = server.url;
  await server.close();
  await assert.rejects(within(connectWebSocket(url), 2000, "refused"), /connection failed/);
});

/**
 * A `ws` server in a Node child process (Bun replaces `ws` with its own server, whose sockets cannot pause):
 * it stops reading on connection until told "go" on stdin, then reports the bytes it received when the
 * client closes.
 */
const PAUSING_SERVER = `
import { WebSocketServer } from ${
  JSON.stringify(fileURLToPath(new URL("../../node_modules/ws/wrapper.mjs", import.meta.url)))
};
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => "mqtt" });
wss.on("listening", () => console.log("port " + wss.address().port));
wss.on("connection", (socket) => {
  let received = 0;
  socket._socket.pause();
  process.stdin.once("data", () => socket._socket.resume());
  socket.on("message", (data) => { received += data.length; });
  socket.on("close", () => { console.log("received " + received); process.exit(0); });
});
setTimeout(() => process.exit(1), 10000);
`;

test("connectWebSocket() writes wait while bufferedAmount is above highWaterMark", async () => {
  const node = "Deno" in globalThis || "Bun" in globalThis ? "node" : process.execPath;
  const child = spawn(node, ["--input-type=module", "-e", PAUSING_SERVER], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  try {
    const lines: string[] = [];
    let wake = () => {};
    child.stdout!.on("data", (data) => {
      lines.push(...String(data).split("\n").filter((line) => line !== ""));
      wake();
    });
    const line = async (prefix: string) => {
      for (;;) {
        const found = lines.find((l) => l.startsWith(prefix));
        if (found !== undefined) return Number(found.slice(prefix.length));
        await new Promise<void>((resolve) => wake = resolve);
      }
    };
    const port = await within(line("port "), 5000, "server start");
    const transport = await within(
      connectWebSocket(`ws://127.0.0.1:${port}/mqtt`, { highWaterMark: 65536 }),
      2000,
      "connect",
    );
    const writer = transport.writable.getWriter();
    const chunk = new Uint8Array(1 << 20);
    let written = 0;
    let pending: Promise<void> | undefined;
    while (written < 256 << 20) {
      const write = writer.write(chunk);
      written += chunk.byteLength;
      const settled = await Promise.race([
        write.then(() => true),
        new Promise((r) => setTimeout(r, 300, false)),
      ]);
      if (!settled) {
        pending = write;
        break;
      }
    }
    assert.ok(
      pending !== undefined,
      `writes never waited: ${written} bytes taken by a server that reads nothing`,
    );
    child.stdin!.write("go\n");
    await within(pending, 5000, "the waiting write completes once the server reads");
    await within(Promise.resolve(transport.close()), 2000, "close");
    assert.equal(await within(line("received "), 5000, "server total"), written);
  } finally {
    child.kill();
  }
});

test("fromWebSocket() wraps a server-side ws socket: echo through pipeTo, then either side closes", async () => {
  const servers: Transport[] = [];
  const server = await serve(selectMqtt, (socket) => {
    const transport = fromWebSocket(socket);
    servers.push(transport);
    transport.readable.pipeTo(transport.writable).catch(() => {});
  });
  try {
    const client = await within(connectWebSocket(server.url), 2000, "connect");
    const writer = client.writable.getWriter();
    const reader = client.readable.getReader();
    const chunks = [new Uint8Array([0x10, 1, 2]), new Uint8Array(100_000).fill(7)];
    for (const chunk of chunks) await writer.write(chunk);
    const received: Uint8Array[] = [];
    let total = 0;
    while (total < 100_003) {
      const { value } = await within(reader.read(), 2000, "echo");
      assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype);
      received.push(value!);
      total += value!.byteLength;
    }
    assert.deepEqual(concat(received), concat(chunks));
    // The server side closing ends the client's readable.
    await within(Promise.resolve(servers[0].close()), 2000, "server close");
    assert.equal((await within(reader.read(), 2000, "client sees the close")).done, true);
    await client.close();
  } finally {
    await server.close();
  }
});

test("fromWebSocket(): a loop that awaits each write lets timers run although send() never waits", async () => {
  let sent = 0;
  const socket = {
    binaryType: "blob",
    readyState: 1,
    bufferedAmount: 0,
    send: () => void sent++,
    close() {},
    addEventListener() {},
  };
  const writer = fromWebSocket(socket).writable.getWriter();
  let fired = false;
  setTimeout(() => fired = true, 0);
  while (!fired && sent < 200_000) await writer.write(new Uint8Array([0xc0, 0x00]));
  assert.ok(fired, `a timer did not run during ${sent} awaited writes`);
});
