/**
 * Races an attempt to open something against an abort signal: rejects with `signal.reason` as soon as the
 * signal aborts, and disposes of whatever the attempt opens too late.
 *
 * @param attempt The pending open.
 * @param signal Aborts the wait.
 * @param dispose Closes a result that arrives after the abort.
 * @returns The attempt's result, unless aborted first.
 */
export function raceAbort<T>(
  attempt: Promise<T>,
  signal: AbortSignal | undefined,
  dispose: (value: T) => unknown,
): Promise<T> {
  if (signal === undefined) return attempt;
  if (signal.aborted) {
    attempt.then(dispose, () => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      attempt.then(dispose, () => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    attempt.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) return;
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
