/**
 * Sequence bookkeeping for `scripts/bench/client.ts`: every benchmark message carries a sequence number
 * (u32, big-endian, at the start of its payload, from 1), and whoever receives the messages counts how often
 * each number arrived, so that losses and duplicates show instead of hiding in a rate.
 *
 * @module
 */

/** Reads the sequence number at the start of a payload. */
export function readSeq(payload: Uint8Array, offset = 0): number {
  return ((payload[offset] << 24) | (payload[offset + 1] << 16) | (payload[offset + 2] << 8) |
    payload[offset + 3]) >>> 0;
}

/** Writes a sequence number at the start of a payload. */
export function writeSeq(payload: Uint8Array, seq: number): void {
  payload[0] = seq >>> 24;
  payload[1] = (seq >>> 16) & 0xff;
  payload[2] = (seq >>> 8) & 0xff;
  payload[3] = seq & 0xff;
}

/** What {@linkcode SeqTracker.check} found for the numbers 1 … n. */
export interface SeqCheck {
  /** Numbers in 1 … n that never arrived. */
  missing: number;
  /** Arrivals beyond the first of a number. */
  duplicates: number;
  /** Arrivals of numbers outside 1 … n (0 or above n): nobody sent them. */
  foreign: number;
  /** The first few missing ranges, as `from-to`. */
  gaps: string[];
}

/** Counts the arrivals of each sequence number (saturating at 255). */
export class SeqTracker {
  /** All arrivals. */
  received = 0;
  #counts = new Uint8Array(1 << 16);
  #duplicates = 0;
  #foreign = 0;

  /**
   * Records one arrival.
   *
   * @param seq The message's sequence number.
   */
  add(seq: number): void {
    this.received++;
    if (seq === 0 || seq > 0x7fff_ffff) {
      this.#foreign++;
      return;
    }
    if (seq >= this.#counts.length) {
      let size = this.#counts.length;
      while (size <= seq) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.#counts);
      this.#counts = grown;
    }
    const count = this.#counts[seq];
    if (count > 0) this.#duplicates++;
    if (count < 255) this.#counts[seq] = count + 1;
  }

  /**
   * Compares the arrivals with the numbers 1 … n that were sent.
   *
   * @param n How many messages were sent.
   * @returns What is missing, repeated or foreign.
   */
  check(n: number): SeqCheck {
    const counts = this.#counts;
    let missing = 0;
    let foreign = this.#foreign;
    const gaps: string[] = [];
    let gapStart = 0;
    for (let seq = 1; seq <= n; seq++) {
      const arrived = seq < counts.length && counts[seq] > 0;
      if (!arrived) {
        missing++;
        if (gapStart === 0) gapStart = seq;
      } else if (gapStart !== 0) {
        if (gaps.length < 5) gaps.push(`${gapStart}-${seq - 1}`);
        gapStart = 0;
      }
    }
    if (gapStart !== 0 && gaps.length < 5) gaps.push(`${gapStart}-${n}`);
    for (let seq = n + 1; seq < counts.length; seq++) foreign += counts[seq];
    return { missing, duplicates: this.#duplicates, foreign, gaps };
  }
}
