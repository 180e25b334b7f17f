/**
 * The behaviour every {@linkcode ClusterEngine} must have, the way a broker cluster uses it, as `node:test`
 * tests: each engine's test file calls {@linkcode engineContract} with a function that opens two or more
 * engines on one shared cluster (NATS, the in-memory engine, …).
 *
 * Subscriptions reach the cluster when the subscribing engine's `flush()` resolved: the tests flush before
 * another engine publishes, as the cluster does.
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type BucketEntry,
  type ClusterEngine,
  NoResponders,
  type ReplayStart,
  RevisionConflict,
} from "../../src/cluster/engine.ts";

/** Engines connected to one cluster, and how to close them all. */
export interface EngineCluster {
  /** At least two engines of one cluster. */
  engines: ClusterEngine[];
  /** Closes the engines and whatever runs the cluster. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function text(value: string): Uint8Array {
  return encoder.encode(value);
}

/** Rejects when `promise` takes longer than `ms`, and clears its timer either way. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls `check` until it returns true, for at most `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not after ${ms} ms`);
    await sleep(20);
  }
}

/** A handler that records what it receives, and waits for a count. */
function recorder<T>() {
  const items: T[] = [];
  return {
    items,
    push: (item: T) => void items.push(item),
    wait: (count: number, what: string, ms = 5000) => until(() => items.length >= count, ms, what),
  };
}

let names = 0;
/** A name no other test (or earlier run against the same server) uses. */
function unique(prefix: string): string {
  return `${prefix}${++names}${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Registers the engine contract tests.
 *
 * @param name The engine's name in test names.
 * @param open Opens at least two engines on one fresh cluster; `undefined` skips the tests (after the opener
 *   printed why).
 */
export function engineContract(name: string, open: () => Promise<EngineCluster | undefined>): void {
  describe(`${name} engine contract`, () => {
    let cluster: EngineCluster | undefined;
    let a: ClusterEngine;
    let b: ClusterEngine;
    before(async () => {
      cluster = await within(open(), 30_000, "opening the engines");
      if (cluster === undefined) return;
      assert.ok(cluster.engines.length >= 2, "the contract needs two engines");
      [a, b] = cluster.engines;
    });
    after(async () => {
      await cluster?.close();
    });

    /** A test that needs the engines; it passes without running when the cluster could not be opened. */
    function test(title: string, body: () => Promise<void>): void {
      it(title, async () => {
        if (cluster !== undefined) await within(body(), 30_000, title);
      });
    }

    test("every engine is connected", () => {
      for (const engine of cluster!.engines) assert.equal(engine.status, "connected");
      return Promise.resolve();
    });

    test("publish() reaches subscribers on other engines, with * and > wildcards", async () => {
      const p = unique("wild");
      const star = recorder<[string, string]>();
      const rest = recorder<[string, string]>();
      const exact = recorder<[string, string]>();
      const record = (r: typeof star) => (data: Uint8Array, subject: string) => {
        assert.ok(data instanceof Uint8Array && data.constructor === Uint8Array, "plain Uint8Array");
        r.push([subject, decoder.decode(data)]);
      };
      const subscriptions = [
        a.subscribe(`${p}.*.temp`, record(star)),
        a.subscribe(`${p}.>`, record(rest)),
        b.subscribe(`${p}.x`, record(exact)),
      ];
      await a.flush();
      await b.flush();
      b.publish(`${p}.a.temp`, text("1"));
      b.publish(`${p}.a.b.temp`, text("2"));
      a.publish(`${p}.x`, text("3"));
      b.publish(`${p}`, text("4"));
      await rest.wait(3, "p.>");
      await star.wait(1, "p.*.temp");
      await exact.wait(1, "p.x");
      await a.flush();
      await b.flush();
      await sleep(50);
      assert.deepEqual(star.items, [[`${p}.a.temp`, "1"]]);
      assert.deepEqual(
        rest.items.sort(),
        [[`${p}.a.b.temp`, "2"], [`${p}.a.temp`, "1"], [`${p}.x`, "3"]],
      );
      assert.deepEqual(exact.items, [[`${p}.x`, "3"]]);
      for (const subscription of subscriptions) subscription.unsubscribe();
    });

    test("publish() delivers the messages of one publisher in the order it sent them", async () => {
      const subject = unique("order");
      const received = recorder<number>();
      const subscription = b.subscribe(
        subject,
        (data) => received.push(new DataView(data.buffer, data.byteOffset).getUint32(0)),
      );
      await b.flush();
      for (let i = 0; i < 1000; i++) {
        const data = new Uint8Array(4);
        new DataView(data.buffer).setUint32(0, i);
        a.publish(subject, data);
      }
      await received.wait(1000, "1000 messages");
      assert.deepEqual(received.items, Array.from({ length: 1000 }, (_, i) => i));
      subscription.unsubscribe();
    });

    test("unsubscribe() stops the deliveries and may be called twice", async () => {
      const subject = unique("unsub");
      const received = recorder<string>();
      const subscription = b.subscribe(subject, (data) => received.push(decoder.decode(data)));
      await b.flush();
      a.publish(subject, text("before"));
      await received.wait(1, "the first message");
      subscription.unsubscribe();
      subscription.unsubscribe();
      await b.flush();
      a.publish(subject, text("after"));
      await a.flush();
      await sleep(100);
      assert.deepEqual(received.items, ["before"]);
    });

    test("a queue group delivers each message to exactly one of its subscribers, across engines", async () => {
      const subject = unique("queue");
      const first = recorder<string>();
      const second = recorder<string>();
      const everyone = recorder<string>();
      const subscriptions = [
        a.subscribe(subject, (data) => first.push(decoder.decode(data)), "workers"),
        b.subscribe(subject, (data) => second.push(decoder.decode(data)), "workers"),
        b.subscribe(subject, (data) => everyone.push(decoder.decode(data))),
      ];
      await a.flush();
      await b.flush();
      const sent = Array.from({ length: 200 }, (_, i) => `m${i}`);
      for (const message of sent) a.publish(subject, text(message));
      await everyone.wait(200, "the plain subscriber");
      await until(() => first.items.length + second.items.length >= 200, 5000, "the queue group");
      await a.flush();
      await b.flush();
      await sleep(50);
      assert.equal(first.items.length + second.items.length, 200);
      assert.deepEqual([...first.items, ...second.items].sort(), [...sent].sort());
      assert.deepEqual(everyone.items, sent);
      for (const subscription of subscriptions) subscription.unsubscribe();
    });

    test("request() gets the answer of serve() on another engine, sync or async", async () => {
      const subject = unique("echo");
      const server = b.serve(subject, (data) => text(`echo ${decoder.decode(data)}`));
      const later = b.serve(`${subject}.later`, async (data) => {
        await sleep(10);
        return text(`later ${decoder.decode(data)}`);
      });
      await b.flush();
      assert.equal(decoder.decode(await a.request(subject, text("hi"), 2000)), "echo hi");
      const answer = await a.request(`${subject}.later`, text("there"), 2000);
      assert.ok(answer.constructor === Uint8Array, "plain Uint8Array");
      assert.equal(decoder.decode(answer), "later there");
      server.unsubscribe();
      later.unsubscribe();
    });

    test("request() rejects with NoResponders, at once, when no one serves the subject", async () => {
      const started = Date.now();
      await assert.rejects(a.request(unique("nobody"), text("?"), 5000), NoResponders);
      assert.ok(Date.now() - started < 2000, "at once, not after the timeout");
    });

    test("request() rejects after timeoutMs when the server does not answer", async () => {
      const subject = unique("silent");
      let release!: () => void;
      const held = new Promise<Uint8Array>((resolve) => release = () => resolve(text("too late")));
      const server = b.serve(subject, () => held);
      await b.flush();
      const started = Date.now();
      await assert.rejects(a.request(subject, text("?"), 300), Error);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 3000, `rejected after ${elapsed} ms`);
      release();
      server.unsubscribe();
    });

    test("store() resolves once stored, and subscribers receive the message", async () => {
      const stream = unique("STORE");
      const subject = `${stream.toLowerCase()}.stored`;
      await a.stream(stream, { subjects: [`${subject}.>`], maxAgeMs: 60_000, maxBytes: 1 << 20 });
      const received = recorder<[string, string]>();
      const subscription = b.subscribe(`${subject}.>`, (data, s) => received.push([s, decoder.decode(data)]));
      await b.flush();
      await a.store(`${subject}.one`, text("kept"));
      await b.store(`${subject}.two`, text("also kept"));
      await received.wait(2, "the stored messages");
      // Not necessarily in this order: an acknowledgement says the message is stored, not that subscribers got
      // it (NATS can deliver b's later message first).
      assert.deepEqual(received.items.sort(), [[`${subject}.one`, "kept"], [`${subject}.two`, "also kept"]]);
      subscription.unsubscribe();
    });

    test("store() resolves with the stream's sequence number, and purge() removes one subject's older messages", async () => {
      const { stream, p } = await replayStream();
      const sequences: number[] = [];
      for (let i = 1; i <= 6; i++) {
        sequences.push(await (i % 2 ? a : b).store(`${p}.${i % 3 ? "x" : "y"}`, text(`m${i}`)));
      }
      assert.deepEqual(sequences, [1, 2, 3, 4, 5, 6]);
      await a.purge(stream, `${p}.x`, 1);
      await a.purge(stream, `${p}.x`, 0);
      assert.equal((await replayed(b, stream, { sequence: 1 })).length, 6, "nothing is below 1");
      await a.purge(stream, `${p}.x`, 5);
      // x: m1 m2 m4 m5 (1, 2, 4, 5), y: m3 m6 (3, 6); the x ones below 5 are gone.
      assert.deepEqual(await replayed(b, stream, { sequence: 1 }), [["m3", 3], ["m5", 5], ["m6", 6]]);
    });

    test("store() rejects when no stream stores the subject", async () => {
      await assert.rejects(a.store(`${unique("unstored")}.x`, text("lost")), Error);
    });

    test("stream() updates a stream that exists", async () => {
      const stream = unique("UPDATED");
      const subject = stream.toLowerCase();
      await a.stream(stream, { subjects: [`${subject}.a`], maxAgeMs: 60_000, maxBytes: 1 << 20 });
      await a.stream(stream, { subjects: [`${subject}.a`], maxAgeMs: 60_000, maxBytes: 1 << 20 });
      await assert.rejects(a.store(`${subject}.b`, text("not yet")), Error);
      await b.stream(stream, {
        subjects: [`${subject}.a`, `${subject}.b`],
        maxAgeMs: 30_000,
        maxBytes: 1 << 21,
      });
      await a.store(`${subject}.b`, text("now"));
    });

    /** A stream of its own on engine a: its name, and the prefix of the subjects it stores. */
    async function replayStream(maxBytes = 1 << 20): Promise<{ stream: string; p: string }> {
      const stream = unique("REPLAY");
      const p = stream.toLowerCase();
      await a.stream(stream, { subjects: [`${p}.>`], maxAgeMs: 60_000, maxBytes });
      return { stream, p };
    }

    /** What `engine.replay()` handed over, as [data, sequence], and whether every `data` was a plain Uint8Array. */
    async function replayed(
      engine: ClusterEngine,
      stream: string,
      from: ReplayStart,
      subject?: string,
    ): Promise<[string, number][]> {
      const got: [string, number][] = [];
      let plain = true;
      await engine.replay(stream, from, (data, sequence) => {
        plain &&= data.constructor === Uint8Array;
        got.push([decoder.decode(data), sequence]);
      }, subject);
      assert.ok(plain, "plain Uint8Array");
      return got;
    }

    test("replay() from a sequence hands over what the stream stored from there on, in order", async () => {
      const { stream, p } = await replayStream();
      for (let i = 1; i <= 5; i++) await (i % 2 ? a : b).store(`${p}.m`, text(`m${i}`));
      const all: [string, number][] = [["m1", 1], ["m2", 2], ["m3", 3], ["m4", 4], ["m5", 5]];
      assert.deepEqual(await replayed(b, stream, { sequence: 1 }), all);
      assert.deepEqual(await replayed(a, stream, { sequence: 3 }), all.slice(2));
      assert.deepEqual(await replayed(a, stream, { sequence: 5 }), all.slice(4));
      assert.deepEqual(await replayed(a, stream, { sequence: 0 }), all);
    });

    test("replay() from a time hands over only what was stored at that time or later", async () => {
      const { stream, p } = await replayStream();
      for (const m of ["early1", "early2", "early3"]) await a.store(`${p}.m`, text(m));
      await sleep(50);
      const timeMs = Date.now();
      for (const m of ["late1", "late2", "late3"]) await b.store(`${p}.m`, text(m));
      assert.deepEqual(await replayed(b, stream, { timeMs }), [["late1", 4], ["late2", 5], ["late3", 6]]);
      assert.deepEqual((await replayed(a, stream, { timeMs: timeMs - 60_000 })).length, 6);
    });

    test("replay() with a subject hands over only the messages on matching subjects", async () => {
      const { stream, p } = await replayStream();
      for (const s of ["a.1", "b.1", "a.2", "a.x.y", "b.2"]) await a.store(`${p}.${s}`, text(s));
      // The last matching message is not the stream's last: the replay must end anyway, without a timeout.
      const started = Date.now();
      assert.deepEqual(await replayed(b, stream, { sequence: 1 }, `${p}.a.>`), [["a.1", 1], ["a.2", 3], [
        "a.x.y",
        4,
      ]]);
      assert.deepEqual(await replayed(b, stream, { sequence: 2 }, `${p}.*.1`), [["b.1", 2]]);
      assert.deepEqual(await replayed(b, stream, { sequence: 1 }, `${p}.c.>`), []);
      assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    });

    test("replay() with nothing stored from the start on resolves at once, with no message", async () => {
      const { stream, p } = await replayStream();
      const started = Date.now();
      assert.deepEqual(await replayed(a, stream, { sequence: 1 }), []);
      assert.deepEqual(await replayed(a, stream, { timeMs: 0 }), []);
      await a.store(`${p}.m`, text("only"));
      await sleep(20);
      assert.deepEqual(await replayed(b, stream, { sequence: 2 }), []);
      assert.deepEqual(await replayed(b, stream, { sequence: 1000 }), []);
      assert.deepEqual(await replayed(b, stream, { timeMs: Date.now() }), []);
      assert.deepEqual(await replayed(b, stream, { timeMs: Date.now() + 60_000 }), []);
      assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    });

    test("replay() ends at the last message stored when it began, in batches of any size", async () => {
      // With a filter, the last match (m2500) is not the stream's last message (x): only the end fixed at the
      // start tells the replay to leave out the matches stored meanwhile.
      for (const filter of [undefined, "m"]) {
        const { stream, p } = await replayStream(1 << 24);
        const count = 2500;
        const stores: Promise<unknown>[] = [];
        for (let i = 1; i <= count; i++) stores.push(a.store(`${p}.m`, text(`m${i}`)));
        stores.push(a.store(`${p}.x`, text("x")));
        await Promise.all(stores);
        const during: Promise<unknown>[] = [];
        const got: [string, number][] = [];
        await a.replay(stream, { sequence: 1 }, (data, sequence) => {
          got.push([decoder.decode(data), sequence]);
          // Stored while the replay goes on: not part of it.
          if (got.length % 500 === 1) during.push(b.store(`${p}.m`, text(`during${got.length}`)));
        }, filter && `${p}.${filter}`);
        await Promise.all(during);
        const expected = Array.from({ length: count }, (_, i) => [`m${i + 1}`, i + 1]);
        if (filter === undefined) expected.push(["x", count + 1]);
        assert.equal(got.length, expected.length, `with the filter ${filter}`);
        assert.deepEqual(got.map(([, sequence]) => sequence), expected.map(([, sequence]) => sequence));
        assert.deepEqual(got.map(([data]) => data).sort(), expected.map(([data]) => data).sort());
        const again = await replayed(b, stream, { sequence: count + 2 });
        assert.deepEqual(again.map(([data]) => data), during.map((_, i) => `during${i * 500 + 1}`));
        assert.deepEqual(again.map(([, sequence]) => sequence), during.map((_, i) => count + 2 + i));
      }
    });

    test("replay() from a sequence no longer kept starts at the oldest kept; sequences survive the drop", async () => {
      const { stream, p } = await replayStream(2000);
      const filler = "x".repeat(100);
      for (let i = 1; i <= 40; i++) await a.store(`${p}.m`, text(`${i} ${filler}`));
      const got = await replayed(b, stream, { sequence: 1 });
      assert.ok(got.length > 0 && got.length < 40, `${got.length} kept`);
      got.forEach(([data, sequence], i) => {
        assert.equal(sequence, 40 - got.length + 1 + i);
        assert.equal(data, `${sequence} ${filler}`);
      });
      assert.deepEqual(await replayed(b, stream, { sequence: 40 }), [[`40 ${filler}`, 40]]);
    });

    test("replay() rejects when the stream does not exist", async () => {
      await assert.rejects(a.replay(unique("NOSTREAM"), { sequence: 1 }, () => {}), Error);
      await assert.rejects(a.replay(unique("NOSTREAM"), { timeMs: 0 }, () => {}, "x.>"), Error);
    });

    /** One bucket opened on both engines. */
    async function bucketPair(options?: { maxAgeMs?: number }) {
      const name = unique("kv");
      return [await a.bucket(name, options), await b.bucket(name, options)];
    }

    test("bucket(): put() and get() from any engine; get() of a missing key is undefined", async () => {
      const [mine, theirs] = await bucketPair();
      assert.equal(await mine.get("missing"), undefined);
      const revision = await mine.put("k", text("v1"));
      assert.ok(revision > 0);
      const entry = await theirs.get("k");
      assert.deepEqual(entry, { key: "k", value: text("v1"), revision });
      assert.ok(entry?.value?.constructor === Uint8Array, "plain Uint8Array");
      const next = await theirs.put("k", text("v2"));
      assert.ok(next > revision);
      assert.deepEqual(await mine.get("k"), { key: "k", value: text("v2"), revision: next });
    });

    test("bucket() keys may hold any characters", async () => {
      const [mine, theirs] = await bucketPair();
      const keys = ["a.b", "with space", "*", ">", "=41", "=", "é/ü", "x..y", ".", "tab\t", "a-b_c/d"];
      for (const key of keys) await mine.put(key, text(key));
      for (const key of keys) assert.equal(decoder.decode((await theirs.get(key))?.value), key);
      const seen = recorder<string>();
      const watch = await theirs.watch((entry) => seen.push(entry.key));
      assert.deepEqual(seen.items.sort(), [...keys].sort());
      watch.unsubscribe();
    });

    test("update() sets a key only at the expected revision; 0 means only when it has no value", async () => {
      const [mine, theirs] = await bucketPair();
      const created = await mine.update("k", text("v1"), 0);
      await assert.rejects(theirs.update("k", text("again"), 0), RevisionConflict);
      const updated = await theirs.update("k", text("v2"), created);
      assert.ok(updated > created);
      await assert.rejects(mine.update("k", text("stale"), created), (error) => {
        assert.ok(error instanceof RevisionConflict);
        assert.match(error.message, /"k"/);
        return true;
      });
      assert.deepEqual(await mine.get("k"), { key: "k", value: text("v2"), revision: updated });
      await mine.delete("k");
      const recreated = await theirs.update("k", text("v3"), 0);
      assert.deepEqual(await mine.get("k"), { key: "k", value: text("v3"), revision: recreated });
      await assert.rejects(mine.update("other", text("x"), recreated + 100), RevisionConflict);
    });

    test("delete() removes a key; with a revision, only when it is still the key's revision", async () => {
      const [mine, theirs] = await bucketPair();
      const first = await mine.put("k", text("v1"));
      const second = await theirs.put("k", text("v2"));
      await assert.rejects(mine.delete("k", first), RevisionConflict);
      assert.equal(decoder.decode((await mine.get("k"))?.value), "v2");
      await mine.delete("k", second);
      assert.equal(await theirs.get("k"), undefined);
      await theirs.put("j", text("v"));
      await theirs.delete("j");
      assert.equal(await mine.get("j"), undefined);
    });

    test("watch() delivers the current entries, resolves, then delivers every change in revision order", async () => {
      const [mine, theirs] = await bucketPair();
      const one = await mine.put("one", text("1"));
      const two = await mine.put("two", text("2"));
      const seen = recorder<BucketEntry>();
      const watch = await theirs.watch(seen.push);
      assert.deepEqual(seen.items.sort((x, y) => x.revision - y.revision), [
        { key: "one", value: text("1"), revision: one },
        { key: "two", value: text("2"), revision: two },
      ]);
      const three = await mine.put("three", text("3"));
      const again = await mine.update("one", text("1b"), one);
      await mine.delete("two");
      await seen.wait(5, "three changes");
      const changes = seen.items.slice(2);
      assert.deepEqual(changes.slice(0, 2), [
        { key: "three", value: text("3"), revision: three },
        { key: "one", value: text("1b"), revision: again },
      ]);
      assert.equal(changes[2].key, "two");
      assert.equal(changes[2].value, undefined);
      assert.ok(changes[2].revision > again);
      watch.unsubscribe();
      watch.unsubscribe();
      await mine.put("four", text("4"));
      await sleep(100);
      assert.equal(seen.items.length, 5);
    });

    test("watch() of an empty bucket resolves at once, then delivers changes", async () => {
      const [mine, theirs] = await bucketPair();
      const seen = recorder<BucketEntry>();
      const watch = await within(theirs.watch(seen.push), 2000, "watch() of an empty bucket");
      assert.deepEqual(seen.items, []);
      const revision = await mine.put("k", text("v"));
      await seen.wait(1, "the first change");
      assert.deepEqual(seen.items, [{ key: "k", value: text("v"), revision }]);
      watch.unsubscribe();
    });

    test("bucket() with maxAgeMs forgets entries not written again within that time", async () => {
      const [mine, theirs] = await bucketPair({ maxAgeMs: 1000 });
      await mine.put("short", text("lived"));
      assert.equal(decoder.decode((await theirs.get("short"))?.value), "lived");
      await sleep(1000);
      await until(async () => (await theirs.get("short")) === undefined, 5000, "the entry to expire");
    });
  });
}
