/**
 * The sessions of a cluster node as they move between nodes: claiming a client's session from the node that has
 * it, keeping what is published for it while it moves, leaving sessions in the sessions bucket when the node
 * stops, and picking them up there (with what the stream stored for them meanwhile).
 *
 * @module
 */

import type { ClusterHost } from "../broker/cluster_link.ts";
import type { MessageSnapshot, SessionSnapshot } from "../machine/broker_machine.ts";
import { topicMatches } from "../codec/topic.ts";
import { concat } from "../bytes.ts";
import {
  type ClusterEngine,
  type EngineBucket,
  type EngineSubscription,
  NoResponders,
  RevisionConflict,
} from "./engine.ts";
import { decodeJson, decodeMessage, encodeJson } from "./envelope.ts";
import { filterSubjects, keyOf } from "./subjects.ts";
import type { ClusterMessage } from "./envelope.ts";
import type { JournalState } from "./node_journal.ts";

/** How far before an outage (or a node's leaving) catching up starts, for clocks a little apart. */
export const CATCH_UP_MARGIN_MS = 2000;

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

/** What the sessions part needs of its node. */
export interface MoverNode {
  readonly engine: ClusterEngine;
  readonly prefix: string;
  /** The node's name. */
  readonly name: string;
  /** This run of the node. */
  readonly boot: string;
  readonly claimTimeoutMs: number;
  readonly counters: ClusterCounters;
  /** The broker, once the node started. */
  host(): ClusterHost | undefined;
  /** Whether the engine can be used now. */
  available(): boolean;
  /** Subscribes to filters ahead of a session (see `Cluster.prepare`). */
  prepare(filters: readonly string[]): Promise<void>;
  settle(filters: readonly string[]): void;
  /** What the node routed so far (see {@linkcode Given}). */
  routedSoFar(): { seen: Record<string, number>; unrouted: number[] };
  /**
   * A message of this origin and sequence number was routed to a session that moved here (here or where it
   * was): what this node tells as routed so far must include it once its origin is gone, or the next node the
   * session moves to would route it again.
   */
  settled(id: string, seq: number): void;
  /** Notes that a run is gone (see `NodeWatch.gone`). */
  gone(boot: string): void;
  /** Whether a run of a node is alive (see `NodeWatch.alive`). */
  alive(boot: string): boolean;
  /** Leaves the sessions of a run that died in the bucket (see `NodeWatch.reap`). */
  reap(boot: string, node: string): Promise<void>;
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

/** A session a stopped node left, as the parked bucket lists it for every node to watch over. */
interface ParkedEntry {
  clientId: string;
  /** Its entry's revision in the sessions bucket: whoever ends it deletes that revision. */
  revision: number;
  /** How many parts it is stored in. */
  parts: number;
  /** When it expires (wall clock, ms); `undefined`: never. */
  expiresAt?: number;
  /** When its will is due, if it has one waiting. */
  willAt?: number;
  /** Whether that will went out. */
  willDone?: boolean;
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

/** The size of one part of a parked session, well under NATS's default 1 MiB message limit. */
const PART = 256 * 1024;

/** Moves sessions between nodes: the `claim`, `ended` and leaving side of {@linkcode Cluster}. */
export class SessionMover {
  readonly #node: MoverNode;
  #bucket: EngineBucket | undefined;
  /** Sessions moving here from another node, by client identifier: what comes for them meanwhile. */
  readonly #moving = new Map<string, Move>();
  /** The revision of the sessions-bucket entry this node wrote for each client it holds. */
  readonly #owned = new Map<string, number>();
  /** The sessions stopped nodes left, by key, as the parked bucket lists them, and their revisions there. */
  readonly #parked = new Map<string, { entry: ParkedEntry; revision: number }>();
  #parkedBucket: EngineBucket | undefined;
  #sweepTimer: ReturnType<typeof setTimeout> | undefined;

  /** @param node The node it works for. */
  constructor(node: MoverNode) {
    this.#node = node;
  }

  /** Whether a session is on its way here (messages are then kept for it: see `capture`). */
  get moving(): boolean {
    return this.#moving.size > 0;
  }

  /** Forgets the sessions this node held: the cluster took them over while this node was cut off. */
  forget(): void {
    this.#owned.clear();
  }

  /** Starts working with the sessions bucket. */
  open(bucket: EngineBucket): void {
    this.#bucket = bucket;
  }

  /**
   * Watches over the sessions stopped nodes left (the parked bucket): whichever node gets there first publishes
   * a will whose delay passed and ends a session whose expiry passed, so that both hold with no client back.
   *
   * @returns The watch; unsubscribing it also stops the timer.
   */
  async watchParked(parked: EngineBucket): Promise<EngineSubscription> {
    this.#parkedBucket = parked;
    const watch = await parked.watch((entry) => {
      if (entry.value === undefined) this.#parked.delete(entry.key);
      else {this.#parked.set(entry.key, {
          entry: decodeJson<ParkedEntry>(entry.value),
          revision: entry.revision,
        });}
      this.#scheduleSweep();
    });
    return {
      unsubscribe: () => {
        watch.unsubscribe();
        clearTimeout(this.#sweepTimer);
        this.#parked.clear();
      },
    };
  }

  /** Sets the timer for the earliest will or expiry of a parked session. */
  #scheduleSweep(): void {
    clearTimeout(this.#sweepTimer);
    let next = Infinity;
    for (const { entry } of this.#parked.values()) {
      if (entry.willAt !== undefined && !entry.willDone) next = Math.min(next, entry.willAt);
      if (entry.expiresAt !== undefined) next = Math.min(next, entry.expiresAt);
    }
    if (next === Infinity) return;
    this.#sweepTimer = setTimeout(() => void this.#sweep(), Math.max(0, next - Date.now()));
  }

  /** Publishes the wills and ends the parked sessions that came due, each on one node only (compare-and-set). */
  async #sweep(): Promise<void> {
    const sessions = this.#bucket;
    const parked = this.#parkedBucket;
    if (sessions === undefined || parked === undefined || !this.#node.available()) return;
    const now = Date.now();
    for (const [key, { entry, revision }] of [...this.#parked]) {
      const expired = entry.expiresAt !== undefined && entry.expiresAt <= now;
      const willDue = entry.willAt !== undefined && !entry.willDone && entry.willAt <= now;
      if (!expired && !willDue) continue;
      try {
        if (expired) {
          const snapshot = entry.willDone ? undefined : await this.#readParked(key, entry.parts);
          // The one node that deletes the entry at its revision ends the session (a client back meanwhile
          // changed the revision).
          await sessions.delete(key, entry.revision);
          for (let i = 0; i < entry.parts; i++) await sessions.delete(`${key}.p${i}`).catch(() => {});
          await parked.delete(key).catch(() => {});
          // [MQTT-3.1.2-8] a will still waiting goes out when the session ends.
          if (snapshot?.will !== undefined) this.#node.host()?.publishWill(entry.clientId, snapshot.will);
          this.#node.host()?.log(
            "info",
            `Ended the session "${entry.clientId}" left by a stopped node: it expired`,
          );
        } else {
          await parked.update(key, encodeJson({ ...entry, willDone: true }), revision);
          const snapshot = await this.#readParked(key, entry.parts);
          if (snapshot.will !== undefined) this.#node.host()?.publishWill(entry.clientId, snapshot.will);
        }
      } catch (error) {
        if (!(error instanceof RevisionConflict)) {
          this.#node.host()?.log("warn", `Could not end the parked session "${entry.clientId}": ${error}`);
        }
      }
    }
    this.#scheduleSweep();
  }

  /** Reads a parked session's parts. */
  async #readParked(key: string, count: number): Promise<SessionSnapshot> {
    const sessions = this.#bucket as EngineBucket;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const part = await sessions.get(`${key}.p${i}`);
      if (part?.value === undefined) throw new Error(`a part of the parked session "${key}" is missing`);
      parts.push(part.value);
    }
    return decodeJson<SessionSnapshot>(concat(parts));
  }

  async claim(clientId: string, cleanStart: boolean): Promise<void> {
    const sessions = this.#bucket;
    if (!this.#node.available() || sessions === undefined) {
      throw new Error("the cluster engine is unreachable");
    }
    const key = keyOf(clientId);
    let snapshot: SessionSnapshot | undefined;
    let given: Given | undefined;
    let move: Move | undefined;
    /** Runs of nodes whose sessions this claim had left in the bucket. */
    const reaped = new Set<string>();
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const entry = await sessions.get(key);
        const owner = entry?.value === undefined ? undefined : decodeJson<SessionOwner>(entry.value);
        if (owner?.parked !== undefined) {
          // The run that left it is gone (stopped, or taken over): what it routed is final.
          this.#node.gone(owner.boot);
          snapshot = await this.#unpark(key, owner, cleanStart) ?? snapshot;
          if (snapshot !== undefined && move === undefined) {
            move = await this.#catchUpParked(clientId, snapshot, owner);
            given = { seen: owner.seen ?? {}, boot: owner.boot, unrouted: owner.unrouted ?? [] };
          }
        } else if (owner !== undefined && owner.boot !== this.#node.boot) {
          // A run that died (this node's past run, one that stopped beating or that no longer serves its
          // requests): its sessions are left in the bucket first, then read from there.
          const dead = owner.node === this.#node.name || !this.#node.alive(owner.boot);
          if (dead && !reaped.has(owner.boot)) {
            reaped.add(owner.boot);
            this.#node.host()?.log("info", `Node "${owner.node}", which had "${clientId}", is gone`);
            await this.#node.reap(owner.boot, owner.node);
            continue;
          }
          if (!cleanStart && move === undefined && !dead) move = await this.#startMove(owner.node, clientId);
          const taken = dead ? undefined : await this.#take(owner.node, clientId, cleanStart);
          if (taken === "gone" && !reaped.has(owner.boot)) {
            reaped.add(owner.boot);
            this.#node.host()?.log("info", `Node "${owner.node}", which had "${clientId}", does not answer`);
            await this.#node.reap(owner.boot, owner.node);
            continue;
          }
          if (taken !== "gone") given = taken ?? given;
          snapshot = given?.snapshot ?? snapshot;
        }
        try {
          const value = encodeJson({ node: this.#node.name, boot: this.#node.boot } satisfies SessionOwner);
          this.#owned.set(clientId, await sessions.update(key, value, entry?.revision ?? 0));
        } catch (error) {
          if (error instanceof RevisionConflict) continue;
          throw error;
        }
        this.#node.counters.claimed++;
        // In one turn: from here on, what comes for the session is routed to it.
        this.#moving.delete(clientId);
        if (snapshot !== undefined) this.#node.host()?.restoreSession(snapshot);
        if (move !== undefined) this.#catchUp(clientId, move, given);
        if (owner?.parked !== undefined) {
          await this.#parkedBucket?.delete(key).catch(() => {});
          for (let i = 0; i < owner.parked; i++) await sessions.delete(`${key}.p${i}`).catch(() => {});
        }
        return;
      }
      throw new Error(`the session of "${clientId}" kept changing hands`);
    } finally {
      this.#moving.delete(clientId);
      if (move !== undefined) this.#node.settle(move.filters);
    }
  }

  ended(clientId: string): void {
    const revision = this.#owned.get(clientId);
    if (revision === undefined) return;
    // After the turn: a clean start ends the old session just before the new one of the same client begins.
    queueMicrotask(() => {
      if (this.#node.host()?.hasSession(clientId) || this.#owned.get(clientId) !== revision) return;
      this.#owned.delete(clientId);
      this.#bucket?.delete(keyOf(clientId), revision).catch(() => {
        // Claimed meanwhile by another node, or the engine is away: the entry then names a node without it.
      });
    });
  }

  /**
   * Before a session moves here from `node`: this node subscribes to what its subscriptions match and keeps what
   * comes for it until it is restored here, so that nothing published meanwhile misses it.
   */
  async #startMove(node: string, clientId: string): Promise<Move | undefined> {
    let filters: string[];
    try {
      const answer = await this.#node.engine.request(
        `${this.#node.prefix}_ctl.node.${node}.peek`,
        encodeJson({ clientId }),
        this.#node.claimTimeoutMs,
      );
      filters = decodeJson<{ filters: string[] }>(answer).filters.filter((f) => !f.startsWith("$share/"));
    } catch {
      return undefined;
    }
    if (filters.length === 0) return undefined;
    const move: Move = { filters, replayed: [], buffer: [] };
    this.#moving.set(clientId, move);
    await this.#node.prepare(filters);
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
    await this.#node.prepare(filters);
    const stored = new Map<number, Uint8Array>();
    const stream = `${this.#node.prefix}_messages`;
    const from = { timeMs: (owner.since ?? Date.now()) - CATCH_UP_MARGIN_MS };
    for (const filter of filters) {
      for (const subject of filterSubjects(this.#node.prefix, filter)) {
        // The stored kind only: `mqtt.*.a.>` is read as `mqtt.s.a.>`.
        const storedSubject = `${this.#node.prefix}.s.${subject.slice(this.#node.prefix.length + 3)}`;
        await this.#node.engine.replay(
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
  capture(message: MessageSnapshot, id: string, seq: number): void {
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
    for (const [id, seq] of Object.entries(given?.seen ?? {})) this.#node.settled(id, seq);
    for (const { message, id, seq } of [...move.replayed, ...move.buffer]) {
      const routedThere = given !== undefined && seq <= (given.seen[id] ?? 0) &&
        !(id === given.boot && given.unrouted.includes(seq));
      this.#node.settled(id, seq);
      const key = `${id} ${seq}`;
      if (routedThere || done.has(key)) continue;
      done.add(key);
      this.#node.host()?.routeTo(clientId, message);
    }
  }

  /**
   * Leaves this node's persistent sessions in the bucket, for whichever node their clients come back to: the
   * session in parts, then the entry that points at them, written only while this node still holds it.
   */
  async park(left: Pick<SessionOwner, "since" | "seen" | "unrouted">): Promise<void> {
    let parked = 0;
    for (const snapshot of this.#node.host()?.persistentSessions() ?? []) {
      const revision = this.#owned.get(snapshot.clientId);
      if (revision === undefined) continue;
      const owner: SessionOwner = { node: this.#node.name, boot: this.#node.boot, ...left };
      if (await this.#parkOne(snapshot, revision, owner)) parked++;
    }
    if (parked > 0) {
      this.#node.host()?.log("info", `Left ${parked} sessions in the cluster for their clients`);
    }
  }

  /**
   * Leaves the sessions of a run of a node that died, as its journal has them, as {@linkcode SessionMover.park}
   * would have: the persistent ones its entries still name it for are parked (their wills then wait in the
   * parked bucket); the will of one that ended with its connection goes out now.
   */
  async leaveFor(state: JournalState, boot: string, node: string): Promise<void> {
    const sessions = this.#bucket;
    if (sessions === undefined) return;
    const stored = await this.#storedQoS2(state, boot);
    for (const snapshot of state.sessions) {
      const ids = stored.get(snapshot.clientId);
      if (ids !== undefined) snapshot.inboundQoS2 = [...new Set([...snapshot.inboundQoS2, ...ids])];
      const key = keyOf(snapshot.clientId);
      const entry = await sessions.get(key);
      const owner = entry?.value === undefined ? undefined : decodeJson<SessionOwner>(entry.value);
      if (entry === undefined || owner?.boot !== boot || owner.parked !== undefined) continue;
      if (snapshot.expiryInterval > 0) {
        await this.#parkOne(snapshot, entry.revision, {
          node,
          boot,
          since: state.at,
          seen: state.seen,
          unrouted: state.unrouted,
        });
        continue;
      }
      try {
        await sessions.delete(key, entry.revision);
      } catch (error) {
        // Its client connected elsewhere meanwhile: the connection it had still ended without DISCONNECT.
        if (!(error instanceof RevisionConflict)) throw error;
      }
      if (snapshot.will !== undefined) this.#node.host()?.publishWill(snapshot.clientId, snapshot.will);
    }
  }

  /**
   * The QoS 2 messages a run that died stored after its last journal record (or had not routed by then), as
   * their publishers' packet identifiers by client: those are received already, so that a PUBLISH sent again
   * is acknowledged without being routed twice.
   */
  async #storedQoS2(state: JournalState, boot: string): Promise<Map<string, number[]>> {
    const stored = new Map<string, number[]>();
    const last = state.seen[boot] ?? 0;
    const unrouted = new Set(state.unrouted);
    await this.#node.engine.replay(
      `${this.#node.prefix}_messages`,
      { timeMs: state.at - CATCH_UP_MARGIN_MS },
      (data) => {
        const message = decodeMessage(data);
        const { packetId, publisher } = message;
        if (message.id !== boot || packetId === undefined || publisher === undefined) return;
        if (message.seq <= last && !unrouted.has(message.seq)) return;
        const ids = stored.get(publisher);
        if (ids === undefined) stored.set(publisher, [packetId]);
        else ids.push(packetId);
      },
    );
    return stored;
  }

  /** Parks one session under the entry at `revision`; whether it did. */
  async #parkOne(snapshot: SessionSnapshot, revision: number, owner: SessionOwner): Promise<boolean> {
    const sessions = this.#bucket as EngineBucket;
    const key = keyOf(snapshot.clientId);
    const data = encodeJson(snapshot);
    const parts = Math.max(1, Math.ceil(data.length / PART));
    owner.parked = parts;
    if (snapshot.expiresInMs !== undefined) owner.expiresAt = Date.now() + snapshot.expiresInMs;
    try {
      for (let i = 0; i < parts; i++) {
        await sessions.put(`${key}.p${i}`, data.subarray(i * PART, (i + 1) * PART));
      }
      const parkedAt = await sessions.update(key, encodeJson(owner), revision);
      const entry: ParkedEntry = { clientId: snapshot.clientId, revision: parkedAt, parts };
      if (owner.expiresAt !== undefined) entry.expiresAt = owner.expiresAt;
      if (snapshot.will !== undefined && snapshot.willInMs !== undefined) {
        entry.willAt = Date.now() + snapshot.willInMs;
      }
      await this.#parkedBucket?.put(key, encodeJson(entry));
      return true;
    } catch (error) {
      this.#node.host()?.log(
        "warn",
        `Could not leave the session of "${snapshot.clientId}" in the cluster: ${error}`,
      );
      return false;
    }
  }

  /** A session a stopped node left in the bucket; `undefined` when it expired or the client starts clean. */
  async #unpark(key: string, owner: SessionOwner, cleanStart: boolean): Promise<SessionSnapshot | undefined> {
    const sessions = this.#bucket as EngineBucket;
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

  /**
   * Asks the node that holds a session to give it up: its answer (`undefined` when it had no such session), or
   * `"gone"` when that node no longer serves its requests (nothing subscribes to them: it died or lost NATS) or
   * does not answer and stopped beating.
   *
   * @throws {Error} When it does not answer but is alive: the session cannot be had now.
   */
  async #take(node: string, clientId: string, cleanStart: boolean): Promise<Given | "gone"> {
    try {
      const answer = await this.#node.engine.request(
        `${this.#node.prefix}_ctl.node.${node}.take`,
        encodeJson({ clientId, cleanStart }),
        this.#node.claimTimeoutMs,
      );
      return decodeJson<Given>(answer);
    } catch (error) {
      if (error instanceof NoResponders) return "gone";
      throw new Error(`node "${node}" holds it and did not give it up: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /** Answers another node's request for a session. */
  give(data: Uint8Array): Uint8Array {
    const { clientId, cleanStart } = decodeJson<{ clientId: string; cleanStart: boolean }>(data);
    // No longer ours: ending it here must not delete the entry the claiming node is about to write.
    this.#owned.delete(clientId);
    const snapshot = this.#node.host()?.takeSession(clientId, cleanStart);
    if (snapshot !== undefined) this.#node.counters.handedOver++;
    // What this node routed so far: the claiming node gives the session what came after.
    const given: Given = { ...this.#node.routedSoFar(), boot: this.#node.boot };
    if (snapshot !== undefined) given.snapshot = snapshot;
    return encodeJson(given);
  }

  /** Answers another node's question for the topic filters of a session about to move there. */
  peek(data: Uint8Array): Uint8Array {
    const { clientId } = decodeJson<{ clientId: string }>(data);
    return encodeJson({ filters: this.#node.host()?.subscriptions(clientId) ?? [] });
  }
}

/** A cluster message as the broker machine takes it, its expiry counting from now. */
export function snapshotOf(message: ClusterMessage): MessageSnapshot {
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
