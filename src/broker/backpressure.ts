/**
 * Backpressure on the broker's write path: counts each connection's unwritten bytes, pauses the reads of the
 * connections feeding a client that is behind, and marks or disconnects slow consumers. It owns no socket and
 * routes nothing: it only pauses and resumes reads, and closes a connection through its session.
 *
 * @module
 */

import { type BrokerOptions, log } from "./broker_options.ts";
import { type Connection, who } from "./connection.ts";

/** The watermarks, timers and paused reads of one broker's connections (see `BrokerOptions.backpressureBytes`). */
export class Backpressure {
  readonly #options: BrokerOptions;
  /** Flushes a connection, then whatever the broker machine gave output to. */
  readonly #flushAll: (connection: Connection) => void;
  readonly #maxOutgoingBytes: number;
  readonly #backpressureBytes: number;
  /** Where a client that is behind counts as caught up. */
  readonly #lowWater: number;
  /** The connection whose bytes, or whose PUBLISH, are being handled: what a client that is behind holds. */
  source: Connection | undefined;

  /**
   * Reads the options.
   *
   * @param options The broker's options.
   * @param flushAll The broker's flush of a connection and of all it fed.
   * @throws {RangeError} When a size or time option is not more than 0.
   */
  /** How many slow consumers were disconnected. */
  slowDisconnects = 0;

  constructor(options: BrokerOptions, flushAll: (connection: Connection) => void) {
    this.#options = options;
    this.#flushAll = flushAll;
    this.#maxOutgoingBytes = options.maxOutgoingBytes ?? 16 * 1024 * 1024;
    this.#backpressureBytes = Math.min(options.backpressureBytes ?? 1024 * 1024, this.#maxOutgoingBytes);
    this.#lowWater = this.#backpressureBytes / 2;
    for (
      const key of ["maxOutgoingBytes", "backpressureBytes", "maxPublisherPause", "maxWriteStall"] as const
    ) {
      const value = options[key];
      if (value !== undefined && !(value > 0)) {
        throw new RangeError(`Cannot use ${key} ${value}: expected more than 0`);
      }
    }
  }

  /**
   * Counts `size` bytes about to be handed to the connection's transport, holding its publishers or marking
   * it behind past the watermarks.
   *
   * @returns `false` when the connection was closed for its backlog instead: do not write.
   */
  queue(connection: Connection, size: number): boolean {
    const lowWater = this.#lowWater;
    const highWater = this.#maxOutgoingBytes;
    const before = connection.pendingBytes;
    connection.pendingBytes += size;
    if (before <= lowWater && connection.pendingBytes > lowWater) {
      connection.progressAt = performance.now();
    }
    if (connection.pendingBytes > 2 * highWater && !connection.closed) {
      // Even acknowledgements and queued messages pile up: the client must not grow the broker's memory.
      this.disconnectSlow(connection);
      return false;
    }
    if (
      connection.pendingBytes > this.#backpressureBytes && !connection.session.congested && !connection.closed
    ) {
      if (connection.pendingBytes > highWater) this.behind(connection);
      else this.#hold(connection);
    }
    return true;
  }

  /** `size` bytes that did not go out at once were written: a client below the low watermark caught up. */
  wrote(connection: Connection, size: number): void {
    connection.pendingBytes -= size;
    if (connection.pendingBytes > this.#lowWater) {
      connection.progressAt = performance.now();
      return;
    }
    connection.progressAt = 0;
    if (connection.closed) return;
    if (connection.holdTimer !== undefined) this.release(connection);
    const session = connection.session;
    if (session.congested) {
      clearTimeout(connection.slowTimer);
      connection.slowTimer = undefined;
      const dropped = session.droppedWhileCongested;
      log(
        this.#options,
        "info",
        `Client "${who(connection)}" caught up (${dropped} QoS 0 messages dropped in all)`,
        { client: who(connection), event: "caught_up" },
      );
      session.setCongested(performance.now(), false);
      this.#flushAll(connection);
    }
  }

  /**
   * A client is behind, by more than `backpressureBytes`: the connection whose bytes are being handled, which
   * feeds it, is read no more until it caught up, or until `maxPublisherPause` passed and it counts as behind.
   * One that counted as behind within 10 times that counts as behind at once.
   */
  #hold(connection: Connection): void {
    if (connection.holdTimer === undefined) {
      const now = performance.now();
      // Pausing its publishers for a client that took nothing since its backlog began would be no use.
      const stalled = now - connection.progressAt >= (this.#options.maxWriteStall ?? 100);
      if (stalled || now < connection.noHoldUntil) {
        if (stalled) connection.noHoldUntil = now + 10 * (this.#options.maxPublisherPause ?? 1000);
        this.behind(connection);
        return;
      }
      connection.holdSince = now;
      this.#checkHold(connection);
    }
    const source = this.source;
    if (source === undefined || source.closed) return;
    const holding = connection.holding ??= new Set();
    if (holding.has(source)) return;
    holding.add(source);
    if (source.heldBy++ === 0) source.pauseReads();
  }

  /**
   * While `connection` holds connections paused: it counts as behind once its transport took nothing for
   * `maxWriteStall` (a client that stopped reading), or once it held them for `maxPublisherPause`; then it may
   * not hold any again for 10 times that.
   */
  #checkHold(connection: Connection): void {
    const stall = this.#options.maxWriteStall ?? 100;
    const pause = this.#options.maxPublisherPause ?? 1000;
    const now = performance.now();
    const due = Math.min(connection.progressAt + stall, connection.holdSince + pause);
    connection.holdTimer = setTimeout(() => {
      connection.holdTimer = undefined;
      if (connection.closed || connection.pendingBytes <= this.#lowWater) {
        this.release(connection);
        return;
      }
      const now = performance.now();
      if (now - connection.progressAt >= stall || now - connection.holdSince >= pause) {
        connection.noHoldUntil = now + 10 * pause;
        this.behind(connection);
      } else this.#checkHold(connection);
    }, Math.max(1, due - now));
  }

  /** Reads again the connections that `connection` held paused. */
  release(connection: Connection): void {
    clearTimeout(connection.holdTimer);
    connection.holdTimer = undefined;
    const holding = connection.holding;
    if (holding === undefined) return;
    connection.holding = undefined;
    for (const source of holding) if (--source.heldBy === 0) source.resumeReads();
  }

  /** A client is behind: drop what may be dropped, queue the rest, and give it `slowConsumerTimeout` to catch up. */
  behind(connection: Connection): void {
    this.release(connection);
    const session = connection.session;
    log(
      this.#options,
      "warn",
      `Client "${
        who(connection)
      }" is behind by ${connection.pendingBytes} bytes: dropping its QoS 0 messages`,
      { client: who(connection), event: "behind" },
    );
    session.setCongested(performance.now(), true);
    connection.slowTimer = setTimeout(() => {
      connection.slowTimer = undefined;
      if (!connection.closed && session.congested) this.disconnectSlow(connection);
    }, this.#options.slowConsumerTimeout ?? 30_000);
  }

  /** Closes the connection of a client that does not read, so that it holds up no one and no memory. */
  disconnectSlow(connection: Connection): void {
    this.slowDisconnects++;
    log(
      this.#options,
      "warn",
      `Disconnecting slow consumer "${who(connection)}": ${connection.pendingBytes} bytes unsent`,
      { client: who(connection), event: "slow_consumer" },
    );
    clearTimeout(connection.slowTimer);
    connection.slowTimer = undefined;
    connection.session.handleClose(performance.now(), new Error("slow consumer"));
    void connection.transport.close();
    this.#flushAll(connection);
  }
}
