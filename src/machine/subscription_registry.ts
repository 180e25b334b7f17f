/**
 * A client's subscriptions: the filters on the wire, shared by the local subscriptions that asked for them, their
 * MQTT 5 subscription identifiers, and which local subscriptions a received message is for (a topic tree and a
 * route cache). It sends no packet and keeps no connection state: `ClientMachine` sends SUBSCRIBE and UNSUBSCRIBE.
 *
 * @module
 */

import type { ConnAckProperties, PublishPacket } from "../codec/packet.ts";
import { parseSharedSubscription, topicMatches, validateTopicFilter } from "../codec/topic.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import { TopicTree } from "./topic_tree.ts";
import type { ClientSessionState, SubscriptionRequest } from "./client_types.ts";

/** A filter on the wire, shared by the local subscriptions that asked for it. */
interface WireSubscription {
  request: Required<SubscriptionRequest>;
  /** The MQTT 5 subscription identifier it was last subscribed with. */
  identifier: number | undefined;
  subscriptions: Set<number>;
}

const MAX_SUBSCRIPTION_IDENTIFIER = 268_435_455;
/** How many topics `route` remembers its answer for before it starts over. */
const ROUTE_CACHE_SIZE = 1024;
const NONE: string[] = [];

/**
 * Checks subscription requests against the filter syntax and what the server said it supports, and fills in
 * their defaults.
 *
 * @param requests The filters and their options.
 * @param available The server's CONNACK properties.
 * @returns The requests with every option set.
 * @throws {MqttError} When a filter is invalid or the server does not support what it needs.
 */
export function normalizeRequests(
  requests: readonly SubscriptionRequest[],
  available: ConnAckProperties | undefined,
): Required<SubscriptionRequest>[] {
  return requests.map((request) => {
    validateTopicFilter(request.topicFilter);
    const shared = parseSharedSubscription(request.topicFilter);
    if (shared !== undefined && available?.sharedSubscriptionAvailable === false) {
      throw new MqttError(
        ReasonCode.SharedSubscriptionsNotSupported,
        `Cannot subscribe to "${request.topicFilter}": the server does not support shared subscriptions`,
      );
    }
    if (/[+#]/.test(request.topicFilter) && available?.wildcardSubscriptionAvailable === false) {
      throw new MqttError(
        ReasonCode.WildcardSubscriptionsNotSupported,
        `Cannot subscribe to "${request.topicFilter}": the server does not support wildcard subscriptions`,
      );
    }
    if (shared !== undefined && request.noLocal) {
      throw new MqttError(
        ReasonCode.ProtocolError,
        `Cannot subscribe to "${request.topicFilter}" with no local: it is a shared subscription [MQTT-3.8.3-4]`,
      );
    }
    return {
      topicFilter: request.topicFilter,
      qos: request.qos ?? 0,
      noLocal: request.noLocal ?? false,
      retainAsPublished: request.retainAsPublished ?? false,
      retainHandling: request.retainHandling ?? 0,
    } satisfies Required<SubscriptionRequest>;
  });
}

/** The local subscriptions of a client and the wire filters they share; kept across connections. */
export class SubscriptionRegistry {
  readonly #wire = new Map<string, WireSubscription>();
  /** The wire filters as a topic tree, so that matching a message does not scan every filter. */
  readonly #tree = new TopicTree<WireSubscription>();
  /**
   * `route`'s answers by topic, for messages without subscription identifiers: a stream of messages to a
   * few topics is routed without splitting and matching each one. Emptied whenever a wire subscription or
   * its local subscriptions change, and when it reaches `ROUTE_CACHE_SIZE` topics.
   */
  readonly #routes = new Map<string, readonly number[]>();
  readonly #local = new Map<number, Set<string>>();
  readonly #identifiers = new Map<number, Set<string>>();
  #nextSubscription = 1;
  #nextIdentifier = 1;

  /** How many filters are on the wire. */
  get wireSize(): number {
    return this.#wire.size;
  }

  /** The local subscriptions with their requests, for `ClientMachine.exportSession`. */
  export(): ClientSessionState["subscriptions"] {
    const subscriptions: ClientSessionState["subscriptions"] = [];
    for (const filters of this.#local.values()) {
      const requests: Required<SubscriptionRequest>[] = [];
      for (const filter of filters) {
        const wire = this.#wire.get(filter);
        if (wire !== undefined) requests.push({ ...wire.request });
      }
      if (requests.length > 0) subscriptions.push({ filters: requests });
    }
    return subscriptions;
  }

  /**
   * Restores exported subscriptions, without subscription identifiers (a new connection subscribes again).
   *
   * @param subscriptions From {@linkcode SubscriptionRegistry.export}.
   * @returns The local subscription numbers given to them, in order.
   */
  restore(subscriptions: ClientSessionState["subscriptions"]): number[] {
    const numbers: number[] = [];
    for (const { filters } of subscriptions) {
      const subscription = this.#nextSubscription++;
      const names = new Set<string>();
      for (const request of filters) {
        names.add(request.topicFilter);
        const wire = this.#wire.get(request.topicFilter);
        if (wire === undefined) {
          this.#addWire(request.topicFilter, {
            request,
            identifier: undefined,
            subscriptions: new Set([subscription]),
          });
        } else {
          wire.subscriptions.add(subscription);
          this.#routes.clear();
        }
      }
      this.#local.set(subscription, names);
      numbers.push(subscription);
    }
    return numbers;
  }

  /** The next MQTT 5 subscription identifier, from 1 up to the largest and round again. */
  newIdentifier(): number {
    const identifier = this.#nextIdentifier;
    this.#nextIdentifier = identifier === MAX_SUBSCRIPTION_IDENTIFIER ? 1 : identifier + 1;
    return identifier;
  }

  /**
   * Adds a local subscription: its filters go on the wire, or join the wire filter already there (which takes
   * the new options and identifier).
   *
   * @param requests From {@linkcode normalizeRequests}.
   * @param identifier The subscription identifier of the SUBSCRIBE, if any.
   * @returns The new local subscription's number.
   */
  add(requests: Required<SubscriptionRequest>[], identifier: number | undefined): number {
    const subscription = this.#nextSubscription++;
    const filters = new Set<string>();
    for (const request of requests) {
      filters.add(request.topicFilter);
      const wire = this.#wire.get(request.topicFilter);
      if (wire === undefined) {
        this.#addWire(request.topicFilter, { request, identifier, subscriptions: new Set([subscription]) });
      } else {
        wire.request = request;
        wire.subscriptions.add(subscription);
        this.#routes.clear();
        this.#forgetIdentifier(request.topicFilter, wire.identifier);
        wire.identifier = identifier;
      }
      if (identifier !== undefined) {
        let set = this.#identifiers.get(identifier);
        if (set === undefined) this.#identifiers.set(identifier, set = new Set());
        set.add(request.topicFilter);
      }
    }
    this.#local.set(subscription, filters);
    return subscription;
  }

  /**
   * Ends a local subscription.
   *
   * @param subscription Its number.
   * @returns The filters no other local subscription uses, which leave the wire (none for an unknown one).
   */
  remove(subscription: number): string[] {
    const filters = this.#local.get(subscription);
    if (filters === undefined) return NONE;
    this.#local.delete(subscription);
    const leaving: string[] = [];
    for (const filter of filters) {
      const wire = this.#wire.get(filter);
      if (wire === undefined) continue;
      wire.subscriptions.delete(subscription);
      this.#routes.clear();
      if (wire.subscriptions.size === 0) {
        this.#deleteWire(filter);
        this.#forgetIdentifier(filter, wire.identifier);
        leaving.push(filter);
      }
    }
    return leaving;
  }

  /**
   * Takes filters off the wire, whichever local subscriptions use them.
   *
   * @param filters The topic filters.
   * @returns The filters that were on the wire, and the local subscriptions left with none.
   */
  removeFilters(filters: readonly string[]): { leaving: string[]; emptied: number[] } {
    const leaving: string[] = [];
    const emptied: number[] = [];
    for (const filter of new Set(filters)) {
      const wire = this.#wire.get(filter);
      if (wire === undefined) continue;
      this.#deleteWire(filter);
      this.#forgetIdentifier(filter, wire.identifier);
      leaving.push(filter);
      for (const subscription of wire.subscriptions) {
        const own = this.#local.get(subscription);
        own?.delete(filter);
        if (own?.size === 0) {
          this.#local.delete(subscription);
          emptied.push(subscription);
        }
      }
    }
    return { leaving, emptied };
  }

  /**
   * The wire filters to subscribe again when the server did not keep the session, grouped by the identifier
   * each had.
   *
   * @param covered Filters a SUBSCRIBE still waiting for its SUBACK already asks for.
   */
  resubscriptions(covered: ReadonlySet<string>): Map<number | undefined, Required<SubscriptionRequest>[]> {
    const groups = new Map<number | undefined, Required<SubscriptionRequest>[]>();
    for (const [filter, wire] of this.#wire) {
      if (covered.has(filter)) continue;
      let group = groups.get(wire.identifier);
      if (group === undefined) groups.set(wire.identifier, group = []);
      group.push(wire.request);
    }
    return groups;
  }

  /**
   * Which local subscriptions a message is for: by subscription identifier when present, else by matching.
   *
   * @param packet The received PUBLISH.
   * @returns The local subscription numbers; read-only (shared between messages to the same topic).
   */
  route(packet: PublishPacket): readonly number[] {
    const identifiers = packet.properties?.subscriptionIdentifiers;
    if (identifiers !== undefined) {
      const found = new Set<number>();
      for (const identifier of identifiers) {
        for (const filter of this.#identifiers.get(identifier) ?? []) {
          if (!topicMatches(filter, packet.topic)) continue;
          for (const s of this.#wire.get(filter)?.subscriptions ?? []) found.add(s);
        }
      }
      return [...found];
    }
    const topic = packet.topic;
    const known = this.#routes.get(topic);
    if (known !== undefined) return known;
    const found = new Set<number>();
    this.#tree.match(topic, (wire) => {
      for (const s of wire.subscriptions) found.add(s);
    });
    const route = Object.freeze([...found]);
    if (this.#routes.size >= ROUTE_CACHE_SIZE) this.#routes.clear();
    this.#routes.set(topic, route);
    return route;
  }

  /** Puts a filter on the wire, indexed for matching (a shared subscription by its inner filter). */
  #addWire(filter: string, wire: WireSubscription): void {
    this.#routes.clear();
    this.#wire.set(filter, wire);
    this.#tree.add(parseSharedSubscription(filter)?.filter ?? filter, filter, wire);
  }

  #deleteWire(filter: string): void {
    this.#routes.clear();
    this.#wire.delete(filter);
    this.#tree.remove(parseSharedSubscription(filter)?.filter ?? filter, filter);
  }

  #forgetIdentifier(filter: string, identifier: number | undefined): void {
    if (identifier === undefined) return;
    const filters = this.#identifiers.get(identifier);
    filters?.delete(filter);
    if (filters?.size === 0) this.#identifiers.delete(identifier);
  }
}
