import { test } from "node:test";
import assert from "node:assert/strict";
import { type BrokerMessage, messageFromPublish } from "../../src/machine/_delivery.ts";
import { LocalRetainedStore } from "../../src/machine/retained_store.ts";

function retained(topic: string, payload = 1, expirySeconds?: number): BrokerMessage {
  const properties = expirySeconds === undefined ? undefined : { messageExpiryInterval: expirySeconds };
  return messageFromPublish(
    0,
    {
      type: "publish",
      topic,
      payload: new Uint8Array([payload]),
      qos: 1,
      retain: true,
      dup: false,
      properties,
    },
    undefined,
  );
}

function matching(store: LocalRetainedStore, now: number, filter: string): string[] {
  const found: string[] = [];
  store.match(now, filter, (message) => found.push(message.topic));
  return found.sort();
}

test("LocalRetainedStore keeps one message per topic: a new one replaces it [MQTT-3.3.1-5]", () => {
  const store = new LocalRetainedStore();
  store.set("a", retained("a", 1));
  store.set("a", retained("a", 2));
  assert.equal(store.size, 1);
  assert.deepEqual(store.get("a")?.payload, new Uint8Array([2]));
  assert.deepEqual([...store.values()].map((m) => m.topic), ["a"]);
});

test("LocalRetainedStore.set() with no message clears the topic [MQTT-3.3.1-6]", () => {
  const store = new LocalRetainedStore();
  store.set("a", retained("a"));
  store.set("a", undefined);
  assert.equal(store.size, 0);
  assert.equal(store.get("a"), undefined);
  assert.deepEqual(matching(store, 0, "#"), []);
});

test("LocalRetainedStore.match() finds messages by topic filter, wildcards included", () => {
  const store = new LocalRetainedStore();
  for (const topic of ["a/b", "a/c", "a/b/c", "x", "$SYS/up"]) store.set(topic, retained(topic));
  assert.deepEqual(matching(store, 0, "a/+"), ["a/b", "a/c"]);
  assert.deepEqual(matching(store, 0, "a/#"), ["a/b", "a/b/c", "a/c"]);
  assert.deepEqual(matching(store, 0, "#"), ["a/b", "a/b/c", "a/c", "x"]); // [MQTT-4.7.2-1] not $SYS
  assert.deepEqual(matching(store, 0, "$SYS/#"), ["$SYS/up"]);
  assert.deepEqual(matching(store, 0, "x"), ["x"]);
});

test("LocalRetainedStore.match() leaves out expired messages and clears them [MQTT-3.3.2-5]", () => {
  const store = new LocalRetainedStore();
  store.set("short", retained("short", 1, 1));
  store.set("long", retained("long", 1, 10));
  store.set("never", retained("never"));
  assert.deepEqual(matching(store, 999, "#"), ["long", "never", "short"]);
  assert.deepEqual(matching(store, 1000, "#"), ["long", "never"]);
  assert.equal(store.get("short"), undefined);
  assert.equal(store.size, 2);
  // Only what a match visits expires: "long" is still there until a filter finds it.
  assert.deepEqual(matching(store, 20_000, "never"), ["never"]);
  assert.equal(store.size, 2);
});

test("LocalRetainedStore tells its listener each topic set or cleared, and not a clear of nothing", () => {
  const changed: string[] = [];
  const store = new LocalRetainedStore((topic) => changed.push(topic));
  store.set("a", retained("a"));
  store.set("b", retained("b", 1, 1));
  store.set("a", undefined);
  store.set("a", undefined);
  store.match(5000, "#", () => {});
  assert.deepEqual(changed, ["a", "b", "a", "b"]);
});
