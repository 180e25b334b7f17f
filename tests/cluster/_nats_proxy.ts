/**
 * A TCP proxy on 127.0.0.1 between one broker node and nats-server, to cut that node off NATS while its MQTT
 * clients stay connected: {@linkcode PartitionProxy.partition} resets every connection through it (RST, as
 * when a network path dies) and resets each new one at once until {@linkcode PartitionProxy.heal}.
 *
 * @module
 */

import { createServer, type Server, Socket } from "node:net";
import { resetSocket } from "../chaos/_proxy.ts";

/** A running {@linkcode startPartitionProxy}. */
export interface PartitionProxy {
  /** The port the node connects to instead of nats-server's. */
  readonly port: number;
  /** How many connections were opened through it (the first and every reconnection). */
  readonly opened: number;
  /** How many connections it refused while partitioned (the node's reconnection attempts). */
  readonly refused: number;
  /** Resets every live connection and refuses new ones, until `heal()`. */
  partition(): void;
  /** Forwards new connections again. */
  heal(): void;
  /** Stops listening and resets what is still open. */
  close(): Promise<void>;
}

/**
 * Starts a proxy on a free loopback port that forwards every connection to `target` on 127.0.0.1.
 *
 * @param target The port to forward to (nats-server's).
 * @returns The proxy, forwarding.
 */
export async function startPartitionProxy(target: number): Promise<PartitionProxy> {
  const live = new Set<Socket>();
  let partitioned = false;
  let opened = 0;
  let refused = 0;

  const server: Server = createServer((downstream) => {
    if (partitioned) {
      refused++;
      resetSocket(downstream);
      return;
    }
    opened++;
    downstream.pause();
    const upstream = new Socket();
    live.add(downstream);
    live.add(upstream);
    // One side failed or was reset: so is the other, as a dead path would do to it.
    const fail = () => {
      resetSocket(downstream);
      resetSocket(upstream);
    };
    downstream.on("error", fail);
    upstream.on("error", fail);
    downstream.on("close", () => live.delete(downstream));
    upstream.on("close", () => live.delete(upstream));
    upstream.connect(target, "127.0.0.1", () => {
      // pipe() ends the other side after a normal end (FIN), once what was read is written.
      downstream.pipe(upstream);
      upstream.pipe(downstream);
      downstream.resume();
    });
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : 0);
    });
  });

  const resetAll = () => {
    for (const socket of [...live]) resetSocket(socket);
    live.clear();
  };

  return {
    port,
    get opened() {
      return opened;
    },
    get refused() {
      return refused;
    },
    partition() {
      partitioned = true;
      resetAll();
    },
    heal() {
      partitioned = false;
    },
    async close() {
      partitioned = true;
      resetAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
