/**
 * Packet identifiers: a pool that never hands out an identifier still in flight [MQTT-2.2.1-3].
 *
 * @module
 */

/**
 * Hands out packet identifiers from 1 to 65,535, round-robin, skipping those still in use.
 *
 * @example Allocate and release
 * ```ts
 * import assert from "node:assert/strict";
 * import { PacketIdPool } from "@x/mqtt/machine";
 * const pool = new PacketIdPool();
 * const id = pool.allocate();
 * assert.equal(id, 1);
 * pool.release(id);
 * assert.equal(pool.size, 0);
 * ```
 */
export class PacketIdPool {
  readonly #used = new Uint8Array(65_536);
  #next = 1;
  #count = 0;

  /** How many identifiers are in use. */
  get size(): number {
    return this.#count;
  }

  /**
   * Takes the next free identifier.
   *
   * @returns An identifier from 1 to 65,535, or `undefined` when all 65,535 are in use.
   */
  allocate(): number | undefined {
    if (this.#count === 65_535) return undefined;
    let id = this.#next;
    while (this.#used[id] === 1) id = id === 65_535 ? 1 : id + 1;
    this.#used[id] = 1;
    this.#count++;
    this.#next = id === 65_535 ? 1 : id + 1;
    return id;
  }

  /**
   * Marks an identifier as in use, as when restoring a session.
   *
   * @param id The identifier.
   * @returns `false` when it was already in use.
   */
  reserve(id: number): boolean {
    if (this.#used[id] === 1) return false;
    this.#used[id] = 1;
    this.#count++;
    return true;
  }

  /**
   * Whether an identifier is in use.
   *
   * @param id The identifier.
   * @returns `true` when it is allocated or reserved.
   */
  has(id: number): boolean {
    return this.#used[id] === 1;
  }

  /**
   * Returns an identifier to the pool; releasing a free identifier does nothing.
   *
   * @param id The identifier.
   */
  release(id: number): void {
    if (this.#used[id] !== 1) return;
    this.#used[id] = 0;
    this.#count--;
  }

  /** Frees every identifier. */
  clear(): void {
    this.#used.fill(0);
    this.#count = 0;
  }
}
