/**
 * Which nodes of a cluster are alive, and what happens to the sessions of one that died: each node writes a
 * heartbeat to the bucket `<prefix>_nodes` and watches everyone's. A run of a node that stopped beating for
 * three heartbeats (or whose node name came back under a new run, or that no longer serves its requests) is
 * taken over by exactly one live node (a compare-and-set in the bucket `<prefix>_reaped`): it reads the dead
 * run's journal ({@linkcode readJournal}), leaves its persistent sessions in the sessions bucket for their clients
 * as a stopping node would, and publishes the wills of the others.
 *
 * @module
 */

import type { ClusterHost } from "../broker/cluster_link.ts";
import {
  type ClusterEngine,
  type EngineBucket,
  type EngineSubscription,
  RevisionConflict,
} from "./engine.ts";
import { decodeJson, encodeJson } from "./envelope.ts";
import { type JournalState, journalStream, journalSubject, readJournal } from "./node_journal.ts";
import { keyOf } from "./subjects.ts";

/** What the watch needs of its node. */
export interface WatchedNode {
  readonly engine: ClusterEngine;
  readonly prefix: string;
  /** The node's name and this run of it. */
  readonly name: string;
  readonly boot: string;
  readonly heartbeatMs: number;
  host(): ClusterHost | undefined;
  available(): boolean;
  /** Leaves the sessions a dead run's journal holds (see `SessionMover.leaveFor`). */
  leaveFor(state: JournalState, boot: string, node: string): Promise<void>;
}

/** A node's heartbeat, as the nodes bucket holds it. */
interface Beat {
  boot: string;
}

/** Who takes over a dead run, as the reaped bucket holds it. */
interface Reaping {
  /** The run taken over. */
  boot: string;
  by: string;
  at: number;
  done?: boolean;
}

/** A take-over that has not finished after this long is taken up by another node (its taker died too). */
const REAP_STALE_MS = 30_000;

/** Watches the other nodes' heartbeats and takes over the sessions of those that died. */
export class NodeWatch {
  readonly #node: WatchedNode;
  /** The live runs by node name, with when their last heartbeat came (this node's clock). */
  readonly #beats = new Map<string, { boot: string; at: number }>();
  /** Runs known to be gone: taken over, by this node or another. */
  readonly #gone = new Set<string>();
  /** Take-overs under way or done by this node, by run. */
  readonly #reaping = new Map<string, Promise<void>>();
  #nodes: EngineBucket | undefined;
  #reaped: EngineBucket | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** @param node The node it watches for. */
  constructor(node: WatchedNode) {
    this.#node = node;
  }

  /** How many nodes are alive, this one included. */
  get count(): number {
    let count = 1;
    for (const name of this.#beats.keys()) if (name !== this.#node.name) count++;
    return count;
  }

  /**
   * Starts beating and watching.
   *
   * @returns The watch; unsubscribing it stops the heartbeat and the checks.
   */
  async open(nodes: EngineBucket, reaped: EngineBucket): Promise<EngineSubscription> {
    this.#nodes = nodes;
    this.#reaped = reaped;
    const { name, heartbeatMs } = this.#node;
    // Every node learns at once of a run taken over, whoever takes it over.
    const reapings = await reaped.watch((entry) => {
      if (entry.value !== undefined) this.#gone.add(decodeJson<Reaping>(entry.value).boot);
    });
    const watch = await nodes.watch((entry) => {
      if (entry.value === undefined) {
        this.#beats.delete(entry.key);
        return;
      }
      const beat = decodeJson<Beat>(entry.value);
      const before = this.#beats.get(entry.key);
      this.#beats.set(entry.key, { boot: beat.boot, at: Date.now() });
      // The same name under a new run: the old run is gone.
      if (before !== undefined && before.boot !== beat.boot) {
        this.#reapSoon(before.boot, entry.key, "started again");
      }
    });
    const beat = () => {
      nodes.put(name, encodeJson({ boot: this.#node.boot } satisfies Beat)).catch(() => {});
      this.#check();
    };
    beat();
    this.#timer = setInterval(beat, heartbeatMs);
    return {
      unsubscribe: () => {
        watch.unsubscribe();
        reapings.unsubscribe();
        clearInterval(this.#timer);
      },
    };
  }

  /** Tells this node's leaving: its heartbeat goes at once. */
  async leave(): Promise<void> {
    await this.#nodes?.delete(this.#node.name).catch(() => {});
  }

  /** Notes that a run is gone: its sessions were left in the cluster (it stopped, or was taken over). */
  gone(boot: string): void {
    if (boot !== this.#node.boot) this.#gone.add(boot);
  }

  /** Whether a run of a node was taken over (by any node). */
  async wasTakenOver(boot: string): Promise<boolean> {
    const entry = await this.#reaped?.get(keyOf(boot));
    return entry?.value !== undefined;
  }

  /** Whether a run of a node beat within the last three heartbeats (this node's own run: always). */
  alive(boot: string): boolean {
    if (boot === this.#node.boot) return true;
    if (this.#gone.has(boot)) return false;
    const limit = Date.now() - 3 * this.#node.heartbeatMs;
    for (const beat of this.#beats.values()) if (beat.boot === boot) return beat.at >= limit;
    return false;
  }

  /**
   * Takes over the sessions of a run that died, unless another node did or does (then waits for it).
   *
   * @throws {Error} When the engine fails meanwhile, or another node's take-over takes too long.
   */
  reap(boot: string, node: string): Promise<void> {
    let running = this.#reaping.get(boot);
    if (running === undefined) {
      this.#gone.add(boot);
      running = this.#reapOnce(boot, node);
      this.#reaping.set(boot, running);
      // Tried again on the next occasion when it failed.
      running.catch(() => this.#reaping.delete(boot));
    }
    return running;
  }

  /** Reaps the runs that stopped beating. */
  #check(): void {
    if (!this.#node.available()) return;
    const limit = Date.now() - 3 * this.#node.heartbeatMs;
    for (const [name, beat] of this.#beats) {
      if (name === this.#node.name || beat.at >= limit) continue;
      this.#beats.delete(name);
      this.#reapSoon(beat.boot, name, "stopped beating");
    }
  }

  #reapSoon(boot: string, node: string, why: string): void {
    if (boot === this.#node.boot) return;
    this.#node.host()?.log("info", `Node "${node}" ${why}: taking over its sessions`);
    this.reap(boot, node).catch((error) =>
      this.#node.host()?.log("warn", `Could not take over the sessions of node "${node}": ${error}`)
    );
  }

  async #reapOnce(boot: string, node: string): Promise<void> {
    const reaped = this.#reaped;
    const nodes = this.#nodes;
    if (reaped === undefined || nodes === undefined) throw new Error("the cluster has not started");
    const key = keyOf(boot);
    const started = Date.now();
    for (;;) {
      const entry = await reaped.get(key);
      const reaping = entry?.value === undefined ? undefined : decodeJson<Reaping>(entry.value);
      if (reaping?.done) return;
      if (reaping !== undefined && Date.now() - reaping.at < REAP_STALE_MS) {
        // Another node is at it.
        if (Date.now() - started > REAP_STALE_MS) {
          throw new Error(`node "${reaping.by}" has been taking them over for too long`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      try {
        const mine: Reaping = { boot, by: this.#node.name, at: Date.now() };
        await reaped.update(key, encodeJson(mine), entry?.revision ?? 0);
        break;
      } catch (error) {
        if (!(error instanceof RevisionConflict)) throw error;
      }
    }
    const { engine, prefix } = this.#node;
    const state = await readJournal(engine, prefix, boot);
    if (state !== undefined) await this.#node.leaveFor(state, boot, node);
    await engine.purge(journalStream(prefix), journalSubject(prefix, boot), Number.MAX_SAFE_INTEGER);
    await reaped.put(
      key,
      encodeJson({ boot, by: this.#node.name, at: Date.now(), done: true } satisfies Reaping),
    );
    // Its last heartbeat goes, unless the node beats again under a new run.
    const last = await nodes.get(node);
    if (last?.value !== undefined && decodeJson<Beat>(last.value).boot === boot) {
      await nodes.delete(node, last.revision).catch(() => {});
    }
    this.#node.host()?.log(
      "info",
      `Took over from node "${node}", which stopped: ${
        state?.sessions.length ?? 0
      } sessions from its journal`,
    );
  }
}
