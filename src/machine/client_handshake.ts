/**
 * A client's side of the CONNECT / CONNACK handshake: the client identifier (as assigned by the server), the
 * CONNECT it builds, the CONNACK it checks, and what that CONNACK allows a publish. It sends nothing and keeps no
 * connection state: `ClientMachine` sends the CONNECT and acts on the answer.
 *
 * @module
 */

import type { ConnAckPacket, ConnectPacket, ProtocolVersion, QoS } from "../codec/packet.ts";
import { validateTopicName } from "../codec/topic.ts";
import { MqttError, REASON_TEXT, ReasonCode } from "../errors.ts";
import type { ConnectOptions } from "./client_types.ts";

const DEFAULT_KEEP_ALIVE = 60;

/** The CONNECT of the current connection and the CONNACK that answered it. */
export class ClientHandshake {
  readonly #version: ProtocolVersion;
  readonly #clientIdOption: string;
  readonly #keepAlive: number;
  /** The client identifier, as assigned by the server when the option was empty. */
  clientId: string;
  /** The CONNECT of the current connection. */
  connect: ConnectPacket | undefined;
  /** The CONNACK of the current connection, once connected. */
  connack: ConnAckPacket | undefined;
  /** The Topic Alias Maximum this CONNECT offered the server (0: none). */
  incomingAliasMaximum = 0;

  /** @throws {RangeError} When the keep-alive is not 0 to 65535 seconds. */
  constructor(version: ProtocolVersion, clientId: string, keepAlive: number | undefined) {
    this.#version = version;
    this.#clientIdOption = clientId;
    this.clientId = clientId;
    this.#keepAlive = keepAlive ?? DEFAULT_KEEP_ALIVE;
    if (!Number.isInteger(this.#keepAlive) || this.#keepAlive < 0 || this.#keepAlive > 0xffff) {
      throw new RangeError(`Cannot create client: keep-alive ${this.#keepAlive} is not 0 to 65535 seconds`);
    }
  }

  /** The keep-alive of this connection, in seconds: the server's when it set one [MQTT-3.1.2-21]. */
  get keepAlive(): number {
    return this.connack?.properties?.serverKeepAlive ?? this.#keepAlive;
  }

  /** Whether the server kept the session. MQTT 3.1 has no flag: a client that asked to keep it assumes so. */
  get sessionPresent(): boolean {
    if (this.#version === 3) return !(this.connect as ConnectPacket).cleanStart;
    return (this.connack as ConnAckPacket).sessionPresent;
  }

  /**
   * Builds the CONNECT of a new connection and forgets the previous CONNACK.
   *
   * @throws {MqttError} When the will's topic is invalid (nothing changes then).
   */
  start(options: ConnectOptions): ConnectPacket {
    const cleanStart = options.cleanStart ?? true;
    const connect: ConnectPacket = {
      type: "connect",
      protocolVersion: this.#version,
      clientId: this.#clientIdOption === "" && !cleanStart ? this.clientId : this.#clientIdOption,
      cleanStart,
      keepAlive: this.#keepAlive,
    };
    if (options.bridge === true && this.#version !== 5) connect.bridge = true;
    if (options.username !== undefined) connect.username = options.username;
    if (options.password !== undefined) connect.password = options.password;
    if (options.will !== undefined) {
      validateTopicName(options.will.topic);
      connect.will = options.will;
    }
    if (this.#version === 5 && options.properties !== undefined) connect.properties = options.properties;
    this.incomingAliasMaximum = connect.properties?.topicAliasMaximum ?? 0;
    this.connect = connect;
    this.connack = undefined;
    return connect;
  }

  /**
   * Takes the CONNACK to the CONNECT (and the client identifier it assigns) unless it refuses the connection
   * [MQTT-4.13.2-1] or breaks the rules.
   *
   * @returns The error to close with: the refusal (reason 0x80 or above, from the peer) or a protocol error.
   */
  accept(connack: ConnAckPacket): MqttError | undefined {
    if (connack.reasonCode >= 0x80) {
      return new MqttError(
        connack.reasonCode,
        `Connection refused: ${connack.properties?.reasonString ?? REASON_TEXT[connack.reasonCode]}`,
        { source: "peer" },
      );
    }
    if (this.#version > 3 && connack.sessionPresent && (this.connect as ConnectPacket).cleanStart) {
      return new MqttError(
        ReasonCode.ProtocolError,
        "Cannot accept CONNACK: session present after a clean start [MQTT-3.2.2-4]",
      );
    }
    this.connack = connack;
    const assigned = connack.properties?.assignedClientIdentifier;
    if (assigned !== undefined) this.clientId = assigned;
    return undefined;
  }

  /** @throws {MqttError} When the QoS or retain exceeds what the server's CONNACK allows. */
  checkPublish(qos: QoS, retain: boolean): void {
    const properties = this.connack?.properties;
    const maximumQoS = properties?.maximumQoS ?? 2;
    if (qos > maximumQoS) {
      throw new MqttError(
        ReasonCode.QoSNotSupported,
        `Cannot publish with QoS ${qos}: the server supports at most QoS ${maximumQoS} [MQTT-3.2.2-11]`,
      );
    }
    if (retain && properties?.retainAvailable === false) {
      throw new MqttError(
        ReasonCode.RetainNotSupported,
        "Cannot publish a retained message: the server does not support retain [MQTT-3.2.2-14]",
      );
    }
  }
}
