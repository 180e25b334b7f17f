/**
 * The picked runtime's TCP and TLS shim over real sockets on 127.0.0.1 (ports picked with port 0): the same
 * file runs under Deno, Bun and Node and tests whichever `runtimeNet()` loads.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as tls from "node:tls";
import { runtimeNet } from "../../src/runtime/mod.ts";
import type { Listener, Transport } from "../../src/transport/transport.ts";
import { pattern, readAll, sleep, within } from "../_helpers.ts";
import { concat } from "../../src/bytes.ts";
import { Broker } from "../../src/broker/broker.ts";
import { connect } from "../../src/client/connect.ts";

const net = await runtimeNet();
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const host = "127.0.0.1";

function pem(name: string): string {
  return readFileSync(new URL(`../_certs/${name}`, import.meta.url), "utf8");
}
const ca = pem("ca.pem");
const otherCa = pem("other_ca.pem");
const cert = pem("server.pem");
const key = pem("server.key");

/** Accepts every connection of `listener`, keeps them for cleanup, and hands each to `serve`. */
function serveAll(listener: Listener, serve: (transport: Transport) => Promise<void>): () => Promise<void> {
  const accepted: Transport[] = [];
  const served: Promise<void>[] = [];
  const loop = (async () => {
    for await (const transport of listener) {
      accepted.push(transport);
      served.push(serve(transport).catch(() => {}));
    }
  })();
  return async () => {
    await listener.close();
    await within(loop, 2000, "listener iteration ends after close()");
    await within(Promise.all(accepted.map((t) => t.close())), 2000, "accepted transports close");
    await Promise.all(served);
  };
}

/** Echoes until the peer half-closes, then half-closes back. */
async function echo(transport: Transport): Promise<void> {
  await transport.readable.pipeTo(transport.writable);
}

/** Writes `chunks`, closes the writable, and returns everything read back. */
async function roundTrip(
  transport: Transport,
  chunks: Uint8Array[],
  slow?: { pauseEvery: number; pauseMs: number },
): Promise<Uint8Array> {
  const writing = (async () => {
    const writer = transport.writable.getWriter();
    for (const chunk of chunks) await writer.write(chunk);
    await writer.close();
  })();
  const [read] = await Promise.all([readAll(transport.readable, slow), writing]);
  return read;
}

/** A port nobody listens on: bound, then released. */
async function freePort(): Promise<number> {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  await listener.close();
  return listener.port;
}

test(`${runtime}: listenTcp() on port 0 reports the port it picked`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  try {
    assert.ok(listener.port > 0);
    assert.equal(listener.hostname, host);
  } finally {
    await listener.close();
  }
});

test(`${runtime}: connectTcp() round-trips many chunks of many sizes through an echo server`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  const stop = serveAll(listener, echo);
  try {
    const client = await net.connectTcp({ hostname: host, port: listener.port });
    const chunks = Array.from({ length: 500 }, (_, i) => pattern(1 + ((i * 997) % 3000), i));
    const back = await within(roundTrip(client, chunks), 5000, "echo of 500 chunks");
    assert.deepEqual(back, concat(chunks));
    await client.close();
  } finally {
    await stop();
  }
});

test(`${runtime}: 5 MB echo with a slow reader arrives intact`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  const stop = serveAll(listener, echo);
  try {
    const client = await net.connectTcp({ hostname: host, port: listener.port });
    const data = pattern(5 << 20, 7);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < data.byteLength; i += 65536) chunks.push(data.subarray(i, i + 65536));
    const back = await within(
      roundTrip(client, chunks, { pauseEvery: 16, pauseMs: 5 }),
      10_000,
      "5 MB echo",
    );
    assert.equal(back.byteLength, data.byteLength);
    assert.deepEqual(back, data);
    await client.close();
  } finally {
    await stop();
  }
});

test(`${runtime}: writes wait while the peer does not read (backpressure)`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  let server: Transport | undefined;
  const accepted = (async () => {
    for await (const transport of listener) {
      server = transport;
      return;
    }
  })();
  const client = await net.connectTcp({ hostname: host, port: listener.port });
  try {
    await within(accepted, 2000, "accept");
    const writer = client.writable.getWriter();
    const chunk = pattern(65536);
    const limit = 256 << 20;
    let written = 0;
    let blocked = false;
    while (written < limit) {
      const write = writer.write(chunk);
      const settled = await Promise.race([write.then(() => true), sleep(200).then(() => false)]);
      written += chunk.byteLength;
      if (!settled) {
        blocked = true;
        break;
      }
    }
    assert.ok(blocked, `writes never waited: ${written} bytes accepted without a reader`);
    // Now read: everything written arrives and the blocked write completes.
    const reading = readAll(server!.readable);
    await within(writer.close(), 10_000, "pending writes drain once the peer reads");
    const received = await within(reading, 10_000, "reader sees everything");
    assert.equal(received.byteLength, written);
  } finally {
    await client.close();
    await server?.close();
    await listener.close();
  }
});

test(`${runtime}: close() settles and a waiting write rejects while the peer does not read`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  let server: Transport | undefined;
  const accepted = (async () => {
    for await (const transport of listener) {
      server = transport;
      return;
    }
  })();
  const client = await net.connectTcp({ hostname: host, port: listener.port });
  try {
    await within(accepted, 2000, "accept");
    const writer = client.writable.getWriter();
    const chunk = pattern(1 << 20);
    let pending: Promise<void> | undefined;
    for (let i = 0; i < 256 && pending === undefined; i++) {
      const write = writer.write(chunk);
      if (!await Promise.race([write.then(() => true), sleep(200).then(() => false)])) pending = write;
    }
    assert.ok(pending !== undefined, "writes never waited");
    await within(Promise.resolve(client.close()), 2000, "close() with a full send buffer");
    await assert.rejects(within(pending, 2000, "the waiting write settles"));
  } finally {
    await client.close();
    await server?.close();
    await listener.close();
  }
});

test(`${runtime}: a peer that resets the connection ends the readable and fails writes`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  const stop = serveAll(listener, async (transport) => {
    // Closing with unread bytes makes the kernel send RST instead of FIN.
    await sleep(20);
    await transport.close();
  });
  try {
    const client = await net.connectTcp({ hostname: host, port: listener.port });
    const writer = client.writable.getWriter();
    await writer.write(pattern(100_000));
    const reader = client.readable.getReader();
    const result = await within(
      reader.read().catch((error) => ({ error })),
      2000,
      "readable ends after a reset",
    );
    assert.ok("error" in result || result.done);
    const failing = async () => {
      for (let i = 0; i < 100; i++) {
        await writer.write(pattern(65536));
        await sleep(1);
      }
    };
    await assert.rejects(
      within(failing(), 3000, "writes fail after a reset"),
      (e) => !String(e).includes("Timed out"),
    );
    await client.close();
  } finally {
    await stop();
  }
});

test(`${runtime}: a listener accepts several connections at once`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  const seen: number[] = [];
  const stop = serveAll(listener, async (transport) => {
    const bytes = await readAll(transport.readable);
    seen.push(bytes[0]);
    const writer = transport.writable.getWriter();
    await writer.write(new Uint8Array([bytes[0] + 100]));
    await writer.close();
  });
  try {
    const replies = await within(
      Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(async (id) => {
        const client = await net.connectTcp({ hostname: host, port: listener.port });
        const back = await roundTrip(client, [new Uint8Array([id])]);
        await client.close();
        return back[0];
      })),
      5000,
      "8 concurrent connections",
    );
    assert.deepEqual(replies, [100, 101, 102, 103, 104, 105, 106, 107]);
    assert.deepEqual(seen.sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  } finally {
    await stop();
  }
});

test(`${runtime}: close() on one side ends the other side's readable, both ways`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  const servers: Transport[] = [];
  const accepting = (async () => {
    for await (const transport of listener) servers.push(transport);
  })();
  try {
    for (const closer of ["client", "server"] as const) {
      const client = await net.connectTcp({ hostname: host, port: listener.port });
      while (servers.length === 0) await sleep(1);
      const server = servers.pop()!;
      const [closing, other] = closer === "client" ? [client, server] : [server, client];
      const reader = other.readable.getReader();
      const read = reader.read();
      await closing.close();
      // A peer's close ends the readable: done, or an error (a reset); never a hang.
      const result = await within(read.catch((error) => ({ error })), 2000, `${closer} close seen by peer`);
      assert.ok("error" in result || result.done, `unexpected ${JSON.stringify(result)}`);
      await other.close();
    }
  } finally {
    await listener.close();
    await within(accepting, 2000, "accept loop ends");
  }
});

test(`${runtime}: close() is idempotent, always settles, and writes after it reject`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  const stop = serveAll(listener, echo);
  try {
    const client = await net.connectTcp({ hostname: host, port: listener.port });
    const writer = client.writable.getWriter();
    await writer.write(new Uint8Array([1]));
    await within(Promise.all([client.close(), client.close()]), 2000, "two close() calls");
    await within(Promise.resolve(client.close()), 2000, "a third close()");
    await assert.rejects(within(writer.write(new Uint8Array([2])), 2000, "write after close"));
    // The local readable ends too.
    const reader = client.readable.getReader();
    const ends = async () => {
      for (let r = await reader.read(); !r.done; r = await reader.read());
    };
    await within(ends().catch(() => {}), 2000, "local readable ends after close()");
  } finally {
    await stop();
  }
});

test(`${runtime}: connectTcp() rejects promptly on a refused port and at once on an aborted signal`, async () => {
  const port = await freePort();
  const started = performance.now();
  await assert.rejects(
    within(net.connectTcp({ hostname: host, port, signal: AbortSignal.timeout(1000) }), 3000, "refused"),
  );
  assert.ok(performance.now() - started < 1500, "a refused connection rejects promptly");
  const abort = new AbortController();
  const reason = new Error("stop");
  abort.abort(reason);
  await assert.rejects(net.connectTcp({ hostname: host, port, signal: abort.signal }), (e) => e === reason);
  // Aborting while connecting rejects with the reason.
  const later = new AbortController();
  const attempt = net.connectTcp({ hostname: host, port, signal: later.signal });
  later.abort(reason);
  await assert.rejects(
    within(attempt, 2000, "abort while connecting"),
    (e) => e === reason || e instanceof Error,
  );
});

test(`${runtime}: listener.close() ends a pending iteration`, async () => {
  const listener = await net.listenTcp({ hostname: host, port: 0 });
  const iterating = (async () => {
    let count = 0;
    for await (const _ of listener) count++;
    return count;
  })();
  await sleep(10);
  await listener.close();
  assert.equal(await within(iterating, 2000, "iteration ends"), 0);
});

test(`${runtime}: connectTls() verifies the server against caCerts and round-trips data`, async () => {
  const listener = await net.listenTls({ hostname: host, port: 0, cert, key });
  const stop = serveAll(listener, echo);
  try {
    for (const serverName of [undefined, "localhost"]) {
      const client = await within(
        net.connectTls({ hostname: host, port: listener.port, caCerts: [ca], serverName }),
        5000,
        `TLS connect (serverName ${serverName})`,
      );
      const data = pattern(200_000, 3);
      const back = await within(
        roundTrip(client, [data.subarray(0, 1000), data.subarray(1000)]),
        5000,
        "echo",
      );
      assert.deepEqual(back, data);
      await client.close();
    }
  } finally {
    await stop();
  }
});

test(`${runtime}: close() of one TLS end settles soon, and what was written arrives, while the peer stays open`, async () => {
  const listener = await net.listenTls({ hostname: host, port: 0, cert, key });
  const open: Transport[] = [];
  try {
    for (const closing of ["client", "server"] as const) {
      const accepted = (async () => {
        for await (const transport of listener) return transport;
        throw new Error("the listener closed");
      })();
      const client = await within(
        net.connectTls({ hostname: host, port: listener.port, caCerts: [ca] }),
        5000,
        "TLS",
      );
      const server = await within(accepted, 5000, "accepting");
      open.push(client, server);
      const [from, to] = closing === "client" ? [client, server] : [server, client];
      // The peer reads everything but never closes its end.
      const reading = readAll(to.readable);
      const data = pattern(100_000, 5);
      const writer = from.writable.getWriter();
      await writer.write(data);
      writer.releaseLock();
      await within(Promise.resolve(from.close()), 3000, `the ${closing}'s close() while the peer stays open`);
      assert.deepEqual(await within(reading, 5000, "the peer reads to the end"), data);
    }
  } finally {
    await Promise.all(open.map((transport) => transport.close()));
    await listener.close();
  }
});

test(`${runtime}: connectTls() rejects a server signed by another CA or named otherwise`, async () => {
  const listener = await net.listenTls({ hostname: host, port: 0, cert, key });
  const stop = serveAll(listener, echo);
  try {
    await assert.rejects(
      within(net.connectTls({ hostname: host, port: listener.port, caCerts: [otherCa] }), 5000, "wrong CA"),
      (e) => e instanceof Error && !e.message.startsWith("Timed out"),
    );
    await assert.rejects(
      within(net.connectTls({ hostname: host, port: listener.port }), 5000, "no CA"),
      (e) => e instanceof Error && !e.message.startsWith("Timed out"),
    );
    await assert.rejects(
      within(
        net.connectTls({ hostname: host, port: listener.port, caCerts: [ca], serverName: "example.com" }),
        5000,
        "wrong name",
      ),
      (e) => e instanceof Error && !e.message.startsWith("Timed out"),
    );
  } finally {
    await stop();
  }
});

test(`${runtime}: connectTls({ insecure: true }) skips verification, or says it cannot on Deno`, async () => {
  const listener = await net.listenTls({ hostname: host, port: 0, cert, key });
  const stop = serveAll(listener, echo);
  try {
    const connecting = net.connectTls({ hostname: host, port: listener.port, insecure: true });
    if (runtime === "deno") {
      await assert.rejects(connecting, /Cannot skip TLS certificate verification on Deno/);
      return;
    }
    const client = await within(connecting, 5000, "insecure TLS connect");
    const back = await within(roundTrip(client, [pattern(10)]), 5000, "echo");
    assert.deepEqual(back, pattern(10));
    await client.close();
  } finally {
    await stop();
  }
});

test(`${runtime}: connectTls() presents a client certificate (mutual TLS)`, async () => {
  // Our listeners do not ask for client certificates, so the server here is node:tls, which all three run.
  const server = tls.createServer(
    { cert, key, ca: [ca], requestCert: true, rejectUnauthorized: true },
    (socket) => socket.end(new Uint8Array([socket.authorized ? 1 : 0])),
  );
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  try {
    const client = await within(
      net.connectTls({ hostname: host, port, caCerts: [ca], cert, key }),
      5000,
      "mutual TLS connect",
    );
    assert.deepEqual(await within(readAll(client.readable), 5000, "reply"), new Uint8Array([1]));
    await client.close();
    // Without a certificate the server refuses: at the handshake, or (TLS 1.3) on the first read.
    const refused = async () => {
      const anonymous = await net.connectTls({ hostname: host, port, caCerts: [ca] });
      try {
        assert.equal((await readAll(anonymous.readable)).byteLength, 0);
      } finally {
        await anonymous.close();
      }
    };
    await within(refused().catch(() => {}), 5000, "refused without a client certificate");
  } finally {
    server.close();
  }
});

test("a loop that awaits each QoS 0 publish over TCP lets timers and reads run", async () => {
  const broker = new Broker();
  const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false });
  try {
    let fired = false;
    setTimeout(() => fired = true, 0);
    let published = 0;
    while (!fired && published < 50_000) {
      await client.publish("spin", "x");
      published++;
    }
    assert.ok(fired, `a timer did not run during ${published} awaited publishes`);
  } finally {
    await client.close();
    await broker.close();
  }
});
