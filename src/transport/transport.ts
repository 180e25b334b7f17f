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
  /**
   * The same connection without streams, when the transport offers it: a server holding many connections
   * (the broker) uses it to spare each one its pair of streams. A transport that has it creates `readable`
   * and `writable` only when first used; use one or the other, never both.
   */
  readonly direct?: DirectTransport;
}

/** Where a {@linkcode DirectTransport} delivers what it reads. */
export interface TransportSink {
  /** Bytes from the peer, in order; the chunk belongs to the sink. */
  data(chunk: Uint8Array): void;
  /** The end of the bytes from the peer, once: without an error when the peer half-closed or closed. */
  end(error?: unknown): void;
}

/**
 * A callback interface to a transport's connection, the alternative to its streams (see
 * {@linkcode Transport.direct}).
 *
 * @example Echo what arrives, without streams
 * ```ts
 * import type { Transport } from "@x/mqtt/transport";
 * function echo(transport: Transport): void {
 *   const direct = transport.direct;
 *   if (direct === undefined) throw new Error("this transport has only streams");
 *   direct.start({
 *     data: (chunk) => void direct.write(chunk)?.catch(() => transport.close()),
 *     end: () => direct.end(),
 *   });
 * }
 * console.log(typeof echo); // "function"
 * ```
 */
export interface DirectTransport {
  /**
   * Starts delivering what is read to `sink` (what arrived before is delivered first). Call it once.
   *
   * @param sink Receives the chunks, then the end.
   */
  start(sink: TransportSink): void;
  /**
   * Writes a chunk after the ones before it.
   *
   * @param chunk The bytes; not modified afterwards.
   * @returns `undefined` when the connection took the chunk at once, else a promise that resolves once it
   * did, or rejects when the connection closed first.
   * @throws {Error} When the connection is already closed.
   */
  write(chunk: Uint8Array): Promise<void> | undefined;
  /** Half-closes: sends FIN once everything written went out, and keeps reading. */
  end(): void;
  /**
   * Stops reading from the peer until {@linkcode DirectTransport.resume}, so that the peer's writes back up
   * (TCP backpressure). A chunk already read may still reach the sink; no further read starts. The end of the
   * reads still reaches the sink when the connection is closed. May be called from within `sink.data`;
   * idempotent.
   */
  pause(): void;
  /** Reads again after {@linkcode DirectTransport.pause}; idempotent. */
  resume(): void;
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
