/**
 * A scripted server for ClientMachine tests: it decodes what the client sends and encodes what the test wants
 * the server to say, with the codec only. No sockets, no sleeping.
 */

import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type { ConnAckProperties, Packet, ProtocolVersion } from "../../src/codec/packet.ts";
import {
  type ClientEvent,
  ClientMachine,
  type ClientMachineOptions,
} from "../../src/machine/client_machine.ts";
import { concat } from "../../src/bytes.ts";

export class FakeServer {
  readonly client: ClientMachine;
  readonly version: ProtocolVersion;
  #decoder: PacketDecoder;
  now = 0;

  constructor(options: Partial<ClientMachineOptions> = {}) {
    this.client = new ClientMachine({ clientId: "c1", ...options });
    this.version = this.client.protocolVersion;
    this.#decoder = new PacketDecoder();
  }

  /** Every packet the client has sent since the last call. */
  received(): Packet[] {
    const packets: Packet[] = [];
    for (let bytes = this.client.pollTransmit(); bytes; bytes = this.client.pollTransmit()) {
      this.#decoder.push(bytes);
      for (let p = this.#decoder.next(); p; p = this.#decoder.next()) packets.push(p);
    }
    return packets;
  }

  /** Every event the client has reported since the last call. */
  events(): ClientEvent[] {
    const events: ClientEvent[] = [];
    for (let e = this.client.pollEvent(); e; e = this.client.pollEvent()) events.push(e);
    return events;
  }

  /** Sends packets from the server, in one chunk. */
  send(...packets: Packet[]): void {
    this.client.handleBytes(this.now, concat(packets.map((p) => encode(p, this.version))));
  }

  /** Starts a new connection: a fresh server-side decoder, CONNECT sent, CONNACK answered. */
  connect(
    options: Parameters<ClientMachine["connect"]>[1] = {},
    connack: { sessionPresent?: boolean; properties?: ConnAckProperties } = {},
  ): Packet[] {
    this.#decoder = new PacketDecoder();
    this.client.connect(this.now, options);
    const sent = this.received();
    this.send({
      type: "connack",
      sessionPresent: connack.sessionPresent ?? false,
      reasonCode: 0,
      ...(connack.properties ? { properties: connack.properties } : {}),
    });
    return sent;
  }

  /** Jumps the clock to the client's next deadline and runs it. */
  advance(): number {
    const at = this.client.pollTimeout();
    if (at === undefined) throw new Error("The client has no deadline");
    this.now = at;
    this.client.handleTimeout(this.now);
    return at;
  }
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
