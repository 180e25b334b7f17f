/**
 * What a client publishes at QoS 0, 1 and 2: the outgoing table kept with the session, the line of publishes
 * waiting for the server's Receive Maximum, resend after a reconnect, outbound topic aliases, the server's
 * Maximum Packet Size, and the PUBACK / PUBREC / PUBCOMP that complete a flow. It reads no packet of its own and
 * knows nothing of the connection's state: `ClientMachine` calls it only while connected.
 *
 * @module
 */

import { encode } from "../codec/encode.ts";
import type { ConnAckProperties, ProtocolVersion, PublishPacket, UserProperty } from "../codec/packet.ts";
import { MqttError, REASON_TEXT, ReasonCode } from "../errors.ts";
import type { PacketIdPool } from "./packet_ids.ts";
import type { TopicAliases } from "./_topic_aliases.ts";
import type { ClientEvent, ClientSessionState, Millis } from "./client_types.ts";
import type { ClientWire } from "./client_wire.ts";

/** An outgoing QoS 1 or 2 publish until its flow completes. */
interface Outgoing {
  packet: PublishPacket;
  /** `publish`: waiting for PUBACK / PUBREC; `pubrel`: PUBREL sent, waiting for PUBCOMP. */
  stage: "publish" | "pubrel";
  /** Whether the PUBLISH has gone out on some connection (counts against the send quota when it has). */
  sent: boolean;
  /** The connection (see `#connection`) whose server's Maximum Packet Size the PUBLISH was checked against. */
  checkedOn?: number;
}

/** The outbound half of a client: its unfinished QoS 1 and 2 publishes outlive connections. */
export class ClientOutbound {
  readonly #wire: ClientWire;
  readonly #version: ProtocolVersion;
  readonly #packetIds: PacketIdPool;
  /** Topic aliases both ways, for this connection (the machine clears them for a new one). */
  readonly #aliases: TopicAliases;
  #serverReceiveMaximum = 65_535;
  #serverMaximumPacketSize = Infinity;
  #serverTopicAliasMaximum = 0;
  #inFlightCount = 0;
  /** Counts accepted connections, so that a publish is checked once per server (see `Outgoing.checkedOn`). */
  #connection = 0;
  #outgoing = new Map<number, Outgoing>();
  /** Outgoing publishes not sent yet, oldest first from `#unsentHead`: the line waiting for send quota. */
  #unsent: Outgoing[] = [];
  #unsentHead = 0;

  constructor(wire: ClientWire, version: ProtocolVersion, packetIds: PacketIdPool, aliases: TopicAliases) {
    this.#wire = wire;
    this.#version = version;
    this.#packetIds = packetIds;
    this.#aliases = aliases;
  }

  /** How many QoS 1 and 2 publishes are unfinished (in flight or waiting for send quota). */
  get size(): number {
    return this.#outgoing.size;
  }

  /** The unfinished publishes as plain data, for `ClientMachine.exportSession`. */
  export(): ClientSessionState["outgoing"] {
    return [...this.#outgoing.values()].map((e) => ({
      packet: { ...e.packet },
      stage: e.stage,
      sent: e.sent,
    }));
  }

  /** Restores exported publishes (see `ClientMachine.restoreSession`). */
  restore(outgoing: ClientSessionState["outgoing"]): void {
    for (const entry of outgoing) {
      const packetId = entry.packet.packetId as number;
      this.#packetIds.reserve(packetId);
      this.#outgoing.set(packetId, { packet: { ...entry.packet }, stage: entry.stage, sent: entry.sent });
    }
    this.#queueUnsent();
  }

  /** A new connection starts: nothing is in flight on it yet. */
  restart(): void {
    this.#inFlightCount = 0;
  }

  /** The server accepted the connection: its limits apply from now on. */
  connected(properties: ConnAckProperties | undefined): void {
    this.#connection++;
    this.#serverReceiveMaximum = properties?.receiveMaximum ?? 65_535;
    this.#serverMaximumPacketSize = properties?.maximumPacketSize ?? Infinity;
    this.#serverTopicAliasMaximum = properties?.topicAliasMaximum ?? 0;
  }

  /**
   * Publishes a checked message on a connected client: QoS 0 goes now, QoS 1 and 2 join the line.
   *
   * @returns The packet identifier for QoS 1 and 2, else `undefined`.
   * @throws {MqttError} When the packet exceeds the server's maximum packet size, or all packet identifiers are
   *   in use.
   */
  publish(now: Millis, packet: PublishPacket): number | undefined {
    const error = this.#tooLarge(packet);
    if (error !== undefined) throw error;
    if (packet.qos === 0) {
      this.#sendPublish(now, packet);
      return undefined;
    }
    const packetId = this.#packetIds.allocate();
    if (packetId === undefined) {
      throw new MqttError(
        ReasonCode.QuotaExceeded,
        "Cannot publish: all 65535 packet identifiers are in use",
      );
    }
    packet.packetId = packetId;
    const entry: Outgoing = { packet, stage: "publish", sent: false, checkedOn: this.#connection };
    this.#outgoing.set(packetId, entry);
    this.#unsent.push(entry);
    return packetId;
  }

  /**
   * After CONNACK with the session: PUBREL and PUBLISH (with DUP) of what was in flight, in the original order
   * [MQTT-4.4.0-1] [MQTT-4.6.0-1], PUBLISH while the server's Receive Maximum allows; the rest joins the line.
   */
  resend(now: Millis): void {
    for (const entry of this.#outgoing.values()) {
      if (!entry.sent) continue;
      if (entry.stage === "pubrel") {
        this.#inFlightCount++;
        this.#wire.send(now, { type: "pubrel", packetId: entry.packet.packetId as number, reasonCode: 0 });
      } else if (this.#inFlightCount < this.#serverReceiveMaximum) {
        if (!this.#fits(entry)) continue;
        this.#inFlightCount++;
        entry.packet.dup = true;
        this.#sendPublish(now, entry.packet);
      } else {
        entry.sent = false;
      }
    }
    this.#queueUnsent();
  }

  /**
   * Handles a PUBACK, PUBREC or PUBCOMP: the next step of the flow, or its end with a `published` event.
   *
   * @returns Whether a flow ended, so that the line may move (see {@linkcode ClientOutbound.fillQuota}).
   */
  handleAck(
    now: Millis,
    type: "puback" | "pubrec" | "pubcomp",
    packetId: number,
    reasonCode: ReasonCode,
    properties: { reasonString?: string; userProperties?: UserProperty[] } | undefined,
  ): boolean {
    const entry = this.#outgoing.get(packetId);
    const expected = entry === undefined
      ? undefined
      : entry.packet.qos === 1
      ? "puback"
      : entry.stage === "publish"
      ? "pubrec"
      : "pubcomp";
    if (entry === undefined || !entry.sent || expected !== type) {
      if (type === "pubrec" && this.#version === 5) {
        // [MQTT-4.3.3-4] analogue: answer an unknown PUBREC so the server can finish.
        this.#wire.send(now, { type: "pubrel", packetId, reasonCode: ReasonCode.PacketIdentifierNotFound });
      }
      return false;
    }
    if (type === "pubrec" && reasonCode < 0x80) {
      entry.stage = "pubrel";
      this.#wire.send(now, { type: "pubrel", packetId, reasonCode: 0 }); // [MQTT-4.3.3-4]
      return false;
    }
    this.#outgoing.delete(packetId);
    this.#packetIds.release(packetId);
    this.#inFlightCount--;
    const event: ClientEvent = { type: "published", packetId, reasonCode };
    // PUBCOMP 0x92 answers a PUBREL resent after its PUBCOMP was lost: "not an error during recovery" (MQTT 5
    // §3.7.2.1), so the message counts as delivered.
    const recovered = type === "pubcomp" && reasonCode === ReasonCode.PacketIdentifierNotFound;
    if (reasonCode >= 0x80 && !recovered) {
      // [MQTT-4.4.0-2]: a negative acknowledgement ends the flow; it is not retried.
      event.error = new MqttError(
        reasonCode,
        `Publish to "${entry.packet.topic}" refused: ${properties?.reasonString ?? REASON_TEXT[reasonCode]}`,
        { source: "peer" },
      );
    }
    if (properties !== undefined) event.properties = properties;
    this.#wire.emit(event);
    return true;
  }

  /** Fails every unfinished publish with `error` and forgets them: the session is gone. */
  drop(error: MqttError): void {
    for (const packetId of this.#outgoing.keys()) {
      this.#packetIds.release(packetId);
      this.#wire.emit({ type: "published", packetId, reasonCode: ReasonCode.UnspecifiedError, error });
    }
    this.#outgoing.clear();
    this.#unsent = [];
    this.#unsentHead = 0;
  }

  /** Sends waiting publishes, oldest first, while the server's Receive Maximum allows [MQTT-4.9.0-2]. */
  fillQuota(now: Millis): void {
    const unsent = this.#unsent;
    while (this.#unsentHead < unsent.length && this.#inFlightCount < this.#serverReceiveMaximum) {
      const entry = unsent[this.#unsentHead++];
      if (entry.sent || this.#outgoing.get(entry.packet.packetId as number) !== entry) continue;
      if (!this.#fits(entry)) continue;
      entry.sent = true;
      this.#inFlightCount++;
      this.#sendPublish(now, entry.packet);
    }
    if (this.#unsentHead === unsent.length) {
      this.#unsent = [];
      this.#unsentHead = 0;
    } else if (this.#unsentHead >= 1024 && this.#unsentHead * 2 >= unsent.length) {
      this.#unsent = unsent.slice(this.#unsentHead);
      this.#unsentHead = 0;
    }
  }

  /**
   * Why a PUBLISH cannot go to this server, when it is larger than its Maximum Packet Size [MQTT-3.2.2-15]:
   * measured in its largest form, with the topic and a topic alias both (the first use of an alias).
   */
  #tooLarge(packet: PublishPacket): MqttError | undefined {
    if (this.#serverMaximumPacketSize === Infinity) return undefined;
    let largest = packet.qos > 0 ? { ...packet, packetId: 1 } : packet;
    if (this.#serverTopicAliasMaximum > 0) {
      largest = { ...largest, properties: { ...packet.properties, topicAlias: 0xffff } };
    }
    const size = encode(largest, this.#version).length;
    if (size <= this.#serverMaximumPacketSize) return undefined;
    return new MqttError(
      ReasonCode.PacketTooLarge,
      `Cannot publish ${size} bytes: the server's maximum packet size is ${this.#serverMaximumPacketSize} [MQTT-3.2.2-15]`,
    );
  }

  /**
   * Whether a publish can go to this connection's server: checked once per connection, since a server after a
   * reconnect may take less than the one it was published to; one it cannot take fails, since sending it would
   * only get the connection closed, again at every reconnect.
   */
  #fits(entry: Outgoing): boolean {
    if (entry.checkedOn === this.#connection) return true;
    entry.checkedOn = this.#connection;
    const error = this.#tooLarge(entry.packet);
    if (error === undefined) return true;
    const packetId = entry.packet.packetId as number;
    this.#outgoing.delete(packetId);
    this.#packetIds.release(packetId);
    this.#wire.emit({ type: "published", packetId, reasonCode: ReasonCode.PacketTooLarge, error });
    return false;
  }

  /** Sends a PUBLISH, applying an outgoing topic alias when the server allows them [MQTT-3.2.2-17]. */
  #sendPublish(now: Millis, packet: PublishPacket): void {
    if (this.#serverTopicAliasMaximum === 0) {
      this.#wire.send(now, packet);
      return;
    }
    let alias = this.#aliases.outbound(packet.topic);
    let wire: PublishPacket;
    if (alias !== undefined) {
      wire = { ...packet, topic: "", properties: { ...packet.properties, topicAlias: alias } };
    } else if ((alias = this.#aliases.nextOutbound(this.#serverTopicAliasMaximum)) > 0) {
      this.#aliases.addOutbound(packet.topic, alias);
      wire = { ...packet, properties: { ...packet.properties, topicAlias: alias } };
    } else {
      wire = packet;
    }
    this.#wire.send(now, wire);
  }

  /** Rebuilds the waiting line from the outgoing table, in its order: after a restore or a reconnect. */
  #queueUnsent(): void {
    this.#unsent = [];
    this.#unsentHead = 0;
    for (const entry of this.#outgoing.values()) if (!entry.sent) this.#unsent.push(entry);
  }
}
