import { test } from "node:test";
import assert from "node:assert/strict";
import { Outbox, OWN_CHUNK_SIZE } from "../../src/machine/_outbox.ts";

function bytes(length: number, fill: number): Uint8Array {
  return new Uint8Array(length).fill(fill);
}

test("Outbox.take() coalesces small packets into one chunk", () => {
  const outbox = new Outbox();
  outbox.pushBytes(bytes(3, 1));
  outbox.pushBytes(bytes(2, 2));
  assert.equal(outbox.length, 5);
  assert.deepEqual(outbox.take(), Uint8Array.of(1, 1, 1, 2, 2));
  assert.equal(outbox.length, 0);
  assert.equal(outbox.take(), undefined);
});

test("Outbox.take() hands a large packet out alone and uncopied, keeping the order", () => {
  const outbox = new Outbox();
  const large = bytes(OWN_CHUNK_SIZE, 9);
  const larger = bytes(OWN_CHUNK_SIZE + 1, 8);
  outbox.pushBytes(bytes(1, 1));
  outbox.pushBytes(bytes(1, 2));
  outbox.pushBytes(large);
  outbox.pushBytes(larger);
  outbox.pushBytes(bytes(1, 3));
  assert.equal(outbox.length, 2 * OWN_CHUNK_SIZE + 4);
  assert.deepEqual(outbox.take(), Uint8Array.of(1, 2));
  assert.equal(outbox.take(), large);
  assert.equal(outbox.length, OWN_CHUNK_SIZE + 2);
  assert.equal(outbox.take(), larger);
  assert.deepEqual(outbox.take(), Uint8Array.of(3));
  assert.equal(outbox.length, 0);
  assert.equal(outbox.take(), undefined);
});

test("Outbox.clear() drops what is queued", () => {
  const outbox = new Outbox();
  outbox.pushBytes(bytes(OWN_CHUNK_SIZE, 1));
  outbox.pushBytes(bytes(1, 1));
  outbox.clear();
  assert.equal(outbox.length, 0);
  assert.equal(outbox.take(), undefined);
});
