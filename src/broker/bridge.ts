/**
 * A bridge to another broker, built of two of our own clients: one on this broker (over an in-process
 * connection the broker trusts) and one on the remote. Messages matching an `out` topic go from the first to
 * the second, `in` ones back, renamed by the topic's prefixes.
 *
 * Nothing is lost on the way: each message is acknowledged to the side it came from only once the other side
 * acknowledged it (manual acknowledgements, QoS 1 and 2), and both sessions outlive their connections, so a
 * message taken when a connection drops comes again. Nothing loops: the bridge's subscriptions on both sides
 * take none of its own messages back (MQTT 5's No Local; with a 3.1.1 remote, the bridge bit of the CONNECT,
 * else the bridge drops the one echo it expects of each message it sent).
 *
 * @module
 */

import type { QoS } from "../codec/packet.ts";
import { connect, type ConnectOptions } from "../client/connect.ts";
import type { Message } from "../client/message.ts";
import type { MqttClient } from "../client/mqtt_client.ts";
import type { Subscription } from "../client/subscription.ts";
import { MqttError, ReasonCode } from "../errors.ts";
import type { Transport } from "../transport/transport.ts";
import type { LogFields, LogLevel } from "./broker_options.ts";
import type { BridgeOptions, BridgeTopic } from "./bridge_options.ts";
import { Echoes, forwarded, rename, sleep, Window } from "./_bridge_parts.ts";

/** What a bridge needs of its broker. */
export interface BridgeHost {
  /** A new in-process connection into the broker, which trusts it (no credentials, no ACL). */
  localTransport(): Promise<Transport>;
  /** Publishes the broker's own message (the bridge's local notifications). */
  publish(topic: string, payload: string, options: { qos: QoS; retain: boolean }): void;
  /** Logs as the broker does. */
  log(level: LogLevel, message: string, fields?: LogFields): void;
}

/** Where a bridge's connection to its remote broker is. */
export type BridgeState = "connecting" | "connected" | "disconnected" | "stopped";

/** A bridge's figures, for `$SYS` and metrics. */
export interface BridgeStats {
  /** Messages sent to the remote broker and acknowledged by it (QoS 0: sent). */
  sent: number;
  /** Messages received from the remote broker and published here. */
  received: number;
  /** Messages one side refused (an MQTT 5 negative acknowledgement): let go, not retried. */
  dropped: number;
  /** Messages of a 3.1.1 remote without the bridge bit dropped as the echo of one the bridge sent. */
  echoes: number;
  /**
   * Times the remote broker had not kept the bridge's session (it lost its state): what was on its way then
   * was sent again, so QoS 2 messages among it may have arrived twice.
   */
  sessionsLost: number;
}

/** The default of {@linkcode BridgeOptions.maxInflight}. */
const MAX_INFLIGHT = 1000;
/** How long a stopping bridge waits for the remote to take its last state. */
const STOP_NOTICE_MS = 1000;
/** One running bridge; see the module documentation. */
export class Bridge {
  /** The bridge's name. */
  readonly name: string;
  /** Its figures. */
  readonly stats: BridgeStats = { sent: 0, received: 0, dropped: 0, echoes: 0, sessionsLost: 0 };
  readonly #options: BridgeOptions;
  readonly #host: BridgeHost;
  readonly #abort = new AbortController();
  readonly #clientId: string;
  readonly #notificationTopic: string;
  #state: BridgeState = "connecting";
  #local: MqttClient | undefined;
  #remote: MqttClient | undefined;
  /** Waiters for the next remote client, while there is none. */
  #remoteWaiters: ((client: MqttClient | undefined) => void)[] = [];
  readonly #outWindow: Window;
  readonly #inWindow: Window;
  /** Messages sent out that a 3.1.1 remote without the bridge bit will echo, by remote topic. */
  readonly #echoes = new Echoes();
  #useEcho = false;
  /** Whether a connection to the remote broker was up before: a session it kept should be there. */
  #wasConnected = false;
  #inFlightOut = 0;
  #inFlightIn = 0;
  readonly #running: Promise<void>[] = [];
  /** `lazy`: the messages waiting to go out that make the bridge connect, and who waits for them. */
  readonly #threshold: number;
  #onDemand: (() => void) | undefined;
  /** When a message last crossed, or the remote connection was made. */
  #lastActivity = 0;
  /** Messages one of the bridge's subscriptions took already. */
  readonly #carried = new WeakSet<Message>();

  /**
   * Checks the options; nothing connects until {@linkcode Bridge.start}.
   *
   * @param options The bridge.
   * @param host Its broker.
   * @throws {TypeError} When the options cannot work (no URL, no topic).
   */
  constructor(options: BridgeOptions, host: BridgeHost) {
    if (options.urls.length === 0) {
      throw new TypeError(`Cannot start bridge "${options.name}": it has no URL`);
    }
    if (options.topics.length === 0) {
      throw new TypeError(`Cannot start bridge "${options.name}": it has no topic`);
    }
    this.name = options.name;
    this.#options = options;
    this.#host = host;
    this.#clientId = options.clientId ?? `bridge-${options.name}`;
    this.#notificationTopic = options.notificationTopic ?? `$SYS/broker/connection/${this.#clientId}/state`;
    const limit = options.maxInflight ?? MAX_INFLIGHT;
    this.#threshold = Math.max(1, Math.min(options.threshold ?? 10, limit));
    this.#outWindow = new Window(limit);
    this.#inWindow = new Window(limit);
  }

  /** The client identifier of the bridge's side on this broker. */
  get localClientId(): string {
    return this.#options.localClientId ?? `local.${this.#clientId}`;
  }

  /** The user the bridge's side on this broker is, whose ACL rules it keeps; none: it is past them. */
  get localUsername(): string | undefined {
    return this.#options.localUsername;
  }

  /** Where the connection to the remote broker is. */
  get state(): BridgeState {
    return this.#state;
  }

  /** Messages on their way: taken from one side and not yet acknowledged by the other. */
  get inFlight(): { out: number; in: number } {
    return { out: this.#inFlightOut, in: this.#inFlightIn };
  }

  /**
   * Connects both sides and starts carrying messages; resolves once this broker's side is subscribed (the
   * remote side keeps trying in the background until {@linkcode Bridge.stop}).
   */
  async start(): Promise<void> {
    const options = this.#options;
    const limit = options.maxInflight ?? MAX_INFLIGHT;
    this.#notify("0");
    const local = await connect({
      transport: () => this.#host.localTransport(),
      clientId: this.localClientId,
      username: options.localUsername,
      protocolVersion: 5,
      cleanStart: false,
      sessionExpiryInterval: 0xffffffff,
      keepAlive: 0,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
      properties: { receiveMaximum: limit },
      subscriptionBufferLimit: limit,
    });
    this.#local = local;
    for (const topic of options.topics) {
      if (topic.direction === "in") continue;
      let subscription: Subscription;
      try {
        subscription = await local.subscribe(localFilter(topic), {
          qos: topic.qos,
          noLocal: true,
          retainAsPublished: true,
          // Its session outlives restarts: retained messages it already carried do not go again.
          retainHandling: 1,
          manualAck: true,
        });
      } catch (error) {
        // Refused by this broker's ACL (`localUsername`): the other topics still cross.
        if (!(error instanceof MqttError && error.source === "peer")) throw error;
        this.#host.log(
          "warn",
          `Bridge ${this.name}: "${localFilter(topic)}" refused on this broker: ${error.message}`,
        );
        continue;
      }
      this.#running.push(this.#pump(subscription, topic, "out"));
    }
    this.#running.push(this.#runRemote());
  }

  /** Stops: tells the remote the bridge is gone (notifications), disconnects both sides. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    const remote = this.#remote;
    await this.#sayGone(remote);
    this.#state = "stopped";
    this.#abort.abort();
    this.#setRemote(undefined);
    await Promise.all([remote?.close(), this.#local?.close()]);
    await Promise.allSettled(this.#running);
    this.#notify("0");
  }

  /** Tells the remote the bridge goes (its will only speaks for a connection lost), if it answers soon. */
  async #sayGone(remote: MqttClient | undefined): Promise<void> {
    const options = this.#options;
    if (remote?.connected !== true || options.notifications === false || options.notificationsLocalOnly) {
      return;
    }
    const said = remote.publish(this.#notificationTopic, "0", { qos: 1, retain: true }).catch(() => {});
    const answered = new AbortController();
    await Promise.race([said, sleep(STOP_NOTICE_MS, answered.signal)]);
    answered.abort(); // no timer left behind once the remote answered
  }

  /** `lazy`: resolves once `threshold` messages wait to go out, or the bridge stops. */
  #demanded(): Promise<void> {
    if (this.#inFlightOut >= this.#threshold || this.#abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const signal = this.#abort.signal;
      const done = () => {
        signal.removeEventListener("abort", done);
        this.#onDemand = undefined;
        resolve();
      };
      this.#onDemand = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** `lazy`: disconnects from the remote once no message crossed either way for `idleTimeout`. */
  async #closeWhenIdle(remote: MqttClient, ended: () => boolean): Promise<void> {
    const idle = (this.#options.idleTimeout ?? 60) * 1000;
    while (!ended() && !this.#abort.signal.aborted) {
      const quiet = Date.now() - this.#lastActivity;
      if (quiet >= idle && this.#inFlightOut === 0 && this.#inFlightIn === 0) {
        this.#host.log("info", `Bridge ${this.name}: idle for ${idle / 1000} s, disconnecting until needed`);
        await this.#sayGone(remote);
        await remote.close();
        return;
      }
      await sleep(Math.min(Math.max(idle - quiet, 50), 1000), this.#abort.signal);
    }
  }

  /** Connects to the remote broker, subscribes the `in` topics and carries them; again whenever it gives up. */
  async #runRemote(): Promise<void> {
    const options = this.#options;
    const base = (options.restartTimeout?.base ?? 5) * 1000;
    const cap = (options.restartTimeout?.cap ?? 30) * 1000;
    const version = options.protocolVersion ?? 4;
    let bridgeBit = version !== 5 && options.tryPrivate !== false;
    const startType = options.startType ?? "automatic";
    let delay = base;
    while (!this.#abort.signal.aborted) {
      if (startType === "lazy") {
        this.#state = "disconnected";
        await this.#demanded();
        if (this.#abort.signal.aborted) return;
      }
      this.#state = "connecting";
      let remote: MqttClient;
      try {
        remote = await connect(this.#remoteOptions(bridgeBit, base, cap));
      } catch (error) {
        if (this.#abort.signal.aborted) return;
        if (
          bridgeBit && error instanceof MqttError &&
          error.reasonCode === ReasonCode.UnsupportedProtocolVersion
        ) {
          this.#host.log(
            "info",
            `Bridge ${this.name}: the remote broker refused the bridge bit; without it now`,
          );
          bridgeBit = false;
          continue;
        }
        this.#state = "disconnected";
        this.#host.log(
          "warn",
          `Bridge ${this.name}: cannot connect to ${options.urls.join(", ")}: ${
            (error as Error).message
          }; again in ${delay / 1000} s`,
          { event: "bridge_down" },
        );
        if (startType === "once") return;
        await sleep(delay, this.#abort.signal);
        delay = Math.min(delay * 2, cap);
        continue;
      }
      delay = base;
      this.#lastActivity = Date.now();
      this.#useEcho = version !== 5 && !bridgeBit;
      this.#connected(remote);
      const pumps: Promise<void>[] = [];
      try {
        for (const topic of options.topics) {
          if (topic.direction === "out") continue;
          const subscription = await remote.subscribe(remoteFilter(topic), {
            qos: topic.qos,
            noLocal: version === 5,
            retainAsPublished: version === 5,
            manualAck: true,
          });
          pumps.push(this.#pump(subscription, topic, "in"));
        }
        this.#setRemote(remote);
      } catch (error) {
        this.#host.log(
          "warn",
          `Bridge ${this.name}: cannot subscribe on the remote broker: ${(error as Error).message}`,
        );
        await remote.close();
      }
      // Until the client gives up for good (it reconnects by itself meanwhile, unless `once`), the bridge
      // stops, or (`lazy`) nothing crossed for a while.
      let ended = false;
      const idle = startType === "lazy" ? this.#closeWhenIdle(remote, () => ended) : undefined;
      await remote.closed;
      ended = true;
      this.#setRemote(undefined);
      await Promise.allSettled([...pumps, idle]);
      if (!this.#abort.signal.aborted) {
        this.#state = "disconnected";
        this.#notify("0");
      }
      if (startType === "once") return;
    }
  }

  #remoteOptions(bridgeBit: boolean, base: number, cap: number): ConnectOptions {
    const options = this.#options;
    const notify = options.notifications !== false && !options.notificationsLocalOnly;
    const version = options.protocolVersion ?? 4;
    const cleanStart = options.cleanStart ?? false;
    const limit = options.maxInflight ?? MAX_INFLIGHT;
    return {
      servers: options.urls,
      clientId: this.#clientId,
      protocolVersion: version,
      bridge: bridgeBit,
      cleanStart,
      ...version === 5
        ? {
          sessionExpiryInterval: options.sessionExpiryInterval ?? (cleanStart ? 0 : 0xffffffff),
          properties: { receiveMaximum: limit },
        }
        : {},
      keepAlive: options.keepAlive ?? 60,
      username: options.username,
      password: options.password,
      tls: options.tls,
      subscriptionBufferLimit: limit,
      reconnect: options.startType === "once" ? false : { initialDelayMs: base, maxDelayMs: cap },
      signal: this.#abort.signal,
      ...notify ? { will: { topic: this.#notificationTopic, payload: "0", qos: 1, retain: true } } : {},
      onStateChange: (event) => {
        if (this.#abort.signal.aborted) return;
        if (event.type === "connected") {
          if (!cleanStart && this.#wasConnected && !event.sessionPresent) {
            // What was on its way may come twice: it is sent again as new messages.
            this.stats.sessionsLost++;
            this.#host.log("warn", `Bridge ${this.name}: the remote broker lost the bridge's session`);
          }
          this.#wasConnected = true;
          this.#state = "connected";
          this.#notify("1");
          // A reconnection of the same client: the remote's copy was set to 0 by the will.
          const remote = this.#remote;
          if (remote !== undefined && notify) {
            remote.publish(this.#notificationTopic, "1", { qos: 1, retain: true }).catch(() => {});
          }
        } else {
          this.#state = event.type === "reconnecting" ? "connecting" : "disconnected";
          this.#notify("0");
        }
      },
    };
  }

  /** A remote client connected: log, notify. */
  #connected(remote: MqttClient): void {
    this.#state = "connected";
    this.#host.log("info", `Bridge ${this.name} connected to ${this.#options.urls.join(", ")}`, {
      event: "bridge_up",
    });
    this.#notify("1");
    if (this.#options.notifications !== false && !this.#options.notificationsLocalOnly) {
      remote.publish(this.#notificationTopic, "1", { qos: 1, retain: true }).catch(() => {});
    }
  }

  /** Publishes the state here, retained, when it changed. */
  #notify(value: "0" | "1"): void {
    if (this.#options.notifications === false) return;
    if (this.#lastNotified === value) return;
    this.#lastNotified = value;
    try {
      this.#host.publish(this.#notificationTopic, value, { qos: 1, retain: true });
    } catch (error) {
      this.#host.log("warn", `Bridge ${this.name}: cannot publish its state: ${(error as Error).message}`);
    }
  }
  #lastNotified: "0" | "1" | undefined;

  #setRemote(remote: MqttClient | undefined): void {
    this.#remote = remote;
    if (remote === undefined) return;
    const waiters = this.#remoteWaiters;
    this.#remoteWaiters = [];
    for (const waiter of waiters) waiter(remote);
  }

  /** The remote client, once there is one; `undefined` once the bridge stops. */
  #remoteClient(): Promise<MqttClient | undefined> | MqttClient {
    if (this.#remote !== undefined) return this.#remote;
    if (this.#abort.signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#remoteWaiters.push(resolve);
      this.#abort.signal.addEventListener("abort", () => resolve(undefined), { once: true });
    });
  }

  /** Carries one subscription's messages to the other side, at most the window's number at once. */
  async #pump(subscription: Subscription, topic: BridgeTopic, direction: "out" | "in"): Promise<void> {
    const window = direction === "out" ? this.#outWindow : this.#inWindow;
    try {
      for await (const message of subscription) {
        // Topic lines that overlap hand the same message to each of their subscriptions: it crosses once.
        if (this.#carried.has(message)) {
          subscription.ack(message);
          continue;
        }
        this.#carried.add(message);
        const waiting = window.acquire();
        if (waiting !== undefined) await waiting;
        if (direction === "out") {
          if (++this.#inFlightOut >= this.#threshold) this.#onDemand?.();
        } else this.#inFlightIn++;
        void this.#carry(subscription, topic, direction, message).finally(() => {
          if (direction === "out") this.#inFlightOut--;
          else this.#inFlightIn--;
          window.release();
        });
      }
    } catch {
      // The subscription ended with its client: the bridge stops, or the remote client gave up.
    }
  }

  /** Publishes one message on the other side, then acknowledges it where it came from. */
  async #carry(subscription: Subscription, topic: BridgeTopic, direction: "out" | "in", message: Message) {
    const out = direction === "out";
    const target = out
      ? rename(message.topic, topic.localPrefix, topic.remotePrefix)
      : rename(message.topic, topic.remotePrefix, topic.localPrefix);
    if (
      !out && this.#useEcho && topic.direction === "both" &&
      this.#echoes.take(message.topic, message.payload, Date.now())
    ) {
      this.stats.echoes++;
      subscription.ack(message);
      return;
    }
    if (out && this.#useEcho && topic.direction === "both") {
      this.#echoes.expect(target, message.payload, Date.now());
    }
    for (;;) {
      const client = out ? await this.#remoteClient() : this.#local;
      if (client === undefined || this.#abort.signal.aborted) return;
      const toVersion = out ? this.#options.protocolVersion ?? 4 : 5;
      const fromVersion = out ? 5 : this.#options.protocolVersion ?? 4;
      const properties = toVersion === 5 && fromVersion === 5 ? forwarded(message.properties) : undefined;
      try {
        await client.publish(target, message.payload, {
          qos: message.qos,
          retain: message.retain,
          ...properties === undefined ? {} : { properties },
        });
        if (out) this.stats.sent++;
        else this.stats.received++;
        this.#lastActivity = Date.now();
        subscription.ack(message);
        return;
      } catch (error) {
        if (this.#abort.signal.aborted) return;
        if (error instanceof MqttError && error.source === "peer") {
          // Refused by that broker (not authorized, quota, topic): resending would be refused again.
          this.stats.dropped++;
          this.#host.log(
            "warn",
            `Bridge ${this.name}: "${target}" refused by the ${
              out ? "remote" : "local"
            } broker: ${error.message}`,
          );
          subscription.ack(message);
          return;
        }
        // The connection went (its session may be gone): again on the next one.
        if (!out) await sleep(100, this.#abort.signal);
      }
    }
  }
}

/** The topic filter of a topic line on this broker. */
export function localFilter(topic: BridgeTopic): string {
  return (topic.localPrefix ?? "") + topic.pattern;
}

/** The topic filter of a topic line on the remote broker. */
export function remoteFilter(topic: BridgeTopic): string {
  return (topic.remotePrefix ?? "") + topic.pattern;
}
