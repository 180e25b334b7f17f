/**
 * Names in the engine for MQTT things: topics and topic filters as NATS subjects, shared subscriptions as
 * queue groups, and client identifiers and topics as key-value keys.
 *
 * A topic's `/`-separated levels become `.`-separated tokens. A level that is non-empty and only
 * `A-Z a-z 0-9 _ -` is its own token; any other level (empty, or holding `.`, `*`, `>`, spaces, `$`, `=`,
 * non-ASCII, …) becomes `=` followed by the base64url of its UTF-8, without padding. Plain tokens never hold `=`,
 * so the map is injective: `a/b` is `a.b`, `a//b` is `a.=.b`, `$SYS/x` is `=JFNZUw.x`, `a.b` is `=YS5i`.
 *
 * A message travels on `{prefix}.{kind}.{tokens}` (the kind tells stored from plain messages, say). A topic
 * whose subject would exceed {@linkcode MAX_SUBJECT} characters travels on the long-topic subject
 * `{prefix}.{kind}.==` instead: `==` is no level's token, and the envelope carries the full topic anyway.
 * Subscribers use {@linkcode filterSubjects}, which may receive more than a filter matches (never less): the
 * receiving broker matches every topic exactly again.
 *
 * @example A topic, its subject and back
 * ```ts
 * import assert from "node:assert/strict";
 * import { filterSubjects, subjectTopic, topicSubject } from "./subjects.ts";
 * assert.equal(topicSubject("mqtt", "m", "sensors/1/temp"), "mqtt.m.sensors.1.temp");
 * assert.deepEqual(subjectTopic("mqtt", "mqtt.m.sensors.1.temp"), { kind: "m", topic: "sensors/1/temp" });
 * assert.deepEqual(filterSubjects("mqtt", "sensors/#"), ["mqtt.*.sensors", "mqtt.*.sensors.>", "mqtt.*.=="]);
 * ```
 *
 * @module
 */

import { parseSharedSubscription, topicNameProblem, validateTopicFilter } from "../codec/topic.ts";
import { decodeWtf8, encodeWtf8, fnv1a64, fromBase64Url, toBase64Url } from "./_encoding.ts";

/** The longest subject, in characters, that {@linkcode topicSubject} and {@linkcode filterSubjects} make. */
export const MAX_SUBJECT = 1024;

/** The last token of the long-topic subject: the subject of every topic too long to have its own. */
export const LONG_TOPIC_TOKEN = "==";

/** The longest prefix {@linkcode topicSubject} and {@linkcode filterSubjects} accept, in characters. */
export const MAX_PREFIX = 128;

/** The longest queue name {@linkcode sharedQueue} makes, in characters. */
export const MAX_QUEUE = 256;

/** The longest key {@linkcode keyOf} makes, in characters; longer texts get a hash-based key. */
export const MAX_KEY = 512;

/** 1 for the ASCII codes of `A-Z a-z 0-9 _ -`, the characters of a plain token. */
const PLAIN = new Uint8Array(128);
/** 1 for the ASCII codes of `A-Z a-z 0-9 _ - /`, the characters a key keeps as they are. */
const KEY_PLAIN = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  PLAIN[c] = /[A-Za-z0-9_-]/.test(ch) ? 1 : 0;
  KEY_PLAIN[c] = /[A-Za-z0-9_/-]/.test(ch) ? 1 : 0;
}

/** Tokens of short escaped levels (`$SYS`, say), since topics repeat: escaping takes several times longer. */
const escaped = new Map<string, string>();

/** Whether `text` is one or more characters of `table`. */
function allOf(table: Uint8Array, text: string): boolean {
  const length = text.length;
  if (length === 0) return false;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || table[c] === 0) return false;
  }
  return true;
}

/**
 * The subject token of one topic level: the level itself when it is non-empty and only `A-Z a-z 0-9 _ -`,
 * otherwise `=` and the base64url of its UTF-8 without padding (so `""` gives `=`). Distinct levels give
 * distinct tokens. A lone surrogate, which no MQTT string can carry, is encoded as its three UTF-8 bytes
 * (WTF-8), which keeps the map injective on every string.
 *
 * @param level A topic level (no `/`); a `+` or `#` is taken literally.
 * @returns A NATS subject token: non-empty, without `.`, whitespace, `*` or `>`.
 * @throws {TypeError} When `level` contains `/`.
 *
 * @example Plain and escaped levels
 * ```ts
 * import assert from "node:assert/strict";
 * import { levelToken } from "./subjects.ts";
 * assert.equal(levelToken("temp-1"), "temp-1");
 * assert.equal(levelToken(""), "=");
 * assert.equal(levelToken("a.b"), "=YS5i");
 * ```
 */
export function levelToken(level: string): string {
  if (allOf(PLAIN, level)) return level;
  let token = escaped.get(level);
  if (token !== undefined) return token;
  if (level.includes("/")) {
    throw new TypeError(`Cannot make a subject token of level "${level}": a topic level cannot contain "/"`);
  }
  token = "=" + toBase64Url(encodeWtf8(level));
  if (level.length <= 64) {
    if (escaped.size >= 1024) escaped.clear();
    escaped.set(level, token);
  }
  return token;
}

/**
 * The topic level of a subject token: the inverse of {@linkcode levelToken}.
 *
 * @param token A subject token.
 * @returns The level `levelToken` maps to `token`.
 * @throws {TypeError} When no level maps to `token` (say `*`, `==`, `a.b`, or base64url not in the form
 * `levelToken` writes).
 *
 * @example Read tokens back
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenLevel } from "./subjects.ts";
 * assert.equal(tokenLevel("temp-1"), "temp-1");
 * assert.equal(tokenLevel("=YS5i"), "a.b");
 * assert.throws(() => tokenLevel("=="), TypeError);
 * ```
 */
export function tokenLevel(token: string): string {
  if (token.charCodeAt(0) !== 0x3d) {
    if (allOf(PLAIN, token)) return token;
  } else {
    const bytes = fromBase64Url(token, 1);
    const level = bytes === undefined ? undefined : decodeWtf8(bytes);
    // Only the exact form levelToken writes: a plain level spelled in base64url is not it.
    if (level !== undefined && !level.includes("/") && levelToken(level) === token) return level;
  }
  throw new TypeError(`Cannot read subject token "${token}" as a topic level: no level maps to it`);
}

/** Prefixes and kinds already checked, so that the hot paths check a string once. */
const checkedPrefixes = new Set<string>();
const checkedKinds = new Set<string>();

/** Whether `text` is a NATS subject token and no wildcard: no `.`, whitespace, control character, `*` or `>`. */
function isLiteralToken(text: string): boolean {
  if (text.length === 0 || /[\s.*>]/.test(text)) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

function checkPrefix(prefix: string): void {
  if (checkedPrefixes.has(prefix)) return;
  if (prefix.length > MAX_PREFIX || !prefix.split(".").every(isLiteralToken)) {
    throw new TypeError(
      `Cannot use subject prefix "${prefix}": it must be up to ${MAX_PREFIX} characters of NATS tokens ` +
        `without wildcards or whitespace`,
    );
  }
  if (checkedPrefixes.size >= 64) checkedPrefixes.clear();
  checkedPrefixes.add(prefix);
}

function checkKind(kind: string): void {
  if (checkedKinds.has(kind)) return;
  if (kind.length > MAX_PREFIX || !isLiteralToken(kind)) {
    throw new TypeError(`Cannot use subject kind "${kind}": it must be one NATS token without wildcards`);
  }
  if (checkedKinds.size >= 64) checkedKinds.clear();
  checkedKinds.add(kind);
}

/**
 * Whether every level of `topic` (split at `separator`) is a plain token, so that replacing the separators is
 * the whole mapping: the common case, done without splitting.
 */
function plainTail(topic: string, separator: number): boolean {
  const length = topic.length;
  let atStart = true; // at the start of a level: one more separator would make an empty level
  for (let i = 0; i < length; i++) {
    const c = topic.charCodeAt(i);
    if (c === separator) {
      if (atStart) return false;
      atStart = true;
    } else if (c < 128 && PLAIN[c] === 1) {
      atStart = false;
    } else {
      return false;
    }
  }
  return !atStart;
}

/**
 * The subject a message published to `topic` travels on: `{prefix}.{kind}.{tokens}`, one token per level (see
 * {@linkcode levelToken}), or the long-topic subject `{prefix}.{kind}.==` when that would be longer than
 * {@linkcode MAX_SUBJECT} characters. Distinct topics give distinct subjects, except that every long topic gives
 * the long-topic subject (the message itself carries its topic).
 *
 * @param prefix The cluster's subject prefix: one or more tokens, such as `mqtt`.
 * @param kind One token naming the kind of message, such as `m`.
 * @param topic A valid topic name; it is not checked.
 * @returns The subject.
 * @throws {TypeError} When `prefix` or `kind` is not made of NATS tokens without wildcards.
 *
 * @example Subjects of topics
 * ```ts
 * import assert from "node:assert/strict";
 * import { topicSubject } from "./subjects.ts";
 * assert.equal(topicSubject("mqtt", "m", "a/b"), "mqtt.m.a.b");
 * assert.equal(topicSubject("mqtt", "m", "a//b"), "mqtt.m.a.=.b");
 * assert.equal(topicSubject("mqtt", "m", "x".repeat(2000)), "mqtt.m.==");
 * ```
 */
export function topicSubject(prefix: string, kind: string, topic: string): string {
  checkPrefix(prefix);
  checkKind(kind);
  const head = prefix + "." + kind + ".";
  // A token is never shorter than its level, so such a topic is long whatever its levels.
  if (head.length + topic.length > MAX_SUBJECT) return head + LONG_TOPIC_TOKEN;
  const subject = plainTail(topic, 0x2f)
    ? head + topic.replaceAll("/", ".")
    : head + topic.split("/").map(levelToken).join(".");
  return subject.length > MAX_SUBJECT ? head + LONG_TOPIC_TOKEN : subject;
}

/** What {@linkcode subjectTopic} reads from a subject. */
export interface SubjectTopic {
  /** The kind token. */
  kind: string;
  /** The topic name. */
  topic: string;
}

/**
 * The kind and topic of a subject that {@linkcode topicSubject} made: its inverse.
 *
 * @param prefix The cluster's subject prefix.
 * @param subject A subject a message arrived on.
 * @returns The kind and the topic, or `undefined` for the long-topic subject (read the topic from the message)
 * and for any subject that `topicSubject` does not make for a valid topic name with this prefix.
 *
 * @example Read a subject
 * ```ts
 * import assert from "node:assert/strict";
 * import { subjectTopic } from "./subjects.ts";
 * assert.deepEqual(subjectTopic("mqtt", "mqtt.m.=JFNZUw.x"), { kind: "m", topic: "$SYS/x" });
 * assert.equal(subjectTopic("mqtt", "mqtt.m.=="), undefined);
 * assert.equal(subjectTopic("mqtt", "other.m.a"), undefined);
 * ```
 */
export function subjectTopic(prefix: string, subject: string): SubjectTopic | undefined {
  const kindStart = prefix.length + 1;
  if (
    subject.length > MAX_SUBJECT || !subject.startsWith(prefix) || subject.charCodeAt(prefix.length) !== 0x2e
  ) {
    return undefined;
  }
  const kindEnd = subject.indexOf(".", kindStart);
  if (kindEnd === -1) return undefined;
  const kind = subject.slice(kindStart, kindEnd);
  if (!checkedKinds.has(kind) && !isLiteralToken(kind)) return undefined;
  const tail = subject.slice(kindEnd + 1);
  if (tail === LONG_TOPIC_TOKEN) return undefined;
  let topic: string;
  if (plainTail(tail, 0x2e)) {
    topic = tail.replaceAll(".", "/");
  } else {
    const tokens = tail.split(".");
    for (let i = 0; i < tokens.length; i++) {
      try {
        tokens[i] = tokenLevel(tokens[i]);
      } catch {
        return undefined;
      }
    }
    topic = tokens.join("/");
  }
  if (topicNameProblem(topic) !== undefined) return undefined;
  return { kind, topic };
}

/** The length of the subject `head` + `tokens`, joined with `.`. */
function subjectLength(head: string, tokens: readonly string[]): number {
  let length = head.length + tokens.length - 1;
  for (const token of tokens) length += token.length;
  return length;
}

/**
 * The NATS subscriptions that receive every message whose topic `filter` matches, over all kinds:
 * `{prefix}.*.{tokens}` with `+` as `*` and `#` as `>`. A trailing `#` also matches its parent level, so
 * `a/#` gives `{prefix}.*.a` and `{prefix}.*.a.>`; `#` alone gives `{prefix}.*.>`.
 *
 * A filter with a wildcard can match a topic too long to have its own subject, so its list also holds the
 * long-topic subject `{prefix}.*.==`, unless another subscription of the list (`{prefix}.*.*` or
 * `{prefix}.*.>`) receives it already. A subscription that would be longer than {@linkcode MAX_SUBJECT} is left
 * out: each `*` or `>` stands for at least one token of at least one character, so every topic it would receive
 * is too long to have its own subject and travels on the long-topic subject. A filter without wildcards thus
 * gets the long-topic subject only when it is that long itself, and then as its only subscription. No
 * subscription of the list receives what another one does, so a message arrives at most once per filter
 * (subscriptions of different filters do overlap).
 *
 * The subscriptions may receive topics the filter does not match (any long topic, and `$` topics under a
 * leading wildcard [MQTT-4.7.2-1]): match each message's topic against the filter again.
 *
 * @param prefix The cluster's subject prefix.
 * @param filter A topic filter; for a shared subscription `$share/{group}/{filter}`, that of the inner filter.
 * @returns The subjects to subscribe to, at least one.
 * @throws {MqttError} Reason code 0x8F Topic Filter Invalid, when the filter is not valid.
 * @throws {TypeError} When `prefix` is not made of NATS tokens without wildcards.
 *
 * @example Subscriptions of filters
 * ```ts
 * import assert from "node:assert/strict";
 * import { filterSubjects } from "./subjects.ts";
 * assert.deepEqual(filterSubjects("mqtt", "a/b"), ["mqtt.*.a.b"]);
 * assert.deepEqual(filterSubjects("mqtt", "a/+/c"), ["mqtt.*.a.*.c", "mqtt.*.=="]);
 * assert.deepEqual(filterSubjects("mqtt", "#"), ["mqtt.*.>"]);
 * ```
 */
export function filterSubjects(prefix: string, filter: string): string[] {
  validateTopicFilter(filter);
  checkPrefix(prefix);
  const inner = parseSharedSubscription(filter)?.filter ?? filter;
  const head = prefix + ".*.";
  const levels = inner.split("/");
  let wildcard = false;
  const tokens = levels.map((level) => {
    if (level === "+" || level === "#") {
      wildcard = true;
      return level === "+" ? "*" : ">";
    }
    return levelToken(level);
  });
  if (!wildcard) {
    const subject = head + tokens.join(".");
    return [subject.length > MAX_SUBJECT ? head + LONG_TOPIC_TOKEN : subject];
  }
  const tails: string[][] = [];
  // "a/#" matches "a" too (MQTT 5 §4.7.1.2).
  if (tokens.length > 1 && tokens[tokens.length - 1] === ">") tails.push(tokens.slice(0, -1));
  tails.push(tokens);
  const subjects = tails.filter((tail) => subjectLength(head, tail) <= MAX_SUBJECT)
    .map((tail) => head + tail.join("."));
  // The parent and the "#" subscription never overlap; only "*" or ">" alone receives the long-topic subject.
  const catchAll = subjects.includes(head + "*") || subjects.includes(head + ">");
  if (!catchAll) subjects.push(head + LONG_TOPIC_TOKEN);
  return subjects;
}
/** The hash-based form of a long name: `==`, the FNV-1a hash of its UTF-8 and its length, after `start`. */
function hashed(start: string, text: string): string {
  const bytes = encodeWtf8(text);
  return start + "==" + fnv1a64(bytes) + "-" + bytes.length.toString(36);
}

/**
 * The NATS queue group name of the shared subscription `$share/{group}/{filter}`: the tokens of the share name
 * and of each filter level (as {@linkcode levelToken} makes them, wildcards included), joined with `.`, such as
 * `workers.jobs.=Iw` for `$share/workers/jobs/#`. Distinct pairs give distinct names; a name longer than
 * {@linkcode MAX_QUEUE} characters is cut and ends with `==`, a 64-bit FNV-1a hash of the whole name and its
 * length instead, so that two long pairs share a name only if their hashes collide (which is unlikely by chance,
 * but FNV is no cryptographic hash). Only `A-Z a-z 0-9 _ - = .` appear.
 *
 * @param group The share name.
 * @param filter The topic filter after the share name.
 * @returns The queue group name.
 * @throws {TypeError} When `group` contains `/`.
 *
 * @example The queue of a shared subscription
 * ```ts
 * import assert from "node:assert/strict";
 * import { sharedQueue } from "./subjects.ts";
 * assert.equal(sharedQueue("workers", "jobs/+"), "workers.jobs.=Kw");
 * ```
 */
export function sharedQueue(group: string, filter: string): string {
  const name = levelToken(group) + "." + filter.split("/").map(levelToken).join(".");
  if (name.length <= MAX_QUEUE) return name;
  return hashed(name.slice(0, MAX_QUEUE - 32), name);
}

/**
 * A key-value key for a client identifier, a topic or any text: the text itself when it is non-empty and only
 * `A-Z a-z 0-9 _ - /`, otherwise `=` and the base64url of its UTF-8 (`=` alone for the empty text). When that is
 * longer than {@linkcode MAX_KEY} characters, the key is `==`, the 64-bit FNV-1a hash of the UTF-8 in
 * hexadecimal, `-` and the byte length in base 36: two long texts of the same length share a key if their hashes
 * collide, which is unlikely by chance but can be made on purpose (FNV is no cryptographic hash), so keep the
 * text in the value too and compare it when that matters. Keys never contain `.`, so each is one subject token.
 *
 * @param text The text.
 * @returns A valid key: one or more of `- / _ = A-Z a-z 0-9`.
 *
 * @example Keys of client identifiers
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyOf } from "./subjects.ts";
 * assert.equal(keyOf("sensor-17"), "sensor-17");
 * assert.equal(keyOf("a.b"), "=YS5i");
 * ```
 */
export function keyOf(text: string): string {
  if (text.length <= MAX_KEY && allOf(KEY_PLAIN, text)) return text;
  // An escaped key is longer than its text.
  if (text.length < MAX_KEY) {
    const key = "=" + toBase64Url(encodeWtf8(text));
    if (key.length <= MAX_KEY) return key;
  }
  return hashed("", text);
}
