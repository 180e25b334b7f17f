import { test } from "node:test";
import assert from "node:assert/strict";
import { Outbox, OWN_CHUNK_SIZE } from "../../src/machine/_outbox.ts";
import { encode } from "../../src/codec/encode.ts";
import type { Packet, QoS } from "../../src/codec/packet.ts";
import { concat } from "../../src/bytes.ts";

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

test("Outbox.push() writes packets as encode() would, in order with bytes pushed between, in batches of any size", () => {
  const outbox = new Outbox();
  const expected: Uint8Array[] = [];
  const taken: Uint8Array[] = [];
  const keep: { chunk: Uint8Array; copy: Uint8Array }[] = [];
  // Batches growing from one packet to 600 and back, so that the batch buffer overflows, grows and shrinks;
  // sizes from a few bytes to past OWN_CHUNK_SIZE.
  const rounds = [1, 2, 5, 40, 600, 3, 1, 200, 1];
  let n = 0;
  for (const count of rounds) {
    for (let i = 0; i < count; i++, n++) {
      const version = ([3, 4, 5] as const)[n % 3];
      let packet: Packet;
      if (n % 11 === 5) packet = { type: "puback", packetId: 1 + n % 65535, reasonCode: 0 };
      else {
        const size = n % 97 === 0 ? OWN_CHUNK_SIZE + n % 5 : n % 13 === 0 ? 3000 + n : n % 70;
        const qos = (n % 3) as QoS;
        packet = {
          type: "publish",
          topic: n % 7 === 0 ? `töpic/${n}` : `t/${n}`,
          payload: bytes(size, n & 0xff),
          qos,
          retain: n % 2 === 0,
          dup: false,
          ...(qos > 0 ? { packetId: 1 + n % 65535 } : {}),
          ...(version === 5 && n % 4 === 0 ? { properties: { contentType: "text/plain" } } : {}),
        };
      }
      if (n % 17 === 3) {
        const raw = bytes(1 + n % 40, 0xee);
        outbox.pushBytes(raw);
        expected.push(raw);
      }
      const length = outbox.push(packet, version);
      const encoded = encode(packet, version);
      assert.equal(length, encoded.length);
      expected.push(encoded);
    }
    for (let chunk = outbox.take(); chunk !== undefined; chunk = outbox.take()) {
      taken.push(chunk);
      keep.push({ chunk, copy: chunk.slice() });
    }
    assert.equal(outbox.length, 0);
  }
  assert.deepEqual(concat(taken), concat(expected));
  // A chunk handed out is never written to again.
  for (const { chunk, copy } of keep) assert.deepEqual(chunk, copy);
});

test("Outbox.push() of a packet that fails to encode throws and leaves the queue as it was", () => {
  const outbox = new Outbox();
  outbox.push({ type: "publish", topic: "a", payload: bytes(3, 1), qos: 0, retain: false, dup: false }, 4);
  assert.throws(
    () =>
      outbox.push(
        { type: "publish", topic: "a/#", payload: bytes(3, 2), qos: 0, retain: false, dup: false },
        4,
      ),
    /wildcards/,
  );
  assert.throws(
    () =>
      outbox.push(
        { type: "publish", topic: "a", payload: bytes(3, 2), qos: 1, retain: false, dup: false },
        4,
      ),
    /packet identifier/,
  );
  outbox.push({ type: "pingreq" }, 4);
  assert.deepEqual(outbox.take(), Uint8Array.of(0x30, 6, 0, 1, 0x61, 1, 1, 1, 0xc0, 0));
});

test("Outbox with viewPayloads queues a large PUBLISH as its header and the payload itself, uncopied; the bytes are encode()'s", () => {
  for (const version of [4, 5] as const) {
    const views = new Outbox({ viewPayloads: true });
    const copies = new Outbox();
    const payload = bytes(OWN_CHUNK_SIZE, 7);
    const small: Packet = {
      type: "publish",
      topic: "s",
      payload: bytes(10, 1),
      qos: 0,
      retain: false,
      dup: false,
    };
    const large: Packet = {
      type: "publish",
      topic: "big/one",
      payload,
      qos: 1,
      packetId: 9,
      retain: true,
      dup: false,
    };
    for (const outbox of [views, copies]) {
      outbox.push(small, version);
      outbox.push(large, version);
      outbox.push(small, version);
    }
    const taken: Uint8Array[] = [];
    for (let chunk = views.take(); chunk !== undefined; chunk = views.take()) taken.push(chunk);
    assert.deepEqual(
      concat(taken),
      concat([encode(small, version), encode(large, version), encode(small, version)]),
    );
    assert.ok(taken.includes(payload), "the payload left as the very same bytes");
    // Without the option (a client's outbox) the payload is copied: the caller may reuse its buffer.
    const copied: Uint8Array[] = [];
    for (let chunk = copies.take(); chunk !== undefined; chunk = copies.take()) copied.push(chunk);
    assert.deepEqual(concat(copied), concat(taken));
    assert.ok(!copied.some((chunk) => chunk.buffer === payload.buffer));
  }
});
