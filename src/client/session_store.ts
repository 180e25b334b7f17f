/**
 * Where a client's session lives between runs: the {@linkcode SessionStore} contract, an in-memory store, and
 * the saver that writes the machine's session to a store at most once per turn. It never restores a session or
 * decides when one is resumed; `MqttClient.start()` does.
 *
 * @module
 */

import type { ClientMachine, ClientSessionState } from "../machine/client_machine.ts";

/** Where a client keeps its session state between runs: a file, IndexedDB, a database. */
export interface SessionStore {
  /**
   * Loads the state saved for a client; called before the first connection when `cleanStart` is false.
   *
   * @param clientId The client identifier.
   * @returns The saved state, or `undefined` when there is none.
   */
  get(clientId: string): Promise<ClientSessionState | undefined>;
  /**
   * Saves the state of a client, replacing what was saved; called after changes, at most once per turn.
   *
   * @param clientId The client identifier.
   * @param state The state to keep.
   * @returns Resolves once saved.
   */
  set(clientId: string, state: ClientSessionState): Promise<void>;
}

/**
 * A {@linkcode SessionStore} in memory: sessions survive a new client in the same process, not a restart.
 *
 * @example Keep sessions for clients of one process
 * ```ts
 * import { MemorySessionStore } from "@x/mqtt/client";
 * const store = new MemorySessionStore();
 * console.log(await store.get("sensor-1")); // undefined
 * ```
 */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, ClientSessionState>();

  /**
   * Returns the state saved for a client.
   *
   * @param clientId The client.
   * @returns Its saved state, if any.
   */
  get(clientId: string): Promise<ClientSessionState | undefined> {
    return Promise.resolve(this.#sessions.get(clientId));
  }

  /**
   * Saves the state of a client, replacing what was saved before.
   *
   * @param clientId The client.
   * @param state Its state.
   * @returns Resolves once saved.
   */
  set(clientId: string, state: ClientSessionState): Promise<void> {
    this.#sessions.set(clientId, state);
    return Promise.resolve();
  }
}

/** Saves a machine's session state to the client's store after anything that may have changed it, once per turn. */
export class SessionSaver {
  readonly #options: { readonly sessionStore?: SessionStore };
  readonly #machine: ClientMachine;
  #queued = false;
  #saving: Promise<void> = Promise.resolve();

  /**
   * @param options The client's options, whose `sessionStore` (if any) is where to save.
   * @param machine Whose session to save (under its client id).
   */
  constructor(options: { readonly sessionStore?: SessionStore }, machine: ClientMachine) {
    this.#options = options;
    this.#machine = machine;
  }

  /** Queues a save for the end of this turn, unless there is no store or a save is queued already. */
  save(): void {
    const store = this.#options.sessionStore;
    if (store === undefined || this.#queued) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      // A failed save is dropped: the next change saves the whole state again.
      this.#saving = this.#saving.then(() => store.set(this.#machine.clientId, this.#machine.exportSession()))
        .catch(() => {});
    });
  }
}
