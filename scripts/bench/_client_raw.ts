/**
 * The raw-socket peers of `scripts/bench/client.ts`, built on the broker benchmark's wire layer
 * (`_broker_wire.ts`): a subscriber that counts what the broker delivered of a client's publishes, and a
 * publisher that floods a client's subscription while staying a bounded number of messages ahead of it.
 *
 * @module
 */

import process from "node:process";
import type { QoS } from "../../src/codec/packet.ts";
import {
  ACK,
  AckQueue,
  BenchClient,
  fillPublishes,
  type PublishTemplate,
  publishTemplate,
  repeatTemplate,
} from "./_broker_wire.ts";
import { readSeq, SeqTracker } from "./_client_seq.ts";

/** Receives and acknowledges PUBLISH packets and records each one's sequence number. */
export class RawSubscriber {
  readonly client: BenchClient;
  readonly tracker: SeqTracker = new SeqTracker();

  /**
   * Subscribes a new connection.
   *
   * @param port The broker's port.
   * @param topic The topic filter.
   * @param qos The QoS to subscribe with (the client's publishes arrive at this QoS).
   * @returns The subscriber, once the SUBACK arrived.
   */
  static async open(port: number, topic: string, qos: QoS): Promise<RawSubscriber> {
    const client = await BenchClient.connect(port, `bench-sub-${process.pid}-${Date.now().toString(36)}`);
    try {
      await client.subscribe(topic, qos);
    } catch (error) {
      client.destroy();
      throw error;
    }
    return new RawSubscriber(client);
  }

  /**
   * Takes the subscriber's role on a connection that is already set up (the stand-in broker's side of a
   * client's connection, whose PUBLISH packets it then receives).
   *
   * @param client The connection.
   * @returns The subscriber.
   */
  static over(client: BenchClient): RawSubscriber {
    return new RawSubscriber(client);
  }

  private constructor(client: BenchClient) {
    this.client = client;
    const acks = new AckQueue(client);
    const tracker = this.tracker;
    client.onFrame = (first, b, body) => {
      const type = first >> 4;
      if (type === 3) {
        const qos = (first >> 1) & 3;
        let p = body + 2 + ((b[body] << 8) | b[body + 1]);
        if (qos !== 0) {
          acks.push(qos === 1 ? ACK.puback : ACK.pubrec, b, p);
          p += 2;
        }
        tracker.add(readSeq(b, p));
      } else if (type === 6) {
        acks.push(ACK.pubcomp, b, body);
      } else {
        client.unexpected.set(type, (client.unexpected.get(type) ?? 0) + 1);
      }
    };
    client.afterChunk = () => acks.flush();
  }
}

/**
 * Publishes 64-byte messages with sequence numbers 1, 2, … as fast as flow control allows: at most `ahead`
 * messages beyond what the client under test reported taking, at most `inflight` unacknowledged at QoS 1 and
 * 2, and nothing while the socket reports back-pressure.
 */
export class RawPublisher {
  readonly client: BenchClient;
  /** Messages written. */
  sent = 0;
  /** What the client under test reported taking; set by the caller, then call {@linkcode pump}. */
  taken = 0;
  running = false;
  readonly #template: PublishTemplate;
  readonly #block: Uint8Array;
  readonly #qos: QoS;
  readonly #ids: number[] = [];
  readonly #ahead: number;
  readonly #inflight: number;
  #blocked = false;

  /**
   * Connects a new publisher.
   *
   * @param port The broker's port.
   * @param topic The topic name.
   * @param qos The QoS of every message.
   * @param options How far ahead of the client and how many unacknowledged messages it may be.
   * @returns The publisher, connected and idle.
   */
  static async open(
    port: number,
    topic: string,
    qos: QoS,
    options: { ahead: number; inflight: number },
  ): Promise<RawPublisher> {
    const client = await BenchClient.connect(port, `bench-pub-${process.pid}-${Date.now().toString(36)}`);
    return new RawPublisher(client, publishTemplate(topic, 64, qos, 0), qos, options);
  }

  /**
   * Takes the publisher's role on a connection that is already set up (the stand-in broker's side of a
   * client's connection, which it then floods).
   *
   * @param client The connection.
   * @param topic The topic name.
   * @param qos The QoS of every message.
   * @param options How far ahead of the client and how many unacknowledged messages it may be.
   * @returns The publisher, idle.
   */
  static over(
    client: BenchClient,
    topic: string,
    qos: QoS,
    options: { ahead: number; inflight: number },
  ): RawPublisher {
    return new RawPublisher(client, publishTemplate(topic, 64, qos, 0), qos, options);
  }

  private constructor(
    client: BenchClient,
    template: PublishTemplate,
    qos: QoS,
    options: { ahead: number; inflight: number },
  ) {
    this.client = client;
    this.#template = template;
    this.#qos = qos;
    this.#ahead = options.ahead;
    this.#inflight = options.inflight;
    this.#block = repeatTemplate(template, 512);
    if (qos > 0) { for (let id = options.inflight; id >= 1; id--) this.#ids.push(id); }
    const acks = new AckQueue(client);
    client.onFrame = (first, b, body) => {
      const type = first >> 4;
      if (type === 4 || type === 7) this.#ids.push((b[body] << 8) | b[body + 1]);
      else if (type === 5) acks.push(ACK.pubrel, b, body);
      else client.unexpected.set(type, (client.unexpected.get(type) ?? 0) + 1);
    };
    client.afterChunk = () => {
      acks.flush();
      this.pump();
    };
  }

  /** QoS 1 and 2 messages written and not yet acknowledged by the broker. */
  get unacknowledged(): number {
    return this.#qos === 0 ? 0 : this.#inflight - this.#ids.length;
  }

  /** Writes as much as flow control allows now. */
  pump(): void {
    while (this.running && !this.#blocked) {
      let count = Math.min(512, this.taken + this.#ahead - this.sent);
      if (this.#qos > 0) count = Math.min(count, this.#ids.length);
      if (count <= 0) return;
      const bytes = fillPublishes(
        this.#block,
        this.#template,
        count,
        this.sent + 1,
        this.#qos === 0 ? undefined : this.#ids,
      );
      this.sent += count;
      if (!this.client.write(bytes)) {
        this.#blocked = true;
        this.client.socket.once("drain", () => {
          this.#blocked = false;
          this.pump();
        });
        return;
      }
    }
  }
}
