/**
 * The topic aliases of one connection, both ways (MQTT 5 §3.3.2.3.4), for the client and the broker side alike:
 * it resolves and records aliases and says which reason code a bad one earns; it never sends or closes anything.
 *
 * @module
 */

import type { PublishPacket } from "../codec/packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";

/**
 * The aliases the peer set (inbound) and the ones this side handed out (outbound), for one connection: a new
 * connection starts with none [MQTT-3.3.2-7]. The maps are made with their first alias.
 */
export class TopicAliases {
  #inbound: Map<number, string> | undefined;
  #outbound: Map<string, number> | undefined;

  /**
   * Resolves the topic alias of a received PUBLISH in place: an empty topic takes the alias's topic, a topic
   * sets (or replaces) the alias's mapping (MQTT 5 §3.3.4).
   *
   * @param packet The PUBLISH; its `topic` is set when it was empty.
   * @param alias Its Topic Alias property.
   * @param maximum The Topic Alias Maximum this side announced (0: none accepted).
   * @returns `undefined` when resolved, else the error to close with: 0x94 Topic Alias invalid for an alias of 0
   *   or above the maximum [MQTT-3.3.2-10] [MQTT-3.3.2-12]; 0x82 Protocol Error for an empty topic with an
   *   alias that has no mapping yet (MQTT 5 §3.3.4).
   */
  resolve(packet: PublishPacket, alias: number, maximum: number): MqttError | undefined {
    if (alias < 1 || alias > maximum) {
      return new MqttError(
        ReasonCode.TopicAliasInvalid,
        `Cannot accept topic alias ${alias}: the maximum is ${maximum} [MQTT-3.3.2-10] [MQTT-3.3.2-12]`,
      );
    }
    if (packet.topic !== "") {
      (this.#inbound ??= new Map()).set(alias, packet.topic);
      return undefined;
    }
    const topic = this.#inbound?.get(alias);
    if (topic === undefined) {
      return new MqttError(
        ReasonCode.ProtocolError,
        `Cannot accept topic alias ${alias} with an empty topic: the alias was never set (MQTT 5 §3.3.4)`,
      );
    }
    packet.topic = topic;
    return undefined;
  }

  /**
   * The outbound alias already standing for a topic.
   *
   * @param topic The topic name.
   * @returns The alias, or `undefined` when the topic has none.
   */
  outbound(topic: string): number | undefined {
    return this.#outbound?.get(topic);
  }

  /**
   * The alias a new topic would get: aliases are handed out from 1 up, never above the peer's Topic Alias
   * Maximum [MQTT-3.2.2-17] [MQTT-3.3.2-11], and never taken back within a connection.
   *
   * @param maximum The peer's Topic Alias Maximum.
   * @returns The next free alias, or 0 when all are taken.
   */
  nextOutbound(maximum: number): number {
    const next = (this.#outbound?.size ?? 0) + 1;
    return next <= maximum ? next : 0;
  }

  /**
   * Records an outbound alias once the PUBLISH that sets it is sent.
   *
   * @param topic The topic name.
   * @param alias The alias from {@linkcode TopicAliases.nextOutbound}.
   */
  addOutbound(topic: string, alias: number): void {
    (this.#outbound ??= new Map()).set(topic, alias);
  }

  /** Forgets every alias, both ways: for a new connection. */
  clear(): void {
    this.#inbound = undefined;
    this.#outbound = undefined;
  }
}
