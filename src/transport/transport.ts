/**
 * The seam between the protocol and the network: a pair of web streams.
 *
 * @module
 */

/**
 * A byte stream to one peer. A `Deno.Conn` already satisfies it.
 *
 * @example A transport from any pair of streams
 * ```ts
 * import type { Transport } from "@x/mqtt/transport";
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const loopback: Transport = { readable, writable, close: () => writable.close() };
 * console.log(typeof loopback.close); // "function"
 * ```
 */
export interface Transport {
  /** Bytes from the peer. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Closes both directions; idempotent, always settles. */
  close(): void | Promise<void>;
  /** The peer's address as `host:port` (IPv6 as `[::1]:port`), when the transport knows it. */
  readonly remoteAddress?: string;
}

/** Accepted connections, as transports, until closed. */
export interface Listener extends AsyncIterable<Transport> {
  /** The port it listens on (useful after asking for port 0). */
  readonly port: number;
  /** The address it listens on. */
  readonly hostname: string;
  /** Stops accepting; connections already accepted stay open. */
  close(): Promise<void>;
}
