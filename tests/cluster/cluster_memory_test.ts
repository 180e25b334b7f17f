/**
 * The cluster scenarios on brokers of this process sharing the in-memory engine (`MemoryHub`), where one node
 * can be cut off the engine alone.
 */

import { Broker } from "../../src/broker/broker.ts";
import { Cluster } from "../../src/cluster/cluster.ts";
import { type MemoryEngine, MemoryHub } from "../../src/cluster/memory_engine.ts";
import { clusterScenarios } from "./_scenarios.ts";

clusterScenarios("cluster on the in-memory engine", async (nodes) => {
  const hub = new MemoryHub();
  const engines: MemoryEngine[] = [];
  const brokers: Broker[] = [];
  const logs: string[][] = [];
  const ports: number[] = [];
  for (let i = 0; i < nodes; i++) {
    const engine = hub.engine();
    const lines: string[] = [];
    const broker = new Broker({
      cluster: new Cluster({ engine, node: `n${i}`, heartbeatMs: 200 }),
      sysInterval: 0,
      log: (_level, message) => lines.push(message),
    });
    ports.push((await broker.listen({ port: 0 })).port);
    engines.push(engine);
    brokers.push(broker);
    logs.push(lines);
  }
  return {
    ports,
    brokers,
    logs,
    setEngine: (up, node) => {
      engines[node].setConnected(up);
      return Promise.resolve();
    },
    partial: true,
    stored: () => Promise.resolve(hub.storedCount("mqtt_messages")),
    stopNode: (node) => brokers[node].close(),
    close: async () => {
      await Promise.all(brokers.map((broker) => broker.close()));
    },
  };
});
