/**
 * Test helpers for the broker-side machines: a {@linkcode Harness} owns the clock, a {@linkcode BrokerMachine}
 * and a default driver (accept every CONNECT, route every PUBLISH, grant every SUBSCRIBE as requested), and
 * each {@linkcode TestClient} plays an MQTT client with nothing but the codec, so the bytes the session sees
 * are the encoder's and the bytes it sends are checked by the decoder.
 *
 * @module
 */

import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type {
  ConnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  QoS,
  Subscription,
} from "../../src/codec/packet.ts";
import { BrokerMachine, type BrokerMachineOptions } from "../../src/machine/broker_machine.ts";
import {
  type SessionEvent,
  SessionMachine,
  type SessionMachineOptions,
} from "../../src/machine/session_machine.ts";
import type { ReasonCode } from "../../src/errors.ts";

/** Options of {@linkcode Harness.connect}. */
export interface ConnectOptions
  extends Partial<Omit<ConnectPacket, "type" | "protocolVersion" | "clientId">> {
  /** Options of the session machine. */
  session?: SessionMachineOptions;
  /** Leave the `connect` event to the test instead of attaching. */
  manual?: boolean;
}

/** Hooks a test can set to make the driver decide differently. */
export interface DriverHooks {
  /** The PUBACK / PUBREC reason code for an inbound PUBLISH; default 0x00 after routing. */
  publish?: (client: TestClient, packet: PublishPacket) => ReasonCode | undefined;
  /** The codes for a SUBSCRIBE; default as requested. */
  subscribe?: (client: TestClient, subscriptions: Subscription[]) => ReasonCode[] | undefined;
  /** Leave every `publish` event unacknowledged (kept in `client.pendingPublishes`). */
  holdAcks?: boolean;
}

/** One client connection: a session machine and what the client side received. */
export class TestClient {
  readonly harness: Harness;
  readonly version: ProtocolVersion;
  readonly session: SessionMachine;
  readonly decoder: PacketDecoder;
  /** Packets received from the broker and not yet taken. */
  inbox: Packet[] = [];
  /** Events of the session that the default driver did not consume. */
  events: SessionEvent[] = [];
  /** PUBLISH events held because of `hooks.holdAcks`. */
  pendingPublishes: PublishPacket[] = [];
  /** Set when the client side could not decode what the session sent. */
  decodeError: unknown;
  /** Set once the `closed` event arrived. */
  closed: SessionEvent | undefined;
  manual: boolean;

  constructor(
    harness: Harness,
    version: ProtocolVersion,
    options: SessionMachineOptions = {},
    manual = false,
  ) {
    this.harness = harness;
    this.version = version;
    this.session = new SessionMachine(harness.now, options);
    this.decoder = new PacketDecoder({ version });
    this.manual = manual;
  }

  /** Sends packets from the client (encoded with the codec) and lets the driver run. */
  send(...packets: Packet[]): void {
    for (const packet of packets) {
      this.session.handleBytes(this.harness.now, encode(packet, this.version));
    }
    this.harness.pump();
  }

  /** Sends raw bytes from the client. */
  sendBytes(bytes: Uint8Array): void {
    this.session.handleBytes(this.harness.now, bytes);
    this.harness.pump();
  }

  /** Takes the packets received so far. */
  take(): Packet[] {
    const inbox = this.inbox;
    this.inbox = [];
    return inbox;
  }

  /** Takes the PUBLISH packets received so far (dropping other packets). */
  takePublishes(): PublishPacket[] {
    return this.take().filter((p): p is PublishPacket => p.type === "publish");
  }

  /** Subscribes and drops the SUBACK, returning its codes. */
  subscribe(
    filter: string | Partial<Subscription> & { topicFilter: string },
    qos: QoS = 0,
    identifier?: number,
  ): number[] {
    const subscription: Subscription = typeof filter === "string"
      ? { topicFilter: filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }
      : { qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...filter };
    this.send({
      type: "subscribe",
      packetId: 0xfff0,
      subscriptions: [subscription],
      properties: identifier === undefined ? undefined : { subscriptionIdentifier: identifier },
    });
    const packets = this.take();
    const suback = packets.find((p) => p.type === "suback");
    this.inbox = packets.filter((p) => p !== suback);
    if (suback?.type !== "suback") throw new Error("no SUBACK");
    return suback.reasonCodes;
  }

  /** Publishes from the client. */
  publish(topic: string, payload: string | Uint8Array, options: Partial<PublishPacket> = {}): void {
    const qos = options.qos ?? 0;
    const { packetId, ...rest } = options;
    this.send({
      type: "publish",
      topic,
      payload: typeof payload === "string" ? new TextEncoder().encode(payload) : payload,
      qos,
      retain: false,
      dup: false,
      ...(qos > 0 ? { packetId: packetId ?? 1 } : {}),
      ...rest,
    });
  }

  /** Acknowledges every PUBLISH in the inbox the way a client does, returning them. */
  ackAll(): PublishPacket[] {
    const publishes = this.takePublishes();
    for (const p of publishes) {
      if (p.qos === 1) this.send({ type: "puback", packetId: p.packetId as number, reasonCode: 0 });
      if (p.qos === 2) {
        this.send({ type: "pubrec", packetId: p.packetId as number, reasonCode: 0 });
        this.take();
        this.send({ type: "pubcomp", packetId: p.packetId as number, reasonCode: 0 });
      }
    }
    return publishes;
  }

  /** Drops the connection without DISCONNECT. */
  drop(): void {
    this.session.handleClose(this.harness.now);
    this.harness.pump();
  }
}

/** A broker, a clock and a default driver. */
export class Harness {
  now = 0;
  readonly broker: BrokerMachine;
  readonly clients: TestClient[] = [];
  hooks: DriverHooks = {};

  constructor(options: BrokerMachineOptions = {}) {
    this.broker = new BrokerMachine(options);
  }

  /** Opens a connection and sends CONNECT; attaches it unless `manual`; returns it with the CONNACK in its inbox. */
  connect(clientId: string, version: ProtocolVersion = 5, options: ConnectOptions = {}): TestClient {
    const { session, manual, ...fields } = options;
    const client = new TestClient(this, version, session, manual);
    this.clients.push(client);
    client.send({
      type: "connect",
      protocolVersion: version,
      clientId,
      cleanStart: true,
      keepAlive: 0,
      ...fields,
    });
    return client;
  }

  /** Connects and takes the CONNACK. */
  connected(clientId: string, version: ProtocolVersion = 5, options: ConnectOptions = {}): TestClient {
    const client = this.connect(clientId, version, options);
    const connack = client.take()[0];
    if (connack?.type !== "connack" || connack.reasonCode !== 0) {
      throw new Error(`Connection refused: ${JSON.stringify(connack)}`);
    }
    return client;
  }

  /** Runs the driver until every session and the broker are quiet. */
  pump(): void {
    for (let round = 0; round < 1000; round++) {
      let busy = false;
      for (let s = this.broker.pollSession(); s !== undefined; s = this.broker.pollSession()) {
        busy = true;
      }
      for (const client of this.clients) {
        if (this.#flush(client)) busy = true;
      }
      if (!busy) return;
    }
    throw new Error("pump() did not settle");
  }

  /** Moves time to the earliest deadline (or to `to`) and fires the timers. */
  advance(to?: number): number {
    if (to === undefined) {
      const deadlines = [this.broker.pollTimeout(), ...this.clients.map((c) => c.session.pollTimeout())]
        .filter((d): d is number => d !== undefined);
      if (deadlines.length === 0) throw new Error("no deadline");
      to = Math.min(...deadlines);
    }
    this.now = Math.max(this.now, to);
    for (const client of this.clients) client.session.handleTimeout(this.now);
    this.broker.handleTimeout(this.now);
    this.pump();
    return this.now;
  }

  #flush(client: TestClient): boolean {
    let busy = false;
    const session = client.session;
    for (let bytes = session.pollTransmit(); bytes !== undefined; bytes = session.pollTransmit()) {
      busy = true;
      if (client.decodeError !== undefined) continue;
      try {
        client.decoder.push(bytes);
        for (let p = client.decoder.next(); p !== undefined; p = client.decoder.next()) client.inbox.push(p);
      } catch (error) {
        // The client could not read what the broker sent (a fuzzed CONNECT answered in another version's form).
        client.decodeError = error;
      }
    }
    for (let event = session.pollEvent(); event !== undefined; event = session.pollEvent()) {
      busy = true;
      this.#dispatch(client, event);
    }
    return busy;
  }

  #dispatch(client: TestClient, event: SessionEvent): void {
    const now = this.now;
    const session = client.session;
    switch (event.type) {
      case "connect":
        if (client.manual) client.events.push(event);
        else this.broker.attach(now, session);
        break;
      case "publish": {
        if (this.hooks.holdAcks && event.packet.qos > 0) {
          this.broker.route(now, session, event.packet);
          client.pendingPublishes.push(event.packet);
          break;
        }
        // Routed, and acknowledged once every session it went to holds it.
        this.broker.publish(now, session, event.packet, this.hooks.publish?.(client, event.packet));
        break;
      }
      case "subscribe":
        this.broker.subscribe(
          now,
          session,
          event.packet,
          this.hooks.subscribe?.(client, event.packet.subscriptions),
        );
        break;
      case "unsubscribe":
        this.broker.unsubscribe(now, session, event.packet);
        break;
      case "auth":
        client.events.push(event);
        break;
      case "closed":
        if (client.closed !== undefined) throw new Error("closed twice");
        client.closed = event;
        this.broker.detach(now, session);
        break;
      default: {
        const unreachable: never = event;
        throw new Error(`unknown event ${JSON.stringify(unreachable)}`);
      }
    }
  }
}

/** UTF-8 bytes of a string. */
export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** The text of a payload. */
export function text(payload: Uint8Array): string {
  return new TextDecoder().decode(payload);
}
