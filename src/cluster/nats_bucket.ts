/**
 * A key-value bucket of the NATS engine ({@linkcode "./nats_engine.ts"}): nats.js's KV under the engine's
 * rules (rejected at once while disconnected, revision conflicts as `RevisionConflict`), with keys outside
 * NATS's key alphabet escaped and watches that say when the current values are all in.
 *
 * @module
 */

import type { KV, KvEntry } from "@nats-io/kv";
import type { JsMsg } from "@nats-io/jetstream";
import type { BucketEntry, EngineBucket, EngineSubscription } from "./engine.ts";

/** What a bucket needs of its engine. */
export interface BucketHost {
  /** Runs a bucket operation: rejects at once while disconnected, maps a revision mismatch. */
  bucketOperation<T>(action: string, key: string, operation: () => Promise<T>): Promise<T>;
  /** A push consumer of the last message of every subject of a stream; resolves once the current ones came. */
  watchLastValues(
    stream: string,
    filter: string,
    onMessage: (msg: JsMsg) => void,
  ): Promise<EngineSubscription>;
}

/** A KV bucket; keys outside NATS' key alphabet are escaped (see {@linkcode encodeKey}). */
export class NatsBucket implements EngineBucket {
  #engine: BucketHost;
  #kv: KV;
  #name: string;

  constructor(engine: BucketHost, kv: KV, name: string) {
    this.#engine = engine;
    this.#kv = kv;
    this.#name = name;
  }

  get(key: string): Promise<BucketEntry | undefined> {
    return this.#engine.bucketOperation(
      `Cannot read "${key}"`,
      key,
      async () => entry(key, await this.#kv.get(encodeKey(key))),
    );
  }

  put(key: string, value: Uint8Array): Promise<number> {
    return this.#engine.bucketOperation(
      `Cannot write "${key}"`,
      key,
      () => this.#kv.put(encodeKey(key), value),
    );
  }

  update(key: string, value: Uint8Array, revision: number): Promise<number> {
    return this.#engine.bucketOperation(
      `Cannot update "${key}"`,
      key,
      () =>
        revision === 0
          ? this.#kv.create(encodeKey(key), value)
          : this.#kv.update(encodeKey(key), value, revision),
    );
  }

  delete(key: string, revision?: number): Promise<void> {
    return this.#engine.bucketOperation(
      `Cannot delete "${key}"`,
      key,
      () => this.#kv.delete(encodeKey(key), revision === undefined ? undefined : { previousSeq: revision }),
    );
  }

  watch(onEntry: (entry: BucketEntry) => void): Promise<EngineSubscription> {
    const prefix = `$KV.${this.#name}.`;
    return this.#engine.watchLastValues(`KV_${this.#name}`, `${prefix}>`, (msg) => {
      const operation = msg.headers?.get("KV-Operation");
      onEntry({
        key: decodeKey(msg.subject.slice(prefix.length)),
        value: operation === "DEL" || operation === "PURGE" ? undefined : bytes(msg.data),
        revision: msg.seq,
      });
    });
  }
}

function entry(key: string, kv: KvEntry | null): BucketEntry | undefined {
  if (kv === null || kv.operation !== "PUT") return undefined;
  return { key, value: bytes(kv.value), revision: kv.revision };
}

/** A plain `Uint8Array` view of nats.js' bytes (a `Buffer` on Node and Bun). */
export function bytes(data: Uint8Array): Uint8Array {
  return data.constructor === Uint8Array
    ? data
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Characters a NATS KV key may hold as they are; anything else is written `=XX` per UTF-8 byte. */
const PLAIN_KEY = /^[-\w/]+$/;

/** Maps any string to a valid NATS KV key, reversibly (`"a.b"` → `"a=2Eb"`, `""` → `"="`). */
function encodeKey(key: string): string {
  if (PLAIN_KEY.test(key)) return key;
  if (key === "") return "=";
  let out = "";
  for (const char of key) {
    if (PLAIN_KEY.test(char)) {
      out += char;
      continue;
    }
    for (const byte of encoder.encode(char)) out += "=" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** The inverse of {@linkcode encodeKey}. */
function decodeKey(key: string): string {
  if (!key.includes("=")) return key;
  if (key === "=") return "";
  const bytes: number[] = [];
  for (let i = 0; i < key.length; i++) {
    if (key[i] === "=") {
      bytes.push(parseInt(key.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(key.charCodeAt(i));
  }
  return decoder.decode(new Uint8Array(bytes));
}
