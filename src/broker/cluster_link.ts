/**
 * What a broker asks of a cluster it belongs to, and what it offers the cluster in return. The broker calls a
 * {@linkcode ClusterLink} at the points where a message, a session or a subscription crosses nodes; the
 * cluster (`@x/mqtt/cluster`) calls back through the {@linkcode ClusterHost} the broker hands it. Neither side
 * knows the engine underneath.
 *
 * @module
 */

import type { PublishPacket, Will } from "../codec/packet.ts";
import { hasProperties } from "../codec/properties.ts";
import { willPublish } from "../machine/_delivery.ts";
import { messageSnapshot } from "../machine/broker_journal.ts";
import type {
  BrokerChange,
  BrokerMachine,
  BrokerMachineOptions,
  MessageSnapshot,
  SessionSnapshot,
} from "../machine/broker_machine.ts";
import type { LogLevel } from "./broker_options.ts";

/** What a broker offers the cluster it belongs to. */
export interface ClusterHost {
  /** Routes a message another node published to this node's matching subscriptions (shared ones left out). */
  routeRemote(message: MessageSnapshot): void;
  /**
   * Hands a message to the next member of one shared subscription (`$share/group/filter`) on this node.
   *
   * @returns 1 when a member took it, else 0.
   */
  routeShared(message: MessageSnapshot, shared: string): number;
  /** Sets (or clears) a retained message another node stored. */
  setRetained(topic: string, message: MessageSnapshot | undefined): void;
  /**
   * Gives up a session to another node: a live connection is taken over; with `cleanStart` the session ends
   * here, else it is returned.
   */
  takeSession(clientId: string, cleanStart: boolean): SessionSnapshot | undefined;
  /** Makes a session another node gave up (or left) a session of this node, offline until its client attaches. */
  restoreSession(session: SessionSnapshot): void;
  /**
   * Routes a message to one session of this node only (its matching subscriptions, not shared ones).
   *
   * @returns 1 when it was delivered or queued, else 0.
   */
  routeTo(clientId: string, message: MessageSnapshot): number;
  /** The topic filters of a session of this node; none when it has no such session. */
  subscriptions(clientId: string): string[];
  /** The sessions of this node that outlive their connection (expiry interval above 0), for a node leaving. */
  persistentSessions(): SessionSnapshot[];
  /** Publishes the will of a session no node holds any more (its delay or its session's expiry passed). */
  publishWill(clientId: string, will: Will): void;
  /**
   * Everything a store of this node's sessions would hold now, as changes (the broker machine's
   * `cluster.checkpoint`), for a journal that starts over.
   */
  checkpoint(): BrokerChange[];
  /**
   * Gives up every session of this node without publishing wills, disconnecting their clients (MQTT 5: 0x8E
   * session taken over): the rest of the cluster took this node for dead and took them over.
   *
   * @returns How many sessions there were.
   */
  dropSessions(): number;
  /** Whether this node holds a session of that client identifier. */
  hasSession(clientId: string): boolean;
  /** Logs a line, as the broker does. */
  log(level: LogLevel, message: string): void;
}

/** A broker's view of the cluster it belongs to: the `cluster` option of {@linkcode BrokerOptions}. */
export interface ClusterLink {
  /** This node's name, unique in the cluster. */
  readonly node: string;
  /**
   * Whether the cluster can take QoS 1 and 2 messages and persistent sessions now; while it cannot, the
   * broker refuses them and keeps serving the rest.
   */
  readonly available: boolean;
  /**
   * Joins the cluster: the broker calls it once, before it listens, and waits for it.
   *
   * @param host The broker's side.
   */
  start(host: ClusterHost): Promise<void>;
  /**
   * Stores a QoS 1 or 2 message a client of this node published, before the broker acknowledges it and routes
   * it here; the other nodes receive it from the cluster.
   *
   * @param message The message.
   * @param packetId The publisher's packet identifier, for a QoS 2 message: a node that takes over the
   *   publisher's session if this one dies learns from it that the message is stored.
   * @throws {Error} When the cluster could not store it: the broker then refuses it.
   */
  store(message: MessageSnapshot, packetId?: number): Promise<void>;
  /**
   * Tells of each message published here as it is routed here: unless `sent` (a message
   * {@linkcode ClusterLink.store} took), the cluster hands it to the other nodes, at most once (QoS 0, wills,
   * the broker's own).
   */
  forward(message: MessageSnapshot, sent: boolean): void;
  /**
   * Claims the session of a client connecting to this node, before the broker accepts it: another node that
   * holds it (connected or not) gives it up, and it is restored here ({@linkcode ClusterHost.restoreSession})
   * with what was published for it while it moved.
   *
   * @param clientId The client identifier.
   * @param cleanStart Whether the client starts clean.
   * @throws {Error} When the session cannot be claimed now: the broker refuses the connection.
   */
  claim(clientId: string, cleanStart: boolean): Promise<void>;
  /** A topic filter gained its first (`present`) or lost its last subscription on this node. */
  interest(filter: string, present: boolean): void;
  /**
   * Makes sure the cluster sends this node what matches these filters before a SUBSCRIBE is granted, so that a
   * SUBACK means messages published anywhere from then on arrive. {@linkcode ClusterLink.settle} follows.
   */
  prepare(filters: readonly string[]): Promise<void>;
  /** Ends what {@linkcode ClusterLink.prepare} began: filters the SUBSCRIBE did not add are let go. */
  settle(filters: readonly string[]): void;
  /**
   * Hands a shared subscription's message that its member here left unacknowledged, and no other member here
   * can take, to the group's members on other nodes.
   *
   * @returns Whether the cluster took it (else it stays with the member).
   */
  handOff(message: MessageSnapshot, shared: string): boolean;
  /**
   * Records a turn's changes to the sessions that outlive their connection (the broker machine's
   * `pollChanges`) where another node finds them if this one dies; the broker sends that turn's packets (and
   * those of every later turn) only once the returned promise settled, so that no client sees a state the
   * cluster could lose. It never rejects: when the cluster cannot keep them, it says so in the log.
   *
   * @returns `undefined` when there is nothing to wait for.
   */
  journal(changes: readonly BrokerChange[]): Promise<void> | undefined;
  /** A session of this node ended (it did not move to another node). */
  ended(clientId: string): void;
  /** The `$SYS/cluster/…` values, by topic. */
  sysValues(): Map<string, string>;
  /** Leaves the cluster. */
  close(): Promise<void>;
}

/**
 * A PUBLISH as a cluster takes it: the properties to forward (without topic alias, subscription identifiers
 * and message expiry, which becomes `expiresInMs`) and the publisher, for No Local. The payload stays a view.
 *
 * @param packet The PUBLISH.
 * @param publisher The client identifier of the publisher.
 * @returns The message.
 */
export function publishSnapshot(packet: PublishPacket, publisher: string): MessageSnapshot {
  const message: MessageSnapshot = {
    topic: packet.topic,
    payload: packet.payload,
    qos: packet.qos,
    retain: packet.retain,
    publisher,
  };
  if (packet.properties !== undefined) {
    const { topicAlias: _a, subscriptionIdentifiers: _s, messageExpiryInterval, ...rest } = packet.properties;
    if (messageExpiryInterval !== undefined) message.expiresInMs = messageExpiryInterval * 1000;
    if (hasProperties(rest)) message.properties = rest;
  }
  return message;
}

/** The broker machine's options that make it a node of a cluster. */
export function clusterMachineOptions(cluster: ClusterLink): BrokerMachineOptions {
  return {
    forward: (now, message, sent) => cluster.forward(messageSnapshot(now, message, false), sent),
    onSessionEnded: (clientId) => cluster.ended(clientId),
    onInterest: (filter, present) => cluster.interest(filter, present),
    handOffShared: (now, message, shared) => cluster.handOff(messageSnapshot(now, message, true), shared),
    sharedGroups: "external",
  };
}

/** What {@linkcode brokerClusterHost} works with: a broker's machine and how it writes. */
export interface ClusterHostParts {
  machine: BrokerMachine;
  /** Writes what every session has to send. */
  flushAll(): void;
  /** The same once the current turn is over. */
  flushSoon(): void;
  /** Writes the machine's changes to the store and the cluster's journal. */
  persist(): void;
  log(level: LogLevel, message: string): void;
}

/** A broker's side of its cluster: what the cluster may do to it. */
export function brokerClusterHost(parts: ClusterHostParts): ClusterHost {
  const { machine, flushAll, flushSoon } = parts;
  return {
    routeRemote: (message) => {
      machine.cluster.routeRemote(performance.now(), message);
      flushSoon();
    },
    routeShared: (message, shared) => {
      const count = machine.cluster.routeShared(performance.now(), message, shared);
      flushSoon();
      return count;
    },
    setRetained: (topic, message) => {
      machine.cluster.setRetained(performance.now(), topic, message);
      parts.persist();
    },
    takeSession: (clientId, cleanStart) => {
      const session = machine.cluster.takeSession(performance.now(), clientId, cleanStart);
      flushAll();
      return session;
    },
    hasSession: (clientId) => machine.hasSession(clientId),
    checkpoint: () => machine.cluster.checkpoint(performance.now()),
    dropSessions: () => {
      const count = machine.cluster.dropAll(performance.now());
      flushAll();
      return count;
    },
    publishWill: (clientId, will) => {
      parts.log("info", `Publishing the will of "${clientId}", whose session no node holds any more`);
      machine.route(performance.now(), undefined, willPublish(will));
      flushAll();
    },
    restoreSession: (session) => {
      machine.restoreState(performance.now(), { sessions: [session], retained: [] });
      flushAll();
    },
    routeTo: (clientId, message) => {
      const count = machine.cluster.routeTo(performance.now(), clientId, message);
      flushAll();
      return count;
    },
    subscriptions: (clientId) => machine.cluster.subscriptionsOf(clientId),
    persistentSessions: () =>
      machine.exportState(performance.now()).sessions.filter((session) => session.expiryInterval > 0),
    log: (level, message) => parts.log(level, message),
  };
}
