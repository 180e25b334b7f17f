import type { Listener, Transport } from "../transport/transport.ts";

/**
 * The callback-to-iterator half of a listener: the runtime pushes accepted transports, the iterator hands
 * them out in order, and `end()` finishes the iteration and closes transports nobody took.
 */
export class AcceptQueue {
  #items: Transport[] = [];
  #waiters: ((result: IteratorResult<Transport, undefined>) => void)[] = [];
  #ended = false;

  /** Whether {@linkcode AcceptQueue.end} was called. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Hands an accepted transport to the next reader, or keeps it until one comes.
   *
   * @param transport The accepted connection; closed at once if the queue has ended.
   */
  push(transport: Transport): void {
    if (this.#ended) {
      void transport.close();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter({ done: false, value: transport });
    else this.#items.push(transport);
  }

  /** Ends the iteration and closes every transport still waiting to be taken. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) waiter({ done: true, value: undefined });
    for (const transport of this.#items.splice(0)) void transport.close();
  }

  /**
   * Builds the {@linkcode Listener} over this queue.
   *
   * @param port The bound port.
   * @param hostname The bound address.
   * @param close Stops the runtime's server; the queue ends first.
   * @returns The listener.
   */
  listener(port: number, hostname: string, close: () => Promise<void>): Listener {
    const next = (): Promise<IteratorResult<Transport, undefined>> => {
      const item = this.#items.shift();
      if (item !== undefined) return Promise.resolve({ done: false, value: item });
      if (this.#ended) return Promise.resolve({ done: true, value: undefined });
      return new Promise((resolve) => this.#waiters.push(resolve));
    };
    const end = (): void => this.end();
    let closing: Promise<void> | undefined;
    return {
      port,
      hostname,
      close(): Promise<void> {
        end();
        closing ??= close();
        return closing;
      },
      [Symbol.asyncIterator](): AsyncIterator<Transport, undefined> {
        return {
          next,
          return(): Promise<IteratorResult<Transport, undefined>> {
            return Promise.resolve({ done: true, value: undefined });
          },
        };
      },
    };
  }
}
