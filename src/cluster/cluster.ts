/**
 * One broker node's part of a cluster: it forwards what its clients publish to the engine, receives what the
 * other nodes publish on the topics its sessions subscribe to, shares retained messages through a bucket,
 * moves sessions between nodes when a client reconnects elsewhere, and tells how the engine is doing.
 *
 * Subjects, under a prefix (`mqtt` by default):
 * - `mqtt.m.<topic>`: QoS 0 messages, at most once; `mqtt.s.<topic>`: QoS 1 and 2 messages, stored in the
 *   stream `mqtt_messages` before the publisher is acknowledged. A node subscribes `mqtt.*.<filter>` for each
 *   filter its sessions hold (a queue subscription per shared subscription), so it receives only what its
 *   sessions may want, and matches topics exactly again before delivering.
 * - `mqtt_ctl.node.<node>.take`: requests to a node to give up a session.
 * - buckets `mqtt_sessions` (which node holds each client's session), `mqtt_retained` (retained messages by
 *   topic) and `mqtt_nodes` (a heartbeat per live node).
 *
 * @module
 */

import type { ClusterHost, ClusterLink } from "../broker/cluster_link.ts";
import type { MessageSnapshot, SessionSnapshot } from "../machine/broker_machine.ts";
import { parseSharedSubscription, topicFilterProblem, topicMatches } from "../codec/topic.ts";
import {
  type ClusterEngine,
  type EngineBucket,
  type EngineSubscription,
  RevisionConflict,
} from "./engine.ts";
import { type ClusterMessage, decodeJson, decodeMessage, encodeJson, encodeMessage } from "./envelope.ts";
import { filterSubjects, keyOf, sharedQueue, topicSubject } from "./subjects.ts";
import { concat } from "../bytes.ts";

/** Options of {@linkcode Cluster}. */
export interface ClusterOptions {
  /** The engine the node runs on. */
  engine: ClusterEngine;
  /** The node's name, unique in the cluster: letters, digits, `-` and `_`. Default: a random one. */
  node?: string;
  /** The first token of every subject, bucket and stream name of the cluster. @default "mqtt" */
  prefix?: string;
  /** How long the stream keeps QoS 1 and 2 messages, in milliseconds. @default 86400000 (a day) */
  messageMaxAgeMs?: number;
  /** The most bytes the stream keeps; the oldest messages go first. @default 1073741824 (1 GiB) */
  messageMaxBytes?: number;
  /** How long a node waits for another to give up a session, in milliseconds. @default 3000 */
  claimTimeoutMs?: number;
  /** How often a node tells it is alive, in milliseconds; it counts as gone after three times that. @default 5000 */
  heartbeatMs?: number;
}

/** Counters of a {@linkcode Cluster} node. */
export interface ClusterCounters {
  /** Messages published here and sent to the other nodes (QoS 0, wills, the broker's own). */
  forwarded: number;
  /** QoS 1 and 2 messages published here and stored by the engine before they were acknowledged. */
  stored: number;
  /** Messages from other nodes routed here. */
  received: number;
  /** QoS 1 and 2 messages refused because the engine could not store them. */
  refused: number;
  /** Sessions this node claimed for a connecting client. */
  claimed: number;
  /** Sessions this node gave up to another node. */
  handedOver: number;
}

/** What the sessions bucket holds per client: the node that has its session, or where it waits for its client. */
interface SessionOwner {
  node: string;
  boot: string;
  /** Left by a node that stopped: the session is in this many parts (keys `KEY.pN`) of the bucket. */
  parked?: number;
  /** When a parked session expires (wall clock, ms); `undefined`: never. */
  expiresAt?: number;
  /** When the node that parked it stopped routing (wall clock, ms). */
  since?: number;
  /** What that node had routed by then (see {@linkcode Given}). */
  seen?: Record<string, number>;
  unrouted?: number[];
}

/** A session moving to this node: its ordinary filters, and what came for it meanwhile. */
interface Move {
  readonly filters: string[];
  /** What the stream held for it (a parked session), oldest first, then what came live. */
  readonly replayed: Captured[];
  readonly buffer: Captured[];
}

/** A message kept for a session on its way here, with its origin and sequence number. */
interface Captured {
  message: MessageSnapshot;
  id: string;
  seq: number;
}

/** A node's answer when it gives up a session. */
interface Given {
  /** The session, unless it had none or the client starts clean. */
  snapshot?: SessionSnapshot;
  /** The last sequence number it received from each origin (its own: the last it published). */
  seen: Record<string, number>;
  /** Its own origin. */
  boot: string;
  /** Its own QoS 1 and 2 messages stored and not yet routed there. */
  unrouted: number[];
}

/** How far before an outage (or a node's leaving) catching up starts, for clocks a little apart. */
const CATCH_UP_MARGIN_MS = 2000;

/** The size of one part of a parked session, well under NATS's default 1 MiB message limit. */
const PART = 256 * 1024;

/** The engine subscriptions of one topic filter, and who needs them. */
interface Interest {
  subscriptions: EngineSubscription[];
  /** A session of this node holds the filter. */
  held: boolean;
  /** SUBSCRIBE packets on their way that ask for it. */
  prepared: number;
}

const NAME = /^[A-Za-z0-9_-]+$/;

/**
 * A broker node's link to the cluster, for the `cluster` option of `Broker`.
 *
 * @example Two brokers of one process on an in-memory engine
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * import { Cluster, MemoryHub } from "@x/mqtt/cluster";
 * const hub = new MemoryHub();
 * const a = new Broker({ cluster: new Cluster({ engine: hub.engine(), node: "a" }) });
 * const b = new Broker({ cluster: new Cluster({ engine: hub.engine(), node: "b" }) });
 * const portA = (await a.listen({ port: 0 })).port;
 * const portB = (await b.listen({ port: 0 })).port;
 * const subscriber = await connect(`mqtt://127.0.0.1:${portB}`);
 * const messages = await subscriber.subscribe("sensors/#", { qos: 1 });
 * const publisher = await connect(`mqtt://127.0.0.1:${portA}`);
 * await publisher.publish("sensors/1", "21.5", { qos: 1 });
 * for await (const message of messages) {
 *   assert.equal(message.text(), "21.5");
 *   break;
 * }
 * await Promise.all([publisher.close(), subscriber.close()]);
 * await Promise.all([a.close(), b.close()]);
 * ```
 */
export class Cluster implements ClusterLink {
  readonly node: string;
  readonly #engine: ClusterEngine;
  readonly #prefix: string;
  readonly #options: ClusterOptions;
  /** This run of the node: messages carry it, so that a restarted node's sequence starts afresh. */
  readonly #boot: string;
  #seq = 0;
  #host: ClusterHost | undefined;
  #sessions: EngineBucket | undefined;
  #retained: EngineBucket | undefined;
  #nodesBucket: EngineBucket | undefined;
  readonly #subscriptions: EngineSubscription[] = [];
  /** The engine subscriptions of each topic filter held here. */
  readonly #interest = new Map<string, Interest>();
  /** The last sequence number routed from each origin, for ordinary subscriptions (overlaps arrive twice). */
  readonly #seen = new Map<string, number>();
  /** The same per shared subscription. */
  readonly #sharedSeen = new Map<string, Map<string, number>>();
  /** Retained topics by bucket key, to clear them when the key is deleted. */
  readonly #retainedTopics = new Map<string, string>();
  /** When the engine went away (wall clock), while it is away. */
  #downSince: number | undefined;
  /** Messages that came while catching up after an outage, routed once it is done. */
  #held: Uint8Array[] | undefined;
  /** Sessions moving here from another node, by client identifier: what comes for them meanwhile. */
  readonly #moving = new Map<string, Move>();
  /** The sequence number of each QoS 1 or 2 message published here that the engine took, by its payload. */
  readonly #storedSeq = new WeakMap<Uint8Array, number>();
  /** The sequence numbers of those not routed here yet (waiting for the engine's acknowledgement). */
  readonly #unrouted = new Set<number>();
  /** The revision of the sessions-bucket entry this node wrote for each client it holds. */
  readonly #owned = new Map<string, number>();
  /** Live nodes: name to the wall-clock time of their last heartbeat. */
  readonly #nodes = new Map<string, number>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  /** What the node did so far, as `$SYS/cluster/…` shows it. */
  readonly counters: ClusterCounters = {
    forwarded: 0,
    stored: 0,
    received: 0,
    refused: 0,
    claimed: 0,
    handedOver: 0,
  };

  /**
   * Makes a node; it joins the cluster when a broker starts it.
   *
   * @param options The engine and the node's name.
   * @throws {TypeError} When the node name or the prefix is not letters, digits, `-` and `_`.
   */
  constructor(options: ClusterOptions) {
    this.#options = options;
    this.#engine = options.engine;
    this.#prefix = options.prefix ?? "mqtt";
    this.node = options.node ?? `node-${crypto.randomUUID().slice(0, 8)}`;
    if (!NAME.test(this.node)) {
      throw new TypeError(`Cannot use "${this.node}" as a node name: use letters, digits, "-" and "_"`);
    }
    if (!NAME.test(this.#prefix)) {
      throw new TypeError(
        `Cannot use "${this.#prefix}" as a cluster prefix: use letters, digits, "-" and "_"`,
      );
    }
    this.#boot = `${this.node}:${crypto.randomUUID()}`;
  }

  get available(): boolean {
    return this.#engine.status === "connected" && !this.#closed;
  }

  async start(host: ClusterHost): Promise<void> {
    this.#host = host;
    const engine = this.#engine;
    const prefix = this.#prefix;
    const heartbeat = this.#options.heartbeatMs ?? 5000;
    engine.onStatus((status, detail) => {
      if (status === "connected") {
        host.log("info", `Cluster engine reachable again${detail ? ` (${detail})` : ""}`);
        const since = this.#downSince;
        this.#downSince = undefined;
        if (since !== undefined && !this.#closed) void this.#catchUpOutage(since);
      } else if (!this.#closed) {
        this.#downSince ??= Date.now();
        host.log(
          "warn",
          `Cluster engine unreachable${
            detail ? ` (${detail})` : ""
          }: serving local clients only; QoS 1/2 messages and persistent sessions are refused until it is back`,
        );
      }
    });
    await engine.stream(`${prefix}_messages`, {
      subjects: [`${prefix}.s.>`],
      maxAgeMs: this.#options.messageMaxAgeMs ?? 86_400_000,
      maxBytes: this.#options.messageMaxBytes ?? 1024 * 1024 * 1024,
    });
    this.#sessions = await engine.bucket(`${prefix}_sessions`);
    const retained = this.#retained = await engine.bucket(`${prefix}_retained`);
    const nodes = this.#nodesBucket = await engine.bucket(`${prefix}_nodes`, { maxAgeMs: heartbeat * 3 });
    this.#subscriptions.push(
      engine.serve(`${prefix}_ctl.node.${this.node}.take`, (data) => this.#give(data)),
      engine.serve(`${prefix}_ctl.node.${this.node}.peek`, (data) => this.#peek(data)),
      await retained.watch((entry) => {
        const topic = entry.value === undefined ? this.#retainedTopics.get(entry.key) : undefined;
        if (entry.value === undefined) {
          this.#retainedTopics.delete(entry.key);
          if (topic !== undefined) host.setRetained(topic, undefined);
          return;
        }
        const message = this.#decode(entry.value);
        if (message === undefined) return;
        this.#retainedTopics.set(entry.key, message.topic);
        host.setRetained(message.topic, message);
      }),
      await nodes.watch((entry) => {
        if (entry.value === undefined) this.#nodes.delete(entry.key);
        else this.#nodes.set(entry.key, Date.now());
      }),
    );
    const beat = () => {
      nodes.put(this.node, encodeJson({ boot: this.#boot })).catch(() => {});
    };
    beat();
    this.#heartbeat = setInterval(beat, heartbeat);
    host.log("info", `Joined the cluster as node "${this.node}"`);
  }

  store(message: MessageSnapshot): Promise<void> {
    if (!this.available) {
      this.counters.refused++;
      return Promise.reject(new Error("the cluster engine is unreachable"));
    }
    const envelope = this.#envelope(message);
    const data = encodeMessage(envelope);
    const done = [this.#engine.store(topicSubject(this.#prefix, "s", message.topic), data)];
    if (message.retain) {
      done.push(this.#retain(message.topic, message.payload.length === 0 ? undefined : data));
    }
    this.counters.stored++;
    // Until routed here (see `forward`): a node giving up a session tells the claiming node it has not.
    this.#storedSeq.set(message.payload, envelope.seq);
    this.#unrouted.add(envelope.seq);
    return Promise.all(done).then(() => {}, (error) => {
      this.#unrouted.delete(envelope.seq);
      this.counters.refused++;
      throw error;
    });
  }

  forward(message: MessageSnapshot, sent: boolean): void {
    if (sent) {
      const seq = this.#storedSeq.get(message.payload) ?? 0;
      this.#unrouted.delete(seq);
      if (this.#moving.size > 0) this.#capture(message, this.#boot, seq);
      return;
    }
    // `$SYS` topics are each node's own.
    if (message.topic.startsWith("$SYS/") || this.#closed) return;
    const envelope = this.#envelope(message);
    if (this.#moving.size > 0) this.#capture(message, this.#boot, envelope.seq);
    const data = encodeMessage(envelope);
    this.counters.forwarded++;
    if (message.qos === 0) {
      this.#engine.publish(topicSubject(this.#prefix, "m", message.topic), data);
    } else {
      this.#engine.store(topicSubject(this.#prefix, "s", message.topic), data).catch((error) => {
        this.#host?.log(
          "warn",
          `Could not store a message on "${message.topic}" in the cluster: ${error.message}`,
        );
      });
    }
    if (message.retain) {
      this.#retain(message.topic, message.payload.length === 0 ? undefined : data).catch((error) => {
        this.#host?.log(
          "warn",
          `Could not share the retained message of "${message.topic}": ${error.message}`,
        );
      });
    }
  }

  async claim(clientId: string, cleanStart: boolean): Promise<void> {
    const sessions = this.#sessions;
    if (!this.available || sessions === undefined) throw new Error("the cluster engine is unreachable");
    const key = keyOf(clientId);
    let snapshot: SessionSnapshot | undefined;
    let given: Given | undefined;
    let move: Move | undefined;
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const entry = await sessions.get(key);
        const owner = entry?.value === undefined ? undefined : decodeJson<SessionOwner>(entry.value);
        if (owner?.parked !== undefined) {
          snapshot = await this.#unpark(key, owner, cleanStart) ?? snapshot;
          if (snapshot !== undefined && move === undefined) {
            move = await this.#catchUpParked(clientId, snapshot, owner);
            given = { seen: owner.seen ?? {}, boot: owner.boot, unrouted: owner.unrouted ?? [] };
          }
        } else if (owner !== undefined && owner.node !== this.node) {
          if (!cleanStart && move === undefined) move = await this.#startMove(owner.node, clientId);
          given = await this.#take(owner.node, clientId, cleanStart) ?? given;
          snapshot = given?.snapshot ?? snapshot;
        }
        try {
          const value = encodeJson({ node: this.node, boot: this.#boot } satisfies SessionOwner);
          this.#owned.set(clientId, await sessions.update(key, value, entry?.revision ?? 0));
        } catch (error) {
          if (error instanceof RevisionConflict) continue;
          throw error;
        }
        this.counters.claimed++;
        // In one turn: from here on, what comes for the session is routed to it.
        this.#moving.delete(clientId);
        if (snapshot !== undefined) this.#host?.restoreSession(snapshot);
        if (move !== undefined) this.#catchUp(clientId, move, given);
        if (owner?.parked !== undefined) {
          for (let i = 0; i < owner.parked; i++) await sessions.delete(`${key}.p${i}`).catch(() => {});
        }
        return;
      }
      throw new Error(`the session of "${clientId}" kept changing hands`);
    } finally {
      this.#moving.delete(clientId);
      if (move !== undefined) this.settle(move.filters);
    }
  }

  interest(filter: string, present: boolean): void {
    const interest = present ? this.#subscribe(filter) : this.#interest.get(filter);
    if (interest === undefined) return;
    interest.held = present;
    this.#letGo(filter, interest);
  }

  async prepare(filters: readonly string[]): Promise<void> {
    let added = false;
    for (const filter of filters) {
      if (topicFilterProblem(filter) !== undefined) continue;
      const existed = this.#interest.has(filter);
      const interest = this.#subscribe(filter);
      interest.prepared++;
      added ||= !existed;
    }
    // Once the engine has the new subscriptions, what is published anywhere after the SUBACK comes here.
    if (added && this.available) await this.#engine.flush();
  }

  settle(filters: readonly string[]): void {
    for (const filter of filters) {
      const interest = this.#interest.get(filter);
      if (interest === undefined) continue;
      interest.prepared--;
      this.#letGo(filter, interest);
    }
  }

  /** Drops the engine subscriptions of a filter that neither a session nor a SUBSCRIBE on its way needs. */
  #letGo(filter: string, interest: Interest): void {
    if (interest.held || interest.prepared > 0) return;
    for (const subscription of interest.subscriptions) subscription.unsubscribe();
    this.#interest.delete(filter);
    this.#sharedSeen.delete(filter);
  }

  /** The engine subscriptions of a filter, made when it has none. */
  #subscribe(filter: string): Interest {
    const existing = this.#interest.get(filter);
    if (existing !== undefined) return existing;
    const interest: Interest = { subscriptions: [], held: false, prepared: 0 };
    this.#interest.set(filter, interest);
    const shared = parseSharedSubscription(filter);
    const subjects = filterSubjects(this.#prefix, shared?.filter ?? filter);
    const engine = this.#engine;
    if (shared === undefined) {
      interest.subscriptions = subjects.map((subject) => engine.subscribe(subject, this.#onMessage));
      return interest;
    }
    const queue = sharedQueue(shared.group, shared.filter);
    const seen = new Map<string, number>();
    this.#sharedSeen.set(filter, seen);
    const onShared = (data: Uint8Array) => {
      const message = this.#receive(data, seen, true);
      if (message !== undefined) this.#host?.routeShared(snapshotOf(message), filter);
    };
    interest.subscriptions = subjects.map((subject) => engine.subscribe(subject, onShared, queue));
    // Messages a member on another node left unacknowledged, for this node's members of the group.
    interest.subscriptions.push(engine.serve(`${this.#prefix}_ctl.share.${queue}`, (data) => {
      const message = this.#receive(data, new Map(), true);
      const routed = message === undefined ? 0 : this.#host?.routeShared(snapshotOf(message), filter) ?? 0;
      return new Uint8Array([routed > 0 ? 1 : 0]);
    }, queue));
    return interest;
  }

  handOff(message: MessageSnapshot, shared: string): boolean {
    const parsed = parseSharedSubscription(shared);
    if (!this.available || parsed === undefined) return false;
    // Our own copy: it is used after this turn.
    const data = encodeMessage(this.#envelope(message)).slice();
    const subject = `${this.#prefix}_ctl.share.${sharedQueue(parsed.group, parsed.filter)}`;
    // After the turn: the member leaving may also have been this node's last, whose subscription goes first.
    queueMicrotask(() => {
      this.#engine.request(subject, data, this.#options.claimTimeoutMs ?? 3000).then(
        (answer) => answer[0] === 1 ? undefined : Promise.reject(new Error("no member took it")),
      ).catch((error) => {
        // No member elsewhere: back to this node's group (an offline member's queue), if it has one.
        const routed = this.#host?.routeShared(snapshotOf(decodeMessage(data)), shared) ?? 0;
        if (routed === 0) {
          this.#host?.log(
            "warn",
            `A message on "${message.topic}" for ${shared} found no member to take it over (${
              (error as Error).message
            }): dropped`,
          );
        }
      });
    });
    return true;
  }

  ended(clientId: string): void {
    const revision = this.#owned.get(clientId);
    if (revision === undefined) return;
    // After the turn: a clean start ends the old session just before the new one of the same client begins.
    queueMicrotask(() => {
      if (this.#host?.hasSession(clientId) || this.#owned.get(clientId) !== revision) return;
      this.#owned.delete(clientId);
      this.#sessions?.delete(keyOf(clientId), revision).catch(() => {
        // Claimed meanwhile by another node, or the engine is away: the entry then names a node without it.
      });
    });
  }

  sysValues(): Map<string, string> {
    const c = this.counters;
    return new Map([
      ["$SYS/cluster/node", this.node],
      ["$SYS/cluster/nodes", String(Math.max(this.#nodes.size, 1))],
      ["$SYS/cluster/engine", this.#engine.status],
      ["$SYS/cluster/messages/forwarded", String(c.forwarded)],
      ["$SYS/cluster/messages/stored", String(c.stored)],
      ["$SYS/cluster/messages/received", String(c.received)],
      ["$SYS/cluster/messages/refused", String(c.refused)],
      ["$SYS/cluster/sessions/claimed", String(c.claimed)],
      ["$SYS/cluster/sessions/handed-over", String(c.handedOver)],
    ]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // What this node routed up to now: the sessions it leaves catch up on the rest from the stream.
    const left = { since: Date.now(), ...this.#routedSoFar() };
    clearInterval(this.#heartbeat);
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    for (const interest of this.#interest.values()) for (const s of interest.subscriptions) s.unsubscribe();
    this.#interest.clear();
    if (this.#engine.status === "connected") {
      await this.#park(left);
      await this.#nodesBucket?.delete(this.node).catch(() => {});
      await this.#engine.flush().catch(() => {});
    }
    await this.#engine.close();
  }

  // ---------------------------------------------------------------------------------------------- internals

  /** A message from an ordinary subscription. */
  readonly #onMessage = (data: Uint8Array): void => {
    // Catching up after an outage: what comes now waits until what was missed is routed.
    if (this.#held !== undefined) this.#held.push(data.slice());
    else this.#route(data);
  };

  /** Routes a message from an ordinary subscription, or from the stream when catching up. */
  #route(data: Uint8Array): void {
    try {
      const received = this.#receive(data, this.#seen, false);
      if (received === undefined) return;
      const message = snapshotOf(received);
      if (this.#moving.size > 0) this.#capture(message, received.id, received.seq);
      this.#host?.routeRemote(message);
    } catch (error) {
      // Never into the engine's reader: that would stop its connection.
      this.#host?.log("error", `Could not route a message from the cluster: ${(error as Error).stack}`);
    }
  }

  /**
   * Once the engine is back after an outage, routes the QoS 1 and 2 messages the other nodes stored meanwhile
   * (from the stream, from shortly before the outage on: what was routed already is skipped by its origin's
   * sequence number), then what arrived while doing so. Shared subscriptions are left out: the group's other
   * nodes got their messages.
   */
  async #catchUpOutage(since: number): Promise<void> {
    const held: Uint8Array[] = this.#held ??= [];
    let count = 0;
    try {
      await this.#engine.replay(
        `${this.#prefix}_messages`,
        { timeMs: since - CATCH_UP_MARGIN_MS },
        (data) => {
          count++;
          this.#route(data);
        },
      );
      this.#host?.log("info", `Caught up on ${count} stored messages from the cluster's outage`);
    } catch (error) {
      this.#host?.log("warn", `Could not catch up on the messages stored during the outage: ${error}`);
    } finally {
      if (this.#held === held) this.#held = undefined;
      for (const data of held) this.#route(data);
    }
  }

  /**
   * Decodes a message from the engine; `undefined` when it is one this node already routed: its own (unless
   * `own`), or one that came again through an overlapping subscription.
   */
  #receive(data: Uint8Array, seen: Map<string, number>, own: boolean): ClusterMessage | undefined {
    let message: ClusterMessage;
    try {
      message = decodeMessage(data);
    } catch (error) {
      this.#host?.log("warn", `Dropped a malformed cluster message: ${(error as Error).message}`);
      return undefined;
    }
    if (!own && message.id === this.#boot) return undefined;
    const last = seen.get(message.id);
    if (last !== undefined && message.seq <= last) return undefined;
    seen.set(message.id, message.seq);
    this.counters.received++;
    return message;
  }

  #decode(data: Uint8Array): MessageSnapshot | undefined {
    try {
      return snapshotOf(decodeMessage(data));
    } catch (error) {
      this.#host?.log("warn", `Dropped a malformed retained message: ${(error as Error).message}`);
      return undefined;
    }
  }

  #envelope(message: MessageSnapshot): ClusterMessage {
    const envelope: ClusterMessage = {
      id: this.#boot,
      seq: ++this.#seq,
      topic: message.topic,
      payload: message.payload,
      qos: message.qos,
      retain: message.retain,
    };
    if (message.properties !== undefined) envelope.properties = message.properties;
    // Wall-clock time crosses machines; the expiry goes on counting during the hop.
    if (message.expiresInMs !== undefined) envelope.expiresAt = Date.now() + message.expiresInMs;
    if (message.publisher !== undefined) envelope.publisher = message.publisher;
    return envelope;
  }

  #retain(topic: string, data: Uint8Array | undefined): Promise<void> {
    const retained = this.#retained;
    if (retained === undefined) return Promise.reject(new Error("the cluster has not started"));
    const key = keyOf(topic);
    if (data === undefined) return retained.delete(key);
    this.#retainedTopics.set(key, topic);
    return retained.put(key, data).then(() => {});
  }

  /**
   * Before a session moves here from `node`: this node subscribes to what its subscriptions match and keeps what
   * comes for it until it is restored here, so that nothing published meanwhile misses it.
   */
  async #startMove(node: string, clientId: string): Promise<Move | undefined> {
    let filters: string[];
    try {
      const answer = await this.#engine.request(
        `${this.#prefix}_ctl.node.${node}.peek`,
        encodeJson({ clientId }),
        this.#options.claimTimeoutMs ?? 3000,
      );
      filters = decodeJson<{ filters: string[] }>(answer).filters.filter((f) => !f.startsWith("$share/"));
    } catch {
      return undefined;
    }
    if (filters.length === 0) return undefined;
    const move: Move = { filters, replayed: [], buffer: [] };
    this.#moving.set(clientId, move);
    await this.prepare(filters);
    return move;
  }

  /**
   * For a session a stopped node left in the bucket: subscribes to what it matches, keeping what comes until it
   * is restored, and reads from the stream what was stored for it since that node stopped routing.
   */
  async #catchUpParked(clientId: string, snapshot: SessionSnapshot, owner: SessionOwner): Promise<Move> {
    const filters = snapshot.subscriptions.map((s) => s.topicFilter).filter((f) => !f.startsWith("$share/"));
    const move: Move = { filters, replayed: [], buffer: [] };
    if (filters.length === 0) return move;
    this.#moving.set(clientId, move);
    await this.prepare(filters);
    const stored = new Map<number, Uint8Array>();
    const stream = `${this.#prefix}_messages`;
    const from = { timeMs: (owner.since ?? Date.now()) - CATCH_UP_MARGIN_MS };
    for (const filter of filters) {
      for (const subject of filterSubjects(this.#prefix, filter)) {
        // The stored kind only: `mqtt.*.a.>` is read as `mqtt.s.a.>`.
        const storedSubject = `${this.#prefix}.s.${subject.slice(this.#prefix.length + 3)}`;
        await this.#engine.replay(
          stream,
          from,
          (data, sequence) => stored.set(sequence, data.slice()),
          storedSubject,
        );
      }
    }
    for (const sequence of [...stored.keys()].sort((a, b) => a - b)) {
      const message = decodeMessage(stored.get(sequence) as Uint8Array);
      move.replayed.push({ message: snapshotOf(message), id: message.id, seq: message.seq });
    }
    return move;
  }

  /** Keeps a message for the sessions moving here whose subscriptions match it. */
  #capture(message: MessageSnapshot, id: string, seq: number): void {
    for (const move of this.#moving.values()) {
      if (!move.filters.some((filter) => topicMatches(filter, message.topic))) continue;
      move.buffer.push({ message: { ...message, payload: message.payload.slice() }, id, seq });
    }
  }

  /**
   * Gives a session that just moved here what came for it while it moved and the node it left did not route to
   * it: from each origin, what that node had not received (its last sequence number per origin), and its own
   * messages it had not routed yet.
   */
  #catchUp(clientId: string, move: Move, given: Given | undefined): void {
    const done = new Set<string>();
    for (const { message, id, seq } of [...move.replayed, ...move.buffer]) {
      const routedThere = given !== undefined && seq <= (given.seen[id] ?? 0) &&
        !(id === given.boot && given.unrouted.includes(seq));
      const key = `${id} ${seq}`;
      if (routedThere || done.has(key)) continue;
      done.add(key);
      this.#host?.routeTo(clientId, message);
    }
  }

  /**
   * Leaves this node's persistent sessions in the bucket, for whichever node their clients come back to: the
   * session in parts, then the entry that points at them, written only while this node still holds it.
   */
  async #park(left: Pick<SessionOwner, "since" | "seen" | "unrouted">): Promise<void> {
    const sessions = this.#sessions;
    if (sessions === undefined) return;
    let parked = 0;
    for (const snapshot of this.#host?.persistentSessions() ?? []) {
      const revision = this.#owned.get(snapshot.clientId);
      if (revision === undefined) continue;
      const key = keyOf(snapshot.clientId);
      const data = encodeJson(snapshot);
      const parts = Math.max(1, Math.ceil(data.length / PART));
      const owner: SessionOwner = { node: this.node, boot: this.#boot, parked: parts, ...left };
      if (snapshot.expiresInMs !== undefined) owner.expiresAt = Date.now() + snapshot.expiresInMs;
      try {
        for (let i = 0; i < parts; i++) {
          await sessions.put(`${key}.p${i}`, data.subarray(i * PART, (i + 1) * PART));
        }
        await sessions.update(key, encodeJson(owner), revision);
        parked++;
      } catch (error) {
        this.#host?.log(
          "warn",
          `Could not leave the session of "${snapshot.clientId}" in the cluster: ${error}`,
        );
      }
    }
    if (parked > 0) this.#host?.log("info", `Left ${parked} sessions in the cluster for their clients`);
  }

  /** A session a stopped node left in the bucket; `undefined` when it expired or the client starts clean. */
  async #unpark(key: string, owner: SessionOwner, cleanStart: boolean): Promise<SessionSnapshot | undefined> {
    const sessions = this.#sessions as EngineBucket;
    if (cleanStart || (owner.expiresAt !== undefined && owner.expiresAt <= Date.now())) return undefined;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < (owner.parked ?? 0); i++) {
      const part = await sessions.get(`${key}.p${i}`);
      if (part?.value === undefined) {
        throw new Error(`a part of the session left by node "${owner.node}" is missing`);
      }
      parts.push(part.value);
    }
    const snapshot = decodeJson<SessionSnapshot>(concat(parts));
    if (owner.expiresAt !== undefined) snapshot.expiresInMs = owner.expiresAt - Date.now();
    return snapshot;
  }

  /** Asks the node that holds a session to give it up; `undefined` when it has none or does not answer. */
  async #take(node: string, clientId: string, cleanStart: boolean): Promise<Given | undefined> {
    try {
      const answer = await this.#engine.request(
        `${this.#prefix}_ctl.node.${node}.take`,
        encodeJson({ clientId, cleanStart }),
        this.#options.claimTimeoutMs ?? 3000,
      );
      return decodeJson<Given>(answer);
    } catch (error) {
      this.#host?.log(
        "warn",
        `Node "${node}" did not give up the session of "${clientId}" (${
          (error as Error).message
        }): it starts here without what that node held`,
      );
      return undefined;
    }
  }

  /** Answers another node's request for a session. */
  #give(data: Uint8Array): Uint8Array {
    const { clientId, cleanStart } = decodeJson<{ clientId: string; cleanStart: boolean }>(data);
    // No longer ours: ending it here must not delete the entry the claiming node is about to write.
    this.#owned.delete(clientId);
    const snapshot = this.#host?.takeSession(clientId, cleanStart);
    if (snapshot !== undefined) this.counters.handedOver++;
    // What this node routed so far: the claiming node gives the session what came after.
    const given: Given = { ...this.#routedSoFar(), boot: this.#boot };
    if (snapshot !== undefined) given.snapshot = snapshot;
    return encodeJson(given);
  }

  /** The last sequence number routed here from each origin (this node's: its last), and its own unrouted ones. */
  #routedSoFar(): { seen: Record<string, number>; unrouted: number[] } {
    const seen = Object.fromEntries(this.#seen);
    seen[this.#boot] = this.#seq;
    return { seen, unrouted: [...this.#unrouted] };
  }

  /** Answers another node's question for the topic filters of a session about to move there. */
  #peek(data: Uint8Array): Uint8Array {
    const { clientId } = decodeJson<{ clientId: string }>(data);
    return encodeJson({ filters: this.#host?.subscriptions(clientId) ?? [] });
  }
}

/** A cluster message as the broker machine takes it, its expiry counting from now. */
function snapshotOf(message: ClusterMessage): MessageSnapshot {
  const snapshot: MessageSnapshot = {
    topic: message.topic,
    payload: message.payload,
    qos: message.qos,
    retain: message.retain,
  };
  if (message.properties !== undefined) snapshot.properties = message.properties;
  if (message.expiresAt !== undefined) snapshot.expiresInMs = Math.max(0, message.expiresAt - Date.now());
  if (message.publisher !== undefined) snapshot.publisher = message.publisher;
  return snapshot;
}
