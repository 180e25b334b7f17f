/**
 * The broker side of one MQTT connection, sans-IO: bytes and time in; bytes, events and a deadline out. It reads
 * the client's packets and answers the protocol flows; the handshake's rules live in `session_connect.ts`, what
 * it sends in `session_outbound.ts`. It makes no routing or authorization decision: those are events.
 *
 * @module
 */

import { PacketDecoder } from "../codec/decoder.ts";
import type {
  AckProperties,
  AuthPacket,
  AuthProperties,
  ConnAckProperties,
  ConnectPacket,
  DisconnectProperties,
  Packet,
  ProtocolVersion,
  PublishPacket,
  Will,
} from "../codec/packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import { Outbox } from "./_outbox.ts";
import type { Delivery } from "./_delivery.ts";
import { SessionInbound } from "./session_inbound.ts";
import { type AcceptOptions, protocolError } from "./session_connect.ts";
import { SessionHandshake } from "./session_handshake.ts";
import { limitsOf, type SessionMachineOptions } from "./session_limits.ts";
import { SessionOutbound } from "./session_outbound.ts";
import { acknowledge, grant, pingResp, pubComp, unsubscribed } from "./session_replies.ts";
import { SessionState } from "./session_state.ts";
import type { SessionEvent, SessionMachineState } from "./session_types.ts";
import { OWNER } from "./_owner.ts";

import type { Millis } from "./client_machine.ts";

export type { AcceptOptions } from "./session_connect.ts";
export { DEFAULT_MAXIMUM_PACKET_SIZE, type SessionMachineOptions } from "./session_limits.ts";
export type { SessionEvent, SessionMachineState } from "./session_types.ts";

/**
 * The broker side of one network connection: decodes what the client sends (any protocol version, learnt from
 * its CONNECT), validates it, answers the protocol flows itself and asks the driver, through events, for the
 * decisions it cannot make alone (accept the client, authorize and route a message, grant a subscription).
 * It also delivers messages to the client: packet identifiers, the in-flight table, the client's Receive
 * Maximum, topic aliases and Maximum Packet Size.
 *
 * After any input or command, drain {@linkcode SessionMachine.pollTransmit} (write the bytes), then
 * {@linkcode SessionMachine.pollEvent}, then read {@linkcode SessionMachine.pollTimeout} and call
 * {@linkcode SessionMachine.handleTimeout} at that time.
 *
 * @example Accept a client and answer its PINGREQ
 * ```ts
 * import { encode } from "@x/mqtt/codec";
 * import { SessionMachine } from "@x/mqtt/machine";
 * const session = new SessionMachine(0);
 * session.handleBytes(1, encode({ type: "connect", protocolVersion: 5, clientId: "a", cleanStart: true, keepAlive: 10 }, 5));
 * console.log(session.pollEvent()?.type); // "connect"
 * session.accept(2);
 * // CONNACK 0x00, advertising Topic Alias Maximum 16 (property 0x22)
 * console.log(session.pollTransmit()); // new Uint8Array([0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0x00, 0x10])
 * session.handleBytes(3, encode({ type: "pingreq" }, 5));
 * console.log(session.pollTransmit()); // new Uint8Array([0xd0, 0x00])
 * console.log(session.pollTimeout()); // 3 + 15_000 (1.5 × keep-alive after the last packet)
 * ```
 */
export class SessionMachine {
  readonly #decoder: PacketDecoder;
  /** A broker forwards payloads it read and never changes: large ones leave uncopied. */
  readonly #outbox = new Outbox({ viewPayloads: true });
  /** The oldest event not yet polled, and the ones after it (made when two wait at once). */
  #event: SessionEvent | undefined;
  #moreEvents: SessionEvent[] | undefined;

  #state: SessionMachineState = "waiting";
  /** The CONNECT / AUTH / CONNACK handshake and what it learnt of the client (level, identifier, will…). */
  readonly #hs: SessionHandshake;

  /** What the connection sends: deliveries, the flight window, outbound aliases (and the session state). */
  readonly #out: SessionOutbound;
  /** What it receives in PUBLISH: the checks and the acknowledgements the driver owes; made with the first one. */
  #inbound: SessionInbound | undefined;
  /**
   * Where the {@linkcode BrokerMachine} that attached this session keeps its record of it.
   *
   * @internal
   */
  [OWNER]: unknown;

  /**
   * Creates the machine for a connection that has just been opened.
   *
   * @param now The current time: the connect timeout runs from it.
   * @param options Limits and timeouts.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(now: Millis, options: SessionMachineOptions = {}) {
    // The options, resolved once and shared by the machines made with the same ones (see `limitsOf`).
    const limits = limitsOf(options);
    this.#out = new SessionOutbound(this.#outbox, limits.client, new SessionState(""));
    this.#hs = new SessionHandshake(now, limits, this.#outbox, this.#out);
    this.#decoder = new PacketDecoder(limits.decoder);
    this[OWNER] = undefined;
  }

  /** The inbound side, made when the client first publishes (an idle subscriber holds none). */
  #in(): SessionInbound {
    return this.#inbound ??= new SessionInbound(this.#hs.limits, this.#outbox);
  }

  /** Where the connection is. */
  get state(): SessionMachineState {
    return this.#state;
  }

  /** The protocol level of the client, once its CONNECT arrived. */
  get version(): ProtocolVersion | undefined {
    return this.#hs.version;
  }

  /**
   * Whether the client is another broker's bridge (3.1 and 3.1.1, the bridge bit of its CONNECT): its
   * subscriptions get none of its own messages back and keep the retain flag (see `ConnectPacket.bridge`).
   */
  get bridge(): boolean {
    return this.#hs.bridge;
  }

  /** The client identifier: from the CONNECT, or the one assigned on `accept`. */
  get clientId(): string {
    return this.#hs.clientId;
  }

  /**
   * The CONNECT packet, from its arrival until the client is accepted (`accept`): then it is let go, so that an
   * idle connection does not hold it. What is needed of it later has getters of its own (`clientId`, `version`,
   * `will`, `sessionExpiryInterval`, `authenticationMethod`).
   */
  get connectPacket(): ConnectPacket | undefined {
    return this.#hs.connect;
  }

  /** The keep-alive in effect, in seconds: the client's, or the server's when it set one; 0 when none. */
  get keepAlive(): number {
    return this.#hs.keepAliveMs / 1000;
  }

  /** The MQTT 5 authentication method of the CONNECT, which a re-authentication keeps [MQTT-4.12.1-1]. */
  get authenticationMethod(): string | undefined {
    return this.#hs.client.authenticationMethod;
  }

  /**
   * The will message to publish when this connection is over: `undefined` when there is none or when the client
   * disconnected normally [MQTT-3.1.2-10] [MQTT-3.14.4-3]. Its payload is the machine's own copy.
   */
  get will(): Will | undefined {
    return this.#hs.will;
  }

  /** The session expiry interval in seconds: from the CONNECT (MQTT 5), updated by the client's DISCONNECT. */
  get sessionExpiryInterval(): number {
    return this.#hs.sessionExpiryInterval;
  }

  /** The delivery state this connection sends from. */
  get session(): SessionState {
    return this.#out.session;
  }

  /** Whether the driver said the connection's writes are backed up; see {@linkcode SessionMachine.setCongested}. */
  get congested(): boolean {
    return this.#out.congested;
  }

  /** How many QoS 0 messages were dropped because the connection was congested. */
  get droppedWhileCongested(): number {
    return this.#out.droppedWhileCongested;
  }

  /**
   * Tells the machine whether the transport is behind: bytes written and not yet taken by the peer beyond
   * what the driver allows. While congested, QoS 0 messages for the client are dropped (at most once allows it)
   * and QoS 1 and 2 messages wait in the session's queue, bounded as offline messages are; acknowledgements and
   * other answers still go out. When the congestion clears, queued messages are sent while the client's
   * Receive Maximum allows.
   *
   * @example
   * ```ts
   * import { SessionMachine } from "@x/mqtt/machine";
   * const session = new SessionMachine(0);
   * session.setCongested(0, true);
   * console.log(session.congested); // true
   * ```
   *
   * @param now The current time.
   * @param congested `true` when the transport's backlog passed the driver's high-water mark, `false` when it
   *   drained below its low-water mark.
   */
  setCongested(now: Millis, congested: boolean): void {
    if (this.#out.congested === congested) return;
    this.#out.congested = congested;
    if (!congested && this.#state === "connected") this.#out.pump(now);
  }

  // ---------------------------------------------------------------------------------------------- inputs

  /**
   * Feeds bytes received from the client, in chunks of any size. Never throws because of what the client sent:
   * a malformed packet or a protocol error queues the answer the specification requires and closes.
   *
   * @param now The current time.
   * @param bytes The received chunk; the machine keeps views of it, so do not modify it later.
   */
  handleBytes(now: Millis, bytes: Uint8Array): void {
    if (this.#state === "closed" || bytes.length === 0) return;
    this.#hs.lastReceived = now;
    if (this.#state === "waiting") this.#hs.received(bytes);
    try {
      this.#decoder.push(bytes);
      for (let packet = this.#decoder.next(); packet !== undefined; packet = this.#decoder.next()) {
        this.#handlePacket(now, packet);
        if (this.#isClosed()) return;
      }
    } catch (error) {
      if (!(error instanceof MqttError)) throw error;
      this.#fail(error);
      return;
    }
    this.#updateDeadline();
  }

  /**
   * Tells the machine the time has come for {@linkcode SessionMachine.pollTimeout}'s deadline: the connect
   * timeout or the keep-alive of 1.5 times the client's interval [MQTT-3.1.2-22]. An early call does nothing.
   *
   * @param now The current time.
   */
  handleTimeout(now: Millis): void {
    const deadline = this.#hs.deadline;
    if (this.#state === "closed" || deadline === undefined || now < deadline) return;
    const connected = this.#state === "connected";
    const error = this.#hs.timeout(now, connected);
    if (connected) this.#fail(error);
    else this.#close(error);
  }

  /**
   * Tells the machine the transport is gone. The will stays to be published.
   *
   * @param now The current time.
   * @param cause Why, if known.
   */
  handleClose(now: Millis, cause?: unknown): void {
    void now;
    if (this.#state === "closed") return;
    this.#outbox.clear();
    this.#close(
      new MqttError(ReasonCode.UnspecifiedError, "Connection lost: the transport closed", {
        source: "transport",
        cause,
      }),
    );
  }

  // ---------------------------------------------------------------------------------------------- outputs

  /**
   * The next chunk to send: small packets coalesced, a packet of 16 KiB or more alone. Call it until it
   * returns `undefined`.
   *
   * @returns The bytes to write, or `undefined` when there are none.
   */
  pollTransmit(): Uint8Array | undefined {
    return this.#outbox.take();
  }

  /**
   * The next event.
   *
   * @returns The event, or `undefined` when there are none.
   */
  pollEvent(): SessionEvent | undefined {
    const event = this.#event;
    this.#event = this.#moreEvents?.shift();
    return event;
  }

  /**
   * The next deadline: connect timeout or keep-alive.
   *
   * @returns When to call {@linkcode SessionMachine.handleTimeout}, or `undefined` when there is no deadline.
   */
  pollTimeout(): Millis | undefined {
    return this.#state === "closed" ? undefined : this.#hs.deadline;
  }

  // ---------------------------------------------------------------------------------------------- commands

  /**
   * Accepts the client: sends CONNACK 0x00 [MQTT-3.1.4-5] and, when the session is present, resends what was in
   * flight (PUBLISH with DUP, PUBREL) [MQTT-4.4.0-1], then the queued messages, then handles the packets that
   * arrived meanwhile. With a {@linkcode BrokerMachine}, call `broker.attach` instead, which calls this.
   *
   * @param now The current time.
   * @param options Session present, the session's state and extra CONNACK properties.
   * @throws {Error} When no CONNECT is waiting for an answer.
   */
  accept(now: Millis, options: AcceptOptions = {}): void {
    if (this.#state === "closed") return;
    if (this.#state !== "connecting") throw new Error("Cannot accept: no CONNECT is waiting for an answer");
    const held = this.#hs.accept(now, options);
    this.#state = "connected";
    this.#hs.lastReceived = Math.max(this.#hs.lastReceived, now);
    this.#updateDeadline();
    if (held === undefined) return;
    for (const packet of held) {
      if (this.#isClosed()) return;
      this.#handlePacket(now, packet);
    }
  }

  /**
   * Refuses the client: sends CONNACK with the reason code (the matching return code before MQTT 5) and
   * closes [MQTT-3.2.2-7]; nothing the client sent after its CONNECT is processed [MQTT-3.1.4-6].
   *
   * @param now The current time.
   * @param reasonCode A CONNACK reason code of 0x80 or more.
   * @param properties CONNACK properties (MQTT 5), such as a reason string or a server reference.
   * @throws {RangeError} When `reasonCode` is below 0x80.
   * @throws {Error} When no CONNECT is waiting for an answer.
   */
  reject(now: Millis, reasonCode: ReasonCode, properties?: ConnAckProperties): void {
    if (this.#state === "closed") return;
    if (reasonCode < 0x80) throw new RangeError(`Cannot reject with reason code ${reasonCode}: below 0x80`);
    if (this.#state !== "connecting") throw new Error("Cannot reject: no CONNECT is waiting for an answer");
    this.#hs.reject(reasonCode, properties);
    this.#close(new MqttError(reasonCode));
    void now;
  }

  /**
   * Continues an MQTT 5 enhanced authentication (AUTH 0x18) or completes a re-authentication (AUTH 0x00).
   *
   * @param now The current time.
   * @param reasonCode 0x18 Continue authentication, or 0x00 Success after a re-authentication.
   * @param properties The authentication data; the method is the CONNECT's [MQTT-4.12.0-5].
   * @throws {Error} When the client did not ask for enhanced authentication [MQTT-4.12.0-6].
   */
  authenticate(now: Millis, reasonCode: ReasonCode, properties: AuthProperties = {}): void {
    if (this.#state === "closed") return;
    this.#hs.authenticate(reasonCode, properties);
    void now;
  }

  /**
   * Whether an inbound QoS 1 or 2 PUBLISH with this identifier was reported and neither routed (see
   * {@linkcode SessionMachine.routed}) nor acknowledged yet. Its message may not be written to a store yet, so
   * the store must not keep its QoS 2 identifier: after a crash the resend would be answered as a duplicate
   * and the message lost.
   *
   * @param packetId The PUBLISH's packet identifier.
   * @returns `true` from the `publish` event until `routed` or `acknowledge` for it.
   */
  awaitsRouting(packetId: number): boolean {
    return this.#inbound?.awaitsRouting(packetId) ?? false;
  }

  /**
   * Records that the message of an inbound PUBLISH was routed while its acknowledgement waits (flow control,
   * see {@linkcode BrokerMachine.publish}): from now on a store keeps its QoS 2 identifier, so that the
   * client's resend after a crash is answered as a duplicate rather than routed twice.
   *
   * @param packetId The PUBLISH's packet identifier.
   */
  routed(packetId: number): void {
    this.#inbound?.routed(packetId, this.#out.session);
  }

  /**
   * Acknowledges an inbound PUBLISH the driver has routed (or refused): PUBACK at QoS 1 [MQTT-4.3.2-4], PUBREC at
   * QoS 2 [MQTT-4.3.3-8], after which duplicates are answered without a new `publish` event until PUBREL
   * [MQTT-4.3.3-10]. A reason code of 0x80 or more (MQTT 5) refuses it; before MQTT 5 the acknowledgement
   * is sent anyway [MQTT-3.3.5-2]. After the connection closed nothing is sent, but a refusal still frees a
   * QoS 2 packet identifier, so that the client's resend counts as a new message.
   *
   * @param now The current time.
   * @param packetId The PUBLISH's packet identifier.
   * @param reasonCode The PUBACK or PUBREC reason code. @default 0x00
   * @param properties A reason string or user properties (MQTT 5), left out when the client asked for no
   *   problem information [MQTT-3.1.2-29] or when they would exceed its maximum packet size [MQTT-3.4.2-2].
   * @throws {Error} When no PUBLISH with this identifier waits for an acknowledgement.
   */
  acknowledge(
    now: Millis,
    packetId: number,
    reasonCode: ReasonCode = ReasonCode.Success,
    properties?: AckProperties,
  ): void {
    acknowledge(
      this.#outbox,
      this.#hs,
      this.#out,
      this.#in(),
      packetId,
      reasonCode,
      properties,
      this.#state === "closed",
    );
    void now;
  }

  /**
   * Answers a SUBSCRIBE with a SUBACK: one code per filter, in order, each the granted QoS or a failure
   * [MQTT-3.8.4-1] [MQTT-3.8.4-6] [MQTT-3.9.3-1]. Below MQTT 5 every failure becomes 0x80.
   *
   * @param now The current time.
   * @param packetId The SUBSCRIBE's packet identifier [MQTT-3.8.4-2].
   * @param reasonCodes One code per filter.
   * @param properties A reason string or user properties (MQTT 5), left out as for `acknowledge`.
   */
  grant(now: Millis, packetId: number, reasonCodes: readonly ReasonCode[], properties?: AckProperties): void {
    if (this.#state !== "closed") grant(this.#hs, packetId, reasonCodes, properties);
    void now;
  }

  /**
   * Answers an UNSUBSCRIBE with an UNSUBACK [MQTT-3.10.4-4] [MQTT-3.10.4-5]; the reason codes are sent to
   * MQTT 5 clients only.
   *
   * @param now The current time.
   * @param packetId The UNSUBSCRIBE's packet identifier.
   * @param reasonCodes One code per filter: 0x00, or 0x11 when no subscription existed.
   * @param properties A reason string or user properties (MQTT 5), left out as for `acknowledge`.
   */
  acknowledgeUnsubscribe(
    now: Millis,
    packetId: number,
    reasonCodes: readonly ReasonCode[],
    properties?: AckProperties,
  ): void {
    if (this.#state !== "closed") unsubscribed(this.#hs, packetId, reasonCodes, properties);
    void now;
  }

  /**
   * Queues a message for the client: sent now when the client's Receive Maximum allows [MQTT-3.3.4-9]
   * (QoS 0 always is), else queued in order. A PUBLISH over the client's Maximum Packet Size is dropped as if
   * sent [MQTT-3.1.2-25]; an expired message is dropped [MQTT-3.3.2-5]. Before the client is connected, the
   * message is queued in the session state.
   *
   * @param now The current time.
   * @param delivery The message, with the QoS, RETAIN flag and subscription identifiers of this delivery; kept
   *   as it is (not copied) when queued or in flight.
   */
  deliver(now: Millis, delivery: Delivery): void {
    if (this.#state === "connected") this.#out.deliver(now, delivery);
    else if (delivery.qos > 0) this.#out.session.enqueue(now, delivery);
  }

  /**
   * Ends the connection from the broker's side: an MQTT 5 client that was accepted gets a DISCONNECT with the
   * reason code first [MQTT-3.14.0-1]. The will is kept to be published.
   *
   * @param now The current time.
   * @param reasonCode The DISCONNECT reason code. @default 0x00
   * @param properties DISCONNECT properties (MQTT 5), never a session expiry interval [MQTT-3.14.2-2].
   */
  disconnect(
    now: Millis,
    reasonCode: ReasonCode = ReasonCode.NormalDisconnection,
    properties?: DisconnectProperties,
  ): void {
    if (this.#state === "closed") return;
    if (this.#state === "connected" && this.#hs.version === 5) {
      const { sessionExpiryInterval: _, ...rest } = properties ?? {};
      this.#hs.answer({ type: "disconnect", reasonCode, properties: rest });
    }
    this.#close(reasonCode === 0 ? undefined : new MqttError(reasonCode));
    void now;
  }

  // ---------------------------------------------------------------------------------------------- internals

  #handlePacket(now: Millis, packet: Packet): void {
    if (this.#state !== "connected") {
      // Before accept the handshake reads the CONNECT, checks AUTH and holds the rest; it says what comes next.
      this.#state = "connecting";
      const next = this.#hs.early(packet);
      if (next === true) this.#emit({ type: packet.type, packet } as SessionEvent);
      else if (next !== false) this.#close(next ?? undefined);
      return;
    }
    switch (packet.type) {
      case "publish":
        this.#handlePublish(packet);
        break;
      case "puback":
        this.#out.handlePubAck(now, packet.packetId);
        break;
      case "pubrec":
        this.#out.handlePubRec(now, packet);
        break;
      case "pubcomp":
        this.#out.handlePubComp(now, packet.packetId);
        break;
      case "pubrel":
        pubComp(this.#outbox, this.#hs, this.#out, packet.packetId);
        break;
      case "subscribe":
        if (packet.properties?.subscriptionIdentifier === 0) {
          this.#fail(protocolError("subscription identifier 0"));
          break;
        }
        this.#emit({ type: "subscribe", packet });
        break;
      case "unsubscribe":
        this.#emit({ type: "unsubscribe", packet });
        break;
      case "pingreq":
        pingResp(this.#outbox, this.#hs);
        break;
      case "disconnect": {
        const error = this.#hs.handleDisconnect(packet.reasonCode, packet.properties?.sessionExpiryInterval);
        if (error !== undefined) this.#fail(error);
        else {this.#close(
            packet.reasonCode >= 0x80
              ? new MqttError(packet.reasonCode, undefined, { source: "peer" })
              : undefined,
          );}
        break;
      }
      case "auth":
        this.#handleAuth(packet);
        break;
      case "connect":
        // [MQTT-3.1.0-2] a second CONNECT is a protocol error.
        this.#fail(protocolError("a second CONNECT [MQTT-3.1.0-2]"));
        break;
      case "connack":
      case "suback":
      case "unsuback":
      case "pingresp":
        this.#fail(protocolError(`${packet.type.toUpperCase()} from a client`));
        break;
      default: {
        const unreachable: never = packet;
        throw new TypeError(`Cannot handle packet ${(unreachable as Packet).type}`);
      }
    }
  }

  #handleAuth(packet: AuthPacket): void {
    const error = this.#hs.handleAuth(packet, true);
    if (error === undefined) this.#emit({ type: "auth", packet });
    else this.#fail(error);
  }

  #handlePublish(packet: PublishPacket): void {
    const verdict = this.#in().receive(packet, this.#hs.version as ProtocolVersion, this.#out.session);
    if (verdict === true) this.#emit({ type: "publish", packet });
    else if (verdict !== false) this.#fail(verdict);
  }

  /** Ends the connection because of a client's error: the handshake answers it (see its `failed`), then close. */
  #fail(error: MqttError): void {
    this.#hs.failed(error, this.#state);
    this.#close(error);
  }

  /** Queues an event for {@linkcode SessionMachine.pollEvent}. */
  #emit(event: SessionEvent): void {
    if (this.#event === undefined) this.#event = event;
    else (this.#moreEvents ??= []).push(event);
  }

  #close(error: MqttError | undefined): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#hs.drop();
    this.#emit(error === undefined ? { type: "closed" } : { type: "closed", error });
  }

  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #updateDeadline(): void {
    if (this.#state === "connected") this.#hs.keepAlive();
  }

  /** Whether the client asked not to get reason strings and user properties on acknowledgements. */
  get requestProblemInformation(): boolean {
    return this.#hs.client.requestProblemInformation;
  }
}
