/**
 * The cluster engine on NATS with JetStream, through the official client v3 (`@nats-io/transport-node`,
 * `@nats-io/jetstream`, `@nats-io/kv`), which runs on Deno, Bun and Node alike. Those packages are optional
 * peer dependencies, loaded with a dynamic `import()` when an engine is opened. Everything here stays within
 * what nats-server 2.9 offers (one filter subject per consumer, no per-message TTL).
 *
 * @module
 */

import type { NatsConnection } from "@nats-io/transport-node";
import { type BucketHost, bytes, NatsBucket } from "./nats_bucket.ts";
import type {
  Consumer,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
} from "@nats-io/jetstream";
import {
  type BucketOptions,
  type ClusterEngine,
  type EngineBucket,
  type EngineHandler,
  type EngineStatus,
  type EngineSubscription,
  NoResponders,
  type ReplayStart,
  RevisionConflict,
  type StreamOptions,
} from "./engine.ts";

/** Options of {@linkcode openNatsEngine}. */
export interface NatsEngineOptions {
  /** The server URLs (`nats://host:port`, `tls://host:port`) or `host:port`s. */
  servers: string | string[];
  /** The connection's name, shown by the server's monitoring. */
  name?: string;
  /** User name, with `pass`. */
  user?: string;
  /** Password, with `user`. */
  pass?: string;
  /** An authentication token. */
  token?: string;
  /** The contents of a `.creds` file (a user JWT and its NKey seed). */
  credentials?: string;
  /** TLS: the CA that signed the servers' certificates, and a client certificate, all as PEM text. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Milliseconds between reconnection attempts. @default 1000 */
  reconnectWaitMs?: number;
  /** Milliseconds to wait for the first connection, a stored publish's acknowledgement or a bucket operation. @default 5000 */
  timeoutMs?: number;
}

/** The packages the engine loads. */
interface NatsModules {
  nats: typeof import("@nats-io/transport-node");
  jetstream: typeof import("@nats-io/jetstream");
  kv: typeof import("@nats-io/kv");
}

/** JetStream's error code when an expected last sequence did not match (and its 2.10+ variant). */
const WRONG_LAST_SEQUENCE = [10071, 10164];
/** JetStream's error code when a stream of that name exists with another configuration. */
const STREAM_NAME_IN_USE = 10058;
/** How many messages a replay asks the server for at a time. */
const REPLAY_BATCH = 1000;

/**
 * Connects to NATS and returns the cluster engine on that connection. It reconnects forever; `status`
 * follows the connection.
 *
 * @example Open an engine (needs a nats-server with JetStream)
 * ```ts ignore
 * import { openNatsEngine } from "./nats_engine.ts";
 * const engine = await openNatsEngine({ servers: "nats://127.0.0.1:4222", name: "broker-1" });
 * engine.subscribe("mqtt.>", (data, subject) => console.log(subject, data.length));
 * engine.publish("mqtt.sensors.1", new TextEncoder().encode("21.5"));
 * await engine.close();
 * ```
 *
 * @param options Servers, credentials, TLS and timings.
 * @returns The engine, connected.
 * @throws {Error} When the NATS packages are not installed, or the first connection fails.
 */
export async function openNatsEngine(options: NatsEngineOptions): Promise<ClusterEngine> {
  let modules: NatsModules;
  try {
    const [nats, jetstream, kv] = await Promise.all([
      import("@nats-io/transport-node"),
      import("@nats-io/jetstream"),
      import("@nats-io/kv"),
    ]);
    modules = { nats, jetstream, kv };
  } catch (cause) {
    throw new Error(
      "Cannot use a NATS cluster: install the optional peer dependencies @nats-io/transport-node, @nats-io/jetstream and @nats-io/kv",
      { cause },
    );
  }
  const timeoutMs = options.timeoutMs ?? 5000;
  const { ca, cert, key } = options.tls ?? {};
  const nc = await modules.nats.connect({
    servers: options.servers,
    name: options.name,
    user: options.user,
    pass: options.pass,
    token: options.token,
    authenticator: options.credentials === undefined
      ? undefined
      : modules.nats.credsAuthenticator(new TextEncoder().encode(options.credentials)),
    tls: options.tls === undefined ? undefined : { ca, cert, key },
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectWaitMs ?? 1000,
    timeout: timeoutMs,
  });
  return new NatsEngine(modules, nc, timeoutMs);
}

class NatsEngine implements ClusterEngine, BucketHost {
  #modules: NatsModules;
  #nc: NatsConnection;
  #js: JetStreamClient;
  #jsm: Promise<JetStreamManager> | undefined;
  #timeoutMs: number;
  #status: EngineStatus = "connected";
  #listeners: ((status: EngineStatus, detail?: string) => void)[] = [];
  /** Called once when the connection goes down or closes; what waits on the server then gives up. */
  #onDown: Set<() => void> = new Set();
  /** The inbox the stream's acknowledgements of `store` come to, once one was made. */
  #ackInbox: string | undefined;
  #ackSeq = 0;
  /** Stores waiting for their acknowledgement, by reply token, in order of sending. */
  #acks: Map<
    string,
    { resolve(sequence: number): void; reject(error: Error): void; at: number; action: string }
  > = new Map();
  #ackSweep: ReturnType<typeof setInterval> | undefined;

  constructor(modules: NatsModules, nc: NatsConnection, timeoutMs: number) {
    this.#modules = modules;
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#js = modules.jetstream.jetstream(nc, { timeout: timeoutMs });
    void this.#followStatus();
  }

  get status(): EngineStatus {
    return this.#status;
  }

  onStatus(listener: (status: EngineStatus, detail?: string) => void): void {
    this.#listeners.push(listener);
  }

  publish(subject: string, data: Uint8Array): void {
    // At most once: while disconnected nats.js would buffer without bound, so drop instead.
    if (this.#status !== "connected") return;
    try {
      this.#nc.publish(subject, data);
    } catch {
      // Closed meanwhile, an invalid subject or a payload over the server's limit: lost, as documented.
    }
  }

  /**
   * A JetStream publish without nats.js's per-request machinery (a promise, a timer and two Error objects each,
   * which capped stores at about 25,000/s here): a plain publish whose reply subject is a token under one
   * inbox of this connection, answered by the stream's acknowledgement; a sweep twice a second times out the
   * ones that waited too long.
   */
  store(subject: string, data: Uint8Array): Promise<number> {
    const action = `Cannot store a message on "${subject}"`;
    if (this.#status !== "connected") {
      return Promise.reject(
        new Error(`${action}: the NATS connection is ${this.#nc.isClosed() ? "closed" : "down"}`),
      );
    }
    const inbox = this.#ackInbox ??= this.#openAckInbox();
    const token = (++this.#ackSeq).toString(36);
    const waiting = new Promise<number>((resolve, reject) => {
      this.#acks.set(token, { resolve, reject, at: Date.now(), action });
    });
    try {
      this.#nc.publish(subject, data, { reply: `${inbox}.${token}` });
    } catch (error) {
      this.#acks.delete(token);
      return Promise.reject(this.#explain(action, error, "no stream stores this subject"));
    }
    return waiting;
  }

  /** Subscribes to the inbox the stream's acknowledgements come to, and starts the sweep of late ones. */
  #openAckInbox(): string {
    const inbox = this.#modules.nats.createInbox();
    this.#nc.subscribe(`${inbox}.*`, {
      callback: (error, msg) => {
        if (error !== null) return;
        const token = msg.subject.slice(inbox.length + 1);
        const waiting = this.#acks.get(token);
        if (waiting === undefined) return;
        this.#acks.delete(token);
        // "No responders": nothing, not even a stream, takes the subject.
        if (msg.headers?.code === 503) {
          waiting.reject(new Error(`${waiting.action}: no stream stores this subject`));
          return;
        }
        let answer: { error?: { description?: string }; seq?: number } | undefined;
        try {
          answer = JSON.parse(new TextDecoder().decode(msg.data));
        } catch {
          // Not an acknowledgement.
        }
        if (answer === undefined || answer === null) {
          waiting.reject(new Error(`${waiting.action}: an answer that is no acknowledgement`));
        } else if (answer.error !== undefined) {
          waiting.reject(new Error(`${waiting.action}: ${answer.error.description ?? "refused"}`));
        } else waiting.resolve(answer.seq ?? 0);
      },
    });
    this.#ackSweep = setInterval(() => {
      const late = Date.now() - this.#timeoutMs;
      for (const [token, waiting] of this.#acks) {
        if (waiting.at > late) break; // in order of sending
        this.#acks.delete(token);
        waiting.reject(new Error(`${waiting.action}: no answer within ${this.#timeoutMs} ms`));
      }
    }, 500);
    (this.#ackSweep as { unref?(): void }).unref?.();
    // What waits when the connection goes is not coming: refused at once (the message may have been stored).
    this.#onDown.add(() => this.#failAcks("the NATS connection is down"));
    return inbox;
  }

  /** Rejects every store waiting for its acknowledgement. */
  #failAcks(reason: string): void {
    for (const waiting of this.#acks.values()) waiting.reject(new Error(`${waiting.action}: ${reason}`));
    this.#acks.clear();
  }

  subscribe(subject: string, handler: EngineHandler, queue?: string): EngineSubscription {
    const sub = this.#nc.subscribe(subject, {
      queue,
      callback: (error, msg) => {
        if (error !== null) return;
        try {
          handler(bytes(msg.data), msg.subject);
        } catch (error) {
          rethrowLater(error);
        }
      },
    });
    return { unsubscribe: () => quietly(() => sub.unsubscribe()) };
  }

  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const action = `Cannot request "${subject}"`;
    this.#requireConnected(action);
    try {
      return bytes((await this.#nc.request(subject, data, { timeout: timeoutMs })).data);
    } catch (error) {
      if (error instanceof this.#modules.nats.RequestError && error.isNoResponders()) {
        throw new NoResponders(action);
      }
      throw this.#explain(action, error, "no one serves this subject", timeoutMs);
    }
  }

  serve(
    subject: string,
    handler: (data: Uint8Array) => Promise<Uint8Array> | Uint8Array,
  ): EngineSubscription {
    const sub = this.#nc.subscribe(subject, {
      callback: (error, msg) => {
        if (error !== null || msg.reply === undefined) return;
        // A failed handler sends no answer: the requester times out.
        Promise.resolve(bytes(msg.data)).then(handler).then(
          (answer) => quietly(() => msg.respond(answer)),
          () => {},
        );
      },
    });
    return { unsubscribe: () => quietly(() => sub.unsubscribe()) };
  }

  async bucket(name: string, options: BucketOptions = {}): Promise<EngineBucket> {
    this.#requireConnected(`Cannot open the bucket "${name}"`);
    const maxAgeMs = options.maxAgeMs ?? 0;
    const kv = await new this.#modules.kv.Kvm(this.#js).create(name, { history: 1, ttl: maxAgeMs });
    const status = await kv.status();
    if (status.ttl !== maxAgeMs) {
      // The bucket exists with another age limit: the latest opener's options win, as with streams.
      const config = status.streamInfo.config;
      await (await this.#manager()).streams.update(config.name, {
        ...config,
        max_age: this.#modules.nats.nanos(maxAgeMs),
        duplicate_window: this.#modules.nats.nanos(duplicateWindow(maxAgeMs)),
      });
    }
    return new NatsBucket(this, kv, name);
  }

  async stream(name: string, options: StreamOptions): Promise<void> {
    this.#requireConnected(`Cannot make the stream "${name}"`);
    const jsm = await this.#manager();
    const { DiscardPolicy, RetentionPolicy, StorageType, JetStreamApiError } = this.#modules.jetstream;
    const { nanos } = this.#modules.nats;
    const config = {
      name,
      subjects: options.subjects,
      max_age: nanos(options.maxAgeMs),
      duplicate_window: nanos(duplicateWindow(options.maxAgeMs)),
      max_bytes: options.maxBytes,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
    };
    try {
      await jsm.streams.add(config);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE)) throw error;
      await jsm.streams.update(name, config);
    }
  }

  async purge(stream: string, subject: string, before: number): Promise<void> {
    const action = `Cannot purge the stream "${stream}"`;
    this.#requireConnected(action);
    // The server takes a sequence of 0 or 1 as "no limit": everything on the subject would go.
    if (before <= 1) return;
    try {
      await (await this.#manager()).streams.purge(stream, { filter: subject, seq: before });
    } catch (error) {
      throw this.#explain(action, error, "JetStream does not answer");
    }
  }

  async replay(
    stream: string,
    from: ReplayStart,
    onMessage: (data: Uint8Array, sequence: number) => void,
    subject?: string,
  ): Promise<void> {
    const action = `Cannot replay the stream "${stream}"`;
    this.#requireConnected(action);
    let gaveUp!: (error: Error) => void;
    const down = new Promise<never>((_, reject) => gaveUp = reject);
    down.catch(() => {});
    const onDown = () =>
      gaveUp(new Error(`${action}: the NATS connection is ${this.#nc.isClosed() ? "closed" : "down"}`));
    this.#onDown.add(onDown);
    let creating: Promise<Consumer> | undefined;
    let messages: ConsumerMessages | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    /** Set once the replay ended (or gave up): nothing more goes to `onMessage`. */
    let done = false;
    try {
      const { state } = await Promise.race([(await this.#manager()).streams.info(stream), down]);
      // The end is fixed now: what is stored from here on is not replayed.
      const end = state.last_seq;
      if (state.messages === 0 || "sequence" in from && from.sequence > end) return;
      // An ordered consumer: ephemeral, unacknowledged, in memory, recreated by nats.js should it miss a message
      // (from a sequence; from a time, nats.js cannot recreate it and the replay times out).
      creating = this.#js.consumers.get(stream, {
        ...("sequence" in from
          ? { opt_start_seq: Math.max(1, from.sequence) }
          : { opt_start_time: new Date(from.timeMs).toISOString() }),
        // A string, not an array: nats-server 2.9 takes one filter subject per consumer.
        ...(subject === undefined ? {} : { filter_subjects: subject }),
        inactive_threshold: Math.max(60_000, 2 * this.#timeoutMs),
      });
      const consumer = await Promise.race([creating, down]);
      // Nothing from the start on (or nothing matching the filter).
      if ((await consumer.info(true)).num_pending === 0) return;
      let finish!: (error?: Error) => void;
      const finished = new Promise<void>((resolve, reject) => {
        finish = (error) => error === undefined ? resolve() : reject(error);
      });
      let lastMessageAt = Date.now();
      const stop = (error?: Error) => {
        if (done) return;
        done = true;
        finish(error);
      };
      messages = await Promise.race([
        consumer.consume({
          max_messages: REPLAY_BATCH,
          callback: (msg) => {
            if (done) return;
            lastMessageAt = Date.now();
            const sequence = msg.seq;
            // Stored after the replay began (with a filter, the last match may come before `end`).
            if (sequence > end) return stop();
            try {
              onMessage(bytes(msg.data), sequence);
            } catch (error) {
              rethrowLater(error);
            }
            if (sequence === end || msg.info.pending === 0) stop();
          },
        }),
        down,
      ]);
      void messages.closed().then((error) => {
        stop(
          error
            ? this.#explain(action, error, "the stream is gone")
            : new Error(`${action}: the consumer stopped`),
        );
      });
      const check = () => {
        const idle = Date.now() - lastMessageAt;
        if (idle < this.#timeoutMs) {
          timer = setTimeout(check, this.#timeoutMs - idle);
          return;
        }
        // Silent for timeoutMs: done if the server has nothing left for it (the last ones expired), else stuck.
        consumer.info().then(
          (info) =>
            stop(
              info.num_pending === 0
                ? undefined
                : new Error(`${action}: no message for ${this.#timeoutMs} ms`),
            ),
          (error) => stop(new Error(`${action}: no message for ${this.#timeoutMs} ms`, { cause: error })),
        );
      };
      timer = setTimeout(check, this.#timeoutMs);
      await Promise.race([finished, down]);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith(action)) throw error;
      throw this.#explain(action, error, "JetStream does not answer");
    } finally {
      done = true;
      clearTimeout(timer);
      this.#onDown.delete(onDown);
      messages?.stop();
      // Whenever the consumer was made (even after this gave up), delete it; the server would, once inactive.
      creating?.then((consumer) => consumer.delete()).catch(() => {});
    }
  }

  async flush(): Promise<void> {
    // nats.js would wait for the next connection; what was published meanwhile is dropped anyway.
    this.#requireConnected("Cannot flush");
    await this.#nc.flush();
  }

  async close(): Promise<void> {
    clearInterval(this.#ackSweep);
    this.#failAcks("the NATS connection is closed");
    if (!this.#nc.isClosed()) await this.#nc.close();
  }

  /** Runs a bucket operation: rejects at once while disconnected, maps a revision mismatch. */
  async bucketOperation<T>(action: string, key: string, operation: () => Promise<T>): Promise<T> {
    this.#requireConnected(action);
    try {
      return await operation();
    } catch (error) {
      const { JetStreamApiError } = this.#modules.jetstream;
      if (error instanceof JetStreamApiError && WRONG_LAST_SEQUENCE.includes(error.code)) {
        throw new RevisionConflict(key);
      }
      throw this.#explain(action, error, "the bucket is gone");
    }
  }

  /** A push consumer of every subject of a stream (the last message of each), for bucket watches. */
  async watchLastValues(
    stream: string,
    filter: string,
    onMessage: (msg: JsMsg) => void,
  ): Promise<EngineSubscription> {
    this.#requireConnected(`Cannot watch "${stream}"`);
    const { DeliverPolicy } = this.#modules.jetstream;
    const consumer = await this.#js.consumers.getPushConsumer(stream, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.LastPerSubject,
    });
    // The initial values end with the message that leaves nothing pending (or at once when there is none).
    let initial = (await consumer.info(true)).num_pending > 0;
    let done!: () => void;
    const delivered = new Promise<void>((resolve) => done = resolve);
    const messages = await consumer.consume({
      callback: (msg) => {
        try {
          onMessage(msg);
        } catch (error) {
          rethrowLater(error);
        }
        if (initial && msg.info.pending === 0) {
          initial = false;
          done();
        }
      },
    });
    try {
      // Should the last initial value expire before delivery, no message would say so: ask the server.
      while (initial) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          delivered,
          new Promise((resolve) => timer = setTimeout(resolve, this.#timeoutMs)),
        ]);
        clearTimeout(timer);
        if (initial && (await consumer.info()).num_pending === 0) initial = false;
      }
    } catch (error) {
      messages.stop();
      throw error;
    }
    return { unsubscribe: () => quietly(() => messages.stop()) };
  }

  #manager(): Promise<JetStreamManager> {
    this.#jsm ??= this.#modules.jetstream.jetstreamManager(this.#nc, { timeout: this.#timeoutMs });
    return this.#jsm;
  }

  #requireConnected(action: string): void {
    if (this.#status !== "connected") {
      throw new Error(`${action}: the NATS connection is ${this.#nc.isClosed() ? "closed" : "down"}`);
    }
  }

  /** An Error saying what failed and why, with nats.js' error as the cause. */
  #explain(action: string, error: unknown, noResponders: string, timeoutMs = this.#timeoutMs): Error {
    let reason = error instanceof Error ? error.message : String(error);
    if (error instanceof Error && error.name === "TimeoutError") reason = `no answer within ${timeoutMs} ms`;
    // A JetStream publish that no stream takes gets "no responders", which nats.js calls JetStreamNotEnabled.
    const { RequestError } = this.#modules.nats;
    if (
      error instanceof Error && error.name === "JetStreamNotEnabled" ||
      error instanceof RequestError && error.isNoResponders()
    ) reason = noResponders;
    return new Error(`${action}: ${reason}`, { cause: error });
  }

  async #followStatus(): Promise<void> {
    const closed = this.#nc.closed().then((error) => {
      this.#setStatus("disconnected", error ? `closed: ${error.message}` : "closed");
    });
    for await (const event of this.#nc.status()) {
      if (event.type === "disconnect") this.#setStatus("disconnected", `disconnected from ${event.server}`);
      else if (event.type === "reconnect") this.#setStatus("connected", `reconnected to ${event.server}`);
    }
    await closed;
  }

  #setStatus(status: EngineStatus, detail: string): void {
    if (this.#status === status) return;
    this.#status = status;
    if (status === "disconnected") {
      for (const onDown of this.#onDown) onDown();
    }
    for (const listener of this.#listeners) {
      try {
        listener(status, detail);
      } catch (error) {
        rethrowLater(error);
      }
    }
  }
}

/**
 * JetStream's window for duplicate detection: 2 minutes, or `max_age` when shorter (the server's default at
 * creation; an update to a shorter `max_age` must shorten it too, or the server refuses it).
 */
function duplicateWindow(maxAgeMs: number): number {
  return maxAgeMs > 0 ? Math.min(maxAgeMs, 120_000) : 120_000;
}

/**
 * Reports an error thrown by the caller's handler as an uncaught error, outside nats.js: thrown inside its
 * message callback, it would stop the connection's reader.
 */
function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

function quietly(action: () => unknown): void {
  try {
    action();
  } catch {
    // Already closed: nothing left to stop.
  }
}
