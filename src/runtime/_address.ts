/**
 * Formats a peer's address for {@linkcode Transport.remoteAddress}, shared by the runtime shims.
 *
 * @module
 */

import type { Transport } from "../transport/transport.ts";

/**
 * Joins a host and a port as `host:port`, bracketing IPv6 hosts (`[::1]:1883`).
 *
 * @param hostname The peer's IP address (or host name), as the runtime reports it.
 * @param port The peer's port.
 * @returns The address, or `undefined` when the runtime did not report both parts.
 */
export function hostPort(hostname: string | undefined, port: number | undefined): string | undefined {
  if (hostname === undefined || hostname === "" || port === undefined) return undefined;
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * Returns `transport` with `remoteAddress` set, or unchanged when the address is unknown.
 *
 * @param transport A transport built as a plain object (its methods are own properties, so spreading keeps them).
 * @param remoteAddress The formatted address from {@linkcode hostPort}.
 * @returns The transport with its peer's address.
 */
export function withRemoteAddress(transport: Transport, remoteAddress: string | undefined): Transport {
  return remoteAddress === undefined ? transport : { ...transport, remoteAddress };
}
