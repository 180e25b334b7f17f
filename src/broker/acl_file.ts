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
 * The access word is `read`, `write`, `readwrite` (the default when left out) or `deny`.
 *
 * @module
 */

import { topicMatches } from "../codec/topic.ts";

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

/** Whether every topic `filter` can match is also matched by `pattern` (both topic filters). */
function covers(pattern: string, filter: string): boolean {
  const p = pattern.split("/");
  const f = filter.split("/");
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
 * Whether a client may subscribe to a filter: a `read` or `readwrite` rule covers every topic the filter can
 * match, and no `deny` rule overlaps it.
 *
 * @param acl The rules.
 * @param client The client id and user name.
 * @param filter The topic filter (a shared subscription is checked by its inner filter).
 * @returns `true` when allowed.
 *
 * @example Check a subscription
 * ```ts
 * import { canSubscribe, parseAclFile } from "@x/mqtt/broker";
 * const acl = parseAclFile("topic read public/#");
 * console.log(canSubscribe(acl, { clientId: "c" }, "public/news/+")); // true
 * console.log(canSubscribe(acl, { clientId: "c" }, "#")); // false
 * ```
 */
export function canSubscribe(
  acl: AclFile,
  client: { clientId: string; username?: string },
  filter: string,
): boolean {
  const shared = /^\$share\/[^/]+\/(.+)$/.exec(filter);
  const inner = shared === null ? filter : shared[1];
  const rules = rulesFor(acl, client.clientId, client.username);
  if (rules.some((r) => r.access === "deny" && (covers(r.topic, inner) || covers(inner, r.topic)))) {
    return false;
  }
  return rules.some((r) => (r.access === "read" || r.access === "readwrite") && covers(r.topic, inner));
}
