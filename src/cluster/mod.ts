/**
 * Broker clusters: several broker processes that share their clients' messages, retained messages and
 * sessions through NATS with JetStream, so that a client may connect to any of them.
 *
 * ```ts ignore
 * import { Broker } from "@x/mqtt/broker";
 * import { natsCluster } from "@x/mqtt/cluster";
 * const broker = new Broker({ cluster: await natsCluster({ servers: "nats://127.0.0.1:4222", node: "a" }) });
 * await broker.listen({ port: 1883 });
 * ```
 *
 * The NATS packages (`@nats-io/transport-node`, `@nats-io/jetstream`, `@nats-io/kv`) are optional peer
 * dependencies, loaded only by {@linkcode natsCluster}. {@linkcode MemoryHub} runs a cluster inside one process.
 *
 * @module
 */

import { Cluster, type ClusterOptions } from "./cluster.ts";
import { type NatsEngineOptions, openNatsEngine } from "./nats_engine.ts";
import { DeferredEngine } from "./deferred_engine.ts";
import type { ClusterEngine } from "./engine.ts";

export { Cluster, type ClusterCounters, type ClusterOptions } from "./cluster.ts";
export type { ClusterHost, ClusterLink } from "../broker/cluster_link.ts";
export type { MessageSnapshot, SessionSnapshot } from "../machine/broker_machine.ts";
export {
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
export { MemoryEngine, MemoryHub } from "./memory_engine.ts";
export { type NatsEngineOptions, openNatsEngine } from "./nats_engine.ts";

/** Options of {@linkcode natsCluster}: where NATS is, and the node's own options. */
export type NatsClusterOptions = NatsEngineOptions & Omit<ClusterOptions, "engine">;

/**
 * Connects to NATS and makes a cluster node on it, for the `cluster` option of `Broker`.
 *
 * @param options The NATS servers, credentials and TLS, and the node's name.
 * @returns The node, joined once a broker starts it and NATS answers: a node whose NATS servers do not answer
 *   yet serves its own clients and keeps trying (every `reconnectWaitMs`).
 * @throws {Error} When the NATS packages are not installed.
 */
export async function natsCluster(options: NatsClusterOptions): Promise<Cluster> {
  const open = () => openNatsEngine({ name: options.node, ...options });
  let engine: ClusterEngine;
  try {
    engine = await open();
  } catch (error) {
    // Without the packages there is nothing to wait for; a server that does not answer yet is tried again.
    if ((error as Error).message.startsWith("Cannot use a NATS cluster")) throw error;
    engine = new DeferredEngine(open, options.reconnectWaitMs ?? 1000);
  }
  return new Cluster({ ...options, engine });
}
