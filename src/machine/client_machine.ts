/**
 * The client side of MQTT as a sans-IO state machine: bytes, commands and the time in; bytes, events and the
 * next deadline out. No sockets, timers or clocks inside.
 *
 * @module
 */

import { PacketDecoder } from "../codec/decoder.ts";
import type {
  AuthProperties,
  ConnAckPacket,
  DisconnectPacket,
  DisconnectProperties,
  Packet,
  ProtocolVersion,
  PublishPacket,
  UserProperty,
} from "../codec/packet.ts";
import { validateTopicName } from "../codec/topic.ts";
import { MqttError, REASON_TEXT, ReasonCode } from "../errors.ts";
import { ClientControl } from "./client_control.ts";
import { ClientDeadlines } from "./client_deadlines.ts";
import { ClientHandshake } from "./client_handshake.ts";
import { ClientOutbound } from "./client_outbound.ts";
import { ClientWire } from "./client_wire.ts";
import { PacketIdPool } from "./packet_ids.ts";
import { ClientInbound } from "./client_inbound.ts";
import { TopicAliases } from "./_topic_aliases.ts";
import { normalizeRequests, SubscriptionRegistry } from "./subscription_registry.ts";

export type {
  ClientEvent,
  ClientMachineOptions,
  ClientSessionState,
  ClientState,
  ConnectOptions,
  Millis,
  PublishOptions,
  SubscribeResult,
  SubscriptionRequest,
} from "./client_types.ts";
import type {
  ClientEvent,
  ClientMachineOptions,
  ClientSessionState,
  ClientState,
  ConnectOptions,
  Millis,
  PublishOptions,
  SubscribeResult,
  SubscriptionRequest,
} from "./client_types.ts";

/**
 * An MQTT client connection and session, sans-IO: commands and inputs take `now`; outputs are drained with
 * {@linkcode ClientMachine.pollTransmit} (bytes to write), {@linkcode ClientMachine.pollEvent} and
 * {@linkcode ClientMachine.pollTimeout} (when to call {@linkcode ClientMachine.handleTimeout}). The machine
 * outlives connections: call `connect()` again after `closed` to resume the session.
 *
 * Caller errors (publishing before CONNACK, a wildcard in a topic name, QoS above the server's maximum) throw
 * synchronously; anything the peer does wrong arrives as a `closed` event with an {@linkcode MqttError}.
 *
 * @example Connect, subscribe and publish against a peer
 * ```ts
 * import { ClientMachine } from "@x/mqtt/machine";
 * const client = new ClientMachine({ clientId: "sensor-1" });
 * client.connect(0);
 * const connect = client.pollTransmit(); // write these bytes to the socket
 * // …feed what the server answers: client.handleBytes(now, chunk), then drain pollEvent()
 * console.log(connect?.length, client.state); // 23 "connecting"
 * ```
 */
export class ClientMachine {
  readonly #version: ProtocolVersion;
  readonly #onPacket: ((direction: "in" | "out", packet: Packet) => void) | undefined;
  /** The bytes to write and the events to poll. */
  readonly #wire: ClientWire;
  /** What it publishes: the outgoing table, the send quota, outbound topic aliases. */
  readonly #out: ClientOutbound;

  #state: ClientState = "idle";
  #decoder: PacketDecoder = new PacketDecoder();

  // Per connection.
  /** The CONNECT sent, the CONNACK received and the client identifier. */
  readonly #handshake: ClientHandshake;
  /** The connect timeout and the keep-alive. */
  readonly #deadlines: ClientDeadlines;
  /** Topic aliases both ways, for this connection. */
  readonly #aliases = new TopicAliases();

  // Session state, kept across connections when the session resumes.
  #hasSession = false;
  readonly #packetIds = new PacketIdPool();
  /** The inbound QoS 1 and 2 flows: what is new, the acknowledgements in order, QoS 2 awaiting PUBREL. */
  readonly #in: ClientInbound;
  /** The subscriptions, local and on the wire, and the routing of received messages to them. */
  readonly #subscriptions = new SubscriptionRegistry();
  /** The SUBSCRIBE and UNSUBSCRIBE requests waiting for SUBACK / UNSUBACK. */
  readonly #control: ClientControl;

  /**
   * Creates a client machine.
   *
   * @param options The client identifier, protocol version, keep-alive and timeouts.
   * @throws {RangeError} When a number is out of range.
   */
  constructor(options: ClientMachineOptions) {
    this.#version = options.protocolVersion ?? 5;
    if (this.#version !== 3 && this.#version !== 4 && this.#version !== 5) {
      throw new RangeError(`Cannot create client: protocol version ${this.#version} is not 3, 4 or 5`);
    }
    this.#handshake = new ClientHandshake(this.#version, options.clientId, options.keepAlive);
    this.#onPacket = options.onPacket;
    this.#wire = new ClientWire(this.#version, options.onPacket);
    this.#deadlines = new ClientDeadlines(this.#wire, options.connectTimeoutMs, options.pingTimeoutMs);
    this.#in = new ClientInbound(this.#wire, this.#version, options.manualAck ?? false);
    this.#out = new ClientOutbound(this.#wire, this.#version, this.#packetIds, this.#aliases);
    this.#control = new ClientControl(this.#wire, this.#version, this.#packetIds, this.#subscriptions);
  }

  /** The connection state. */
  get state(): ClientState {
    return this.#state;
  }

  /** The protocol version. */
  get protocolVersion(): ProtocolVersion {
    return this.#version;
  }

  /** The client identifier, as assigned by the server when the option was empty. */
  get clientId(): string {
    return this.#handshake.clientId;
  }

  /** The CONNACK of the current connection, once connected. */
  get connack(): ConnAckPacket | undefined {
    return this.#handshake.connack;
  }

  /** How many QoS 1 and 2 publishes are unfinished (in flight or waiting for send quota). */
  get inFlight(): number {
    return this.#out.size;
  }

  /**
   * The session state as plain data (payloads are the caller's own `Uint8Array`s, not copies).
   *
   * @returns Unfinished publishes, inbound QoS 2 ids and subscriptions.
   */
  exportSession(): ClientSessionState {
    return {
      clientId: this.#handshake.clientId,
      outgoing: this.#out.export(),
      incomingQoS2: [...this.#in.incomingQoS2],
      subscriptions: this.#subscriptions.export(),
    };
  }

  /**
   * Restores a session exported by {@linkcode ClientMachine.exportSession}, before the first `connect()`.
   * The next connection should not clean start, so that the server resumes the session too.
   *
   * @param state The exported state.
   * @returns The local subscription numbers given to the restored subscriptions, in order.
   * @throws {Error} When the machine has connected already.
   */
  restoreSession(state: ClientSessionState): number[] {
    if (this.#state !== "idle") throw new Error("Cannot restore a session: the client has connected already");
    this.#handshake.clientId = state.clientId;
    this.#out.restore(state.outgoing);
    for (const packetId of state.incomingQoS2) this.#in.incomingQoS2.add(packetId);
    const numbers = this.#subscriptions.restore(state.subscriptions);
    this.#hasSession = this.#out.size > 0 || this.#subscriptions.wireSize > 0 ||
      this.#in.incomingQoS2.size > 0;
    return numbers;
  }

  // ---------------------------------------------------------------- commands

  /**
   * Starts a connection: queues the CONNECT. Call it when the transport is open.
   *
   * @param now The time.
   * @param options What this CONNECT carries.
   * @throws {Error} When a connection is already open or opening.
   */
  connect(now: Millis, options: ConnectOptions = {}): void {
    if (this.#state === "connecting" || this.#state === "connected") {
      throw new Error(`Cannot connect: the client is already ${this.#state}`);
    }
    const connect = this.#handshake.start(options);
    this.#decoder = new PacketDecoder({
      version: this.#version,
      maximumPacketSize: connect.properties?.maximumPacketSize,
    });
    this.#wire.restart();
    this.#aliases.clear();
    this.#out.restart();
    if (connect.cleanStart) {
      this.#dropSession(
        new MqttError(ReasonCode.UnspecifiedError, "Cannot finish: a clean start discarded the session"),
      );
    }
    this.#state = "connecting";
    this.#deadlines.connecting(now);
    this.#send(now, connect);
  }

  /**
   * Publishes a message.
   *
   * @param now The time.
   * @param message Topic, payload, QoS, retain and MQTT 5 properties. The payload is kept, not copied, until
   *   the flow completes: do not change it.
   * @returns The packet identifier for QoS 1 and 2 (a `published` event with it follows), else `undefined`.
   * @throws {MqttError} When not connected, the topic is invalid, the QoS or retain exceeds what the server
   *   allows, the packet exceeds the server's maximum packet size, or all packet identifiers are in use.
   */
  publish(now: Millis, message: PublishOptions): number | undefined {
    this.#requireConnected("publish");
    const qos = message.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      throw new RangeError(`Cannot publish: QoS ${qos} is not 0, 1 or 2`);
    }
    validateTopicName(message.topic);
    const retain = message.retain ?? false;
    this.#handshake.checkPublish(qos, retain);
    const packet: PublishPacket = {
      type: "publish",
      topic: message.topic,
      payload: message.payload,
      qos,
      retain,
      dup: false,
    };
    if (this.#version === 5 && message.properties !== undefined) {
      packet.properties = { ...message.properties };
    }
    const packetId = this.#out.publish(now, packet);
    if (packetId === undefined) return undefined;
    this.#hasSession = true;
    this.#out.fillQuota(now);
    return packetId;
  }

  /**
   * Subscribes a new local subscription to one or more filters.
   *
   * @param now The time.
   * @param requests The filters and their options.
   * @param properties MQTT 5 user properties for the SUBSCRIBE.
   * @returns The SUBSCRIBE's packet identifier and the new local subscription.
   * @throws {MqttError} When not connected, a filter is invalid, or the server does not support what a filter
   *   needs (wildcards, shared subscriptions).
   */
  subscribe(
    now: Millis,
    requests: readonly SubscriptionRequest[],
    properties?: { userProperties?: UserProperty[] },
  ): SubscribeResult {
    this.#requireConnected("subscribe");
    if (requests.length === 0) throw new TypeError("Cannot subscribe: no topic filter given");
    const normalized = normalizeRequests(requests, this.#handshake.connack?.properties);
    const identifier = this.#newIdentifier();
    const subscription = this.#subscriptions.add(normalized, identifier);
    this.#hasSession = true;
    const packetId = this.#control.subscribe(now, normalized, identifier, properties?.userProperties);
    return { packetId, subscription };
  }

  /**
   * Ends a local subscription. Filters no other local subscription uses are unsubscribed on the wire.
   *
   * @param now The time.
   * @param subscription The local subscription from {@linkcode ClientMachine.subscribe}.
   * @returns The UNSUBSCRIBE's packet identifier, or `undefined` when no filter had to leave the wire.
   */
  unsubscribe(now: Millis, subscription: number): number | undefined {
    const leaving = this.#subscriptions.remove(subscription);
    return this.#control.unsubscribe(now, leaving, this.#state === "connected");
  }

  /**
   * Unsubscribes filters on the wire, whichever local subscriptions use them; the local subscriptions keep
   * their other filters.
   *
   * @param now The time.
   * @param filters The topic filters.
   * @returns The UNSUBSCRIBE's packet identifier, or `undefined` when none of the filters was subscribed, and
   *   the local subscriptions left with no filter (they receive nothing more).
   */
  unsubscribeFilters(
    now: Millis,
    filters: readonly string[],
  ): { packetId: number | undefined; emptied: number[] } {
    const { leaving, emptied } = this.#subscriptions.removeFilters(filters);
    return { packetId: this.#control.unsubscribe(now, leaving, this.#state === "connected"), emptied };
  }

  /**
   * Acknowledges a received QoS 1 or 2 message (with `manualAck`). Acknowledgements leave in the order the
   * messages arrived, so one may wait for an earlier one.
   *
   * @param now The time.
   * @param packetId The message's packet identifier.
   * @param reasonCode MQTT 5: a failure code to refuse the message. Default success.
   */
  acknowledge(now: Millis, packetId: number, reasonCode: ReasonCode = ReasonCode.Success): void {
    if (this.#in.acknowledge(packetId, reasonCode) && this.#state === "connected") this.#in.flush(now);
  }

  /**
   * Sends an AUTH packet: a step of an enhanced authentication, or a re-authentication (reason 0x19).
   *
   * @param now The time.
   * @param reasonCode 0x18 Continue authentication or 0x19 Re-authenticate.
   * @param properties Authentication method and data.
   */
  auth(now: Millis, reasonCode: ReasonCode, properties: AuthProperties): void {
    if (this.#version !== 5) {
      throw new MqttError(ReasonCode.ProtocolError, "Cannot authenticate: AUTH needs MQTT 5");
    }
    if (this.#state !== "connecting" && this.#state !== "connected") this.#requireConnected("authenticate");
    this.#send(now, { type: "auth", reasonCode, properties });
  }

  /**
   * Closes the connection normally: queues DISCONNECT and reports `closed` without an error.
   *
   * @param now The time.
   * @param reasonCode MQTT 5 reason: 0x00 (the will is discarded) or 0x04 (send the will). Default 0x00.
   * @param properties MQTT 5 DISCONNECT properties (a new session expiry interval, a reason string).
   */
  disconnect(
    now: Millis,
    reasonCode: ReasonCode = ReasonCode.NormalDisconnection,
    properties?: DisconnectProperties,
  ): void {
    if (this.#state !== "connecting" && this.#state !== "connected") return;
    const packet: DisconnectPacket = { type: "disconnect", reasonCode };
    if (properties !== undefined) packet.properties = properties;
    this.#send(now, packet);
    this.#close(undefined, undefined);
  }

  // ---------------------------------------------------------------- inputs

  /**
   * Feeds bytes received from the server; partial packets are kept until the rest arrives.
   *
   * @param now The time.
   * @param bytes The chunk.
   */
  handleBytes(now: Millis, bytes: Uint8Array): void {
    if (this.#state !== "connecting" && this.#state !== "connected") return;
    try {
      this.#decoder.push(bytes);
      for (let packet = this.#decoder.next(); packet !== undefined; packet = this.#decoder.next()) {
        this.#onPacket?.("in", packet);
        this.#handlePacket(now, packet);
        if ((this.#state as ClientState) === "closed") return;
      }
    } catch (error) {
      if (!(error instanceof MqttError)) throw error;
      this.#protocolFailure(now, error.reasonCode, error.message);
    }
  }

  /**
   * Runs the timers that are due: connect timeout, keep-alive PINGREQ, PINGRESP timeout. An early call does
   * nothing, so it is always safe to call.
   *
   * @param now The time.
   */
  handleTimeout(now: Millis): void {
    const error = this.#deadlines.handleTimeout(now, this.#state);
    if (error !== undefined) this.#close(error);
  }

  /**
   * Reports that the transport ended (or failed). Emits `closed` unless the machine had closed already.
   *
   * @param now The time.
   * @param cause What ended it, kept as the error's cause.
   */
  handleClose(_now: Millis, cause?: unknown): void {
    if (this.#state !== "connecting" && this.#state !== "connected") return;
    this.#close(
      new MqttError(ReasonCode.UnspecifiedError, "Connection lost: the transport closed", {
        source: "transport",
        cause,
      }),
    );
  }

  // ---------------------------------------------------------------- outputs

  /**
   * The next chunk to write, or `undefined` when there are none: small packets coalesced, a packet of 16 KiB
   * or more alone. Call it until it returns `undefined`.
   */
  pollTransmit(): Uint8Array | undefined {
    return this.#wire.outbox.take();
  }

  /** The next event, or `undefined` when there are none. */
  pollEvent(): ClientEvent | undefined {
    return this.#wire.pollEvent();
  }

  /** When {@linkcode ClientMachine.handleTimeout} should run next, or `undefined` when nothing is pending. */
  pollTimeout(): Millis | undefined {
    return this.#deadlines.poll(this.#state);
  }

  // ---------------------------------------------------------------- internals

  #requireConnected(action: string): void {
    if (this.#state !== "connected") {
      throw new MqttError(
        ReasonCode.ProtocolError,
        `Cannot ${action}: the client is ${this.#state}, not connected`,
      );
    }
  }

  #emit(event: ClientEvent): void {
    this.#wire.emit(event);
  }

  #send(now: Millis, packet: Packet): void {
    this.#wire.send(now, packet);
  }

  #newIdentifier(): number | undefined {
    if (
      this.#version !== 5 || this.#handshake.connack?.properties?.subscriptionIdentifiersAvailable === false
    ) {
      return undefined;
    }
    return this.#subscriptions.newIdentifier();
  }

  /** Forgets the session: in-flight publishes fail, inbound QoS 2 state and pending acks are dropped. */
  #dropSession(error: MqttError): void {
    this.#out.drop(error);
    this.#in.drop();
    this.#hasSession = this.#subscriptions.wireSize > 0;
  }

  #handlePacket(now: Millis, packet: Packet): void {
    switch (packet.type) {
      case "connack":
        return this.#handleConnAck(now, packet);
      case "publish":
        return this.#handlePublish(now, packet);
      case "puback":
      case "pubrec":
      case "pubcomp":
        if (
          this.#out.handleAck(now, packet.type, packet.packetId, packet.reasonCode, packet.properties) &&
          this.#state === "connected"
        ) this.#out.fillQuota(now);
        return;
      case "pubrel":
        return this.#in.handlePubRel(now, packet.packetId);
      case "suback":
      case "unsuback": {
        const error = this.#control.handleAck(packet.type, packet.packetId, packet.reasonCodes);
        if (error !== undefined) this.#protocolFailure(now, error.reasonCode, error.message);
        return;
      }
      case "pingresp":
        return this.#deadlines.pong();
      case "disconnect":
        return this.#close(
          new MqttError(
            packet.reasonCode,
            `Disconnected by the server: ${
              packet.properties?.reasonString ?? REASON_TEXT[packet.reasonCode]
            }`,
            { source: "peer" },
          ),
          packet,
        );
      case "auth":
        if (this.#handshake.connect?.properties?.authenticationMethod === undefined) {
          return this.#protocolFailure(
            now,
            ReasonCode.ProtocolError,
            "Cannot accept AUTH: no authentication method was used",
          );
        }
        this.#emit({ type: "auth", packet });
        return;
      case "connect":
      case "subscribe":
      case "unsubscribe":
      case "pingreq":
        return this.#protocolFailure(
          now,
          ReasonCode.ProtocolError,
          `Cannot accept ${packet.type.toUpperCase()}: servers do not send it`,
        );
      default: {
        const unreachable: never = packet;
        throw new Error(`Unhandled packet ${(unreachable as Packet).type}`);
      }
    }
  }

  #handleConnAck(now: Millis, connack: ConnAckPacket): void {
    if (this.#state !== "connecting") {
      return this.#protocolFailure(now, ReasonCode.ProtocolError, "Cannot accept CONNACK: already connected");
    }
    const hadSession = this.#hasSession && !this.#handshake.connect!.cleanStart;
    const error = this.#handshake.accept(connack);
    if (error !== undefined) {
      // [MQTT-4.13.2-1]: a refused connection closes.
      if (connack.reasonCode >= 0x80) return this.#close(error, undefined, connack);
      return this.#protocolFailure(now, error.reasonCode, error.message);
    }
    const sessionPresent = this.#handshake.sessionPresent;
    this.#state = "connected";
    this.#deadlines.connected(this.#handshake.keepAlive);
    this.#out.connected(connack.properties);
    if (!sessionPresent) {
      // [MQTT-3.2.2-5]: without the session, its state goes; subscriptions are made again.
      if (hadSession) {
        this.#dropSession(
          new MqttError(
            ReasonCode.UnspecifiedError,
            "Cannot finish the publish: the server did not keep the session",
          ),
        );
      }
      this.#in.drop();
    }
    this.#emit({ type: "connected", sessionPresent, connack });
    this.#resume(now, sessionPresent);
  }

  /** After CONNACK: resend what the session needs, in the original order [MQTT-4.4.0-1] [MQTT-4.6.0-1]. */
  #resume(now: Millis, sessionPresent: boolean): void {
    this.#control.resume(now, sessionPresent);
    this.#out.resend(now);
    this.#out.fillQuota(now);
    this.#in.flush(now);
  }

  #handlePublish(now: Millis, packet: PublishPacket): void {
    if (this.#state !== "connected") {
      return this.#protocolFailure(now, ReasonCode.ProtocolError, "Cannot accept PUBLISH before CONNACK");
    }
    const alias = packet.properties?.topicAlias;
    if (alias !== undefined) {
      const error = this.#aliases.resolve(packet, alias, this.#handshake.incomingAliasMaximum);
      if (error !== undefined) return this.#protocolFailure(now, error.reasonCode, error.message);
    }
    const qos = packet.qos;
    if (qos === 0) {
      this.#deliver(packet);
      return;
    }
    const packetId = packet.packetId as number;
    if (this.#in.receive(now, qos, packetId)) {
      this.#deliver(packet);
      this.#in.flush(now);
    }
  }

  /** The local subscriptions a message matches now, as its `message` event lists them (for one held since). */
  route(packet: PublishPacket): readonly number[] {
    return this.#subscriptions.route(packet);
  }

  #deliver(packet: PublishPacket): void {
    this.#emit({ type: "message", packet, subscriptions: this.#subscriptions.route(packet) });
  }

  /** The peer broke the protocol: tell it why (MQTT 5) and close [MQTT-4.13.1-1]. */
  #protocolFailure(now: Millis, reasonCode: ReasonCode, message: string): void {
    if (this.#version === 5 && this.#state === "connected") {
      this.#send(now, { type: "disconnect", reasonCode });
    }
    this.#close(new MqttError(reasonCode, message));
  }

  #close(error: MqttError | undefined, disconnect?: DisconnectPacket, connack?: ConnAckPacket): void {
    this.#state = "closed";
    this.#deadlines.stop();
    const event: ClientEvent = { type: "closed" };
    if (error !== undefined) event.error = error;
    if (disconnect !== undefined) event.disconnect = disconnect;
    if (connack !== undefined) event.connack = connack;
    this.#emit(event);
  }
}
