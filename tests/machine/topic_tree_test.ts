import { test } from "node:test";
import assert from "node:assert/strict";
import { MATCH_CACHE_SIZE, MATCH_CACHE_TOPIC_LENGTH, TopicTree } from "../../src/machine/topic_tree.ts";
import { topicMatches } from "../../src/codec/topic.ts";

function matching(tree: TopicTree<string>, topic: string): string[] {
  const found: string[] = [];
  tree.match(topic, (value) => found.push(value));
  return found.sort();
}

const FILTERS = [
  "a/b",
  "a/+",
  "a/#",
  "#",
  "+",
  "+/+",
  "/+",
  "a/b/c",
  "a/+/c",
  "+/b/#",
  "sport/tennis/player1/#",
  "sport/+",
  "$SYS/#",
  "$SYS/+/x",
  "+/monitor",
  "a//c",
  "a/",
];
const TOPICS = [
  "a",
  "a/b",
  "a/c",
  "a/b/c",
  "a//c",
  "a/",
  "/",
  "/finance",
  "sport",
  "sport/",
  "sport/tennis/player1",
  "sport/tennis/player1/ranking",
  "$SYS/monitor",
  "$SYS/a/x",
  "$SYS",
  "b/b/b",
];

test("TopicTree.match() agrees with topicMatches() on every filter and topic [MQTT-4.7.1-1] [MQTT-4.7.1-2]", () => {
  const tree = new TopicTree<string>();
  for (const filter of FILTERS) tree.add(filter, "k", filter);
  for (const topic of TOPICS) {
    const expected = FILTERS.filter((f) => topicMatches(f, topic)).sort();
    assert.deepStrictEqual(matching(tree, topic), expected, topic);
  }
});

test("TopicTree.match() does not match $ topics with leading wildcards [MQTT-4.7.2-1]", () => {
  const tree = new TopicTree<string>();
  tree.add("#", "k", "#");
  tree.add("+/monitor", "k", "+/monitor");
  tree.add("$SYS/#", "k", "$SYS/#");
  assert.deepStrictEqual(matching(tree, "$SYS/monitor"), ["$SYS/#"]);
});

test("TopicTree.add() replaces a key's value and remove() prunes", () => {
  const tree = new TopicTree<string>();
  assert.equal(tree.add("a/+", "x", "1"), undefined);
  assert.equal(tree.add("a/+", "x", "2"), "1");
  tree.add("a/+", "y", "3");
  tree.add("a/#", "x", "4");
  assert.equal(tree.size, 3);
  assert.deepStrictEqual(matching(tree, "a/b"), ["2", "3", "4"]);
  assert.equal(tree.get("a/+", "x"), "2");
  assert.equal(tree.remove("a/+", "x"), "2");
  assert.equal(tree.remove("a/+", "x"), undefined);
  assert.equal(tree.remove("nothing/here", "x"), undefined);
  assert.deepStrictEqual(matching(tree, "a/b"), ["3", "4"]);
  tree.remove("a/+", "y");
  tree.remove("a/#", "x");
  assert.equal(tree.size, 0);
  const all: string[] = [];
  tree.forEach((filter) => all.push(filter));
  assert.deepStrictEqual(all, []);
});

test("TopicTree.forEach() returns every filter as added", () => {
  const tree = new TopicTree<number>();
  const filters = ["a/b", "/a", "a/#", "#", "+/+", "a//", "/"];
  filters.forEach((f, i) => tree.add(f, "k", i));
  const seen: string[] = [];
  tree.forEach((filter, key, value) => {
    assert.equal(key, "k");
    assert.equal(filters[value], filter);
    seen.push(filter);
  });
  assert.deepStrictEqual(seen.sort(), [...filters].sort());
});

test("TopicTree.match() visits a key once per matching filter", () => {
  const tree = new TopicTree<string>();
  tree.add("a/#", "c1", "x");
  tree.add("a/b", "c1", "y");
  const keys: string[] = [];
  tree.match("a/b", (_v, key) => keys.push(key));
  assert.deepStrictEqual(keys, ["c1", "c1"]);
});

test("TopicTree.matchFilter() finds the stored topics a filter matches, as topicMatches() does [MQTT-4.7.2-1]", () => {
  const tree = new TopicTree<string>();
  for (const topic of TOPICS) tree.add(topic, "", topic);
  for (const filter of FILTERS) {
    const found: string[] = [];
    tree.matchFilter(filter, (value) => found.push(value));
    assert.deepStrictEqual(found.sort(), TOPICS.filter((t) => topicMatches(filter, t)).sort(), filter);
  }
});

test("TopicTree.matchList() answers as match() does through every add, replace and remove, and past its cache's bounds", () => {
  const tree = new TopicTree<string>();
  const long = `${"x/".repeat(MATCH_CACHE_TOPIC_LENGTH)}a`;
  const filters = [...FILTERS, "x/#", `${"x/".repeat(MATCH_CACHE_TOPIC_LENGTH)}+`];
  const topics = [...TOPICS, long];
  let seed = 7;
  const next = (n: number) => Math.floor((seed = (seed * 16807) % 2147483647) / 2147483647 * n); // Park-Miller
  for (let step = 0; step < 3000; step++) {
    const filter = filters[next(filters.length)];
    const key = `k${next(3)}`;
    const action = next(4);
    if (action === 0) tree.add(filter, key, `${filter} ${key} ${step}`); // new, or replacing a value
    else if (action === 1) tree.remove(filter, key);
    for (let i = 0; i < 3; i++) {
      const topic = topics[next(topics.length)];
      assert.deepEqual([...tree.matchList(topic)].sort(), matching(tree, topic), `${topic} at step ${step}`);
    }
  }
  // More topics than the cache holds: it starts over, and every answer stays right.
  const wide = new TopicTree<string>();
  wide.add("many/+", "k", "many");
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < MATCH_CACHE_SIZE + 10; i++) assert.deepEqual(wide.matchList(`many/${i}`), ["many"]);
  }
  assert.deepEqual(wide.matchList("many/a/b"), []);
  wide.remove("many/+", "k");
  assert.deepEqual(wide.matchList("many/1"), []);
});
