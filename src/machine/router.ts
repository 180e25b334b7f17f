/**
 * The subscriptions of a broker and the answer to "which sessions get this message": the topic tree (with its
 * match cache), shared-subscription groups, No Local, and the merge of a session's overlapping subscriptions.
 * It never delivers, queues or touches a connection: the broker machine does that with its answer.
 *
 * @module
 */

import type { QoS } from "../codec/packet.ts";
import { parseSharedSubscription } from "../codec/topic.ts";
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
   */
  match(message: BrokerMessage): RouteMatch<S>[];
}

interface ClientEntry<S> {
  readonly kind: "client";
  readonly session: S;
  readonly subscription: SessionSubscription;
}

interface SharedGroup<S> {
  readonly kind: "shared";
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
  readonly #authorize: ((session: S, message: BrokerMessage) => boolean) | undefined;

  /** @param authorize The read rules, for choosing a shared group's member; default: anyone may read. */
  constructor(authorize?: (session: S, message: BrokerMessage) => boolean) {
    this.#authorize = authorize;
  }

  add(session: S, filter: string, subscription: SessionSubscription): void {
    const shared = parseSharedSubscription(filter);
    const entry: ClientEntry<S> = { kind: "client", session, subscription };
    if (shared === undefined) {
      this.#tree.add(filter, session.clientId, entry);
      return;
    }
    const key = `\0${shared.group}`;
    let group = this.#tree.get(shared.filter, key) as SharedGroup<S> | undefined;
    if (group === undefined) {
      group = { kind: "shared", members: [], cursor: 0 };
      this.#tree.add(shared.filter, key, group);
    }
    const index = group.members.findIndex((m) => m.session === session);
    if (index === -1) group.members.push(entry);
    else group.members[index] = entry;
  }

  remove(session: S, filter: string): void {
    const shared = parseSharedSubscription(filter);
    if (shared === undefined) {
      this.#tree.remove(filter, session.clientId);
      return;
    }
    const key = `\0${shared.group}`;
    const group = this.#tree.get(shared.filter, key) as SharedGroup<S> | undefined;
    if (group === undefined) return;
    const index = group.members.findIndex((m) => m.session === session);
    if (index !== -1) group.members.splice(index, 1);
    if (group.members.length === 0) this.#tree.remove(shared.filter, key);
    else if (group.cursor >= group.members.length) group.cursor = 0;
  }

  match(message: BrokerMessage): RouteMatch<S>[] {
    // The sessions that match, once each: the first in `first`, and all of them in `matches` once a second one
    // comes (most messages have one subscriber, which then costs no map).
    let first: RouteMatch<S> | undefined;
    let matches: Map<S, RouteMatch<S>> | undefined;
    const shared: RouteMatch<S>[] = [];
    for (const entry of this.#tree.matchList(message.topic)) {
      if (entry.kind === "shared") {
        const member = this.#pickMember(entry, message);
        if (member !== undefined) {
          const { subscription } = member;
          shared.push({
            session: member.session,
            qos: subscription.qos,
            retainAsPublished: subscription.retainAsPublished,
            identifiers: subscription.identifier === undefined ? undefined : [subscription.identifier],
          });
        }
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
