/**
 * The async broker: SessionMachines and one BrokerMachine driven over transports, with timers, listeners and
 * typed async hooks for authentication and authorization. This file is the `Broker` core (accepting, the read
 * and write paths, timers, persistence, closing); its parts live beside it, each in its own file.
 *
 * @module
 */

import type { PublishPacket, QoS } from "../codec/packet.ts";
import { validateTopicName } from "../codec/topic.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import { BrokerMachine } from "../machine/broker_machine.ts";
import { type SessionEvent, SessionMachine } from "../machine/session_machine.ts";
import type { Listener, Transport } from "../transport/transport.ts";
import { OutputGate } from "./output_gate.ts";
import { exposition } from "./metrics.ts";
import { adminHost } from "./admin_api.ts";
import { httpRoutes } from "./http_routes.ts";
import { Bridges } from "./bridges.ts";
import type { Bridge } from "./bridge.ts";
import { memoryPair } from "../transport/memory.ts";
import { Backpressure } from "./backpressure.ts";
import { type BrokerOptions, type ListenOptions, log, type LogLevel } from "./broker_options.ts";
import { ConnectAuth } from "./connect_auth.ts";
import { Connection, type ConnectionHost, type ListenerCount } from "./connection.ts";
import { ConnectingLimit, listenerUrl, openListener, serveListener } from "./listeners.ts";
import { tracePackets } from "./packet_trace.ts";
import { deliveryCheck, PublishPolicy } from "./publish_policy.ts";
import { Persistence } from "./persistence.ts";
import { brokerClusterHost, type ClusterHost, clusterMachineOptions } from "./cluster_link.ts";
import { type SysCounters, SysTopics } from "./sys_topics.ts";

export type {
  BrokerOptions,
  ClientInfo,
  Decision,
  EnhancedAuthResult,
  EnhancedAuthStep,
  ListenOptions,
  LogFields,
  LogLevel,
} from "./broker_options.ts";

/** How long a connection the broker ended waits for the client to close it (see `#shut`). */
const LINGER_MS = 1000;
/** How long after its reads went on a paused connection's keep-alive waits for what its client sent meanwhile. */
const RESUME_GRACE_MS = 1000;
/** How much a client may still send meanwhile before its connection is closed at once (read, then dropped). */
const LINGER_BYTES = 65_536;

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
  /** Connections that have not sent their CONNECT yet (`maxConnecting`). */
  readonly #connecting: ConnectingLimit;
  #draining = false;
  /** Watermarks, paused reads and slow consumers; its `source` is the connection being handled. */
  readonly #pressure: Backpressure;
  readonly #auth: ConnectAuth;
  readonly #policy: PublishPolicy;
  readonly #listeners = new Set<Listener>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closing = false;
  readonly #persistence: Persistence;
  readonly #sys: SysTopics;
  readonly #bridges: Bridges;
  /** Answers an HTTP listener's requests besides its WebSocket (`http_routes.ts`). */
  readonly #http: (request: Request) => Response | Promise<Response>;
  readonly #counters: SysCounters;
  /** A flush waits for the end of the turn (`#flushSoon`). */
  #flushQueued = false;
  /** What is sent waits for the cluster's journal (see `ClusterLink.journal`). */
  readonly #gate = new OutputGate((connection, bytes) => this.#send(connection, bytes));
  /** Joining the cluster, when the broker is a node of one; `listen` waits for it. */
  readonly #joined: Promise<void> | undefined;
  /** `#flushAll` as a function, for the parts. */
  readonly #flushOne = (connection: Connection): void => this.#flushAll(connection);

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
    const cluster = options.cluster;
    if (cluster !== undefined && options.log !== undefined) {
      // Logs name the node.
      const log = options.log;
      options = {
        ...options,
        log: (level, message, fields) =>
          log(level, `[${cluster.node}] ${message}`, { ...fields, node: cluster.node }),
      };
    }
    this.#options = options;
    this.#pressure = new Backpressure(options, this.#flushOne);
    this.#bridges = new Bridges(options.bridges, {
      localTransport: () => this.#localTransport(),
      publish: (topic, payload, publish) => void this.publish(topic, payload, publish),
      log: (level, message, fields) => log(this.#options, level, message, fields),
    });
    this.#machine = new BrokerMachine({
      ...options,
      authorizeDelivery: deliveryCheck(options, this.#bridges.trusted),
      journal: options.store !== undefined || cluster !== undefined,
      ...(cluster === undefined ? {} : clusterMachineOptions(cluster)),
    });
    this.#persistence = new Persistence(this.#machine, options, this.#gate);
    this.#sys = new SysTopics(this.#machine, this.#connections);
    this.#counters = this.#sys.counters;
    this.#connecting = new ConnectingLimit(options, this.#flushOne);
    this.#auth = new ConnectAuth(
      options,
      this.#machine,
      this.#counters,
      this.#flushOne,
      this.#bridges.reserved,
    );
    this.#http = httpRoutes(
      adminHost({
        machine: this.#machine,
        connections: this.#connections,
        options,
        flushAll: this.#flushOne,
      }),
      () => this.metrics(),
    );
    this.#policy = new PublishPolicy(options, this.#machine, this.#counters, this.#pressure, this.#flushOne);
    this.#joined = cluster?.start(this.#clusterHost());
    // Until `listen` waits for it.
    this.#joined?.catch(() => {});
    if (this.#persistence.restore()) this.#scheduleBroker();
    this.#bridges.start();
  }

  /** The bridges to other brokers (`BrokerOptions.bridges`), with their state and figures. */
  get bridges(): readonly Bridge[] {
    return this.#bridges.list;
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
    await this.#joined;
    const listener = await openListener(options, options.http ? this.#http : undefined);
    this.#listeners.add(listener);
    this.#counters.listeners.push(serveListener(
      this.#options,
      options,
      listener,
      (transport, remote, count) => this.#accept(transport, remote, count),
    ));
    this.#startSys();
    this.#log("info", `Listening on ${listenerUrl(options, listener)}`);
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

  /** An in-process connection for a bridge's side on this broker, which trusts it. */
  async #localTransport(): Promise<Transport> {
    await this.#joined;
    const [client, server] = memoryPair();
    const connection = this.#accept(server, "bridge", undefined, true);
    if (connection === undefined) {
      await server.close();
      throw new Error("the broker is closing");
    }
    return client;
  }

  /** Starts serving a connection; undefined when it is refused (closing, or too many open). */
  #accept(
    transport: Transport,
    remote: string | undefined,
    listener: ListenerCount | undefined,
    trusted = false,
  ) {
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
    connection.trusted = trusted;
    this.#counters.accepted++;
    if (listener !== undefined) {
      connection.listener = listener;
      listener.open++;
    }
    this.#connections.set(session, connection);
    this.#connecting.admit(connection);
    this.#flushAll(connection);
    // The callbacks when the transport has them (no stream, no promise per idle connection), else the stream.
    if (connection.direct !== undefined) connection.direct.start(connection);
    else void connection.readStream();
    return connection;
  }

  /** Counts a new connection as connecting, closing the longest-waiting ones past `maxConnecting`. */

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
    if (this.#options.logPackets) tracePackets(this.#options, connection, "in", bytes);
    const pressure = this.#pressure;
    const source = pressure.source;
    pressure.source = connection;
    try {
      connection.session.handleBytes(performance.now(), bytes);
      this.#flushAll(connection);
    } finally {
      pressure.source = source;
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
    await this.#bridges.stop();
    this.#closing = true;
    this.#sys.stop();
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
    this.#persistence.close();
    await this.#options.cluster?.close();
  }

  /**
   * The `$SYS/broker/…` values mosquitto publishes, as text.
   *
   * @returns Topic to value.
   */
  sysValues(): Map<string, string> {
    const values = this.#sys.values();
    for (const [topic, value] of this.#options.cluster?.sysValues() ?? []) values.set(topic, value);
    for (const [topic, value] of this.#bridges.sysValues(this.#machine)) values.set(topic, value);
    return values;
  }

  /**
   * The broker's figures in Prometheus' text exposition format, as `GET /metrics` of an HTTP listener serves
   * them (`listen({ http: true })`).
   *
   * @returns The text.
   */
  metrics(): string {
    const cluster = this.#options.cluster;
    return exposition(
      [
        ...this.#sys.metrics(cluster?.sysValues(), this.#pressure.slowDisconnects),
        ...this.#bridges.metrics(this.#machine),
      ],
      cluster === undefined ? {} : { node: cluster.node },
    );
  }

  /**
   * Flushes once the current turn is over: the engine hands over the messages of one read one by one, and
   * flushing after each would write each to its subscribers' sockets alone (a third of a node's time went to
   * those writes); after the turn they leave as one write per connection.
   */
  #flushSoon(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flushAll(undefined);
    });
  }

  /** What the cluster may do to this broker. */
  #clusterHost(): ClusterHost {
    return brokerClusterHost({
      machine: this.#machine,
      flushAll: () => this.#flushAll(undefined),
      flushSoon: () => this.#flushSoon(),
      persist: () => this.#persistence.write(),
      log: (level, message) => this.#log(level, message),
    });
  }

  #startSys(): void {
    this.#sys.start(
      this.#options.sysInterval ?? 10,
      () => this.sysValues(),
      (topic, value) => this.publish(topic, value, { retain: true }),
    );
  }

  #log(level: LogLevel, message: string): void {
    log(this.#options, level, message);
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
    // What changed without a packet to send (a session that ended with its connection) is written too.
    this.#persistence.write();
    this.#scheduleBroker();
  }

  #flush(connection: Connection): void {
    this.#persistence.write();
    const session = connection.session;
    for (let bytes = session.pollTransmit(); bytes !== undefined; bytes = session.pollTransmit()) {
      this.#counters.bytesSent += bytes.length;
      if (this.#options.logPackets) tracePackets(this.#options, connection, "out", bytes);
      this.#gate.pass(connection, bytes);
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
   * sends waits unread, so the keep-alive cannot tell: ask again once the reads went on and what waited had
   * time to come in (`RESUME_GRACE_MS`: on a busy machine the first read after a pause of seconds came after
   * the keep-alive had fired, and closed a client that had sent all along).
   */
  /** Writes to a connection; the transport keeps writes in order: each is handed over at once. */
  #send(connection: Connection, bytes: Uint8Array): void {
    const size = bytes.length;
    const pressure = this.#pressure;
    if (!pressure.queue(connection, size)) return;
    const written = connection.write(bytes);
    if (written === undefined) {
      connection.pendingBytes -= size;
      return;
    }
    connection.writing = written.then(() => pressure.wrote(connection, size), () => {
      if (!connection.closed) {
        connection.session.handleClose(performance.now(), new Error("write failed"));
        this.#flushAll(connection);
      }
    });
  }

  #timeout(connection: Connection): void {
    connection.timer = undefined;
    const resuming = performance.now() - connection.resumedAt < RESUME_GRACE_MS;
    if ((connection.heldBy > 0 || resuming) && !connection.closed) {
      connection.timerAt = performance.now() + 100;
      connection.timer = setTimeout(() => this.#timeout(connection), 100);
      return;
    }
    connection.session.handleTimeout(performance.now());
    this.#flushAll(connection);
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
        void this.#auth.onConnect(connection, event.packet);
        return;
      case "publish":
        this.#policy.onPublish(connection, event.packet);
        return;
      case "subscribe":
        void this.#policy.onSubscribe(connection, event.packet.packetId, event.packet.subscriptions, event);
        return;
      case "unsubscribe":
        this.#machine.unsubscribe(performance.now(), session, event.packet);
        return;
      case "auth":
        void this.#auth.onAuth(connection, event.packet.properties?.authenticationData);
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

  #onClosed(connection: Connection, error: MqttError | undefined): void {
    if (connection.closed) return;
    connection.closed = true;
    this.#connecting.delete(connection);
    if (connection.info !== undefined) this.#counters.connected--;
    this.#counters.dropped += connection.session.droppedWhileCongested;
    clearTimeout(connection.timer);
    clearTimeout(connection.slowTimer);
    this.#pressure.release(connection);
    // Read what the client still sends (a lingering close waits for its end), whoever held it paused.
    if (connection.heldBy > 0) connection.resumeReads();
    this.#machine.detach(performance.now(), connection.session);
    const who = `"${connection.info?.clientId ?? "(not connected)"}"${
      connection.remote ? ` (${connection.remote})` : ""
    }`;
    const fields = { client: connection.info?.clientId, event: "disconnected" };
    if (error === undefined) log(this.#options, "info", `Client ${who} disconnected`, fields);
    else log(this.#options, "info", `Client ${who} closed: ${error.message}`, fields);
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
    // What it still has to send waits for the cluster's journal.
    await this.#gate.drained(connection);
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
