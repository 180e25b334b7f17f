/**
 * What a broker-side connection receives in PUBLISH: the checks a client's PUBLISH must pass (Maximum QoS, retain,
 * subscription identifiers, topic aliases, Receive Maximum) and the table of QoS 1 and 2 messages reported to the
 * driver and not yet acknowledged. It emits no events and never closes: it says what `SessionMachine` must do.
 *
 * @module
 */

import { reasonCodeAllowed } from "../codec/reason_codes.ts";
import type { ProtocolVersion, PublishPacket } from "../codec/packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import type { Outbox } from "./_outbox.ts";
import { INBOUND_NEW, INBOUND_RECEIVED, inboundStep } from "./_inbound_qos.ts";
import { TopicAliases } from "./_topic_aliases.ts";
import { protocolError } from "./session_connect.ts";
import type { Limits } from "./session_limits.ts";
import type { SessionState } from "./session_state.ts";

/** Marks an awaited inbound PUBLISH whose message the driver routed (see `SessionMachine.routed`). */
const ROUTED = 4;

/**
 * The inbound PUBLISH side of one broker-side connection. The QoS 2 identifiers it owns from receipt live in the
 * session state passed in, so that a resend on the next connection is recognised as a duplicate.
 */
export class SessionInbound {
  readonly #limits: Limits;
  readonly #outbox: Outbox;
  // Made when first needed: an idle connection holds none.
  /**
   * Inbound QoS 1 and 2 PUBLISH reported to the driver and not yet acknowledged, by packet identifier: the QoS,
   * plus {@linkcode ROUTED} once the driver said the message is routed.
   */
  #awaitingAck: Map<number, number> | undefined;
  /** How many of them are QoS 1 (the QoS 2 ones are in the session's inbound identifiers). */
  #awaitingQoS1 = 0;
  /** Inbound topic aliases; made with the first one. */
  #aliases: TopicAliases | undefined;

  constructor(limits: Limits, outbox: Outbox) {
    this.#limits = limits;
    this.#outbox = outbox;
  }

  /**
   * Checks a PUBLISH from the client and records it when it awaits an acknowledgement; answers a QoS 2 duplicate
   * with PUBREC again [MQTT-4.3.3-10].
   *
   * @param packet The PUBLISH; its topic alias is resolved and removed in place.
   * @param version The client's protocol level.
   * @param session The session state that owns the inbound QoS 2 identifiers.
   * @returns The error to close with; `true` when the driver is to get a `publish` event; `false` for a duplicate.
   */
  receive(packet: PublishPacket, version: ProtocolVersion, session: SessionState): MqttError | boolean {
    if (packet.qos > this.#limits.maximumQoS) {
      // [MQTT-3.2.2-11] the client must not exceed the Maximum QoS of the CONNACK.
      return new MqttError(ReasonCode.QoSNotSupported, `Cannot accept PUBLISH at QoS ${packet.qos}`);
    }
    if (packet.retain && !this.#limits.retainAvailable) {
      // [MQTT-3.2.2-14]
      return new MqttError(ReasonCode.RetainNotSupported, "Cannot accept a retained PUBLISH");
    }
    const properties = packet.properties;
    if (properties !== undefined) {
      if (properties.subscriptionIdentifiers !== undefined) {
        // [MQTT-3.3.4-6]
        return protocolError("a subscription identifier in a PUBLISH from a client [MQTT-3.3.4-6]");
      }
      const alias = properties.topicAlias;
      if (alias !== undefined) {
        const error = (this.#aliases ??= new TopicAliases()).resolve(
          packet,
          alias,
          this.#limits.topicAliasMaximum,
        );
        if (error !== undefined) return error;
        const { topicAlias: _, ...rest } = properties;
        packet.properties = rest;
      }
    }
    const packetId = packet.packetId;
    if (packetId === undefined) return true;
    const awaiting = this.#awaitingAck ??= new Map();
    const inboundQoS2 = session.inboundQoS2;
    const step = inboundStep(packet.qos, packetId, awaiting.has(packetId), inboundQoS2);
    if (step !== INBOUND_NEW) {
      // [MQTT-4.3.3-10] a duplicate before PUBREL: PUBREC again, no new delivery; a resend of one the driver is
      // still deciding on: nothing.
      if (step === INBOUND_RECEIVED) this.#outbox.push({ type: "pubrec", packetId, reasonCode: 0 }, version);
      return false;
    }
    if (
      version === 5 && !packet.dup &&
      this.#awaitingQoS1 + inboundQoS2.size >= this.#limits.receiveMaximum
    ) {
      // MQTT 5 §3.3.4: a new message beyond the Receive Maximum we advertised [MQTT-3.3.4-7]. A resend (DUP)
      // beyond it is taken instead: a client resending after a reconnect may count differently, and a
      // disconnect would only bring the same resend back, again and again.
      return new MqttError(
        ReasonCode.ReceiveMaximumExceeded,
        `Cannot accept PUBLISH ${packetId}: more than ${this.#limits.receiveMaximum} unacknowledged [MQTT-3.3.4-7]`,
      );
    }
    awaiting.set(packetId, packet.qos);
    if (packet.qos === 1) this.#awaitingQoS1++;
    // Owned from receipt: a resend on the next connection (after a takeover) is recognised as a duplicate. The
    // driver routes the message even if the connection closes before it decided, or refuses it, which frees
    // the identifier.
    if (packet.qos === 2) session.addInboundQoS2(packetId);
    return true;
  }

  /** See `SessionMachine.awaitsRouting`. */
  awaitsRouting(packetId: number): boolean {
    const awaiting = this.#awaitingAck?.get(packetId);
    return awaiting !== undefined && (awaiting & ROUTED) === 0;
  }

  /** See `SessionMachine.routed`. */
  routed(packetId: number, session: SessionState): void {
    const awaiting = this.#awaitingAck?.get(packetId);
    if (awaiting === undefined || (awaiting & ROUTED) !== 0) return;
    this.#awaitingAck!.set(packetId, awaiting | ROUTED);
    if (awaiting === 2) session.journal?.inboundChanged(session);
  }

  /**
   * The QoS of an inbound PUBLISH awaiting its acknowledgement.
   *
   * @param packetId The PUBLISH's packet identifier.
   * @returns 1 or 2, or 0 when none awaits one with this identifier.
   */
  awaited(packetId: number): number {
    return (this.#awaitingAck?.get(packetId) ?? 0) & 3;
  }

  /**
   * Takes an awaited PUBLISH off the table as the driver acknowledges it; a refused QoS 2 message frees its
   * identifier [MQTT-4.3.3-9].
   *
   * @param packetId The PUBLISH's packet identifier, from {@linkcode SessionInbound.awaited}.
   * @param qos Its QoS, from {@linkcode SessionInbound.awaited}.
   * @param reasonCode The PUBACK or PUBREC reason code.
   * @param session The session state that owns the inbound QoS 2 identifiers.
   * @throws {RangeError} When the reason code is not one of a PUBACK (QoS 1) or a PUBREC (QoS 2).
   */
  settle(packetId: number, qos: number, reasonCode: ReasonCode, session: SessionState): void {
    if (!reasonCodeAllowed(qos === 1 ? "puback" : "pubrec", reasonCode)) {
      throw new RangeError(
        `Cannot acknowledge packet ${packetId} with reason code 0x${reasonCode.toString(16)}: not a ${
          qos === 1 ? "PUBACK" : "PUBREC"
        } code`,
      );
    }
    this.#awaitingAck!.delete(packetId);
    if (qos === 1) this.#awaitingQoS1--;
    if (qos === 2) {
      // [MQTT-4.3.3-9] after a refusal the identifier is free for a new message (also when the connection
      // closed while the driver decided: the client's resend is then a new message).
      if (reasonCode >= 0x80) session.removeInboundQoS2(packetId);
      // Routed by now: from here on a store keeps the identifier (see awaitsRouting).
      else session.journal?.inboundChanged(session);
    }
  }
}
