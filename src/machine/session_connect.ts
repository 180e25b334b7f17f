/**
 * The CONNECT / AUTH / CONNACK handshake of a broker-side connection: reading a CONNECT (its will, its limits,
 * the refusals the server decides alone), checking AUTH, the CONNACK properties, and the answer to a CONNECT that
 * fails to decode. Functions over packets and limits; the connection's state stays in `SessionMachine`.
 *
 * @module
 */

import { reasonCodeAllowed } from "../codec/reason_codes.ts";
import type {
  AuthPacket,
  ConnAckProperties,
  ConnectPacket,
  Packet,
  ProtocolVersion,
  Will,
} from "../codec/packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import type { Limits } from "./session_limits.ts";
import type { SessionState } from "./session_state.ts";

/** The most packets kept between a CONNECT and its answer. */
export const MAX_HELD = 1000;

/** Options of {@linkcode SessionMachine.accept}. */
export interface AcceptOptions {
  /** Whether the session existed (MQTT 5 §3.2.2.1.1); must be `false` after a clean start [MQTT-3.2.2-2]. */
  sessionPresent?: boolean;
  /** The delivery state to send from: the resumed session's, or a new one by default. */
  state?: SessionState;
  /**
   * Extra CONNACK properties (MQTT 5): an assigned client identifier, a server keep-alive, authentication
   * data, a reason string… Receive Maximum, Topic Alias Maximum and Maximum Packet Size come from the options
   * of the machine.
   */
  properties?: ConnAckProperties;
}

/**
 * Makes what the machine keeps of a CONNECT its own: the will's payload and correlation data, the password and
 * authentication data are copied out of the received chunk [MQTT-3.1.2-7].
 *
 * @param packet The CONNECT; changed in place.
 * @param limits The server's limits.
 * @returns The CONNACK reason code to refuse the CONNECT with, or `undefined` when the driver decides.
 */
export function readConnect(packet: ConnectPacket, limits: Limits): ReasonCode | undefined {
  const version = packet.protocolVersion;
  if (packet.will !== undefined) {
    // [MQTT-3.1.2-7] the will is kept with the session: keep our own copy of its payload.
    const will: Will = { ...packet.will, payload: packet.will.payload.slice() };
    if (will.properties?.correlationData !== undefined) {
      will.properties = { ...will.properties, correlationData: will.properties.correlationData.slice() };
    }
    packet.will = will; // the kept CONNECT must not pin the received chunk either
  }
  if (packet.password !== undefined) packet.password = packet.password.slice();
  if (packet.properties?.authenticationData !== undefined) {
    packet.properties.authenticationData = packet.properties.authenticationData.slice();
  }
  if (packet.will !== undefined && version === 5) {
    // [MQTT-3.2.2-12] [MQTT-3.2.2-13] a will the server cannot publish is refused.
    if (packet.will.qos > limits.maximumQoS) return ReasonCode.QoSNotSupported;
    if (packet.will.retain && !limits.retainAvailable) return ReasonCode.RetainNotSupported;
  }
  if (packet.clientId === "" && (version < 5 && !packet.cleanStart || version === 3)) {
    // [MQTT-3.1.3-8] (3.1.1) a zero-byte client identifier needs Clean Session; 3.1 requires one.
    return ReasonCode.ClientIdentifierNotValid;
  }
  return undefined;
}

/**
 * The properties of an MQTT 5 CONNACK 0x00: the driver's, plus the server's limits where they differ from the
 * protocol's defaults.
 */
export function connAckProperties(limits: Limits, extra: ConnAckProperties | undefined): ConnAckProperties {
  const properties: ConnAckProperties = { ...extra };
  if (limits.receiveMaximum !== 65_535) properties.receiveMaximum = limits.receiveMaximum;
  if (limits.topicAliasMaximum > 0) properties.topicAliasMaximum = limits.topicAliasMaximum;
  if (limits.maximumPacketSize !== undefined) properties.maximumPacketSize = limits.maximumPacketSize;
  // [MQTT-3.2.2-9] a server without QoS 2 says so.
  if (limits.maximumQoS < 2) properties.maximumQoS = limits.maximumQoS as 0 | 1;
  if (!limits.retainAvailable) properties.retainAvailable = false;
  return properties;
}

/**
 * Checks an AUTH from the client and makes its authentication data the machine's own.
 *
 * @param packet The AUTH; changed in place.
 * @param method The CONNECT's authentication method.
 * @param connected Whether the client was accepted (a re-authentication) or the CONNECT waits for an answer.
 * @returns The error to close with, or `undefined` when the driver is to answer it.
 */
export function checkAuth(
  packet: AuthPacket,
  method: string | undefined,
  connected: boolean,
): MqttError | undefined {
  if (method === undefined || packet.properties?.authenticationMethod !== method) {
    // [MQTT-4.12.0-7] no AUTH without a method in CONNECT; [MQTT-4.12.1-1] re-authentication keeps it.
    return protocolError("AUTH without the CONNECT's authentication method [MQTT-4.12.0-7]");
  }
  const expected = connected ? ReasonCode.ReAuthenticate : ReasonCode.ContinueAuthentication;
  if (packet.reasonCode !== expected && packet.reasonCode !== ReasonCode.ContinueAuthentication) {
    return protocolError(`AUTH with reason code ${packet.reasonCode}`);
  }
  if (packet.properties?.authenticationData !== undefined) {
    packet.properties.authenticationData = packet.properties.authenticationData.slice();
  }
  return undefined;
}

/**
 * How to answer a CONNECT that failed to decode, learnt from its first bytes: the protocol level to answer in and
 * the CONNACK reason code, or `undefined` to close without CONNACK.
 */
export function connectFailureAnswer(
  head: Uint8Array | undefined,
  error: MqttError,
): { version: ProtocolVersion; reasonCode: ReasonCode } | undefined {
  const protocol = connectProtocol(head);
  const level = protocol?.level;
  if (error.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
    // A level we do not speak (0-2, 6-255, or 3 with "MQTT", 4 or 5 with "MQIsdp"): CONNACK 0x01 unacceptable
    // protocol level in the 3.1.1 form, 20 02 00 01, then close. 3.1.1 requires it [MQTT-3.1.2-2]; MQTT 5
    // leaves the answer open [MQTT-3.1.2-2], and a client that does not know MQTT 5 can read only this form.
    // mosquitto 2.0.11 answers all of these with the same four bytes (checked with a raw socket).
    return { version: level === 3 ? 3 : 4, reasonCode: error.reasonCode };
  }
  // A malformed MQTT 5 CONNECT: a CONNACK with the reason code (MQTT 5 §3.1.4), then close.
  if (level === 5 && protocol?.mqtt === true) {
    return { version: 5, reasonCode: connAckCode(error.reasonCode) };
  }
  // Otherwise close without CONNACK: a malformed 3.1.1 CONNECT [MQTT-3.1.4-1], or a protocol name other than
  // "MQTT" and "MQIsdp", which may be some other protocol [MQTT-3.1.2-1] (mosquitto closes too).
  return undefined;
}

/** Keeps a packet that arrived between CONNECT and its answer, or `undefined` when too many wait. */
export function holdPacket(held: Packet[] | undefined, packet: Packet): Packet[] | undefined {
  if ((held?.length ?? 0) >= MAX_HELD) return undefined;
  (held ??= []).push(packet);
  return held;
}

/** A Protocol Error 0x82 about something the client sent. */
export function protocolError(what: string): MqttError {
  return new MqttError(ReasonCode.ProtocolError, `Cannot accept ${what}`);
}

/** The reason code as a CONNACK may carry it. */
export function connAckCode(code: ReasonCode): ReasonCode {
  return reasonCodeAllowed("connack", code) ? code : ReasonCode.UnspecifiedError;
}

/** The reason code as a DISCONNECT may carry it. */
export function disconnectCode(code: ReasonCode): ReasonCode {
  return reasonCodeAllowed("disconnect", code) ? code : ReasonCode.ProtocolError;
}

/**
 * The protocol level of a CONNECT from its first bytes, and whether its protocol name is "MQTT" (rather than
 * "MQIsdp" or anything else), or `undefined` when the bytes do not tell.
 */
function connectProtocol(head: Uint8Array | undefined): { level: number; mqtt: boolean } | undefined {
  if (head === undefined || head[0] !== 0x10) return undefined;
  let position = 1;
  while (position < head.length && head[position] & 0x80) position++;
  position++;
  if (position + 2 > head.length) return undefined;
  const nameLength = (head[position] << 8) | head[position + 1];
  const level = head[position + 2 + nameLength];
  if (level === undefined) return undefined;
  const mqtt = nameLength === 4 && head[position + 2] === 0x4d && head[position + 3] === 0x51 &&
    head[position + 4] === 0x54 && head[position + 5] === 0x54;
  return { level, mqtt };
}

/** The first 16 bytes received, joined across chunks. */
export function joinHead(head: Uint8Array | undefined, bytes: Uint8Array): Uint8Array {
  if (head === undefined) return bytes.slice(0, 16);
  const joined = new Uint8Array(Math.min(16, head.length + bytes.length));
  joined.set(head);
  joined.set(bytes.subarray(0, joined.length - head.length), head.length);
  return joined;
}
