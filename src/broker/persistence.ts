/**
 * What of a broker outlives its process: the state it writes to its store (SQLite) and to its cluster's
 * journal, each change before the packets that acknowledge it go out, and the state it restores on start.
 *
 * @module
 */

import type { BrokerMachine } from "../machine/broker_machine.ts";
import { type BrokerOptions, log } from "./broker_options.ts";
import type { OutputGate } from "./output_gate.ts";
import type { BrokerStore } from "./store.ts";

/** A broker's store and journal. */
export class Persistence {
  readonly #machine: BrokerMachine;
  readonly #options: BrokerOptions;
  readonly #gate: OutputGate;
  #store: BrokerStore | undefined;

  /**
   * @param machine The broker's machine, which keeps a journal when there is a store or a cluster.
   * @param options The broker's options: its `store` and `cluster`.
   * @param gate Holds the packets of a turn until the cluster's journal has its record.
   */
  constructor(machine: BrokerMachine, options: BrokerOptions, gate: OutputGate) {
    this.#machine = machine;
    this.#options = options;
    this.#gate = gate;
    this.#store = options.store;
  }

  /**
   * Loads the store into the machine, writes it back whole under the machine's keys, then what came due
   * while the broker was down.
   *
   * @returns Whether there was a store.
   */
  restore(): boolean {
    const store = this.#store;
    if (store === undefined) return false;
    const machine = this.#machine;
    const now = performance.now();
    machine.restoreState(now, store.load());
    store.write(machine.pollChanges(now), true);
    machine.handleTimeout(now);
    this.write();
    log(
      this.#options,
      "info",
      `Restored ${machine.sessionCount} sessions and ${machine.retainedCount} retained messages`,
    );
    return true;
  }

  /**
   * Writes the machine's changes to the store, and to the cluster's journal, before any packet that
   * acknowledges them goes out.
   */
  write(): void {
    const store = this.#store;
    const cluster = this.#options.cluster;
    if (store === undefined && cluster === undefined) return;
    const changes = this.#machine.pollChanges(performance.now());
    if (changes.length === 0) return;
    try {
      // `$SYS` values are the broker's own and published again on start.
      store?.write(changes.filter((c) => c.type !== "retained" || !c.topic.startsWith("$SYS/")));
    } catch (error) {
      log(this.#options, "error", `Could not write to the store: ${(error as Error).message}`);
    }
    const recorded = cluster?.journal(changes);
    if (recorded !== undefined) this.#gate.hold(recorded);
  }

  /** Writes what is left and closes the store. */
  close(): void {
    this.write();
    this.#store?.close();
    this.#store = undefined;
  }
}
