/**
 * The load generator's wire layer for `scripts/bench/broker.ts`: MQTT 3.1.1 clients over raw `node:net`
 * sockets that send packets pre-encoded with our codec (`encode`) and read the broker's stream with a minimal
 * frame scanner, so that a message costs the generator a few array writes and reads rather than a decode.
 *
 * Handshake packets (CONNACK, SUBACK) are decoded with our `PacketDecoder`; after the handshake, frames go to
 * a role's handler ({@linkcode BenchClient.onFrame}) as positions in the received chunk.
 *
 * @module
 */

import { Socket, type TcpSocketConnectOpts } from "node:net";
import { encode } from "../../src/codec/encode.ts";
import { PacketDecoder } from "../../src/codec/decoder.ts";
import type { Packet, QoS } from "../../src/codec/packet.ts";

/** Every benchmark connection speaks MQTT 3.1.1, which all four brokers support (aedes has no MQTT 5). */
const VERSION = 4;

/**
 * Called for each complete frame: its first byte, the buffer holding it, where its body (after the fixed
 * header) starts and where the frame ends.
 */
export type FrameHandler = (first: number, buffer: Uint8Array, body: number, end: number) => void;

/** Node's `onread` connect option: read into one buffer and hand each read to `callback`. */
interface OnRead {
  buffer: Uint8Array;
  callback: (length: number, buffer: Uint8Array) => boolean;
}

/** Payload layout of every benchmark PUBLISH: where the generator stamps what the receiver reads back. */
export const PAYLOAD = {
  /** u32, big-endian: the publisher's sequence number, from 1. */
  seq: 0,
  /** u16, big-endian: which publisher of the case sent it. */
  publisher: 4,
  /** float64, big-endian: `performance.now()` when it was written (latency case only). */
  sentAt: 8,
  /** The smallest payload that holds the fields above. */
  minimum: 16,
} as const;

/** A PUBLISH encoded once, to be copied and patched (packet id, sequence number) for each message. */
export interface PublishTemplate {
  bytes: Uint8Array;
  /** Where the packet id sits (QoS 1 and 2). */
  idOffset: number;
  /** Where the payload starts. */
  payloadOffset: number;
}

/**
 * Encodes the PUBLISH that {@linkcode fillPublishes} copies.
 *
 * @param topic The topic name.
 * @param payloadSize Payload bytes, at least `PAYLOAD.minimum`.
 * @param qos The QoS.
 * @param publisher The publisher's index, stamped in the payload.
 * @returns The template.
 */
export function publishTemplate(
  topic: string,
  payloadSize: number,
  qos: QoS,
  publisher: number,
): PublishTemplate {
  const payload = new Uint8Array(Math.max(payloadSize, PAYLOAD.minimum)).fill(0x61);
  new DataView(payload.buffer).setUint16(PAYLOAD.publisher, publisher);
  const bytes = encode({
    type: "publish",
    topic,
    payload,
    qos,
    retain: false,
    dup: false,
    ...(qos > 0 ? { packetId: 1 } : {}),
  }, VERSION);
  const payloadOffset = bytes.length - payload.length;
  const idOffset = payloadOffset - 2;
  if (qos > 0 && (bytes[idOffset] !== 0 || bytes[idOffset + 1] !== 1)) {
    throw new Error("Cannot make a PUBLISH template: the packet id is not where expected");
  }
  return { bytes, idOffset, payloadOffset };
}

/**
 * Copies a template `count` times into one new buffer and stamps each copy's sequence number (and packet id).
 *
 * @param block The template repeated at least `count` times (see {@linkcode repeatTemplate}).
 * @param template The template.
 * @param count How many packets.
 * @param firstSeq The first copy's sequence number; the others follow.
 * @param ids Packet ids to give the copies, popped from the end (QoS 1 and 2), or undefined.
 * @param sentAt A send time to stamp in every copy, or undefined.
 * @returns The packets, back to back.
 */
export function fillPublishes(
  block: Uint8Array,
  template: PublishTemplate,
  count: number,
  firstSeq: number,
  ids: number[] | undefined,
  sentAt?: number,
): Uint8Array {
  const size = template.bytes.length;
  const out = block.slice(0, count * size);
  const view = sentAt === undefined ? undefined : new DataView(out.buffer);
  for (let i = 0, at = 0; i < count; i++, at += size) {
    const seq = firstSeq + i;
    const p = at + template.payloadOffset + PAYLOAD.seq;
    out[p] = seq >>> 24;
    out[p + 1] = (seq >>> 16) & 0xff;
    out[p + 2] = (seq >>> 8) & 0xff;
    out[p + 3] = seq & 0xff;
    if (ids !== undefined) {
      const id = ids.pop() ?? 0;
      out[at + template.idOffset] = id >> 8;
      out[at + template.idOffset + 1] = id & 0xff;
    }
    view?.setFloat64(at + template.payloadOffset + PAYLOAD.sentAt, sentAt ?? 0);
  }
  return out;
}

/**
 * Repeats a template back to back.
 *
 * @param template The template.
 * @param count How many copies.
 * @returns The copies in one buffer.
 */
export function repeatTemplate(template: PublishTemplate, count: number): Uint8Array {
  const size = template.bytes.length;
  const block = new Uint8Array(size * count);
  for (let i = 0; i < count; i++) block.set(template.bytes, i * size);
  return block;
}

/** The four-byte acknowledgements of MQTT 3.1.1, by first byte; checked against our encoder at load time. */
export const ACK = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 } as const;
for (const [type, first] of Object.entries(ACK)) {
  const bytes = encode({ type: type as keyof typeof ACK, packetId: 0x1234, reasonCode: 0 }, VERSION);
  if (bytes.length !== 4 || bytes[0] !== first || bytes[2] !== 0x12 || bytes[3] !== 0x34) {
    throw new Error(`Cannot use the ${type} layout: our encoder disagrees`);
  }
}

/** DISCONNECT. */
const DISCONNECT = encode({ type: "disconnect", reasonCode: 0 }, VERSION);

/** Collects four-byte acknowledgements and writes them together. */
export class AckQueue {
  #buffer = new Uint8Array(4 * 1024);
  #length = 0;
  readonly #client: BenchClient;

  /**
   * Creates a queue that writes to `client`.
   *
   * @param client Where the acknowledgements go.
   */
  constructor(client: BenchClient) {
    this.#client = client;
  }

  /**
   * Queues one acknowledgement.
   *
   * @param first Its first byte (see {@linkcode ACK}).
   * @param buffer The buffer holding the packet id.
   * @param at Where the packet id starts in `buffer`.
   */
  push(first: number, buffer: Uint8Array, at: number): void {
    if (this.#length === this.#buffer.length) this.flush();
    const b = this.#buffer;
    const n = this.#length;
    b[n] = first;
    b[n + 1] = 2;
    b[n + 2] = buffer[at];
    b[n + 3] = buffer[at + 1];
    this.#length = n + 4;
  }

  /** Writes what is queued, in one write. */
  flush(): void {
    if (this.#length === 0) return;
    this.#client.write(this.#buffer.slice(0, this.#length));
    this.#length = 0;
  }
}

/** One MQTT 3.1.1 connection of the load generator. */
export class BenchClient {
  readonly socket: Socket;
  readonly clientId: string;
  /** Handles frames after the handshake. */
  onFrame: FrameHandler;
  /**
   * Runs once per turn of the event loop in which chunks arrived, after their frames were handled (flush
   * acknowledgements, send more).
   */
  afterChunk: () => void = () => {};
  /** Why the connection ended when the benchmark did not end it, or undefined. */
  lostReason: string | undefined;
  /** Frames the role's handler did not expect, counted by packet type number. */
  readonly unexpected: Map<number, number> = new Map();
  #closing = false;
  #answerScheduled = false;
  /** Whether chunks come through `onread` (a reused buffer) rather than "data" events. */
  #onread = false;
  #carry: Uint8Array | undefined;
  /** Where the frame being handled starts, for the handshake's decoder. */
  #frameStart = 0;
  #waiting:
    | { type: Packet["type"]; resolve: (packet: Packet) => void; reject: (error: Error) => void }
    | undefined;
  #closed: Promise<void>;

  /**
   * Wraps a socket that is not connected yet; use {@linkcode BenchClient.connect}.
   *
   * @param socket The socket.
   * @param clientId The client identifier it will send.
   */
  constructor(socket: Socket, clientId: string) {
    this.socket = socket;
    this.clientId = clientId;
    this.onFrame = (first, buffer, _body, end) => this.#handshake(first, buffer, end);
    socket.on("data", (chunk: Uint8Array) => {
      if (!this.#onread) this.#receive(chunk);
    });
    this.#closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("error", (error) => this.#lost(`socket error: ${error.message}`));
    socket.once("close", () => this.#lost("closed by the broker"));
  }

  /**
   * Opens a TCP connection to 127.0.0.1, sends CONNECT (clean session, keep-alive off) and waits for CONNACK.
   *
   * @param port The broker's port.
   * @param clientId The client identifier.
   * @param timeoutMs How long to wait for the connection and the CONNACK.
   * @returns The connected client.
   * @throws {Error} When the connection fails, is refused or times out.
   */
  static async connect(port: number, clientId: string, timeoutMs = 10_000): Promise<BenchClient> {
    const socket = new Socket();
    socket.setNoDelay(true);
    const client = new BenchClient(socket, clientId);
    const connected = new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("error", reject);
      socket.once("close", () => reject(new Error("closed before connecting")));
    });
    // Node reads into one reused buffer with `onread` (no Buffer and no stream event per chunk); runtimes
    // that ignore the option emit "data" instead.
    const options: TcpSocketConnectOpts & { onread: OnRead } = {
      port,
      host: "127.0.0.1",
      onread: {
        buffer: new Uint8Array(65_536),
        callback: (length, buffer) => {
          client.#onread = true;
          client.#receive(buffer.subarray(0, length));
          return true;
        },
      },
    };
    socket.connect(options);
    try {
      await withTimeout(connected, timeoutMs, `connecting ${clientId}`);
      const connack = client.#expect("connack", timeoutMs);
      client.write(
        encode(
          { type: "connect", protocolVersion: VERSION, clientId, cleanStart: true, keepAlive: 0 },
          VERSION,
        ),
      );
      const packet = await connack;
      if (packet.type === "connack" && packet.reasonCode !== 0) {
        throw new Error(`CONNACK refused ${clientId} with 0x${packet.reasonCode.toString(16)}`);
      }
    } catch (error) {
      client.destroy();
      throw error;
    }
    return client;
  }

  /**
   * Subscribes to one filter and waits for the SUBACK.
   *
   * @param topicFilter The filter.
   * @param qos The maximum QoS asked for.
   * @param timeoutMs How long to wait.
   * @throws {Error} When the subscription is refused, granted at another QoS, or times out.
   */
  async subscribe(topicFilter: string, qos: QoS, timeoutMs = 10_000): Promise<void> {
    const suback = this.#expect("suback", timeoutMs);
    this.write(encode({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    }, VERSION));
    const packet = await suback;
    if (packet.type === "suback" && packet.reasonCodes[0] !== qos) {
      throw new Error(`SUBACK granted 0x${packet.reasonCodes[0].toString(16)} instead of QoS ${qos}`);
    }
  }

  /**
   * Writes bytes.
   *
   * @param bytes What to write; not modified afterwards.
   * @returns false when the socket's buffer is full: wait for its "drain" event.
   */
  write(bytes: Uint8Array): boolean {
    if (this.#closing || this.socket.destroyed) return true;
    return this.socket.write(bytes);
  }

  /** Whether the connection is still open. */
  get open(): boolean {
    return !this.socket.destroyed && this.lostReason === undefined;
  }

  /**
   * Sends DISCONNECT and closes the connection.
   *
   * @param timeoutMs How long to wait for the socket to close before destroying it.
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closing) return await this.#closed;
    this.#closing = true;
    if (!this.socket.destroyed) this.socket.end(DISCONNECT);
    await Promise.race([this.#closed, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
    this.socket.destroy();
  }

  /** Closes the connection at once, without DISCONNECT. */
  destroy(): void {
    this.#closing = true;
    this.socket.destroy();
  }

  #lost(reason: string): void {
    if (!this.#closing && this.lostReason === undefined) this.lostReason = reason;
    this.#waiting?.reject(new Error(`${this.clientId}: ${reason}`));
    this.#waiting = undefined;
  }

  #expect(type: Packet["type"], timeoutMs: number): Promise<Packet> {
    return withTimeout(
      new Promise<Packet>((resolve, reject) => this.#waiting = { type, resolve, reject }),
      timeoutMs,
      `waiting for ${type.toUpperCase()} (${this.clientId})`,
    );
  }

  #handshake(first: number, buffer: Uint8Array, end: number): void {
    const decoder = new PacketDecoder({ version: VERSION });
    decoder.push(buffer.slice(this.#frameStart, end));
    const packet = decoder.next();
    const waiting = this.#waiting;
    if (packet !== undefined && waiting !== undefined && packet.type === waiting.type) {
      this.#waiting = undefined;
      waiting.resolve(packet);
    } else {
      this.unexpected.set(first >> 4, (this.unexpected.get(first >> 4) ?? 0) + 1);
    }
  }

  /**
   * Splits a chunk into frames, keeping an incomplete last frame for the next chunk. A frame begun in an
   * earlier chunk is completed with only the bytes it lacks, so large frames do not make whole chunks be
   * copied.
   */
  #receive(chunk: Uint8Array): void {
    try {
      this.#split(chunk);
    } catch (error) {
      this.#lost(`unreadable stream from the broker: ${(error as Error).message}`);
      this.socket.destroy();
    }
  }

  #split(chunk: Uint8Array): void {
    let buffer = chunk;
    let position = 0;
    const carry = this.#carry;
    if (carry !== undefined) {
      this.#carry = undefined;
      const size = frameSize(carry, 0, carry.length);
      const lacking = size - carry.length;
      if (size < 0 || lacking > chunk.length) {
        // The carried header is incomplete, or the chunk does not complete the frame: join them all.
        buffer = new Uint8Array(carry.length + chunk.length);
        buffer.set(carry);
        buffer.set(chunk, carry.length);
      } else {
        const frame = new Uint8Array(size);
        frame.set(carry);
        frame.set(chunk.subarray(0, lacking), carry.length);
        this.#scan(frame, 0);
        position = lacking;
      }
    }
    position = this.#scan(buffer, position);
    if (position < buffer.length) this.#carry = buffer.slice(position);
    // Answer once per turn of the event loop, after every chunk that arrived in it: fewer, larger writes.
    if (!this.#answerScheduled) {
      this.#answerScheduled = true;
      setImmediate(this.#answer);
    }
  }

  #answer = (): void => {
    this.#answerScheduled = false;
    this.afterChunk();
  };

  /** Passes each complete frame in `buffer` from `position` on to the handler; returns where the rest is. */
  #scan(buffer: Uint8Array, position: number): number {
    const length = buffer.length;
    const onFrame = this.onFrame;
    for (;;) {
      const size = frameSize(buffer, position, length);
      if (size < 0 || position + size > length) return position;
      let body = position + 2;
      while ((buffer[body - 1] & 0x80) !== 0) body++;
      this.#frameStart = position;
      onFrame(buffer[position], buffer, body, position + size);
      position += size;
    }
  }
}

/**
 * Reads a frame's fixed header.
 *
 * @returns The frame's whole size in bytes, or -1 when `buffer` ends inside the fixed header.
 */
function frameSize(buffer: Uint8Array, position: number, length: number): number {
  let p = position + 1;
  let remaining = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (p >= length) return -1;
    const byte = buffer[p++];
    remaining += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return p - position + remaining;
    multiplier *= 128;
  }
  throw new Error("Cannot read a frame: its remaining length has more than 4 bytes");
}

/**
 * Rejects when `promise` does not settle within `ms`.
 *
 * @param promise The promise.
 * @param ms The time limit.
 * @param what What is awaited, for the error message.
 * @returns What `promise` resolves to.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
