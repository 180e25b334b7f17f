/**
 * What a broker sends, held back while a cluster's journal write is on its way (`ClusterLink.journal`): the
 * packets of a turn leave only once the changes they reveal are stored where another node finds them, as a
 * store's synchronous write comes before the acknowledgements it covers. Each connection's packets keep their
 * order.
 *
 * @module
 */

import type { Connection } from "./connection.ts";

/** Holds a broker's outgoing packets until the journal write they wait for is stored. */
export class OutputGate {
  readonly #send: (connection: Connection, bytes: Uint8Array) => void;
  /** The write the packets of the latest turns wait for; later writes settle after earlier ones. */
  #gate: Promise<void> | undefined;
  readonly #held = new Map<Connection, Uint8Array[]>();

  /** @param send Writes to a connection. */
  constructor(send: (connection: Connection, bytes: Uint8Array) => void) {
    this.#send = send;
  }

  /** Sends now, or once the pending write is stored. */
  pass(connection: Connection, bytes: Uint8Array): void {
    if (this.#gate === undefined) return this.#send(connection, bytes);
    const held = this.#held.get(connection);
    if (held === undefined) this.#held.set(connection, [bytes]);
    else held.push(bytes);
  }

  /** Holds what is sent from now on until `recorded` settles (it never rejects). */
  hold(recorded: Promise<void>): void {
    this.#gate = recorded;
    void recorded.then(() => {
      // A later write is waited for instead: it settles after this one.
      if (this.#gate !== recorded) return;
      this.#gate = undefined;
      const held = [...this.#held];
      this.#held.clear();
      for (const [connection, packets] of held) for (const bytes of packets) this.#send(connection, bytes);
    });
  }

  /** Settles once nothing is held for this connection. */
  async drained(connection: Connection): Promise<void> {
    while (this.#gate !== undefined && this.#held.has(connection)) await this.#gate;
  }
}
