/**
 * The contract every runtime's `net.ts` fulfils: options of the TCP and TLS connectors and listeners, and the
 * {@linkcode RuntimeNet} interface that `src/runtime/{deno,bun,node}/net.ts` each implement.
 *
 * @module
 */

import type { Listener, Transport } from "../transport/transport.ts";

/** Where to connect over TCP. */
export interface TcpConnectOptions {
  /** Host name or IP address of the peer. */
  hostname: string;
  /** TCP port of the peer. */
  port: number;
  /** Aborts the attempt: the promise rejects with `signal.reason` and a late connection is closed. */
  signal?: AbortSignal;
}

/** Where and how to connect over TLS; the peer's certificate is verified unless `insecure` is set. */
export interface TlsConnectOptions extends TcpConnectOptions {
  /** Root certificates (PEM) trusted in addition to the runtime's defaults. */
  caCerts?: string[];
  /** Client certificate chain (PEM), for mutual TLS; needs `key`. */
  cert?: string;
  /** Private key (PEM) of `cert`. */
  key?: string;
  /** Name expected in the server's certificate and sent as SNI. @default {hostname} */
  serverName?: string;
  /**
   * Skips verification of the server's certificate. Not available on Deno, whose `Deno.connectTls` always
   * verifies (only the `--unsafely-ignore-certificate-errors` flag turns it off).
   * @default {false}
   */
  insecure?: boolean;
  /** ALPN protocols offered to the server. */
  alpnProtocols?: string[];
}

/** Where to listen for TCP connections. */
export interface TcpListenOptions {
  /** Address to bind. @default {"0.0.0.0"} */
  hostname?: string;
  /** Port to bind; `0` picks a free one (read it from {@linkcode Listener.port}). */
  port: number;
}

/** Where to listen for TLS connections, and the server's identity. */
export interface TlsListenOptions extends TcpListenOptions {
  /** Server certificate chain (PEM). */
  cert: string;
  /** Private key (PEM) of `cert`. */
  key: string;
  /** ALPN protocols the server accepts. */
  alpnProtocols?: string[];
}

/** The network functions of one runtime; `src/runtime/{deno,bun,node}/net.ts` each export exactly these. */
export interface RuntimeNet {
  /** Opens a TCP connection. */
  connectTcp(options: TcpConnectOptions): Promise<Transport>;
  /** Opens a TLS connection. */
  connectTls(options: TlsConnectOptions): Promise<Transport>;
  /** Listens for TCP connections. */
  listenTcp(options: TcpListenOptions): Promise<Listener>;
  /** Listens for TLS connections. */
  listenTls(options: TlsListenOptions): Promise<Listener>;
}
