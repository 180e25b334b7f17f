/**
 * How a broker-side connection writes the answers that may carry a reason string and user properties (CONNACK,
 * DISCONNECT, AUTH, PUBACK, PUBREC, SUBACK, UNSUBACK): trimmed to what the client asked for and can take. It
 * decides no answer itself.
 *
 * @module
 */

import { encode } from "../codec/encode.ts";
import type {
  AuthPacket,
  ConnAckPacket,
  DisconnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PubAckPacket,
  PubRecPacket,
  SubAckPacket,
  UnsubAckPacket,
} from "../codec/packet.ts";
import type { Outbox } from "./_outbox.ts";
import type { ClientLimits } from "./session_limits.ts";

/** A packet that may carry a reason string and user properties. */
export type Answer =
  | ConnAckPacket
  | DisconnectPacket
  | AuthPacket
  | PubAckPacket
  | PubRecPacket
  | SubAckPacket
  | UnsubAckPacket;

/**
 * Queues an answer: its reason string and user properties are left out of an acknowledgement when the client
 * asked for no problem information [MQTT-3.1.2-29], and out of any of them that would exceed the client's
 * Maximum Packet Size [MQTT-3.2.2-19] [MQTT-3.2.2-20] [MQTT-3.4.2-2] [MQTT-3.4.2-3] [MQTT-3.9.2-1]
 * [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.11.2-2] [MQTT-3.14.2-3] [MQTT-3.14.2-4] [MQTT-3.15.2-2] [MQTT-3.15.2-3].
 *
 * @param outbox Where the bytes go.
 * @param packet The answer.
 * @param version The client's protocol level.
 * @param client The client's limits.
 */
export function pushAnswer(
  outbox: Outbox,
  packet: Answer,
  version: ProtocolVersion,
  client: ClientLimits,
): void {
  let properties = packet.properties as Properties | undefined;
  const ack = packet.type !== "connack" && packet.type !== "disconnect";
  if (properties !== undefined && ack && !client.requestProblemInformation) {
    const { reasonString: _r, userProperties: _u, ...rest } = properties;
    properties = rest;
    packet = { ...packet, properties } as typeof packet;
  }
  let bytes = encode(packet, version);
  if (bytes.length > client.maximumPacketSize && properties !== undefined) {
    const { reasonString: _r, userProperties: _u, ...rest } = properties as Properties;
    bytes = encode({ ...packet, properties: rest } as Packet, version);
  }
  outbox.pushBytes(bytes);
}
