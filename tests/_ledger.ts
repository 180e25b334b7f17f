/**
 * What a publisher was promised and what a subscriber got, for the tests that cut connections or kill the
 * broker: messages are `topic:seq`, QoS 1 on `…/q1` and QoS 2 on `…/q2`; "lost" is resolved and never
 * received, a duplicate is a second copy of one.
 */

import { settledWithin, sleep } from "./_helpers.ts";

/** A stream of numbered messages from one publisher to one subscriber, and its accounting. */
export class Ledger {
  /** Messages whose publish resolved (acknowledged), as `topic:seq`. */
  readonly resolved: Set<string> = new Set();
  /** Copies received per message. */
  readonly received: Map<string, number> = new Map();
  /** The first reasons publishes were rejected for, and whatever else a test notes. */
  readonly errors: string[] = [];
  /** Publishes that rejected. */
  rejected = 0;
  /** Publishes made. */
  sent = 0;
  readonly #pending = new Set<Promise<void>>();

  /** Notes why something went wrong (the first 20). */
  note(what: string): void {
    if (this.errors.length < 20) this.errors.push(what);
  }

  /** Counts a message the subscriber got. */
  receive(topic: string, payload: string): void {
    const key = `${topic}:${payload}`;
    this.received.set(key, (this.received.get(key) ?? 0) + 1);
  }

  /**
   * Publishes seq 0, 1, … while `more(seq)`, alternately at QoS 1 to `PREFIX/q1` and QoS 2 to `PREFIX/q2`,
   * with at most `window` publishes unsettled and `paceMs` between two.
   */
  async publish(
    prefix: string,
    publish: (topic: string, payload: string, qos: 1 | 2) => Promise<void>,
    options: { more: (seq: number) => boolean; window: number; paceMs?: number },
  ): Promise<void> {
    const pending = this.#pending;
    for (let seq = 0; options.more(seq); seq++) {
      // Bounded: a publish that never settles is caught by `settle`, not by waiting here forever.
      while (pending.size >= options.window) await settledWithin(Promise.race(pending), 1000);
      const qos = seq % 2 === 0 ? 1 : 2;
      const topic = `${prefix}/q${qos}`;
      const key = `${topic}:${seq}`;
      this.sent = seq + 1;
      const settled: Promise<void> = publish(topic, String(seq), qos).then(
        () => void this.resolved.add(key),
        (error) => {
          this.rejected++;
          this.note(`publish ${key} rejected: ${(error as Error).message}`);
        },
      ).finally(() => pending.delete(settled));
      pending.add(settled);
      if ((options.paceMs ?? 0) > 0) await sleep(options.paceMs as number);
    }
  }

  /**
   * Waits up to `ms` for every publish to settle.
   *
   * @returns How many did not.
   */
  async settle(ms: number): Promise<number> {
    const by = performance.now() + ms;
    while (this.#pending.size > 0 && performance.now() < by) {
      await settledWithin(Promise.race(this.#pending), 100);
    }
    return this.#pending.size;
  }

  /** Resolved messages never received, in publishing order. */
  missing(): string[] {
    const seq = (key: string) => Number(key.slice(key.lastIndexOf(":") + 1));
    return [...this.resolved].filter((key) => !this.received.has(key)).sort((a, b) => seq(a) - seq(b));
  }

  /** Waits up to `ms` for the subscriber to catch up, then a moment more for late duplicates. */
  async drain(ms: number): Promise<void> {
    const by = performance.now() + ms;
    while (this.missing().length > 0 && performance.now() < by) await sleep(50);
    await sleep(300);
  }

  /** Extra copies received, of QoS 1 and of QoS 2 messages. */
  duplicates(): { qos1: number; qos2: number } {
    let qos1 = 0;
    let qos2 = 0;
    for (const [key, times] of this.received) {
      if (times < 2) continue;
      if (key.slice(0, key.lastIndexOf(":")).endsWith("/q2")) qos2 += times - 1;
      else qos1 += times - 1;
    }
    return { qos1, qos2 };
  }
}
