/**
 * What a broker cluster needs from its engine: core publish/subscribe with queue groups, request/reply,
 * durable publishes (a stream that acknowledges what it stored) and key-value buckets with watches. NATS
 * with JetStream provides all of it ({@linkcode "./nats_engine.ts"}); an in-memory engine
 * ({@linkcode "./memory_engine.ts"}) runs the same cluster logic in one process for tests.
 *
 * @module
 */

/** Whether the engine can be used now. */
export type EngineStatus = "connected" | "disconnected";

/** A subscription to the engine; `unsubscribe()` is idempotent. */
export interface EngineSubscription {
  /** Stops the deliveries. */
  unsubscribe(): void;
}

/** Receives the messages of a subscription, in the order the engine delivers them. */
export type EngineHandler = (data: Uint8Array, subject: string) => void;

/** One entry of a bucket, or its deletion (`value` undefined). */
export interface BucketEntry {
  /** The key. */
  readonly key: string;
  /** The value; `undefined` when the key was deleted or purged. */
  readonly value: Uint8Array | undefined;
  /** The revision that set or deleted it; grows with every change to the bucket. */
  readonly revision: number;
}

/** The error an engine throws when a compare-and-set found another revision. */
export class RevisionConflict extends Error {
  /**
   * Makes the error for `key`.
   *
   * @param key The key whose revision was not the expected one.
   */
  constructor(key: string) {
    super(`Cannot update "${key}": it changed meanwhile`);
    this.name = "RevisionConflict";
  }
}

/** The error {@linkcode ClusterEngine.request} throws when nothing serves the subject (now). */
export class NoResponders extends Error {
  /**
   * Makes the error for `subject`.
   *
   * @param action What could not be done, for the message.
   */
  constructor(action: string) {
    super(`${action}: no one serves this subject`);
    this.name = "NoResponders";
  }
}

/** A key-value bucket of the engine, kept where every node finds it. */
export interface EngineBucket {
  /** The entry of a key; `undefined` when it has none or was deleted. */
  get(key: string): Promise<BucketEntry | undefined>;
  /** Sets a key. @returns The new revision. */
  put(key: string, value: Uint8Array): Promise<number>;
  /**
   * Sets a key only when its current revision is `revision` (0: only when it has no value).
   *
   * @returns The new revision.
   * @throws {RevisionConflict} When the revision differs.
   */
  update(key: string, value: Uint8Array, revision: number): Promise<number>;
  /**
   * Deletes a key; with `revision`, only when that is still its revision.
   *
   * @throws {RevisionConflict} When `revision` is given and differs.
   */
  delete(key: string, revision?: number): Promise<void>;
  /**
   * Calls `onEntry` with every current entry, then with every change, in revision order.
   *
   * @returns Resolves once the current entries were delivered.
   */
  watch(onEntry: (entry: BucketEntry) => void): Promise<EngineSubscription>;
}

/** Options of {@linkcode ClusterEngine.bucket}. */
export interface BucketOptions {
  /** Milliseconds after which an entry not written again is gone; 0 keeps entries. @default 0 */
  maxAgeMs?: number;
}

/** Options of {@linkcode ClusterEngine.stream}. */
export interface StreamOptions {
  /** Subjects the stream stores (wildcards allowed). */
  subjects: string[];
  /** Milliseconds a message is kept. */
  maxAgeMs: number;
  /** The most bytes the stream keeps; the oldest messages go first. */
  maxBytes: number;
}

/** Where {@linkcode ClusterEngine.replay} starts: a sequence number, or a wall-clock time. */
export type ReplayStart = { sequence: number } | { timeMs: number };

/** The engine a cluster node runs on: one connection's worth of NATS (or the in-memory one). */
export interface ClusterEngine {
  /** Whether the engine is reachable now. */
  readonly status: EngineStatus;
  /** Tells `listener` each change of {@linkcode ClusterEngine.status}. */
  onStatus(listener: (status: EngineStatus, detail?: string) => void): void;
  /**
   * Publishes on a subject, at most once, without waiting: what the engine cannot take while disconnected
   * may be lost.
   */
  publish(subject: string, data: Uint8Array): void;
  /**
   * Publishes on a subject that a stream stores, and resolves once the engine stored it: it is delivered to
   * subscribers like {@linkcode ClusterEngine.publish} and kept as the stream's options say.
   *
   * @returns The message's sequence number in its stream.
   * @throws {Error} When the engine could not store it (unreachable, no stream, timeout).
   */
  store(subject: string, data: Uint8Array): Promise<number>;
  /**
   * Receives what is published on subjects matching `subject` (`*` one token, `>` the rest). With `queue`,
   * each message goes to one subscriber of that queue name among all that share it.
   */
  subscribe(subject: string, handler: EngineHandler, queue?: string): EngineSubscription;
  /**
   * Sends a request to whoever serves `subject`, and resolves with the first answer.
   *
   * @throws {NoResponders} When no one serves the subject.
   * @throws {Error} When no one answers within `timeoutMs`, or the engine is unreachable.
   */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /**
   * Answers the requests sent to `subject` with what `handler` returns; with `queue`, each request goes to one
   * server of that queue name among all that share it.
   */
  serve(
    subject: string,
    handler: (data: Uint8Array) => Promise<Uint8Array> | Uint8Array,
    queue?: string,
  ): EngineSubscription;
  /** Opens a key-value bucket, making it when it does not exist. */
  bucket(name: string, options?: BucketOptions): Promise<EngineBucket>;
  /** Makes a stream, or updates the one of that name to these options. */
  stream(name: string, options: StreamOptions): Promise<void>;
  /**
   * Reads what a stream holds from a start on, in the order it stored it, up to the last message it held when
   * the call began: how a node catches up on what it missed.
   *
   * @param stream The stream's name.
   * @param from Where to start: a sequence number, or a wall-clock time (ms since the epoch) at which the
   *   first message read was stored or later.
   * @param onMessage Called with each message and its sequence number.
   * @param subject Only the messages on subjects matching this one (wildcards allowed). Default: all.
   * @returns Resolves once the last message was handed over; rejects when the engine is unreachable.
   */
  replay(
    stream: string,
    from: ReplayStart,
    onMessage: (data: Uint8Array, sequence: number) => void,
    subject?: string,
  ): Promise<void>;
  /**
   * Removes the messages of a stream on one subject (no wildcards) whose sequence number is below `before`.
   *
   * @throws {Error} When the engine is unreachable or has no such stream.
   */
  purge(stream: string, subject: string, before: number): Promise<void>;
  /** Waits until everything published so far reached the engine. */
  flush(): Promise<void>;
  /** Closes the connection; subscriptions end. */
  close(): Promise<void>;
}
