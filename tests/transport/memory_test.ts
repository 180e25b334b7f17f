import { test } from "node:test";
import assert from "node:assert/strict";
import { memoryPair } from "../../src/transport/memory.ts";
import { within } from "../_helpers.ts";

test("memoryPair() delivers chunks both ways, as written and in order", async () => {
  const [a, b] = memoryPair();
  const aWriter = a.writable.getWriter();
  const bWriter = b.writable.getWriter();
  const aReader = a.readable.getReader();
  const bReader = b.readable.getReader();
  const first = new Uint8Array([1, 2, 3]);
  const writes = [aWriter.write(first), aWriter.write(new Uint8Array([4]))];
  const read = await within(bReader.read(), 1000, "first chunk");
  assert.equal(read.value, first, "the same chunk object, not a copy");
  assert.deepEqual((await bReader.read()).value, new Uint8Array([4]));
  await Promise.all(writes);
  void bWriter.write(new Uint8Array([9]));
  assert.deepEqual((await within(aReader.read(), 1000, "reply")).value, new Uint8Array([9]));
  await a.close();
});

test("memoryPair() makes a writer wait while the other side has not read (backpressure)", async () => {
  const [a, b] = memoryPair();
  const writer = a.writable.getWriter();
  let settled = 0;
  const writes = Array.from({ length: 4 }, (_, i) => writer.write(new Uint8Array([i])).then(() => settled++));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(settled < 4, "not every write settled before anything was read");
  const reader = b.readable.getReader();
  for (let i = 0; i < 4; i++) assert.deepEqual((await reader.read()).value, new Uint8Array([i]));
  await within(Promise.all(writes), 1000, "writes settle once read");
  await b.close();
});

test("memoryPair() half-closes: closing a writable ends only the other side's readable", async () => {
  const [a, b] = memoryPair();
  const reader = b.readable.getReader();
  await a.writable.close();
  assert.equal((await within(reader.read(), 1000, "end")).done, true);
  // b can still answer.
  const writing = b.writable.getWriter().write(new Uint8Array([7]));
  assert.deepEqual((await a.readable.getReader().read()).value, new Uint8Array([7]));
  await writing;
  await a.close();
});

test("memoryPair() close() ends both readables, is idempotent, and makes writes reject", async () => {
  const [a, b] = memoryPair();
  const aReader = a.readable.getReader();
  const bReader = b.readable.getReader();
  const pending = [aReader.read(), bReader.read()];
  const aWriter = a.writable.getWriter();
  const bWriter = b.writable.getWriter();
  await a.close();
  await a.close();
  await b.close();
  for (const read of await within(Promise.all(pending), 1000, "readables end")) assert.equal(read.done, true);
  await assert.rejects(aWriter.write(new Uint8Array([1])));
  await assert.rejects(bWriter.write(new Uint8Array([1])));
});

test("memoryPair() lets a reader on a closed pair drain what was written before close()", async () => {
  const [a, b] = memoryPair();
  const writer = a.writable.getWriter();
  const write = writer.write(new Uint8Array([5]));
  const reader = b.readable.getReader();
  const first = await reader.read();
  await write;
  await b.close();
  assert.deepEqual(first.value, new Uint8Array([5]));
  assert.equal((await reader.read()).done, true);
});
