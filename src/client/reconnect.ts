/**
 * Reconnection of the async client: the attempt count, the credentials and transport factory that
 * `beforeConnect` may replace, when to give up, and the backoff (exponential, full jitter) before the next
 * attempt. It opens no connection and reports no state change; the client does both.
 *
 * @module
 */

import { type MqttError, ReasonCode } from "../errors.ts";
import type { Transport } from "../transport/transport.ts";
import { sameBytes, toBytes } from "./_bytes.ts";
import type { ClientOptions, ConnectOverrides, ReconnectOptions } from "./client_options.ts";

/** Codes after which retrying with the same credentials is pointless. */
const FATAL_REFUSALS: ReadonlySet<number> = new Set([
  ReasonCode.NotAuthorized,
  ReasonCode.BadUserNameOrPassword,
  ReasonCode.Banned,
  ReasonCode.BadAuthenticationMethod,
  ReasonCode.ClientIdentifierNotValid,
  ReasonCode.UnsupportedProtocolVersion,
]);

/** The attempts of one client: how many failed in a row, with which credentials, and the timer of the next. */
export class Reconnect {
  readonly #options: ClientOptions;
  /** Attempts since the last connection succeeded (0: the first attempt, or connected). */
  attempt = 0;
  /** The user name of the next attempt. */
  username: string | undefined;
  /** The password of the next attempt. */
  password: Uint8Array | undefined;
  /** Opens the transport of the next attempt. */
  transport: (signal: AbortSignal) => Promise<Transport>;
  /** The refusal that ended the last attempt, when it was about credentials. */
  #refusal: MqttError | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param options The client's options. */
  constructor(options: ClientOptions) {
    this.#options = options;
    this.transport = options.transport;
    this.username = options.username;
    this.password = options.password === undefined ? undefined : toBytes(options.password);
  }

  /**
   * Takes what `beforeConnect` returned for the next attempt.
   *
   * @param overrides New credentials or transport, if any.
   * @returns The refusal to give up with, when the last attempt was refused for its credentials and the hook
   *   gave the same ones again (retrying would be refused again); else `undefined`.
   */
  override(overrides: ConnectOverrides | void): MqttError | undefined {
    const before = [this.username, this.password, this.transport] as const;
    if (overrides) {
      if (overrides.username !== undefined) this.username = overrides.username;
      if (overrides.password !== undefined) this.password = toBytes(overrides.password);
      if (overrides.transport !== undefined) this.transport = overrides.transport;
    }
    const refusal = this.#refusal;
    this.#refusal = undefined;
    const unchanged = before[0] === this.username && sameBytes(before[1], this.password) &&
      before[2] === this.transport;
    return refusal !== undefined && unchanged ? refusal : undefined;
  }

  /**
   * Whether to give up after a failed attempt or a dropped connection; remembers a refusal for credentials,
   * which a `beforeConnect` hook may answer with new ones.
   *
   * @param error Why the attempt or the connection ended.
   * @param first Whether this was the first attempt of `start()` (never retried).
   */
  giveUp(error: MqttError, first: boolean): boolean {
    const reconnect = this.#options.reconnect ?? true;
    const settings: ReconnectOptions = typeof reconnect === "object" ? reconnect : {};
    const refused = FATAL_REFUSALS.has(error.reasonCode) && error.source === "peer";
    // With a beforeConnect hook the next attempt may bring new credentials; override() gives up if it does not.
    const fatal = refused && this.#options.beforeConnect === undefined;
    this.#refusal = refused ? error : undefined;
    return first || reconnect === false || fatal ||
      (settings.maxAttempts !== undefined && this.attempt >= settings.maxAttempts);
  }

  /**
   * Counts the next attempt and picks its delay: a random time up to the initial delay doubled per attempt,
   * capped at the longest delay.
   *
   * @returns The delay in milliseconds.
   */
  next(): number {
    const reconnect = this.#options.reconnect ?? true;
    const settings: ReconnectOptions = typeof reconnect === "object" ? reconnect : {};
    this.attempt++;
    const cap = Math.min(
      settings.maxDelayMs ?? 30_000,
      (settings.initialDelayMs ?? 1000) * 2 ** (this.attempt - 1),
    );
    return Math.random() * cap; // full jitter
  }

  /** Runs `open` after the delay, unless cancelled first. */
  schedule(delayMs: number, open: () => void): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      open();
    }, delayMs);
  }

  /** Cancels the scheduled attempt (the client is closed). */
  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}
