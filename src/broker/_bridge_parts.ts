/**
 * The small parts of a bridge (`bridge.ts`): the window of messages on their way, the echoes a 3.1.1 remote
 * without the bridge bit sends back, how topics and properties cross, and an abortable sleep.
 *
 * @module
 */

import type { PublishProperties } from "../codec/packet.ts";

/** A count of permits: at most `limit` messages on their way in one direction. */
export class Window {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(limit: number) {
    this.#free = limit;
  }
  /** How many wait for a permit. */
  get busy(): number {
    return this.#waiting.length;
  }
  /** A permit now (`undefined`), or a promise of one. */
  acquire(): Promise<void> | undefined {
    if (this.#free > 0) {
      this.#free--;
      return undefined;
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  /** Gives a permit back, to the first waiting if any. */
  release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#free++;
  }
}

/** The most echoes expected at once. */
const MAX_ECHOES = 10_000;
/** How long an expected echo is waited for before it is forgotten. */
const ECHO_MS = 30_000;

/**
 * The messages a bridge sent to a 3.1.1 remote that takes no bridge bit, which will come back on a `both`
 * topic: each is dropped once when it does.
 */
export class Echoes {
  readonly #byTopic = new Map<string, { payload: Uint8Array; at: number }[]>();
  #count = 0;

  /** Remembers a message sent out, by its topic there. */
  expect(topic: string, payload: Uint8Array, now: number): void {
    // Echoes that never come (the remote routes none back) are forgotten in bulk past the bound: one missed
    // costs a duplicate here, not a loop, since this side's subscriptions take none of the bridge's own.
    if (++this.#count > MAX_ECHOES) {
      this.#byTopic.clear();
      this.#count = 1;
    }
    const list = this.#byTopic.get(topic);
    if (list === undefined) this.#byTopic.set(topic, [{ payload, at: now }]);
    else {
      while (list.length > 0 && now - list[0].at > ECHO_MS) {
        list.shift();
        this.#count--;
      }
      list.push({ payload, at: now });
    }
  }

  /** Whether a message that came in is the echo of one sent out; it is then forgotten. */
  take(topic: string, payload: Uint8Array, now: number): boolean {
    const list = this.#byTopic.get(topic);
    if (list === undefined) return false;
    const index = list.findIndex((e) => now - e.at <= ECHO_MS && sameBytes(e.payload, payload));
    if (index < 0) return false;
    list.splice(index, 1);
    this.#count--;
    if (list.length === 0) this.#byTopic.delete(topic);
    return true;
  }
}

/** A topic from one side on the other: one prefix off, the other on. */
export function rename(topic: string, from: string | undefined, to: string | undefined): string {
  const stripped = from !== undefined && topic.startsWith(from) ? topic.slice(from.length) : topic;
  return (to ?? "") + stripped;
}

/** The MQTT 5 properties a message keeps across the bridge (not its alias, nor its subscription's ids). */
export function forwarded(properties: PublishProperties): PublishProperties | undefined {
  const { topicAlias: _alias, subscriptionIdentifiers: _ids, ...kept } = properties;
  return Object.keys(kept).length === 0 ? undefined : kept;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Resolves after `ms`, or at once when `signal` aborts; leaves no timer behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
