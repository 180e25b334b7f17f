/**
 * What a node of a broker cluster does with its broker machine beyond what one broker does: route what other
 * nodes published (without storing it as retained or forwarding it again), set their retained messages, route
 * to one session or one shared group, and hand a session over to another node. Sans-IO like the rest of the
 * machine: the cluster (`src/cluster/`) calls it with what its engine brought.
 *
 * @module
 */

import type { Will } from "../codec/packet.ts";
import type { BrokerMessage } from "./_delivery.ts";
import type { BrokerDelivery } from "./broker_delivery.ts";
import { type BrokerJournal, messageFromSnapshot, sessionSnapshot } from "./broker_journal.ts";
import type { BrokerChange, MessageSnapshot, SessionSnapshot } from "./broker_types.ts";
import type { RetainedStore } from "./retained_store.ts";
import type { Router } from "./router.ts";
import { type SessionRecord, type SessionRegistry, willDelay } from "./session_registry.ts";
import type { SessionMachine } from "./session_machine.ts";

import type { Millis } from "./client_machine.ts";

/** The broker machine's parts and steps the cluster side works with. */
export interface ClusterSideParts {
  readonly sessions: SessionRegistry;
  readonly router: Router<SessionRecord>;
  readonly retained: RetainedStore;
  readonly delivery: BrokerDelivery;
  /** The journal, when the machine keeps one. */
  readonly journal: BrokerJournal | undefined;
  /** Routes a message from another node: no retained store, no `forward`. */
  route(now: Millis, message: BrokerMessage): number;
  /** Takes a session from its live connection (DISCONNECT 0x8E); returns that connection's will. */
  takeOver(now: Millis, record: SessionRecord, connection: SessionMachine): Will | undefined;
  publishWill(now: Millis, record: SessionRecord, will: Will): void;
  /** Ends a session; `ended` false: it moved to another node. */
  endSession(now: Millis, record: SessionRecord, ended: boolean): void;
}

/** The cluster's side of a {@linkcode BrokerMachine}: `machine.cluster`. */
export class BrokerClusterSide {
  readonly #parts: ClusterSideParts;

  /**
   * Made by the broker machine, over its own parts.
   *
   * @param parts The machine's parts.
   */
  constructor(parts: ClusterSideParts) {
    this.#parts = parts;
  }

  /**
   * Routes a message that another node of a cluster published (and that node already forwarded): like
   * `BrokerMachine.route`, but the retained store is left alone (a cluster shares retained messages through
   * {@linkcode BrokerClusterSide.setRetained}) and `forward` is not called; shared groups are left out with
   * `sharedGroups: "external"`.
   *
   * @param now The current time.
   * @param message The message; its expiry counts from `now`.
   * @returns How many sessions it was delivered or queued to.
   */
  routeRemote(now: Millis, message: MessageSnapshot): number {
    return this.#parts.route(now, messageFromSnapshot(now, message));
  }

  /**
   * Everything the journal describes now, as changes under their current keys: the sessions a store keeps
   * (those with an expiry interval or a will) and the deliveries of those with an expiry interval. A store
   * that starts over (a checkpoint) writes these, then goes on with what {@linkcode BrokerMachine.pollChanges}
   * returns next (which may repeat some of them, to the same effect). Retained messages are left out: a
   * cluster shares them otherwise. Needs the `journal` option.
   *
   * @param now The current time; the times in the changes are relative to it.
   * @returns The changes; payloads are views, as with `pollChanges`.
   * @throws {Error} When the machine was created without `journal`.
   */
  checkpoint(now: Millis): BrokerChange[] {
    const { journal, sessions } = this.#parts;
    if (journal === undefined) throw new Error("Cannot make a checkpoint: the machine keeps no journal");
    return journal.checkpoint(now, sessions);
  }

  /**
   * Routes a message to one session only, as {@linkcode BrokerClusterSide.routeRemote} would to it among
   * others (its matching subscriptions, not shared ones): how a node gives a session that just moved to it
   * what came while it moved.
   *
   * @param now The current time.
   * @param clientId The session's client identifier.
   * @param message The message; its expiry counts from `now`.
   * @returns 1 when it was delivered or queued, else 0.
   */
  routeTo(now: Millis, clientId: string, message: MessageSnapshot): number {
    const { sessions, router, delivery } = this.#parts;
    const record = sessions.get(clientId);
    if (record === undefined) return 0;
    const routed = messageFromSnapshot(now, message);
    const match = router.match(routed).find((m) => m.session === record && m.shared === undefined);
    if (match === undefined) return 0;
    const { qos, retainAsPublished, identifiers } = match;
    delivery.startRoute(false);
    return delivery.deliver(now, record, routed, qos, retainAsPublished, identifiers) ? 1 : 0;
  }

  /**
   * Delivers a message to one shared subscription only: to the next member of its group in turn that may read
   * it (connected members first), as routing does for each matching group on one broker. A cluster whose engine
   * hands each message to one node's group (`sharedGroups: "external"`) calls it for that group. It neither
   * stores a retained message nor counts the message as routed (where it was published did both); No Local
   * never applies to a shared subscription [MQTT-3.8.3-4].
   *
   * @param now The current time.
   * @param snapshot The message, as another node published it; its expiry counts from `now`.
   * @param shared The shared subscription, `$share/{group}/{filter}`.
   * @returns 1 when a member got it or has it queued, else 0 (no such group, its filter does not match the
   *   topic, or no member may have it).
   */
  routeShared(now: Millis, snapshot: MessageSnapshot, shared: string): number {
    const { router, delivery } = this.#parts;
    const message = messageFromSnapshot(now, snapshot);
    delivery.startRoute(false);
    let count = 0;
    for (const { session, qos, retainAsPublished, identifiers } of router.match(message, shared)) {
      if (delivery.deliver(now, session, message, qos, retainAsPublished, identifiers, shared)) count++;
    }
    return count;
  }

  /**
   * Sets or clears the retained message of a topic without routing anything: how a node applies what another
   * node retained.
   *
   * @param now The current time.
   * @param topic The topic name.
   * @param message The retained message, or `undefined` to clear the topic.
   */
  setRetained(now: Millis, topic: string, message: MessageSnapshot | undefined): void {
    this.#parts.retained.set(topic, message === undefined ? undefined : messageFromSnapshot(now, message));
  }

  /**
   * The topic filters of a session's subscriptions.
   *
   * @param clientId The client identifier.
   * @returns The filters; none when there is no such session.
   */
  subscriptionsOf(clientId: string): string[] {
    return [...this.#parts.sessions.get(clientId)?.subscriptions?.keys() ?? []];
  }

  /**
   * Gives up every session at once, as a node does when the rest of its cluster took it for dead and took its
   * sessions over: live connections are taken over (MQTT 5: DISCONNECT 0x8E) and no will is published (the
   * node that took over did, or will).
   *
   * @param now The current time.
   * @returns How many sessions there were.
   */
  dropAll(now: Millis): number {
    const parts = this.#parts;
    const records = [...parts.sessions.values()];
    for (const record of records) {
      const connection = record.connection;
      if (connection !== undefined) parts.takeOver(now, record, connection);
      parts.sessions.takeWill(record);
      parts.endSession(now, record, false);
    }
    return records.length;
  }

  /**
   * Hands a session over to another node, whose client connects there: a live connection is taken over
   * (DISCONNECT 0x8E, MQTT 5) [MQTT-3.1.4-3] and its will published when `cleanStart` or when it has no delay,
   * as on a local takeover; then the session is gone from this machine. With `cleanStart` the session ends here
   * (a will waiting for its delay is published [MQTT-3.1.2-8]) and nothing is returned; otherwise it is returned
   * as plain data for `BrokerMachine.restoreState` on the other node, which cancels a will waiting for its
   * delay [MQTT-3.1.3-9] when the client attaches.
   *
   * @param now The current time.
   * @param clientId The client identifier.
   * @param cleanStart Whether the client connects with a clean start.
   * @returns The session, or `undefined` when there was none or it ended.
   */
  takeSession(now: Millis, clientId: string, cleanStart: boolean): SessionSnapshot | undefined {
    const parts = this.#parts;
    const record = parts.sessions.get(clientId);
    if (record === undefined) return undefined;
    const old = record.connection;
    if (old !== undefined) {
      const will = parts.takeOver(now, record, old);
      if (will !== undefined && (cleanStart || willDelay(will) === 0)) parts.publishWill(now, record, will);
    }
    if (cleanStart) {
      parts.endSession(now, record, true);
      return undefined;
    }
    const snapshot = sessionSnapshot(now, record, parts.sessions);
    // Resumed elsewhere: the will waiting here is cancelled by that connection, not published.
    parts.sessions.takeWill(record);
    parts.endSession(now, record, false);
    return snapshot;
  }
}
