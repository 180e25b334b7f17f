/**
 * The async MQTT client: a {@linkcode ClientMachine} driven over a `Transport`, with timers, promises,
 * subscriptions as async iterables and automatic reconnection. This file holds the public API and what ties the
 * parts together (the flush, the machine's events, losing a connection, shutting down); it does no I/O itself:
 * `_connection.ts` opens and reads, `_write_path.ts` writes, and options, reconnection, the offline queue,
 * requests and session stores have files of their own beside it.
 *
 * @module
 */

import type { AuthPacket, AuthProperties } from "../codec/packet.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import { type ClientEvent, ClientMachine } from "../machine/client_machine.ts";
import { toBytes } from "./_bytes.ts";
import { Clock, MachineTimer } from "./_clock.ts";
import { Connection } from "./_connection.ts";
import { CLAIM_WINDOW_MS, SubscriptionTable } from "./_subscription_table.ts";
import { deferred, onAbort, type Waiter } from "./_waiter.ts";
import { WritePath } from "./_write_path.ts";
import {
  type ClientOptions,
  type PublishOptions,
  randomClientId,
  type SubscribeOptions,
} from "./client_options.ts";
import type { Message } from "./message.ts";
import { OfflineQueue } from "./offline_queue.ts";
import { Reconnect } from "./reconnect.ts";
import { Requests } from "./request.ts";
import { SessionSaver } from "./session_store.ts";
import { Subscription, type SubscriptionOwner } from "./subscription.ts";

// The options and the session store lived here before they had files of their own; their old import path stays.
export type {
  ClientOptions,
  ConnectionEvent,
  ConnectOverrides,
  PublishOptions,
  ReconnectOptions,
  SubscribeOptions,
  WillOptions,
} from "./client_options.ts";
export { MemorySessionStore, type SessionStore } from "./session_store.ts";

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
  readonly #clock = new Clock();
  readonly #timer: MachineTimer;
  readonly #write: WritePath;
  readonly #reconnect: Reconnect;
  readonly #outbox: OfflineQueue;
  readonly #requests: Requests;
  readonly #saver: SessionSaver;
  readonly #subscriptions: SubscriptionTable;
  readonly #connection: Connection;
  #closing = false;
  #everConnected = false;
  #closedDeferred = deferred<void>();
  #connected: (Waiter<void> & { promise: Promise<void> }) | undefined;
  readonly #publishes = new Map<number, Waiter<void>>();
  readonly #control = new Map<number, Waiter<ReasonCode[]>>();

  /**
   * Creates a client; call {@linkcode MqttClient.start} (or use `connect()`, which does both).
   *
   * @param options The options.
   */
  constructor(options: ClientOptions) {
    this.#options = options;
    this.#reconnect = new Reconnect(options);
    this.#machine = new ClientMachine({
      clientId: options.clientId ?? randomClientId(),
      protocolVersion: options.protocolVersion,
      keepAlive: options.keepAlive,
      connectTimeoutMs: options.connectTimeoutMs,
      manualAck: true,
      onPacket: options.onPacket,
    });
    const flushNow = () => this.#flushNow();
    this.#timer = new MachineTimer(this.#machine, this.#clock, flushNow);
    this.#write = new WritePath(this.#machine, this.#clock, flushNow);
    this.#outbox = new OfflineQueue(options);
    this.#requests = new Requests(this, options);
    this.#saver = new SessionSaver(options, this.#machine);
    this.#subscriptions = new SubscriptionTable((packetId) => {
      this.#machine.acknowledge(this.#clock.now(), packetId);
      this.#write.acknowledged();
    });
    this.#connection = new Connection({
      options,
      machine: this.#machine,
      clock: this.#clock,
      write: this.#write,
      reconnect: this.#reconnect,
      subscriptions: this.#subscriptions,
    }, {
      isClosing: () => this.#closing,
      flushNow,
      lost: (error) => this.#lost(error),
      refused: (error) => {
        this.#options.onStateChange?.({ type: "disconnected", error });
        this.#shutdown(error);
      },
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

  /**
   * Messages of a resumed session that no subscription claimed within `unclaimedHoldMs` of connecting:
   * acknowledged without being handed out.
   */
  get releasedUnclaimed(): number {
    return this.#subscriptions.released;
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
      this.#connection.abort(reason);
      connected.reject(reason);
    });
    this.#connection.open();
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
      this.#outbox.add({ topic, payload: bytes, options, queuedAt: this.#clock.now(), waiter });
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
      this.#clock.now(),
      list.map((topicFilter) => ({
        topicFilter,
        qos: options.qos,
        noLocal: options.noLocal,
        retainAsPublished: options.retainAsPublished,
        retainHandling: options.retainHandling,
      })),
      options.userProperties === undefined ? undefined : { userProperties: options.userProperties },
    );
    const subscription = new Subscription(
      this,
      list,
      [],
      this.#options.subscriptionBufferLimit ?? 1000,
      options.manualAck === true,
    );
    this.#subscriptions.add(number, subscription, true);
    this.#subscriptions.claim((packet) => this.#machine.route(packet));
    this.#write.flush();
    const waiter = deferred<ReasonCode[]>();
    this.#control.set(packetId, waiter);
    const stop = onAbort(options.signal, waiter.reject);
    try {
      const reasonCodes = await waiter.promise;
      (subscription as { reasonCodes: readonly ReasonCode[] }).reasonCodes = reasonCodes;
      if (reasonCodes.length > 0 && reasonCodes.every((code) => code >= 0x80)) {
        this.#subscriptions.forget(subscription);
        throw new MqttError(reasonCodes[0], `Cannot subscribe to ${list.join(", ")}: refused by the broker`, {
          source: "peer",
        });
      }
      return subscription;
    } catch (error) {
      if (!subscription.ended) await this.unsubscribe(subscription).catch(() => {});
      throw error;
    } finally {
      this.#subscriptions.acknowledged(subscription);
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
      const number = this.#subscriptions.numberOf(target);
      if (number === undefined) return;
      this.#subscriptions.forget(target);
      target.end();
      packetId = this.#machine.unsubscribe(this.#clock.now(), number);
    } else {
      const result = this.#machine.unsubscribeFilters(
        this.#clock.now(),
        typeof target === "string" ? [target] : target,
      );
      for (const number of result.emptied) {
        const subscription = this.#subscriptions.get(number);
        if (subscription === undefined) continue;
        this.#subscriptions.forget(subscription);
        subscription.end();
      }
      packetId = result.packetId;
    }
    this.#write.flush();
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
      this.#machine.disconnect(this.#clock.now(), options.reasonCode ?? ReasonCode.NormalDisconnection);
      this.#flushNow();
      await this.#write.writing.catch(() => {});
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
  request(
    topic: string,
    payload: string | Uint8Array,
    options: PublishOptions & { timeoutMs?: number } = {},
  ): Promise<Message> {
    return this.#requests.request(topic, payload, options);
  }

  // ------------------------------------------------------------------ connection lifecycle

  /** Sends what the machine has ready, handles its events and sets the timer for its next deadline. */
  #flushNow(): void {
    this.#saver.save();
    this.#write.transmit();
    for (let event = this.#machine.pollEvent(); event !== undefined; event = this.#machine.pollEvent()) {
      this.#dispatch(event);
    }
    this.#timer.schedule();
  }

  #dispatch(event: ClientEvent): void {
    switch (event.type) {
      case "connected":
        if (event.sessionPresent && !this.#everConnected && this.#options.unclaimedHoldMs !== 0) {
          // A new client on a session the broker kept: hold what comes before the application subscribes.
          this.#subscriptions.holdUnclaimed(
            this.#options.unclaimedHoldMs ?? CLAIM_WINDOW_MS,
            this.#options.subscriptionBufferLimit ?? 1000,
          );
        }
        this.#everConnected = true;
        this.#reconnect.attempt = 0;
        this.#options.onStateChange?.({
          type: "connected",
          sessionPresent: event.sessionPresent,
          connack: event.connack,
        });
        this.#connected?.resolve();
        this.#connected = undefined;
        this.#outbox.drain(
          this.#clock.now(),
          (entry, options) => this.#publishNow(entry.topic, entry.payload, options, entry.waiter),
        );
        return;
      case "message":
        return this.#subscriptions.deliver(event.packet, event.subscriptions);
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
      this.#machine.disconnect(this.#clock.now(), ReasonCode.BadAuthenticationMethod);
      this.#flushNow();
      return;
    }
    Promise.resolve(hook(packet)).then((properties) => {
      if (this.#machine.state !== "connecting" && this.#machine.state !== "connected") return;
      this.#machine.auth(this.#clock.now(), ReasonCode.ContinueAuthentication, properties);
      this.#flushNow();
    }, () => {
      this.#machine.disconnect(this.#clock.now(), ReasonCode.NotAuthorized);
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
    this.#machine.auth(this.#clock.now(), ReasonCode.ReAuthenticate, properties);
    this.#write.flush();
  }

  #onClosed(error: MqttError | undefined): void {
    this.#connection.drop();
    this.#timer.cancel();
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
    const first = this.#connected !== undefined && this.#reconnect.attempt === 0;
    const giveUp = this.#reconnect.giveUp(error, first);
    this.#options.onStateChange?.({ type: "disconnected", error });
    if (giveUp) {
      this.#connected?.reject(error);
      this.#connected = undefined;
      this.#shutdown(error);
      return;
    }
    const delayMs = this.#reconnect.next();
    this.#options.onStateChange?.({ type: "reconnecting", attempt: this.#reconnect.attempt, delayMs, error });
    this.#reconnect.schedule(delayMs, () => {
      if (!this.#closing) this.#connection.open();
    });
  }

  /** Closes for good: every pending promise settles, every subscription ends. */
  #shutdown(error: MqttError | undefined): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#reconnect.cancel();
    this.#timer.stop();
    this.#write.stop();
    this.#connection.abort();
    const reason = error ??
      new MqttError(ReasonCode.UnspecifiedError, "Cannot finish: the client was closed");
    for (const waiter of this.#publishes.values()) waiter.reject(reason);
    this.#publishes.clear();
    for (const waiter of this.#control.values()) waiter.reject(reason);
    this.#control.clear();
    this.#outbox.rejectAll(reason);
    this.#subscriptions.endAll(error);
    this.#connected?.reject(reason);
    this.#connected = undefined;
    this.#connection.drop();
    if (error === undefined) this.#options.onStateChange?.({ type: "disconnected" });
    this.#closedDeferred.resolve();
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
      packetId = this.#machine.publish(this.#clock.now(), {
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
      this.#write.settleOnWrite(waiter);
      this.#write.flush();
    } else {
      this.#publishes.set(packetId, waiter);
      this.#write.flush();
    }
  }
}
