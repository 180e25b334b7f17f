/**
 * TCP and TLS transports on Node: `node:net` and `node:tls` sockets through a small socket-to-Web-Streams shim.
 *
 * The shim replaces `Duplex.toWeb`, which runs at about half the raw speed and deadlocks on half-close. Chunks
 * leave it as plain `Uint8Array` views of the received `Buffer`s (Node never reuses them). Reading pauses the
 * socket while the readable's queue is full; writing waits for `'drain'` whenever `socket.write()` returns
 * `false`. Sockets are half-open capable: closing the writable sends FIN and keeps reading, and the socket is
 * destroyed once both directions have ended (or on `close()`).
 *
 * @module
 */

import * as net from "node:net";
import * as tls from "node:tls";
import type { Listener, Transport } from "../../transport/transport.ts";
import { hostPort, withRemoteAddress } from "../_address.ts";
import { AcceptQueue } from "../_accept_queue.ts";
import type { TcpConnectOptions, TcpListenOptions, TlsConnectOptions, TlsListenOptions } from "../types.ts";

/** How many chunks the readable holds before the socket is paused (resuming it costs a turn). */
const READ_AHEAD = 4;
/** How long `close()` lets a socket flush what was written before it is cut. */
const CLOSE_GRACE_MS = 1000;

/**
 * Wraps a connected socket as a transport, with the peer's address.
 *
 * @param socket A connected (and, for TLS, handshaken) socket created with `allowHalfOpen: true`.
 * @returns The transport.
 */
function fromSocket(socket: net.Socket): Transport {
  let readDone = false;
  let writeDone = false;
  let closing = false;
  let error: Error | undefined;
  const closed = new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once("close", () => resolve());
  });
  function finishIfBothEnded(): void {
    if (readDone && writeDone) socket.destroy();
  }
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    pull() {
      socket.resume();
    },
    cancel() {
      readDone = true;
      socket.destroy();
    },
  }, { highWaterMark: READ_AHEAD });
  function endReadable(): void {
    if (readDone) return;
    readDone = true;
    if (error !== undefined) controller.error(error);
    else controller.close();
  }
  socket.on("data", (buffer: Uint8Array) => {
    if (readDone) return;
    controller.enqueue(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength));
    if ((controller.desiredSize ?? 0) <= 0) socket.pause();
  });
  socket.on("end", () => {
    endReadable();
    finishIfBothEnded();
  });
  socket.on("error", (e: Error) => {
    error ??= e;
  });
  socket.on("close", endReadable);
  const closedError = () => error ?? new Error("Cannot write: the connection is closed");
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (socket.destroyed || writeDone) return Promise.reject(closedError());
      // Taken at once: settled at once, so that the chunks queued behind it follow in this turn. (Settling on
      // the next turn starved the stream under load: a broker's writes fell behind its reads.)
      if (socket.write(chunk)) return;
      return new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          socket.off("close", onClose);
          resolve();
        };
        const onClose = () => {
          socket.off("drain", onDrain);
          reject(closedError());
        };
        socket.once("drain", onDrain);
        socket.once("close", onClose);
      });
    },
    close() {
      if (socket.destroyed || writeDone) return;
      writeDone = true;
      return new Promise<void>((resolve) => {
        const done = () => {
          socket.off("finish", done);
          socket.off("close", done);
          resolve();
        };
        socket.once("finish", done);
        socket.once("close", done);
        socket.end();
      }).then(finishIfBothEnded);
    },
    abort() {
      socket.destroy();
    },
  });
  return withRemoteAddress({
    readable,
    writable,
    close(): Promise<void> {
      // FIN after what was written (a destroy would drop what the socket still holds, a DISCONNECT say), then
      // gone; cut after CLOSE_GRACE_MS when the writes do not get out (a peer that does not read).
      if (!socket.destroyed && !closing) {
        closing = true;
        const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
        timer.unref();
        socket.once("close", () => clearTimeout(timer));
        if (writeDone) socket.destroy();
        else {
          writeDone = true;
          socket.once("finish", () => socket.destroy());
          socket.end();
        }
      }
      return closed;
    },
  }, hostPort(socket.remoteAddress, socket.remotePort));
}

/** Waits for `event` on a connecting socket, or its error, or the signal; destroys the socket on failure. */
function opened<S extends net.Socket>(socket: S, event: string, signal: AbortSignal | undefined): Promise<S> {
  return new Promise<S>((resolve, reject) => {
    const cleanup = () => {
      socket.off(event, onOpen);
      socket.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    const onOpen = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onAbort = () => {
      cleanup();
      socket.destroy();
      reject(signal?.reason);
    };
    socket.once(event, onOpen);
    socket.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Opens a TCP connection with `node:net`.
 *
 * @param options Peer address and an optional abort signal.
 * @returns A transport over the connection.
 * @throws {Error} The socket's error (`ECONNREFUSED`, …), or `signal.reason` when aborted first.
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
  const socket = net.connect({ host: hostname, port, noDelay: true, allowHalfOpen: true });
  return fromSocket(await opened(socket, "connect", signal));
}

/** Secure contexts by trust roots and client identity: building one with Node's bundled roots costs ~6 ms. */
const contexts = new Map<string, tls.SecureContext>();

/**
 * The secure context for these roots and client certificate, built once: `caCerts` are added to Node's bundled
 * roots (a bare `ca` would replace them), as Deno and Bun do.
 */
function secureContext(
  caCerts: string[] | undefined,
  cert: string | undefined,
  key: string | undefined,
): tls.SecureContext | undefined {
  if (caCerts === undefined && cert === undefined && key === undefined) return undefined;
  const id = JSON.stringify([caCerts, cert, key]);
  let context = contexts.get(id);
  if (context === undefined) {
    context = tls.createSecureContext({
      ca: caCerts === undefined ? undefined : [...tls.rootCertificates, ...caCerts],
      cert,
      key,
    });
    // A handful of distinct settings is the norm; forget the oldest beyond that.
    if (contexts.size >= 16) contexts.delete(contexts.keys().next().value!);
    contexts.set(id, context);
  }
  return context;
}

/**
 * Opens a TLS connection with `node:tls` and completes the handshake.
 *
 * @param options Peer address, trust roots (added to Node's bundled roots), client certificate, server name,
 * `insecure`, ALPN protocols and an optional abort signal.
 * @returns A transport over the TLS connection.
 * @throws {Error} A verification failure (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `ERR_TLS_CERT_ALTNAME_INVALID`, …),
 * a socket error, or `signal.reason` when aborted first.
 *
 * @example Connect with a private CA
 * ```ts ignore
 * import { readFileSync } from "node:fs";
 * import { connectTls } from "./net.ts";
 * const ca = readFileSync("ca.pem", "utf8");
 * const transport = await connectTls({ hostname: "broker.example", port: 8883, caCerts: [ca] });
 * await transport.close();
 * ```
 */
export async function connectTls(options: TlsConnectOptions): Promise<Transport> {
  const { hostname, port, signal, caCerts, cert, key, insecure, alpnProtocols } = options;
  signal?.throwIfAborted();
  const name = options.serverName ?? hostname;
  // `allowHalfOpen` reaches the TLSSocket (lib/_tls_wrap.js), though @types/node does not list it.
  const tlsOptions: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    host: hostname,
    port,
    allowHalfOpen: true,
    // SNI carries host names only (RFC 6066 §3); identity is still checked against `name`.
    servername: net.isIP(name) === 0 ? name : undefined,
    checkServerIdentity: (_host, certificate) => tls.checkServerIdentity(name, certificate),
    secureContext: secureContext(caCerts, cert, key),
    rejectUnauthorized: insecure !== true,
    ALPNProtocols: alpnProtocols,
  };
  const socket = tls.connect(tlsOptions);
  socket.setNoDelay(true);
  return fromSocket(await opened(socket, "secureConnect", signal));
}

/** Starts `server` listening and builds the listener over `queue`. */
function listen(server: net.Server, queue: AcceptQueue, options: TcpListenOptions): Promise<Listener> {
  return new Promise<Listener>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.hostname ?? "0.0.0.0", port: options.port }, () => {
      server.off("error", reject);
      // A failing accepted connection reports through its transport; the server itself must not throw.
      server.on("error", () => {});
      const address = server.address() as net.AddressInfo;
      // Stop listening; the 'close' callback would wait for every accepted connection, which stay open.
      resolve(queue.listener(address.port, address.address, () => {
        server.close();
        return Promise.resolve();
      }));
    });
  });
}

/**
 * Listens for TCP connections with `node:net`.
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
  const queue = new AcceptQueue();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    queue.push(fromSocket(socket));
  });
  return listen(server, queue, options);
}

/**
 * Listens for TLS connections with `node:tls`; a connection is handed out once its handshake is done, and
 * failed handshakes are dropped.
 *
 * @param options Address, port, certificate chain and key (PEM), ALPN protocols.
 * @returns A listener of transports.
 * @throws {Error} `EADDRINUSE` and other bind errors; a bad certificate or key.
 *
 * @example Serve TLS
 * ```ts ignore
 * import { readFileSync } from "node:fs";
 * import { listenTls } from "./net.ts";
 * const cert = readFileSync("server.pem", "utf8");
 * const key = readFileSync("server.key", "utf8");
 * const listener = await listenTls({ port: 8883, cert, key });
 * await listener.close();
 * ```
 */
export async function listenTls(options: TlsListenOptions): Promise<Listener> {
  const queue = new AcceptQueue();
  const server = tls.createServer({
    cert: options.cert,
    key: options.key,
    ALPNProtocols: options.alpnProtocols,
    allowHalfOpen: true,
    noDelay: true,
  }, (socket) => {
    queue.push(fromSocket(socket));
  });
  server.on("tlsClientError", () => {});
  return await listen(server, queue, options);
}
