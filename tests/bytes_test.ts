import { test } from "node:test";
import assert from "node:assert/strict";
import { concat, ownCopy } from "../src/bytes.ts";

test("ownCopy() copies of every size stay whole and apart from their source and from each other", () => {
  const chunk = new Uint8Array(70_000).map((_, i) => (i * 31) & 0xff);
  const copies: { copy: Uint8Array; expected: Uint8Array }[] = [];
  // Sizes around the pooled limit and enough of them to fill several shared buffers.
  let offset = 0;
  for (let i = 0; i < 400; i++) {
    const length = [0, 1, 63, 64, 65, 200, 1023, 1024, 1025, 5000][i % 10];
    const source = chunk.subarray(offset % 60_000, offset % 60_000 + length);
    offset += 977;
    copies.push({ copy: ownCopy(source), expected: source.slice() });
  }
  chunk.fill(0);
  for (const { copy, expected } of copies) assert.deepEqual(copy, expected);
  // Writing into one copy changes no other.
  for (const { copy } of copies) copy.fill(0xaa);
  for (const { copy } of copies) assert.ok(copy.every((b) => b === 0xaa));
  assert.equal(concat(copies.map((c) => c.copy)).length, copies.reduce((n, c) => n + c.expected.length, 0));
  // A large copy has a buffer of its own.
  const large = ownCopy(new Uint8Array(5000));
  assert.equal(large.buffer.byteLength, 5000);
});
