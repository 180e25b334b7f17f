/**
 * What a broker-side connection sends to its client: QoS 0/1/2 deliveries, the flight window under the client's
 * Receive Maximum, resend on reconnect, outbound topic aliases and the client's Maximum Packet Size, and the
 * PUBACK / PUBREC / PUBCOMP that complete them. It reads no packets of its own and emits no events.
 *
 * @module
 */

import type { ProtocolVersion, PubRecPacket } from "../codec/packet.ts";
import { ReasonCode } from "../errors.ts";
import type { Outbox } from "./_outbox.ts";
import {
  type Delivery,
  type EncodedPublish,
  encodePublish,
  encodingKey,
  publishEncodeCounter,
  publishPacket,
  remainingSeconds,
} from "./_delivery.ts";
import { TopicAliases } from "./_topic_aliases.ts";
import type { ClientLimits } from "./session_limits.ts";
import type { SessionState } from "./session_state.ts";
import type { Millis } from "./client_machine.ts";

/**
 * The outbound half of one broker-side connection. The machine that holds it sets `version`, `client` and
 * `session` as the handshake learns them, and calls `deliver` only once the client is connected.
 */
export class SessionOutbound {
  readonly #outbox: Outbox;
  /** The client's protocol level. */
  version: ProtocolVersion = 4;
  /** The client's limits (MQTT 5 CONNECT properties). */
  client: ClientLimits;
  /** The delivery state this connection sends from. */
  session: SessionState;
  /** Whether the driver said the connection's writes are backed up. */
  congested = false;
  /** How many QoS 0 messages were dropped because the connection was congested. */
  droppedWhileCongested = 0;
  /**
   * Packet identifiers of deliveries in flight from an earlier connection that wait for the client's Receive
   * Maximum to be resent on this one, in their order [MQTT-4.4.0-1] [MQTT-3.3.4-9].
   */
  #unsent: Set<number> | undefined;
  /** Outbound topic aliases; made with the first one. */
  #aliases: TopicAliases | undefined;

  constructor(outbox: Outbox, client: ClientLimits, session: SessionState) {
    this.#outbox = outbox;
    this.client = client;
    this.session = session;
  }

  /** Sends a delivery to a connected client now, or queues it (see `SessionMachine.deliver`). */
  deliver(now: Millis, delivery: Delivery): void {
    if (delivery.qos === 0) {
      if (this.congested) this.droppedWhileCongested++;
      else this.#sendPublish(now, delivery, 0, false);
      return;
    }
    const session = this.session;
    if (
      this.congested || this.#unsent !== undefined || session.queuedCount > 0 ||
      session.inflight.size >= this.client.receiveMaximum
    ) {
      session.enqueue(now, delivery);
      return;
    }
    this.#startDelivery(now, delivery);
  }

  /**
   * After CONNACK with the session present, what was in flight from the last connection goes again: PUBLISH with
   * DUP and PUBREL, with the original packet identifiers, in order [MQTT-4.4.0-1] [MQTT-4.6.0-1]; PUBLISH only
   * while this connection's Receive Maximum allows [MQTT-3.3.4-9] (the client may have lowered it), the rest as
   * acknowledgements come.
   */
  resend(now: Millis): void {
    let active = 0;
    for (const entry of this.session.inflight.values()) {
      if (entry.released) {
        active++;
        this.#outbox.push({ type: "pubrel", packetId: entry.packetId, reasonCode: 0 }, this.version);
      } else if (active >= this.client.receiveMaximum || this.#unsent !== undefined) {
        (this.#unsent ??= new Set()).add(entry.packetId);
      } else if (this.#sendPublish(now, entry, entry.packetId, true)) {
        active++;
      } else {
        // Too large for this connection's Maximum Packet Size: dropped as if sent [MQTT-3.1.2-25].
        this.session.complete(entry.packetId);
      }
    }
  }

  /** PUBACK: a QoS 1 delivery is complete. */
  handlePubAck(now: Millis, packetId: number): void {
    const entry = this.session.inflight.get(packetId);
    if (entry !== undefined && entry.qos === 1) {
      // Also one still to resend: the client had it from the last connection.
      this.#unsent?.delete(packetId);
      this.session.complete(packetId);
      this.pump(now);
    }
  }

  /** PUBREC: PUBREL follows, or a refusal completes the delivery. */
  handlePubRec(now: Millis, packet: PubRecPacket): void {
    const entry = this.session.inflight.get(packet.packetId);
    if (entry === undefined || entry.qos !== 2) {
      this.#outbox.push(
        { type: "pubrel", packetId: packet.packetId, reasonCode: ReasonCode.PacketIdentifierNotFound },
        this.version,
      );
    } else if (packet.reasonCode >= 0x80) {
      // [MQTT-4.4.0-2] a refusal completes the delivery.
      this.#unsent?.delete(packet.packetId);
      this.session.complete(packet.packetId);
      this.pump(now);
    } else {
      // [MQTT-4.3.3-4] PUBREL with the same identifier; the PUBLISH is never sent again [MQTT-4.3.3-6].
      this.#unsent?.delete(packet.packetId);
      this.session.release(entry);
      this.#outbox.push({ type: "pubrel", packetId: packet.packetId, reasonCode: 0 }, this.version);
    }
  }

  /** PUBCOMP: a QoS 2 delivery is complete. */
  handlePubComp(now: Millis, packetId: number): void {
    const entry = this.session.inflight.get(packetId);
    if (entry !== undefined && entry.released) {
      this.session.complete(packetId);
      this.pump(now);
    }
  }

  /** Sends a QoS 1 or 2 delivery with a new packet identifier, or drops it. */
  #startDelivery(now: Millis, delivery: Delivery): void {
    const expiry = remainingSeconds(delivery.message, now);
    if (expiry === 0) { // [MQTT-3.3.2-5]
      this.session.countExpired();
      return;
    }
    const entry = this.session.startInflight(delivery);
    if (entry === undefined) {
      this.session.enqueue(now, delivery);
      return;
    }
    if (!this.#sendPublish(now, entry, entry.packetId, false)) {
      // [MQTT-3.1.2-25] too large for the client: behave as if it had been sent and completed.
      this.session.complete(entry.packetId);
    }
  }

  /** How many QoS 1 and 2 deliveries count against the client's Receive Maximum on this connection. */
  #active(): number {
    return this.session.inflight.size - (this.#unsent?.size ?? 0);
  }

  /**
   * Sends, while the client's Receive Maximum allows [MQTT-4.9.0-2], the deliveries of an earlier connection
   * still to resend, then the queued ones.
   */
  pump(now: Millis): void {
    const session = this.session;
    const unsent = this.#unsent;
    if (unsent !== undefined) {
      for (const packetId of unsent) {
        if (this.congested || this.#active() >= this.client.receiveMaximum) return;
        unsent.delete(packetId);
        const entry = session.inflight.get(packetId);
        if (entry === undefined || entry.released) continue;
        // [MQTT-3.1.2-25] too large for this connection: dropped as if sent.
        if (!this.#sendPublish(now, entry, packetId, true)) session.complete(packetId);
      }
      this.#unsent = undefined;
    }
    while (
      !this.congested && session.queuedCount > 0 && session.inflight.size < this.client.receiveMaximum
    ) {
      const delivery = session.dequeue(now);
      if (delivery === undefined) break;
      if (delivery.qos === 0) this.#sendPublish(now, delivery, 0, false);
      else this.#startDelivery(now, delivery);
    }
  }

  /**
   * Encodes (or reuses the turn's shared encoding of) a PUBLISH, patches in the packet identifier and DUP, and
   * queues it. Returns `false` when the packet is too large for the client, or the message expired.
   */
  #sendPublish(now: Millis, delivery: Delivery, packetId: number, dup: boolean): boolean {
    const version = this.version;
    const message = delivery.message;
    let expiry: number | undefined;
    let alias = 0;
    let withTopic = true;
    let newAlias = false;
    if (version === 5) {
      expiry = remainingSeconds(message, now);
      if (expiry === 0) {
        // [MQTT-3.3.2-5] expired before delivery started; a resend of one in flight goes out anyway.
        if (!dup) return false;
        expiry = 1;
      }
      if (this.client.topicAliasMaximum > 0) {
        const aliases = this.#aliases ??= new TopicAliases();
        const known = aliases.outbound(message.topic);
        if (known !== undefined) {
          alias = known;
          withTopic = false;
        } else {
          // [MQTT-3.3.2-11] within the client's Topic Alias Maximum.
          alias = aliases.nextOutbound(this.client.topicAliasMaximum);
          newAlias = alias > 0;
        }
      }
    }
    const subscriptionIdentifiers = version === 5 ? delivery.subscriptionIdentifiers : undefined;
    // The deliveries of this turn share encodings; without that cache the PUBLISH is written straight into the
    // outbox with its own packet identifier, without a buffer of its own.
    const cache = message.encodings;
    let key: string | number = 0;
    let encoded: EncodedPublish | undefined;
    if (cache !== undefined) {
      key = subscriptionIdentifiers === undefined && alias === 0 && expiry === undefined
        ? (version === 5 ? 8 : 0) + delivery.qos * 2 + (delivery.retain ? 1 : 0) // 3.1 and 3.1.1 PUBLISH are alike
        : encodingKey(
          version,
          delivery.qos,
          delivery.retain,
          subscriptionIdentifiers,
          alias,
          withTopic,
          expiry,
        );
      encoded = cache.get(key);
    }
    if (encoded === undefined) {
      const packet = publishPacket(
        message,
        version,
        delivery.qos,
        delivery.retain,
        subscriptionIdentifiers,
        alias,
        withTopic,
        expiry,
      );
      if (cache === undefined) {
        if (delivery.qos > 0) {
          packet.packetId = packetId;
          packet.dup = dup;
        }
        publishEncodeCounter.count++;
        // [MQTT-3.1.2-24] never larger than the client's Maximum Packet Size.
        if (this.#outbox.push(packet, version, this.client.maximumPacketSize) < 0) return false;
        this.#noteAlias(newAlias, message.topic, alias);
        return true;
      }
      encoded = encodePublish(packet, version);
      cache.set(key, encoded);
    }
    const bytes = encoded.bytes;
    // [MQTT-3.1.2-24] never larger than the client's Maximum Packet Size.
    if (bytes.length > this.client.maximumPacketSize) return false;
    this.#noteAlias(newAlias, message.topic, alias);
    const offset = encoded.packetIdOffset;
    if (offset < 0) {
      this.#outbox.pushBytes(bytes);
    } else {
      // Share the encoding: only the packet identifier (and DUP [MQTT-3.3.1-1]) differ per delivery, patched
      // into a copy (one allocation and one memcpy, cheaper than splicing views).
      const copy = bytes.slice();
      if (dup) copy[0] |= 0x08;
      copy[offset] = packetId >> 8;
      copy[offset + 1] = packetId & 0xff;
      this.#outbox.pushBytes(copy);
    }
    return true;
  }

  /** Records a topic alias just sent for the first time. */
  #noteAlias(newAlias: boolean, topic: string, alias: number): void {
    if (newAlias) this.#aliases!.addOutbound(topic, alias);
  }
}
