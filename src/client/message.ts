/**
 * A received message as the async client hands it out.
 *
 * @module
 */

import type { PublishPacket, PublishProperties, QoS } from "../codec/packet.ts";
import { ownCopy } from "../bytes.ts";

const decoder = new TextDecoder();

/**
 * A message received on a subscription.
 *
 * @example Read a JSON message
 * ```ts
 * import { Message } from "@x/mqtt/client";
 * const message = new Message({
 *   type: "publish", topic: "t", payload: new TextEncoder().encode('{"a":1}'), qos: 0, retain: false, dup: false,
 * });
 * console.log(message.json()); // { a: 1 }
 * ```
 */
export class Message {
  /** The topic it was published to. */
  readonly topic: string;
  /**
   * The payload, a copy the message owns. A small one is a view of a buffer shared with other copies (see
   * `ownCopy` in `src/bytes.ts`): use its `byteOffset` and `byteLength` along with its `buffer`.
   */
  readonly payload: Uint8Array;
  /** The QoS it was delivered with. */
  readonly qos: QoS;
  /** Whether it is a retained message (sent because of the subscription, or kept as published). */
  readonly retain: boolean;
  /** Whether the server may have sent it before. */
  readonly dup: boolean;
  /** MQTT 5 properties (content type, response topic, correlation data, user properties…). */
  readonly properties: PublishProperties;

  /**
   * Wraps a PUBLISH packet; the payload is copied so the message does not pin the received chunk.
   *
   * @param packet The packet.
   */
  constructor(packet: PublishPacket) {
    this.topic = packet.topic;
    this.payload = ownCopy(packet.payload);
    this.qos = packet.qos;
    this.retain = packet.retain;
    this.dup = packet.dup;
    this.properties = packet.properties ?? {};
  }

  /**
   * The payload as UTF-8 text.
   *
   * @returns The decoded text (invalid sequences become U+FFFD).
   */
  text(): string {
    return decoder.decode(this.payload);
  }

  /**
   * The payload parsed as JSON.
   *
   * @returns The parsed value.
   * @throws {SyntaxError} When the payload is not JSON.
   */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}
