/**
 * The subscriptions of a broker and the answer to "which sessions get this message": the topic tree (with its
 * match cache), shared-subscription groups, No Local, and the merge of a session's overlapping subscriptions.
 * It never delivers, queues or touches a connection: the broker machine does that with its answer.
 *
 * @module
 */

import type { QoS } from "../codec/packet.ts";
import { parseSharedSubscription, topicMatches } from "../codec/topic.ts";
import type { BrokerMessage } from "./_delivery.ts";
import type { SessionSubscription } from "./broker_types.ts";
import { TopicTree } from "./topic_tree.ts";

/** What a router knows of a session: who it is, and whether it is connected (shared groups prefer those). */
export interface RouterSession {
  /** The client identifier. */
  readonly clientId: string;
  /** The session's connection, `undefined` while it is offline. */
  readonly connection: object | undefined;
}

/** One session a message goes to, all its matching subscriptions merged [MQTT-3.3.4-2]. */
export interface RouteMatch<S> {
  /** The session. */
  readonly session: S;
  /** The highest granted QoS of its matching subscriptions. */
  qos: QoS;
  /** Whether any of them asked for RETAIN as published. */
  retainAsPublished: boolean;
  /** Their subscription identifiers (MQTT 5), in match order. */
  identifiers: number[] | undefined;
  /** The shared subscription (`$share/{group}/{filter}`) the match came through; `undefined` for the others. */
  shared?: string;
}

/**
 * The subscriptions of a broker's sessions: the seam through which a cluster can route across nodes. The
 * in-process default is {@linkcode LocalRouter}.
 */
export interface Router<S extends RouterSession> {
  /** Adds a session's subscription, or replaces the one it had with the same filter [MQTT-3.8.4-3]. */
  add(session: S, filter: string, subscription: SessionSubscription): void;
  /** Removes a session's subscription with this exact filter, if there is one [MQTT-3.10.4-1]. */
  remove(session: S, filter: string): void;
  /**
   * The sessions a message goes to: one entry per session with ordinary subscriptions (not the publisher's
   * own No Local ones [MQTT-3.8.3-3]), then one per shared group whose next member in turn may read it.
   * With `only` (a shared subscription, `$share/{group}/{filter}`), just the next member in turn of that one
   * group that may read it, or none.
   */
  match(message: BrokerMessage, only?: string): RouteMatch<S>[];
}

/** Options of {@linkcode LocalRouter}. */
export interface LocalRouterOptions<S> {
  /** The read rules, for choosing a shared group's member; default: anyone may read. */
  authorize?: (session: S, message: BrokerMessage) => boolean;
  /**
   * Who hands a message to the shared groups: `"local"` (the default), `match(message)` picks a member of
   * each matching group; `"external"`, `match(message)` leaves the groups out, and whoever routes (a
   * cluster, which gives each message to one node's group) asks for one group with `match(message, only)`.
   */
  sharedGroups?: "local" | "external";
  /**
   * Told when a topic filter gets its first subscription (`present` `true`; any session) and when it loses
   * its last one (`false`); a shared subscription is told by its whole `$share/{group}/{filter}` string. A
   * cluster subscribes to the engine's subjects with it. Called from `add` and `remove`: keep it short.
   */
  onInterest?: (filter: string, present: boolean) => void;
}

interface ClientEntry<S> {
  readonly kind: "client";
  readonly session: S;
  readonly subscription: SessionSubscription;
}

interface SharedGroup<S> {
  readonly kind: "shared";
  /** The whole shared subscription, `$share/{group}/{filter}`. */
  readonly name: string;
  /** Its topic filter, without the `$share/{group}/` prefix. */
  readonly filter: string;
  readonly members: ClientEntry<S>[];
  cursor: number;
}

type TreeEntry<S> = ClientEntry<S> | SharedGroup<S>;

/**
 * The in-process {@linkcode Router}: one {@linkcode TopicTree} keyed by client identifier, each shared group
 * one entry of it (keyed `\0` + group name) that hands messages to its members in turn.
 */
export class LocalRouter<S extends RouterSession> implements Router<S> {
  readonly #tree = new TopicTree<TreeEntry<S>>();
  /** The shared groups by their whole `$share/{group}/{filter}`. */
  readonly #groups = new Map<string, SharedGroup<S>>();
  readonly #authorize: ((session: S, message: BrokerMessage) => boolean) | undefined;
  /** Whether `match(message)` leaves the shared groups out (`sharedGroups: "external"`). */
  readonly #externalGroups: boolean;
  readonly #onInterest: ((filter: string, present: boolean) => void) | undefined;
  /** Sessions per ordinary filter, kept only for `onInterest`. */
  readonly #interest: Map<string, number> | undefined;

  /** @param options The read rules, who picks the shared groups' members, and who hears of interest. */
  constructor(options: LocalRouterOptions<S> = {}) {
    this.#authorize = options.authorize;
    this.#externalGroups = options.sharedGroups === "external";
    this.#onInterest = options.onInterest;
    this.#interest = options.onInterest === undefined ? undefined : new Map();
  }

  add(session: S, filter: string, subscription: SessionSubscription): void {
    const shared = parseSharedSubscription(filter);
    const entry: ClientEntry<S> = { kind: "client", session, subscription };
    if (shared === undefined) {
      const replaced = this.#tree.add(filter, session.clientId, entry);
      const interest = this.#interest;
      if (interest !== undefined && replaced === undefined) {
        const count = (interest.get(filter) ?? 0) + 1;
        interest.set(filter, count);
        if (count === 1) this.#onInterest!(filter, true);
      }
      return;
    }
    let group = this.#groups.get(filter);
    if (group === undefined) {
      group = { kind: "shared", name: filter, filter: shared.filter, members: [], cursor: 0 };
      this.#groups.set(filter, group);
      this.#tree.add(shared.filter, `\0${shared.group}`, group);
      this.#onInterest?.(filter, true);
    }
    const index = group.members.findIndex((m) => m.session === session);
    if (index === -1) group.members.push(entry);
    else group.members[index] = entry;
  }

  remove(session: S, filter: string): void {
    const shared = parseSharedSubscription(filter);
    if (shared === undefined) {
      const removed = this.#tree.remove(filter, session.clientId);
      const interest = this.#interest;
      if (interest !== undefined && removed !== undefined) {
        const count = (interest.get(filter) ?? 1) - 1;
        if (count > 0) {
          interest.set(filter, count);
        } else {
          interest.delete(filter);
          this.#onInterest!(filter, false);
        }
      }
      return;
    }
    const group = this.#groups.get(filter);
    if (group === undefined) return;
    const index = group.members.findIndex((m) => m.session === session);
    if (index !== -1) group.members.splice(index, 1);
    if (group.members.length === 0) {
      this.#groups.delete(filter);
      this.#tree.remove(shared.filter, `\0${shared.group}`);
      this.#onInterest?.(filter, false);
    } else if (group.cursor >= group.members.length) {
      group.cursor = 0;
    }
  }

  match(message: BrokerMessage, only?: string): RouteMatch<S>[] {
    if (only !== undefined) {
      const group = this.#groups.get(only);
      if (group === undefined || !topicMatches(group.filter, message.topic)) return [];
      const match = this.#pickMatch(group, message);
      return match === undefined ? [] : [match];
    }
    // The sessions that match, once each: the first in `first`, and all of them in `matches` once a second one
    // comes (most messages have one subscriber, which then costs no map).
    let first: RouteMatch<S> | undefined;
    let matches: Map<S, RouteMatch<S>> | undefined;
    const shared: RouteMatch<S>[] = [];
    for (const entry of this.#tree.matchList(message.topic)) {
      if (entry.kind === "shared") {
        if (this.#externalGroups) continue;
        const match = this.#pickMatch(entry, message);
        if (match !== undefined) shared.push(match);
        continue;
      }
      const { session, subscription } = entry;
      // [MQTT-3.8.3-3] No Local: not back to the publisher.
      if (subscription.noLocal && session.clientId === message.publisher) continue;
      const match = first?.session === session ? first : matches?.get(session);
      if (match === undefined) {
        const added: RouteMatch<S> = {
          session,
          qos: subscription.qos,
          retainAsPublished: subscription.retainAsPublished,
          identifiers: subscription.identifier === undefined ? undefined : [subscription.identifier],
          shared: undefined,
        };
        if (first === undefined) {
          first = added;
        } else {
          matches ??= new Map([[first.session, first]]);
          matches.set(session, added);
        }
      } else {
        // [MQTT-3.3.4-2] one copy at the highest QoS; [MQTT-3.3.4-4] with every identifier.
        if (subscription.qos > match.qos) match.qos = subscription.qos;
        if (subscription.retainAsPublished) match.retainAsPublished = true;
        if (subscription.identifier !== undefined) (match.identifiers ??= []).push(subscription.identifier);
      }
    }
    if (matches !== undefined) {
      const all = [...matches.values()];
      for (const match of shared) all.push(match);
      return all;
    }
    if (first === undefined) return shared;
    return shared.length === 0 ? [first] : [first, ...shared];
  }

  /** The match of a shared group's next member in turn (see `#pickMember`), or `undefined`. */
  #pickMatch(group: SharedGroup<S>, message: BrokerMessage): RouteMatch<S> | undefined {
    const member = this.#pickMember(group, message);
    if (member === undefined) return undefined;
    const { subscription } = member;
    return {
      session: member.session,
      qos: subscription.qos,
      retainAsPublished: subscription.retainAsPublished,
      identifiers: subscription.identifier === undefined ? undefined : [subscription.identifier],
      shared: group.name,
    };
  }

  /**
   * The next member of a shared group in turn that may read the message, preferring connected ones
   * [MQTT-4.8.2-3]: a member the read rules refuse passes the message on instead of losing it for the group.
   */
  #pickMember(group: SharedGroup<S>, message: BrokerMessage): ClientEntry<S> | undefined {
    const authorize = this.#authorize;
    const members = group.members;
    const count = members.length;
    if (count === 0) return undefined;
    let offline: number | undefined;
    for (let i = 0; i < count; i++) {
      const index = (group.cursor + i) % count;
      const session = members[index].session;
      if (authorize !== undefined && !authorize(session, message)) continue;
      if (session.connection !== undefined) {
        group.cursor = (index + 1) % count;
        return members[index];
      }
      offline ??= index;
    }
    if (offline === undefined) return undefined;
    group.cursor = (offline + 1) % count;
    return members[offline];
  }
}

/** Whether a topic filter has more than `limit` levels, a `$share/NAME/` prefix left out. */
export function deeperThan(filter: string, limit: number): boolean {
  let position = filter.startsWith("$share/") ? filter.indexOf("/", 7) + 1 : 0;
  for (let levels = 1; levels <= limit; levels++) {
    position = filter.indexOf("/", position) + 1;
    if (position === 0) return false;
  }
  return true;
}
