/**
 * Topic names and topic filters (MQTT 5 §4.7 and §4.8.2): validation, matching and shared subscriptions.
 *
 * @module
 */

import { MqttError, ReasonCode } from "../errors.ts";

/** A shared subscription `$share/{group}/{filter}` taken apart. */
export interface SharedSubscription {
  /** The share name. */
  group: string;
  /** The topic filter the group subscribes to. */
  filter: string;
}

/** The UTF-8 length of a string, without checks (lone surrogates count as the 3 bytes of U+FFFD). */
function byteLength(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x800) bytes += c >= 0xd800 && c <= 0xdbff ? 0 : 2;
    else if (c >= 0x80) bytes += 1;
  }
  return bytes;
}

/** Why a string cannot be a topic name or filter at all, whatever its wildcards. */
function basicProblem(text: string): string | undefined {
  if (text.length === 0) return "it is empty [MQTT-4.7.3-1]";
  if (text.includes("\0")) return "it contains U+0000 [MQTT-4.7.3-2]";
  if (text.length > 0x3fff && byteLength(text) > 0xffff) {
    return "it is longer than 65535 bytes [MQTT-4.7.3-3]";
  }
  return undefined;
}

/**
 * Why `topic` is not a valid topic name for a PUBLISH, or `undefined` when it is.
 *
 * @param topic The topic name.
 * @returns A description of the problem, with the statement it breaks, or `undefined`.
 *
 * @example Check a topic name
 * ```ts
 * import { topicNameProblem } from "@x/mqtt/codec";
 * console.log(topicNameProblem("a/+")); // "it contains a wildcard [MQTT-4.7.0-1]"
 * console.log(topicNameProblem("a/b")); // undefined
 * ```
 */
export function topicNameProblem(topic: string): string | undefined {
  const problem = basicProblem(topic);
  if (problem !== undefined) return problem;
  if (topic.includes("+") || topic.includes("#")) return "it contains a wildcard [MQTT-4.7.0-1]";
  return undefined;
}

/** Why a plain (not shared) filter is invalid. */
function plainFilterProblem(filter: string): string | undefined {
  const problem = basicProblem(filter);
  if (problem !== undefined) return problem;
  const length = filter.length;
  for (let i = 0; i < length; i++) {
    const c = filter.charCodeAt(i);
    if (c === 0x23) {
      // '#': alone in its level and the last character.
      if (i !== length - 1 || (i > 0 && filter.charCodeAt(i - 1) !== 0x2f)) {
        return "'#' must be the whole last level [MQTT-4.7.1-1]";
      }
    } else if (c === 0x2b) {
      // '+': a whole level.
      if (
        (i > 0 && filter.charCodeAt(i - 1) !== 0x2f) || (i < length - 1 && filter.charCodeAt(i + 1) !== 0x2f)
      ) {
        return "'+' must be a whole level [MQTT-4.7.1-2]";
      }
    }
  }
  return undefined;
}

/**
 * Why `filter` is not a valid topic filter for a SUBSCRIBE, or `undefined` when it is. Shared subscriptions
 * (`$share/{group}/{filter}`) are checked as such.
 *
 * @param filter The topic filter.
 * @returns A description of the problem, with the statement it breaks, or `undefined`.
 *
 * @example Check topic filters
 * ```ts
 * import { topicFilterProblem } from "@x/mqtt/codec";
 * console.log(topicFilterProblem("a/#/b")); // "'#' must be the whole last level [MQTT-4.7.1-1]"
 * console.log(topicFilterProblem("$share/g/a/+")); // undefined
 * ```
 */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.startsWith("$share/")) {
    const slash = filter.indexOf("/", 7);
    const group = filter.slice(7, slash === -1 ? filter.length : slash);
    if (group.length === 0 || group.includes("+") || group.includes("#")) {
      return "a share name must be at least one character without wildcards [MQTT-4.8.2-1]";
    }
    if (slash === -1 || slash === filter.length - 1) {
      return "a shared subscription needs a topic filter [MQTT-4.8.2-2]";
    }
    return plainFilterProblem(filter.slice(slash + 1));
  }
  return plainFilterProblem(filter);
}

/**
 * Checks a topic name.
 *
 * @param topic The topic name.
 * @throws {MqttError} Reason code 0x90 Topic Name Invalid, saying why.
 *
 * @example Refuse a wildcard
 * ```ts
 * import { validateTopicName } from "@x/mqtt/codec";
 * validateTopicName("sensors/1"); // fine
 * try { validateTopicName("sensors/+"); } catch (error) { console.log((error as Error).message); }
 * ```
 */
export function validateTopicName(topic: string): void {
  const problem = topicNameProblem(topic);
  if (problem !== undefined) {
    throw new MqttError(ReasonCode.TopicNameInvalid, `Cannot use topic name "${topic}": ${problem}`);
  }
}

/**
 * Checks a topic filter.
 *
 * @param filter The topic filter, possibly shared.
 * @throws {MqttError} Reason code 0x8F Topic Filter Invalid, saying why.
 *
 * @example Refuse a misplaced '#'
 * ```ts
 * import { validateTopicFilter } from "@x/mqtt/codec";
 * validateTopicFilter("sensors/#"); // fine
 * try { validateTopicFilter("sensors/#/x"); } catch (error) { console.log((error as Error).message); }
 * ```
 */
export function validateTopicFilter(filter: string): void {
  const problem = topicFilterProblem(filter);
  if (problem !== undefined) {
    throw new MqttError(ReasonCode.TopicFilterInvalid, `Cannot use topic filter "${filter}": ${problem}`);
  }
}

/**
 * Takes a shared subscription filter apart.
 *
 * @param filter A topic filter.
 * @returns The share name and the filter, or `undefined` when `filter` is not `$share/{group}/{filter}`.
 *
 * @example Parse a shared subscription
 * ```ts
 * import { parseSharedSubscription } from "@x/mqtt/codec";
 * console.log(parseSharedSubscription("$share/workers/jobs/#")); // { group: "workers", filter: "jobs/#" }
 * console.log(parseSharedSubscription("jobs/#")); // undefined
 * ```
 */
export function parseSharedSubscription(filter: string): SharedSubscription | undefined {
  if (!filter.startsWith("$share/")) return undefined;
  const slash = filter.indexOf("/", 7);
  if (slash <= 7 || slash === filter.length - 1) return undefined;
  return { group: filter.slice(7, slash), filter: filter.slice(slash + 1) };
}

/**
 * Whether a topic name matches a topic filter: `+` matches one whole level, `#` the parent level and every
 * level below it, and a filter that starts with a wildcard never matches a topic that starts with `$`
 * [MQTT-4.7.2-1]. A shared subscription filter matches what its inner filter matches.
 *
 * @param filter A valid topic filter.
 * @param topic A valid topic name.
 * @returns `true` when a message published to `topic` goes to a subscription to `filter`.
 *
 * @example Match topics
 * ```ts
 * import { topicMatches } from "@x/mqtt/codec";
 * console.log(topicMatches("sport/+/player1", "sport/tennis/player1")); // true
 * console.log(topicMatches("sport/#", "sport")); // true
 * console.log(topicMatches("#", "$SYS/uptime")); // false
 * ```
 */
export function topicMatches(filter: string, topic: string): boolean {
  const shared = parseSharedSubscription(filter);
  if (shared !== undefined) filter = shared.filter;
  const first = filter.charCodeAt(0);
  if (topic.charCodeAt(0) === 0x24 && (first === 0x23 || first === 0x2b)) return false;
  let f = 0;
  let t = 0;
  const fl = filter.length;
  const tl = topic.length;
  while (f < fl) {
    const c = filter.charCodeAt(f);
    if (c === 0x23) return true; // '#' matches the rest, including the parent level
    if (c === 0x2b) {
      // '+': skip one level of the topic.
      while (t < tl && topic.charCodeAt(t) !== 0x2f) t++;
      f++;
    } else {
      // A literal level: compare up to the next '/'.
      while (f < fl && filter.charCodeAt(f) !== 0x2f) {
        if (t >= tl || topic.charCodeAt(t) !== filter.charCodeAt(f)) return false;
        f++;
        t++;
      }
      if (t < tl && topic.charCodeAt(t) !== 0x2f) return false;
    }
    // Both at a level separator or an end.
    if (f === fl) return t === tl;
    // filter has "/" at f; the topic must have one too, unless the filter's next level is a final "#".
    if (t === tl) return filter.charCodeAt(f + 1) === 0x23 && f + 2 === fl;
    f++;
    t++;
  }
  return t === tl;
}
