/**
 * A subscription tree: topic filters split into levels, so that matching a topic name visits only the
 * branches that can match it, instead of scanning every subscription.
 *
 * @module
 */

/** One level of the tree. */
interface Node<T> {
  /** Children by literal level. */
  children: Map<string, Node<T>> | undefined;
  /** The `+` child. */
  plus: Node<T> | undefined;
  /** Entries of the filter that ends with `#` below this node. */
  hash: Map<string, T> | undefined;
  /** Entries of the filter that ends at this node. */
  entries: Map<string, T> | undefined;
}

function newNode<T>(): Node<T> {
  return { children: undefined, plus: undefined, hash: undefined, entries: undefined };
}

/** How many topics {@linkcode TopicTree.matchList} remembers the answers for (it starts over when full). */
export const MATCH_CACHE_SIZE = 4096;
/** The longest topic whose answer {@linkcode TopicTree.matchList} keeps. */
export const MATCH_CACHE_TOPIC_LENGTH = 256;

/**
 * Values stored under topic filters and looked up by topic name. Each filter holds any number of values,
 * each under a key (a client identifier, a shared subscription group…), so that one client's subscription to
 * a filter is replaced, not duplicated. Filters are plain (`$share/{group}/` already removed); matching follows
 * MQTT: `+` matches one whole level, `#` the parent level and everything below it, and a filter starting with
 * a wildcard never matches a topic starting with `$` [MQTT-4.7.2-1].
 *
 * @typeParam T The type of the stored values.
 *
 * @example Match a topic against wildcard filters
 * ```ts
 * import { TopicTree } from "@x/mqtt/machine";
 * const tree = new TopicTree<number>();
 * tree.add("sport/+/player1", "a", 1);
 * tree.add("sport/#", "b", 2);
 * tree.add("#", "c", 3);
 * const found: number[] = [];
 * tree.match("sport/tennis/player1", (value) => found.push(value));
 * console.log(found.sort()); // [1, 2, 3]
 * found.length = 0;
 * tree.match("$SYS/uptime", (value) => found.push(value));
 * console.log(found); // []
 * ```
 */
export class TopicTree<T> {
  readonly #root: Node<T> = newNode();
  #size = 0;
  /** Answers of {@linkcode TopicTree.matchList} by topic, until the tree changes. */
  #matched: Map<string, T[]> | undefined;

  /** How many values the tree holds, over all filters and keys. */
  get size(): number {
    return this.#size;
  }

  /**
   * Stores a value under a filter and a key, replacing the value already stored under both.
   *
   * @param filter A valid, non-shared topic filter.
   * @param key The key of the value within the filter.
   * @param value The value.
   * @returns The value it replaced, or `undefined` when the key was new for this filter.
   */
  add(filter: string, key: string, value: T): T | undefined {
    const levels = filter.split("/");
    let node = this.#root;
    const last = levels.length - 1;
    for (let i = 0; i < last; i++) node = child(node, levels[i]);
    let map: Map<string, T>;
    if (levels[last] === "#") {
      map = node.hash ??= new Map();
    } else {
      node = child(node, levels[last]);
      map = node.entries ??= new Map();
    }
    const previous = map.get(key);
    if (previous === undefined) this.#size++;
    map.set(key, value);
    this.#matched = undefined;
    return previous;
  }

  /**
   * Finds the value stored under a filter and a key.
   *
   * @param filter A topic filter.
   * @param key The key.
   * @returns The value, or `undefined`.
   */
  get(filter: string, key: string): T | undefined {
    const levels = filter.split("/");
    let node: Node<T> | undefined = this.#root;
    const last = levels.length - 1;
    for (let i = 0; i < last && node !== undefined; i++) node = find(node, levels[i]);
    if (node === undefined) return undefined;
    if (levels[last] === "#") return node.hash?.get(key);
    return find(node, levels[last])?.entries?.get(key);
  }

  /**
   * Removes the value stored under a filter and a key, and the branches left empty.
   *
   * @param filter A topic filter.
   * @param key The key.
   * @returns The removed value, or `undefined` when there was none.
   */
  remove(filter: string, key: string): T | undefined {
    this.#matched = undefined;
    const levels = filter.split("/");
    const path: Node<T>[] = [this.#root];
    let node: Node<T> | undefined = this.#root;
    const last = levels.length - 1;
    for (let i = 0; i < last; i++) {
      node = find(node, levels[i]);
      if (node === undefined) return undefined;
      path.push(node);
    }
    let map: Map<string, T> | undefined;
    if (levels[last] === "#") {
      map = node.hash;
    } else {
      node = find(node, levels[last]);
      if (node === undefined) return undefined;
      path.push(node);
      map = node.entries;
    }
    const value = map?.get(key);
    if (map === undefined || value === undefined) return undefined;
    map.delete(key);
    this.#size--;
    const end = path[path.length - 1];
    if (levels[last] === "#" && map.size === 0) end.hash = undefined;
    else if (map.size === 0) end.entries = undefined;
    // Prune empty nodes from the leaf up.
    for (let i = path.length - 1; i > 0; i--) {
      const n = path[i];
      if (
        n.entries !== undefined || n.hash !== undefined || n.plus !== undefined || (n.children?.size ?? 0) > 0
      ) {
        break;
      }
      const parent = path[i - 1];
      const level = levels[i - 1];
      if (level === "+") parent.plus = undefined;
      else parent.children?.delete(level);
    }
    return value;
  }

  /**
   * Calls `visit` with every value whose filter matches a topic name. Each value is visited once per filter
   * it is stored under; a key stored under two matching filters is visited twice.
   *
   * @param topic A valid topic name.
   * @param visit Called with each matching value and its key.
   */
  match(topic: string, visit: (value: T, key: string) => void): void {
    const levels = topic.split("/");
    // [MQTT-4.7.2-1] a leading wildcard never matches a topic that starts with "$".
    matchNode(this.#root, levels, 0, visit, topic.charCodeAt(0) === 0x24);
  }

  /**
   * The values whose filters match a topic name, as {@linkcode TopicTree.match} visits them, from a cache of
   * the last {@linkcode MATCH_CACHE_SIZE} topics asked for (of up to {@linkcode MATCH_CACHE_TOPIC_LENGTH}
   * characters) that any change to the tree empties: a broker sees
   * the same topics again and again, and a lookup by the whole topic costs less than a walk level by level.
   *
   * @param topic A valid topic name.
   * @returns The values, in the order `match` visits them; do not modify the array.
   *
   * @example Route a message
   * ```ts
   * import { TopicTree } from "@x/mqtt/machine";
   * const tree = new TopicTree<string>();
   * tree.add("sensors/+/temperature", "client-1", "a");
   * tree.add("sensors/#", "client-2", "b");
   * console.log(tree.matchList("sensors/kitchen/temperature")); // ["b", "a"]
   * ```
   */
  matchList(topic: string): readonly T[] {
    let cache = this.#matched;
    const known = cache?.get(topic);
    if (known !== undefined) return known;
    const list: T[] = [];
    this.match(topic, (value) => list.push(value));
    // Long topics are not kept, so that the cache stays small whatever the clients publish to.
    if (topic.length > MATCH_CACHE_TOPIC_LENGTH) return list;
    if (cache === undefined) cache = this.#matched = new Map();
    else if (cache.size >= MATCH_CACHE_SIZE) cache.clear();
    cache.set(topic, list);
    return list;
  }

  /**
   * The reverse lookup, for a tree whose entries are stored under topic names (no wildcards), such as retained
   * messages: calls `visit` with every value stored under a topic that `filter` matches, following the same
   * rules as {@linkcode TopicTree.match} [MQTT-4.7.2-1].
   *
   * @param filter A valid, non-shared topic filter.
   * @param visit Called with each matching value and its key.
   *
   * @example Find retained messages for a new subscription
   * ```ts
   * import { TopicTree } from "@x/mqtt/machine";
   * const retained = new TopicTree<string>();
   * retained.add("sport/tennis/player1", "", "a");
   * retained.add("sport/golf", "", "b");
   * retained.add("$SYS/uptime", "", "c");
   * const found: string[] = [];
   * retained.matchFilter("sport/+/player1", (value) => found.push(value));
   * retained.matchFilter("#", (value) => found.push(value));
   * console.log(found.sort()); // ["a", "a", "b"]
   * ```
   */
  matchFilter(filter: string, visit: (value: T, key: string) => void): void {
    matchTopics(this.#root, filter.split("/"), 0, visit, true);
  }

  /**
   * Calls `visit` with every filter, key and value, in no particular order.
   *
   * @param visit Called with each filter, key and value.
   */
  forEach(visit: (filter: string, key: string, value: T) => void): void {
    walk(this.#root, [], visit);
  }
}

function child<T>(node: Node<T>, level: string): Node<T> {
  if (level === "+") return node.plus ??= newNode();
  const children = node.children ??= new Map();
  let next = children.get(level);
  if (next === undefined) {
    next = newNode();
    children.set(level, next);
  }
  return next;
}

function find<T>(node: Node<T>, level: string): Node<T> | undefined {
  return level === "+" ? node.plus : node.children?.get(level);
}

function visitAll<T>(map: Map<string, T> | undefined, visit: (value: T, key: string) => void): void {
  if (map !== undefined) { for (const [key, value] of map) visit(value, key); }
}

function matchNode<T>(
  node: Node<T>,
  levels: string[],
  index: number,
  visit: (value: T, key: string) => void,
  dollar: boolean,
): void {
  // "#" here matches the parent level and everything below, except a "$" topic at the root.
  if (!dollar) visitAll(node.hash, visit);
  if (index === levels.length) {
    visitAll(node.entries, visit);
    return;
  }
  const level = levels[index];
  const next = node.children?.get(level);
  if (next !== undefined) matchNode(next, levels, index + 1, visit, false);
  if (node.plus !== undefined && !dollar) matchNode(node.plus, levels, index + 1, visit, false);
}

function matchTopics<T>(
  node: Node<T>,
  levels: string[],
  index: number,
  visit: (value: T, key: string) => void,
  root: boolean,
): void {
  if (index === levels.length) {
    visitAll(node.entries, visit);
    return;
  }
  const level = levels[index];
  if (level === "#") {
    // The parent level and everything below it; at the root, no topic starting with "$".
    if (!root) visitAll(node.entries, visit);
    visitBelow(node, visit, root);
    return;
  }
  if (level === "+") {
    if (node.children !== undefined) {
      for (const [name, next] of node.children) {
        if (!(root && name.charCodeAt(0) === 0x24)) matchTopics(next, levels, index + 1, visit, false);
      }
    }
    return;
  }
  const next = node.children?.get(level);
  if (next !== undefined) matchTopics(next, levels, index + 1, visit, false);
}

function visitBelow<T>(node: Node<T>, visit: (value: T, key: string) => void, root: boolean): void {
  if (node.children === undefined) return;
  for (const [name, next] of node.children) {
    if (root && name.charCodeAt(0) === 0x24) continue;
    visitAll(next.entries, visit);
    visitBelow(next, visit, false);
  }
}

function walk<T>(
  node: Node<T>,
  path: string[],
  visit: (filter: string, key: string, value: T) => void,
): void {
  if (node.hash !== undefined) {
    const filter = [...path, "#"].join("/");
    for (const [key, value] of node.hash) visit(filter, key, value);
  }
  if (node.entries !== undefined) {
    const filter = path.join("/");
    for (const [key, value] of node.entries) visit(filter, key, value);
  }
  if (node.plus !== undefined) walk(node.plus, [...path, "+"], visit);
  if (node.children !== undefined) {
    for (const [level, next] of node.children) walk(next, [...path, level], visit);
  }
}
