/**
 * A session's queue against a plain array model, under random enqueues, dequeues, reads of `queue`, expiries
 * and clears: the queue takes taken deliveries off its front in bulk, and nothing may show that.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createMessage, type Delivery, SessionState } from "../../src/machine/mod.ts";

type Step =
  | { kind: "enqueue"; count: number; expiresIn: number | undefined }
  | { kind: "dequeue"; count: number }
  | { kind: "read" }
  | { kind: "expire" }
  | { kind: "clear" };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("enqueue" as const),
      count: fc.integer({ min: 1, max: 3000 }),
      expiresIn: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("dequeue" as const), count: fc.integer({ min: 1, max: 3000 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("read" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("clear" as const) }) },
);

test("SessionState's queue gives what an array would, in order, whatever the mix of calls", () => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
      const state = new SessionState("c", { maxQueuedMessages: 1_000_000, maxQueuedBytes: 1e12 });
      const model: { n: number; expiresAt: number | undefined }[] = [];
      let now = 0;
      let next = 0;
      for (const s of steps) {
        now++;
        if (s.kind === "enqueue") {
          for (let i = 0; i < s.count; i++) {
            const n = next++;
            const properties = s.expiresIn === undefined ? undefined : { messageExpiryInterval: s.expiresIn };
            const message = createMessage(now * 1000, {
              type: "publish",
              topic: "t",
              payload: new Uint8Array([n & 0xff, n >> 8 & 0xff, n >> 16 & 0xff]),
              qos: 1,
              retain: false,
              dup: false,
              packetId: 1,
              ...properties === undefined ? {} : { properties },
            });
            state.enqueue(now * 1000, { message, qos: 1, retain: false, subscriptionIdentifiers: undefined });
            model.push({ n, expiresAt: s.expiresIn === undefined ? undefined : (now + s.expiresIn) * 1000 });
          }
        } else if (s.kind === "dequeue") {
          for (let i = 0; i < s.count; i++) {
            const got = state.dequeue(now * 1000);
            while (model.length > 0 && model[0].expiresAt !== undefined && model[0].expiresAt <= now * 1000) {
              model.shift();
            }
            const want = model.shift();
            assert.equal(got === undefined ? undefined : number(got), want?.n);
            if (want === undefined) break;
          }
        } else if (s.kind === "read") {
          assert.deepEqual(state.queue.map(number), model.map((m) => m.n));
        } else if (s.kind === "expire") {
          state.dropExpired(now * 1000);
          for (let i = model.length - 1; i >= 0; i--) {
            const at = model[i].expiresAt;
            if (at !== undefined && at <= now * 1000) model.splice(i, 1);
          }
        } else {
          state.clear(now * 1000);
          model.length = 0;
        }
        assert.equal(state.queuedCount, model.length);
        assert.equal(state.queuedBytes, model.length * 3);
      }
      assert.deepEqual(state.queue.map(number), model.map((m) => m.n));
    }),
    { numRuns: 60 },
  );
});

function number(delivery: Delivery): number {
  const p = delivery.message.payload;
  return p[0] | p[1] << 8 | p[2] << 16;
}
