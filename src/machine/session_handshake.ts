/**
 * The CONNECT / AUTH / CONNACK handshake of one broker-side connection, what it learnt of the client (protocol
 * level, identifier, will, session expiry, limits) and the deadlines it sets (connect timeout, keep-alive). It
 * handles what arrives before accept, answers (CONNACK, AUTH, the DISCONNECT of a client's error) and resumes
 * the session on accept, but never changes the connection's state, emits no events and never closes: it says
 * what `SessionMachine` must do.
 *
 * @module
 */

import type {
  AuthPacket,
  AuthProperties,
  ConnAckProperties,
  ConnectPacket,
  Packet,
  ProtocolVersion,
  Will,
} from "../codec/packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import type { Outbox } from "./_outbox.ts";
import { type Answer, pushAnswer } from "./session_answers.ts";
import {
  type AcceptOptions,
  checkAuth,
  connAckCode,
  connAckProperties,
  connectFailureAnswer,
  disconnectCode,
  holdPacket,
  joinHead,
  MAX_HELD,
  protocolError,
  readConnect,
} from "./session_connect.ts";
import { type ClientLimits, clientLimits, type Limits } from "./session_limits.ts";
import type { SessionOutbound } from "./session_outbound.ts";
import { SessionState } from "./session_state.ts";
import type { SessionMachineState } from "./session_types.ts";
import type { Millis } from "./client_machine.ts";

/**
 * The handshake half of one broker-side connection. `SessionMachine` reads its fields (they are what the
 * machine's getters return) and updates the will and session expiry when the client disconnects.
 */
export class SessionHandshake {
  readonly #limits: Limits;
  readonly #outbox: Outbox;
  readonly #out: SessionOutbound;
  /** The protocol level of the client, once its CONNECT arrived. */
  version: ProtocolVersion | undefined;
  /** The CONNECT, from its arrival until it is accepted or refused. */
  connect: ConnectPacket | undefined;
  /** The client identifier: from the CONNECT, or the one assigned on accept. */
  clientId = "";
  /** Whether the client is a bridge (the CONNECT's bridge bit, 3.1 and 3.1.1). */
  bridge = false;
  /** The will message to publish when the connection is over, if any. */
  will: Will | undefined;
  /** The session expiry interval in seconds. */
  sessionExpiryInterval = 0;
  /** The keep-alive in milliseconds: the CONNECT's, or the server's (CONNACK Server Keep Alive). */
  keepAliveMs = 0;
  /** The client's limits (MQTT 5 CONNECT properties): the limits' shared defaults unless it sent some. */
  client: ClientLimits;
  /** When the connection times out: the connect timeout, then the keep-alive; `undefined` for none. */
  deadline: Millis | undefined;
  /** When bytes last arrived from the client: the keep-alive runs from it. */
  lastReceived: Millis;
  /**
   * While waiting for CONNECT, its first bytes, to learn the protocol level of a CONNECT that fails to decode;
   * then, until `accept`, the packets that came after it (made when the first one does).
   */
  #early: Uint8Array | Packet[] | undefined;

  /** The connection's limits (shared by the connections made with the same options). */
  get limits(): Limits {
    return this.#limits;
  }

  constructor(now: Millis, limits: Limits, outbox: Outbox, out: SessionOutbound) {
    this.#limits = limits;
    this.#outbox = outbox;
    this.#out = out;
    this.client = limits.client;
    this.lastReceived = now;
    this.deadline = limits.connectTimeoutMs > 0 ? now + limits.connectTimeoutMs : undefined;
  }

  /** Once connected: the deadline is 1.5 times the keep-alive after the last packet; 0 turns it off [MQTT-3.1.2-22]. */
  keepAlive(): void {
    this.deadline = this.keepAliveMs > 0 ? this.lastReceived + this.keepAliveMs * 1.5 : undefined;
  }

  /** The error the deadline ends the connection with: the keep-alive's once connected, else the connect timeout's. */
  timeout(now: Millis, connected: boolean): MqttError {
    return connected
      ? new MqttError(
        ReasonCode.KeepAliveTimeout,
        `Cannot keep the connection: nothing received for ${now - this.lastReceived} ms [MQTT-3.1.2-22]`,
      )
      : new MqttError(
        ReasonCode.MaximumConnectTime,
        `Cannot accept the connection: not connected within ${this.#limits.connectTimeoutMs} ms`,
      );
  }

  /** Keeps the first bytes received while waiting for CONNECT (see `failed`). */
  received(bytes: Uint8Array): void {
    const head = this.#early as Uint8Array | undefined;
    if ((head?.length ?? 0) < 16) this.#early = joinHead(head, bytes);
  }

  /**
   * Reads the client's CONNECT: its level, identifier, keep-alive, limits and will.
   *
   * @returns The CONNACK reason code to refuse it with, or `undefined` when the driver decides.
   */
  handleConnect(packet: ConnectPacket): ReasonCode | undefined {
    const version = packet.protocolVersion;
    this.version = version;
    this.connect = packet;
    this.clientId = packet.clientId;
    this.bridge = packet.bridge === true;
    this.#early = undefined; // the CONNECT decoded: its protocol level is known
    this.keepAliveMs = packet.keepAlive * 1000;
    const properties = packet.properties;
    if (properties !== undefined) {
      this.sessionExpiryInterval = properties.sessionExpiryInterval ?? 0;
      this.#out.client = this.client = clientLimits(properties, this.#limits);
    }
    this.#out.version = version;
    const refusal = readConnect(packet, this.#limits);
    this.will = packet.will;
    return refusal;
  }

  /**
   * Checks an AUTH from the client (see `checkAuth`).
   *
   * @returns The error to close with, or `undefined` when the driver is to answer it.
   */
  handleAuth(packet: AuthPacket, connected: boolean): MqttError | undefined {
    return checkAuth(packet, this.client.authenticationMethod, connected);
  }

  /**
   * Reads the client's DISCONNECT: its session expiry interval, and the will, which DISCONNECT 0x00 discards.
   *
   * @returns The protocol error to close with, or `undefined`.
   */
  handleDisconnect(reasonCode: ReasonCode, sessionExpiryInterval: number | undefined): MqttError | undefined {
    if (sessionExpiryInterval !== undefined) {
      if (this.sessionExpiryInterval === 0 && sessionExpiryInterval !== 0) {
        // MQTT 5 §3.14.2.2.2: a session that was to end with the connection cannot be extended now.
        return protocolError("a session expiry interval in DISCONNECT after 0 in CONNECT");
      }
      this.sessionExpiryInterval = sessionExpiryInterval;
    }
    // [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will; 0x04 and the error codes keep it.
    if (reasonCode === ReasonCode.NormalDisconnection) this.will = undefined;
    return undefined;
  }

  /**
   * Keeps a packet that arrived between the CONNECT and its answer, to handle after `accept`.
   *
   * @returns The error to close with when too many wait, else `undefined`.
   */
  hold(packet: Packet): MqttError | undefined {
    if ((this.#early = holdPacket(this.#early as Packet[] | undefined, packet)) !== undefined) {
      return undefined;
    }
    // A client that floods before it is accepted is refused rather than buffered without bound.
    return new MqttError(
      ReasonCode.QuotaExceeded,
      `Cannot hold more than ${MAX_HELD} packets before CONNACK`,
    );
  }

  /**
   * Handles a packet that arrived before the client was accepted: reads the CONNECT (refusing it when the server
   * decides alone), checks AUTH, holds the rest for `accept`; a failure is answered already (see `failed`).
   *
   * @returns `true` when the driver is to get the packet as an event, `false` when there is nothing to do, `null`
   *   to close normally (the client's DISCONNECT), else the error to close with.
   */
  early(packet: Packet): MqttError | boolean | null {
    let error: MqttError | undefined;
    if (this.connect === undefined) {
      // The decoder only lets a CONNECT through first [MQTT-3.1.0-1].
      if (packet.type !== "connect") return false;
      const refusal = this.handleConnect(packet);
      if (refusal === undefined) return true;
      this.reject(refusal);
      return new MqttError(refusal);
    }
    if (packet.type === "connect") return protocolError("a second CONNECT [MQTT-3.1.0-2]"); // not answered
    if (packet.type === "disconnect") return null;
    if (packet.type === "auth") error = this.handleAuth(packet, false);
    else error = this.hold(packet);
    if (error === undefined) return packet.type === "auth";
    this.failed(error, "connecting");
    return error;
  }

  /**
   * Accepts the waiting CONNECT (see `SessionMachine.accept`): CONNACK 0x00, then the session resumed (what was
   * in flight resent) or cleared, the deliveries made meanwhile queued, and as much sent as the client takes.
   *
   * @returns The packets that arrived meanwhile, for the machine to handle now.
   */
  accept(now: Millis, options: AcceptOptions): Packet[] | undefined {
    const version = this.version as ProtocolVersion;
    const connect = this.connect as ConnectPacket;
    // [MQTT-3.2.2-2] never present after a clean start.
    const sessionPresent = options.sessionPresent === true && !connect.cleanStart;
    this.connect = undefined; // what is needed of it from now on is kept apart
    const extra = options.properties;
    if (extra?.assignedClientIdentifier !== undefined) this.clientId = extra.assignedClientIdentifier;
    const out = this.#out;
    const early = out.session;
    out.session = options.state ?? new SessionState(this.clientId);
    let properties: ConnAckProperties | undefined;
    if (version === 5) {
      properties = connAckProperties(this.#limits, extra);
      if (extra?.sessionExpiryInterval !== undefined) {
        this.sessionExpiryInterval = extra.sessionExpiryInterval;
      }
      if (extra?.serverKeepAlive !== undefined) this.keepAliveMs = extra.serverKeepAlive * 1000;
    }
    this.answer({ type: "connack", sessionPresent, reasonCode: ReasonCode.Success, properties });
    if (sessionPresent) out.resend(now);
    else out.session.clear(now);
    // Deliveries made before the client was accepted wait in a state of their own until now.
    if (early !== out.session) { for (const delivery of early.queue) out.session.enqueue(now, delivery); }
    out.pump(now);
    const held = this.#early as Packet[] | undefined;
    this.#early = undefined;
    return held;
  }

  /** Refuses the waiting CONNECT (see `SessionMachine.reject`): CONNACK with the reason code; the will goes. */
  reject(reasonCode: ReasonCode, properties?: ConnAckProperties): void {
    this.#sendConnAck(reasonCode, properties);
    this.will = undefined;
  }

  /** Sends AUTH with the CONNECT's authentication method (see `SessionMachine.authenticate`). */
  authenticate(reasonCode: ReasonCode, properties: AuthProperties): void {
    if (this.client.authenticationMethod === undefined) {
      throw new Error("Cannot send AUTH: the client did not ask for enhanced authentication [MQTT-4.12.0-6]");
    }
    this.answer({
      type: "auth",
      reasonCode,
      properties: { ...properties, authenticationMethod: this.client.authenticationMethod },
    });
  }

  /**
   * Answers a client's error before the connection closes [MQTT-4.13.1-1]: a CONNECT that failed to decode in a
   * form the client reads, if any (its level learnt from its first bytes); in MQTT 5 a refusal CONNACK while the
   * CONNECT waits for an answer, a DISCONNECT once connected. Before MQTT 5 a failed CONNECT is closed without
   * CONNACK [MQTT-3.1.4-1], anything else without a word.
   */
  failed(error: MqttError, state: SessionMachineState): void {
    if (state === "waiting") {
      const answer = connectFailureAnswer(this.#early as Uint8Array | undefined, error);
      if (answer === undefined) return;
      this.version = answer.version;
      this.#sendConnAck(answer.reasonCode);
    } else if (this.version !== 5) return;
    else if (state === "connecting") this.#sendConnAck(connAckCode(error.reasonCode));
    else if (state === "connected") {
      this.#outbox.push({ type: "disconnect", reasonCode: disconnectCode(error.reasonCode) }, 5);
    }
  }

  /** The connection closed: no deadline, and what was kept before the answer goes. */
  drop(): void {
    this.deadline = undefined;
    this.#early = undefined;
  }

  /** Queues an answer that may carry a reason string and user properties, trimmed (see `pushAnswer`). */
  answer(packet: Answer): void {
    pushAnswer(this.#outbox, packet, this.version as ProtocolVersion, this.client);
  }

  #sendConnAck(reasonCode: ReasonCode, properties?: ConnAckProperties): void {
    this.answer({ type: "connack", sessionPresent: false, reasonCode, properties });
  }
}
