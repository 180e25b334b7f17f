/**
 * The MQTT codec: packets of MQTT 3.1, 3.1.1 and 5.0 to bytes and back, and the topic rules.
 *
 * @example Round-trip a packet
 * ```ts
 * import { encode, PacketDecoder } from "@x/mqtt/codec";
 * const decoder = new PacketDecoder({ version: 5 });
 * decoder.push(encode({ type: "disconnect", reasonCode: 0 }, 5));
 * console.log(decoder.next()); // { type: "disconnect", reasonCode: 0 }
 * ```
 *
 * @module
 */

export * from "./packet.ts";
export { describePacket } from "./describe.ts";
export { encode } from "./encode.ts";
export {
  REASON_CODES_BY_PACKET,
  reasonCodeAllowed,
  type ReasonCodePacket,
  SUBACK_RETURN_CODES_V3,
} from "./reason_codes.ts";
export { MAX_PACKET_SIZE, PacketDecoder, type PacketDecoderOptions } from "./decoder.ts";
export {
  parseSharedSubscription,
  type SharedSubscription,
  topicFilterProblem,
  topicMatches,
  topicNameProblem,
  validateTopicFilter,
  validateTopicName,
} from "./topic.ts";
