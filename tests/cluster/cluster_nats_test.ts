/**
 * The cluster scenarios on three brokers of this process, each with its own connection to a real nats-server
 * (JetStream in a temporary directory) that the test starts on a free port. Taking the engine away kills the
 * server (all nodes lose it) and starts it again on the same port and storage.
 */

import { Broker } from "../../src/broker/broker.ts";
import { natsCluster } from "../../src/cluster/mod.ts";
import { natsSkipReason, startNats } from "./_nats.ts";
import { clusterScenarios } from "./_scenarios.ts";

clusterScenarios("cluster on nats-server", async (nodes) => {
  const skip = await natsSkipReason();
  if (skip !== undefined) {
    console.log(skip);
    return undefined;
  }
  const server = await startNats();
  if (server === undefined) return undefined;
  const brokers: Broker[] = [];
  const logs: string[][] = [];
  const ports: number[] = [];
  for (let i = 0; i < nodes; i++) {
    const lines: string[] = [];
    const broker = new Broker({
      cluster: await natsCluster({
        servers: server.url,
        node: `n${i}`,
        heartbeatMs: 200,
        reconnectWaitMs: 200,
      }),
      sysInterval: 0,
      log: (_level, message) => lines.push(message),
    });
    ports.push((await broker.listen({ port: 0 })).port);
    brokers.push(broker);
    logs.push(lines);
  }
  return {
    ports,
    brokers,
    logs,
    setEngine: (up) => up ? server.restart() : server.kill(),
    stopNode: (node) => brokers[node].close(),
    close: async () => {
      await Promise.all(brokers.map((broker) => broker.close()));
      await server.stop();
    },
  };
});
