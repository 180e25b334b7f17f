/**
 * The packet trace of `logPackets`: decodes a copy of a connection's traffic and logs each packet at the
 * `debug` level. It must never log payloads or passwords, nor let a decoding failure reach the connection.
 *
 * @module
 */

import { PacketDecoder } from "../codec/decoder.ts";
import { describePacket } from "../codec/describe.ts";
import { type BrokerOptions, log } from "./broker_options.ts";
import { type Connection, who } from "./connection.ts";

/**
 * Decodes a copy of the traffic and logs each packet; a trace that fails to decode stops quietly.
 *
 * @param options The broker's options, for its `log`.
 * @param connection Whose traffic.
 * @param direction Read from the client, or written to it.
 * @param bytes What was read or is written.
 */
export function tracePackets(
  options: BrokerOptions,
  connection: Connection,
  direction: "in" | "out",
  bytes: Uint8Array,
): void {
  const version = connection.session.version;
  if (direction === "in") connection.traceIn ??= new PacketDecoder();
  else if (version !== undefined) connection.traceOut ??= new PacketDecoder({ version });
  const decoder = direction === "in" ? connection.traceIn : connection.traceOut;
  if (decoder === undefined) return;
  try {
    decoder.push(bytes.slice());
    for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
      log(
        options,
        "debug",
        `${direction === "in" ? "Received" : "Sending"} ${describePacket(packet)} ${
          direction === "in" ? "from" : "to"
        } "${who(connection)}"`,
      );
    }
  } catch {
    if (direction === "in") connection.traceIn = undefined;
    else connection.traceOut = undefined;
  }
}
