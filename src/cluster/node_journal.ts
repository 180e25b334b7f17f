/**
 * A node's journal in the engine: the changes to its sessions that outlive a connection (the broker machine's
 * `pollChanges`), written each turn before that turn's packets go out, so that when the node dies (`kill -9`)
 * another node rebuilds its sessions exactly as their clients last saw them. Like a store's write-ahead log,
 * with a checkpoint now and then after which the older records are purged.
 *
 * Records go to the stream `<prefix>_journal`, one subject per run of a node (`<prefix>_j.<node>.<run>`), as
 * JSON: `n` (numbered from 1 without gaps), `at` (wall clock), what the node had routed by then (`seen`,
 * `unrouted`: see {@linkcode RoutedSoFar}) and `changes`. A checkpoint is one or more records with
 * `cp: { first, parts }`, holding everything; a reader takes it once all its parts are there.
 *
 * @module
 */

import type {
  BrokerChange,
  DeliverySnapshot,
  SessionMeta,
  SessionSnapshot,
} from "../machine/broker_machine.ts";
import type { ClusterEngine } from "./engine.ts";
import { decodeJson, encodeJson } from "./envelope.ts";

/** What a node had routed: the last sequence number from each origin, and its own stored but not yet routed. */
export interface RoutedSoFar {
  seen: Record<string, number>;
  unrouted: number[];
}

/** One record of the journal. */
interface JournalRecord extends RoutedSoFar {
  n: number;
  at: number;
  changes: BrokerChange[];
  /** Part of a checkpoint: the number of its first record, and how many records it has. */
  cp?: { first: number; parts: number };
}

/** A node's sessions as its journal left them, for {@linkcode readJournal}. */
export interface JournalState extends RoutedSoFar {
  /** The sessions, their times relative to now (a connected one's expiry and will start now). */
  sessions: SessionSnapshot[];
  /** When the last record read was written (wall clock). */
  at: number;
}

/** What the journal needs of its node. */
export interface JournalNode {
  readonly engine: ClusterEngine;
  readonly prefix: string;
  /** This run of the node (`node:uuid`). */
  readonly boot: string;
  /** Everything the journal describes now (the broker machine's `cluster.checkpoint`). */
  checkpoint(): BrokerChange[];
  /** What the node routed so far. */
  routedSoFar(): RoutedSoFar;
  /** Whether the engine can be used now. */
  available(): boolean;
  log(level: "info" | "warn", message: string): void;
}

/** The most bytes of changes in one record, well under NATS's default 1 MiB message limit. */
const RECORD_BYTES = 256 * 1024;
/**
 * A checkpoint is written once the records since the last one take this many bytes and twice its size (so that
 * a large state is not written again and again), or after this long.
 */
const CHECKPOINT_BYTES = 32 * 1024 * 1024;
const CHECKPOINT_MS = 10 * 60_000;
/** How many checkpoints in a row may fail before the journal gives up until the next write. */
const RETRIES = 3;

/** The stream of every node's journal. */
export function journalStream(prefix: string): string {
  return `${prefix}_journal`;
}

/** The subject of one run's journal. */
export function journalSubject(prefix: string, boot: string): string {
  return `${prefix}_j.${boot.replace(":", ".")}`;
}

/** Writes one run of a node's journal. */
export class NodeJournal {
  readonly #node: JournalNode;
  readonly #subject: string;
  #n = 0;
  /** Settles once every record written so far is stored, or could not be and a checkpoint replaced them. */
  #last: Promise<void> = Promise.resolve();
  /** A record went missing (or the engine was away): the next write is a checkpoint. */
  #broken = true;
  /** Bytes written since the last checkpoint, and that checkpoint's size. */
  #bytes = 0;
  #checkpointBytes = 0;
  #checkpointAt = 0;
  #closed = false;

  /** @param node The node it writes for. */
  constructor(node: JournalNode) {
    this.#node = node;
    this.#subject = journalSubject(node.prefix, node.boot);
  }

  /**
   * Records a turn's changes (retained ones are left out: the cluster shares those otherwise).
   *
   * @returns Settles once they (and every record before) are stored; `undefined` when nothing is to wait for.
   *   While the engine is away nothing is written, and the next write after it is a checkpoint.
   */
  write(changes: readonly BrokerChange[]): Promise<void> | undefined {
    const kept = changes.filter((change) => change.type !== "retained");
    if (kept.length === 0 || this.#closed) return undefined;
    if (!this.#node.available()) {
      this.#broken = true;
      return undefined;
    }
    if (
      this.#broken || this.#bytes >= Math.max(CHECKPOINT_BYTES, 2 * this.#checkpointBytes) ||
      Date.now() - this.#checkpointAt >= CHECKPOINT_MS
    ) return this.#chain(this.#checkpoint(0));
    const stored = this.#append(kept, undefined);
    return this.#chain(stored.then(() => {}, (error) => this.#recover(error, 0)));
  }

  /**
   * Writes a checkpoint now if records went missing (the engine was away): what changed meanwhile is then in
   * the journal without waiting for the next change.
   */
  repair(): void {
    if (this.#broken && !this.#closed && this.#node.available()) void this.#chain(this.#checkpoint(0));
  }

  /** Stops writing; with `purge`, removes the journal (its sessions were left elsewhere). */
  async close(purge: boolean): Promise<void> {
    this.#closed = true;
    await this.#last;
    if (purge && this.#node.available()) {
      await this.#node.engine.purge(journalStream(this.#node.prefix), this.#subject, Number.MAX_SAFE_INTEGER)
        .catch(() => {});
    }
  }

  #chain(done: Promise<void>): Promise<void> {
    const last = this.#last.then(() => done);
    this.#last = last;
    return last;
  }

  /** Writes the whole state, then purges what came before it; resolves once it is stored. */
  #checkpoint(attempt: number): Promise<void> {
    this.#broken = false;
    this.#bytes = 0;
    this.#checkpointAt = Date.now();
    const stored = this.#append(this.#node.checkpoint(), this.#n + 1);
    this.#checkpointBytes = this.#bytes;
    this.#bytes = 0;
    return stored.then((first) => {
      this.#node.engine.purge(journalStream(this.#node.prefix), this.#subject, first).catch(() => {});
    }, (error) => this.#recover(error, attempt + 1));
  }

  /**
   * A record could not be stored: the journal misses it, so only a checkpoint makes it whole again; until
   * that is stored, what waits for the journal keeps waiting (a few attempts, then it is let go).
   */
  #recover(error: unknown, attempt: number): Promise<void> {
    this.#broken = true;
    if (this.#closed || attempt >= RETRIES || !this.#node.available()) {
      this.#node.log(
        "warn",
        `Could not write the sessions' journal to the cluster (${
          (error as Error).message
        }): until it is written again, another node taking over this node's sessions may find them older`,
      );
      return Promise.resolve();
    }
    return this.#checkpoint(attempt);
  }

  /**
   * Stores changes in as many records as their size needs (`checkpoint`: as the parts of a checkpoint starting
   * at that number).
   *
   * @returns The stream sequence of the first record.
   */
  #append(changes: readonly BrokerChange[], checkpoint: number | undefined): Promise<number> {
    const routed = this.#node.routedSoFar();
    const at = Date.now();
    const chunks: Uint8Array[][] = [[]];
    let size = 0;
    for (const change of changes) {
      const bytes = encodeJson(change);
      if (size + bytes.length > RECORD_BYTES && size > 0) {
        chunks.push([]);
        size = 0;
      }
      chunks[chunks.length - 1].push(bytes);
      size += bytes.length;
    }
    const stores: Promise<number>[] = [];
    for (const chunk of chunks) {
      const head: Omit<JournalRecord, "changes"> = { n: ++this.#n, at, ...routed };
      if (checkpoint !== undefined) head.cp = { first: checkpoint, parts: chunks.length };
      const data = joinRecord(encodeJson(head), chunk);
      this.#bytes += data.length;
      stores.push(this.#node.engine.store(this.#subject, data));
    }
    return Promise.all(stores).then((sequences) => sequences[0]);
  }
}

const OPEN = new TextEncoder().encode(',"changes":[');
const CLOSE = new TextEncoder().encode("]}");
const COMMA = new TextEncoder().encode(",");

/** `{...head, changes: [...]}` from the head's JSON and each change's JSON, without encoding them again. */
function joinRecord(head: Uint8Array, changes: Uint8Array[]): Uint8Array {
  let length = head.length - 1 + OPEN.length + CLOSE.length + Math.max(0, changes.length - 1);
  for (const change of changes) length += change.length;
  const out = new Uint8Array(length);
  out.set(head.subarray(0, head.length - 1));
  let at = head.length - 1;
  out.set(OPEN, at);
  at += OPEN.length;
  changes.forEach((change, i) => {
    if (i > 0) out.set(COMMA, at++);
    out.set(change, at);
    at += change.length;
  });
  out.set(CLOSE, at);
  return out;
}

/** A session as the journal builds it up. */
interface Mirrored {
  meta: SessionMeta;
  /** When the record that wrote `meta` was written. */
  at: number;
  deliveries: Map<number, { delivery: DeliverySnapshot; at: number }>;
  /** Made for a delivery before its session's meta came. */
  placeholder?: boolean;
}

/**
 * Reads what a run of a node wrote to its journal: the latest complete checkpoint and the records after it, up
 * to the first one missing. Those are all its clients may have seen: the node sent nothing before its record was
 * stored.
 *
 * @param engine The engine.
 * @param prefix The cluster's prefix.
 * @param boot The run (`node:uuid`).
 * @returns Its sessions, or `undefined` when it wrote nothing readable.
 */
export async function readJournal(
  engine: ClusterEngine,
  prefix: string,
  boot: string,
): Promise<JournalState | undefined> {
  let sessions = new Map<string, Mirrored>();
  let last: JournalRecord | undefined;
  /** The number the next record must have to be applied; `undefined` while waiting for a checkpoint. */
  let expected: number | undefined = 1;
  let checkpoint: { first: number; parts: number; records: JournalRecord[] } | undefined;
  await engine.replay(journalStream(prefix), { sequence: 1 }, (data) => {
    const record = decodeJson<JournalRecord>(data);
    if (record.cp !== undefined) {
      if (record.n === record.cp.first) checkpoint = { ...record.cp, records: [] };
      if (checkpoint === undefined || record.n !== checkpoint.first + checkpoint.records.length) {
        checkpoint = undefined;
        return;
      }
      checkpoint.records.push(record);
      if (checkpoint.records.length < checkpoint.parts) return;
      sessions = new Map();
      for (const part of checkpoint.records) apply(sessions, part);
      checkpoint = undefined;
    } else {
      if (record.n !== expected) {
        expected = undefined;
        return;
      }
      apply(sessions, record);
    }
    last = record;
    expected = record.n + 1;
  }, journalSubject(prefix, boot));
  if (last === undefined) return undefined;
  const now = Date.now();
  const result: SessionSnapshot[] = [];
  for (const { meta, at, deliveries, placeholder } of sessions.values()) {
    if (placeholder) continue;
    const snapshot: SessionSnapshot = { ...meta, inflight: [], queue: [] };
    if (!meta.connected) {
      // Offline when written: its deadlines went on counting since.
      if (snapshot.expiresInMs !== undefined) snapshot.expiresInMs -= now - at;
      if (snapshot.willInMs !== undefined) snapshot.willInMs -= now - at;
    }
    for (const key of [...deliveries.keys()].sort((a, b) => a - b)) {
      const { delivery, at } = deliveries.get(key) as { delivery: DeliverySnapshot; at: number };
      const message = { ...delivery.message };
      if (message.expiresInMs !== undefined) message.expiresInMs -= now - at;
      (delivery.packetId === undefined ? snapshot.queue : snapshot.inflight).push({ ...delivery, message });
    }
    result.push(snapshot);
  }
  const { at, seen, unrouted } = last as JournalRecord;
  return { sessions: result, at, seen, unrouted };
}

function apply(sessions: Map<string, Mirrored>, record: JournalRecord): void {
  for (const change of record.changes) {
    switch (change.type) {
      case "session": {
        const existing = sessions.get(change.session.clientId);
        if (existing === undefined) {
          sessions.set(change.session.clientId, {
            meta: change.session,
            at: record.at,
            deliveries: new Map(),
          });
        } else {
          existing.meta = change.session;
          existing.at = record.at;
          existing.placeholder = false;
        }
        break;
      }
      case "sessionEnded":
        sessions.delete(change.clientId);
        break;
      case "delivery": {
        let session = sessions.get(change.clientId);
        if (change.delivery === undefined) {
          session?.deliveries.delete(change.key);
          break;
        }
        if (session === undefined) {
          // Its meta comes later in the same turn's changes.
          session = {
            meta: { clientId: change.clientId, expiryInterval: 0, subscriptions: [], inboundQoS2: [] },
            at: record.at,
            deliveries: new Map(),
            placeholder: true,
          };
          sessions.set(change.clientId, session);
        }
        session.deliveries.set(change.key, { delivery: change.delivery, at: record.at });
        break;
      }
      case "retained":
        break;
    }
  }
}
