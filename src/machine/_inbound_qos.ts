/**
 * The receiving side of QoS 1 and 2, as both ends of the wire apply it: what a received PUBLISH with a packet
 * identifier is (new, a resend still awaiting its acknowledgement, a QoS 2 resend before PUBREL) and how a
 * PUBREL is answered. Pure rules: the callers keep the state and send the packets.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../codec/packet.ts";
import { ReasonCode } from "../errors.ts";

/** A new message: report it, acknowledge it once decided. */
export const INBOUND_NEW = 0;
/** A resend of a message whose acknowledgement has not left yet: drop it, the acknowledgement will come. */
export const INBOUND_PENDING = 1;
/** A resend of a QoS 2 message already acknowledged with PUBREC, before PUBREL: PUBREC again [MQTT-4.3.3-10]. */
export const INBOUND_RECEIVED = 2;

/**
 * What a received QoS 1 or 2 PUBLISH is: {@linkcode INBOUND_NEW}, {@linkcode INBOUND_PENDING} or
 * {@linkcode INBOUND_RECEIVED}. A duplicate is never delivered again [MQTT-4.3.3-10].
 *
 * @param qos The PUBLISH's QoS.
 * @param packetId Its packet identifier.
 * @param pending Whether a PUBLISH with this identifier awaits its acknowledgement.
 * @param receivedQoS2 The QoS 2 identifiers acknowledged with PUBREC and not yet released by PUBREL.
 */
export function inboundStep(
  qos: QoS,
  packetId: number,
  pending: boolean,
  receivedQoS2: ReadonlySet<number>,
): number {
  if (pending) return INBOUND_PENDING;
  if (qos === 2 && receivedQoS2.has(packetId)) return INBOUND_RECEIVED;
  return INBOUND_NEW;
}

/**
 * The reason code of the PUBCOMP that answers a PUBREL [MQTT-4.3.3-11]; afterwards the identifier is new
 * [MQTT-4.3.3-12]. An unknown identifier gets 0x92 Packet Identifier not found (MQTT 5 only) when `strict`, else
 * 0x00: the broker side answers 0x00, as mosquitto does, because MQTT.js fails a publish on a PUBCOMP 0x92
 * although it was delivered (a PUBREL resent after its PUBCOMP was lost).
 *
 * @param known Whether the identifier was awaiting PUBREL.
 * @param version The protocol level.
 * @param strict Whether an unknown identifier gets 0x92.
 */
export function pubCompCode(known: boolean, version: ProtocolVersion, strict: boolean): ReasonCode {
  return known || !strict || version < 5 ? ReasonCode.Success : ReasonCode.PacketIdentifierNotFound;
}
