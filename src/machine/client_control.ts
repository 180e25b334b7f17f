/**
 * A client's SUBSCRIBE and UNSUBSCRIBE requests until their SUBACK / UNSUBACK: the packets waiting (kept with the
 * session and sent again on the next connection), the resubscriptions the machine makes on its own, and the
 * `subscribed` / `unsubscribed` events. It changes no local subscription: `SubscriptionRegistry` holds them.
 *
 * @module
 */

import type { ProtocolVersion, SubscribePacket, UnsubscribePacket, UserProperty } from "../codec/packet.ts";
import { MqttError, REASON_TEXT, ReasonCode } from "../errors.ts";
import type { PacketIdPool } from "./packet_ids.ts";
import type { SubscriptionRegistry } from "./subscription_registry.ts";
import type { ClientEvent, Millis, SubscriptionRequest } from "./client_types.ts";
import type { ClientWire } from "./client_wire.ts";

/** The SUBSCRIBE and UNSUBSCRIBE packets of a client that await their acknowledgement. */
export class ClientControl {
  readonly #wire: ClientWire;
  readonly #version: ProtocolVersion;
  readonly #packetIds: PacketIdPool;
  readonly #subscriptions: SubscriptionRegistry;
  readonly #waiting = new Map<number, SubscribePacket | UnsubscribePacket>();
  /** Packet ids of SUBSCRIBE packets the machine sent on its own (resubscribing), not reported as events. */
  readonly #internal = new Set<number>();

  constructor(
    wire: ClientWire,
    version: ProtocolVersion,
    packetIds: PacketIdPool,
    subscriptions: SubscriptionRegistry,
  ) {
    this.#wire = wire;
    this.#version = version;
    this.#packetIds = packetIds;
    this.#subscriptions = subscriptions;
  }

  /** Sends a SUBSCRIBE now (call it only while connected). @returns Its packet identifier. */
  subscribe(
    now: Millis,
    requests: Required<SubscriptionRequest>[],
    identifier: number | undefined,
    userProperties?: UserProperty[],
  ): number {
    const packetId = this.#allocate();
    const packet: SubscribePacket = { type: "subscribe", packetId, subscriptions: requests };
    if (this.#version === 5 && (identifier !== undefined || userProperties !== undefined)) {
      packet.properties = {};
      if (identifier !== undefined) packet.properties.subscriptionIdentifier = identifier;
      if (userProperties !== undefined) packet.properties.userProperties = userProperties;
    }
    this.#waiting.set(packetId, packet);
    this.#wire.send(now, packet);
    return packetId;
  }

  /** Queues an UNSUBSCRIBE: sent now, or when the next connection starts (the server may hold the session). */
  unsubscribe(now: Millis, filters: string[], connected: boolean): number | undefined {
    if (filters.length === 0) return undefined;
    const packetId = this.#allocate();
    const packet: UnsubscribePacket = { type: "unsubscribe", packetId, topicFilters: filters };
    this.#waiting.set(packetId, packet);
    if (connected) this.#wire.send(now, packet);
    return packetId;
  }

  /**
   * After CONNACK: sends the waiting requests again, then, when the server kept no session, subscribes again to
   * every filter on the wire they do not cover, grouped by the identifier each filter had.
   */
  resume(now: Millis, sessionPresent: boolean): void {
    const waiting = [...this.#waiting.values()];
    for (const packet of waiting) this.#wire.send(now, packet);
    if (sessionPresent || this.#subscriptions.wireSize === 0) return;
    const covered = new Set<string>();
    for (const packet of waiting) {
      if (packet.type === "subscribe") { for (const s of packet.subscriptions) covered.add(s.topicFilter); }
    }
    for (const [identifier, requests] of this.#subscriptions.resubscriptions(covered)) {
      this.#internal.add(this.subscribe(now, requests, identifier));
    }
  }

  /**
   * Completes a request with its SUBACK or UNSUBACK and reports it, unless the machine made it on its own.
   *
   * @returns The protocol error when no such request is waiting: the machine closes with it.
   */
  handleAck(type: "suback" | "unsuback", packetId: number, reasonCodes: ReasonCode[]): MqttError | undefined {
    const packet = this.#waiting.get(packetId);
    if (packet === undefined || (type === "suback") !== (packet.type === "subscribe")) {
      return new MqttError(
        ReasonCode.ProtocolError,
        `Cannot accept ${type.toUpperCase()} ${packetId}: no such request is waiting`,
      );
    }
    this.#waiting.delete(packetId);
    this.#packetIds.release(packetId);
    if (this.#internal.delete(packetId)) return undefined;
    const event: ClientEvent = {
      type: type === "suback" ? "subscribed" : "unsubscribed",
      packetId,
      reasonCodes,
    };
    const failed = reasonCodes.find((code) => code >= 0x80);
    if (failed !== undefined) {
      event.error = new MqttError(
        failed,
        `${type === "suback" ? "Subscribe" : "Unsubscribe"} refused: ${REASON_TEXT[failed]}`,
        { source: "peer" },
      );
    }
    this.#wire.emit(event);
    return undefined;
  }

  #allocate(): number {
    const packetId = this.#packetIds.allocate();
    if (packetId === undefined) {
      throw new MqttError(ReasonCode.QuotaExceeded, "Cannot send: all 65535 packet identifiers are in use");
    }
    return packetId;
  }
}
