/**
 * Time for the async client's machine: a monotonic clock that counts suspensions, and the one timer that wakes
 * the machine at its `pollTimeout()`. It never sends anything itself; the client's flush does, once woken.
 *
 * @module
 */

import type { ClientMachine } from "../machine/client_machine.ts";

/** The longest the keep-alive timer sleeps, so that a resume from suspension is noticed soon. */
const WAKE_INTERVAL_MS = 5000;
/** A wall-clock jump this much larger than the monotonic clock's is taken as a suspension. */
const SUSPENSION_THRESHOLD_MS = 1000;

/**
 * Milliseconds on a monotonic clock that also counts time the process spent suspended: the monotonic clock
 * stops during a suspension on some systems, so a jump of the wall clock that the monotonic clock did not see
 * is added on.
 */
export class Clock {
  #lastWall = Date.now();
  #lastMonotonic = performance.now();
  #suspended = 0;

  /** The time now, in milliseconds. */
  now(): number {
    const monotonic = performance.now();
    const wall = Date.now();
    const skipped = (wall - this.#lastWall) - (monotonic - this.#lastMonotonic);
    if (skipped > SUSPENSION_THRESHOLD_MS) this.#suspended += skipped;
    this.#lastWall = wall;
    this.#lastMonotonic = monotonic;
    return monotonic + this.#suspended;
  }
}

/** The timer that runs the machine's `handleTimeout()` when its earliest deadline (keep-alive, CONNACK) is due. */
export class MachineTimer {
  readonly #machine: ClientMachine;
  readonly #clock: Clock;
  readonly #flush: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When `#timer` fires, on the clock's time. */
  #timerAt = 0;

  /**
   * @param machine The machine whose deadlines it keeps.
   * @param clock The clock the machine runs on.
   * @param flush Sends what the timeout produced and handles its events.
   */
  constructor(machine: ClientMachine, clock: Clock, flush: () => void) {
    this.#machine = machine;
    this.#clock = clock;
    this.#flush = flush;
  }

  /** Sets the timer for the machine's next deadline, or clears it when there is none. */
  schedule(): void {
    const at = this.#machine.pollTimeout();
    if (at === undefined) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    // Wake at least every few seconds: after a suspension (a sleeping laptop) the clock jumps forward and the
    // overdue keep-alive runs at once instead of waiting for a timer that does not count the time asleep.
    const now = this.#clock.now();
    const wakeAt = now + Math.min(Math.max(0, at - now), WAKE_INTERVAL_MS);
    // A timer due no later than needed stays: waking early is harmless (the machine ignores an early
    // timeout and the timer is set again), and traffic moves the keep-alive deadline on every packet, so
    // replacing the timer each time would cost a clearTimeout and a setTimeout per message.
    if (this.#timer !== undefined && this.#timerAt <= wakeAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = wakeAt;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#machine.handleTimeout(this.#clock.now());
      this.#flush();
    }, wakeAt - now);
  }

  /** Clears the timer: the connection is gone. */
  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Clears the timer when the client closes. Unlike {@linkcode MachineTimer.cancel} it keeps the cleared
   * timer's due time, so a later `schedule()` (an authentication hook settling after the close) sets a timer
   * again only for an earlier deadline, as the client always did.
   */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}
