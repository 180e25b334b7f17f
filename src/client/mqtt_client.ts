/**
 * The async MQTT client: a {@linkcode ClientMachine} driven over a {@linkcode Transport}, with timers,
 * promises, subscriptions as async iterables and automatic reconnection.
 *
 * @module
 */

import type {
  AuthPacket,
  AuthProperties,
  ConnAckPacket,
  ConnectProperties,
  Packet,
  ProtocolVersion,
  PublishPacket,
  PublishProperties,
  QoS,
  RetainHandling,
  UserProperty,
  Will,
} from "../codec/packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import {
  type ClientEvent,
  ClientMachine,
  type ClientSessionState,
  type ConnectOptions as MachineConnectOptions,
} from "../machine/client_machine.ts";
import type { Transport } from "../transport/transport.ts";
import { Message } from "./message.ts";
import { Subscription, type SubscriptionOwner } from "./subscription.ts";

const encoder = new TextEncoder();
/** The longest the keep-alive timer sleeps, so that a resume from suspension is noticed soon. */
const WAKE_INTERVAL_MS = 5000;
/** A wall-clock jump this much larger than the monotonic clock's is taken as a suspension. */
const SUSPENSION_THRESHOLD_MS = 1000;
/**
 * How many acknowledgements of taken messages wait for a flush at most (see `#flushAcknowledgements`). Each one
 * waiting is a message the broker sends again if the connection drops now (a QoS 1 duplicate): 64 made about
 * five times MQTT.js's duplicates under cut connections (`scripts/chaos.ts`, mosquitto), 16 makes about as
 * many, for some 10-15 % of receive throughput at QoS 1.
 */
const ACK_BATCH = 16;
/** The longest the read loop waits for a full subscription to make room before reading (and dropping) on. */
const MAX_READ_PAUSE_MS = 1000;
/** How often settling QoS 0 publishes checks that the event loop still turns (see `#settleWritten`). */
const YIELD_EVERY_MS = 5;
/**
 * Runs `callback` on a later turn of the event loop: with `setImmediate` where the runtime has it (Deno, Bun,
 * Node), since a chained `setTimeout(…, 0)` is clamped to 1–4 ms there; else (browsers) with a timer.
 */
const nextTurn: (callback: () => void) => void = (() => {
  const immediate = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;
  return typeof immediate === "function"
    ? (callback: () => void) => void immediate(callback)
    : (callback: () => void) => void setTimeout(callback, 0);
})();

/** How to reconnect after a connection is lost. */
export interface ReconnectOptions {
  /** The first delay, in milliseconds. Default 1,000. */
  initialDelayMs?: number;
  /** The longest delay, in milliseconds. Default 30,000. */
  maxDelayMs?: number;
  /** How many attempts in a row before giving up. Default: never give up. */
  maxAttempts?: number;
}

/** Credentials or an address that {@linkcode ClientOptions.beforeConnect} may change before an attempt. */
export interface ConnectOverrides {
  /** A new user name for this and later attempts. */
  username?: string;
  /** A new password (text is sent as UTF-8) for this and later attempts. */
  password?: string | Uint8Array;
  /** A new transport factory, for a new address. */
  transport?: (signal: AbortSignal) => Promise<Transport>;
}

/** A will message for the client options; the payload may be text. */
export interface WillOptions {
  /** The topic the will is published to. */
  topic: string;
  /** The will message; text is sent as UTF-8. */
  payload: string | Uint8Array;
  /**
   * The QoS the will is published with (MQTT 5 §3.1.2.6).
   *
   * @default {0}
   */
  qos?: QoS;
  /**
   * Whether the will is published as a retained message (MQTT 5 §3.1.2.7).
   *
   * @default {false}
   */
  retain?: boolean;
  /** MQTT 5 will properties: will delay, message expiry, content type, response topic… (MQTT 5 §3.1.3.2). */
  properties?: Will["properties"];
}

/** Where a client keeps its session state between runs: a file, IndexedDB, a database. */
export interface SessionStore {
  /**
   * Loads the state saved for a client; called before the first connection when `cleanStart` is false.
   *
   * @param clientId The client identifier.
   * @returns The saved state, or `undefined` when there is none.
   */
  get(clientId: string): Promise<ClientSessionState | undefined>;
  /**
   * Saves the state of a client, replacing what was saved; called after changes, at most once per turn.
   *
   * @param clientId The client identifier.
   * @param state The state to keep.
   * @returns Resolves once saved.
   */
  set(clientId: string, state: ClientSessionState): Promise<void>;
}

/**
 * A {@linkcode SessionStore} in memory: sessions survive a new client in the same process, not a restart.
 *
 * @example Keep sessions for clients of one process
 * ```ts
 * import { MemorySessionStore } from "@x/mqtt/client";
 * const store = new MemorySessionStore();
 * console.log(await store.get("sensor-1")); // undefined
 * ```
 */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, ClientSessionState>();

  /**
   * Returns the state saved for a client.
   *
   * @param clientId The client.
   * @returns Its saved state, if any.
   */
  get(clientId: string): Promise<ClientSessionState | undefined> {
    return Promise.resolve(this.#sessions.get(clientId));
  }

  /**
   * Saves the state of a client, replacing what was saved before.
   *
   * @param clientId The client.
   * @param state Its state.
   * @returns Resolves once saved.
   */
  set(clientId: string, state: ClientSessionState): Promise<void> {
    this.#sessions.set(clientId, state);
    return Promise.resolve();
  }
}

/**
 * Connection state changes reported to {@linkcode ClientOptions.onStateChange}.
 *
 * @example Watch a connection open and close
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect, type ConnectionEvent } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker();
 * const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
 * const events: ConnectionEvent["type"][] = [];
 * const client = await connect(`mqtt://127.0.0.1:${port}`, {
 *   onStateChange: (event) => events.push(event.type),
 * });
 * await client.close();
 * assert.deepEqual(events, ["connected", "disconnected"]);
 * await broker.close();
 * ```
 */
export type ConnectionEvent =
  | { type: "connected"; sessionPresent: boolean; connack: ConnAckPacket }
  | { type: "reconnecting"; attempt: number; delayMs: number; error: MqttError }
  | { type: "disconnected"; error?: MqttError };

/** Options of {@linkcode MqttClient} (what `connect()` accepts besides a URL). */
export interface ClientOptions {
  /** Opens the connection; the URL-based `connect()` fills it in from the URL. */
  transport: (signal: AbortSignal) => Promise<Transport>;
  /** The client identifier. Default: `mqttx_` and 16 random hex digits. */
  clientId?: string;
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0). Default 5. */
  protocolVersion?: ProtocolVersion;
  /** Keep-alive in seconds. Default 60. */
  keepAlive?: number;
  /** Start a new session (default true). With false, the session resumes across reconnects and restarts. */
  cleanStart?: boolean;
  /** MQTT 5: seconds the server keeps the session after a disconnect. */
  sessionExpiryInterval?: number;
  /** The user name; a `user@` in the URL of `connect()` fills it in. */
  username?: string;
  /** The password, text sent as UTF-8; a `user:password@` in the URL of `connect()` fills it in. */
  password?: string | Uint8Array;
  /** The will message the broker publishes when the connection ends without a normal DISCONNECT. */
  will?: WillOptions;
  /** MQTT 5 CONNECT properties (receive maximum, maximum packet size, topic alias maximum…). */
  properties?: ConnectProperties;
  /** How long to wait for CONNACK, in milliseconds. Default 30,000. */
  connectTimeoutMs?: number;
  /** Reconnect after a lost connection (default true), with exponential backoff and full jitter. */
  reconnect?: boolean | ReconnectOptions;
  /** Called before every attempt after the first, to supply fresh credentials (expiring tokens). */
  beforeConnect?: (attempt: number) => Promise<ConnectOverrides | void> | ConnectOverrides | void;
  /** Connection state changes. */
  onStateChange?: (event: ConnectionEvent) => void;
  /** Every packet sent (`"out"`) and received (`"in"`), for debugging. */
  onPacket?: (direction: "in" | "out", packet: Packet) => void;
  /**
   * MQTT 5 enhanced authentication: answers each AUTH challenge (reason 0x18) from the server with the
   * properties of the next AUTH. Set `properties.authenticationMethod` (and initial data) to start it.
   */
  authenticate?: (challenge: AuthPacket) => Promise<AuthProperties> | AuthProperties;
  /** How many publishes may wait while disconnected. Default 1,000. */
  outboxLimit?: number;
  /** When the outbox is full: refuse the new publish (default) or drop the oldest one. */
  outboxOverflow?: "reject" | "drop-oldest";
  /**
   * Messages a subscription buffers before the client stops reading from the broker until the consumer takes
   * some; after a second without room, the oldest QoS 0 messages beyond it are dropped. Default 1,000.
   */
  subscriptionBufferLimit?: number;
  /** Aborts the first connection attempt. */
  signal?: AbortSignal;
  /**
   * Keeps the session (unfinished QoS 1 and 2 publishes, subscriptions) across restarts of the program. Used
   * with `cleanStart: false`: the state saved under the client id is restored before the first connection.
   */
  sessionStore?: SessionStore;
  /** The first level of the response topic `request()` subscribes to. Default `mqttx`. */
  responseTopicPrefix?: string;
}

/** Options of {@linkcode MqttClient.publish}. */
export interface PublishOptions {
  /**
   * At most once (0), at least once (1) or exactly once (2); {@linkcode MqttClient.request} defaults to 1.
   *
   * @default {0}
   */
  qos?: QoS;
  /**
   * Whether the broker keeps the message as the retained message of the topic (MQTT 5 §3.3.1.3).
   *
   * @default {false}
   */
  retain?: boolean;
  /** MQTT 5 PUBLISH properties; the client picks topic aliases, the broker adds subscription identifiers. */
  properties?: Omit<PublishProperties, "topicAlias" | "subscriptionIdentifiers">;
  /** Stops waiting for the acknowledgement, or drops the publish while it waits in the offline outbox. */
  signal?: AbortSignal;
}

/** Options of {@linkcode MqttClient.subscribe}. */
export interface SubscribeOptions {
  /**
   * The highest QoS the broker may deliver matching messages with (MQTT 5 §3.8.3.1).
   *
   * @default {0}
   */
  qos?: QoS;
  /**
   * MQTT 5: do not deliver messages this client published itself; not allowed on shared subscriptions.
   *
   * @default {false}
   */
  noLocal?: boolean;
  /**
   * MQTT 5: keep the retain flag of forwarded messages as it was published.
   *
   * @default {false}
   */
  retainAsPublished?: boolean;
  /**
   * MQTT 5: 0 sends retained messages on subscribing, 1 only when the subscription is new, 2 never.
   *
   * @default {0}
   */
  retainHandling?: RetainHandling;
  /** MQTT 5 user properties of the SUBSCRIBE. */
  userProperties?: UserProperty[];
  /** Stops waiting for the connection or the SUBACK. */
  signal?: AbortSignal;
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

interface OutboxEntry {
  topic: string;
  payload: Uint8Array;
  options: PublishOptions;
  queuedAt: number;
  waiter: Waiter<void>;
  /** Removes the listener that takes the entry out of the outbox when its signal aborts. */
  unlisten?: () => void;
}

/** Settles a promise from outside, once. */
function deferred<T>(): { promise: Promise<T> } & Waiter<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function toBytes(payload: string | Uint8Array): Uint8Array {
  return typeof payload === "string" ? encoder.encode(payload) : payload;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  return a.every((byte, i) => byte === b[i]);
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function randomClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return "mqttx_" + hex(bytes);
}

/** Rejects with the signal's reason when it aborts; returns a function that stops listening. */
function onAbort(signal: AbortSignal | undefined, reject: (reason: unknown) => void): () => void {
  if (signal === undefined) return () => {};
  if (signal.aborted) {
    reject(signal.reason);
    return () => {};
  }
  const listener = () => reject(signal.reason);
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}

/** Codes after which retrying with the same credentials is pointless. */
const FATAL_REFUSALS: ReadonlySet<number> = new Set([
  ReasonCode.NotAuthorized,
  ReasonCode.BadUserNameOrPassword,
  ReasonCode.Banned,
  ReasonCode.BadAuthenticationMethod,
  ReasonCode.ClientIdentifierNotValid,
  ReasonCode.UnsupportedProtocolVersion,
]);

/**
 * A connected MQTT client. Create it with `connect()`; every method returns a promise that always settles:
 * on the acknowledgement, on an {@linkcode MqttError}, on abort (with the signal's reason) or on close.
 *
 * @example Publish and subscribe
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * const broker = new Broker();
 * const { port } = await broker.listen({ port: 0 });
 * const client = await connect(`mqtt://127.0.0.1:${port}`);
 * const subscription = await client.subscribe("greetings/#", { qos: 1 });
 * await client.publish("greetings/world", "hello", { qos: 1 });
 * for await (const message of subscription) {
 *   assert.equal(message.topic, "greetings/world");
 *   assert.equal(message.text(), "hello");
 *   break;
 * }
 * await client.close();
 * await broker.close();
 * ```
 */
export class MqttClient implements SubscriptionOwner {
  readonly #options: ClientOptions;
  readonly #machine: ClientMachine;
  #transport: Transport | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #writing: Promise<void> = Promise.resolve();
  /** Acknowledgements queued in the machine since the last flush, and the timer that sends them. */
  #acksWaiting = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** QoS 0 publishes of this turn, settled once the write that carries them is done. */
  #awaitingWrite: Waiter<void>[] = [];
  /** When settling QoS 0 publishes last checked that the event loop turns. */
  #lastYieldCheck = 0;
  /** Whether a timer ran since that check (set by the probe it scheduled), i.e. the event loop turns. */
  #loopTurned = true;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When `#timer` fires, on the clock of `#now()`. */
  #timerAt = 0;
  #flushQueued = false;
  #closing = false;
  #closedDeferred = deferred<void>();
  #connected: (Waiter<void> & { promise: Promise<void> }) | undefined;
  #attempt = 0;
  #username: string | undefined;
  #password: Uint8Array | undefined;
  #transportFactory: (signal: AbortSignal) => Promise<Transport>;
  #attemptAbort: AbortController | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;

  readonly #publishes = new Map<number, Waiter<void>>();
  readonly #control = new Map<number, Waiter<ReasonCode[]>>();
  readonly #subscriptions = new Map<number, Subscription>();
  readonly #byObject = new Map<Subscription, number>();
  #outbox: OutboxEntry[] = [];
  #requests = new Map<string, Waiter<Message>>();
  /** The refusal that ended the last attempt, when it was about credentials. */
  #refusal: MqttError | undefined;
  #saveQueued = false;
  #saving: Promise<void> = Promise.resolve();
  #lastWall = Date.now();
  #lastMonotonic = performance.now();
  #suspended = 0;
  #responses: Promise<string> | undefined;

  /**
   * Creates a client; call {@linkcode MqttClient.start} (or use `connect()`, which does both).
   *
   * @param options The options.
   */
  constructor(options: ClientOptions) {
    this.#options = options;
    this.#transportFactory = options.transport;
    this.#username = options.username;
    this.#password = options.password === undefined ? undefined : toBytes(options.password);
    this.#machine = new ClientMachine({
      clientId: options.clientId ?? randomClientId(),
      protocolVersion: options.protocolVersion,
      keepAlive: options.keepAlive,
      connectTimeoutMs: options.connectTimeoutMs,
      manualAck: true,
      onPacket: options.onPacket,
    });
    // `closed` never rejects.
    this.#closedDeferred.promise.catch(() => {});
  }

  /** Resolves when the client is closed for good (by `close()`, or when reconnecting gave up); never rejects. */
  get closed(): Promise<void> {
    return this.#closedDeferred.promise;
  }

  /** The client identifier (as assigned by the server when it chose one). */
  get clientId(): string {
    return this.#machine.clientId;
  }

  /** Whether a connection is up. */
  get connected(): boolean {
    return this.#machine.state === "connected";
  }

  /**
   * Opens the first connection.
   *
   * @returns Resolves on CONNACK success.
   * @throws {MqttError} The broker's refusal, or a transport error.
   */
  async start(): Promise<void> {
    const store = this.#options.sessionStore;
    if (store !== undefined && this.#options.cleanStart === false) {
      const state = await store.get(this.#machine.clientId);
      if (state !== undefined) this.#machine.restoreSession(state);
    }
    const connected = deferred<void>();
    this.#connected = connected;
    const stop = onAbort(this.#options.signal, (reason) => {
      this.#attemptAbort?.abort(reason);
      connected.reject(reason);
    });
    this.#open();
    try {
      await connected.promise;
    } catch (error) {
      this.#shutdown(error instanceof MqttError ? error : undefined);
      throw error;
    } finally {
      stop();
    }
  }

  // ------------------------------------------------------------------ API

  /**
   * Publishes a message.
   *
   * @param topic The topic name.
   * @param payload Bytes, or text sent as UTF-8.
   * @param options QoS, retain, MQTT 5 properties and an abort signal.
   * @returns Resolves when written (QoS 0), on PUBACK (QoS 1) or on PUBCOMP (QoS 2).
   * @throws {MqttError} The broker's negative acknowledgement, or a local refusal (invalid topic, too large).
   */
  publish(topic: string, payload: string | Uint8Array, options: PublishOptions = {}): Promise<void> {
    if (this.#closing) {
      return Promise.reject(
        new MqttError(ReasonCode.UnspecifiedError, "Cannot publish: the client is closed"),
      );
    }
    const bytes = toBytes(payload);
    const waiter = deferred<void>();
    const stop = onAbort(options.signal, waiter.reject);
    waiter.promise.then(stop, stop);
    if (this.#machine.state !== "connected") {
      this.#queueOffline({ topic, payload: bytes, options, queuedAt: this.#now(), waiter });
      return waiter.promise;
    }
    this.#publishNow(topic, bytes, options, waiter);
    return waiter.promise;
  }

  /**
   * Subscribes to one or more filters.
   *
   * @param filters A topic filter or several.
   * @param options QoS and MQTT 5 subscription options, and an abort signal.
   * @returns The subscription, once the broker acknowledged it.
   * @throws {MqttError} When the broker refuses every filter, or locally for an invalid filter.
   */
  async subscribe(
    filters: string | readonly string[],
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    const list = typeof filters === "string" ? [filters] : [...filters];
    await this.#whenConnected(options.signal);
    const { packetId, subscription: number } = this.#machine.subscribe(
      this.#now(),
      list.map((topicFilter) => ({
        topicFilter,
        qos: options.qos,
        noLocal: options.noLocal,
        retainAsPublished: options.retainAsPublished,
        retainHandling: options.retainHandling,
      })),
      options.userProperties === undefined ? undefined : { userProperties: options.userProperties },
    );
    const subscription = new Subscription(this, list, [], this.#options.subscriptionBufferLimit ?? 1000);
    this.#subscriptions.set(number, subscription);
    this.#byObject.set(subscription, number);
    this.#flush();
    const waiter = deferred<ReasonCode[]>();
    this.#control.set(packetId, waiter);
    const stop = onAbort(options.signal, waiter.reject);
    try {
      const reasonCodes = await waiter.promise;
      (subscription as { reasonCodes: readonly ReasonCode[] }).reasonCodes = reasonCodes;
      if (reasonCodes.length > 0 && reasonCodes.every((code) => code >= 0x80)) {
        this.#forget(subscription);
        throw new MqttError(reasonCodes[0], `Cannot subscribe to ${list.join(", ")}: refused by the broker`, {
          source: "peer",
        });
      }
      return subscription;
    } catch (error) {
      if (!subscription.ended) await this.unsubscribe(subscription).catch(() => {});
      throw error;
    } finally {
      stop();
    }
  }

  /**
   * Ends a subscription, or unsubscribes filters. Given a {@linkcode Subscription} (what its own
   * `unsubscribe()` calls), only filters no other subscription uses leave the wire. Given filters, they leave
   * the wire whatever subscription uses them; a subscription left with no filter ends.
   *
   * @param target A subscription, or one or more topic filters.
   * @param options An abort signal for the wait on UNSUBACK.
   * @returns Resolves on UNSUBACK, or at once when nothing had to be sent.
   * @throws {MqttError} When the client closes first.
   */
  async unsubscribe(
    target: Subscription | string | readonly string[],
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    let packetId: number | undefined;
    if (target instanceof Subscription) {
      const number = this.#byObject.get(target);
      if (number === undefined) return;
      this.#forget(target);
      target.end();
      packetId = this.#machine.unsubscribe(this.#now(), number);
    } else {
      const result = this.#machine.unsubscribeFilters(
        this.#now(),
        typeof target === "string" ? [target] : target,
      );
      for (const number of result.emptied) {
        const subscription = this.#subscriptions.get(number);
        if (subscription === undefined) continue;
        this.#forget(subscription);
        subscription.end();
      }
      packetId = result.packetId;
    }
    this.#flush();
    if (packetId === undefined || this.#closing) return;
    const waiter = deferred<ReasonCode[]>();
    this.#control.set(packetId, waiter);
    const stop = onAbort(options.signal, waiter.reject);
    try {
      await waiter.promise;
    } finally {
      stop();
    }
  }

  /**
   * Closes the client: sends DISCONNECT, closes the transport, ends every subscription and settles every
   * pending promise with an error.
   *
   * @param options MQTT 5 reason code for the DISCONNECT (0x04 asks the broker to publish the will).
   * @returns Resolves once closed.
   */
  async close(options: { reasonCode?: ReasonCode } = {}): Promise<void> {
    if (this.#closing) return this.closed;
    if (this.#machine.state === "connected") {
      this.#machine.disconnect(this.#now(), options.reasonCode ?? ReasonCode.NormalDisconnection);
      this.#flushNow();
      await this.#writing.catch(() => {});
    }
    this.#shutdown(undefined);
    return this.closed;
  }

  /** Closes the client, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * MQTT 5 request/response: publishes with a response topic and correlation data, and resolves with the
   * first response carrying that correlation data. The client subscribes once to its own response topic
   * (`{responseTopicPrefix}/{clientId}/responses`) and reuses it for every request.
   *
   * @param topic Where to send the request.
   * @param payload The request.
   * @param options QoS (default 1), a timeout in milliseconds (default 30,000), properties and a signal.
   * @returns The response message.
   * @throws {MqttError} Below MQTT 5, or when the request cannot be published.
   * @throws {DOMException} A `TimeoutError` when no response comes in time.
   */
  async request(
    topic: string,
    payload: string | Uint8Array,
    options: PublishOptions & { timeoutMs?: number } = {},
  ): Promise<Message> {
    if ((this.#options.protocolVersion ?? 5) !== 5) {
      throw new MqttError(ReasonCode.ProtocolError, "Cannot make a request: response topics need MQTT 5");
    }
    const responseTopic = await this.#responseTopic(options.signal);
    const correlation = crypto.getRandomValues(new Uint8Array(16));
    const key = hex(correlation);
    const response = deferred<Message>();
    this.#requests.set(key, response);
    const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
    const stop = onAbort(signal, response.reject);
    try {
      await this.publish(topic, payload, {
        qos: options.qos ?? 1,
        retain: options.retain,
        signal,
        properties: { ...options.properties, responseTopic, correlationData: correlation },
      });
      return await response.promise;
    } finally {
      stop();
      this.#requests.delete(key);
    }
  }

  async #responseTopic(signal?: AbortSignal): Promise<string> {
    if (this.#responses === undefined) {
      const topic = `${this.#options.responseTopicPrefix ?? "mqttx"}/${this.clientId}/responses`;
      this.#responses = this.subscribe(topic, { qos: 1, signal }).then((subscription) => {
        (async () => {
          for await (const message of subscription) {
            const data = message.properties.correlationData;
            if (data !== undefined) this.#requests.get(hex(data))?.resolve(message);
          }
        })();
        return topic;
      });
      this.#responses.catch(() => this.#responses = undefined);
    }
    return await this.#responses;
  }

  // ------------------------------------------------------------------ connection

  /**
   * Milliseconds on a monotonic clock that also counts time the process spent suspended: the monotonic clock
   * stops during a suspension on some systems, so a jump of the wall clock that the monotonic clock did not
   * see is added on.
   */
  #now(): number {
    const monotonic = performance.now();
    const wall = Date.now();
    const skipped = (wall - this.#lastWall) - (monotonic - this.#lastMonotonic);
    if (skipped > SUSPENSION_THRESHOLD_MS) this.#suspended += skipped;
    this.#lastWall = wall;
    this.#lastMonotonic = monotonic;
    return monotonic + this.#suspended;
  }

  #open(): void {
    const attempt = this.#attempt;
    const abort = new AbortController();
    this.#attemptAbort = abort;
    (async () => {
      if (attempt > 0 && this.#options.beforeConnect !== undefined) {
        const before = [this.#username, this.#password, this.#transportFactory] as const;
        const overrides = await this.#options.beforeConnect(attempt);
        if (overrides) {
          if (overrides.username !== undefined) this.#username = overrides.username;
          if (overrides.password !== undefined) this.#password = toBytes(overrides.password);
          if (overrides.transport !== undefined) this.#transportFactory = overrides.transport;
        }
        const refusal = this.#refusal;
        this.#refusal = undefined;
        const unchanged = before[0] === this.#username && sameBytes(before[1], this.#password) &&
          before[2] === this.#transportFactory;
        if (refusal !== undefined && unchanged) {
          // Refused for credentials, and the hook gave the same ones again: retrying would be refused again.
          this.#options.onStateChange?.({ type: "disconnected", error: refusal });
          this.#shutdown(refusal);
          return;
        }
      }
      const transport = await this.#transportFactory(abort.signal);
      if (this.#closing || abort.signal.aborted) {
        await transport.close();
        return;
      }
      this.#attach(transport);
    })().catch((error) => {
      const mqttError = error instanceof MqttError ? error : new MqttError(
        ReasonCode.UnspecifiedError,
        `Cannot connect: ${(error as Error)?.message ?? error}`,
        {
          source: "transport",
          cause: error,
        },
      );
      this.#lost(mqttError);
    });
  }

  #attach(transport: Transport): void {
    this.#transport = transport;
    this.#writer = transport.writable.getWriter();
    this.#writing = Promise.resolve();
    const options = this.#options;
    const connect: MachineConnectOptions = { cleanStart: options.cleanStart ?? true };
    if (this.#username !== undefined) connect.username = this.#username;
    if (this.#password !== undefined) connect.password = this.#password;
    if (options.will !== undefined) {
      connect.will = {
        topic: options.will.topic,
        payload: toBytes(options.will.payload),
        qos: options.will.qos ?? 0,
        retain: options.will.retain ?? false,
      };
      if (options.will.properties !== undefined) connect.will.properties = options.will.properties;
    }
    if ((options.protocolVersion ?? 5) === 5) {
      const properties: ConnectProperties = { ...options.properties };
      if (options.sessionExpiryInterval !== undefined) {
        properties.sessionExpiryInterval = options.sessionExpiryInterval;
      }
      properties.receiveMaximum ??= 100;
      connect.properties = properties;
    }
    this.#machine.connect(this.#now(), connect);
    this.#flushNow();
    this.#readLoop(transport);
  }

  async #readLoop(transport: Transport): Promise<void> {
    const reader = transport.readable.getReader();
    let cause: unknown;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (this.#transport !== transport) return;
        this.#machine.handleBytes(this.#now(), value);
        this.#flushNow();
        // A consumer that falls behind slows the reading down (and the broker with it) instead of losing
        // QoS 0 messages; the pause is bounded so that a stuck consumer cannot stall keep-alive.
        await this.#roomInSubscriptions();
      }
    } catch (error) {
      cause = error;
    } finally {
      reader.releaseLock();
    }
    if (this.#transport !== transport) return;
    this.#machine.handleClose(this.#now(), cause);
    this.#flushNow();
  }

  /** Schedules one flush for this turn of the event loop, so commands coalesce into one write. */
  #flush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flushNow();
    });
  }

  #flushNow(): void {
    this.#acksWaiting = 0;
    this.#saveSession();
    let last: Promise<void> | undefined;
    for (
      let bytes = this.#machine.pollTransmit();
      bytes !== undefined;
      bytes = this.#machine.pollTransmit()
    ) {
      const writer = this.#writer;
      if (writer === undefined) continue;
      // The stream keeps writes in order: hand each over at once instead of after the previous one settled.
      last = writer.write(bytes);
      this.#writing = last.catch((error) => {
        if (this.#writer === writer) {
          this.#machine.handleClose(this.#now(), error);
          this.#flushNow();
        }
      });
    }
    const waiters = this.#awaitingWrite;
    if (waiters.length > 0) {
      this.#awaitingWrite = [];
      const lost = (cause?: unknown) =>
        new MqttError(ReasonCode.UnspecifiedError, "Cannot publish: the connection was lost", {
          source: "transport",
          cause,
        });
      // No write means the connection went down before the turn ended and its bytes were dropped.
      if (last === undefined) { for (const waiter of waiters) waiter.reject(lost()); }
      else {
        last.then(() => this.#settleWritten(waiters), (error) => {
          const failure = lost(error);
          for (const waiter of waiters) waiter.reject(failure);
        });
      }
    }
    for (let event = this.#machine.pollEvent(); event !== undefined; event = this.#machine.pollEvent()) {
      this.#dispatch(event);
    }
    this.#schedule();
  }

  /**
   * Settles QoS 0 publishes whose write is done. A socket takes a write at once while it has room, so a loop
   * that awaits each QoS 0 publish (`for (;;) await client.publish(…)`) could run on microtasks alone and
   * starve timers and reads. Every few milliseconds this checks whether a timer ran since the last check (a
   * probe timer it scheduled then); when none did, the publishes settle on the next turn of the event loop
   * instead of at once, which lets the loop turn. When the loop turns anyway (writes that settle later, as on
   * Deno), nothing is deferred.
   */
  #settleWritten(waiters: readonly Waiter<void>[]): void {
    const now = this.#now();
    if (now - this.#lastYieldCheck >= YIELD_EVERY_MS) {
      this.#lastYieldCheck = now;
      if (!this.#loopTurned) {
        nextTurn(() => {
          for (const waiter of waiters) waiter.resolve();
        });
        return;
      }
      this.#loopTurned = false;
      setTimeout(() => this.#loopTurned = true, 0);
    }
    for (const waiter of waiters) waiter.resolve();
  }

  /** Saves the session state to the store after anything that may have changed it, once per turn. */
  #saveSession(): void {
    const store = this.#options.sessionStore;
    if (store === undefined || this.#saveQueued) return;
    this.#saveQueued = true;
    queueMicrotask(() => {
      this.#saveQueued = false;
      this.#saving = this.#saving.then(() => store.set(this.#machine.clientId, this.#machine.exportSession()))
        .catch(() => {});
    });
  }

  #schedule(): void {
    const at = this.#machine.pollTimeout();
    if (at === undefined) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    // Wake at least every few seconds: after a suspension (a sleeping laptop) the clock jumps forward and the
    // overdue keep-alive runs at once instead of waiting for a timer that does not count the time asleep.
    const now = this.#now();
    const wakeAt = now + Math.min(Math.max(0, at - now), WAKE_INTERVAL_MS);
    // A timer due no later than needed stays: waking early is harmless (the machine ignores an early
    // timeout and the timer is set again), and traffic moves the keep-alive deadline on every packet, so
    // replacing the timer each time would cost a clearTimeout and a setTimeout per message.
    if (this.#timer !== undefined && this.#timerAt <= wakeAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = wakeAt;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#machine.handleTimeout(this.#now());
      this.#flushNow();
    }, wakeAt - now);
  }

  #dispatch(event: ClientEvent): void {
    switch (event.type) {
      case "connected":
        this.#attempt = 0;
        this.#options.onStateChange?.({
          type: "connected",
          sessionPresent: event.sessionPresent,
          connack: event.connack,
        });
        this.#connected?.resolve();
        this.#connected = undefined;
        this.#drainOutbox();
        return;
      case "message":
        return this.#deliver(event.packet, event.subscriptions);
      case "published": {
        const waiter = this.#publishes.get(event.packetId);
        this.#publishes.delete(event.packetId);
        if (event.error !== undefined) waiter?.reject(event.error);
        else waiter?.resolve();
        return;
      }
      case "subscribed":
      case "unsubscribed": {
        const waiter = this.#control.get(event.packetId);
        this.#control.delete(event.packetId);
        waiter?.resolve(event.reasonCodes);
        return;
      }
      case "auth":
        return this.#onAuth(event.packet);
      case "closed":
        return this.#onClosed(event.error);
      default: {
        const unreachable: never = event;
        throw new Error(`Unhandled event ${(unreachable as ClientEvent).type}`);
      }
    }
  }

  /** A step of MQTT 5 enhanced authentication from the server: the hook answers it. */
  #onAuth(packet: AuthPacket): void {
    const hook = this.#options.authenticate;
    if (packet.reasonCode !== ReasonCode.ContinueAuthentication) return; // 0x00: re-authentication succeeded
    if (hook === undefined) {
      this.#machine.disconnect(this.#now(), ReasonCode.BadAuthenticationMethod);
      this.#flushNow();
      return;
    }
    Promise.resolve(hook(packet)).then((properties) => {
      if (this.#machine.state !== "connecting" && this.#machine.state !== "connected") return;
      this.#machine.auth(this.#now(), ReasonCode.ContinueAuthentication, properties);
      this.#flushNow();
    }, () => {
      this.#machine.disconnect(this.#now(), ReasonCode.NotAuthorized);
      this.#flushNow();
    });
  }

  /**
   * MQTT 5 re-authentication: sends AUTH with reason 0x19 and the method's data; the server's challenges go to
   * the `authenticate` hook.
   *
   * @param properties The authentication method (the one used on CONNECT) and its data.
   * @throws {MqttError} When not connected or below MQTT 5.
   */
  reauthenticate(properties: AuthProperties): void {
    this.#machine.auth(this.#now(), ReasonCode.ReAuthenticate, properties);
    this.#flush();
  }

  #deliver(packet: PublishPacket, numbers: readonly number[]): void {
    const packetId = packet.packetId;
    const targets = numbers.map((n) => this.#subscriptions.get(n)).filter((s) => s !== undefined);
    let waiting = targets.length;
    const acknowledge = () => {
      if (packetId === undefined) return;
      this.#machine.acknowledge(this.#now(), packetId);
      this.#flushAcknowledgements();
    };
    if (waiting === 0) {
      acknowledge();
      return;
    }
    const message = new Message(packet);
    for (const subscription of targets) {
      subscription.push(message, () => {
        if (--waiting === 0) acknowledge();
      });
    }
  }

  /**
   * Sends the acknowledgements of taken messages in batches: a consumer takes one message per microtask, so a
   * flush per acknowledgement would make one write per PUBACK. They leave with the next flush, after
   * {@linkcode ACK_BATCH} of them, or on the next turn of the event loop, whichever comes first.
   */
  #flushAcknowledgements(): void {
    if (++this.#acksWaiting >= ACK_BATCH) {
      this.#flush();
      return;
    }
    this.#ackTimer ??= setTimeout(() => {
      this.#ackTimer = undefined;
      if (this.#acksWaiting > 0) this.#flushNow();
    }, 0);
  }

  /** Resumes a read loop paused for a full subscription once it has room, or after `MAX_READ_PAUSE_MS`. */
  async #roomInSubscriptions(): Promise<void> {
    for (const subscription of this.#subscriptions.values()) {
      if (!subscription.full) continue;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const roomy = await Promise.race([
        subscription.room().then(() => true),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), MAX_READ_PAUSE_MS)),
      ]);
      clearTimeout(timer);
      // A consumer that made no room for that long loses its oldest QoS 0 messages rather than stall reading.
      if (!roomy) { for (const s of this.#subscriptions.values()) s.shed(); }
      return;
    }
  }

  #onClosed(error: MqttError | undefined): void {
    const transport = this.#transport;
    this.#transport = undefined;
    this.#writer = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const writing = this.#writing;
    if (transport !== undefined) void writing.finally(() => transport.close()).catch(() => {});
    if (this.#closing) return;
    if (error === undefined) {
      this.#shutdown(undefined);
      return;
    }
    this.#lost(error);
  }

  /** A connection attempt failed or an established connection dropped: reconnect or give up. */
  #lost(error: MqttError): void {
    if (this.#closing) return;
    const reconnect = this.#options.reconnect ?? true;
    const settings: ReconnectOptions = typeof reconnect === "object" ? reconnect : {};
    const first = this.#connected !== undefined && this.#attempt === 0;
    const refused = FATAL_REFUSALS.has(error.reasonCode) && error.source === "peer";
    // With a beforeConnect hook the next attempt may bring new credentials; #open() gives up if it does not.
    const fatal = refused && this.#options.beforeConnect === undefined;
    this.#refusal = refused ? error : undefined;
    this.#options.onStateChange?.({ type: "disconnected", error });
    if (
      first || reconnect === false || fatal ||
      (settings.maxAttempts !== undefined && this.#attempt >= settings.maxAttempts)
    ) {
      this.#connected?.reject(error);
      this.#connected = undefined;
      this.#shutdown(error);
      return;
    }
    this.#attempt++;
    const cap = Math.min(
      settings.maxDelayMs ?? 30_000,
      (settings.initialDelayMs ?? 1000) * 2 ** (this.#attempt - 1),
    );
    const delayMs = Math.random() * cap; // full jitter
    this.#options.onStateChange?.({ type: "reconnecting", attempt: this.#attempt, delayMs, error });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (!this.#closing) this.#open();
    }, delayMs);
  }

  /** Closes for good: every pending promise settles, every subscription ends. */
  #shutdown(error: MqttError | undefined): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#attemptAbort?.abort();
    const reason = error ??
      new MqttError(ReasonCode.UnspecifiedError, "Cannot finish: the client was closed");
    for (const waiter of this.#publishes.values()) waiter.reject(reason);
    this.#publishes.clear();
    for (const waiter of this.#control.values()) waiter.reject(reason);
    this.#control.clear();
    for (const entry of this.#outbox) {
      entry.unlisten?.();
      entry.waiter.reject(reason);
    }
    this.#outbox = [];
    for (const subscription of this.#subscriptions.values()) subscription.end(error);
    this.#subscriptions.clear();
    this.#byObject.clear();
    this.#connected?.reject(reason);
    this.#connected = undefined;
    const transport = this.#transport;
    this.#transport = undefined;
    this.#writer = undefined;
    if (transport !== undefined) {
      void this.#writing.finally(() => transport.close()).catch(() => {});
    }
    if (error === undefined) this.#options.onStateChange?.({ type: "disconnected" });
    this.#closedDeferred.resolve();
  }

  #forget(subscription: Subscription): void {
    const number = this.#byObject.get(subscription);
    if (number === undefined) return;
    this.#byObject.delete(subscription);
    this.#subscriptions.delete(number);
  }

  async #whenConnected(signal?: AbortSignal): Promise<void> {
    if (this.#closing) {
      throw new MqttError(ReasonCode.UnspecifiedError, "Cannot continue: the client is closed");
    }
    if (this.#machine.state === "connected") return;
    this.#connected ??= deferred<void>();
    const pending = this.#connected.promise;
    let stop = () => {};
    await Promise.race([pending, new Promise<never>((_, reject) => stop = onAbort(signal, reject))]).finally(
      () => stop(),
    );
  }

  #publishNow(topic: string, payload: Uint8Array, options: PublishOptions, waiter: Waiter<void>): void {
    let packetId: number | undefined;
    try {
      packetId = this.#machine.publish(this.#now(), {
        topic,
        payload,
        qos: options.qos,
        retain: options.retain,
        properties: options.properties,
      });
    } catch (error) {
      waiter.reject(error);
      return;
    }
    if (packetId === undefined) {
      // Settled by the flush of this turn, once the write that carries it (with every other packet of the
      // turn) is done.
      this.#awaitingWrite.push(waiter);
      this.#flush();
    } else {
      this.#publishes.set(packetId, waiter);
      this.#flush();
    }
  }

  #queueOffline(entry: OutboxEntry): void {
    const limit = this.#options.outboxLimit ?? 1000;
    if (this.#outbox.length >= limit) {
      if ((this.#options.outboxOverflow ?? "reject") === "reject") {
        entry.waiter.reject(
          new MqttError(
            ReasonCode.QuotaExceeded,
            `Cannot queue the publish: ${limit} are already waiting to be sent`,
          ),
        );
        return;
      }
      const dropped = this.#outbox.shift();
      dropped?.unlisten?.();
      dropped?.waiter.reject(
        new MqttError(ReasonCode.QuotaExceeded, "Publish dropped: the offline outbox overflowed"),
      );
    }
    this.#outbox.push(entry);
    const signal = entry.options.signal;
    if (signal !== undefined) {
      const leave = () => {
        const index = this.#outbox.indexOf(entry);
        if (index !== -1) this.#outbox.splice(index, 1);
      };
      signal.addEventListener("abort", leave, { once: true });
      // Once the entry leaves the outbox, a long-lived signal keeps no listener for it.
      entry.unlisten = () => signal.removeEventListener("abort", leave);
    }
  }

  #drainOutbox(): void {
    const waiting = this.#outbox;
    this.#outbox = [];
    const now = this.#now();
    for (const entry of waiting) {
      entry.unlisten?.();
      if (entry.options.signal?.aborted) continue;
      const expiry = entry.options.properties?.messageExpiryInterval;
      let options = entry.options;
      if (expiry !== undefined) {
        // The expiry counts from the publish call: spend the time waited in the outbox.
        const left = expiry - Math.floor((now - entry.queuedAt) / 1000);
        if (left <= 0) {
          entry.waiter.reject(
            new MqttError(ReasonCode.UnspecifiedError, "Publish expired while waiting to be sent"),
          );
          continue;
        }
        options = { ...options, properties: { ...options.properties, messageExpiryInterval: left } };
      }
      this.#publishNow(entry.topic, entry.payload, options, entry.waiter);
    }
  }
}
