/**
 * The two brokers client-side tests run against: ours in this process, and mosquitto as a child process (its
 * tests skip without it, saying why).
 */

import { Broker } from "../src/broker/broker.ts";
import { mosquittoMissing, startMosquitto } from "./_mosquitto.ts";

/** A started broker: where it listens, and how to stop it. */
export interface Server {
  url: string;
  stop(): Promise<void>;
}

/** Each broker by name, with why its tests skip (`false`: they run). */
export const SERVERS: Record<string, { start: () => Promise<Server>; skip: string | false }> = {
  "our broker": {
    start: async () => {
      const broker = new Broker({ sysInterval: 0 });
      const { port } = await broker.listen({ hostname: "127.0.0.1", port: 0 });
      return { url: `mqtt://127.0.0.1:${port}`, stop: () => broker.close() };
    },
    skip: false,
  },
  mosquitto: {
    start: async () => {
      const mosquitto = await startMosquitto();
      return { url: `mqtt://127.0.0.1:${mosquitto.port}`, stop: () => mosquitto.stop() };
    },
    skip: mosquittoMissing() ?? false,
  },
};
