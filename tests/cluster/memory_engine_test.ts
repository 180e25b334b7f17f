/**
 * The in-memory engine keeps the contract the NATS engine keeps, so that what the cluster tests show on it
 * holds on NATS too; plus what only it can do: cut one engine off the hub and bring it back.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryHub } from "../../src/cluster/memory_engine.ts";
import { engineContract } from "./_engine_contract.ts";

engineContract("in-memory", () => {
  const hub = new MemoryHub();
  const engines = [hub.engine(), hub.engine()];
  return Promise.resolve({
    engines,
    close: async () => {
      for (const engine of engines) await engine.close();
    },
  });
});

test("an engine cut off the hub gets nothing, loses what it publishes, cannot store, and is told", async () => {
  const hub = new MemoryHub();
  const [a, b] = [hub.engine(), hub.engine()];
  const told: string[] = [];
  a.onStatus((status) => told.push(status));
  const got: string[] = [];
  a.subscribe("t.>", (data) => got.push(new TextDecoder().decode(data)));
  await a.stream("s", { subjects: ["t.s"], maxAgeMs: 60_000, maxBytes: 1 << 20 });
  a.setConnected(false);
  assert.equal(a.status, "disconnected");
  b.publish("t.x", new TextEncoder().encode("missed"));
  a.publish("t.y", new TextEncoder().encode("lost"));
  await assert.rejects(a.store("t.s", new Uint8Array(1)), /disconnected/);
  await b.flush();
  a.setConnected(true);
  b.publish("t.x", new TextEncoder().encode("after"));
  await b.flush();
  assert.deepEqual(got, ["after"]);
  assert.deepEqual(told, ["disconnected", "connected"]);
  await a.close();
  await b.close();
});
