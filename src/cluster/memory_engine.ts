/**
 * An in-memory {@linkcode ClusterEngine}: several broker nodes of one process share a {@linkcode MemoryHub} as
 * they would share a NATS server. It keeps NATS's semantics where the cluster relies on them (subject
 * wildcards, queue groups, deliveries asynchronous and in publish order, compare-and-set revisions, watches),
 * and lets a test cut one node off the engine and bring it back.
 *
 * @module
 */

import {
  type BucketEntry,
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

/** Whether a NATS subject pattern (`*` one token, `>` the rest) matches a subject. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

interface HubSubscription {
  readonly engine: MemoryEngine;
  readonly subject: string;
  readonly queue: string | undefined;
  readonly handler: EngineHandler;
  /** For `serve`: answers a request. */
  readonly serve?: (data: Uint8Array) => Promise<Uint8Array> | Uint8Array;
  closed: boolean;
}

/** A message a stream holds. */
interface StreamMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** When it was stored (`Date.now()`). */
  readonly at: number;
  /** Its number in the stream: 1 for the first one ever stored, +1 for each next one. */
  readonly sequence: number;
}

interface Stream {
  options: StreamOptions;
  /** Oldest first, so in ascending sequence. */
  readonly messages: StreamMessage[];
  /** The sequence of the last message stored; 0 before the first one. It stays when old ones are trimmed. */
  lastSequence: number;
}

/** How many messages a replay hands over per turn of the hub. */
const REPLAY_BATCH = 1000;

interface Stored {
  value: Uint8Array | undefined;
  revision: number;
  at: number;
}

class Bucket {
  readonly entries: Map<string, Stored> = new Map();
  readonly watchers: Set<(entry: BucketEntry) => void> = new Set();
  revision: number = 0;
  readonly maxAgeMs: number;
  constructor(maxAgeMs: number) {
    this.maxAgeMs = maxAgeMs;
  }

  live(key: string): Stored | undefined {
    const stored = this.entries.get(key);
    if (stored === undefined || stored.value === undefined) return undefined;
    if (this.maxAgeMs > 0 && Date.now() - stored.at >= this.maxAgeMs) return undefined;
    return stored;
  }
}

/** What several {@linkcode MemoryEngine}s share: subscriptions, streams and buckets. */
export class MemoryHub {
  readonly #subscriptions = new Set<HubSubscription>();
  readonly #streams = new Map<string, Stream>();
  readonly #buckets = new Map<string, Bucket>();
  /** Deliveries waiting for the next turn, in publish order. */
  readonly #pending: (() => void)[] = [];
  #scheduled = false;
  /** Queue-group turns, by queue name and subject. */
  readonly #turns = new Map<string, number>();

  /**
   * A new engine of this hub, connected.
   *
   * @returns The engine.
   */
  engine(): MemoryEngine {
    return new MemoryEngine(this);
  }

  /** @internal */
  add(subscription: HubSubscription): void {
    this.#subscriptions.add(subscription);
  }

  /** @internal */
  remove(subscription: HubSubscription): void {
    subscription.closed = true;
    this.#subscriptions.delete(subscription);
  }

  /** @internal Delivers a message to every matching subscription, one per queue group. */
  deliver(subject: string, data: Uint8Array): void {
    const groups = new Map<string, HubSubscription[]>();
    const targets: HubSubscription[] = [];
    for (const sub of this.#subscriptions) {
      if (sub.serve !== undefined || sub.engine.status !== "connected") continue;
      if (!subjectMatches(sub.subject, subject)) continue;
      if (sub.queue === undefined) {
        targets.push(sub);
        continue;
      }
      const key = `${sub.queue} ${sub.subject}`;
      const members = groups.get(key);
      if (members === undefined) groups.set(key, [sub]);
      else members.push(sub);
    }
    for (const [key, members] of groups) {
      const turn = this.#turns.get(key) ?? 0;
      this.#turns.set(key, turn + 1);
      targets.push(members[turn % members.length]);
    }
    const copy = data.slice();
    for (const sub of targets) {
      this.#later(() => {
        if (!sub.closed && sub.engine.status === "connected") sub.handler(copy, subject);
      });
    }
  }

  /** @internal Stores a message in the stream whose subjects match. */
  store(subject: string, data: Uint8Array): number | undefined {
    for (const stream of this.#streams.values()) {
      if (!stream.options.subjects.some((s) => subjectMatches(s, subject))) continue;
      stream.messages.push({ subject, data: data.slice(), at: Date.now(), sequence: ++stream.lastSequence });
      let bytes = 0;
      for (const m of stream.messages) bytes += m.data.length;
      while (bytes > stream.options.maxBytes && stream.messages.length > 0) {
        bytes -= (stream.messages.shift() as { data: Uint8Array }).data.length;
      }
      return stream.lastSequence;
    }
    return undefined;
  }

  /** @internal */
  stream(name: string, options: StreamOptions): void {
    const existing = this.#streams.get(name);
    if (existing === undefined) this.#streams.set(name, { options, messages: [], lastSequence: 0 });
    else existing.options = options;
  }

  /** @internal The stream of that name, if there is one. */
  streamNamed(name: string): Stream | undefined {
    return this.#streams.get(name);
  }

  /**
   * How many messages a stream holds, for tests.
   *
   * @param name The stream's name.
   * @returns The count; 0 when there is no such stream.
   */
  storedCount(name: string): number {
    return this.#streams.get(name)?.messages.length ?? 0;
  }

  /** @internal */
  server(subject: string): HubSubscription | undefined {
    const servers = [...this.#subscriptions].filter((sub) =>
      sub.serve !== undefined && sub.engine.status === "connected" && subjectMatches(sub.subject, subject)
    );
    if (servers.length === 0) return undefined;
    const turn = this.#turns.get(`serve ${subject}`) ?? 0;
    this.#turns.set(`serve ${subject}`, turn + 1);
    return servers[turn % servers.length];
  }

  /** @internal */
  bucket(name: string, maxAgeMs: number): Bucket {
    let bucket = this.#buckets.get(name);
    if (bucket === undefined) {
      bucket = new Bucket(maxAgeMs);
      this.#buckets.set(name, bucket);
    }
    return bucket;
  }

  /** @internal Runs `task` on a later turn, after the tasks queued before it. */
  later(task: () => void): void {
    this.#later(task);
  }

  #later(task: () => void): void {
    this.#pending.push(task);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setTimeout(() => {
      this.#scheduled = false;
      const tasks = this.#pending.splice(0);
      for (const run of tasks) run();
    }, 0);
  }
}

/**
 * One node's connection to a {@linkcode MemoryHub}.
 *
 * @example Two engines of one hub
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryHub } from "@x/mqtt/cluster";
 * const hub = new MemoryHub();
 * const a = hub.engine();
 * const b = hub.engine();
 * const got = new Promise<string>((resolve) => {
 *   b.subscribe("mqtt.*.sensors.>", (data) => resolve(new TextDecoder().decode(data)));
 * });
 * a.publish("mqtt.m.sensors.1", new TextEncoder().encode("21.5"));
 * assert.equal(await got, "21.5");
 * await a.close();
 * await b.close();
 * ```
 */
export class MemoryEngine implements ClusterEngine {
  readonly #hub: MemoryHub;
  readonly #listeners: ((status: EngineStatus, detail?: string) => void)[] = [];
  readonly #mine = new Set<HubSubscription>();
  #status: EngineStatus = "connected";
  #closed = false;

  /**
   * Connects to a hub; {@linkcode MemoryHub.engine} does it too.
   *
   * @param hub The hub it connects to.
   */
  constructor(hub: MemoryHub) {
    this.#hub = hub;
  }

  get status(): EngineStatus {
    return this.#status;
  }

  /**
   * Cuts this engine off the hub (`false`) or brings it back (`true`), as a network partition would: while
   * cut off nothing is delivered to it, its publishes are lost and `store` rejects.
   *
   * @param up Whether it is connected.
   */
  setConnected(up: boolean): void {
    const status: EngineStatus = up ? "connected" : "disconnected";
    if (status === this.#status || this.#closed) return;
    this.#status = status;
    for (const listener of this.#listeners) listener(status, up ? "reconnected" : "cut off");
  }

  onStatus(listener: (status: EngineStatus, detail?: string) => void): void {
    this.#listeners.push(listener);
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.#status === "connected") this.#hub.deliver(subject, data);
  }

  store(subject: string, data: Uint8Array): Promise<number> {
    if (this.#status !== "connected") {
      return Promise.reject(new Error(`Cannot store on "${subject}": the engine is disconnected`));
    }
    const copy = data.slice();
    // Stored on a later turn, as a server would: until then the message is nowhere.
    return new Promise((resolve, reject) => {
      this.#hub.later(() => {
        const sequence = this.#status === "connected" ? this.#hub.store(subject, copy) : undefined;
        if (this.#status !== "connected") {
          reject(new Error(`Cannot store on "${subject}": the engine is disconnected`));
        } else if (sequence === undefined) {
          reject(new Error(`Cannot store on "${subject}": no stream takes that subject`));
        } else {
          this.#hub.deliver(subject, copy);
          resolve(sequence);
        }
      });
    });
  }

  subscribe(subject: string, handler: EngineHandler, queue?: string): EngineSubscription {
    return this.#add({ engine: this, subject, queue, handler, closed: false });
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.#status !== "connected") {
      return Promise.reject(new Error(`Cannot request "${subject}": the engine is disconnected`));
    }
    const server = this.#hub.server(subject);
    if (server?.serve === undefined) {
      return Promise.reject(new NoResponders(`Cannot request "${subject}"`));
    }
    const serve = server.serve;
    const copy = data.slice();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`Cannot request "${subject}": no answer in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#hub.later(() => {
        Promise.resolve()
          .then(() => serve(copy))
          .then((answer) => {
            clearTimeout(timer);
            resolve(answer.slice());
          }, (error) => {
            clearTimeout(timer);
            reject(error);
          });
      });
    });
  }

  serve(
    subject: string,
    handler: (data: Uint8Array) => Promise<Uint8Array> | Uint8Array,
    queue?: string,
  ): EngineSubscription {
    return this.#add({ engine: this, subject, queue, handler: () => {}, serve: handler, closed: false });
  }

  bucket(name: string, options: BucketOptions = {}): Promise<EngineBucket> {
    if (this.#status !== "connected") {
      return Promise.reject(new Error(`Cannot open bucket "${name}": the engine is disconnected`));
    }
    return Promise.resolve(new MemoryBucket(this, this.#hub, this.#hub.bucket(name, options.maxAgeMs ?? 0)));
  }

  stream(name: string, options: StreamOptions): Promise<void> {
    if (this.#status !== "connected") {
      return Promise.reject(new Error(`Cannot make stream "${name}": the engine is disconnected`));
    }
    this.#hub.stream(name, options);
    return Promise.resolve();
  }

  replay(
    stream: string,
    from: ReplayStart,
    onMessage: (data: Uint8Array, sequence: number) => void,
    subject?: string,
  ): Promise<void> {
    const action = `Cannot replay the stream "${stream}"`;
    if (this.#status !== "connected") {
      return Promise.reject(new Error(`${action}: the engine is disconnected`));
    }
    // The end is fixed now: what is stored from here on is not replayed.
    const end = this.#hub.streamNamed(stream)?.lastSequence ?? 0;
    let next = "sequence" in from ? from.sequence : 1;
    return new Promise((resolve, reject) => {
      // A batch per turn of the hub, as a server would send them: other deliveries go on meanwhile.
      const deliver = () => {
        if (this.#status !== "connected") return reject(new Error(`${action}: the engine is disconnected`));
        const found = this.#hub.streamNamed(stream);
        if (found === undefined) return reject(new Error(`${action}: no such stream`));
        const { messages, options } = found;
        // Messages are in ascending sequence: find the first one at `next` or after (some may be trimmed).
        let low = 0;
        let high = messages.length;
        while (low < high) {
          const middle = (low + high) >>> 1;
          if (messages[middle].sequence < next) low = middle + 1;
          else high = middle;
        }
        const now = Date.now();
        let handed = 0;
        let i = low;
        for (; i < messages.length && messages[i].sequence <= end && handed < REPLAY_BATCH; i++) {
          const message = messages[i];
          next = message.sequence + 1;
          // What NATS would have removed by now (this engine does not expire messages) is not replayed.
          if (options.maxAgeMs > 0 && now - message.at >= options.maxAgeMs) continue;
          if ("timeMs" in from && message.at < from.timeMs) continue;
          if (subject !== undefined && !subjectMatches(subject, message.subject)) continue;
          handed++;
          try {
            onMessage(message.data.slice(), message.sequence);
          } catch (error) {
            // The handler's error is its own: report it as uncaught, and go on with the replay.
            queueMicrotask(() => {
              throw error;
            });
          }
        }
        if (i === messages.length || messages[i].sequence > end) resolve();
        else this.#hub.later(deliver);
      };
      this.#hub.later(deliver);
    });
  }

  purge(stream: string, subject: string, before: number): Promise<void> {
    if (this.#status !== "connected") {
      return Promise.reject(new Error(`Cannot purge the stream "${stream}": the engine is disconnected`));
    }
    const found = this.#hub.streamNamed(stream);
    if (found === undefined) {
      return Promise.reject(new Error(`Cannot purge the stream "${stream}": no such stream`));
    }
    const kept = found.messages.filter((m) => m.subject !== subject || m.sequence >= before);
    found.messages.splice(0, found.messages.length, ...kept);
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return new Promise((resolve) => this.#hub.later(resolve));
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const sub of this.#mine) this.#hub.remove(sub);
    this.#mine.clear();
    this.#status = "disconnected";
    return Promise.resolve();
  }

  #add(subscription: HubSubscription): EngineSubscription {
    this.#hub.add(subscription);
    this.#mine.add(subscription);
    return {
      unsubscribe: () => {
        this.#hub.remove(subscription);
        this.#mine.delete(subscription);
      },
    };
  }
}

class MemoryBucket implements EngineBucket {
  readonly #engine: MemoryEngine;
  readonly #hub: MemoryHub;
  readonly #bucket: Bucket;

  constructor(engine: MemoryEngine, hub: MemoryHub, bucket: Bucket) {
    this.#engine = engine;
    this.#hub = hub;
    this.#bucket = bucket;
  }

  get(key: string): Promise<BucketEntry | undefined> {
    return this.#run(() => {
      const stored = this.#bucket.live(key);
      return stored === undefined
        ? undefined
        : { key, value: stored.value?.slice(), revision: stored.revision };
    });
  }

  put(key: string, value: Uint8Array): Promise<number> {
    return this.#run(() => this.#set(key, value.slice()));
  }

  update(key: string, value: Uint8Array, revision: number): Promise<number> {
    return this.#run(() => {
      const current = this.#bucket.live(key)?.revision ?? 0;
      if (current !== revision) throw new RevisionConflict(key);
      return this.#set(key, value.slice());
    });
  }

  delete(key: string, revision?: number): Promise<void> {
    return this.#run(() => {
      if (revision !== undefined && (this.#bucket.live(key)?.revision ?? 0) !== revision) {
        throw new RevisionConflict(key);
      }
      if (this.#bucket.live(key) !== undefined) this.#set(key, undefined);
    });
  }

  watch(onEntry: (entry: BucketEntry) => void): Promise<EngineSubscription> {
    return this.#run(() => {
      for (const [key, stored] of [...this.#bucket.entries].sort((a, b) => a[1].revision - b[1].revision)) {
        if (this.#bucket.live(key) === undefined) continue;
        onEntry({ key, value: stored.value?.slice(), revision: stored.revision });
      }
      const watcher = (entry: BucketEntry) => {
        if (this.#engine.status === "connected") onEntry(entry);
      };
      this.#bucket.watchers.add(watcher);
      return { unsubscribe: () => this.#bucket.watchers.delete(watcher) };
    });
  }

  #set(key: string, value: Uint8Array | undefined): number {
    const bucket = this.#bucket;
    const revision = ++bucket.revision;
    bucket.entries.set(key, { value, revision, at: Date.now() });
    for (const watcher of bucket.watchers) {
      this.#hub.later(() => watcher({ key, value: value?.slice(), revision }));
    }
    return revision;
  }

  #run<T>(task: () => T): Promise<T> {
    if (this.#engine.status !== "connected") {
      return Promise.reject(new Error("Cannot use the bucket: the engine is disconnected"));
    }
    return new Promise((resolve, reject) => {
      this.#hub.later(() => {
        try {
          resolve(task());
        } catch (error) {
          reject(error);
        }
      });
    });
  }
}
