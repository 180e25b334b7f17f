/**
 * The async broker: SessionMachines and one BrokerMachine driven over transports, with timers, listeners and
 * typed async hooks for authentication and authorization.
 *
 * @module
 */

import type { ConnAckProperties, ConnectPacket, PublishPacket, QoS, Subscription } from "../codec/packet.ts";
import { PacketDecoder } from "../codec/decoder.ts";
import { describePacket } from "../codec/describe.ts";
import { reasonCodeAllowed } from "../codec/reason_codes.ts";
import { validateTopicName } from "../codec/topic.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import { BrokerMachine, type BrokerMachineOptions } from "../machine/broker_machine.ts";
import { type SessionEvent, SessionMachine } from "../machine/session_machine.ts";
import { runtimeHeapUsed } from "../runtime/memory.ts";
import { runtimeNet } from "../runtime/mod.ts";
import { listenWebSocket } from "../runtime/ws_server.ts";
import { aclReadCheck, canPublish, canSubscribe } from "./acl_file.ts";
import { verifyPassword } from "./password_file.ts";
import type { Listener, Transport } from "../transport/transport.ts";
import type { BrokerStore } from "./store.ts";
import {
  type BrokerOptions,
  type ClientInfo,
  type Decision,
  decisionCode,
  type EnhancedAuthResult,
  type ListenOptions,
  type LogLevel,
} from "./broker_options.ts";
import { Connection, type ConnectionHost, type ListenerCount } from "./connection.ts";

export type {
  BrokerOptions,
  ClientInfo,
  Decision,
  EnhancedAuthResult,
  EnhancedAuthStep,
  ListenOptions,
  LogLevel,
} from "./broker_options.ts";

/** How long a connection the broker ended waits for the client to close it (see `#shut`). */
const LINGER_MS = 1000;
/** How much a client may still send meanwhile before its connection is closed at once (read, then dropped). */
const LINGER_BYTES = 65_536;

/** The version in `$SYS/broker/version`. */
const VERSION = "0.1.0";

/** The number of levels of a topic, counting no further than one past `limit` (no array per publish). */
function levelCount(topic: string, limit: number): number {
  let levels = 1;
  for (let i = topic.indexOf("/"); i !== -1 && levels <= limit; i = topic.indexOf("/", i + 1)) levels++;
  return levels;
}

/**
 * An MQTT broker. Embed it in a program, or run `broker.ts`.
 *
 * @example A broker on a free port that refuses publishes to `admin/#`
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect, MqttError, ReasonCode } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker({
 *   authorizePublish: (_client, packet) => !packet.topic.startsWith("admin/"),
 * });
 * const { port } = await broker.listen({ port: 0 });
 * const client = await connect(`mqtt://127.0.0.1:${port}`);
 * await client.publish("sensors/1", "21.5", { qos: 1 });
 * await assert.rejects(
 *   client.publish("admin/reboot", "now", { qos: 1 }),
 *   (error) => error instanceof MqttError && error.reasonCode === ReasonCode.NotAuthorized,
 * );
 * await client.close();
 * await broker.close();
 * ```
 */
export class Broker {
  readonly #options: BrokerOptions;
  readonly #machine: BrokerMachine;
  readonly #connections = new Map<SessionMachine, Connection>();
  /** Connections waiting to be flushed by the drain that `#flushAll` is running. */
  readonly #dirty = new Set<Connection>();
  /** Connections that have not sent their CONNECT yet, oldest first, with when they were accepted. */
  readonly #connecting = new Map<Connection, number>();
  /** Reads the JavaScript heap in use, once this runtime's reading is loaded. */
  #heapUsed: (() => number) | undefined;
  #draining = false;
  /** The connection whose bytes, or whose PUBLISH, are being handled: what a client that is behind holds. */
  #source: Connection | undefined;
  readonly #maxOutgoingBytes: number;
  readonly #backpressureBytes: number;
  /** Where a client that is behind counts as caught up. */
  readonly #lowWater: number;
  readonly #listeners = new Set<Listener>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closing = false;
  #store: BrokerStore | undefined;
  readonly #startedAt = performance.now();
  #sysTimer: ReturnType<typeof setInterval> | undefined;
  readonly #sysLast = new Map<string, string>();
  readonly #counters = {
    messagesReceived: 0,
    bytesReceived: 0,
    bytesSent: 0,
    connected: 0,
    maximum: 0,
    dropped: 0,
  };

  /**
   * Creates a broker; nothing listens until {@linkcode Broker.listen}.
   *
   * @param options Hooks, limits and logging.
   * @throws {RangeError} When `maxKeepAlive` is not a whole number from 0 to 65535.
   */
  constructor(options: BrokerOptions = {}) {
    const maxKeepAlive = options.maxKeepAlive;
    if (
      maxKeepAlive !== undefined &&
      (!Number.isInteger(maxKeepAlive) || maxKeepAlive < 0 || maxKeepAlive > 65_535)
    ) {
      throw new RangeError(
        `Cannot use maxKeepAlive ${maxKeepAlive}: expected a whole number from 0 to 65535`,
      );
    }
    this.#options = options;
    void runtimeHeapUsed().then((read) => this.#heapUsed = read, () => {});
    this.#maxOutgoingBytes = options.maxOutgoingBytes ?? 16 * 1024 * 1024;
    this.#backpressureBytes = Math.min(options.backpressureBytes ?? 1024 * 1024, this.#maxOutgoingBytes);
    this.#lowWater = this.#backpressureBytes / 2;
    for (
      const key of ["maxOutgoingBytes", "backpressureBytes", "maxPublisherPause", "maxWriteStall"] as const
    ) {
      const value = options[key];
      if (value !== undefined && !(value > 0)) {
        throw new RangeError(`Cannot use ${key} ${value}: expected more than 0`);
      }
    }
    const store = options.store;
    this.#machine = new BrokerMachine({
      ...options,
      authorizeDelivery: this.#deliveryCheck(options),
      journal: store !== undefined,
    });
    if (store !== undefined) {
      this.#store = store;
      const now = performance.now();
      const saved = store.load();
      this.#machine.restoreState(now, saved);
      // Written back whole under the new machine's keys, then what came due while the broker was down.
      store.write(this.#machine.pollChanges(now), true);
      this.#machine.handleTimeout(now);
      this.#persist();
      this.#scheduleBroker();
      this.#log(
        "info",
        `Restored ${this.#machine.sessionCount} sessions and ${this.#machine.retainedCount} retained messages`,
      );
    }
  }

  /**
   * The machine's check of each delivery: the ACL's read rules, `authorizeRead` and `authorizeDelivery`, all
   * of which must allow; none at all when none is set, so that deliveries then cost nothing more.
   */
  #deliveryCheck(options: BrokerOptions): BrokerMachineOptions["authorizeDelivery"] {
    const checks: NonNullable<BrokerMachineOptions["authorizeDelivery"]>[] = [];
    if (options.acl !== undefined) {
      const canRead = aclReadCheck(options.acl);
      checks.push((session, message) => canRead(session, message.topic));
    }
    const hook = options.authorizeRead;
    if (hook !== undefined) {
      checks.push((session, message) => {
        try {
          return hook(session, message) === true;
        } catch (error) {
          this.#log("warn", `authorizeRead threw for "${session.clientId}" on "${message.topic}": ${error}`);
          return false;
        }
      });
    }
    if (options.authorizeDelivery !== undefined) checks.push(options.authorizeDelivery);
    if (checks.length <= 1) return checks[0];
    return (session, message) => checks.every((check) => check(session, message));
  }

  /** The routing machine, for statistics. */
  get machine(): BrokerMachine {
    return this.#machine;
  }

  /** How many network connections are open. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Accepts TCP (or, with `cert` and `key`, TLS) connections until {@linkcode Broker.close}.
   *
   * @param options Address, port and TLS files.
   * @returns The listener's address.
   */
  async listen(options: ListenOptions = {}): Promise<{ hostname: string; port: number }> {
    const hostname = options.hostname ?? "127.0.0.1";
    const port = options.port ?? 1883;
    let listener: Listener;
    if (options.websocket) {
      listener = await listenWebSocket({
        hostname,
        port,
        path: options.path,
        cert: options.cert,
        key: options.key,
      });
    } else {
      const net = await runtimeNet();
      listener = options.cert !== undefined && options.key !== undefined
        ? await net.listenTls({ hostname, port, cert: options.cert, key: options.key })
        : await net.listenTcp({ hostname, port });
    }
    this.#listeners.add(listener);
    const limit = options.maxConnections ?? Infinity;
    const count: ListenerCount = { open: 0 };
    (async () => {
      for await (const transport of listener) {
        if (count.open >= limit) {
          this.#log(
            "warn",
            `Refused a connection on port ${listener.port}: its ${limit} connections are open`,
          );
          void Promise.resolve(transport.close()).catch(() => {});
          continue;
        }
        if (this.#accept(transport, transport.remoteAddress, count) === undefined) {
          void Promise.resolve(transport.close()).catch(() => {});
        }
      }
    })().catch((error) =>
      this.#log("error", `Listener on ${hostname}:${port} failed: ${(error as Error).message}`)
    );
    const scheme = (options.websocket ? "ws" : "mqtt") + (options.cert !== undefined ? "s" : "");
    this.#startSys();
    this.#log(
      "info",
      `Listening on ${scheme}://${listener.hostname}:${listener.port}${
        options.websocket ? options.path ?? "/mqtt" : ""
      }`,
    );
    return { hostname: listener.hostname, port: listener.port };
  }

  /**
   * Serves one connection from any transport until it ends.
   *
   * @param transport The connection.
   * @param remote A description of the peer, for logs and hooks.
   * @returns Resolves when the connection is over.
   */
  async handle(transport: Transport, remote?: string): Promise<void> {
    const connection = this.#accept(transport, remote, undefined);
    if (connection === undefined) await transport.close();
    else await connection.done();
  }

  /** Starts serving a connection; undefined when it is refused (closing, or too many open). */
  #accept(transport: Transport, remote: string | undefined, listener: ListenerCount | undefined) {
    if (this.#closing) return undefined;
    if (this.#connections.size >= (this.#options.maxConnections ?? 10_000)) {
      this.#log(
        "warn",
        `Refused a connection${remote ? ` from ${remote}` : ""}: ${this.#connections.size} are open`,
      );
      return undefined;
    }
    const session = new SessionMachine(performance.now(), this.#options);
    const connection = new Connection(this.#host, session, transport, remote);
    if (listener !== undefined) {
      connection.listener = listener;
      listener.open++;
    }
    this.#connections.set(session, connection);
    this.#admit(connection);
    this.#flushAll(connection);
    // The callbacks when the transport has them (no stream, no promise per idle connection), else the stream.
    if (connection.direct !== undefined) connection.direct.start(connection);
    else void this.#readStream(connection);
    return connection;
  }

  /** Counts a new connection as connecting, closing the longest-waiting ones past `maxConnecting`. */
  #admit(connection: Connection): void {
    const now = performance.now();
    const connecting = this.#connecting;
    const limit = this.#options.maxConnecting ?? 1000;
    for (const [oldest, since] of connecting) {
      if (connecting.size < limit || now - since < 1000) break;
      connecting.delete(oldest);
      this.#log(
        "warn",
        `Closed a connection${oldest.remote ? ` from ${oldest.remote}` : ""} that sent no CONNECT in ${
          Math.round(now - since)
        } ms: ${limit} are connecting`,
      );
      oldest.session.handleClose(now, new Error("no CONNECT while too many were connecting"));
      void oldest.transport.close();
      this.#flushAll(oldest);
    }
    connecting.set(connection, now);
  }

  async #readStream(connection: Connection): Promise<void> {
    const reader = connection.transport.readable.getReader();
    let cause: unknown;
    try {
      for (;;) {
        const paused = connection.readsResumed;
        if (paused !== undefined) await paused;
        const { value, done } = await reader.read();
        if (done) break;
        this.#received(connection, value);
      }
    } catch (error) {
      cause = error;
    } finally {
      reader.releaseLock();
    }
    connection.end(cause);
  }

  /** Shared by every connection (see {@linkcode Connection}). */
  readonly #host: ConnectionHost = {
    received: (connection, bytes) => this.#received(connection, bytes),
    ended: (connection, cause) => {
      if (connection.listener !== undefined) {
        connection.listener.open--;
        connection.listener = undefined;
      }
      if (!connection.closed) {
        connection.session.handleClose(performance.now(), cause);
        this.#flushAll(connection);
      }
    },
  };

  #received(connection: Connection, bytes: Uint8Array): void {
    this.#counters.bytesReceived += bytes.length;
    if (connection.closed) {
      // Lingering (see `#shut`): what comes is dropped, and a client that goes on sending is cut off.
      connection.lingered += bytes.length;
      if (connection.lingered > LINGER_BYTES) void connection.transport.close();
      return;
    }
    if (this.#options.logPackets) this.#trace(connection, "in", bytes);
    const source = this.#source;
    this.#source = connection;
    try {
      connection.session.handleBytes(performance.now(), bytes);
      this.#flushAll(connection);
    } finally {
      this.#source = source;
    }
  }

  /**
   * Publishes a message from the host program to the matching subscribers.
   *
   * @param topic The topic name.
   * @param payload Bytes or text.
   * @param options QoS and retain.
   * @returns How many sessions the message was delivered or queued to.
   */
  publish(
    topic: string,
    payload: string | Uint8Array,
    options: { qos?: QoS; retain?: boolean } = {},
  ): number {
    validateTopicName(topic);
    const packet: PublishPacket = {
      type: "publish",
      topic,
      // Our own copy: large payloads leave uncopied, so the caller's buffer must not change meanwhile.
      payload: typeof payload === "string" ? new TextEncoder().encode(payload) : payload.slice(),
      qos: options.qos ?? 0,
      retain: options.retain ?? false,
      dup: false,
    };
    const count = this.#machine.route(performance.now(), undefined, packet);
    this.#flushAll(undefined);
    return count;
  }

  /**
   * Stops listening and closes every connection (MQTT 5 clients get DISCONNECT 0x8B, server shutting down).
   *
   * @returns Resolves once everything is closed.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#sysTimer);
    await Promise.all([...this.#listeners].map((listener) => listener.close().catch(() => {})));
    this.#listeners.clear();
    for (const connection of [...this.#connections.values()]) {
      if (connection.session.state === "connected") {
        connection.session.disconnect(performance.now(), ReasonCode.ServerShuttingDown);
      } else {
        connection.session.handleClose(performance.now());
      }
      this.#flush(connection);
    }
    await Promise.all([...this.#connections.values()].map((c) => this.#shut(c)));
    clearTimeout(this.#timer);
    this.#persist();
    this.#store?.close();
    this.#store = undefined;
  }

  /**
   * The `$SYS/broker/…` values mosquitto publishes, as text.
   *
   * @returns Topic to value.
   */
  sysValues(): Map<string, string> {
    const c = this.#counters;
    const stats = this.#machine.stats;
    let dropped = c.dropped + stats.dropped;
    for (const connection of this.#connections.values()) dropped += connection.session.droppedWhileCongested;
    const values = new Map([
      ["$SYS/broker/version", `@x/mqtt ${VERSION}`],
      ["$SYS/broker/uptime", `${Math.floor((performance.now() - this.#startedAt) / 1000)} seconds`],
      ["$SYS/broker/clients/connected", String(c.connected)],
      ["$SYS/broker/clients/total", String(this.#machine.sessionCount)],
      ["$SYS/broker/clients/disconnected", String(Math.max(0, this.#machine.sessionCount - c.connected))],
      ["$SYS/broker/clients/maximum", String(c.maximum)],
      ["$SYS/broker/messages/received", String(c.messagesReceived)],
      ["$SYS/broker/messages/sent", String(stats.delivered)],
      ["$SYS/broker/publish/messages/dropped", String(dropped)],
      ["$SYS/broker/bytes/received", String(c.bytesReceived)],
      ["$SYS/broker/bytes/sent", String(c.bytesSent)],
      ["$SYS/broker/retained messages/count", String(this.#machine.retainedCount)],
    ]);
    if (this.#heapUsed !== undefined) values.set("$SYS/broker/heap/current", String(this.#heapUsed()));
    return values;
  }

  /** Publishes the `$SYS` values that changed, retained. */
  #publishSys(): void {
    for (const [topic, value] of this.sysValues()) {
      if (this.#sysLast.get(topic) === value) continue;
      this.#sysLast.set(topic, value);
      this.publish(topic, value, { retain: true });
    }
  }

  #startSys(): void {
    const interval = this.#options.sysInterval ?? 10;
    if (interval <= 0 || this.#sysTimer !== undefined) return;
    this.#publishSys();
    this.#sysTimer = setInterval(() => this.#publishSys(), interval * 1000);
  }

  #log(level: LogLevel, message: string): void {
    this.#options.log?.(level, message);
  }

  /** Writes the machine's changes to the store, before any packet that acknowledges them goes out. */
  #persist(): void {
    const store = this.#store;
    if (store === undefined) return;
    const changes = this.#machine.pollChanges(performance.now());
    if (changes.length === 0) return;
    try {
      // `$SYS` values are the broker's own and published again on start.
      store.write(changes.filter((c) => c.type !== "retained" || !c.topic.startsWith("$SYS/")));
    } catch (error) {
      this.#log("error", `Could not write to the store: ${(error as Error).message}`);
    }
  }

  /**
   * Flushes one connection, then every session the broker machine gave output to, until none has any left.
   *
   * Handlers of the events a flush dispatches (a PUBLISH routed and acknowledged, a SUBSCRIBE granted) call
   * this again: while a drain runs, that only marks the connection, so a chunk of a thousand PUBLISH packets
   * neither recurses a thousand deep nor writes a thousand times; its acknowledgements and deliveries leave
   * as one write per connection.
   */
  #flushAll(first: Connection | undefined): void {
    if (first !== undefined) this.#dirty.add(first);
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (;;) {
        for (let s = this.#machine.pollSession(); s !== undefined; s = this.#machine.pollSession()) {
          const connection = this.#connections.get(s);
          if (connection !== undefined) this.#dirty.add(connection);
        }
        const next = this.#dirty.values().next();
        if (next.done) break;
        this.#dirty.delete(next.value);
        this.#flush(next.value);
      }
    } finally {
      this.#draining = false;
    }
    this.#scheduleBroker();
  }

  #flush(connection: Connection): void {
    this.#persist();
    const session = connection.session;
    const highWater = this.#maxOutgoingBytes;
    for (let bytes = session.pollTransmit(); bytes !== undefined; bytes = session.pollTransmit()) {
      this.#counters.bytesSent += bytes.length;
      if (this.#options.logPackets) this.#trace(connection, "out", bytes);
      const before = connection.pendingBytes;
      connection.pendingBytes += bytes.length;
      if (before <= this.#lowWater && connection.pendingBytes > this.#lowWater) {
        connection.progressAt = performance.now();
      }
      if (connection.pendingBytes > 2 * highWater && !connection.closed) {
        // Even acknowledgements and queued messages pile up: the client must not grow the broker's memory.
        this.#disconnectSlow(connection);
        continue;
      }
      if (connection.pendingBytes > this.#backpressureBytes && !session.congested && !connection.closed) {
        if (connection.pendingBytes > highWater) this.#behind(connection);
        else this.#hold(connection);
      }
      // The transport keeps writes in order: hand each over at once instead of after the previous one settled.
      const size = bytes.length;
      const written = connection.write(bytes);
      if (written === undefined) {
        connection.pendingBytes -= size;
        continue;
      }
      connection.writing = written.then(() => {
        connection.pendingBytes -= size;
        if (connection.pendingBytes > this.#lowWater) {
          connection.progressAt = performance.now();
          return;
        }
        connection.progressAt = 0;
        if (connection.closed) return;
        if (connection.holdTimer !== undefined) this.#release(connection);
        if (session.congested) {
          clearTimeout(connection.slowTimer);
          connection.slowTimer = undefined;
          const dropped = session.droppedWhileCongested;
          this.#log(
            "info",
            `Client "${this.#who(connection)}" caught up (${dropped} QoS 0 messages dropped in all)`,
          );
          session.setCongested(performance.now(), false);
          this.#flushAll(connection);
        }
      }, () => {
        if (!connection.closed) {
          session.handleClose(performance.now(), new Error("write failed"));
          this.#flushAll(connection);
        }
      });
    }
    for (let event = session.pollEvent(); event !== undefined; event = session.pollEvent()) {
      this.#dispatch(connection, event);
    }
    const at = session.pollTimeout();
    if (at === undefined || connection.closed) {
      clearTimeout(connection.timer);
      connection.timer = undefined;
      return;
    }
    // A timer due no later than needed stays: traffic moves the keep-alive deadline on every packet, and waking
    // early is harmless (the machine ignores an early timeout, and the timer is set again for the new deadline).
    if (connection.timer !== undefined && connection.timerAt <= at) return;
    clearTimeout(connection.timer);
    connection.timerAt = at;
    connection.timer = setTimeout(() => this.#timeout(connection), Math.max(0, at - performance.now()));
  }

  /**
   * A connection's deadline came. While its reads are paused for a client that is behind, what its client
   * sends waits unread, so the keep-alive cannot tell: ask again once the reads went on.
   */
  #timeout(connection: Connection): void {
    connection.timer = undefined;
    if (connection.heldBy > 0 && !connection.closed) {
      connection.timerAt = performance.now() + 100;
      connection.timer = setTimeout(() => this.#timeout(connection), 100);
      return;
    }
    connection.session.handleTimeout(performance.now());
    this.#flushAll(connection);
  }

  /** The client identifier for logs. */
  #who(connection: Connection): string {
    return connection.info?.clientId ?? connection.session.clientId ?? "?";
  }

  /**
   * A client is behind, by more than `backpressureBytes`: the connection whose bytes are being handled, which
   * feeds it, is read no more until it caught up, or until `maxPublisherPause` passed and it counts as behind.
   * One that counted as behind within 10 times that counts as behind at once.
   */
  #hold(connection: Connection): void {
    if (connection.holdTimer === undefined) {
      const now = performance.now();
      // Pausing its publishers for a client that took nothing since its backlog began would be no use.
      const stalled = now - connection.progressAt >= (this.#options.maxWriteStall ?? 100);
      if (stalled || now < connection.noHoldUntil) {
        if (stalled) connection.noHoldUntil = now + 10 * (this.#options.maxPublisherPause ?? 1000);
        this.#behind(connection);
        return;
      }
      connection.holdSince = now;
      this.#checkHold(connection);
    }
    const source = this.#source;
    if (source === undefined || source.closed) return;
    const holding = connection.holding ??= new Set();
    if (holding.has(source)) return;
    holding.add(source);
    if (source.heldBy++ === 0) source.pauseReads();
  }

  /**
   * While `connection` holds connections paused: it counts as behind once its transport took nothing for
   * `maxWriteStall` (a client that stopped reading), or once it held them for `maxPublisherPause`; then it may
   * not hold any again for 10 times that.
   */
  #checkHold(connection: Connection): void {
    const stall = this.#options.maxWriteStall ?? 100;
    const pause = this.#options.maxPublisherPause ?? 1000;
    const now = performance.now();
    const due = Math.min(connection.progressAt + stall, connection.holdSince + pause);
    connection.holdTimer = setTimeout(() => {
      connection.holdTimer = undefined;
      if (connection.closed || connection.pendingBytes <= this.#lowWater) {
        this.#release(connection);
        return;
      }
      const now = performance.now();
      if (now - connection.progressAt >= stall || now - connection.holdSince >= pause) {
        connection.noHoldUntil = now + 10 * pause;
        this.#behind(connection);
      } else this.#checkHold(connection);
    }, Math.max(1, due - now));
  }

  /** Reads again the connections that `connection` held paused. */
  #release(connection: Connection): void {
    clearTimeout(connection.holdTimer);
    connection.holdTimer = undefined;
    const holding = connection.holding;
    if (holding === undefined) return;
    connection.holding = undefined;
    for (const source of holding) if (--source.heldBy === 0) source.resumeReads();
  }

  /** A client is behind: drop what may be dropped, queue the rest, and give it `slowConsumerTimeout` to catch up. */
  #behind(connection: Connection): void {
    this.#release(connection);
    const session = connection.session;
    this.#log(
      "warn",
      `Client "${
        this.#who(connection)
      }" is behind by ${connection.pendingBytes} bytes: dropping its QoS 0 messages`,
    );
    session.setCongested(performance.now(), true);
    connection.slowTimer = setTimeout(() => {
      connection.slowTimer = undefined;
      if (!connection.closed && session.congested) this.#disconnectSlow(connection);
    }, this.#options.slowConsumerTimeout ?? 30_000);
  }

  /** Closes the connection of a client that does not read, so that it holds up no one and no memory. */
  #disconnectSlow(connection: Connection): void {
    this.#log(
      "warn",
      `Disconnecting slow consumer "${this.#who(connection)}": ${connection.pendingBytes} bytes unsent`,
    );
    clearTimeout(connection.slowTimer);
    connection.slowTimer = undefined;
    connection.session.handleClose(performance.now(), new Error("slow consumer"));
    void connection.transport.close();
    this.#flushAll(connection);
  }

  /** Decodes a copy of the traffic and logs each packet; a trace that fails to decode stops quietly. */
  #trace(connection: Connection, direction: "in" | "out", bytes: Uint8Array): void {
    const version = connection.session.version;
    if (direction === "in") connection.traceIn ??= new PacketDecoder();
    else if (version !== undefined) connection.traceOut ??= new PacketDecoder({ version });
    const decoder = direction === "in" ? connection.traceIn : connection.traceOut;
    if (decoder === undefined) return;
    const who = connection.info?.clientId ?? connection.session.clientId ?? "?";
    try {
      decoder.push(bytes.slice());
      for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
        this.#log(
          "debug",
          `${direction === "in" ? "Received" : "Sending"} ${describePacket(packet)} ${
            direction === "in" ? "from" : "to"
          } "${who}"`,
        );
      }
    } catch {
      if (direction === "in") connection.traceIn = undefined;
      else connection.traceOut = undefined;
    }
  }

  #scheduleBroker(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const at = this.#machine.pollTimeout();
    if (at === undefined || this.#closing) return;
    this.#timer = setTimeout(() => {
      this.#machine.handleTimeout(performance.now());
      this.#flushAll(undefined);
    }, Math.max(0, at - performance.now()));
  }

  #dispatch(connection: Connection, event: SessionEvent): void {
    const session = connection.session;
    switch (event.type) {
      case "connect":
        this.#connecting.delete(connection);
        void this.#onConnect(connection, event.packet);
        return;
      case "publish":
        this.#onPublish(connection, event.packet);
        return;
      case "subscribe":
        void this.#onSubscribe(connection, event.packet.packetId, event.packet.subscriptions, event);
        return;
      case "unsubscribe":
        this.#machine.unsubscribe(performance.now(), session, event.packet);
        return;
      case "auth":
        void this.#onAuth(connection, event.packet.properties?.authenticationData);
        return;
      case "closed":
        this.#onClosed(connection, event.error);
        return;
      default: {
        const unreachable: never = event;
        throw new Error(`Unhandled session event ${(unreachable as SessionEvent).type}`);
      }
    }
  }

  async #onConnect(connection: Connection, packet: ConnectPacket): Promise<void> {
    const info: ClientInfo = { clientId: packet.clientId, protocolVersion: packet.protocolVersion };
    if (packet.username !== undefined) info.username = packet.username;
    if (connection.remote !== undefined) info.remote = connection.remote;
    let code: ReasonCode = ReasonCode.Success;
    const passwords = this.#options.passwords;
    const maxIdLength = this.#options.maxClientIdLength ?? 256;
    if (new TextEncoder().encode(packet.clientId).length > maxIdLength) {
      code = ReasonCode.ClientIdentifierNotValid;
    } else if (packet.username === undefined && this.#options.allowAnonymous === false) {
      code = ReasonCode.NotAuthorized;
    } else if (packet.username !== undefined && passwords !== undefined) {
      const entry = passwords.get(packet.username);
      const ok = entry !== undefined && packet.password !== undefined &&
        await verifyPassword(entry, packet.password);
      if (!ok) code = ReasonCode.BadUserNameOrPassword;
    }
    if (code === ReasonCode.Success && this.#options.authenticate !== undefined) {
      try {
        code = decisionCode(
          await this.#options.authenticate(info, packet.password),
          ReasonCode.BadUserNameOrPassword,
        );
      } catch (error) {
        this.#log("error", `authenticate hook failed for "${packet.clientId}": ${(error as Error).message}`);
        code = ReasonCode.UnspecifiedError;
      }
    }
    const method = packet.properties?.authenticationMethod;
    if (code === ReasonCode.Success && method !== undefined) {
      if (this.#options.enhancedAuthenticate === undefined) {
        code = ReasonCode.BadAuthenticationMethod;
      } else {
        connection.authenticating = info;
        return this.#onAuth(connection, packet.properties?.authenticationData);
      }
    }
    if (connection.closed) return;
    this.#finishConnect(connection, info, packet.protocolVersion, code);
  }

  /** One step of enhanced authentication: a new connection's, or a re-authentication's. */
  async #onAuth(connection: Connection, data: Uint8Array | undefined): Promise<void> {
    const session = connection.session;
    const hook = this.#options.enhancedAuthenticate;
    const client = connection.authenticating ?? connection.info;
    const method = session.authenticationMethod;
    if (hook === undefined || client === undefined || method === undefined) {
      if (connection.info === undefined) {
        session.reject(performance.now(), ReasonCode.BadAuthenticationMethod);
      } else session.disconnect(performance.now(), ReasonCode.ProtocolError);
      this.#flushAll(connection);
      return;
    }
    const reauthenticating = connection.authenticating === undefined;
    let result: EnhancedAuthResult;
    try {
      result = await hook(client, { method, data: data?.slice(), reauthenticating });
    } catch (error) {
      this.#log(
        "error",
        `enhancedAuthenticate hook failed for "${client.clientId}": ${(error as Error).message}`,
      );
      result = ReasonCode.UnspecifiedError;
    }
    if (connection.closed) return;
    const now = performance.now();

    if (typeof result === "object" && "challenge" in result) {
      session.authenticate(now, ReasonCode.ContinueAuthentication, { authenticationData: result.challenge });
    } else if (typeof result === "object" || result === true) {
      const final = typeof result === "object" ? result.data : undefined;
      if (reauthenticating) {
        session.authenticate(
          now,
          ReasonCode.Success,
          final === undefined ? {} : { authenticationData: final },
        );
      } else {
        connection.authenticating = undefined;
        const properties = final === undefined
          ? { authenticationMethod: method }
          : { authenticationMethod: method, authenticationData: final };
        this.#finishConnect(connection, client, client.protocolVersion, ReasonCode.Success, properties);
        return;
      }
    } else {
      const code = decisionCode(result, ReasonCode.NotAuthorized);
      if (reauthenticating) {
        session.disconnect(now, code);
      } else {
        connection.authenticating = undefined;
        this.#finishConnect(connection, client, client.protocolVersion, code);
        return;
      }
    }
    this.#flushAll(connection);
  }

  #finishConnect(
    connection: Connection,
    info: ClientInfo,
    protocolVersion: number,
    code: ReasonCode,
    properties?: ConnAckProperties,
  ): void {
    const session = connection.session;
    const packet = { clientId: info.clientId, protocolVersion };
    const now = performance.now();
    const maxKeepAlive = this.#options.maxKeepAlive ?? 0;
    const keepAlive = session.connectPacket?.keepAlive ?? 0;
    if (code === ReasonCode.Success && maxKeepAlive > 0 && (keepAlive === 0 || keepAlive > maxKeepAlive)) {
      // As mosquitto's max_keepalive, decided once the client is authenticated: MQTT 5 is told the value to use
      // [MQTT-3.2.2-21] (the session then enforces 1.5 times it [MQTT-3.1.2-22]); 3.x cannot be told, so it is
      // refused with 0x85, sent as return code 0x02 identifier rejected.
      if (protocolVersion === 5) {
        properties = { ...properties, serverKeepAlive: maxKeepAlive };
      } else {
        code = ReasonCode.ClientIdentifierNotValid;
        this.#log(
          "info",
          `Client "${info.clientId}" asked for keep-alive ${keepAlive}, not 1 to maxKeepAlive ${maxKeepAlive}`,
        );
      }
    }
    if (code !== ReasonCode.Success) {
      this.#log(
        "warn",
        `Refused "${packet.clientId}"${info.username ? ` (user "${info.username}")` : ""}${
          connection.remote ? ` from ${connection.remote}` : ""
        }: 0x${code.toString(16)}`,
      );
      session.reject(now, code);
    } else {
      this.#machine.attach(now, session, properties === undefined ? {} : { properties });
      this.#counters.connected++;
      this.#counters.maximum = Math.max(this.#counters.maximum, this.#counters.connected);
      connection.info = { ...info, clientId: session.clientId };
      this.#log(
        "info",
        `Client "${session.clientId}" connected (MQTT level ${packet.protocolVersion})${
          connection.remote ? ` from ${connection.remote}` : ""
        }`,
      );
    }
    this.#flushAll(connection);
  }

  #onPublish(connection: Connection, packet: PublishPacket): void {
    let code: ReasonCode = ReasonCode.Success;
    const hook = this.#options.authorizePublish;
    const acl = this.#options.acl;
    const limited = this.#limitPublish(connection, packet);
    if (limited !== undefined) {
      code = limited;
    } else if (
      acl !== undefined && connection.info !== undefined && !canPublish(acl, connection.info, packet.topic)
    ) {
      code = ReasonCode.NotAuthorized;
      this.#log("info", `Denied publish from "${connection.info.clientId}" to "${packet.topic}" (ACL)`);
    } else if (hook !== undefined && connection.info !== undefined) {
      void this.#authorizePublish(connection, packet, connection.info, hook);
      return;
    }
    // Without a hook, at once: no promise per message.
    this.#publishDecided(connection, packet, code);
  }

  async #authorizePublish(
    connection: Connection,
    packet: PublishPacket,
    info: ClientInfo,
    hook: NonNullable<BrokerOptions["authorizePublish"]>,
  ): Promise<void> {
    let code: ReasonCode;
    try {
      code = decisionCode(await hook(info, packet), ReasonCode.NotAuthorized);
    } catch {
      code = ReasonCode.UnspecifiedError;
    }
    this.#publishDecided(connection, packet, code);
  }

  /**
   * Routes an authorized PUBLISH and answers it (PUBACK or PUBREC with `code`), once every session it went to
   * holds it. Also when the connection closed while an async hook decided: the client's QoS 2 resend is then
   * answered as a duplicate, so this is the one chance to route the message [MQTT-4.3.3-10].
   */
  #publishDecided(connection: Connection, packet: PublishPacket, code: ReasonCode): void {
    const session = connection.session;
    const now = performance.now();
    this.#counters.messagesReceived++;
    // A hook may answer with any reason code; PUBACK and PUBREC carry only some.
    if (packet.qos > 0 && !reasonCodeAllowed(packet.qos === 1 ? "puback" : "pubrec", code)) {
      code = code >= 0x80 ? ReasonCode.UnspecifiedError : ReasonCode.Success;
    }
    const source = this.#source;
    this.#source = connection;
    try {
      this.#machine.publish(now, session, packet, code);
      this.#flushAll(connection);
    } finally {
      this.#source = source;
    }
  }

  async #onSubscribe(
    connection: Connection,
    _packetId: number,
    subscriptions: Subscription[],
    event: Extract<SessionEvent, { type: "subscribe" }>,
  ): Promise<void> {
    const hook = this.#options.authorizeSubscribe;
    const acl = this.#options.acl;
    let codes: ReasonCode[] | undefined;
    if ((hook !== undefined || acl !== undefined) && connection.info !== undefined) {
      codes = [];
      for (const subscription of subscriptions) {
        let decision: Decision | QoS = true;
        if (acl !== undefined && !canSubscribe(acl, connection.info, subscription.topicFilter)) {
          decision = false;
          this.#log(
            "info",
            `Denied subscription of "${connection.info.clientId}" to "${subscription.topicFilter}" (ACL: nothing readable)`,
          );
        } else if (hook !== undefined) {
          try {
            decision = await hook(connection.info, subscription);
          } catch {
            decision = ReasonCode.UnspecifiedError;
          }
        }
        if (decision === true) codes.push(subscription.qos);
        else if (decision === false) codes.push(ReasonCode.NotAuthorized);
        else if (decision === 0 || decision === 1 || decision === 2) {
          codes.push(Math.min(decision, subscription.qos) as ReasonCode);
        } else codes.push(reasonCodeAllowed("suback", decision) ? decision : ReasonCode.UnspecifiedError);
      }
    }
    if (connection.closed) return;
    this.#machine.subscribe(performance.now(), connection.session, event.packet, codes);
    this.#flushAll(connection);
  }

  /** The topic and rate limits of a PUBLISH: a refusal code, or `undefined` when it may pass. */
  #limitPublish(connection: Connection, packet: PublishPacket): ReasonCode | undefined {
    const who = connection.info?.clientId ?? "?";
    const topic = packet.topic;
    const maxLength = this.#options.maxTopicLength ?? 65_535;
    const maxLevels = this.#options.maxTopicLevels ?? 128;
    if (topic.length > maxLength || levelCount(topic, maxLevels) > maxLevels) {
      this.#log(
        "warn",
        `Refused publish from "${who}": topic longer than ${maxLength} or deeper than ${maxLevels} levels`,
      );
      return ReasonCode.TopicNameInvalid;
    }
    const rate = this.#options.maxMessagesPerSecond ?? 0;
    if (rate > 0) {
      // A token bucket per connection: up to one second's worth of burst.
      const now = performance.now();
      // Small integers until the first PUBLISH: an idle connection holds no boxed number for its bucket.
      const elapsed = connection.rateAt === 0 ? Infinity : (now - connection.rateAt) / 1000;
      connection.rateAt = now;
      connection.tokens = Math.min(rate, connection.tokens + elapsed * rate);
      if (connection.tokens < 1) {
        this.#log("warn", `Refused publish from "${who}": more than ${rate} messages per second`);
        // 0x96 exists only on DISCONNECT; a PUBACK says quota exceeded.
        return ReasonCode.QuotaExceeded;
      }
      connection.tokens -= 1;
    }
    return undefined;
  }

  #onClosed(connection: Connection, error: MqttError | undefined): void {
    if (connection.closed) return;
    connection.closed = true;
    this.#connecting.delete(connection);
    if (connection.info !== undefined) this.#counters.connected--;
    this.#counters.dropped += connection.session.droppedWhileCongested;
    clearTimeout(connection.timer);
    clearTimeout(connection.slowTimer);
    this.#release(connection);
    // Read what the client still sends (a lingering close waits for its end), whoever held it paused.
    if (connection.heldBy > 0) connection.resumeReads();
    this.#machine.detach(performance.now(), connection.session);
    const who = `"${connection.info?.clientId ?? "(not connected)"}"${
      connection.remote ? ` (${connection.remote})` : ""
    }`;
    if (error === undefined) this.#log("info", `Client ${who} disconnected`);
    else this.#log("info", `Client ${who} closed: ${error.message}`);
    void this.#shut(connection, !this.#closing);
  }

  /**
   * Closes a connection once what was written to it went out. With `linger`, when the broker ended it (a
   * DISCONNECT with a reason code, a takeover, a refused CONNECT), the socket stays open for what the client
   * still sends until the client closes or `LINGER_MS` pass: closing at once would answer the client's next
   * packet with a reset, which can discard the DISCONNECT before the client reads its reason.
   */
  async #shut(connection: Connection, linger = false): Promise<void> {
    this.#connections.delete(connection.session);
    await connection.finish();
    if (linger) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        connection.done(),
        new Promise<void>((resolve) => timer = setTimeout(resolve, LINGER_MS)),
      ]);
      clearTimeout(timer);
    }
    await connection.transport.close();
  }
}

export { MqttError };
