/**
 * `Transport.direct`, the callback path the broker uses instead of a pair of streams per connection, over
 * real sockets on 127.0.0.1: Bun's and Deno's accepted transports have it; Node's have only streams (and the
 * broker's tests cover that path there).
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { runtimeNet } from "../../src/runtime/mod.ts";
import type { DirectTransport, Transport } from "../../src/transport/transport.ts";
import { concat } from "../../src/bytes.ts";
import { pattern, readAll, sleep, within } from "../_helpers.ts";

const net = await runtimeNet();
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const host = "127.0.0.1";

/** A connected pair: the client's transport and the listener's side of it. */
async function pair(): Promise<{ client: Transport; server: Transport; close(): Promise<void> }> {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  const accepted = (async () => {
    for await (const transport of listener) return transport;
    throw new Error("the listener closed");
  })();
  const client = await net.connectTcp({ hostname: host, port: listener.port });
  const server = await within(accepted, 5000, "accepting");
  return {
    client,
    server,
    async close() {
      await Promise.all([client.close(), server.close()]);
      await listener.close();
    },
  };
}

/** The server side's direct interface, asserting which runtimes offer one. */
function directOf(server: Transport): DirectTransport | undefined {
  if (runtime !== "node") {
    assert.ok(server.direct !== undefined, `${runtime}'s accepted transports have \`direct\``);
  } else assert.equal(server.direct, undefined, `${runtime}'s transports have only streams`);
  return server.direct;
}

test("direct: bytes that arrived before start() come first and in order, then the end; replies go out", async () => {
  const { client, server, close } = await pair();
  try {
    const direct = directOf(server);
    if (direct === undefined) return;
    const sent = pattern(300_000, 7);
    const writer = client.writable.getWriter();
    await writer.write(sent);
    await writer.close(); // FIN: the client keeps reading
    await sleep(100); // everything arrives before anybody reads
    const chunks: Uint8Array[] = [];
    const ended = new Promise<unknown>((resolve) => {
      direct.start({ data: (chunk) => chunks.push(chunk), end: resolve });
    });
    assert.equal(await within(ended, 5000, "the end"), undefined);
    assert.deepEqual(concat(chunks), sent);
    assert.throws(() => direct.start({ data: () => {}, end: () => {} }), /already have a consumer/);
    // Half-closed by the peer, the server still answers, then ends its side.
    const reply = pattern(50_000, 3);
    await direct.write(reply);
    direct.end();
    assert.deepEqual(await within(readAll(client.readable), 5000, "the reply"), reply);
  } finally {
    await close();
  }
});

test("direct: writes the socket cannot take at once wait for drain and stay in order", async () => {
  const { client, server, close } = await pair();
  try {
    const direct = directOf(server);
    if (direct === undefined) return;
    let end: unknown = "not yet";
    direct.start({ data: () => {}, end: (error) => end = error });
    const parts = Array.from({ length: 8 }, (_, i) => pattern(1 << 20, i));
    // All handed over at once, as the broker does; a slow reader makes the socket push back.
    const results = parts.map((part) => direct.write(part));
    assert.ok(results.some((r) => r !== undefined), "some write had to wait for drain");
    direct.end();
    const received = await within(
      readAll(client.readable, { pauseEvery: 8, pauseMs: 2 }),
      20_000,
      "reading 8 MiB",
    );
    assert.deepEqual(received, concat(parts));
    await Promise.all(results);
    await client.close();
    await within(Promise.resolve(server.close()), 5000, "closing");
    assert.equal(end, undefined);
    // After the close, a write fails instead of vanishing.
    assert.throws(() => direct.write(new Uint8Array([1])), /closed/);
  } finally {
    await close();
  }
});

test("direct: thousands of small writes handed over at once arrive whole and in order", async () => {
  const { client, server, close } = await pair();
  try {
    const direct = directOf(server);
    if (direct === undefined) return;
    direct.start({ data: () => {}, end: () => {} });
    // Sizes from 1 byte to 70 KiB, so that writes queued behind one in flight are joined and split.
    const parts = Array.from(
      { length: 3000 },
      (_, i) => pattern(i % 7 === 0 ? 1 + (i * 997) % 71_000 : 1 + i % 300, i),
    );
    const results = parts.map((part) => direct.write(part));
    direct.end();
    const received = await within(
      readAll(client.readable, { pauseEvery: 16, pauseMs: 1 }),
      20_000,
      "reading",
    );
    assert.equal(received.byteLength, concat(parts).byteLength);
    assert.deepEqual(received, concat(parts));
    await within(Promise.all(results), 5000, "every write settled");
  } finally {
    await close();
  }
});

test("direct: a transport read through direct refuses its readable, and one read as a stream refuses direct", async () => {
  const { server, close } = await pair();
  const second = await pair();
  try {
    const direct = directOf(server);
    if (direct === undefined) return;
    direct.start({ data: () => {}, end: () => {} });
    assert.throws(() => server.readable, /direct/);
    const reader = second.server.readable.getReader();
    assert.throws(() => second.server.direct?.start({ data: () => {}, end: () => {} }), /consumer/);
    reader.releaseLock();
  } finally {
    await close();
    await second.close();
  }
});

test("direct: pause() stops the reads, so the peer's writes back up, and resume() delivers the rest in order", async () => {
  const { client, server, close } = await pair();
  try {
    const direct = directOf(server);
    if (direct === undefined) return;
    const chunks: Uint8Array[] = [];
    let pausedAt = -1;
    direct.start({
      data: (chunk) => {
        chunks.push(chunk);
        // Paused from within data(), as the broker does once a subscriber falls behind.
        if (pausedAt === -1) {
          direct.pause();
          pausedAt = chunks.length;
        }
      },
      end: () => {},
    });
    const sent = pattern(32 << 20, 3);
    const writer = client.writable.getWriter();
    const writing = writer.write(sent);
    await within(
      (async () => {
        while (pausedAt === -1) await sleep(5);
      })(),
      5000,
      "the first chunk",
    );
    await sleep(300);
    // A read already in flight may still arrive; then nothing, and far from all of it.
    assert.ok(chunks.length <= pausedAt + 1, `${chunks.length - pausedAt} chunks after pause()`);
    const taken = chunks.reduce((n, c) => n + c.length, 0);
    assert.ok(taken < sent.length / 2, `${taken} of ${sent.length} bytes read while paused`);
    direct.pause();
    direct.resume();
    direct.resume();
    await within(writing, 20_000, "the peer's write");
    await within(
      (async () => {
        while (chunks.reduce((n, c) => n + c.length, 0) < sent.length) await sleep(5);
      })(),
      20_000,
      "the rest",
    );
    assert.deepEqual(concat(chunks), sent);
  } finally {
    await close();
  }
});
