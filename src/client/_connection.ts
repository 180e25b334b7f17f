/**
 * One connection attempt after another of the async client: asks `beforeConnect` for fresh credentials, opens
 * the transport, sends CONNECT and reads until the connection ends. It decides nothing about reconnecting and
 * settles no promise: the client does both, through {@linkcode ConnectionHost}.
 *
 * @module
 */

import { MqttError, ReasonCode } from "../errors.ts";
import type { ClientMachine } from "../machine/client_machine.ts";
import type { Transport } from "../transport/transport.ts";
import type { Clock } from "./_clock.ts";
import type { SubscriptionTable } from "./_subscription_table.ts";
import type { WritePath } from "./_write_path.ts";
import { type ClientOptions, machineConnectOptions } from "./client_options.ts";
import type { Reconnect } from "./reconnect.ts";

/** What a connection needs from its client. */
export interface ConnectionHost {
  /** Whether the client is closed or closing. */
  isClosing(): boolean;
  /** Sends what the machine has ready, handles its events and sets the timer. */
  flushNow(): void;
  /** An attempt failed before its CONNECT was sent: reconnect or give up. */
  lost(error: MqttError): void;
  /** `beforeConnect` gave the credentials again that the broker refused: close for good. */
  refused(error: MqttError): void;
}

/** The transport of the current attempt, and the reading from it. */
export class Connection {
  readonly #options: ClientOptions;
  readonly #machine: ClientMachine;
  readonly #clock: Clock;
  readonly #write: WritePath;
  readonly #reconnect: Reconnect;
  readonly #subscriptions: SubscriptionTable;
  readonly #host: ConnectionHost;
  #transport: Transport | undefined;
  #attemptAbort: AbortController | undefined;

  /**
   * @param parts The client's options, machine, clock, write path, reconnection state and subscriptions.
   * @param host The client.
   */
  constructor(
    parts: {
      options: ClientOptions;
      machine: ClientMachine;
      clock: Clock;
      write: WritePath;
      reconnect: Reconnect;
      subscriptions: SubscriptionTable;
    },
    host: ConnectionHost,
  ) {
    this.#options = parts.options;
    this.#machine = parts.machine;
    this.#clock = parts.clock;
    this.#write = parts.write;
    this.#reconnect = parts.reconnect;
    this.#subscriptions = parts.subscriptions;
    this.#host = host;
  }

  /** Aborts the attempt under way, if any (with the reason, when given). */
  abort(reason?: unknown): void {
    this.#attemptAbort?.abort(reason);
  }

  /** Forgets the current transport (the connection is gone) and closes it once the writes handed over are done. */
  drop(): void {
    const transport = this.#transport;
    this.#transport = undefined;
    this.#write.detach(transport);
  }

  /** Opens a connection: a new attempt, numbered by the reconnection state. */
  open(): void {
    const attempt = this.#reconnect.attempt;
    const abort = new AbortController();
    this.#attemptAbort = abort;
    (async () => {
      if (attempt > 0 && this.#options.beforeConnect !== undefined) {
        const refusal = this.#reconnect.override(await this.#options.beforeConnect(attempt));
        if (refusal !== undefined) {
          // Refused for credentials, and the hook gave the same ones again: retrying would be refused again.
          this.#host.refused(refusal);
          return;
        }
      }
      const transport = await this.#reconnect.transport(abort.signal);
      if (this.#host.isClosing() || abort.signal.aborted) {
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
      this.#host.lost(mqttError);
    });
  }

  #attach(transport: Transport): void {
    this.#transport = transport;
    this.#write.attach(transport);
    const connect = machineConnectOptions(this.#options, this.#reconnect.username, this.#reconnect.password);
    this.#machine.connect(this.#clock.now(), connect);
    this.#host.flushNow();
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
        this.#machine.handleBytes(this.#clock.now(), value);
        this.#host.flushNow();
        // A consumer that falls behind slows the reading down (and the broker with it) instead of losing
        // QoS 0 messages; the pause is bounded so that a stuck consumer cannot stall keep-alive.
        await this.#subscriptions.room();
      }
    } catch (error) {
      cause = error;
    } finally {
      reader.releaseLock();
    }
    if (this.#transport !== transport) return;
    this.#machine.handleClose(this.#clock.now(), cause);
    this.#host.flushNow();
  }
}
