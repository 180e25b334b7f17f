/**
 * A node's journal (`src/cluster/node_journal.ts`) on the in-memory engine: what a run wrote is read back as
 * its sessions, a checkpoint replaces what came before (and the older records are purged), a checkpoint or
 * record that did not make it stops the reader where the run's clients could not have seen more.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ClusterEngine } from "../../src/cluster/engine.ts";
import { MemoryHub } from "../../src/cluster/memory_engine.ts";
import { journalStream, NodeJournal, readJournal } from "../../src/cluster/node_journal.ts";
import type { BrokerChange, DeliverySnapshot, SessionMeta } from "../../src/machine/broker_machine.ts";

const BOOT = "a:run-1";

function meta(clientId: string, extra: Partial<SessionMeta> = {}): BrokerChange {
  return {
    type: "session",
    session: { clientId, expiryInterval: 60, subscriptions: [], inboundQoS2: [], ...extra },
  };
}

function delivery(clientId: string, key: number, text: string, packetId?: number): BrokerChange {
  const d: DeliverySnapshot = {
    message: { topic: "t", payload: new TextEncoder().encode(text), qos: 1, retain: false },
    qos: 1,
    retain: false,
  };
  if (packetId !== undefined) {
    d.packetId = packetId;
    d.released = false;
  }
  return { type: "delivery", clientId, key, delivery: d };
}

/** A journal on its own hub, whose engine refuses the stores numbered in `refused` (from 1, this run's). */
async function setUp(state: () => BrokerChange[], refused: number[] = [], up = { value: true }) {
  const hub = new MemoryHub();
  const engine = hub.engine();
  await engine.stream(journalStream("mqtt"), { subjects: ["mqtt_j.>"], maxAgeMs: 60_000, maxBytes: 1 << 30 });
  let stores = 0;
  const wrapped = new Proxy(engine, {
    get(target, key) {
      if (key === "store") {
        return (subject: string, data: Uint8Array) =>
          refused.includes(++stores)
            ? Promise.reject(new Error("refused on purpose"))
            : target.store(subject, data);
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as ClusterEngine;
  const logs: string[] = [];
  const journal = new NodeJournal({
    engine: wrapped,
    prefix: "mqtt",
    boot: BOOT,
    checkpoint: state,
    routedSoFar: () => ({ seen: { [BOOT]: stores }, unrouted: [] }),
    available: () => up.value,
    log: (_level, message) => logs.push(message),
  });
  const records = () => hub.streamNamed(journalStream("mqtt"))?.messages.length ?? 0;
  const read = async () => texts((await readJournal(engine, "mqtt", BOOT))?.sessions[0]?.queue ?? []);
  return { engine, journal, logs, records, read };
}

const texts = (deliveries: DeliverySnapshot[]) =>
  deliveries.map((d) => new TextDecoder().decode(d.message.payload));

describe("node journal", () => {
  it("reads back what a run wrote: sessions, queued and in-flight deliveries in order, ends", async () => {
    const { journal, engine } = await setUp(() => [meta("s")]);
    await journal.write([meta("s"), delivery("s", 1, "one"), delivery("s", 2, "two")]);
    await journal.write([delivery("s", 3, "three"), {
      type: "delivery",
      clientId: "s",
      key: 1,
      delivery: undefined,
    }]);
    await journal.write([delivery("s", 4, "two", 7), {
      type: "delivery",
      clientId: "s",
      key: 2,
      delivery: undefined,
    }]);
    await journal.write([
      meta("gone", { will: { topic: "w", payload: new Uint8Array(), qos: 0, retain: false } }),
    ]);
    await journal.write([{ type: "sessionEnded", clientId: "gone" }, {
      type: "retained",
      topic: "r",
      message: undefined,
    }]);
    const state = await readJournal(engine, "mqtt", BOOT);
    assert.ok(state !== undefined);
    assert.deepEqual(state.sessions.map((s) => s.clientId), ["s"]);
    const [s] = state.sessions;
    assert.deepEqual(texts(s.queue), ["three"]);
    assert.deepEqual(texts(s.inflight), ["two"]);
    assert.equal(s.inflight[0].packetId, 7);
    assert.equal(await readJournal(engine, "mqtt", "a:another-run"), undefined);
  });

  it("a checkpoint replaces what came before, and the records before it are purged", async () => {
    let whole: BrokerChange[] = [meta("s"), delivery("s", 1, "x")];
    // Store 3 (the third record) is refused.
    const { journal, records, read, logs } = await setUp(() => whole, [3]);
    // The first write of a run is a checkpoint of the whole state.
    await journal.write([meta("s")]);
    await journal.write([delivery("s", 2, "y")]);
    assert.equal(records(), 2);
    assert.deepEqual(await read(), ["x", "y"]);
    whole = [meta("s"), delivery("s", 5, "after")];
    // Refused: what waits for it waits for the checkpoint that replaces it.
    await journal.write([delivery("s", 3, "refused")]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(records(), 1, "the records before the checkpoint are purged");
    assert.deepEqual(await read(), ["after"]);
    assert.deepEqual(logs, []);
  });

  it("stops at a record that did not make it, when no checkpoint made it after; what waited is let go", async () => {
    const whole: BrokerChange[] = [meta("s"), delivery("s", 1, "kept")];
    // Store 3 refused, then the three checkpoints that try to replace it (stores 5 to 7).
    const { journal, read, logs } = await setUp(() => whole, [3, 5, 6, 7]);
    await journal.write([meta("s")]);
    await journal.write([delivery("s", 2, "two")]);
    const lost = journal.write([delivery("s", 3, "lost")]);
    const after = journal.write([delivery("s", 4, "after the gap")]);
    await Promise.all([lost, after]);
    assert.deepEqual(await read(), ["kept", "two"]);
    assert.equal(logs.length, 1);
    assert.match(logs[0], /Could not write the sessions' journal/);
  });

  it("reads a checkpoint in several parts, and ignores one that misses a part", async () => {
    const big = (i: number) => delivery("s", i, `${i}`.repeat(150 * 1024));
    let whole: BrokerChange[] = [meta("s"), big(1), big(2), big(3)];
    // Store 5 refused: the delta after the first checkpoint (stores 1-3) and its own record (4).
    const { journal, read, records } = await setUp(() => whole, [5, 7, 10, 13]);
    await journal.write([meta("s")]);
    assert.equal(records(), 3, "three parts");
    assert.deepEqual((await read()).map((t) => t.slice(0, 1)), ["1", "2", "3"]);
    await journal.write([delivery("s", 4, "small")]);
    // Refused; each checkpoint that tries to replace it (stores 6-8, 9-11, 12-14) misses its second part.
    whole = [meta("s"), big(7), big(8), big(9)];
    await journal.write([delivery("s", 5, "refused")]);
    assert.deepEqual((await read()).map((t) => t.slice(0, 1)), ["1", "2", "3", "s"]);
  });

  it("writes nothing while the engine is away, and a checkpoint when repaired once it is back", async () => {
    const up = { value: true };
    let whole: BrokerChange[] = [meta("s"), delivery("s", 1, "before")];
    const { journal, read } = await setUp(() => whole, [], up);
    await journal.write([meta("s")]);
    up.value = false;
    assert.equal(journal.write([delivery("s", 2, "while away")]), undefined, "nothing to wait for");
    whole = [meta("s"), delivery("s", 1, "before"), delivery("s", 2, "while away")];
    assert.deepEqual(await read(), ["before"]);
    up.value = true;
    journal.repair();
    await journal.close(false);
    assert.deepEqual(await read(), ["before", "while away"]);
  });
});
