/**
 * `Transport.remoteAddress` on the picked runtime: the TCP, TLS and WebSocket listeners give each accepted
 * transport its peer's `host:port`. The same file runs under Deno, Bun and Node and tests whichever shims load.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { runtimeNet } from "../../src/runtime/mod.ts";
import { hostPort } from "../../src/runtime/_address.ts";
import { listenWebSocket } from "../../src/runtime/ws_server.ts";
import { connectWebSocket } from "../../src/transport/websocket.ts";
import type { Listener, Transport } from "../../src/transport/transport.ts";
import { within } from "../_helpers.ts";

const net = await runtimeNet();
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const host = "127.0.0.1";
const loopbackPeer = /^127\.0\.0\.1:\d+$/;

function pem(name: string): string {
  return readFileSync(new URL(`../_certs/${name}`, import.meta.url), "utf8");
}

/** The next connection `listener` accepts, failing after two seconds. */
async function acceptOne(listener: Listener): Promise<Transport> {
  const next = await within(listener[Symbol.asyncIterator]().next(), 2000, "accepting a connection");
  assert.equal(next.done, false);
  return next.value as Transport;
}

/** Sends one byte each way, so the wrapped transport is shown to still carry data. */
async function exchange(server: Transport, client: Transport): Promise<void> {
  const serverWriter = server.writable.getWriter();
  const clientWriter = client.writable.getWriter();
  const serverReader = server.readable.getReader();
  const clientReader = client.readable.getReader();
  try {
    await clientWriter.write(new Uint8Array([1]));
    assert.deepEqual((await within(serverReader.read(), 2000, "server read")).value, new Uint8Array([1]));
    await serverWriter.write(new Uint8Array([2]));
    assert.deepEqual((await within(clientReader.read(), 2000, "client read")).value, new Uint8Array([2]));
  } finally {
    serverWriter.releaseLock();
    clientWriter.releaseLock();
    serverReader.releaseLock();
    clientReader.releaseLock();
  }
}

/** The port in a `host:port` address. */
function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

test("hostPort() joins host and port, brackets IPv6, and gives undefined for a missing part", () => {
  assert.equal(hostPort("127.0.0.1", 54321), "127.0.0.1:54321");
  assert.equal(hostPort("::1", 1883), "[::1]:1883");
  assert.equal(hostPort("::ffff:127.0.0.1", 1883), "[::ffff:127.0.0.1]:1883");
  assert.equal(hostPort(undefined, 1883), undefined);
  assert.equal(hostPort("", 1883), undefined);
  assert.equal(hostPort("127.0.0.1", undefined), undefined);
});

test(`${runtime}: a TCP listener's accepted transport knows its peer's address`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  let client: Transport | undefined;
  let server: Transport | undefined;
  try {
    client = await net.connectTcp({ hostname: host, port: listener.port });
    server = await acceptOne(listener);
    assert.match(server.remoteAddress ?? "", loopbackPeer);
    assert.notEqual(portOf(server.remoteAddress!), listener.port);
    // The client side knows its peer too: the listener itself.
    assert.equal(client.remoteAddress, `${host}:${listener.port}`);
    await exchange(server, client);
  } finally {
    await Promise.all([client?.close(), server?.close()]);
    await listener.close();
  }
});

test(`${runtime}: a TLS listener's accepted transport knows its peer's address`, async () => {
  const listener = await net.listenTls({
    hostname: host,
    port: 0,
    cert: pem("server.pem"),
    key: pem("server.key"),
  });
  let client: Transport | undefined;
  let server: Transport | undefined;
  try {
    const accepted = acceptOne(listener);
    client = await within(
      net.connectTls({ hostname: host, port: listener.port, caCerts: [pem("ca.pem")] }),
      5000,
      "TLS connect",
    );
    server = await accepted;
    assert.match(server.remoteAddress ?? "", loopbackPeer);
    assert.equal(client.remoteAddress, `${host}:${listener.port}`);
    await exchange(server, client);
  } finally {
    // Both ends at once: on Bun, closing one TLS end alone waits for the peer to close (up to 1 s).
    await Promise.all([client?.close(), server?.close()]);
    await listener.close();
  }
});

test(`${runtime}: a WebSocket listener's accepted transport knows its peer's address`, async () => {
  const listener = await listenWebSocket({ hostname: host, port: 0 });
  let client: Transport | undefined;
  let server: Transport | undefined;
  try {
    const accepted = acceptOne(listener);
    client = await within(connectWebSocket(`ws://${host}:${listener.port}/mqtt`), 5000, "WebSocket connect");
    server = await accepted;
    assert.match(server.remoteAddress ?? "", loopbackPeer);
    assert.notEqual(portOf(server.remoteAddress!), listener.port);
    await exchange(server, client);
  } finally {
    await Promise.all([client?.close(), server?.close()]);
    await listener.close();
  }
});
