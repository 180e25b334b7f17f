/**
 * The engine subscriptions of a cluster node: one set per topic filter its sessions hold (a queue subscription
 * per shared subscription, and the service its group's members on other nodes hand messages to), kept while a
 * session holds the filter or a SUBSCRIBE on its way asks for it.
 *
 * @module
 */

import { parseSharedSubscription, topicFilterProblem } from "../codec/topic.ts";
import type { ClusterEngine, EngineHandler, EngineSubscription } from "./engine.ts";
import { filterSubjects, sharedQueue } from "./subjects.ts";

/** What the subscriptions need of their node. */
export interface InterestNode {
  readonly engine: ClusterEngine;
  readonly prefix: string;
  /** Whether the engine can be used now. */
  available(): boolean;
  /** Receives what an ordinary subscription brings. */
  readonly onMessage: EngineHandler;
  /**
   * Receives what a shared subscription brings (or another node hands over, with a `seen` of its own).
   *
   * @returns Whether a member of the group here took it.
   */
  onShared(data: Uint8Array, filter: string, seen: Map<string, number>): boolean;
}

/** The engine subscriptions of one topic filter, and who needs them. */
interface Interest {
  subscriptions: EngineSubscription[];
  /** A session of this node holds the filter. */
  held: boolean;
  /** SUBSCRIBE packets on their way that ask for it. */
  prepared: number;
}

/** A node's engine subscriptions, by topic filter. */
export class Interests {
  readonly #node: InterestNode;
  readonly #byFilter = new Map<string, Interest>();

  /** @param node The node they are for. */
  constructor(node: InterestNode) {
    this.#node = node;
  }

  /** A filter gained its first (`present`) or lost its last subscription on this node. */
  set(filter: string, present: boolean): void {
    const interest = present ? this.#subscribe(filter) : this.#byFilter.get(filter);
    if (interest === undefined) return;
    interest.held = present;
    this.#letGo(filter, interest);
  }

  /** Subscribes to filters ahead of a SUBSCRIBE, and waits until the engine has the new subscriptions. */
  async prepare(filters: readonly string[]): Promise<void> {
    let added = false;
    for (const filter of filters) {
      if (topicFilterProblem(filter) !== undefined) continue;
      const existed = this.#byFilter.has(filter);
      const interest = this.#subscribe(filter);
      interest.prepared++;
      added ||= !existed;
    }
    // Once the engine has the new subscriptions, what is published anywhere after the SUBACK comes here.
    if (added && this.#node.available()) await this.#node.engine.flush();
  }

  /** Ends what `prepare` began: filters no session holds are let go. */
  settle(filters: readonly string[]): void {
    for (const filter of filters) {
      const interest = this.#byFilter.get(filter);
      if (interest === undefined) continue;
      interest.prepared--;
      this.#letGo(filter, interest);
    }
  }

  /** Drops every subscription. */
  close(): void {
    for (const interest of this.#byFilter.values()) for (const s of interest.subscriptions) s.unsubscribe();
    this.#byFilter.clear();
  }

  /** Drops the engine subscriptions of a filter that neither a session nor a SUBSCRIBE on its way needs. */
  #letGo(filter: string, interest: Interest): void {
    if (interest.held || interest.prepared > 0) return;
    for (const subscription of interest.subscriptions) subscription.unsubscribe();
    this.#byFilter.delete(filter);
  }

  /** The engine subscriptions of a filter, made when it has none. */
  #subscribe(filter: string): Interest {
    const existing = this.#byFilter.get(filter);
    if (existing !== undefined) return existing;
    const interest: Interest = { subscriptions: [], held: false, prepared: 0 };
    this.#byFilter.set(filter, interest);
    const { engine, prefix } = this.#node;
    const shared = parseSharedSubscription(filter);
    const subjects = filterSubjects(prefix, shared?.filter ?? filter);
    if (shared === undefined) {
      interest.subscriptions = subjects.map((subject) => engine.subscribe(subject, this.#node.onMessage));
      return interest;
    }
    const queue = sharedQueue(shared.group, shared.filter);
    const seen = new Map<string, number>();
    const onShared = (data: Uint8Array) => void this.#node.onShared(data, filter, seen);
    interest.subscriptions = subjects.map((subject) => engine.subscribe(subject, onShared, queue));
    // Messages a member on another node left unacknowledged, for this node's members of the group.
    interest.subscriptions.push(engine.serve(`${prefix}_ctl.share.${queue}`, (data) => {
      return new Uint8Array([this.#node.onShared(data, filter, new Map()) ? 1 : 0]);
    }, queue));
    return interest;
  }
}
