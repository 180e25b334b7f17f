import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ClusterEngine, EngineStatus } from "../../src/cluster/engine.ts";
import { openNatsEngine } from "../../src/cluster/nats_engine.ts";
import { freePort } from "../_mosquitto.ts";
import { engineContract } from "./_engine_contract.ts";
import { type NatsServer, natsSkipReason, startNats } from "./_nats.ts";

const skip = await natsSkipReason();
if (skip !== undefined) console.log(skip);

const decoder = new TextDecoder();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not after ${ms} ms`);
    await sleep(20);
  }
}

if (skip === undefined) {
  engineContract("NATS", async () => {
    const server = await startNats();
    if (server === undefined) return undefined;
    const engines = [
      await openNatsEngine({ servers: server.url, name: "contract-a" }),
      await openNatsEngine({ servers: server.url, name: "contract-b" }),
    ];
    return {
      engines,
      async close() {
        for (const engine of engines) await engine.close();
        await server.stop();
      },
    };
  });
}

describe("openNatsEngine()", { skip }, () => {
  test("rejects when no server answers", async () => {
    const port = await freePort();
    await assert.rejects(openNatsEngine({ servers: `127.0.0.1:${port}`, timeoutMs: 1000 }), Error);
  });

  test("follows the connection through a server crash and restart; store() rejects meanwhile", async () => {
    const server = (await startNats()) as NatsServer;
    const engines: ClusterEngine[] = [];
    try {
      const a = await openNatsEngine({ servers: server.url, name: "restart-a", reconnectWaitMs: 100 });
      engines.push(a);
      const b = await openNatsEngine({ servers: server.url, name: "restart-b", reconnectWaitMs: 100 });
      engines.push(b);
      const changes: [EngineStatus, string | undefined][] = [];
      a.onStatus((status, detail) => changes.push([status, detail]));
      await a.stream("RESTART", { subjects: ["restart.stored.>"], maxAgeMs: 60_000, maxBytes: 1 << 20 });
      const received: string[] = [];
      a.subscribe("restart.>", (data, subject) => received.push(`${subject} ${decoder.decode(data)}`));
      const bucket = await a.bucket("restart");
      const watched: string[] = [];
      await bucket.watch((entry) =>
        watched.push(`${entry.key} ${entry.value && decoder.decode(entry.value)}`)
      );
      await a.flush();

      await server.kill();
      await until(() => a.status === "disconnected" && b.status === "disconnected", 5000, "disconnected");
      assert.equal(changes[0]?.[0], "disconnected");
      assert.match(changes[0]?.[1] ?? "", /disconnected/);
      const started = Date.now();
      await assert.rejects(
        a.store("restart.stored.x", new Uint8Array([1])),
        /Cannot store .*: the NATS connection is down/,
      );
      await assert.rejects(a.request("restart.service", new Uint8Array([1]), 5000), /connection is down/);
      await assert.rejects(bucket.put("k", new Uint8Array([1])), /connection is down/);
      await assert.rejects(a.flush(), /connection is down/);
      await assert.rejects(a.bucket("other"), /connection is down/);
      assert.ok(Date.now() - started < 1000, "rejected at once");
      b.publish("restart.lost", new Uint8Array([1])); // does not throw

      await server.restart();
      await until(() => a.status === "connected" && b.status === "connected", 10_000, "reconnected");
      assert.deepEqual(changes.map(([status]) => status), ["disconnected", "connected"]);
      assert.match(changes[1][1] ?? "", /reconnected/);
      await a.flush();
      b.publish("restart.plain", new TextEncoder().encode("again"));
      await b.store("restart.stored.y", new TextEncoder().encode("kept"));
      await until(() => received.length >= 2, 5000, "messages after the restart");
      assert.deepEqual(received, ["restart.plain again", "restart.stored.y kept"]);
      await (await b.bucket("restart")).put("k", new TextEncoder().encode("v"));
      await until(() => watched.length >= 1, 10_000, "the watch after the restart");
      assert.deepEqual(watched, ["k v"]);
    } finally {
      for (const engine of engines) await engine.close();
      await server.stop();
    }
  });

  test("bucket() applies a new maxAgeMs to a bucket that exists", async () => {
    const server = (await startNats()) as NatsServer;
    const engine = await openNatsEngine({ servers: server.url });
    try {
      const kept = await engine.bucket("aging");
      await kept.put("k", new Uint8Array([1]));
      const aging = await engine.bucket("aging", { maxAgeMs: 500 });
      await until(async () => (await aging.get("k")) === undefined, 5000, "the entry to expire");
      await engine.bucket("aging");
      await kept.put("k", new Uint8Array([2]));
      await sleep(700);
      assert.deepEqual((await kept.get("k"))?.value, new Uint8Array([2]));
    } finally {
      await engine.close();
      await server.stop();
    }
  });

  test("close() ends the connection: status disconnected, publish() still does not throw", async () => {
    const server = (await startNats()) as NatsServer;
    try {
      const engine = await openNatsEngine({ servers: server.url });
      const changes: string[] = [];
      engine.onStatus((status, detail) => changes.push(`${status} ${detail}`));
      await engine.close();
      await engine.close();
      await until(() => engine.status === "disconnected", 2000, "disconnected");
      assert.deepEqual(changes, ["disconnected closed"]);
      engine.publish("after.close", new Uint8Array([1]));
      await assert.rejects(engine.store("after.close", new Uint8Array([1])), /connection is closed/);
    } finally {
      await server.stop();
    }
  });
});
