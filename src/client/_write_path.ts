/**
 * The async client's write path: hands the machine's outbound bytes to the transport's writer in order,
 * coalesces a turn's commands and taken messages' acknowledgements into few writes, and settles QoS 0 publishes
 * once the write carrying them is done. It reads nothing and dispatches no events: the client's flush does.
 *
 * @module
 */

import { MqttError, ReasonCode } from "../errors.ts";
import type { ClientMachine } from "../machine/client_machine.ts";
import type { Transport } from "../transport/transport.ts";
import type { Clock } from "./_clock.ts";
import type { Waiter } from "./_waiter.ts";

/**
 * How many acknowledgements of taken messages wait for a flush at most (see `WritePath.acknowledged`). Each one
 * waiting is a message the broker sends again if the connection drops now (a QoS 1 duplicate): 64 made about
 * five times MQTT.js's duplicates under cut connections (`scripts/chaos.ts`, mosquitto), 16 makes about as
 * many, for some 10-15 % of receive throughput at QoS 1.
 */
const ACK_BATCH = 16;
/** How many flushes of one turn of the event loop run as microtasks (see `WritePath.flush`). */
const MICROTASK_FLUSHES = 4;
/** How often settling QoS 0 publishes checks that the event loop still turns (see `WritePath.#settleWritten`). */
const YIELD_EVERY_MS = 5;
/**
 * Runs `callback` on a later turn of the event loop: with `setImmediate` where the runtime has it (Deno, Bun,
 * Node), since a chained `setTimeout(…, 0)` is clamped to 1–4 ms there; else (browsers) with a timer.
 */
const nextTurn: (callback: () => void) => void = (() => {
  const immediate = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;
  return typeof immediate === "function"
    ? (callback: () => void) => void immediate(callback)
    : (callback: () => void) => void setTimeout(callback, 0);
})();

/** Writes the machine's bytes to the current transport and settles what waits on those writes. */
export class WritePath {
  readonly #machine: ClientMachine;
  readonly #clock: Clock;
  /** The client's whole flush: transmit, dispatch the machine's events, set the timer. */
  readonly #flushNow: () => void;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #writing: Promise<void> = Promise.resolve();
  /** Acknowledgements queued in the machine since the last flush, and the timer that sends them. */
  #acksWaiting = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** QoS 0 publishes of this turn, settled once the write that carries them is done. */
  #awaitingWrite: Waiter<void>[] = [];
  /** When settling QoS 0 publishes last checked that the event loop turns. */
  #lastYieldCheck = 0;
  /** Whether a timer ran since that check (set by the probe it scheduled), i.e. the event loop turns. */
  #loopTurned = true;
  #flushQueued = false;
  /** Flushes run as microtasks in this turn of the event loop, reset by a callback on the next turn. */
  #flushesThisTurn = 0;
  readonly #newTurn = () => this.#flushesThisTurn = 0;
  /** The microtask of {@linkcode WritePath.flush}, made once. */
  readonly #queuedFlush = () => {
    this.#flushQueued = false;
    this.#flushNow();
  };

  /**
   * @param machine The machine whose bytes it writes.
   * @param clock The machine's clock.
   * @param flushNow The client's flush, which calls {@linkcode WritePath.transmit} among other things.
   */
  constructor(machine: ClientMachine, clock: Clock, flushNow: () => void) {
    this.#machine = machine;
    this.#clock = clock;
    this.#flushNow = flushNow;
  }

  /** Settles once every write handed over so far has (its failure is handled here; never rejects on it). */
  get writing(): Promise<void> {
    return this.#writing;
  }

  /** Writes to a new connection's transport from now on. */
  attach(transport: Transport): void {
    this.#writer = transport.writable.getWriter();
    this.#writing = Promise.resolve();
  }

  /** Stops writing (the connection is gone) and closes its transport once the writes handed over are done. */
  detach(transport: Transport | undefined): void {
    this.#writer = undefined;
    if (transport !== undefined) void this.#writing.finally(() => transport.close()).catch(() => {});
  }

  /**
   * Schedules a flush, so that the commands of one microtask coalesce into one write. The first few of a turn
   * of the event loop run as microtasks, at once; past those, the rest of the turn's commands wait for one flush
   * on the next turn: a producer that publishes one message per microtask (a consumer handing on what it
   * receives) would otherwise make one write, one system call, per message.
   */
  flush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    if (this.#flushesThisTurn < MICROTASK_FLUSHES) {
      if (this.#flushesThisTurn++ === 0) nextTurn(this.#newTurn);
      queueMicrotask(this.#queuedFlush);
    } else nextTurn(this.#queuedFlush);
  }

  /** Settles a QoS 0 publish once the write of this turn's flush is done (or rejects when there is none). */
  settleOnWrite(waiter: Waiter<void>): void {
    this.#awaitingWrite.push(waiter);
  }

  /**
   * Counts an acknowledgement the machine just queued. Acknowledgements of taken messages leave in batches: a
   * consumer takes one message per microtask, so a flush per acknowledgement would make one write per PUBACK.
   * They leave with the next flush, after {@linkcode ACK_BATCH} of them, or on the next turn of the event loop,
   * whichever comes first.
   */
  acknowledged(): void {
    if (++this.#acksWaiting >= ACK_BATCH) {
      this.flush();
      return;
    }
    this.#ackTimer ??= setTimeout(() => {
      this.#ackTimer = undefined;
      if (this.#acksWaiting > 0) this.#flushNow();
    }, 0);
  }

  /** Stops the timer of waiting acknowledgements (the client is closed). */
  stop(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  /** Writes every packet the machine has ready and settles the QoS 0 publishes that waited for it. */
  transmit(): void {
    this.#acksWaiting = 0;
    let last: Promise<void> | undefined;
    for (
      let bytes = this.#machine.pollTransmit();
      bytes !== undefined;
      bytes = this.#machine.pollTransmit()
    ) {
      const writer = this.#writer;
      if (writer === undefined) continue;
      // The stream keeps writes in order: hand each over at once instead of after the previous one settled.
      last = writer.write(bytes);
      this.#writing = last.catch((error) => {
        if (this.#writer === writer) {
          this.#machine.handleClose(this.#clock.now(), error);
          this.#flushNow();
        }
      });
    }
    const waiters = this.#awaitingWrite;
    if (waiters.length > 0) {
      this.#awaitingWrite = [];
      const lost = (cause?: unknown) =>
        new MqttError(ReasonCode.UnspecifiedError, "Cannot publish: the connection was lost", {
          source: "transport",
          cause,
        });
      // No write means the connection went down before the turn ended and its bytes were dropped.
      if (last === undefined) { for (const waiter of waiters) waiter.reject(lost()); }
      else {
        last.then(() => this.#settleWritten(waiters), (error) => {
          const failure = lost(error);
          for (const waiter of waiters) waiter.reject(failure);
        });
      }
    }
  }

  /**
   * Settles QoS 0 publishes whose write is done. A socket takes a write at once while it has room, so a loop
   * that awaits each QoS 0 publish (`for (;;) await client.publish(…)`) could run on microtasks alone and
   * starve timers and reads. Every few milliseconds this checks whether a timer ran since the last check (a
   * probe timer it scheduled then); when none did, the publishes settle on the next turn of the event loop
   * instead of at once, which lets the loop turn. When the loop turns anyway (writes that settle later, as on
   * Deno), nothing is deferred.
   */
  #settleWritten(waiters: readonly Waiter<void>[]): void {
    const now = this.#clock.now();
    if (now - this.#lastYieldCheck >= YIELD_EVERY_MS) {
      this.#lastYieldCheck = now;
      if (!this.#loopTurned) {
        nextTurn(() => {
          for (const waiter of waiters) waiter.resolve();
        });
        return;
      }
      this.#loopTurned = false;
      setTimeout(() => this.#loopTurned = true, 0);
    }
    for (const waiter of waiters) waiter.resolve();
  }
}
