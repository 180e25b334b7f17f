/**
 * The broker side of one MQTT connection, sans-IO: bytes and time in; bytes, events and a deadline out.
 *
 * @module
 */

import { reasonCodeAllowed } from "../codec/reason_codes.ts";
import { MAX_PACKET_SIZE, PacketDecoder } from "../codec/decoder.ts";
import { encode } from "../codec/encode.ts";
import type {
  AckProperties,
  AuthPacket,
  AuthProperties,
  ConnAckPacket,
  ConnAckProperties,
  ConnectPacket,
  DisconnectPacket,
  DisconnectProperties,
  Packet,
  Properties,
  ProtocolVersion,
  PubAckPacket,
  PublishPacket,
  PubRecPacket,
  QoS,
  SubAckPacket,
  SubscribePacket,
  UnsubAckPacket,
  UnsubscribePacket,
  Will,
} from "../codec/packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import { Outbox } from "./_outbox.ts";
import {
  type Delivery,
  type EncodedPublish,
  encodePublish,
  encodingKey,
  publishEncodeCounter,
  publishPacket,
  remainingSeconds,
} from "./_delivery.ts";
import { SessionState } from "./session_state.ts";
import { OWNER } from "./_owner.ts";

import type { Millis } from "./client_machine.ts";

/**
 * Where a {@linkcode SessionMachine} is in the life of its connection.
 *
 * @example From waiting to closed
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "@x/mqtt/codec";
 * import { SessionMachine } from "@x/mqtt/machine";
 * const session = new SessionMachine(0);
 * assert.equal(session.state, "waiting");
 * session.handleBytes(1, encode({
 *   type: "connect", protocolVersion: 5, clientId: "a", cleanStart: true, keepAlive: 0,
 * }, 5));
 * assert.equal(session.state, "connecting");
 * session.accept(2);
 * assert.equal(session.state, "connected");
 * session.handleBytes(3, encode({ type: "disconnect", reasonCode: 0 }, 5));
 * assert.equal(session.state, "closed");
 * ```
 */
export type SessionMachineState =
  /** Waiting for CONNECT. */
  | "waiting"
  /** CONNECT received; waiting for `accept` or `reject` (and for the AUTH exchange, if any). */
  | "connecting"
  /** CONNACK 0x00 sent. */
  | "connected"
  /** The connection is over: write what `pollTransmit` still returns, then close the transport. */
  | "closed";

/**
 * The largest packet a {@linkcode SessionMachine} accepts by default: 1 MiB, fixed header included, as EMQX's
 * `max_packet_size`. A packet announcing more is refused from its fixed header, before its body is read.
 */
export const DEFAULT_MAXIMUM_PACKET_SIZE: number = 1_048_576;

/** Options of {@linkcode SessionMachine}. */
export interface SessionMachineOptions {
  /** Milliseconds the client has to send CONNECT and be accepted; 0 waits forever. @default 10000 */
  connectTimeoutMs?: number;
  /**
   * The largest packet accepted from the client, in bytes, fixed header included; advertised in an MQTT 5
   * CONNACK (Maximum Packet Size). A packet announcing more is refused as soon as its fixed header arrives,
   * without reading its body: MQTT 5 clients get DISCONNECT 0x95 Packet Too Large, earlier versions a closed
   * connection [MQTT-3.2.2-15]. The CONNECT itself is held to it too. At least 2; 0 sets no limit but the
   * protocol's (256 MiB), so that one connection can make the broker hold that much. @default 1048576 (1 MiB)
   */
  maximumPacketSize?: number;
  /** How many QoS 1 and 2 PUBLISH the client may have unacknowledged (MQTT 5 Receive Maximum). @default 65535 */
  receiveMaximum?: number;
  /** The highest topic alias accepted from an MQTT 5 client; 0 accepts none. @default 16 */
  topicAliasMaximum?: number;
  /**
   * The highest QoS accepted in PUBLISH and wills (MQTT 5 Maximum QoS); an MQTT 5 CONNACK advertises it.
   * Subscriptions are still granted up to 2 [MQTT-3.2.2-10]. @default 2
   */
  maximumQoS?: QoS;
  /** Whether retained messages are accepted (MQTT 5 Retain Available). @default true */
  retainAvailable?: boolean;
  /**
   * The most QoS 1 and 2 messages in flight to the client, for clients of any version; an MQTT 5 client's
   * Receive Maximum lowers it further. @default 65535
   */
  maxInflightMessages?: number;
}

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
 * What a {@linkcode SessionMachine} reports. Events named after a packet ask the driver to decide and answer
 * with a command; `closed` reports a fact and is always the last event, emitted exactly once.
 *
 * @example Answer a QoS 1 PUBLISH
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode } from "@x/mqtt/codec";
 * import { SessionMachine } from "@x/mqtt/machine";
 * const session = new SessionMachine(0);
 * session.handleBytes(1, encode({
 *   type: "connect", protocolVersion: 4, clientId: "a", cleanStart: true, keepAlive: 0,
 * }, 4));
 * assert.equal(session.pollEvent()?.type, "connect");
 * session.accept(2);
 * session.pollTransmit(); // CONNACK
 * const payload = new Uint8Array([42]);
 * session.handleBytes(3, encode({
 *   type: "publish", topic: "a/b", payload, qos: 1, packetId: 7, retain: false, dup: false,
 * }, 4));
 * const event = session.pollEvent();
 * assert(event?.type === "publish" && event.packet.packetId !== undefined);
 * session.acknowledge(4, event.packet.packetId); // after routing it
 * assert.deepEqual(session.pollTransmit(), new Uint8Array([0x40, 0x02, 0x00, 0x07])); // PUBACK 7
 * session.handleClose(5);
 * assert.equal(session.pollEvent()?.type, "closed");
 * ```
 */
export type SessionEvent =
  /** Answer with `accept` (or `BrokerMachine.attach`) or `reject`. */
  | { type: "connect"; packet: ConnectPacket }
  /** MQTT 5 enhanced authentication: answer with `authenticate`, `accept`, `reject` or `disconnect`. */
  | { type: "auth"; packet: AuthPacket }
  /** Route it, then `acknowledge` it when `qos > 0`. Its topic alias is already resolved. */
  | { type: "publish"; packet: PublishPacket }
  /** Answer with `grant` (or `BrokerMachine.subscribe`). */
  | { type: "subscribe"; packet: SubscribePacket }
  /** Answer with `acknowledgeUnsubscribe` (or `BrokerMachine.unsubscribe`). */
  | { type: "unsubscribe"; packet: UnsubscribePacket }
  /** The connection is over; `error` says why unless it ended normally. */
  | { type: "closed"; error?: MqttError };

const EMPTY_CODES: ReasonCode[] = [];

/** The limits a client announced in its CONNECT (MQTT 5), or the defaults. */
interface ClientLimits {
  readonly receiveMaximum: number;
  readonly maximumPacketSize: number;
  readonly topicAliasMaximum: number;
  readonly authenticationMethod: string | undefined;
  readonly requestProblemInformation: boolean;
}

/** Inbound and outbound topic aliases, and the next outbound alias to hand out. */
interface Aliases {
  inbound?: Map<number, string>;
  outbound?: Map<string, number>;
  next: number;
}

/** {@linkcode SessionMachineOptions} checked and resolved. */
interface Limits {
  /** The options as given, to tell whether the options object changed since. */
  readonly given: readonly unknown[];
  readonly connectTimeoutMs: number;
  /** The largest packet accepted, or `undefined` for the protocol's limit (not advertised). */
  readonly maximumPacketSize: number | undefined;
  readonly receiveMaximum: number;
  readonly topicAliasMaximum: number;
  readonly maximumQoS: QoS;
  readonly retainAvailable: boolean;
  readonly maxInflight: number;
  /** A client's limits until its CONNECT says otherwise. */
  readonly client: ClientLimits;
  readonly decoder: { maximumPacketSize: number | undefined };
}

/** Resolved limits by options object: the sessions of one broker share one. */
const resolvedLimits = new WeakMap<SessionMachineOptions, Limits>();

/** The options, checked and resolved; the same object for the same options object while its values stay. */
function limitsOf(options: SessionMachineOptions): Limits {
  const given = [
    options.connectTimeoutMs,
    options.maximumPacketSize,
    options.receiveMaximum,
    options.topicAliasMaximum,
    options.maximumQoS,
    options.retainAvailable,
    options.maxInflightMessages,
  ];
  const known = resolvedLimits.get(options);
  if (known !== undefined && known.given.every((value, index) => value === given[index])) return known;
  const limits = resolveLimits(options, given);
  resolvedLimits.set(options, limits);
  return limits;
}

function resolveLimits(options: SessionMachineOptions, given: readonly unknown[]): Limits {
  const maximumPacketSize = options.maximumPacketSize ?? DEFAULT_MAXIMUM_PACKET_SIZE;
  if (!Number.isInteger(maximumPacketSize) || maximumPacketSize === 1 || maximumPacketSize < 0) {
    throw new RangeError(
      `Cannot create session: maximum packet size ${maximumPacketSize} is neither 0 (none) nor a whole number of at least 2`,
    );
  }
  const maxInflight = options.maxInflightMessages ?? 65_535;
  if (!(maxInflight >= 1)) {
    throw new RangeError(`Cannot create session: at most ${maxInflight} messages in flight`);
  }
  const receiveMaximum = options.receiveMaximum ?? 65_535;
  if (receiveMaximum < 1 || receiveMaximum > 65_535) {
    throw new RangeError(`Cannot create session: receive maximum ${receiveMaximum} is not 1 to 65535`);
  }
  const topicAliasMaximum = options.topicAliasMaximum ?? 16;
  if (topicAliasMaximum < 0 || topicAliasMaximum > 65_535) {
    throw new RangeError(`Cannot create session: topic alias maximum ${topicAliasMaximum} is not 0 to 65535`);
  }
  const limit = maximumPacketSize === 0 || maximumPacketSize >= MAX_PACKET_SIZE
    ? undefined
    : maximumPacketSize;
  return {
    given,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    maximumPacketSize: limit,
    receiveMaximum,
    topicAliasMaximum,
    maximumQoS: options.maximumQoS ?? 2,
    retainAvailable: options.retainAvailable ?? true,
    maxInflight,
    client: {
      receiveMaximum: Math.min(65_535, maxInflight),
      maximumPacketSize: Infinity,
      topicAliasMaximum: 0,
      authenticationMethod: undefined,
      requestProblemInformation: true,
    },
    decoder: { maximumPacketSize: limit },
  };
}
/** Marks an awaited inbound PUBLISH whose message the driver routed (see `SessionMachine.routed`). */
const ROUTED = 4;
/** The most packets kept between a CONNECT and its answer. */
const MAX_HELD = 1000;

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
  /** The options, resolved once and shared by the machines made with the same ones (see `limitsOf`). */
  readonly #limits: Limits;

  #state: SessionMachineState = "waiting";
  #congested = false;
  #droppedWhileCongested = 0;
  #version: ProtocolVersion | undefined;
  /** The CONNECT, from its arrival until it is accepted or refused. */
  #connect: ConnectPacket | undefined;
  #clientId = "";
  #will: Will | undefined;
  #sessionExpiryInterval = 0;
  #keepAliveMs = 0;
  #deadline: Millis | undefined;
  #lastReceived: Millis;
  /**
   * While waiting for CONNECT, its first bytes, to learn the protocol level of a CONNECT that fails to decode;
   * then, until `accept`, the packets that came after it (made when the first one does).
   */
  #early: Uint8Array | Packet[] | undefined;

  #session: SessionState = new SessionState("");
  // The maps below are made when first needed: an idle connection holds none.
  /**
   * Inbound QoS 1 and 2 PUBLISH reported to the driver and not yet acknowledged, by packet identifier: the QoS,
   * plus {@linkcode ROUTED} once the driver said the message is routed.
   */
  #awaitingAck: Map<number, number> | undefined;
  /** How many of them are QoS 1 (the QoS 2 ones are in the session's inbound identifiers). */
  #awaitingQoS1 = 0;
  /** The client's limits (MQTT 5 CONNECT properties): the limits' shared defaults unless it sent some. */
  #client: ClientLimits;
  /**
   * Packet identifiers of deliveries in flight from an earlier connection that wait for the client's Receive
   * Maximum to be resent on this one, in their order [MQTT-4.4.0-1] [MQTT-3.3.4-9].
   */
  #unsent: Set<number> | undefined;
  /** Topic aliases, inbound and outbound; made with the first one. */
  #aliases: Aliases | undefined;
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
    const limits = this.#limits = limitsOf(options);
    this.#client = limits.client;
    this.#decoder = new PacketDecoder(limits.decoder);
    this.#lastReceived = now;
    this.#deadline = limits.connectTimeoutMs > 0 ? now + limits.connectTimeoutMs : undefined;
    this[OWNER] = undefined;
  }

  /** Where the connection is. */
  get state(): SessionMachineState {
    return this.#state;
  }

  /** The protocol level of the client, once its CONNECT arrived. */
  get version(): ProtocolVersion | undefined {
    return this.#version;
  }

  /** The client identifier: from the CONNECT, or the one assigned on `accept`. */
  get clientId(): string {
    return this.#clientId;
  }

  /**
   * The CONNECT packet, from its arrival until the client is accepted (`accept`): then it is let go, so that an
   * idle connection does not hold it. What is needed of it later has getters of its own (`clientId`, `version`,
   * `will`, `sessionExpiryInterval`, `authenticationMethod`).
   */
  get connectPacket(): ConnectPacket | undefined {
    return this.#connect;
  }

  /** The MQTT 5 authentication method of the CONNECT, which a re-authentication keeps [MQTT-4.12.1-1]. */
  get authenticationMethod(): string | undefined {
    return this.#client.authenticationMethod;
  }

  /**
   * The will message to publish when this connection is over: `undefined` when there is none or when the client
   * disconnected normally [MQTT-3.1.2-10] [MQTT-3.14.4-3]. Its payload is the machine's own copy.
   */
  get will(): Will | undefined {
    return this.#will;
  }

  /** The session expiry interval in seconds: from the CONNECT (MQTT 5), updated by the client's DISCONNECT. */
  get sessionExpiryInterval(): number {
    return this.#sessionExpiryInterval;
  }

  /** The delivery state this connection sends from. */
  get session(): SessionState {
    return this.#session;
  }

  /** Whether the driver said the connection's writes are backed up; see {@linkcode SessionMachine.setCongested}. */
  get congested(): boolean {
    return this.#congested;
  }

  /** How many QoS 0 messages were dropped because the connection was congested. */
  get droppedWhileCongested(): number {
    return this.#droppedWhileCongested;
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
    if (this.#congested === congested) return;
    this.#congested = congested;
    if (!congested && this.#state === "connected") this.#pump(now);
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
    this.#lastReceived = now;
    if (this.#state === "waiting") {
      const head = this.#early as Uint8Array | undefined;
      if ((head?.length ?? 0) < 16) this.#early = joinHead(head, bytes);
    }
    try {
      this.#decoder.push(bytes);
      for (let packet = this.#decoder.next(); packet !== undefined; packet = this.#decoder.next()) {
        this.#handlePacket(now, packet);
        if (this.#isClosed()) return;
      }
    } catch (error) {
      if (!(error instanceof MqttError)) throw error;
      this.#protocolFailure(now, error);
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
    if (this.#state === "closed" || this.#deadline === undefined || now < this.#deadline) return;
    if (this.#state === "connected") {
      this.#fail(
        now,
        new MqttError(
          ReasonCode.KeepAliveTimeout,
          `Cannot keep the connection: nothing received for ${now - this.#lastReceived} ms [MQTT-3.1.2-22]`,
        ),
        true,
      );
    } else {
      this.#close(
        new MqttError(
          ReasonCode.MaximumConnectTime,
          `Cannot accept the connection: not connected within ${this.#limits.connectTimeoutMs} ms`,
        ),
      );
    }
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
    return this.#state === "closed" ? undefined : this.#deadline;
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
    const version = this.#version as ProtocolVersion;
    const connect = this.#connect as ConnectPacket;
    // [MQTT-3.2.2-2] never present after a clean start.
    const sessionPresent = options.sessionPresent === true && !connect.cleanStart;
    this.#connect = undefined; // what is needed of it from now on is kept apart
    const extra = options.properties;
    if (extra?.assignedClientIdentifier !== undefined) this.#clientId = extra.assignedClientIdentifier;
    const early = this.#session;
    this.#session = options.state ?? new SessionState(this.#clientId);
    let properties: ConnAckProperties | undefined;
    if (version === 5) {
      properties = { ...extra };
      if (this.#limits.receiveMaximum !== 65_535) properties.receiveMaximum = this.#limits.receiveMaximum;
      if (this.#limits.topicAliasMaximum > 0) properties.topicAliasMaximum = this.#limits.topicAliasMaximum;
      if (this.#limits.maximumPacketSize !== undefined) {
        properties.maximumPacketSize = this.#limits.maximumPacketSize;
      }
      // [MQTT-3.2.2-9] a server without QoS 2 says so.
      if (this.#limits.maximumQoS < 2) properties.maximumQoS = this.#limits.maximumQoS as 0 | 1;
      if (!this.#limits.retainAvailable) properties.retainAvailable = false;
      if (extra?.sessionExpiryInterval !== undefined) {
        this.#sessionExpiryInterval = extra.sessionExpiryInterval;
      }
      if (extra?.serverKeepAlive !== undefined) this.#keepAliveMs = extra.serverKeepAlive * 1000;
    }
    this.#pushTrimmed({ type: "connack", sessionPresent, reasonCode: ReasonCode.Success, properties });
    this.#state = "connected";
    this.#lastReceived = Math.max(this.#lastReceived, now);
    this.#updateDeadline();
    if (sessionPresent) {
      // [MQTT-4.4.0-1] in flight from the last connection: PUBLISH again with DUP and PUBREL again, with the
      // original packet identifiers, in order [MQTT-4.6.0-1]; PUBLISH only while this connection's Receive
      // Maximum allows [MQTT-3.3.4-9] (the client may have lowered it), the rest as acknowledgements come.
      let active = 0;
      for (const entry of this.#session.inflight.values()) {
        if (entry.released) {
          active++;
          this.#outbox.push({ type: "pubrel", packetId: entry.packetId, reasonCode: 0 }, version);
        } else if (active >= this.#client.receiveMaximum || this.#unsent !== undefined) {
          (this.#unsent ??= new Set()).add(entry.packetId);
        } else if (this.#sendPublish(now, entry, entry.packetId, true)) {
          active++;
        } else {
          // Too large for this connection's Maximum Packet Size: dropped as if sent [MQTT-3.1.2-25].
          this.#session.complete(entry.packetId);
        }
      }
    } else {
      this.#session.clear(now);
    }
    // Deliveries made before the client was accepted wait in a state of their own until now.
    if (early !== this.#session) { for (const delivery of early.queue) this.#session.enqueue(now, delivery); }
    this.#pump(now);
    const held = this.#early as Packet[] | undefined;
    this.#early = undefined;
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
    this.#sendConnAck(reasonCode, properties);
    this.#will = undefined;
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
    if (this.#client.authenticationMethod === undefined) {
      throw new Error("Cannot send AUTH: the client did not ask for enhanced authentication [MQTT-4.12.0-6]");
    }
    this.#pushTrimmed({
      type: "auth",
      reasonCode,
      properties: { ...properties, authenticationMethod: this.#client.authenticationMethod },
    });
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
    const awaiting = this.#awaitingAck?.get(packetId);
    return awaiting !== undefined && (awaiting & ROUTED) === 0;
  }

  /**
   * Records that the message of an inbound PUBLISH was routed while its acknowledgement waits (flow control,
   * see {@linkcode BrokerMachine.publish}): from now on a store keeps its QoS 2 identifier, so that the
   * client's resend after a crash is answered as a duplicate rather than routed twice.
   *
   * @param packetId The PUBLISH's packet identifier.
   */
  routed(packetId: number): void {
    const awaiting = this.#awaitingAck?.get(packetId);
    if (awaiting === undefined || (awaiting & ROUTED) !== 0) return;
    this.#awaitingAck!.set(packetId, awaiting | ROUTED);
    if (awaiting === 2) this.#session.journal?.inboundChanged(this.#session);
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
    const awaiting = this.#awaitingAck?.get(packetId);
    if (awaiting === undefined) {
      if (this.#state === "closed") return;
      throw new Error(`Cannot acknowledge packet ${packetId}: no PUBLISH awaits it`);
    }
    const qos = awaiting & 3;
    if (!reasonCodeAllowed(qos === 1 ? "puback" : "pubrec", reasonCode)) {
      throw new RangeError(
        `Cannot acknowledge packet ${packetId} with reason code 0x${reasonCode.toString(16)}: not a ${
          qos === 1 ? "PUBACK" : "PUBREC"
        } code`,
      );
    }
    this.#awaitingAck!.delete(packetId);
    if (qos === 1) this.#awaitingQoS1--;
    const version = this.#version as ProtocolVersion;
    if (qos === 2) {
      // [MQTT-4.3.3-9] after a refusal the identifier is free for a new message (also when the connection
      // closed while the driver decided: the client's resend is then a new message).
      if (reasonCode >= 0x80) this.#session.removeInboundQoS2(packetId);
      // Routed by now: from here on a store keeps the identifier (see awaitsRouting).
      else this.#session.journal?.inboundChanged(this.#session);
    }
    if (this.#state === "closed") return;
    if (properties === undefined) {
      this.#outbox.push({ type: qos === 1 ? "puback" : "pubrec", packetId, reasonCode }, version);
    } else {
      this.#pushTrimmed({ type: qos === 1 ? "puback" : "pubrec", packetId, reasonCode, properties });
    }
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
    if (this.#state === "closed") return;
    this.#pushTrimmed({ type: "suback", packetId, reasonCodes: [...reasonCodes], properties });
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
    if (this.#state === "closed") return;
    const version = this.#version as ProtocolVersion;
    this.#pushTrimmed({
      type: "unsuback",
      packetId,
      reasonCodes: version === 5 ? [...reasonCodes] : EMPTY_CODES,
      properties,
    });
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
    if (this.#state !== "connected") {
      if (delivery.qos > 0) this.#session.enqueue(now, delivery);
      return;
    }
    if (delivery.qos === 0) {
      if (this.#congested) this.#droppedWhileCongested++;
      else this.#sendPublish(now, delivery, 0, false);
      return;
    }
    const session = this.#session;
    if (
      this.#congested || this.#unsent !== undefined || session.queue.length > 0 ||
      session.inflight.size >= this.#client.receiveMaximum
    ) {
      session.enqueue(now, delivery);
      return;
    }
    this.#startDelivery(now, delivery);
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
    if (this.#state === "connected" && this.#version === 5) {
      const { sessionExpiryInterval: _, ...rest } = properties ?? {};
      this.#pushTrimmed({ type: "disconnect", reasonCode, properties: rest });
    }
    this.#close(reasonCode === 0 ? undefined : new MqttError(reasonCode));
    void now;
  }

  // ---------------------------------------------------------------------------------------------- internals

  #handlePacket(now: Millis, packet: Packet): void {
    if (this.#state === "waiting") {
      // The decoder only lets a CONNECT through first [MQTT-3.1.0-1].
      if (packet.type === "connect") this.#handleConnect(packet);
      return;
    }
    if (this.#state === "connecting") {
      if (packet.type === "auth") {
        this.#handleAuth(now, packet);
      } else if (packet.type === "connect") {
        this.#fail(now, protocolError("a second CONNECT [MQTT-3.1.0-2]"), false);
      } else if (packet.type === "disconnect") {
        this.#close(undefined);
      } else if (((this.#early as Packet[] | undefined)?.length ?? 0) < MAX_HELD) {
        ((this.#early as Packet[] | undefined) ??= []).push(packet);
      } else {
        // A client that floods before it is accepted is refused rather than buffered without bound.
        this.#fail(
          now,
          new MqttError(ReasonCode.QuotaExceeded, `Cannot hold more than ${MAX_HELD} packets before CONNACK`),
          true,
        );
      }
      return;
    }
    switch (packet.type) {
      case "publish":
        this.#handlePublish(now, packet);
        break;
      case "puback": {
        const entry = this.#session.inflight.get(packet.packetId);
        if (entry !== undefined && entry.qos === 1) {
          // Also one still to resend: the client had it from the last connection.
          this.#unsent?.delete(packet.packetId);
          this.#session.complete(packet.packetId);
          this.#pump(now);
        }
        break;
      }
      case "pubrec": {
        const entry = this.#session.inflight.get(packet.packetId);
        const version = this.#version as ProtocolVersion;
        if (entry === undefined || entry.qos !== 2) {
          this.#outbox.push(
            { type: "pubrel", packetId: packet.packetId, reasonCode: ReasonCode.PacketIdentifierNotFound },
            version,
          );
        } else if (packet.reasonCode >= 0x80) {
          // [MQTT-4.4.0-2] a refusal completes the delivery.
          this.#unsent?.delete(packet.packetId);
          this.#session.complete(packet.packetId);
          this.#pump(now);
        } else {
          // [MQTT-4.3.3-4] PUBREL with the same identifier; the PUBLISH is never sent again [MQTT-4.3.3-6].
          this.#unsent?.delete(packet.packetId);
          this.#session.release(entry);
          this.#outbox.push({ type: "pubrel", packetId: packet.packetId, reasonCode: 0 }, version);
        }
        break;
      }
      case "pubcomp": {
        const entry = this.#session.inflight.get(packet.packetId);
        if (entry !== undefined && entry.released) {
          this.#session.complete(packet.packetId);
          this.#pump(now);
        }
        break;
      }
      case "pubrel": {
        // [MQTT-4.3.3-11] PUBCOMP with the same identifier; afterwards the identifier is new [MQTT-4.3.3-12].
        // An unknown identifier is a PUBREL resent after its PUBCOMP was lost: 0x00 rather than 0x92, as
        // mosquitto answers, because MQTT.js fails the publish on a PUBCOMP 0x92 although it was delivered.
        this.#session.removeInboundQoS2(packet.packetId);
        this.#outbox.push(
          { type: "pubcomp", packetId: packet.packetId, reasonCode: ReasonCode.Success },
          this.#version as ProtocolVersion,
        );
        break;
      }
      case "subscribe":
        if (packet.properties?.subscriptionIdentifier === 0) {
          this.#fail(now, protocolError("subscription identifier 0"), true);
          break;
        }
        this.#emit({ type: "subscribe", packet });
        break;
      case "unsubscribe":
        this.#emit({ type: "unsubscribe", packet });
        break;
      case "pingreq":
        // [MQTT-3.12.4-1]
        this.#outbox.push({ type: "pingresp" }, this.#version as ProtocolVersion);
        break;
      case "disconnect":
        this.#handleDisconnect(now, packet.reasonCode, packet.properties?.sessionExpiryInterval);
        break;
      case "auth":
        this.#handleAuth(now, packet);
        break;
      case "connect":
        // [MQTT-3.1.0-2] a second CONNECT is a protocol error.
        this.#fail(now, protocolError("a second CONNECT [MQTT-3.1.0-2]"), true);
        break;
      case "connack":
      case "suback":
      case "unsuback":
      case "pingresp":
        this.#fail(now, protocolError(`${packet.type.toUpperCase()} from a client`), true);
        break;
      default: {
        const unreachable: never = packet;
        throw new TypeError(`Cannot handle packet ${(unreachable as Packet).type}`);
      }
    }
  }

  #handleConnect(packet: ConnectPacket): void {
    const version = packet.protocolVersion;
    this.#version = version;
    this.#connect = packet;
    this.#clientId = packet.clientId;
    this.#state = "connecting";
    this.#early = undefined; // the CONNECT decoded: its protocol level is known
    this.#keepAliveMs = packet.keepAlive * 1000;
    const properties = packet.properties;
    if (properties !== undefined) {
      this.#sessionExpiryInterval = properties.sessionExpiryInterval ?? 0;
      this.#client = {
        receiveMaximum: Math.min(properties.receiveMaximum ?? 65_535, this.#limits.maxInflight),
        maximumPacketSize: properties.maximumPacketSize ?? Infinity,
        topicAliasMaximum: properties.topicAliasMaximum ?? 0,
        authenticationMethod: properties.authenticationMethod,
        requestProblemInformation: properties.requestProblemInformation ?? true,
      };
    }
    if (packet.will !== undefined) {
      // [MQTT-3.1.2-7] the will is kept with the session: keep our own copy of its payload.
      const will: Will = { ...packet.will, payload: packet.will.payload.slice() };
      if (will.properties?.correlationData !== undefined) {
        will.properties = { ...will.properties, correlationData: will.properties.correlationData.slice() };
      }
      this.#will = will;
      packet.will = will; // the kept CONNECT must not pin the received chunk either
    }
    if (packet.password !== undefined) packet.password = packet.password.slice();
    if (packet.properties?.authenticationData !== undefined) {
      packet.properties.authenticationData = packet.properties.authenticationData.slice();
    }
    if (packet.will !== undefined && version === 5) {
      // [MQTT-3.2.2-12] [MQTT-3.2.2-13] a will the server cannot publish is refused.
      if (packet.will.qos > this.#limits.maximumQoS) {
        this.reject(0, ReasonCode.QoSNotSupported);
        return;
      }
      if (packet.will.retain && !this.#limits.retainAvailable) {
        this.reject(0, ReasonCode.RetainNotSupported);
        return;
      }
    }
    if (packet.clientId === "" && (version < 5 && !packet.cleanStart || version === 3)) {
      // [MQTT-3.1.3-8] (3.1.1) a zero-byte client identifier needs Clean Session; 3.1 requires one.
      this.reject(0, ReasonCode.ClientIdentifierNotValid);
      return;
    }
    this.#emit({ type: "connect", packet });
  }

  #handleAuth(now: Millis, packet: AuthPacket): void {
    const method = packet.properties?.authenticationMethod;
    if (this.#client.authenticationMethod === undefined || method !== this.#client.authenticationMethod) {
      // [MQTT-4.12.0-7] no AUTH without a method in CONNECT; [MQTT-4.12.1-1] re-authentication keeps it.
      this.#fail(
        now,
        protocolError("AUTH without the CONNECT's authentication method [MQTT-4.12.0-7]"),
        true,
      );
      return;
    }
    const expected = this.#state === "connected"
      ? ReasonCode.ReAuthenticate
      : ReasonCode.ContinueAuthentication;
    if (packet.reasonCode !== expected && packet.reasonCode !== ReasonCode.ContinueAuthentication) {
      this.#fail(now, protocolError(`AUTH with reason code ${packet.reasonCode}`), true);
      return;
    }
    if (packet.properties?.authenticationData !== undefined) {
      packet.properties.authenticationData = packet.properties.authenticationData.slice();
    }
    this.#emit({ type: "auth", packet });
  }

  #handlePublish(now: Millis, packet: PublishPacket): void {
    const version = this.#version as ProtocolVersion;
    if (packet.qos > this.#limits.maximumQoS) {
      // [MQTT-3.2.2-11] the client must not exceed the Maximum QoS of the CONNACK.
      this.#fail(
        now,
        new MqttError(ReasonCode.QoSNotSupported, `Cannot accept PUBLISH at QoS ${packet.qos}`),
        true,
      );
      return;
    }
    if (packet.retain && !this.#limits.retainAvailable) {
      // [MQTT-3.2.2-14]
      this.#fail(now, new MqttError(ReasonCode.RetainNotSupported, "Cannot accept a retained PUBLISH"), true);
      return;
    }
    const properties = packet.properties;
    if (properties !== undefined) {
      if (properties.subscriptionIdentifiers !== undefined) {
        // [MQTT-3.3.4-6]
        this.#fail(
          now,
          protocolError("a subscription identifier in a PUBLISH from a client [MQTT-3.3.4-6]"),
          true,
        );
        return;
      }
      const alias = properties.topicAlias;
      if (alias !== undefined) {
        if (alias > this.#limits.topicAliasMaximum) {
          // [MQTT-3.3.2-12] only aliases up to the CONNACK's maximum are accepted.
          this.#fail(
            now,
            new MqttError(
              ReasonCode.TopicAliasInvalid,
              `Cannot accept topic alias ${alias}: the maximum is ${this.#limits.topicAliasMaximum}`,
            ),
            true,
          );
          return;
        }
        if (packet.topic === "") {
          const topic = this.#aliases?.inbound?.get(alias);
          if (topic === undefined) {
            this.#fail(now, protocolError(`topic alias ${alias} that was never set`), true);
            return;
          }
          packet.topic = topic;
        } else {
          ((this.#aliases ??= { next: 1 }).inbound ??= new Map()).set(alias, packet.topic);
        }
        const { topicAlias: _, ...rest } = properties;
        packet.properties = rest;
      }
    }
    const packetId = packet.packetId;
    if (packetId === undefined) {
      this.#emit({ type: "publish", packet });
      return;
    }
    const awaiting = this.#awaitingAck ??= new Map();
    if (awaiting.has(packetId)) return; // a resend of one the driver is still deciding on
    const inboundQoS2 = this.#session.inboundQoS2;
    if (packet.qos === 2 && inboundQoS2.has(packetId)) {
      // [MQTT-4.3.3-10] a duplicate before PUBREL: PUBREC again, no new delivery.
      this.#outbox.push({ type: "pubrec", packetId, reasonCode: 0 }, version);
      return;
    }
    if (
      version === 5 && !packet.dup &&
      this.#awaitingQoS1 + inboundQoS2.size >= this.#limits.receiveMaximum
    ) {
      // MQTT 5 §3.3.4: a new message beyond the Receive Maximum we advertised [MQTT-3.3.4-7]. A resend (DUP)
      // beyond it is taken instead: a client resending after a reconnect may count differently, and a
      // disconnect would only bring the same resend back, again and again.
      this.#fail(
        now,
        new MqttError(
          ReasonCode.ReceiveMaximumExceeded,
          `Cannot accept PUBLISH ${packetId}: more than ${this.#limits.receiveMaximum} unacknowledged [MQTT-3.3.4-7]`,
        ),
        true,
      );
      return;
    }
    awaiting.set(packetId, packet.qos);
    if (packet.qos === 1) this.#awaitingQoS1++;
    // Owned from receipt: a resend on the next connection (after a takeover) is recognised as a duplicate. The
    // driver routes the message even if the connection closes before it decided, or refuses it, which frees
    // the identifier.
    if (packet.qos === 2) this.#session.addInboundQoS2(packetId);
    this.#emit({ type: "publish", packet });
  }

  #handleDisconnect(now: Millis, reasonCode: ReasonCode, sessionExpiryInterval: number | undefined): void {
    if (sessionExpiryInterval !== undefined) {
      if (this.#sessionExpiryInterval === 0 && sessionExpiryInterval !== 0) {
        // MQTT 5 §3.14.2.2.2: a session that was to end with the connection cannot be extended now.
        this.#fail(now, protocolError("a session expiry interval in DISCONNECT after 0 in CONNECT"), true);
        return;
      }
      this.#sessionExpiryInterval = sessionExpiryInterval;
    }
    // [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will; 0x04 and the error codes keep it.
    if (reasonCode === ReasonCode.NormalDisconnection) this.#will = undefined;
    this.#close(
      reasonCode >= 0x80 ? new MqttError(reasonCode, undefined, { source: "peer" }) : undefined,
    );
  }

  /** Sends a QoS 1 or 2 delivery with a new packet identifier, or drops it. */
  #startDelivery(now: Millis, delivery: Delivery): void {
    const expiry = remainingSeconds(delivery.message, now);
    if (expiry === 0) return; // [MQTT-3.3.2-5]
    const entry = this.#session.startInflight(delivery);
    if (entry === undefined) {
      this.#session.enqueue(now, delivery);
      return;
    }
    if (!this.#sendPublish(now, entry, entry.packetId, false)) {
      // [MQTT-3.1.2-25] too large for the client: behave as if it had been sent and completed.
      this.#session.complete(entry.packetId);
    }
  }

  /** How many QoS 1 and 2 deliveries count against the client's Receive Maximum on this connection. */
  #active(): number {
    return this.#session.inflight.size - (this.#unsent?.size ?? 0);
  }

  /**
   * Sends, while the client's Receive Maximum allows [MQTT-4.9.0-2], the deliveries of an earlier connection
   * still to resend, then the queued ones.
   */
  #pump(now: Millis): void {
    const session = this.#session;
    const unsent = this.#unsent;
    if (unsent !== undefined) {
      for (const packetId of unsent) {
        if (this.#congested || this.#active() >= this.#client.receiveMaximum) return;
        unsent.delete(packetId);
        const entry = session.inflight.get(packetId);
        if (entry === undefined || entry.released) continue;
        // [MQTT-3.1.2-25] too large for this connection: dropped as if sent.
        if (!this.#sendPublish(now, entry, packetId, true)) session.complete(packetId);
      }
      this.#unsent = undefined;
    }
    while (
      !this.#congested && session.queue.length > 0 && session.inflight.size < this.#client.receiveMaximum
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
    const version = this.#version as ProtocolVersion;
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
      if (this.#client.topicAliasMaximum > 0) {
        const known = this.#aliases?.outbound?.get(message.topic);
        if (known !== undefined) {
          alias = known;
          withTopic = false;
        } else if ((this.#aliases?.next ?? 1) <= this.#client.topicAliasMaximum) {
          // [MQTT-3.3.2-11] within the client's Topic Alias Maximum.
          alias = this.#aliases?.next ?? 1;
          newAlias = true;
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
        if (this.#outbox.push(packet, version, this.#client.maximumPacketSize) < 0) return false;
        this.#noteAlias(newAlias, message.topic, alias);
        return true;
      }
      encoded = encodePublish(packet, version);
      cache.set(key, encoded);
    }
    const bytes = encoded.bytes;
    // [MQTT-3.1.2-24] never larger than the client's Maximum Packet Size.
    if (bytes.length > this.#client.maximumPacketSize) return false;
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
    if (!newAlias) return;
    const aliases = this.#aliases ??= { next: 1 };
    (aliases.outbound ??= new Map()).set(topic, alias);
    aliases.next++;
  }

  #sendConnAck(reasonCode: ReasonCode, properties?: ConnAckProperties): void {
    this.#pushTrimmed({ type: "connack", sessionPresent: false, reasonCode, properties });
  }

  /**
   * Queues a packet that may carry a reason string and user properties: they are left out of an
   * acknowledgement when the client asked for no problem information [MQTT-3.1.2-29], and out of any of them
   * that would exceed the client's Maximum Packet Size [MQTT-3.2.2-19] [MQTT-3.2.2-20] [MQTT-3.4.2-2]
   * [MQTT-3.4.2-3] [MQTT-3.9.2-1] [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.11.2-2] [MQTT-3.14.2-3] [MQTT-3.14.2-4]
   * [MQTT-3.15.2-2] [MQTT-3.15.2-3].
   */
  #pushTrimmed(
    packet:
      | ConnAckPacket
      | DisconnectPacket
      | AuthPacket
      | PubAckPacket
      | PubRecPacket
      | SubAckPacket
      | UnsubAckPacket,
  ): void {
    const version = this.#version as ProtocolVersion;
    let properties = packet.properties as Properties | undefined;
    const ack = packet.type !== "connack" && packet.type !== "disconnect";
    if (properties !== undefined && ack && !this.#client.requestProblemInformation) {
      const { reasonString: _r, userProperties: _u, ...rest } = properties;
      properties = rest;
      packet = { ...packet, properties } as typeof packet;
    }
    let bytes = encode(packet, version);
    if (bytes.length > this.#client.maximumPacketSize && properties !== undefined) {
      const { reasonString: _r, userProperties: _u, ...rest } = properties as Properties;
      bytes = encode({ ...packet, properties: rest } as Packet, version);
    }
    this.#outbox.pushBytes(bytes);
  }

  /** What the client sent cannot be decoded: answer as the specification says, then close. */
  #protocolFailure(now: Millis, error: MqttError): void {
    if (this.#state === "waiting") {
      // The CONNECT itself: learn its level from the raw bytes to answer in a form the client reads.
      const protocol = connectProtocol(this.#early as Uint8Array | undefined);
      const level = protocol?.level;
      if (error.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
        // A level we do not speak (0-2, 6-255, or 3 with "MQTT", 4 or 5 with "MQIsdp"): CONNACK 0x01 unacceptable
        // protocol level in the 3.1.1 form, 20 02 00 01, then close. 3.1.1 requires it [MQTT-3.1.2-2]; MQTT 5
        // leaves the answer open [MQTT-3.1.2-2], and a client that does not know MQTT 5 can read only this form.
        // mosquitto 2.0.11 answers all of these with the same four bytes (checked with a raw socket).
        this.#version = level === 3 ? 3 : 4;
        this.#sendConnAck(error.reasonCode);
      } else if (level === 5 && protocol?.mqtt === true) {
        // A malformed MQTT 5 CONNECT: a CONNACK with the reason code (MQTT 5 §3.1.4), then close.
        this.#version = 5;
        this.#sendConnAck(connAckCode(error.reasonCode));
      }
      // Otherwise close without CONNACK: a malformed 3.1.1 CONNECT [MQTT-3.1.4-1], or a protocol name other than
      // "MQTT" and "MQIsdp", which may be some other protocol [MQTT-3.1.2-1] (mosquitto closes too).
      this.#close(error);
      return;
    }
    this.#fail(now, error, true);
  }

  /**
   * Ends the connection because of a client's error: a refusal CONNACK while the CONNECT waits for an answer, a
   * DISCONNECT with the reason code once connected (MQTT 5), then close [MQTT-4.13.1-1].
   */
  #fail(now: Millis, error: MqttError, answer: boolean): void {
    void now;
    if (answer && this.#version === 5) {
      if (this.#state === "connecting") this.#sendConnAck(connAckCode(error.reasonCode));
      else if (this.#state === "connected") {
        this.#outbox.push({ type: "disconnect", reasonCode: disconnectCode(error.reasonCode) }, 5);
      }
    }
    // Before MQTT 5 a failed CONNECT is closed without CONNACK [MQTT-3.1.4-1], anything else without a word.
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
    this.#deadline = undefined;
    this.#early = undefined;
    this.#emit(error === undefined ? { type: "closed" } : { type: "closed", error });
  }

  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #updateDeadline(): void {
    if (this.#state === "connected") {
      // [MQTT-3.1.2-22] 1.5 times the keep-alive; 0 turns it off.
      this.#deadline = this.#keepAliveMs > 0 ? this.#lastReceived + this.#keepAliveMs * 1.5 : undefined;
    }
  }

  /** Whether the client asked not to get reason strings and user properties on acknowledgements. */
  get requestProblemInformation(): boolean {
    return this.#client.requestProblemInformation;
  }
}

function protocolError(what: string): MqttError {
  return new MqttError(ReasonCode.ProtocolError, `Cannot accept ${what}`);
}

function connAckCode(code: ReasonCode): ReasonCode {
  return reasonCodeAllowed("connack", code) ? code : ReasonCode.UnspecifiedError;
}

function disconnectCode(code: ReasonCode): ReasonCode {
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
function joinHead(head: Uint8Array | undefined, bytes: Uint8Array): Uint8Array {
  if (head === undefined) return bytes.slice(0, 16);
  const joined = new Uint8Array(Math.min(16, head.length + bytes.length));
  joined.set(head);
  joined.set(bytes.subarray(0, joined.length - head.length), head.length);
  return joined;
}
