/**
 * An engine that is not there yet: it keeps trying to open the real one (NATS not up when the broker starts),
 * is `"disconnected"` until then, refuses what needs the engine, keeps the subscriptions asked for meanwhile,
 * and from then on is the real engine.
 *
 * @module
 */

import type {
  BucketOptions,
  ClusterEngine,
  EngineBucket,
  EngineHandler,
  EngineStatus,
  EngineSubscription,
  ReplayStart,
  StreamOptions,
} from "./engine.ts";

interface Waiting {
  kind: "subscribe" | "serve";
  subject: string;
  queue: string | undefined;
  handler: EngineHandler | ((data: Uint8Array) => Promise<Uint8Array> | Uint8Array);
  inner: EngineSubscription | undefined;
  closed: boolean;
}

/** A {@linkcode ClusterEngine} opened in the background, retried until it opens. */
export class DeferredEngine implements ClusterEngine {
  #inner: ClusterEngine | undefined;
  readonly #waiting = new Set<Waiting>();
  readonly #listeners: ((status: EngineStatus, detail?: string) => void)[] = [];
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Why the last attempt failed. */
  lastError: Error | undefined;

  /**
   * Starts opening the engine.
   *
   * @param open Opens the real engine; called again `retryMs` after each failure.
   * @param retryMs Milliseconds between attempts.
   */
  constructor(open: () => Promise<ClusterEngine>, retryMs: number) {
    const attempt = () => {
      open().then((inner) => {
        if (this.#closed) {
          void inner.close();
          return;
        }
        this.#inner = inner;
        for (const waiting of this.#waiting) this.#attach(waiting, inner);
        for (const listener of this.#listeners) inner.onStatus(listener);
        for (const listener of this.#listeners) listener(inner.status, "connected at last");
      }, (error) => {
        this.lastError = error as Error;
        if (!this.#closed) this.#timer = setTimeout(attempt, retryMs);
      });
    };
    attempt();
  }

  get status(): EngineStatus {
    return this.#inner?.status ?? "disconnected";
  }

  onStatus(listener: (status: EngineStatus, detail?: string) => void): void {
    this.#listeners.push(listener);
    this.#inner?.onStatus(listener);
  }

  publish(subject: string, data: Uint8Array): void {
    this.#inner?.publish(subject, data);
  }

  store(subject: string, data: Uint8Array): Promise<number> {
    return this.#inner?.store(subject, data) ?? this.#away(`store on "${subject}"`);
  }

  subscribe(subject: string, handler: EngineHandler, queue?: string): EngineSubscription {
    return this.#keep({ kind: "subscribe", subject, queue, handler, inner: undefined, closed: false });
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.#inner?.request(subject, data, timeoutMs) ?? this.#away(`request "${subject}"`);
  }

  serve(
    subject: string,
    handler: (data: Uint8Array) => Promise<Uint8Array> | Uint8Array,
    queue?: string,
  ): EngineSubscription {
    return this.#keep({ kind: "serve", subject, queue, handler, inner: undefined, closed: false });
  }

  bucket(name: string, options?: BucketOptions): Promise<EngineBucket> {
    return this.#inner?.bucket(name, options) ?? this.#away(`open bucket "${name}"`);
  }

  stream(name: string, options: StreamOptions): Promise<void> {
    return this.#inner?.stream(name, options) ?? this.#away(`make stream "${name}"`);
  }

  replay(
    stream: string,
    from: ReplayStart,
    onMessage: (data: Uint8Array, sequence: number) => void,
    subject?: string,
  ): Promise<void> {
    return this.#inner?.replay(stream, from, onMessage, subject) ?? this.#away(`replay "${stream}"`);
  }

  purge(stream: string, subject: string, before: number): Promise<void> {
    return this.#inner?.purge(stream, subject, before) ?? this.#away(`purge "${stream}"`);
  }

  flush(): Promise<void> {
    return this.#inner?.flush() ?? this.#away("flush");
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#inner?.close();
  }

  #away<T>(what: string): Promise<T> {
    const reason = this.lastError === undefined ? "" : ` (${this.lastError.message})`;
    return Promise.reject(new Error(`Cannot ${what}: the cluster engine is not reachable yet${reason}`));
  }

  /** Subscribes now if the engine is there, else once it is. */
  #keep(waiting: Waiting): EngineSubscription {
    if (this.#inner !== undefined) this.#attach(waiting, this.#inner);
    else this.#waiting.add(waiting);
    return {
      unsubscribe: () => {
        waiting.closed = true;
        this.#waiting.delete(waiting);
        waiting.inner?.unsubscribe();
      },
    };
  }

  #attach(waiting: Waiting, inner: ClusterEngine): void {
    this.#waiting.delete(waiting);
    if (waiting.closed) return;
    waiting.inner = waiting.kind === "subscribe"
      ? inner.subscribe(waiting.subject, waiting.handler as EngineHandler, waiting.queue)
      : inner.serve(
        waiting.subject,
        waiting.handler as (data: Uint8Array) => Promise<Uint8Array> | Uint8Array,
        waiting.queue,
      );
  }
}
