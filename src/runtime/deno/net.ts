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

import type { Listener, Transport } from "../../transport/transport.ts";
import { raceAbort } from "../_abort.ts";
import { hostPort, withRemoteAddress } from "../_address.ts";
import type { TcpConnectOptions, TcpListenOptions, TlsConnectOptions, TlsListenOptions } from "../types.ts";

/** The largest buffer a read fills: what a busy connection reads into. */
const READ_SIZE = 65536;
/** The smallest: what an idle connection's pending read holds (a CONNECT, a PINGREQ, a few PUBLISH fit). */
const MIN_READ_SIZE = 1024;
/** Reads up to this size are copied out, so the read buffer can be used again; larger ones are handed out. */
const COPY_BELOW = 16384;

/**
 * The size of the next read's buffer after a read of `n` bytes into `size`: the largest when the read filled
 * its buffer (more is waiting), a fourth of it or less when reads stay small, so that ten thousand idle
 * connections each hold a kilobyte, not 64 KiB, while a busy one reads 64 KiB at a time.
 */
function nextReadSize(n: number, size: number): number {
  if (n >= size) return READ_SIZE;
  if (n * 4 < size) return Math.max(MIN_READ_SIZE, Math.min(READ_SIZE, 2 ** Math.ceil(Math.log2(n * 2 + 1))));
  return size;
}

/**
 * Wraps a connection: its own readable (`Deno.Conn.readable` closes the whole connection when the peer
 * half-closes, so a reply could no longer be written), half-close on `writable.close()`, idempotent close,
 * writes that reject after close, and the peer's address.
 */
function fromConn(conn: Deno.Conn): Transport {
  let closed = false;
  function close(): void {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // Already closed by the runtime (a reset): nothing left to release.
    }
  }
  let buffer = new Uint8Array(MIN_READ_SIZE);
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        // A read cut short by our own close() is an end, not a failure.
        if (closed) controller.close();
        else controller.error(error);
        return;
      }
      if (n === null) {
        controller.close();
        return;
      }
      const size = nextReadSize(n, buffer.length);
      if (n <= COPY_BELOW) {
        controller.enqueue(buffer.slice(0, n));
        if (size !== buffer.length) buffer = new Uint8Array(size);
      } else {
        controller.enqueue(buffer.subarray(0, n));
        buffer = new Uint8Array(size);
      }
    },
    cancel: close,
  }, { highWaterMark: 0 });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (closed) throw new Error("Cannot write: the connection is closed");
      for (let written = 0; written < chunk.byteLength;) {
        written += await conn.write(written === 0 ? chunk : chunk.subarray(written));
      }
    },
    async close() {
      if (closed) return;
      try {
        await conn.closeWrite();
      } catch {
        // The peer is gone already; the readable reports it.
      }
    },
    abort: close,
  });
  const peer = conn.remoteAddr;
  const remoteAddress = peer.transport === "tcp" ? hostPort(peer.hostname, peer.port) : undefined;
  return withRemoteAddress({ readable, writable, close }, remoteAddress);
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
