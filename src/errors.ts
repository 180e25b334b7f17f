/**
 * MQTT reason codes and the one error class of the library.
 *
 * @module
 */

/**
 * Every reason code of MQTT 5 §2.4, by name. Several names share a value (0x00 is Success, Normal
 * disconnection and Granted QoS 0), as in the specification.
 *
 * @example Check why a publish failed
 * ```ts
 * import { MqttError, ReasonCode } from "@x/mqtt";
 * const error: unknown = new MqttError(ReasonCode.NotAuthorized);
 * if (error instanceof MqttError && error.reasonCode === ReasonCode.NotAuthorized) {
 *   console.log("not allowed");
 * }
 * ```
 */
export const ReasonCode = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWillMessage: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** A reason code value of MQTT 5 §2.4. */
export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode];

/**
 * The text of each reason code, as a sentence for error messages. Where the specification names one value
 * several ways, the text is the one that reads right in an error (0x00: "Success").
 *
 * @example Describe a reason code
 * ```ts
 * import { REASON_TEXT, ReasonCode } from "@x/mqtt";
 * console.log(REASON_TEXT[ReasonCode.QuotaExceeded]); // "Quota exceeded"
 * ```
 */
export const REASON_TEXT: Readonly<Record<ReasonCode, string>> = {
  0x00: "Success",
  0x01: "Granted QoS 1",
  0x02: "Granted QoS 2",
  0x04: "Disconnect with will message",
  0x10: "No matching subscribers",
  0x11: "No subscription existed",
  0x18: "Continue authentication",
  0x19: "Re-authenticate",
  0x80: "Unspecified error",
  0x81: "Malformed packet",
  0x82: "Protocol error",
  0x83: "Implementation specific error",
  0x84: "Unsupported protocol version",
  0x85: "Client identifier not valid",
  0x86: "Bad user name or password",
  0x87: "Not authorized",
  0x88: "Server unavailable",
  0x89: "Server busy",
  0x8a: "Banned",
  0x8b: "Server shutting down",
  0x8c: "Bad authentication method",
  0x8d: "Keep alive timeout",
  0x8e: "Session taken over",
  0x8f: "Topic filter invalid",
  0x90: "Topic name invalid",
  0x91: "Packet identifier in use",
  0x92: "Packet identifier not found",
  0x93: "Receive maximum exceeded",
  0x94: "Topic alias invalid",
  0x95: "Packet too large",
  0x96: "Message rate too high",
  0x97: "Quota exceeded",
  0x98: "Administrative action",
  0x99: "Payload format invalid",
  0x9a: "Retain not supported",
  0x9b: "QoS not supported",
  0x9c: "Use another server",
  0x9d: "Server moved",
  0x9e: "Shared subscriptions not supported",
  0x9f: "Connection rate exceeded",
  0xa0: "Maximum connect time",
  0xa1: "Subscription identifiers not supported",
  0xa2: "Wildcard subscriptions not supported",
};

/**
 * Whether a number is a reason code defined by MQTT 5 §2.4.
 *
 * @param value The number to check.
 * @returns `true` when `value` is a defined reason code.
 *
 * @example Check a number
 * ```ts
 * import { isReasonCode } from "@x/mqtt";
 * console.log(isReasonCode(0x87), isReasonCode(0x03)); // true false
 * ```
 */
export function isReasonCode(value: number): value is ReasonCode {
  return Object.hasOwn(REASON_TEXT, value);
}

/**
 * The return codes of an MQTT 3.1 / 3.1.1 CONNACK (§3.2.2.3), mapped to reason codes by the codec.
 *
 * @example The last byte of a 3.1.1 CONNACK
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnAckReturnCode, ReasonCode, reasonCodeFromReturnCode } from "@x/mqtt";
 * import { encode } from "@x/mqtt/codec";
 * const reasonCode = ReasonCode.BadUserNameOrPassword;
 * const bytes = encode({ type: "connack", sessionPresent: false, reasonCode }, 4);
 * assert.equal(bytes[3], ConnAckReturnCode.BadUserNameOrPassword); // 4 (MQTT 3.1.1 §3.2.2.3)
 * assert.equal(reasonCodeFromReturnCode(ConnAckReturnCode.NotAuthorized), ReasonCode.NotAuthorized);
 * ```
 */
export const ConnAckReturnCode = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5,
} as const;

/** A return code of an MQTT 3.1 / 3.1.1 CONNACK. */
export type ConnAckReturnCode = (typeof ConnAckReturnCode)[keyof typeof ConnAckReturnCode];

const RETURN_CODE_TO_REASON: readonly ReasonCode[] = [
  ReasonCode.Success,
  ReasonCode.UnsupportedProtocolVersion,
  ReasonCode.ClientIdentifierNotValid,
  ReasonCode.ServerUnavailable,
  ReasonCode.BadUserNameOrPassword,
  ReasonCode.NotAuthorized,
];

/**
 * Maps an MQTT 3.1 / 3.1.1 CONNACK return code to the MQTT 5 reason code that means the same.
 *
 * @param returnCode A return code from 0 to 5.
 * @returns The matching reason code.
 * @throws {RangeError} When `returnCode` is not one of the six defined return codes.
 *
 * @example Map a refusal
 * ```ts
 * import { reasonCodeFromReturnCode, ReasonCode } from "@x/mqtt";
 * console.log(reasonCodeFromReturnCode(5) === ReasonCode.NotAuthorized); // true
 * ```
 */
export function reasonCodeFromReturnCode(returnCode: number): ReasonCode {
  const reason = RETURN_CODE_TO_REASON[returnCode];
  if (reason === undefined) throw new RangeError(`Cannot map CONNACK return code ${returnCode}: not 0 to 5`);
  return reason;
}

/**
 * Maps an MQTT 5 CONNACK reason code to the closest MQTT 3.1 / 3.1.1 return code, as a broker answering an
 * older client does: codes without a 3.x equivalent become "server unavailable", except the authentication and
 * authorization refusals, which keep their meaning.
 *
 * @param reasonCode An MQTT 5 CONNACK reason code.
 * @returns The 3.x return code to send.
 *
 * @example Answer a 3.1.1 client that is banned
 * ```ts
 * import { returnCodeFromReasonCode, ReasonCode } from "@x/mqtt";
 * console.log(returnCodeFromReasonCode(ReasonCode.Banned)); // 5 (not authorized)
 * ```
 */
export function returnCodeFromReasonCode(reasonCode: ReasonCode): ConnAckReturnCode {
  switch (reasonCode) {
    case ReasonCode.Success:
      return ConnAckReturnCode.Accepted;
    case ReasonCode.UnsupportedProtocolVersion:
      return ConnAckReturnCode.UnacceptableProtocolVersion;
    case ReasonCode.ClientIdentifierNotValid:
      return ConnAckReturnCode.IdentifierRejected;
    case ReasonCode.BadUserNameOrPassword:
    case ReasonCode.BadAuthenticationMethod:
      return ConnAckReturnCode.BadUserNameOrPassword;
    case ReasonCode.NotAuthorized:
    case ReasonCode.Banned:
      return ConnAckReturnCode.NotAuthorized;
    default:
      return ConnAckReturnCode.ServerUnavailable;
  }
}

/**
 * Where an {@linkcode MqttError} came from.
 *
 * @example A broker's refusal comes from the peer
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect, MqttError, ReasonCode } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker({ authenticate: () => ReasonCode.Banned });
 * const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 * await assert.rejects(
 *   connect(`mqtt://127.0.0.1:${port}`),
 *   (error) =>
 *     error instanceof MqttError && error.source === "peer" && error.reasonCode === ReasonCode.Banned,
 * );
 * assert.equal(new MqttError(ReasonCode.ProtocolError).source, "local"); // the default
 * await broker.close();
 * ```
 */
export type MqttErrorSource = "peer" | "local" | "transport";

/** Options of {@linkcode MqttError}. */
export interface MqttErrorOptions extends ErrorOptions {
  /**
   * `"peer"` when the reason code arrived in a packet, `"local"` when this side decided (a malformed packet
   * received, a request the protocol forbids), `"transport"` when the connection dropped. Default `"local"`.
   */
  source?: MqttErrorSource;
}

/**
 * A failed MQTT operation or connection, identified by its MQTT 5 reason code.
 *
 * @example Catch a refusal
 * ```ts
 * import { MqttError, ReasonCode } from "@x/mqtt";
 * try {
 *   throw new MqttError(ReasonCode.NotAuthorized, undefined, { source: "peer" });
 * } catch (error) {
 *   if (error instanceof MqttError) console.log(error.reasonCode, error.message); // 135 "Not authorized"
 * }
 * ```
 */
export class MqttError extends Error {
  /** The MQTT 5 reason code that says what went wrong. */
  readonly reasonCode: ReasonCode;
  /** Whether the peer sent the code, this side decided it, or the connection failed. */
  readonly source: MqttErrorSource;

  /**
   * Creates an error for a reason code.
   *
   * @param reasonCode The reason code.
   * @param message The message; the reason code's text when absent.
   * @param options The source and cause.
   */
  constructor(reasonCode: ReasonCode, message?: string, options: MqttErrorOptions = {}) {
    super(message ?? REASON_TEXT[reasonCode] ?? `Reason code ${reasonCode}`, options);
    this.name = "MqttError";
    this.reasonCode = reasonCode;
    this.source = options.source ?? "local";
  }
}
