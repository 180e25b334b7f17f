/**
 * TCP and TLS transports on Bun: `Bun.connect` and `Bun.listen` callbacks turned into Web Streams.
 *
 * `data` callbacks feed the readable (pausing the socket while its queue is full); a write that the socket
 * takes only in part waits for `drain` before writing the rest. Chunks leave as plain `Uint8Array` views of
 * Bun's `Buffer`s, which Bun allocates per callback. Sockets are half-open capable: closing the writable sends
 * FIN (`shutdown()`) and keeps reading.
 *
 * @module
 */

import type { DirectTransport, Listener, Transport, TransportSink } from "../../transport/transport.ts";
import { raceAbort } from "../_abort.ts";
import { hostPort } from "../_address.ts";
import { AcceptQueue } from "../_accept_queue.ts";
import type { TcpConnectOptions, TcpListenOptions, TlsConnectOptions, TlsListenOptions } from "../types.ts";

/** The part of a Bun socket this module uses (Bun's types are not installed; Hono's approach). */
interface BunSocket {
  /** Per-socket state set by `open` on the server side. */
  data: SocketState | undefined;
  /** The peer's IP address. */
  readonly remoteAddress?: string;
  /** The peer's port. */
  readonly remotePort?: number;
  /** Writes what the socket takes now; returns the number of bytes taken, or -1 when closed. */
  write(data: Uint8Array): number;
  /** Sends FIN and closes once flushed. */
  end(): void;
  /** Sends FIN, keeps reading. */
  shutdown(halfClose?: boolean): void;
  /** Closes at once. */
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay(noDelay?: boolean): boolean;
}

interface BunSocketHandler {
  open?(socket: BunSocket): void;
  data?(socket: BunSocket, data: Uint8Array): void;
  drain?(socket: BunSocket): void;
  end?(socket: BunSocket): void;
  close?(socket: BunSocket, error?: Error): void;
  error?(socket: BunSocket, error: Error): void;
  connectError?(socket: BunSocket, error: Error): void;
  handshake?(socket: BunSocket, success: boolean, authorizationError: Error | null): void;
}

interface BunTlsOptions {
  ca?: string[];
  cert?: string;
  key?: string;
  serverName?: string;
  rejectUnauthorized?: boolean;
  ALPNProtocols?: string[];
}

interface BunServer {
  readonly port: number;
  readonly hostname: string;
  stop(closeActiveConnections?: boolean): void;
}

declare const Bun: {
  connect(options: {
    hostname: string;
    port: number;
    allowHalfOpen?: boolean;
    tls?: BunTlsOptions | boolean;
    socket: BunSocketHandler;
  }): Promise<BunSocket>;
  listen(options: {
    hostname: string;
    port: number;
    allowHalfOpen?: boolean;
    tls?: BunTlsOptions;
    socket: BunSocketHandler;
  }): BunServer;
};

/** How many chunks the readable holds before the socket is paused (resuming it costs a turn). */
const READ_AHEAD = 4;
/** How long `close()` lets a socket flush and the peer close before it is cut. */
const CLOSE_GRACE_MS = 1000;

/** Bun's bundled roots, so that `caCerts` adds to them as on Deno and Node (Bun's `ca` replaces them). */
let rootCertificates: Promise<readonly string[]> | undefined;
function roots(): Promise<readonly string[]> {
  rootCertificates ??= import("node:tls").then((tls) => tls.rootCertificates, () => []);
  return rootCertificates;
}

/** Bits of `SocketState`'s flags. */
const READ_DONE = 1;
const END_DELIVERED = 2;
const WRITE_DONE = 4;
const CLOSED = 8;
const CLOSING = 16;
const PAUSED = 32;

/**
 * One socket, fed by the handler callbacks: as a pair of streams, created when first used, or through the
 * transport's `direct` callbacks (the broker's way, which spares an idle connection its streams).
 */
class SocketState implements Transport, DirectTransport {
  readonly remoteAddress?: string;
  #socket: BunSocket;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #sink: TransportSink | undefined;
  /** What arrived before the readable or the sink existed. */
  #early: Uint8Array[] | undefined;
  /** A direct write waiting for `drain` and the ones queued behind it; undefined when none waits. */
  #tail: Promise<void> | undefined;
  #error: Error | undefined;
  #drain: { resolve(): void; reject(error: Error): void } | undefined;
  /** What `close()` returns, made when first asked for (an idle connection holds no promise). */
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;
  /** Cuts the socket when it is still open `CLOSE_GRACE_MS` after `close()`. */
  #grace: ReturnType<typeof setTimeout> | undefined;

  /** The flags below, as bits of one field: ten thousand idle connections each save five. */
  #flags = 0;

  /** Whether the reads ended (the peer's FIN, a close, a cancel). */
  get #readDone(): boolean {
    return (this.#flags & READ_DONE) !== 0;
  }
  set #readDone(on: boolean) {
    this.#flags = on ? this.#flags | READ_DONE : this.#flags & ~READ_DONE;
  }
  /** Whether the end of the reads reached the readable or the sink. */
  get #endDelivered(): boolean {
    return (this.#flags & END_DELIVERED) !== 0;
  }
  set #endDelivered(on: boolean) {
    this.#flags = on ? this.#flags | END_DELIVERED : this.#flags & ~END_DELIVERED;
  }
  /** Whether our FIN was asked for. */
  get #writeDone(): boolean {
    return (this.#flags & WRITE_DONE) !== 0;
  }
  set #writeDone(on: boolean) {
    this.#flags = on ? this.#flags | WRITE_DONE : this.#flags & ~WRITE_DONE;
  }
  /** Whether Bun reported the socket closed (or the close grace ran out). */
  get #isClosed(): boolean {
    return (this.#flags & CLOSED) !== 0;
  }
  set #isClosed(on: boolean) {
    this.#flags = on ? this.#flags | CLOSED : this.#flags & ~CLOSED;
  }
  /** Whether `close()` was called. */
  get #closing(): boolean {
    return (this.#flags & CLOSING) !== 0;
  }
  set #closing(on: boolean) {
    this.#flags = on ? this.#flags | CLOSING : this.#flags & ~CLOSING;
  }
  /** Whether the direct reads are paused. */
  get #paused(): boolean {
    return (this.#flags & PAUSED) !== 0;
  }
  set #paused(on: boolean) {
    this.#flags = on ? this.#flags | PAUSED : this.#flags & ~PAUSED;
  }

  // Methods and getters only, no closures: ten thousand idle connections each hold just their fields.
  constructor(socket: BunSocket) {
    this.#socket = socket;
    const remoteAddress = hostPort(socket.remoteAddress, socket.remotePort);
    if (remoteAddress !== undefined) this.remoteAddress = remoteAddress;
  }

  /** The transport of this socket: the state itself. */
  get transport(): Transport {
    return this;
  }

  /** Bytes from the peer, as a stream made on first use. */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= this.#makeReadable();
  }

  /** Bytes to the peer, as a stream made on first use. */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= this.#makeWritable();
  }

  /** The callbacks interface: the state itself. */
  get direct(): DirectTransport {
    return this;
  }

  /** Half-closes once everything written went out. */
  end(): void {
    if (this.#tail === undefined) this.#endWrites();
    else this.#tail.then(() => this.#endWrites(), () => {});
  }

  #makeReadable(): ReadableStream<Uint8Array> {
    if (this.#sink !== undefined) throw new Error("Cannot read: the transport is used through `direct`");
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
        for (const chunk of this.#early ?? []) controller.enqueue(chunk);
        this.#early = undefined;
        if (this.#readDone) this.#deliverEnd();
        else if ((controller.desiredSize ?? 0) <= 0) this.#socket.pause();
      },
      pull: () => {
        if (!this.#isClosed) this.#socket.resume();
      },
      cancel: () => {
        this.#readDone = true;
        this.close();
      },
    }, { highWaterMark: READ_AHEAD });
  }

  #makeWritable(): WritableStream<Uint8Array> {
    return new WritableStream<Uint8Array>({
      write: (chunk) => this.#write(chunk, 0),
      close: () => this.#endWrites(),
      abort: () => {
        this.#isClosed || this.#socket.terminate();
      },
    });
  }

  /**
   * Delivers what is read to `sink`.
   *
   * @param sink Receives the chunks, then the end.
   */
  start(sink: TransportSink): void {
    if (this.#sink !== undefined || this.#readable !== undefined) {
      throw new Error("Cannot start: the transport's reads already have a consumer");
    }
    this.#sink = sink;
    const early = this.#early;
    this.#early = undefined;
    for (const chunk of early ?? []) sink.data(chunk);
    if (this.#readDone) this.#deliverEnd();
    else if (early !== undefined && !this.#isClosed && !this.#paused) this.#socket.resume();
  }

  /** Reads no more until `resume()`. */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    if (!this.#isClosed) this.#socket.pause();
  }

  /** Reads again. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#isClosed && this.#sink !== undefined) this.#socket.resume();
  }

  /** Writes what the socket takes, then waits for `drain` for the rest, from `offset` on. */
  async #write(chunk: Uint8Array, offset: number): Promise<void> {
    for (;;) {
      if (this.#isClosed || this.#writeDone) throw this.#closedError();
      const written = this.#socket.write(offset === 0 ? chunk : chunk.subarray(offset));
      if (written < 0) throw this.#closedError();
      offset += written;
      if (offset >= chunk.byteLength) break;
      await new Promise<void>((resolve, reject) => this.#drain = { resolve, reject });
    }
    // Taken at once: settled at once, so that the chunks queued behind it follow in this turn. (Settling on the
    // next turn starved the stream under load: a broker's writes fell behind its reads.)
  }

  /**
   * Writes a chunk after the ones before it.
   *
   * @param chunk The bytes.
   * @returns `undefined` when the socket took it at once, else when it did.
   */
  write(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#tail !== undefined) {
      // Behind a write waiting for `drain`: in order, after it.
      const next: Promise<void> = this.#tail.then(() => this.#write(chunk, 0));
      this.#tail = next;
      next.then(() => this.#tail === next && (this.#tail = undefined), () => {});
      return next;
    }
    if (this.#isClosed || this.#writeDone) throw this.#closedError();
    const written = this.#socket.write(chunk);
    if (written < 0) throw this.#closedError();
    if (written >= chunk.byteLength) return undefined;
    const rest: Promise<void> = this.#write(chunk, written);
    this.#tail = rest;
    rest.then(() => this.#tail === rest && (this.#tail = undefined), () => {});
    return rest;
  }

  /** FIN after what was written (the reads go on), or the whole close when the reads are done too. */
  #endWrites(): void {
    if (this.#isClosed || this.#writeDone) return;
    this.#writeDone = true;
    if (this.#readDone) this.close();
    else this.#socket.shutdown();
  }

  #closedError(): Error {
    return this.#error ?? new Error("Cannot write: the connection is closed");
  }

  /**
   * Ends the socket once (FIN after what was written); settles when Bun reports it closed, which a TLS socket
   * does only once the peer closed too (after about 12 s when it does not): so after `CLOSE_GRACE_MS` the
   * socket is cut and counts as closed (Bun lets go of a TLS one when its own wait ends).
   */
  close(): Promise<void> {
    if (!this.#isClosed && !this.#closing) {
      this.#closing = true;
      this.#socket.end();
      if (!this.#isClosed) {
        const timer = setTimeout(() => {
          if (this.#isClosed) return;
          // A TLS socket that sent its end waits for the peer's and ignores terminate(): it is over for us.
          this.#socket.terminate();
          this.onClose();
        }, CLOSE_GRACE_MS);
        (timer as { unref?(): void }).unref?.();
        this.#grace = timer;
      }
    }
    return this.#closed ??= this.#isClosed
      ? Promise.resolve()
      : new Promise<void>((resolve) => this.#resolveClosed = resolve);
  }

  onData(data: Uint8Array): void {
    if (this.#readDone) return;
    const chunk = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (this.#sink !== undefined) {
      this.#sink.data(chunk);
      return;
    }
    const controller = this.#controller;
    if (controller === undefined) {
      // Nobody reads yet: keep it, and read no more until somebody does.
      (this.#early ??= []).push(chunk);
      this.#socket.pause();
      return;
    }
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 0) <= 0) this.#socket.pause();
  }

  onDrain(): void {
    const drain = this.#drain;
    this.#drain = undefined;
    drain?.resolve();
  }

  onEnd(): void {
    this.#endReadable();
    if (this.#writeDone) this.close();
  }

  onError(error: Error): void {
    this.#error ??= error;
  }

  onClose(error?: Error): void {
    if (this.#isClosed) return;
    if (error !== undefined) this.#error ??= error;
    this.#isClosed = true;
    clearTimeout(this.#grace);
    this.#endReadable();
    const drain = this.#drain;
    this.#drain = undefined;
    drain?.reject(this.#closedError());
    this.#resolveClosed?.();
  }

  #endReadable(): void {
    if (this.#readDone) return;
    this.#readDone = true;
    this.#deliverEnd();
  }

  /** Passes the end of the reads to whoever consumes them, once there is one. */
  #deliverEnd(): void {
    if (this.#endDelivered) return;
    if (this.#sink !== undefined) {
      this.#endDelivered = true;
      this.#sink.end(this.#error);
    } else if (this.#controller !== undefined) {
      this.#endDelivered = true;
      if (this.#error !== undefined) this.#controller.error(this.#error);
      else this.#controller.close();
    }
  }
}

/** Handlers shared by every socket: the state lives in `socket.data`. */
const handlers: BunSocketHandler = {
  data: (socket, data) => socket.data?.onData(data),
  drain: (socket) => socket.data?.onDrain(),
  end: (socket) => socket.data?.onEnd(),
  error: (socket, error) => socket.data?.onError(error),
  close: (socket, error) => socket.data?.onClose(error),
};

/** Opens a client socket and wraps it once open; TLS handshake failures reject. */
async function connect(
  options: TcpConnectOptions,
  tls: BunTlsOptions | undefined,
): Promise<Transport> {
  const { hostname, port, signal } = options;
  signal?.throwIfAborted();
  let handshake: Promise<void> = Promise.resolve();
  let settleHandshake: ((error: Error | null) => void) | undefined;
  if (tls !== undefined) {
    handshake = new Promise((resolve, reject) => {
      settleHandshake = (error) => error === null ? resolve() : reject(error);
    });
  }
  const attempt = Bun.connect({
    hostname,
    port,
    allowHalfOpen: true,
    tls,
    socket: {
      ...handlers,
      open(socket) {
        socket.data = new SocketState(socket);
        socket.setNoDelay(true);
      },
      handshake(_socket, success, authorizationError) {
        // Bun reports a verification failure here and leaves the decision to us, as Node's TLSSocket does.
        const verify = tls !== undefined && tls.rejectUnauthorized !== false;
        if (!success) {
          settleHandshake?.(authorizationError ?? new Error("Cannot connect: the TLS handshake failed"));
        } else settleHandshake?.(verify ? authorizationError : null);
      },
      close(socket, error) {
        settleHandshake?.(
          error ?? new Error("Cannot connect: the connection closed during the TLS handshake"),
        );
        socket.data?.onClose(error);
      },
    },
  }).then(async (socket) => {
    try {
      await handshake;
    } catch (error) {
      socket.terminate();
      throw error;
    }
    return socket;
  });
  const socket = await raceAbort(attempt, signal, (s) => s.terminate());
  return (socket.data as SocketState).transport;
}

/**
 * Opens a TCP connection with `Bun.connect`.
 *
 * @param options Peer address and an optional abort signal.
 * @returns A transport over the connection.
 * @throws {Error} The connect error (`ECONNREFUSED`, …), or `signal.reason` when aborted first.
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
export function connectTcp(options: TcpConnectOptions): Promise<Transport> {
  return connect(options, undefined);
}

/**
 * Opens a TLS connection with `Bun.connect` and waits for the handshake.
 *
 * @param options Peer address, trust roots (added to Bun's bundled roots), client certificate, server name,
 * `insecure`, ALPN protocols and an optional abort signal.
 * @returns A transport over the TLS connection.
 * @throws {Error} A verification failure, a connect error, or `signal.reason` when aborted first.
 *
 * @example Connect with a private CA
 * ```ts ignore
 * import { connectTls } from "./net.ts";
 * const ca = await Bun.file("ca.pem").text();
 * const transport = await connectTls({ hostname: "broker.example", port: 8883, caCerts: [ca] });
 * await transport.close();
 * ```
 */
export async function connectTls(options: TlsConnectOptions): Promise<Transport> {
  const { caCerts, cert, key, insecure, alpnProtocols } = options;
  return await connect(options, {
    ca: caCerts === undefined ? undefined : [...await roots(), ...caCerts],
    cert,
    key,
    serverName: options.serverName ?? options.hostname,
    rejectUnauthorized: insecure !== true,
    ALPNProtocols: alpnProtocols,
  });
}

/** Starts a Bun server whose accepted sockets become transports in a queue. */
function listen(options: TcpListenOptions, tls: BunTlsOptions | undefined): Promise<Listener> {
  const queue = new AcceptQueue();
  try {
    const server = Bun.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port,
      allowHalfOpen: true,
      tls,
      socket: {
        ...handlers,
        open(socket) {
          const state = new SocketState(socket);
          socket.data = state;
          socket.setNoDelay(true);
          queue.push(state.transport);
        },
      },
    });
    return Promise.resolve(queue.listener(server.port, server.hostname, () => {
      server.stop(false);
      return Promise.resolve();
    }));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Listens for TCP connections with `Bun.listen`.
 *
 * @param options Address and port (`0` picks a free port).
 * @returns A listener of transports.
 * @throws {Error} `EADDRINUSE` and other bind errors.
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
  return listen(options, undefined);
}

/**
 * Listens for TLS connections with `Bun.listen`.
 *
 * @param options Address, port, certificate chain and key (PEM), ALPN protocols.
 * @returns A listener of transports.
 * @throws {Error} `EADDRINUSE` and other bind errors; a bad certificate or key.
 *
 * @example Serve TLS
 * ```ts ignore
 * import { listenTls } from "./net.ts";
 * const cert = await Bun.file("server.pem").text();
 * const key = await Bun.file("server.key").text();
 * const listener = await listenTls({ port: 8883, cert, key });
 * await listener.close();
 * ```
 */
export function listenTls(options: TlsListenOptions): Promise<Listener> {
  return listen(options, { cert: options.cert, key: options.key, ALPNProtocols: options.alpnProtocols });
}
