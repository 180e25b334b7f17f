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

/**
 * See `SessionMachine.acknowledge`: settles the PUBLISH, then (unless `closed`) sends PUBACK or PUBREC.
 *
 * @param outbox The connection's outbox.
 * @param hs Its handshake, which writes answers within the client's limits.
 * @param out Its outbound side, which holds the session.
 * @param inbound Its inbound side, which awaits the acknowledgement.
 * @param packetId The PUBLISH's packet identifier.
 * @param reasonCode The answer.
 * @param properties MQTT 5 properties of the answer.
 * @param closed Whether the connection is closed: then nothing is sent.
 */
export function acknowledge(
  outbox: Outbox,
  hs: SessionHandshake,
  out: SessionOutbound,
  inbound: SessionInbound,
  packetId: number,
  reasonCode: ReasonCode,
  properties: AckProperties | undefined,
  closed: boolean,
): void {
  const qos = inbound.awaited(packetId);
  if (qos === 0) {
    if (closed) return;
    throw new Error(`Cannot acknowledge packet ${packetId}: no PUBLISH awaits it`);
  }
  inbound.settle(packetId, qos, reasonCode, out.session);
  if (closed) return;
  if (properties === undefined) {
    outbox.push(
      { type: qos === 1 ? "puback" : "pubrec", packetId, reasonCode },
      hs.version as ProtocolVersion,
    );
  } else {
    hs.answer({ type: qos === 1 ? "puback" : "pubrec", packetId, reasonCode, properties });
  }
}

/**
 * See `SessionMachine.grant`.
 *
 * @param hs The connection's handshake, which writes answers within the client's limits.
 * @param packetId The SUBSCRIBE's packet identifier.
 * @param reasonCodes One per subscription.
 * @param properties MQTT 5 properties of the SUBACK.
 */
export function grant(
  hs: SessionHandshake,
  packetId: number,
  reasonCodes: readonly ReasonCode[],
  properties: AckProperties | undefined,
): void {
  hs.answer({ type: "suback", packetId, reasonCodes: [...reasonCodes], properties });
}

/**
 * See `SessionMachine.acknowledgeUnsubscribe`: the reason codes go to MQTT 5 clients only.
 *
 * @param hs The connection's handshake.
 * @param packetId The UNSUBSCRIBE's packet identifier.
 * @param reasonCodes One per filter.
 * @param properties MQTT 5 properties of the UNSUBACK.
 */
export function unsubscribed(
  hs: SessionHandshake,
  packetId: number,
  reasonCodes: readonly ReasonCode[],
  properties: AckProperties | undefined,
): void {
  const codes = hs.version === 5 ? [...reasonCodes] : EMPTY_CODES;
  hs.answer({ type: "unsuback", packetId, reasonCodes: codes, properties });
}

/**
 * Answers a PUBREL with PUBCOMP [MQTT-4.3.3-11]; afterwards the identifier is new [MQTT-4.3.3-12]. An unknown
 * identifier is a PUBREL resent after its PUBCOMP was lost: 0x00 (see `pubCompCode`).
 *
 * @param outbox The connection's outbox.
 * @param hs Its handshake, which knows the client's protocol level.
 * @param out Its outbound side, which holds the session.
 * @param packetId The PUBREL's packet identifier.
 */
export function pubComp(outbox: Outbox, hs: SessionHandshake, out: SessionOutbound, packetId: number): void {
  const known = out.session.removeInboundQoS2(packetId);
  const version = hs.version as ProtocolVersion;
  outbox.push({ type: "pubcomp", packetId, reasonCode: pubCompCode(known, version, false) }, version);
}

/**
 * Answers a PINGREQ [MQTT-3.12.4-1].
 *
 * @param outbox The connection's outbox.
 * @param hs Its handshake, which knows the client's protocol level.
 */
export function pingResp(outbox: Outbox, hs: SessionHandshake): void {
  outbox.push({ type: "pingresp" }, hs.version as ProtocolVersion);
}
