/**
 * TCP and TLS transports on Deno: `Deno.connect`, `Deno.connectTls`, `Deno.listen` and `Deno.listenTls`.
 *
 * A `Deno.Conn` already has the shape of a {@linkcode Transport}, but not its behaviour on half-close:
 * `Deno.Conn.readable` closes the whole connection once the peer half-closes, and `Deno.Conn.writable.close()`
 * closes both directions. So this module reads with `conn.read()` into fresh buffers (small reads are copied
 * out), writes with `conn.write()`, half-closes with `closeWrite()`, makes `close()` idempotent, and finishes
 * TLS handshakes before handing connections out, so a certificate that fails verification rejects the connect.
 *
 * @module
 */

import type { DirectTransport, Listener, Transport, TransportSink } from "../../transport/transport.ts";
import { raceAbort } from "../_abort.ts";
import { hostPort } from "../_address.ts";
import type { TcpConnectOptions, TcpListenOptions, TlsConnectOptions, TlsListenOptions } from "../types.ts";

/** The largest buffer a read fills: what a busy connection reads into. */
const READ_SIZE = 65536;
/** The first read's: a CONNECT with a user name and a password fits. */
const FIRST_READ_SIZE = 256;
/**
 * The smallest: what an idle connection's pending read holds after small reads (a PINGREQ, a small PUBLISH
 * fit; a larger packet takes a second read, then the buffer grows). Typed arrays up to 64 bytes live in V8's
 * heap, and Deno moves a read's buffer out of it anyway.
 */
const MIN_READ_SIZE = 64;
/** Reads up to this size are copied out, so the read buffer can be used again; larger ones are handed out. */
const COPY_BELOW = 16384;

/**
 * The size of the next read's buffer after a read of `n` bytes into `size`: the largest when the read filled
 * its buffer (more is waiting), a fourth of it or less when reads stay small, so that ten thousand idle
 * connections each hold 64 bytes, not 64 KiB, while a busy one reads 64 KiB at a time.
 */
function nextReadSize(n: number, size: number): number {
  if (n >= size) return READ_SIZE;
  if (n * 4 < size) return Math.max(MIN_READ_SIZE, Math.min(READ_SIZE, 2 ** Math.ceil(Math.log2(n * 2 + 1))));
  return size;
}

/** Writes are gathered into one buffer up to this size while a write is in flight; larger chunks go alone. */
const GATHER_LIMIT = 262144;

/** Resolves or rejects a batch of writes. */
interface Batch {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function batch(): Batch {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may wait for a batch (the broker keeps only the last one): its failure is reported to the writer.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * One connection, as a pair of streams made on first use or through the transport's `direct` callbacks (the
 * broker's way: an idle connection then holds one pending read and its fields, no streams). Its own readable,
 * because `Deno.Conn.readable` closes the whole connection when the peer half-closes, so a reply could no
 * longer be written; half-close on `writable.close()` / `end()`; idempotent close; writes that reject after
 * close; the peer's address. Chunks written while a write is in flight leave together in one `conn.write`.
 */
class ConnState implements Transport, DirectTransport {
  readonly remoteAddress?: string;
  readonly #conn: Deno.Conn;
  #buffer = new Uint8Array(FIRST_READ_SIZE);
  #closed = false;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;
  #sink: TransportSink | undefined;
  /** Whether a write is in flight. */
  #writing = false;
  /** Chunks waiting for the write in flight, and the promise they settle together. */
  #queue: Uint8Array[] | undefined;
  #queued: Batch | undefined;
  /**
   * Where queued chunks are joined for the next write, kept while the writes go on: a write is awaited before
   * the next gather, so the buffer is free again by then (a fresh buffer per write cost its zero fill).
   */
  #gathered: Uint8Array | undefined;
  /** Why writing failed: later writes fail with it. */
  #writeError: unknown;
  #endAsked = false;
  #ended = false;
  #sinkEnded = false;
  /** Whether reading is paused, and whether a read is due once it resumes. */
  #paused = false;
  #readDue = false;
  /**
   * Settles every direct read, with the byte count, null at the end, or the error: one function made with the
   * first read rather than two per read (a pending read then holds it, a promise and one reaction).
   */
  #settle: ((result: unknown) => void) | undefined;

  // Methods and getters only, no closures: ten thousand idle connections each hold just their fields.
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    const peer = conn.remoteAddr;
    const remoteAddress = peer.transport === "tcp" ? hostPort(peer.hostname, peer.port) : undefined;
    if (remoteAddress !== undefined) this.remoteAddress = remoteAddress;
  }

  /** Bytes from the peer, as a stream made on first use. */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= this.#makeReadable();
  }

  /** Bytes to the peer, as a stream made on first use. */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.#finish(),
      abort: () => this.close(),
    });
  }

  /** The callbacks interface: the state itself. */
  get direct(): DirectTransport {
    return this;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime (a reset): nothing left to release.
    }
    this.#fail(new Error("Cannot write: the connection is closed"));
    // The pending read ends later; the reads are over now.
    this.#endSink();
  }

  /** Reads once: a chunk, or null at the end; a read cut short by our own close() is an end too. */
  async #read(): Promise<Uint8Array | null> {
    let n: number | null;
    try {
      n = await this.#conn.read(this.#buffer);
    } catch (error) {
      if (this.#closed) return null;
      throw error;
    }
    return this.#take(n);
  }

  /** The chunk a read of `n` bytes filled (null at the end), and the buffer for the next read. */
  #take(n: number | null): Uint8Array | null {
    if (n === null) return null;
    const buffer = this.#buffer;
    const size = nextReadSize(n, buffer.length);
    if (n <= COPY_BELOW) {
      if (size !== buffer.length) this.#buffer = new Uint8Array(size);
      return buffer.slice(0, n);
    }
    this.#buffer = new Uint8Array(size);
    return buffer.subarray(0, n);
  }

  #makeReadable(): ReadableStream<Uint8Array> {
    if (this.#sink !== undefined) throw new Error("Cannot read: the transport is used through `direct`");
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.#read();
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: () => this.close(),
    }, { highWaterMark: 1 });
  }

  /**
   * Delivers what is read to `sink`, one read at a time.
   *
   * @param sink Receives the chunks, then the end.
   */
  start(sink: TransportSink): void {
    if (this.#sink !== undefined || this.#readable !== undefined) {
      throw new Error("Cannot start: the transport's reads already have a consumer");
    }
    this.#sink = sink;
    this.#next();
  }

  #next(): void {
    const settle = this.#settle ??= (result) => this.#got(result);
    this.#conn.read(this.#buffer).then(settle, settle);
  }

  /** A read's outcome: a byte count, null at the end, anything else is why it failed. */
  #got(n: unknown): void {
    if (typeof n !== "number" && n !== null) {
      this.#endSink(this.#closed ? undefined : n);
      return;
    }
    if (this.#sinkEnded) return;
    const chunk = this.#take(n);
    if (chunk === null) {
      this.#endSink();
      return;
    }
    this.#sink!.data(chunk);
    if (this.#paused) this.#readDue = true;
    else this.#next();
  }

  /** Reads no more until `resume()` (the read in flight, if any, is still delivered). */
  pause(): void {
    this.#paused = true;
  }

  /** Reads again. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#readDue || this.#sinkEnded) return;
    this.#readDue = false;
    this.#next();
  }

  /** Passes the end of the reads to the sink, once. */
  #endSink(error?: unknown): void {
    if (this.#sink === undefined || this.#sinkEnded) return;
    this.#sinkEnded = true;
    this.#sink.end(error);
  }

  /**
   * Writes a chunk after the ones before it; chunks that come while a write is in flight follow together.
   *
   * @param chunk The bytes.
   * @returns When the connection took them (never at once: every write is an operation of the runtime).
   */
  write(chunk: Uint8Array): Promise<void> {
    if (this.#closed || this.#endAsked) throw new Error("Cannot write: the connection is closed");
    if (this.#writeError !== undefined) throw this.#writeError;
    if (this.#writing) {
      (this.#queue ??= []).push(chunk);
      return (this.#queued ??= batch()).promise;
    }
    this.#writing = true;
    const first = batch();
    void this.#pump(chunk, first);
    return first.promise;
  }

  /** Writes `chunk`, then what was queued meanwhile, until nothing is; then the half-close if asked. */
  async #pump(chunk: Uint8Array, settles: Batch | undefined): Promise<void> {
    for (;;) {
      try {
        for (let written = 0; written < chunk.byteLength;) {
          written += await this.#conn.write(written === 0 ? chunk : chunk.subarray(written));
        }
      } catch (error) {
        const failure = this.#closed ? new Error("Cannot write: the connection is closed") : error;
        this.#writing = false;
        settles?.reject(failure);
        this.#fail(failure);
        return;
      }
      settles?.resolve();
      const queue = this.#queue;
      if (queue === undefined) break;
      const take = gather(queue, this.#gathered ??= new Uint8Array(GATHER_LIMIT));
      chunk = take.chunk;
      if (take.rest === undefined) {
        // The last of the queue: its promise settles with this write.
        settles = this.#queued;
        this.#queue = undefined;
        this.#queued = undefined;
      } else {
        settles = undefined;
        this.#queue = take.rest;
      }
    }
    this.#writing = false;
    // Idle again: an idle connection holds no gather buffer.
    this.#gathered = undefined;
    if (this.#endAsked) this.#closeWrite();
  }

  /** Fails the queued writes (and every later one) with `error`. */
  #fail(error: unknown): void {
    this.#writeError ??= error;
    const queued = this.#queued;
    this.#queue = undefined;
    this.#queued = undefined;
    queued?.reject(error);
  }

  /** Half-closes once everything written went out, and keeps reading. */
  end(): void {
    if (this.#endAsked) return;
    this.#endAsked = true;
    if (!this.#writing) this.#closeWrite();
  }

  /** The writable's close: the half-close, settled once sent. */
  #finish(): Promise<void> | undefined {
    if (this.#closed) return undefined;
    this.#endAsked = true;
    return this.#closeWrite();
  }

  #closeWrite(): Promise<void> | undefined {
    if (this.#ended || this.#closed) return undefined;
    this.#ended = true;
    return this.#conn.closeWrite().catch(() => {
      // The peer is gone already; the reads report it.
    });
  }
}

/**
 * Takes the chunks of `queue` that leave in the next write: all of them joined into `into`, up to
 * `GATHER_LIMIT` bytes, or a large chunk alone.
 */
function gather(
  queue: Uint8Array[],
  into: Uint8Array,
): { chunk: Uint8Array; rest: Uint8Array[] | undefined } {
  if (queue.length === 1) return { chunk: queue[0]!, rest: undefined };
  let count = 0;
  let size = 0;
  for (; count < queue.length; count++) {
    const next = size + queue[count]!.byteLength;
    if (count > 0 && next > GATHER_LIMIT) break;
    size = next;
  }
  const rest = count < queue.length ? queue.slice(count) : undefined;
  if (count === 1) return { chunk: queue[0]!, rest };
  let at = 0;
  for (let i = 0; i < count; i++) {
    into.set(queue[i]!, at);
    at += queue[i]!.byteLength;
  }
  return { chunk: into.subarray(0, at), rest };
}

function fromConn(conn: Deno.Conn): Transport {
  return new ConnState(conn);
}

/** Turns a `Deno.Listener` into a {@linkcode Listener} of transports. */
function fromListener(listener: Deno.Listener, wrap: (conn: Deno.Conn) => Transport): Listener {
  const addr = listener.addr as Deno.NetAddr;
  let closed = false;
  return {
    port: addr.port,
    hostname: addr.hostname,
    close(): Promise<void> {
      if (!closed) {
        closed = true;
        try {
          listener.close();
        } catch {
          // Already closed.
        }
      }
      return Promise.resolve();
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<Transport, void, undefined> {
      while (!closed) {
        let conn: Deno.Conn;
        try {
          conn = await listener.accept();
        } catch (error) {
          if (closed) return;
          throw error;
        }
        yield wrap(conn);
      }
    },
  };
}

/**
 * Opens a TCP connection with `Deno.connect`.
 *
 * @param options Peer address and an optional abort signal.
 * @returns A transport over the connection.
 * @throws {Deno.errors.ConnectionRefused} When nobody listens; any other connect error likewise.
 * @throws {unknown} `signal.reason` when aborted first.
 *
 * @example Connect to a listener
 * ```ts
 * import { connectTcp, listenTcp } from "./net.ts";
 * const listener = await listenTcp({ hostname: "127.0.0.1", port: 0 });
 * const transport = await connectTcp({ hostname: "127.0.0.1", port: listener.port });
 * await transport.close();
 * await listener.close();
 * ```
 */
export async function connectTcp(options: TcpConnectOptions): Promise<Transport> {
  const { hostname, port, signal } = options;
  signal?.throwIfAborted();
  const conn = await raceAbort(Deno.connect({ hostname, port }), signal, (c) => c.close());
  conn.setNoDelay(true);
  return fromConn(conn);
}

/**
 * Opens a TLS connection with `Deno.connectTls` (or `Deno.startTls` when `serverName` differs from
 * `hostname`) and completes the handshake, so verification failures reject here.
 *
 * @param options Peer address, trust roots, client certificate, server name and an optional abort signal.
 * @returns A transport over the verified TLS connection.
 * @throws {Error} When `insecure` is set: Deno always verifies the certificate chain.
 * @throws {TypeError} When only one of `cert` and `key` is given, or when `serverName` differs from
 * `hostname` and a client certificate is given.
 * @throws {Deno.errors.InvalidData} When the certificate does not verify; connect errors likewise.
 *
 * @example Connect with a private CA
 * ```ts ignore
 * import { connectTls } from "./net.ts";
 * const ca = await Deno.readTextFile("ca.pem");
 * const transport = await connectTls({ hostname: "broker.example", port: 8883, caCerts: [ca] });
 * await transport.close();
 * ```
 */
export async function connectTls(options: TlsConnectOptions): Promise<Transport> {
  const { hostname, port, signal, caCerts, cert, key, alpnProtocols } = options;
  signal?.throwIfAborted();
  if (options.insecure) {
    throw new Error(
      "Cannot skip TLS certificate verification on Deno: Deno.connectTls always verifies; pass the server's CA " +
        "in caCerts, or run Deno with --unsafely-ignore-certificate-errors",
    );
  }
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError("Cannot use a client certificate without its key, or a key without its certificate");
  }
  const serverName = options.serverName ?? hostname;
  let attempt: Promise<Deno.TlsConn>;
  if (serverName === hostname) {
    attempt = cert !== undefined && key !== undefined
      ? Deno.connectTls({ hostname, port, caCerts, alpnProtocols, cert, key })
      : Deno.connectTls({ hostname, port, caCerts, alpnProtocols });
  } else {
    if (cert !== undefined) {
      throw new TypeError(
        "Cannot use a client certificate with a serverName other than the hostname on Deno",
      );
    }
    attempt = Deno.connect({ hostname, port }).then((tcp) => {
      tcp.setNoDelay(true);
      return Deno.startTls(tcp, { hostname: serverName, caCerts, alpnProtocols });
    });
  }
  const handshaken = attempt.then(async (conn) => {
    try {
      await conn.handshake();
      return conn;
    } catch (error) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      throw error;
    }
  });
  const conn = await raceAbort(handshaken, signal, (c) => c.close());
  return fromConn(conn);
}

/**
 * Listens for TCP connections with `Deno.listen`.
 *
 * @param options Address and port (`0` picks a free port).
 * @returns A listener of transports.
 * @throws {Deno.errors.AddrInUse} When the port is taken; other bind errors likewise.
 *
 * @example Accept one connection
 * ```ts
 * import { connectTcp, listenTcp } from "./net.ts";
 * const listener = await listenTcp({ hostname: "127.0.0.1", port: 0 });
 * const client = await connectTcp({ hostname: "127.0.0.1", port: listener.port });
 * for await (const server of listener) {
 *   await server.close();
 *   break;
 * }
 * await client.close();
 * await listener.close();
 * ```
 */
export function listenTcp(options: TcpListenOptions): Promise<Listener> {
  try {
    const listener = Deno.listen({ hostname: options.hostname ?? "0.0.0.0", port: options.port });
    return Promise.resolve(fromListener(listener, (conn) => {
      (conn as Deno.TcpConn).setNoDelay(true);
      return fromConn(conn);
    }));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Listens for TLS connections with `Deno.listenTls`; each handshake runs when the connection is first read.
 *
 * @param options Address, port, certificate chain and key (PEM).
 * @returns A listener of transports.
 * @throws {Deno.errors.AddrInUse} When the port is taken; bad certificates or keys likewise.
 *
 * @example Serve TLS
 * ```ts ignore
 * import { listenTls } from "./net.ts";
 * const cert = await Deno.readTextFile("server.pem");
 * const key = await Deno.readTextFile("server.key");
 * const listener = await listenTls({ port: 8883, cert, key });
 * await listener.close();
 * ```
 */
export function listenTls(options: TlsListenOptions): Promise<Listener> {
  const { cert, key, alpnProtocols } = options;
  try {
    const listener = Deno.listenTls({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port,
      cert,
      key,
      alpnProtocols,
    });
    return Promise.resolve(fromListener(listener, fromConn));
  } catch (error) {
    return Promise.reject(error);
  }
}
