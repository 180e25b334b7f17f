import { test } from "node:test";
import assert from "node:assert/strict";
import { Subscription } from "../../src/client/subscription.ts";
import { Message } from "../../src/client/message.ts";
import type { QoS } from "../../src/codec/packet.ts";

const owner = { unsubscribe: () => Promise.resolve() };

function message(text: string, qos: QoS): Message {
  return new Message({
    type: "publish",
    topic: "t",
    payload: new TextEncoder().encode(text),
    qos,
    packetId: qos === 0 ? undefined : 1,
    retain: false,
    dup: false,
  });
}

test("Subscription is full at its limit, room() resolves once a message is taken, and nothing is dropped before shed()", async () => {
  const subscription = new Subscription(owner, ["t"], [0], 3);
  const taken: string[] = [];
  for (const text of ["a", "b", "c", "d", "e"]) subscription.push(message(text, 0), () => taken.push(text));
  assert.equal(subscription.full, true);
  let roomy = false;
  const room = subscription.room().then(() => roomy = true);
  const iterator = subscription[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value?.text(), "a");
  assert.equal(roomy, false, "4 of 3 still buffered");
  assert.equal((await iterator.next()).value?.text(), "b");
  assert.equal(roomy, false, "3 of 3 still buffered");
  assert.equal((await iterator.next()).value?.text(), "c");
  await room;
  assert.equal(subscription.full, false);
  assert.deepEqual(taken, ["a", "b", "c"]);
  assert.equal(subscription.dropped, 0);
});

test("Subscription.shed() drops the oldest QoS 0 messages beyond the limit and keeps QoS 1 ones", async () => {
  const subscription = new Subscription(owner, ["t"], [1], 2);
  const settled: string[] = [];
  for (const [text, qos] of [["a", 0], ["b", 1], ["c", 0], ["d", 0], ["e", 1]] as const) {
    subscription.push(message(text, qos), () => settled.push(text));
  }
  subscription.shed();
  assert.equal(subscription.dropped, 3);
  assert.deepEqual(settled, ["a", "c", "d"]);
  const iterator = subscription[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value?.text(), "b");
  assert.equal((await iterator.next()).value?.text(), "e");
  subscription.end();
  assert.equal((await iterator.next()).done, true);
});

test("SubscriptionTable.room() does not pause reading for a full subscription whose SUBACK has not come yet", async () => {
  const { SubscriptionTable } = await import("../../src/client/_subscription_table.ts");
  const table = new SubscriptionTable(() => {});
  const subscription = new Subscription(owner, ["t"], [], 2);
  table.add(1, subscription, true);
  for (const text of ["a", "b", "c"]) subscription.push(message(text, 1), () => {});
  assert.equal(subscription.full, true);
  // Its consumer waits for subscribe(), which waits for the SUBACK, which may be behind these messages.
  const outcome = (room: Promise<void>) =>
    Promise.race([
      room.then(() => "read on"),
      new Promise<string>((resolve) => setTimeout(() => resolve("paused"), 300)),
    ]);
  assert.equal(await outcome(table.room()), "read on");
  // Once the SUBACK came, a full subscription pauses reading until its consumer makes room.
  table.acknowledged(subscription);
  const paused = table.room();
  assert.equal(await outcome(paused), "paused");
  const iterator = subscription[Symbol.asyncIterator]();
  await iterator.next();
  await iterator.next();
  assert.equal(await outcome(paused), "read on");
});
