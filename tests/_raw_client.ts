/**
 * A bare MQTT client for broker tests: packets in and out through the codec over a node:net socket, nothing
 * automatic (no acknowledgements, no keep-alive), so a test controls every packet and sees every one.
 *
 * @module
 */

import { encode } from "../src/codec/encode.ts";
import { PacketDecoder } from "../src/codec/decoder.ts";
import type {
  ConnAckPacket,
  ConnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
} from "../src/codec/packet.ts";
import { nodeTcpTransport } from "./_mosquitto.ts";

/** A connected raw client. */
export interface RawClient {
  /** The CONNACK the broker answered with. */
  readonly connack: ConnAckPacket;
  /** Sends packets. */
  send(...packets: Packet[]): Promise<void>;
  /** The next packet (optionally the next that matches), or an error after `ms`. */
  next(match?: (packet: Packet) => boolean, ms?: number): Promise<Packet>;
  /** The next `count` PUBLISH packets, in order, other packets skipped. */
  publishes(count: number, ms?: number): Promise<PublishPacket[]>;
  /** Resolves when the broker closes the connection. */
  readonly ended: Promise<void>;
  /** Closes the socket without DISCONNECT. */
  close(): void;
}

/**
 * Connects over TCP to 127.0.0.1 and exchanges CONNECT / CONNACK.
 *
 * @param port The broker's port.
 * @param connect The CONNECT fields besides the version (clean start defaults to true, keep-alive to 0).
 * @param version The protocol level. Default 5.
 * @returns The client, whatever the CONNACK said.
 */
export async function rawConnect(
  port: number,
  connect: Partial<Omit<ConnectPacket, "type" | "protocolVersion">> & { clientId: string },
  version: ProtocolVersion = 5,
): Promise<RawClient> {
  const transport = await nodeTcpTransport(port);
  const writer = transport.writable.getWriter();
  const reader = transport.readable.getReader();
  const decoder = new PacketDecoder({ version });
  const inbox: Packet[] = [];
  let waiting: (() => void) | undefined;
  let done = false;
  let ended!: () => void;
  const endedPromise = new Promise<void>((resolve) => ended = resolve);
  (async () => {
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        decoder.push(value);
        for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
          // Payloads are views of the chunk: keep copies.
          inbox.push(p.type === "publish" ? { ...p, payload: p.payload.slice() } : p);
        }
        waiting?.();
      }
    } catch { /* the socket failed: treated as closed */ }
    done = true;
    ended();
    waiting?.();
  })();
  const next = async (match: (packet: Packet) => boolean = () => true, ms = 5000): Promise<Packet> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const index = inbox.findIndex(match);
      if (index !== -1) return inbox.splice(index, 1)[0];
      if (done) throw new Error(`The connection closed before the packet came (${inbox.length} others)`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`No packet within ${ms} ms (${inbox.map((p) => p.type).join(", ")})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      waiting = undefined;
    }
  };
  const send = async (...packets: Packet[]) => {
    for (const packet of packets) await writer.write(encode(packet, version));
  };
  await send({ type: "connect", protocolVersion: version, cleanStart: true, keepAlive: 0, ...connect });
  const connack = await next();
  if (connack.type !== "connack") throw new Error(`Expected CONNACK, got ${connack.type}`);
  return {
    connack,
    send,
    next,
    async publishes(count, ms = 5000) {
      const out: PublishPacket[] = [];
      while (out.length < count) out.push(await next((p) => p.type === "publish", ms) as PublishPacket);
      return out;
    },
    ended: endedPromise,
    close: () => void transport.close(),
  };
}
