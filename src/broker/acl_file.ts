/**
 * Access control lists in mosquitto's `acl_file` format:
 *
 * ```
 * # topic lines before any user line apply to anonymous clients
 * topic read public/#
 * user ada
 * topic readwrite ada/#
 * topic deny ada/secret
 * # pattern lines apply to every client; %c is its client id, %u its user name
 * pattern write devices/%c/status
 * ```
 *
 * The access word is `read`, `write`, `readwrite` (the default when left out) or `deny`. A client's rules are
 * its user's lines (or the anonymous ones) plus every `pattern` line; a `deny` line wins over the others.
 *
 * What mosquitto users expect, and a little more: a subscription is granted when some topic it can match is
 * readable (so `#` with `topic read public/#`, and `+/+` with `topic deny test/nosubscribe` beside
 * `topic readwrite #`), and then every message delivered, retained and queued ones included, is checked
 * against the read and deny rules ({@linkcode canRead}). Unlike mosquitto, a subscription with nothing
 * readable is refused at once (0x87 in MQTT 5, 0x80 before), so the client learns it (see
 * {@linkcode canSubscribe}).
 *
 * @module
 */

import { parseSharedSubscription, topicMatches } from "../codec/topic.ts";

/** What a rule allows. */
export type Access = "read" | "write" | "readwrite" | "deny";

/** One `topic` or `pattern` line of an ACL file. */
export interface Rule {
  /** What the line allows, or `deny`. */
  access: Access;
  /** The topic filter the line applies to, with `+` and `#` wildcards. */
  topic: string;
  /** `pattern` lines substitute %c and %u. */
  pattern: boolean;
}

/** A parsed ACL file. */
export interface AclFile {
  /** Rules for clients without a user name. */
  anonymous: Rule[];
  /** Rules per user name. */
  users: Map<string, Rule[]>;
  /** Rules for everyone, with %c and %u. */
  patterns: Rule[];
}

/**
 * Parses an ACL file.
 *
 * @param text The file's contents.
 * @returns The rules.
 * @throws {SyntaxError} Naming the line that is not a comment, `user NAME`, `topic [ACCESS] TOPIC` or
 *   `pattern [ACCESS] TOPIC`.
 *
 * @example Parse rules
 * ```ts
 * import { parseAclFile } from "@x/mqtt/broker";
 * const acl = parseAclFile("user ada\ntopic readwrite ada/#\npattern write devices/%c/status\n");
 * console.log(acl.users.get("ada")?.length, acl.patterns.length); // 1 1
 * ```
 */
export function parseAclFile(text: string): AclFile {
  const acl: AclFile = { anonymous: [], users: new Map(), patterns: [] };
  let current: Rule[] = acl.anonymous;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const where = `ACL file line ${i + 1}`;
    const space = line.indexOf(" ");
    const keyword = space === -1 ? line : line.slice(0, space);
    const rest = space === -1 ? "" : line.slice(space + 1).trim();
    if (keyword === "user") {
      if (rest === "") throw new SyntaxError(`Cannot read ${where}: "user" needs a name`);
      current = acl.users.get(rest) ?? [];
      acl.users.set(rest, current);
      continue;
    }
    if (keyword !== "topic" && keyword !== "pattern") {
      throw new SyntaxError(`Cannot read ${where}: expected "user", "topic" or "pattern", not "${keyword}"`);
    }
    const [first, ...others] = rest.split(" ");
    let access: Access = "readwrite";
    let topic = rest;
    if (first === "read" || first === "write" || first === "readwrite" || first === "deny") {
      access = first;
      topic = others.join(" ").trim();
    }
    if (topic === "") throw new SyntaxError(`Cannot read ${where}: "${keyword}" needs a topic`);
    const rule: Rule = { access, topic, pattern: keyword === "pattern" };
    if (keyword === "pattern") acl.patterns.push(rule);
    else current.push(rule);
  }
  return acl;
}

/** The filter matching exactly the topics that both filters match, or `undefined` when they share none. */
function intersect(a: string, b: string): string | undefined {
  const x = a.split("/");
  const y = b.split("/");
  const levels: string[] = [];
  for (let i = 0;; i++) {
    const p = x[i];
    const q = y[i];
    // '#' takes whatever the other filter has from here on, or nothing: it also matches the parent level.
    if (p === "#") {
      levels.push(...y.slice(i));
      break;
    }
    if (q === "#") {
      levels.push(...x.slice(i));
      break;
    }
    if (p === undefined || q === undefined) {
      if (p === q) break;
      return undefined;
    }
    if (p === "+") levels.push(q);
    else if (q === "+" || q === p) levels.push(p);
    else return undefined;
  }
  // [MQTT-4.7.2-1] a leading wildcard does not match topics that start with "$": "#" and "$SYS/#" share none.
  if (levels[0].startsWith("$") && (isWildcard(x[0]) || isWildcard(y[0]))) return undefined;
  return levels.join("/");
}

function isWildcard(level: string): boolean {
  return level === "+" || level === "#";
}

/** Whether every topic `filter` can match is also matched by `pattern` (both topic filters). */
function covers(pattern: string, filter: string): boolean {
  const p = pattern.split("/");
  const f = filter.split("/");
  // [MQTT-4.7.2-1] "#" or "+/…" never match "$SYS/…".
  if (isWildcard(p[0]) && f[0].startsWith("$")) return false;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === "#") return true;
    if (i >= f.length) return false;
    if (f[i] === "#") return false;
    if (p[i] === "+") continue;
    if (f[i] === "+" || f[i] !== p[i]) return false;
  }
  return p.length === f.length;
}

function rulesFor(acl: AclFile, clientId: string, username: string | undefined): Rule[] {
  const own = username === undefined ? acl.anonymous : acl.users.get(username) ?? [];
  const patterns: Rule[] = [];
  for (const rule of acl.patterns) {
    // A %u pattern means nothing for a client without a user name.
    if (username === undefined && rule.topic.includes("%u")) continue;
    // Substituted values are single topic levels: a client id with / + # cannot widen a pattern.
    if (/[/+#]/.test(clientId) && rule.topic.includes("%c")) continue;
    if (username !== undefined && /[/+#]/.test(username) && rule.topic.includes("%u")) continue;
    patterns.push({ ...rule, topic: rule.topic.replaceAll("%c", clientId).replaceAll("%u", username ?? "") });
  }
  return [...own, ...patterns];
}

/** A client's rules that matter for reading: the filters of its `read`/`readwrite` lines and of its `deny` lines. */
interface ReadRules {
  read: string[];
  deny: string[];
}

function readRulesFor(acl: AclFile, clientId: string, username: string | undefined): ReadRules {
  const rules: ReadRules = { read: [], deny: [] };
  for (const rule of rulesFor(acl, clientId, username)) {
    if (rule.access === "deny") rules.deny.push(rule.topic);
    else if (rule.access === "read" || rule.access === "readwrite") rules.read.push(rule.topic);
  }
  return rules;
}

function readable(rules: ReadRules, topic: string): boolean {
  for (const filter of rules.deny) if (topicMatches(filter, topic)) return false;
  for (const filter of rules.read) if (topicMatches(filter, topic)) return true;
  return false;
}

/**
 * Whether a client may publish to a topic: a `write` or `readwrite` rule matches it and no `deny` rule does.
 *
 * @param acl The rules.
 * @param client The client id and user name.
 * @param topic The topic name.
 * @returns `true` when allowed.
 *
 * @example Check a publish
 * ```ts
 * import { canPublish, parseAclFile } from "@x/mqtt/broker";
 * const acl = parseAclFile("pattern write devices/%c/status");
 * console.log(canPublish(acl, { clientId: "d1" }, "devices/d1/status")); // true
 * console.log(canPublish(acl, { clientId: "d1" }, "devices/d2/status")); // false
 * ```
 */
export function canPublish(
  acl: AclFile,
  client: { clientId: string; username?: string },
  topic: string,
): boolean {
  const rules = rulesFor(acl, client.clientId, client.username);
  if (rules.some((r) => r.access === "deny" && topicMatches(r.topic, topic))) return false;
  return rules.some((r) =>
    (r.access === "write" || r.access === "readwrite") && topicMatches(r.topic, topic)
  );
}

/**
 * Whether a client may receive a message published to a topic: a `read` or `readwrite` rule matches it and no
 * `deny` rule does. The broker asks this for every message it delivers, retained and queued ones included.
 *
 * @param acl The rules.
 * @param client The client id and user name.
 * @param topic The topic name.
 * @returns `true` when allowed.
 *
 * @example Check a delivery
 * ```ts
 * import assert from "node:assert/strict";
 * import { canRead, parseAclFile } from "@x/mqtt/broker";
 * const acl = parseAclFile("topic readwrite #\ntopic deny test/nosubscribe\n");
 * assert.equal(canRead(acl, { clientId: "c" }, "test/other"), true);
 * assert.equal(canRead(acl, { clientId: "c" }, "test/nosubscribe"), false);
 * assert.equal(canRead(acl, { clientId: "c" }, "$SYS/broker/uptime"), false); // "#" does not match "$…"
 * ```
 */
export function canRead(
  acl: AclFile,
  client: { clientId: string; username?: string },
  topic: string,
): boolean {
  return readable(readRulesFor(acl, client.clientId, client.username), topic);
}

/**
 * Whether a client may subscribe to a filter: some topic the filter can match is readable (see
 * {@linkcode canRead}). A filter that also matches unreadable topics is granted, as mosquitto does: the
 * broker checks every message it delivers, so those never arrive. A filter with nothing readable is refused,
 * which mosquitto does not do (it grants `#` to a client that may read nothing).
 *
 * The check is exact for one rule at a time and errs towards granting when only several `deny` rules
 * together hide everything: it refuses when each `read` rule either shares no topic with the filter or
 * shares only topics that one `deny` rule covers. With `topic read a/#`, `topic deny a` and
 * `topic deny a/+/#`, the filter `a/#` is granted although nothing under it is readable; it receives nothing.
 *
 * @param acl The rules.
 * @param client The client id and user name.
 * @param filter The topic filter; a shared subscription (`$share/GROUP/FILTER`) is judged by its filter.
 * @returns `true` when allowed.
 *
 * @example Check subscriptions
 * ```ts
 * import assert from "node:assert/strict";
 * import { canSubscribe, parseAclFile } from "@x/mqtt/broker";
 * const acl = parseAclFile("topic read public/#\ntopic deny public/secret\n");
 * assert.equal(canSubscribe(acl, { clientId: "c" }, "#"), true); // public/… is readable
 * assert.equal(canSubscribe(acl, { clientId: "c" }, "public/secret"), false); // nothing readable
 * assert.equal(canSubscribe(acl, { clientId: "c" }, "private/#"), false);
 * assert.equal(canSubscribe(acl, { clientId: "c" }, "$SYS/#"), false); // "public/#" does not reach "$SYS"
 * ```
 */
export function canSubscribe(
  acl: AclFile,
  client: { clientId: string; username?: string },
  filter: string,
): boolean {
  const inner = parseSharedSubscription(filter)?.filter ?? filter;
  const { read, deny } = readRulesFor(acl, client.clientId, client.username);
  for (const rule of read) {
    const shared = intersect(rule, inner);
    if (shared !== undefined && !deny.some((d) => covers(d, shared))) return true;
  }
  return false;
}

/**
 * {@linkcode canRead} for a broker's deliveries: a client's rules are worked out once per client object (a
 * session) and user name, not per message. Not part of the public API.
 *
 * @param acl The rules.
 * @returns The check.
 */
export function aclReadCheck(
  acl: AclFile,
): (client: { readonly clientId: string; readonly username?: string }, topic: string) => boolean {
  const cache = new WeakMap<object, { username: string | undefined; rules: ReadRules }>();
  return (client, topic) => {
    let entry = cache.get(client);
    if (entry === undefined || entry.username !== client.username) {
      entry = { username: client.username, rules: readRulesFor(acl, client.clientId, client.username) };
      cache.set(client, entry);
    }
    return readable(entry.rules, topic);
  };
}
