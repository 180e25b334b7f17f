/**
 * The public types of the broker side of a connection: its states and its events. Types only.
 *
 * @module
 */

import type {
  AuthPacket,
  ConnectPacket,
  PublishPacket,
  SubscribePacket,
  UnsubscribePacket,
} from "../codec/packet.ts";
import type { MqttError } from "../errors.ts";

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
