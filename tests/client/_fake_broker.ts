/**
 * A scripted broker for async client tests: it speaks the protocol through the codec over an in-memory pair
 * of web streams. It knows just enough (acknowledgements, echoing publishes to matching subscriptions) to
 * exercise the client; the real broker is tested on its own.
 */

import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type { Packet, ProtocolVersion, PublishPacket, QoS } from "../../src/codec/packet.ts";
import { topicMatches } from "../../src/codec/topic.ts";
import type { ReasonCode } from "../../src/errors.ts";
import type { Transport } from "../../src/transport/transport.ts";

/** One direction of an in-memory pipe; `end()` closes it even while a reader or writer holds it. */
function oneWay(): {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  end(): void;
} {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    controller.close();
  };
  const readable = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (ended) throw new Error("The pipe is closed");
      controller.enqueue(chunk);
    },
    close: end,
    abort: end,
  });
  return { readable, writable, end };
}

/** Two connected in-memory transports; closing either ends both directions. */
export function pipePair(): [Transport, Transport] {
  const ab = oneWay();
  const ba = oneWay();
  const close = () => {
    ab.end();
    ba.end();
  };
  return [
    { readable: ba.readable, writable: ab.writable, close },
    { readable: ab.readable, writable: ba.writable, close },
  ];
}

interface Connection {
  transport: Transport;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  version: ProtocolVersion;
  filters: Map<string, QoS>;
  nextId: number;
}

export class FakeBroker {
  /** Every packet received, in order, across connections. */
  readonly received: Packet[] = [];
  /** Refuse the next CONNECTs with this code. */
  refuse: ReasonCode | undefined;
  /** Do not acknowledge QoS 1/2 publishes from clients (to test pending promises). */
  silent = false;
  connections = 0;
  #current: Connection | undefined;
  #waiters: (() => void)[] = [];

  /** A transport factory for `new MqttClient({ transport })`. */
  transport = (): Promise<Transport> => {
    const [client, server] = pipePair();
    this.#serve(server);
    return Promise.resolve(client);
  };

  /** Drops the current connection, as a network failure would. */
  async drop(): Promise<void> {
    const connection = this.#current;
    this.#current = undefined;
    await connection?.transport.close();
  }

  /** Sends a packet to the current client. */
  async send(packet: Packet): Promise<void> {
    const connection = this.#current;
    if (connection === undefined) throw new Error("No client is connected");
    await connection.writer.write(encode(packet, connection.version));
  }

  /** Waits until a packet matching `predicate` has been received. */
  async until(predicate: (packet: Packet) => boolean): Promise<Packet> {
    for (;;) {
      const found = this.received.find(predicate);
      if (found) return found;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async #serve(transport: Transport): Promise<void> {
    const decoder = new PacketDecoder();
    const connection: Connection = {
      transport,
      writer: transport.writable.getWriter(),
      version: 5,
      filters: new Map(),
      nextId: 1,
    };
    const reader = transport.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        decoder.push(value);
        for (let packet = decoder.next(); packet; packet = decoder.next()) {
          this.received.push(packet);
          await this.#handle(connection, packet);
          for (const wake of this.#waiters.splice(0)) wake();
        }
      }
    } catch {
      // The client went away.
    }
    if (this.#current === connection) this.#current = undefined;
  }

  async #write(connection: Connection, packet: Packet): Promise<void> {
    await connection.writer.write(encode(packet, connection.version)).catch(() => {});
  }

  async #handle(connection: Connection, packet: Packet): Promise<void> {
    switch (packet.type) {
      case "connect":
        connection.version = packet.protocolVersion;
        this.connections++;
        if (this.refuse !== undefined) {
          await this.#write(connection, { type: "connack", sessionPresent: false, reasonCode: this.refuse });
          await connection.transport.close();
          return;
        }
        this.#current = connection;
        if (packet.properties?.authenticationMethod !== undefined) {
          // A toy challenge-response: the client must answer "challenge" with "response".
          await this.#write(connection, {
            type: "auth",
            reasonCode: 0x18,
            properties: {
              authenticationMethod: packet.properties.authenticationMethod,
              authenticationData: new TextEncoder().encode("challenge"),
            },
          });
          return;
        }
        await this.#write(connection, { type: "connack", sessionPresent: false, reasonCode: 0 });
        return;
      case "auth": {
        const answer = new TextDecoder().decode(packet.properties?.authenticationData ?? new Uint8Array());
        await this.#write(
          connection,
          answer === "response"
            ? { type: "connack", sessionPresent: false, reasonCode: 0 }
            : { type: "connack", sessionPresent: false, reasonCode: 0x87 },
        );
        return;
      }
      case "subscribe":
        for (const s of packet.subscriptions) connection.filters.set(s.topicFilter, s.qos);
        await this.#write(connection, {
          type: "suback",
          packetId: packet.packetId,
          reasonCodes: packet.subscriptions.map((s) => s.topicFilter.startsWith("forbidden") ? 0x87 : s.qos),
        });
        return;
      case "unsubscribe":
        for (const f of packet.topicFilters) connection.filters.delete(f);
        await this.#write(connection, {
          type: "unsuback",
          packetId: packet.packetId,
          reasonCodes: connection.version === 5 ? packet.topicFilters.map(() => 0) : [],
        });
        return;
      case "publish":
        if (packet.qos === 1 && !this.silent) {
          await this.#write(connection, {
            type: "puback",
            packetId: packet.packetId as number,
            reasonCode: 0,
          });
        }
        if (packet.qos === 2 && !this.silent) {
          await this.#write(connection, {
            type: "pubrec",
            packetId: packet.packetId as number,
            reasonCode: 0,
          });
        }
        await this.#echo(connection, packet);
        return;
      case "pubrel":
        await this.#write(connection, { type: "pubcomp", packetId: packet.packetId, reasonCode: 0 });
        return;
      case "pingreq":
        await this.#write(connection, { type: "pingresp" });
        return;
      case "disconnect":
        await connection.transport.close();
        return;
      default:
        return;
    }
  }

  async #echo(connection: Connection, packet: PublishPacket): Promise<void> {
    let qos: QoS | undefined;
    for (const [filter, granted] of connection.filters) {
      if (topicMatches(filter, packet.topic)) qos = Math.max(qos ?? 0, Math.min(granted, packet.qos)) as QoS;
    }
    if (qos === undefined) return;
    const out: PublishPacket = {
      type: "publish",
      topic: packet.topic,
      payload: packet.payload.slice(),
      qos,
      retain: false,
      dup: false,
    };
    if (packet.properties !== undefined && connection.version === 5) {
      out.properties = { ...packet.properties };
    }
    if (qos > 0) out.packetId = connection.nextId++;
    await this.#write(connection, out);
  }
}
