/**
 * The replies a broker-side connection owes for what the client sent once connected: PUBACK or PUBREC, SUBACK and
 * UNSUBACK as the driver decides them, PUBCOMP for a PUBREL and PINGRESP for a PINGREQ. It decides no reply, emits
 * no events and never closes: `SessionMachine` calls it while the connection is open.
 *
 * @module
 */

import type { AckProperties, ProtocolVersion } from "../codec/packet.ts";
import type { ReasonCode } from "../errors.ts";
import type { Outbox } from "./_outbox.ts";
import { pubCompCode } from "./_inbound_qos.ts";
import type { SessionHandshake } from "./session_handshake.ts";
import type { SessionInbound } from "./session_inbound.ts";
import type { SessionOutbound } from "./session_outbound.ts";

const EMPTY_CODES: ReasonCode[] = [];

/** The replies of one broker-side connection, written at the client's protocol level and within its limits. */
export class SessionReplies {
  readonly #outbox: Outbox;
  readonly #hs: SessionHandshake;
  readonly #out: SessionOutbound;
  readonly #inbound: SessionInbound;

  constructor(outbox: Outbox, hs: SessionHandshake, out: SessionOutbound, inbound: SessionInbound) {
    this.#outbox = outbox;
    this.#hs = hs;
    this.#out = out;
    this.#inbound = inbound;
  }

  /** See `SessionMachine.acknowledge`: settles the PUBLISH, then (unless `closed`) sends PUBACK or PUBREC. */
  acknowledge(
    packetId: number,
    reasonCode: ReasonCode,
    properties: AckProperties | undefined,
    closed: boolean,
  ): void {
    const qos = this.#inbound.awaited(packetId);
    if (qos === 0) {
      if (closed) return;
      throw new Error(`Cannot acknowledge packet ${packetId}: no PUBLISH awaits it`);
    }
    this.#inbound.settle(packetId, qos, reasonCode, this.#out.session);
    if (closed) return;
    if (properties === undefined) {
      this.#outbox.push(
        { type: qos === 1 ? "puback" : "pubrec", packetId, reasonCode },
        this.#hs.version as ProtocolVersion,
      );
    } else {
      this.#hs.answer({ type: qos === 1 ? "puback" : "pubrec", packetId, reasonCode, properties });
    }
  }

  /** See `SessionMachine.grant`. */
  grant(packetId: number, reasonCodes: readonly ReasonCode[], properties: AckProperties | undefined): void {
    this.#hs.answer({ type: "suback", packetId, reasonCodes: [...reasonCodes], properties });
  }

  /** See `SessionMachine.acknowledgeUnsubscribe`: the reason codes go to MQTT 5 clients only. */
  unsubscribed(
    packetId: number,
    reasonCodes: readonly ReasonCode[],
    properties: AckProperties | undefined,
  ): void {
    const codes = this.#hs.version === 5 ? [...reasonCodes] : EMPTY_CODES;
    this.#hs.answer({ type: "unsuback", packetId, reasonCodes: codes, properties });
  }

  /**
   * Answers a PUBREL with PUBCOMP [MQTT-4.3.3-11]; afterwards the identifier is new [MQTT-4.3.3-12]. An unknown
   * identifier is a PUBREL resent after its PUBCOMP was lost: 0x00 (see `pubCompCode`).
   */
  pubComp(packetId: number): void {
    const known = this.#out.session.removeInboundQoS2(packetId);
    const version = this.#hs.version as ProtocolVersion;
    this.#outbox.push({ type: "pubcomp", packetId, reasonCode: pubCompCode(known, version, false) }, version);
  }

  /** Answers a PINGREQ [MQTT-3.12.4-1]. */
  pingResp(): void {
    this.#outbox.push({ type: "pingresp" }, this.#hs.version as ProtocolVersion);
  }
}
