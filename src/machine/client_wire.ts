/**
 * What a client machine hands its driver: the bytes to write (with the time of the last write, for keep-alive)
 * and the events to poll, shared by `ClientMachine` and the parts it is made of. It decides nothing.
 *
 * @module
 */

import type { Packet, ProtocolVersion } from "../codec/packet.ts";
import { Outbox } from "./_outbox.ts";
import type { ClientEvent, Millis } from "./client_types.ts";

/** The client's outputs: packets to send and events to report. */
export class ClientWire {
  readonly outbox = new Outbox();
  readonly #version: ProtocolVersion;
  readonly #onPacket: ((direction: "in" | "out", packet: Packet) => void) | undefined;
  /** When the last packet was queued: the keep-alive runs from it. */
  lastSent: Millis = 0;
  #events: ClientEvent[] = [];
  #eventIndex = 0;

  constructor(
    version: ProtocolVersion,
    onPacket: ((direction: "in" | "out", packet: Packet) => void) | undefined,
  ) {
    this.#version = version;
    this.#onPacket = onPacket;
  }

  /** Queues a packet to send. */
  send(now: Millis, packet: Packet): void {
    this.outbox.push(packet, this.#version);
    this.lastSent = now;
    this.#onPacket?.("out", packet);
  }

  /** Queues an event for `ClientMachine.pollEvent`. */
  emit(event: ClientEvent): void {
    this.#events.push(event);
  }

  /** The next event, or `undefined` when there are none. */
  pollEvent(): ClientEvent | undefined {
    if (this.#eventIndex >= this.#events.length) {
      if (this.#events.length > 0) {
        this.#events = [];
        this.#eventIndex = 0;
      }
      return undefined;
    }
    return this.#events[this.#eventIndex++];
  }

  /** For a new connection: drops the unsent bytes and the events already polled (the others stay). */
  restart(): void {
    this.outbox.clear();
    this.#events = this.#events.slice(this.#eventIndex);
    this.#eventIndex = 0;
  }
}
