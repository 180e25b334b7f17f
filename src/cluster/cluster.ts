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
 *   topic) and `mqtt_nodes` (each node's last heartbeat).
 *
 * @module
 */

import type { ClusterHost, ClusterLink } from "../broker/cluster_link.ts";
import type { MessageSnapshot } from "../machine/broker_machine.ts";
import { parseSharedSubscription } from "../codec/topic.ts";
import type { ClusterEngine, EngineBucket, EngineSubscription } from "./engine.ts";
import { type ClusterMessage, decodeMessage, encodeMessage } from "./envelope.ts";
import { keyOf, sharedQueue, topicSubject } from "./subjects.ts";
import { CATCH_UP_MARGIN_MS, type ClusterCounters, SessionMover, snapshotOf } from "./session_mover.ts";
import { journalStream, NodeJournal } from "./node_journal.ts";
import { NodeWatch } from "./node_watch.ts";
import { Interests } from "./interest.ts";
import type { BrokerChange } from "../machine/broker_machine.ts";

export type { ClusterCounters } from "./session_mover.ts";

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
  #boot: string;
  #seq = 0;
  #host: ClusterHost | undefined;
  #retained: EngineBucket | undefined;
  readonly #subscriptions: EngineSubscription[] = [];
  /** The engine subscriptions of each topic filter held here. */
  readonly #interests: Interests;
  /** The last sequence number routed from each origin, for ordinary subscriptions (overlaps arrive twice). */
  readonly #seen = new Map<string, number>();
  /** Retained topics by bucket key, to clear them when the key is deleted. */
  readonly #retainedTopics = new Map<string, string>();
  /** Whether the stream, buckets and watches are set up on the engine. */
  #joined = false;
  #joining: Promise<void> | undefined;
  /** When the engine went away (wall clock), while it is away. */
  #downSince: number | undefined;
  /** Messages that came while catching up after an outage, routed once it is done. */
  #held: Uint8Array[] | undefined;
  /** The sequence number of each QoS 1 or 2 message published here that the engine took, by its payload. */
  readonly #storedSeq = new WeakMap<Uint8Array, number>();
  /** The sequence numbers of those not routed here yet (waiting for the engine's acknowledgement). */
  readonly #unrouted = new Set<number>();
  /** Claims, hand-overs and sessions left when stopping. */
  readonly #mover: SessionMover;
  /** The other nodes' heartbeats, and the take-over of those that die. */
  readonly #watch: NodeWatch;
  /** This node's journal: what another node needs to take over its sessions if it dies. */
  #journal: NodeJournal;
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
    // A new run begins when the cluster took this one for dead (see `#rejoin`).
    const boot = () => this.#boot;
    this.#mover = new SessionMover({
      engine: this.#engine,
      prefix: this.#prefix,
      name: this.node,
      get boot() {
        return boot();
      },
      claimTimeoutMs: options.claimTimeoutMs ?? 3000,
      counters: this.counters,
      host: () => this.#host,
      available: () => this.available,
      prepare: (filters) => this.prepare(filters),
      settle: (filters) => this.settle(filters),
      routedSoFar: () => this.#routedSoFar(),
      alive: (boot) => this.#watch.alive(boot),
      gone: (boot) => this.#watch.gone(boot),
      settled: (id, seq) => {
        // Only for an origin that is gone: one alive may still have older messages on their way here.
        if (!this.#watch.alive(id) && seq > (this.#seen.get(id) ?? 0)) this.#seen.set(id, seq);
      },
      reap: (boot, node) => this.#watch.reap(boot, node),
    });
    this.#watch = new NodeWatch({
      engine: this.#engine,
      prefix: this.#prefix,
      name: this.node,
      get boot() {
        return boot();
      },
      heartbeatMs: options.heartbeatMs ?? 5000,
      host: () => this.#host,
      available: () => this.available,
      leaveFor: (state, boot, node) => this.#mover.leaveFor(state, boot, node),
    });
    this.#journal = this.#newJournal();
    this.#interests = new Interests({
      engine: this.#engine,
      prefix: this.#prefix,
      available: () => this.available,
      onMessage: this.#onMessage,
      onShared: (data, filter, seen) => {
        const message = this.#receive(data, seen, true);
        return message !== undefined && (this.#host?.routeShared(snapshotOf(message), filter) ?? 0) > 0;
      },
    });
  }

  /** A journal for this run. */
  #newJournal(): NodeJournal {
    return new NodeJournal({
      engine: this.#engine,
      prefix: this.#prefix,
      boot: this.#boot,
      checkpoint: () => this.#host?.checkpoint() ?? [],
      routedSoFar: () => this.#routedSoFar(),
      available: () => this.available,
      log: (level, message) => this.#host?.log(level, message),
    });
  }

  get available(): boolean {
    return this.#engine.status === "connected" && this.#joined && !this.#closed;
  }

  async start(host: ClusterHost): Promise<void> {
    this.#host = host;
    this.#engine.onStatus((status, detail) => {
      if (status === "connected") {
        host.log("info", `Cluster engine reachable again${detail ? ` (${detail})` : ""}`);
        if (!this.#joined && !this.#closed) {
          void this.#join(host).catch((error) =>
            host.log("warn", `Could not join the cluster yet: ${error}`)
          );
        }
        const since = this.#downSince;
        this.#downSince = undefined;
        if (since !== undefined && !this.#closed) {
          // What comes from now on waits until what was missed is routed (or this run is found taken over).
          this.#held ??= [];
          void this.#rejoin(since);
        }
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
    if (this.#engine.status === "connected") return await this.#join(host);
    host.log(
      "warn",
      `Cluster engine not reachable yet: serving local clients only; QoS 1/2 messages and persistent sessions are refused until it is`,
    );
  }

  /** Makes what the node needs on the engine (stream, buckets, watches, heartbeat), once. */
  #join(host: ClusterHost): Promise<void> {
    return this.#joining ??= this.#setUp(host).then(() => {
      this.#joined = true;
      host.log("info", `Joined the cluster as node "${this.node}"`);
    }, (error) => {
      this.#joining = undefined;
      throw error;
    });
  }

  async #setUp(host: ClusterHost): Promise<void> {
    const engine = this.#engine;
    const prefix = this.#prefix;
    const maxAgeMs = this.#options.messageMaxAgeMs ?? 86_400_000;
    const maxBytes = this.#options.messageMaxBytes ?? 1024 * 1024 * 1024;
    await engine.stream(`${prefix}_messages`, { subjects: [`${prefix}.s.>`], maxAgeMs, maxBytes });
    await engine.stream(journalStream(prefix), { subjects: [`${prefix}_j.>`], maxAgeMs, maxBytes });
    this.#mover.open(await engine.bucket(`${prefix}_sessions`));
    this.#subscriptions.push(await this.#mover.watchParked(await engine.bucket(`${prefix}_parked`)));
    const retained = this.#retained = await engine.bucket(`${prefix}_retained`);
    // Without an age limit: the last beat of a run that died stays until a node takes that run over, even when
    // every node was down at once.
    const nodes = await engine.bucket(`${prefix}_nodes`);
    this.#subscriptions.push(
      engine.serve(`${prefix}_ctl.node.${this.node}.take`, (data) => this.#mover.give(data)),
      engine.serve(`${prefix}_ctl.node.${this.node}.peek`, (data) => this.#mover.peek(data)),
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
      await this.#watch.open(nodes, await engine.bucket(`${prefix}_reaped`, { maxAgeMs })),
    );
  }

  store(message: MessageSnapshot, packetId?: number): Promise<void> {
    if (!this.available) {
      this.counters.refused++;
      return Promise.reject(new Error("the cluster engine is unreachable"));
    }
    const envelope = this.#envelope(message);
    if (message.qos === 2 && packetId !== undefined) envelope.packetId = packetId;
    const data = encodeMessage(envelope);
    const done: Promise<unknown>[] = [
      this.#engine.store(topicSubject(this.#prefix, "s", message.topic), data),
    ];
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
      if (this.#mover.moving) this.#mover.capture(message, this.#boot, seq);
      return;
    }
    // `$SYS` topics are each node's own.
    if (message.topic.startsWith("$SYS/") || this.#closed) return;
    const envelope = this.#envelope(message);
    if (this.#mover.moving) this.#mover.capture(message, this.#boot, envelope.seq);
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

  journal(changes: readonly BrokerChange[]): Promise<void> | undefined {
    return this.#joined ? this.#journal.write(changes) : undefined;
  }

  claim(clientId: string, cleanStart: boolean): Promise<void> {
    return this.#mover.claim(clientId, cleanStart);
  }

  ended(clientId: string): void {
    this.#mover.ended(clientId);
  }

  interest(filter: string, present: boolean): void {
    this.#interests.set(filter, present);
  }

  prepare(filters: readonly string[]): Promise<void> {
    return this.#interests.prepare(filters);
  }

  settle(filters: readonly string[]): void {
    this.#interests.settle(filters);
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

  sysValues(): Map<string, string> {
    const c = this.counters;
    return new Map([
      ["$SYS/cluster/node", this.node],
      ["$SYS/cluster/nodes", String(this.#watch.count)],
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
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    this.#interests.close();
    if (this.#engine.status === "connected") {
      await this.#mover.park(left);
      await this.#journal.close(true);
      await this.#watch.leave();
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
      if (this.#mover.moving) this.#mover.capture(message, received.id, received.seq);
      this.#host?.routeRemote(message);
    } catch (error) {
      // Never into the engine's reader: that would stop its connection.
      this.#host?.log("error", `Could not route a message from the cluster: ${(error as Error).stack}`);
    }
  }

  /**
   * Once the engine is back after an outage: when the rest of the cluster took this run for dead meanwhile (it
   * was away for over three heartbeats) and took its sessions over, this node drops its sessions (their clients
   * reconnect and resume them where the cluster left them) and goes on as a new run; otherwise it catches up.
   */
  async #rejoin(since: number): Promise<void> {
    let fenced = false;
    try {
      fenced = await this.#watch.wasTakenOver(this.#boot);
    } catch {
      // Away again: this is asked again when it is back.
    }
    if (!fenced) {
      this.#journal.repair();
      return await this.#catchUpOutage(since);
    }
    const held = this.#held ?? [];
    this.#held = undefined;
    this.#boot = `${this.node}:${crypto.randomUUID()}`;
    this.#seq = 0;
    this.#unrouted.clear();
    this.#mover.forget();
    void this.#journal.close(false);
    this.#journal = this.#newJournal();
    const dropped = this.#host?.dropSessions() ?? 0;
    this.#host?.log(
      "error",
      `The cluster took this node for dead while it was cut off and took over its sessions: dropped its ${dropped} sessions (their clients reconnect and resume them there) and went on as a new run`,
    );
    for (const data of held) this.#route(data);
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

  /** The last sequence number routed here from each origin (this node's: its last), and its own unrouted ones. */
  #routedSoFar(): { seen: Record<string, number>; unrouted: number[] } {
    const seen = Object.fromEntries(this.#seen);
    seen[this.#boot] = this.#seq;
    return { seen, unrouted: [...this.#unrouted] };
  }
}
