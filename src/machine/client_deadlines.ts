/**
 * A client connection's deadlines: the connect timeout until CONNACK, the keep-alive PINGREQ after a quiet
 * spell, and the wait for its PINGRESP. It reads no clock and closes nothing: `ClientMachine` passes the time and
 * closes with the error it returns.
 *
 * @module
 */

import { MqttError, ReasonCode } from "../errors.ts";
import type { ClientState, Millis } from "./client_types.ts";
import type { ClientWire } from "./client_wire.ts";

const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

/** The timers of one connection at a time, as deadlines. */
export class ClientDeadlines {
  readonly #wire: ClientWire;
  readonly #connectTimeoutMs: number;
  readonly #pingTimeoutMs: number | undefined;
  #connectDeadline: Millis | undefined;
  #pingDeadline: Millis | undefined;
  /** The keep-alive of this connection, in seconds: the server's when it sets one [MQTT-3.1.2-21]. */
  #keepAlive = 0;

  constructor(wire: ClientWire, connectTimeoutMs: number | undefined, pingTimeoutMs: number | undefined) {
    this.#wire = wire;
    this.#connectTimeoutMs = connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#pingTimeoutMs = pingTimeoutMs;
  }

  /** A CONNECT left: the connect timeout runs. */
  connecting(now: Millis): void {
    this.#pingDeadline = undefined;
    this.#connectDeadline = now + this.#connectTimeoutMs;
  }

  /** CONNACK arrived: the connect timeout stops and the keep-alive (seconds, 0 for none) runs. */
  connected(keepAlive: number): void {
    this.#connectDeadline = undefined;
    this.#keepAlive = keepAlive;
  }

  /** PINGRESP arrived. */
  pong(): void {
    this.#pingDeadline = undefined;
  }

  /** The connection closed: nothing is due. */
  stop(): void {
    this.#connectDeadline = undefined;
    this.#pingDeadline = undefined;
  }

  /**
   * Runs what is due in `state`: sends the keep-alive PINGREQ [MQTT-3.1.2-20] itself.
   *
   * @returns The error to close with when the connect or ping timeout has passed.
   */
  handleTimeout(now: Millis, state: ClientState): MqttError | undefined {
    if (state === "connecting") {
      if (this.#connectDeadline !== undefined && now >= this.#connectDeadline) {
        return new MqttError(
          ReasonCode.UnspecifiedError,
          "Cannot connect: no CONNACK within the connect timeout",
        );
      }
      return undefined;
    }
    if (state !== "connected") return undefined;
    if (this.#pingDeadline !== undefined && now >= this.#pingDeadline) {
      return new MqttError(
        ReasonCode.KeepAliveTimeout,
        "Connection lost: no PINGRESP within the ping timeout",
      );
    }
    const keepAliveMs = this.#keepAlive * 1000;
    if (keepAliveMs > 0 && this.#pingDeadline === undefined && now >= this.#wire.lastSent + keepAliveMs) {
      this.#wire.send(now, { type: "pingreq" });
      this.#pingDeadline = now + (this.#pingTimeoutMs ?? keepAliveMs);
    }
    return undefined;
  }

  /** When {@linkcode ClientDeadlines.handleTimeout} should run next in `state`, or `undefined`. */
  poll(state: ClientState): Millis | undefined {
    if (state === "connecting") return this.#connectDeadline;
    if (state !== "connected") return undefined;
    if (this.#pingDeadline !== undefined) return this.#pingDeadline;
    const keepAliveMs = this.#keepAlive * 1000;
    return keepAliveMs > 0 ? this.#wire.lastSent + keepAliveMs : undefined;
  }
}
