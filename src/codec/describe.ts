/**
 * One-line descriptions of packets, for debug logs.
 *
 * @module
 */

import type { Packet } from "./packet.ts";

/**
 * Describes a packet in one line, in the manner of mosquitto's debug output. Payloads and passwords are never
 * shown; a PUBLISH shows its payload's size.
 *
 * @param packet The packet.
 * @returns The description, such as `PUBLISH (d0, q1, r0, m7, 'a/b', ... (5 bytes))`.
 *
 * @example Describe a PUBLISH
 * ```ts
 * import { describePacket } from "@x/mqtt/codec";
 * const payload = new TextEncoder().encode("hello");
 * console.log(describePacket({ type: "publish", topic: "a/b", payload, qos: 1, packetId: 7, retain: false, dup: false }));
 * // PUBLISH (d0, q1, r0, m7, 'a/b', ... (5 bytes))
 * ```
 */
export function describePacket(packet: Packet): string {
  switch (packet.type) {
    case "connect":
      return `CONNECT (p${packet.protocolVersion}, c${+packet
        .cleanStart}, k${packet.keepAlive}, id '${packet.clientId}'${
        packet.username === undefined ? "" : ", u '" + packet.username + "'"
      }${packet.will === undefined ? "" : ", will '" + packet.will.topic + "'"})`;
    case "connack":
      return `CONNACK (sp${+packet.sessionPresent}, rc0x${packet.reasonCode.toString(16)})`;
    case "publish":
      return `PUBLISH (d${+packet.dup}, q${packet.qos}, r${+packet.retain}, m${
        packet.packetId ?? 0
      }, '${packet.topic}', ... (${packet.payload.length} bytes))`;
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return `${packet.type.toUpperCase()} (m${packet.packetId}, rc0x${packet.reasonCode.toString(16)})`;
    case "subscribe":
      return `SUBSCRIBE (m${packet.packetId}, ${
        packet.subscriptions.map((s) => `'${s.topicFilter}' q${s.qos}`).join(", ")
      })`;
    case "suback":
    case "unsuback":
      return `${packet.type.toUpperCase()} (m${packet.packetId}, ${packet.reasonCodes.join(", ")})`;
    case "unsubscribe":
      return `UNSUBSCRIBE (m${packet.packetId}, ${packet.topicFilters.map((f) => `'${f}'`).join(", ")})`;
    case "pingreq":
    case "pingresp":
      return packet.type.toUpperCase();
    case "disconnect":
    case "auth":
      return `${packet.type.toUpperCase()} (rc0x${packet.reasonCode.toString(16)})`;
    default: {
      const unreachable: never = packet;
      return String((unreachable as Packet).type);
    }
  }
}
