/**
 * One network connection of the broker: its session, its transport (callbacks or streams), its write backlog
 * and the rarely used state kept aside; it must not decide anything about MQTT or touch other connections.
 *
 * @module
 */

import type { PacketDecoder } from "../codec/decoder.ts";
import type { SessionMachine } from "../machine/session_machine.ts";
import type { DirectTransport, Transport, TransportSink } from "../transport/transport.ts";
import type { ClientInfo } from "./broker_options.ts";

/** What a connection's transport reads goes to, shared by all connections of a broker. */
export interface ConnectionHost {
  received(connection: Connection, bytes: Uint8Array): void;
  ended(connection: Connection, cause: unknown): void;
}

/** Open connections of one listener, for its `maxConnections`. */
export interface ListenerCount {
  /** The listener's URL, such as `mqtt://127.0.0.1:1883`. */
  readonly url: string;
  /** Its connections open now. */
  open: number;
  /** Its connections accepted. */
  accepted: number;
}

/** The state of a connection that an idle one does not use, made when first set (see `Connection`). */
class ConnectionExtras {
  writer: WritableStreamDefaultWriter<Uint8Array> | undefined = undefined;
  done: { promise: Promise<void>; resolve(): void } | undefined = undefined;
  traceIn: PacketDecoder | undefined = undefined;
  traceOut: PacketDecoder | undefined = undefined;
  tokens = 0;
  rateAt = 0;
  lingered = 0;
  slowTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  heldBy = 0;
  holding: Set<Connection> | undefined = undefined;
  holdTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  noHoldUntil = 0;
  holdSince = 0;
  progressAt = 0;
  resumedAt = 0;
  resumed: { promise: Promise<void>; resolve(): void } | undefined = undefined;
  authenticating: ClientInfo | undefined = undefined;
}

/**
 * One connection of the broker. What most connections never use (the stream writer, the packet trace, the
 * rate limit, flow control, enhanced authentication) lives in a {@linkcode ConnectionExtras} made when first
 * set, behind accessors of the same names: an idle connection is this object alone, which counts with 10,000.
 * It is its transport's sink on the callback path, with methods rather than closures, so that an idle
 * connection holds little more than its fields.
 */
export class Connection implements TransportSink {
  readonly session: SessionMachine;
  readonly transport: Transport;
  readonly remote: string | undefined;
  /** The transport's callbacks, when it has them; else its streams are used (`writer`, and `handle`'s reader). */
  readonly direct: DirectTransport | undefined;
  /** Settles once the last write that did not go out at once did; undefined while none did. */
  writing: Promise<void> | undefined;
  /** The listener whose count of open connections this one is in. */
  listener: ListenerCount | undefined;
  readonly #host: ConnectionHost;
  #readsEnded = false;
  /** Bytes handed to the transport and not yet written: a slow consumer's backlog. */
  pendingBytes = 0;
  /** The session's next deadline, and when it is set for (at or before the deadline). */
  timer: ReturnType<typeof setTimeout> | undefined;
  timerAt = 0;
  info: ClientInfo | undefined;
  /**
   * The broker's own client (a bridge's side on this broker): connected without credentials, and past the ACL
   * and the authorization hooks unless it gave a user name (see {@linkcode Connection.unchecked}).
   */
  trusted = false;
  closed = false;
  #extras: ConnectionExtras | undefined;

  /**
   * Whether the ACL and the authorization hooks pass over this connection: the broker's own client that gave
   * no user name. One that gave one (a bridge's `localUsername`, mosquitto's `local_username`) is held to the
   * rules of that user.
   */
  get unchecked(): boolean {
    return this.trusted && this.info?.username === undefined;
  }

  constructor(
    host: ConnectionHost,
    session: SessionMachine,
    transport: Transport,
    remote: string | undefined,
  ) {
    this.#host = host;
    this.session = session;
    this.transport = transport;
    this.remote = remote;
    this.direct = transport.direct;
    if (this.direct === undefined) this.#more().writer = transport.writable.getWriter();
  }

  /** The rarely used state, made now if it was not. */
  #more(): ConnectionExtras {
    return this.#extras ??= new ConnectionExtras();
  }

  /** The writer of the transport's stream, when it has no callbacks. */
  get writer(): WritableStreamDefaultWriter<Uint8Array> | undefined {
    return this.#extras?.writer;
  }

  /** Decoders of what goes in and out, for the packet trace of `logPackets`. */
  get traceIn(): PacketDecoder | undefined {
    return this.#extras?.traceIn;
  }
  set traceIn(value: PacketDecoder | undefined) {
    if (value !== undefined || this.#extras !== undefined) this.#more().traceIn = value;
  }
  get traceOut(): PacketDecoder | undefined {
    return this.#extras?.traceOut;
  }
  set traceOut(value: PacketDecoder | undefined) {
    if (value !== undefined || this.#extras !== undefined) this.#more().traceOut = value;
  }

  /** The rate limit's token bucket, and when it was last filled (0: never, the bucket counts as full). */
  get tokens(): number {
    return this.#extras?.tokens ?? 0;
  }
  set tokens(value: number) {
    if (value !== 0 || this.#extras !== undefined) this.#more().tokens = value;
  }
  get rateAt(): number {
    return this.#extras?.rateAt ?? 0;
  }
  set rateAt(value: number) {
    if (value !== 0 || this.#extras !== undefined) this.#more().rateAt = value;
  }

  /** Bytes read after the broker ended the connection. */
  get lingered(): number {
    return this.#extras?.lingered ?? 0;
  }
  set lingered(value: number) {
    if (value !== 0 || this.#extras !== undefined) this.#more().lingered = value;
  }

  /** Fires when the client stayed congested for `slowConsumerTimeout`. */
  get slowTimer(): ReturnType<typeof setTimeout> | undefined {
    return this.#extras?.slowTimer;
  }
  set slowTimer(value: ReturnType<typeof setTimeout> | undefined) {
    if (value !== undefined || this.#extras !== undefined) this.#more().slowTimer = value;
  }

  /** How many clients that are behind hold this connection's reads paused (see `Broker.#hold`). */
  get heldBy(): number {
    return this.#extras?.heldBy ?? 0;
  }
  set heldBy(value: number) {
    if (value !== 0 || this.#extras !== undefined) this.#more().heldBy = value;
  }

  /** The connections whose reads this client holds paused while it is behind. */
  get holding(): Set<Connection> | undefined {
    return this.#extras?.holding;
  }
  set holding(value: Set<Connection> | undefined) {
    if (value !== undefined || this.#extras !== undefined) this.#more().holding = value;
  }

  /** Ends the time this client may hold them paused (`maxPublisherPause`). */
  get holdTimer(): ReturnType<typeof setTimeout> | undefined {
    return this.#extras?.holdTimer;
  }
  set holdTimer(value: ReturnType<typeof setTimeout> | undefined) {
    if (value !== undefined || this.#extras !== undefined) this.#more().holdTimer = value;
  }

  /** Until when (`performance.now()`) this client may not hold connections paused again. */
  get noHoldUntil(): number {
    return this.#extras?.noHoldUntil ?? 0;
  }
  set noHoldUntil(value: number) {
    if (value !== 0 || this.#extras !== undefined) this.#more().noHoldUntil = value;
  }

  /** Since when it holds connections paused. */
  get holdSince(): number {
    return this.#extras?.holdSince ?? 0;
  }
  set holdSince(value: number) {
    if (value !== 0 || this.#extras !== undefined) this.#more().holdSince = value;
  }

  /**
   * While more than the low watermark waits to be written to it: when its transport last took a write, or
   * when the backlog passed the low watermark (whichever came later); 0 below it.
   */
  get progressAt(): number {
    return this.#extras?.progressAt ?? 0;
  }
  set progressAt(value: number) {
    if (value !== 0 || this.#extras !== undefined) this.#more().progressAt = value;
  }

  /** A CONNECT whose enhanced authentication is still exchanging AUTH packets. */
  get authenticating(): ClientInfo | undefined {
    return this.#extras?.authenticating;
  }
  set authenticating(value: ClientInfo | undefined) {
    if (value !== undefined || this.#extras !== undefined) this.#more().authenticating = value;
  }

  /**
   * Writes in order.
   *
   * @returns `undefined` when the transport took the bytes at once, else when it did.
   */
  write(bytes: Uint8Array): Promise<void> | undefined {
    if (this.writer !== undefined) return this.writer.write(bytes);
    try {
      return this.direct?.write(bytes);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Stops reading (backpressure on the client), until `resumeReads()`. */
  pauseReads(): void {
    if (this.direct !== undefined) {
      this.direct.pause();
    } else if (this.#extras?.resumed === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => resolve = r);
      this.#more().resumed = { promise, resolve };
    }
  }

  /** When its reads last went on after a pause (`performance.now()`), 0 when never: see `Broker.#timeout`. */
  get resumedAt(): number {
    return this.#extras?.resumedAt ?? 0;
  }

  /** Reads again. */
  resumeReads(): void {
    this.#more().resumedAt = performance.now();
    if (this.direct !== undefined) {
      this.direct.resume();
      return;
    }
    const extras = this.#extras;
    const resumed = extras?.resumed;
    if (extras !== undefined) extras.resumed = undefined;
    resumed?.resolve();
  }

  /** While the stream reads are paused, when they may go on. */
  get readsResumed(): Promise<void> | undefined {
    return this.#extras?.resumed?.promise;
  }

  /** Half-closes once everything written went out. */
  async finish(): Promise<void> {
    await this.writing?.catch(() => {});
    if (this.writer !== undefined) await this.writer.close().catch(() => {});
    else this.direct?.end();
  }

  /**
   * Bytes from the transport's callbacks.
   *
   * @param chunk What was read.
   */
  data(chunk: Uint8Array): void {
    if (this.#readsEnded) return;
    try {
      this.#host.received(this, chunk);
    } catch (error) {
      this.end(error);
    }
  }

  /**
   * The end of the reads, from the callbacks or the stream loop; once.
   *
   * @param error Why, when it failed.
   */
  end(error?: unknown): void {
    if (this.#readsEnded) return;
    this.#readsEnded = true;
    this.#host.ended(this, error);
    this.#extras?.done?.resolve();
  }

  /** Reads the transport's stream until it ends (when it has no callbacks), waiting while reads are paused. */
  async readStream(): Promise<void> {
    const reader = this.transport.readable.getReader();
    let cause: unknown;
    try {
      for (;;) {
        const paused = this.readsResumed;
        if (paused !== undefined) await paused;
        const { value, done } = await reader.read();
        if (done) break;
        this.#host.received(this, value);
      }
    } catch (error) {
      cause = error;
    } finally {
      reader.releaseLock();
    }
    this.end(cause);
  }

  /** Resolves once the reads ended. */
  done(): Promise<void> {
    if (this.#readsEnded) return Promise.resolve();
    const extras = this.#more();
    if (extras.done === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => resolve = r);
      extras.done = { promise, resolve };
    }
    return extras.done.promise;
  }
}

/** The client identifier of a connection, for logs. */
export function who(connection: Connection): string {
  return connection.info?.clientId ?? connection.session.clientId ?? "?";
}
