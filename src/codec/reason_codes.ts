/**
 * Which reason codes each MQTT 5 packet may carry (§2.4 and the reason code tables of §3).
 *
 * @module
 */

import type { ReasonCode } from "../errors.ts";

/**
 * The packets that carry reason codes.
 *
 * @example Look up what a packet may carry
 * ```ts
 * import assert from "node:assert/strict";
 * import { REASON_CODES_BY_PACKET, type ReasonCodePacket } from "@x/mqtt/codec";
 * const packet: ReasonCodePacket = "pubrel";
 * assert.deepEqual(REASON_CODES_BY_PACKET[packet], [0x00, 0x92]); // Success, Packet Identifier not found
 * ```
 */
export type ReasonCodePacket =
  | "connack"
  | "puback"
  | "pubrec"
  | "pubrel"
  | "pubcomp"
  | "suback"
  | "unsuback"
  | "disconnect"
  | "auth";

const PUBLISH_ACK: readonly ReasonCode[] = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const RELEASE: readonly ReasonCode[] = [0x00, 0x92];

/**
 * The reason codes each packet may carry in MQTT 5, in ascending order.
 *
 * @example List what a PUBACK may say
 * ```ts
 * import { REASON_CODES_BY_PACKET } from "@x/mqtt/codec";
 * console.log(REASON_CODES_BY_PACKET.puback.map((c) => c.toString(16))); // ["0", "10", "80", …]
 * ```
 */
export const REASON_CODES_BY_PACKET: Readonly<Record<ReasonCodePacket, readonly ReasonCode[]>> = {
  connack: [
    0x00,
    0x80,
    0x81,
    0x82,
    0x83,
    0x84,
    0x85,
    0x86,
    0x87,
    0x88,
    0x89,
    0x8a,
    0x8c,
    0x90,
    0x95,
    0x97,
    0x99,
    0x9a,
    0x9b,
    0x9c,
    0x9d,
    0x9f,
  ],
  puback: PUBLISH_ACK,
  pubrec: PUBLISH_ACK,
  pubrel: RELEASE,
  pubcomp: RELEASE,
  suback: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
  unsuback: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
  disconnect: [
    0x00,
    0x04,
    0x80,
    0x81,
    0x82,
    0x83,
    0x87,
    0x89,
    0x8b,
    0x8d,
    0x8e,
    0x8f,
    0x90,
    0x93,
    0x94,
    0x95,
    0x96,
    0x97,
    0x98,
    0x99,
    0x9a,
    0x9b,
    0x9c,
    0x9d,
    0x9e,
    0x9f,
    0xa0,
    0xa1,
    0xa2,
  ],
  auth: [0x00, 0x18, 0x19],
};

/**
 * The SUBACK return codes of MQTT 3.1 and 3.1.1: granted QoS 0, 1 or 2, and 0x80 failure
 * (MQTT 3.1.1 §3.9.3).
 *
 * @example A 3.1.1 SUBACK with an MQTT 5 code is malformed
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReasonCode } from "@x/mqtt";
 * import { PacketDecoder, SUBACK_RETURN_CODES_V3 } from "@x/mqtt/codec";
 * assert.deepEqual(SUBACK_RETURN_CODES_V3, [0x00, 0x01, 0x02, 0x80]);
 * const decoder = new PacketDecoder({ version: 4 });
 * decoder.push(new Uint8Array([0x90, 0x03, 0x00, 0x01, 0x87])); // packet id 1, return code 0x87
 * assert.throws(() => decoder.next(), { reasonCode: ReasonCode.MalformedPacket });
 * ```
 */
export const SUBACK_RETURN_CODES_V3: readonly ReasonCode[] = [0x00, 0x01, 0x02, 0x80];

const SETS = new Map<ReasonCodePacket, ReadonlySet<number>>(
  Object.entries(REASON_CODES_BY_PACKET).map((
    [packet, codes],
  ) => [packet as ReasonCodePacket, new Set(codes)]),
);

/**
 * Whether an MQTT 5 packet may carry a reason code.
 *
 * @param packet The packet type.
 * @param code The reason code.
 * @returns `true` when the code is defined for that packet.
 *
 * @example Check a PUBREL reason
 * ```ts
 * import { reasonCodeAllowed } from "@x/mqtt/codec";
 * console.log(reasonCodeAllowed("pubrel", 0x92), reasonCodeAllowed("pubrel", 0x10)); // true false
 * ```
 */
export function reasonCodeAllowed(packet: ReasonCodePacket, code: number): boolean {
  return SETS.get(packet)?.has(code) ?? false;
}
