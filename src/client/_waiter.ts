/**
 * Promises settled from outside and abort signals wired to them, for the async client's parts. Holds no state
 * of a client; the parts keep their own waiters.
 *
 * @module
 */

/** The two ends of a promise that someone else settles. */
export interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/** Settles a promise from outside, once. */
export function deferred<T>(): { promise: Promise<T> } & Waiter<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects with the signal's reason when it aborts; returns a function that stops listening. */
export function onAbort(signal: AbortSignal | undefined, reject: (reason: unknown) => void): () => void {
  if (signal === undefined) return () => {};
  if (signal.aborted) {
    reject(signal.reason);
    return () => {};
  }
  const listener = () => reject(signal.reason);
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}
