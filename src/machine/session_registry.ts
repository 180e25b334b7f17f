/**
 * The sessions of a broker by client identifier: their records, identifier assignment, the expiry intervals
 * granted, which connection holds each, and the deadlines of their wills and expiry. It keeps time and state
 * only: routing a will, ending a session's subscriptions and writing the journal are the broker machine's.
 *
 * @module
 */

import type { ConnAckProperties, ConnectPacket, Will } from "../codec/packet.ts";
import { OWNER } from "./_owner.ts";
import type { ReasonCode } from "../errors.ts";
import type { SessionSubscription } from "./broker_types.ts";
import type { SessionMachine } from "./session_machine.ts";
import { type ExpiryStats, SessionState } from "./session_state.ts";

import type { Millis } from "./client_machine.ts";

/** A session expiry interval that never ends, in seconds. */
export const NEVER = 0xffff_ffff;

/** A session as the broker keeps it, connected or not. */
/** The acknowledgement of a PUBLISH, held back until every session it was queued for beyond bounds has room. */
export interface HeldAck {
  readonly session: SessionMachine;
  readonly packetId: number;
  readonly reasonCode: ReasonCode;
  /** How many sessions it still waits for. */
  waiting: number;
}

export interface SessionRecord {
  readonly clientId: string;
  username: string | undefined;
  /** Acknowledgements held back until this session's queue is within its bounds. */
  held: HeldAck[] | undefined;
  /** When the first of them was held: the slow-consumer timeout runs from it. */
  heldSince: Millis | undefined;
  /** Over its bounds past the timeout: what does not fit is dropped until it has room again. */
  stalled: boolean;
  readonly state: SessionState;
  /** By topic filter; made with the first subscription. */
  subscriptions: Map<string, SessionSubscription> | undefined;
  connection: SessionMachine | undefined;
  expiryInterval: number;
  expiresAt: Millis | undefined;
  will: Will | undefined;
  willAt: Millis | undefined;
  /** Journal: whether the store holds this session. */
  stored: boolean;
}

/** What {@linkcode SessionRegistry.expire} does with a due session: the broker machine's side of it. */
export interface ExpiryHandler {
  /** A will whose delay passed, already taken off the record: publish it. */
  will(record: SessionRecord, will: Will): void;
  /** A session whose expiry passed: end it (its subscriptions, its state, the journal). */
  expired(record: SessionRecord): void;
}

/**
 * The sessions of a broker: the seam through which a cluster can know of sessions on other nodes. The
 * in-process default is {@linkcode LocalSessionRegistry}.
 */
export interface SessionRegistry {
  /** How many sessions exist, connected or not. */
  readonly size: number;
  /** The session of a client identifier. */
  get(clientId: string): SessionRecord | undefined;
  /** Every session. */
  values(): IterableIterator<SessionRecord>;
  /** The record of a connection this registry attached and that still holds it; else `undefined`. */
  attached(session: SessionMachine): SessionRecord | undefined;
  /** A client identifier no session has, for a client that sent none [MQTT-3.1.3-6]. */
  assignClientId(preferred: string | undefined): string;
  /** The expiry interval a CONNECT gets; a capped MQTT 5 one is written to the CONNACK's `properties`. */
  grantExpiry(connect: ConnectPacket, properties: ConnAckProperties): number;
  /** The expiry interval a connection's MQTT 5 DISCONNECT or CONNECT leaves it, capped as granted. */
  expiryOf(session: SessionMachine): number;
  /** Makes and registers an empty session. */
  create(clientId: string, expiryInterval: number): SessionRecord;
  /** Forgets a session, when it is still the registered one, and its deadlines. */
  remove(record: SessionRecord): void;
  /** Gives a session to a connection: its deadlines and a will waiting for its delay are gone [MQTT-3.1.3-9]. */
  connect(record: SessionRecord, session: SessionMachine, username: string | undefined, expiry: number): void;
  /** Takes a session from its connection (which keeps nothing of it). */
  disconnect(record: SessionRecord): void;
  /**
   * The connection of a session is over: the expiry interval its DISCONNECT left (MQTT 5), its will delayed
   * or returned to publish now [MQTT-3.1.2-8], and its expiry scheduled unless the interval is 0 or never ends.
   */
  release(now: Millis, record: SessionRecord, session: SessionMachine): Will | undefined;
  /** Takes the will a session still waits to publish, if any. */
  takeWill(record: SessionRecord): Will | undefined;
  /** Watches a session's will and expiry deadlines. */
  schedule(record: SessionRecord): void;
  /** Stops watching a session's deadlines. */
  unschedule(record: SessionRecord): void;
  /** The earliest will or expiry deadline. */
  pollTimeout(): Millis | undefined;
  /** Hands the wills and expiries due by `now` to `due`, wills first per session. */
  expire(now: Millis, due: ExpiryHandler): void;
}

/** Options of {@linkcode LocalSessionRegistry}, as in {@linkcode BrokerMachineOptions}. */
export interface SessionRegistryOptions {
  persistentSessionExpiryInterval?: number;
  maximumSessionExpiryInterval?: number;
  maxQueuedMessages?: number;
  maxQueuedBytes?: number;
  /** The start of assigned client identifiers. Default `auto-`. */
  autoIdPrefix?: string;
  /** Counters the sessions' states share (see `SessionStateOptions.stats`). */
  stats?: ExpiryStats;
}

/** The in-process {@linkcode SessionRegistry}: a map by client identifier and the set of sessions with deadlines. */
export class LocalSessionRegistry implements SessionRegistry {
  readonly #sessions = new Map<string, SessionRecord>();
  /** Sessions with a will or expiry deadline. */
  readonly #timed = new Set<SessionRecord>();
  /** The earliest deadline of `#timed`, when `#earliestKnown`; recomputed lazily. */
  #earliest: Millis | undefined;
  #earliestKnown = true;
  #assigned = 0;
  readonly #persistentExpiry: number;
  readonly #maximumExpiry: number;
  readonly #maxQueuedMessages: number;
  readonly #maxQueuedBytes: number;
  readonly #stats: ExpiryStats | undefined;
  readonly #autoIdPrefix: string;

  /** @param options Session expiry and queue limits. */
  constructor(options: SessionRegistryOptions = {}) {
    this.#persistentExpiry = options.persistentSessionExpiryInterval ?? NEVER;
    this.#maximumExpiry = options.maximumSessionExpiryInterval ?? NEVER;
    this.#maxQueuedMessages = options.maxQueuedMessages ?? 1000;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 16 * 1024 * 1024;
    this.#autoIdPrefix = options.autoIdPrefix ?? "auto-";
    this.#stats = options.stats;
  }

  get size(): number {
    return this.#sessions.size;
  }

  get(clientId: string): SessionRecord | undefined {
    return this.#sessions.get(clientId);
  }

  values(): IterableIterator<SessionRecord> {
    return this.#sessions.values();
  }

  /**
   * The record is kept on the session itself rather than in a map (one entry fewer per connection);
   * `undefined` when it is not attached here.
   */
  attached(session: SessionMachine): SessionRecord | undefined {
    const record = session[OWNER] as SessionRecord | undefined;
    return record !== undefined && this.#sessions.get(record.clientId) === record ? record : undefined;
  }

  assignClientId(preferred: string | undefined): string {
    const prefix = this.#autoIdPrefix;
    let clientId = preferred ?? `${prefix}${++this.#assigned}`;
    while (this.#sessions.has(clientId)) clientId = `${prefix}${++this.#assigned}`;
    return clientId;
  }

  grantExpiry(connect: ConnectPacket, properties: ConnAckProperties): number {
    if (connect.protocolVersion !== 5) return connect.cleanStart ? 0 : this.#persistentExpiry;
    const expiry = connect.properties?.sessionExpiryInterval ?? 0;
    if (expiry <= this.#maximumExpiry) return expiry;
    properties.sessionExpiryInterval = this.#maximumExpiry;
    return this.#maximumExpiry;
  }

  expiryOf(session: SessionMachine): number {
    return Math.min(session.sessionExpiryInterval, this.#maximumExpiry);
  }

  create(clientId: string, expiryInterval: number): SessionRecord {
    const record: SessionRecord = {
      clientId,
      username: undefined,
      held: undefined,
      heldSince: undefined,
      stalled: false,
      state: new SessionState(clientId, {
        maxQueuedMessages: this.#maxQueuedMessages,
        maxQueuedBytes: this.#maxQueuedBytes,
        stats: this.#stats,
      }),
      subscriptions: undefined,
      connection: undefined,
      expiryInterval,
      expiresAt: undefined,
      will: undefined,
      willAt: undefined,
      stored: false,
    };
    this.#sessions.set(clientId, record);
    return record;
  }

  remove(record: SessionRecord): void {
    this.unschedule(record);
    if (this.#sessions.get(record.clientId) === record) this.#sessions.delete(record.clientId);
  }

  connect(
    record: SessionRecord,
    session: SessionMachine,
    username: string | undefined,
    expiry: number,
  ): void {
    this.unschedule(record);
    record.connection = session;
    record.username = username;
    record.expiryInterval = expiry;
    record.expiresAt = undefined;
    // [MQTT-3.1.3-9] a new connection before the will delay passed: the old will is not sent.
    record.will = undefined;
    record.willAt = undefined;
    session[OWNER] = record;
  }

  disconnect(record: SessionRecord): void {
    const connection = record.connection;
    if (connection !== undefined) connection[OWNER] = undefined;
    record.connection = undefined;
  }

  release(now: Millis, record: SessionRecord, session: SessionMachine): Will | undefined {
    record.connection = undefined;
    // MQTT 5: the client may have changed the interval in its DISCONNECT.
    if (session.version === 5) record.expiryInterval = this.expiryOf(session);
    let publishNow: Will | undefined;
    const will = session.will;
    if (will !== undefined) {
      const delay = Math.min(willDelay(will), record.expiryInterval);
      if (delay === 0) {
        publishNow = will;
      } else {
        record.will = will;
        record.willAt = now + delay * 1000;
        this.schedule(record);
      }
    }
    if (record.expiryInterval !== 0 && record.expiryInterval !== NEVER) {
      record.expiresAt = now + record.expiryInterval * 1000;
      this.schedule(record);
    }
    return publishNow;
  }

  takeWill(record: SessionRecord): Will | undefined {
    const will = record.will;
    record.will = undefined;
    record.willAt = undefined;
    return will;
  }

  schedule(record: SessionRecord): void {
    this.#timed.add(record);
    if (this.#earliestKnown) this.#earliest = earlier(this.#earliest, deadline(record));
  }

  unschedule(record: SessionRecord): void {
    if (!this.#timed.delete(record)) return;
    if (this.#earliestKnown && deadline(record) === this.#earliest) this.#earliestKnown = false;
  }

  pollTimeout(): Millis | undefined {
    if (!this.#earliestKnown) {
      let earliest: Millis | undefined;
      for (const record of this.#timed) earliest = earlier(earliest, deadline(record));
      this.#earliest = earliest;
      this.#earliestKnown = true;
    }
    return this.#earliest;
  }

  expire(now: Millis, due: ExpiryHandler): void {
    this.#earliestKnown = false;
    for (const record of [...this.#timed]) {
      if (record.willAt !== undefined && record.willAt <= now) {
        due.will(record, this.takeWill(record) as Will);
      }
      if (record.expiresAt !== undefined && record.expiresAt <= now) due.expired(record);
      if (record.willAt === undefined && record.expiresAt === undefined) this.#timed.delete(record);
    }
  }
}

/** The earlier of two optional times. */
export function earlier(a: Millis | undefined, b: Millis | undefined): Millis | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}

/** A session's next deadline: its will or its expiry. */
function deadline(record: SessionRecord): Millis | undefined {
  return earlier(record.willAt, record.expiresAt);
}

/** The will delay in seconds (MQTT 5), 0 when absent. */
export function willDelay(will: Will): number {
  return will.properties?.willDelayInterval ?? 0;
}
