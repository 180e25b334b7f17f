/**
 * A TCP proxy on 127.0.0.1 that resets both sides of every live connection on a seeded random schedule (RST,
 * not FIN: bytes still in flight are lost, as when a network path dies). For the chaos tests.
 */

import { createServer, type Server, Socket } from "node:net";
import { seededRandom } from "../_random.ts";

/** A running {@linkcode startCuttingProxy}. */
export interface CuttingProxy {
  /** The port clients connect to. */
  readonly port: number;
  /** How many times every live connection was reset. */
  readonly cuts: number;
  /** How many connections were reset in all. */
  readonly reset: number;
  /** How many connections clients opened through the proxy. */
  readonly opened: number;
  /** Starts cutting (connections pass untouched until then). */
  start(): void;
  /** Stops cutting; connections opened from now on live. */
  calm(): void;
  /** Resets every live connection once, now. */
  cut(): void;
  /** Stops listening and resets what is still open. */
  close(): Promise<void>;
}

/** Options of {@linkcode startCuttingProxy}. */
export interface CuttingProxyOptions {
  /** The port on 127.0.0.1 to forward to. */
  target: number;
  /** The seed of the schedule. */
  seed: number;
  /** The shortest time between two cuts, in milliseconds. */
  minMs: number;
  /** The longest time between two cuts, in milliseconds. */
  maxMs: number;
}

/** One connection through the proxy: the client's socket and ours to the target. */
interface Pair {
  readonly downstream: Socket;
  readonly upstream: Socket;
}

/**
 * Starts a proxy on a free loopback port that forwards to `target` and, once started, resets both sides of
 * every live connection every `minMs` to `maxMs` milliseconds (uniform, from the seed).
 *
 * @param options Target, seed and schedule.
 * @returns The proxy.
 */
export async function startCuttingProxy(options: CuttingProxyOptions): Promise<CuttingProxy> {
  const pairs = new Set<Pair>();
  const random = seededRandom(options.seed);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let cuts = 0;
  let reset = 0;
  let opened = 0;

  const server: Server = createServer((downstream) => {
    opened++;
    downstream.pause();
    const upstream = new Socket();
    const pair: Pair = { downstream, upstream };
    pairs.add(pair);
    let over = false;
    const fail = () => {
      if (over) return;
      over = true;
      pairs.delete(pair);
      // One side was reset or failed: so is the other, as a dead path would do to it.
      resetSocket(downstream);
      resetSocket(upstream);
    };
    const ended = () => {
      if (over) return;
      over = true;
      pairs.delete(pair);
    };
    downstream.on("error", fail);
    upstream.on("error", fail);
    downstream.on("close", ended);
    upstream.on("close", ended);
    upstream.connect(options.target, "127.0.0.1", () => {
      // pipe() ends the other side after a normal end (FIN), once what was read is written.
      downstream.pipe(upstream);
      upstream.pipe(downstream);
      downstream.resume();
    });
  });

  const cutAll = () => {
    cuts++;
    for (const pair of [...pairs]) {
      pairs.delete(pair);
      reset++;
      resetSocket(pair.downstream);
      resetSocket(pair.upstream);
    }
  };

  const schedule = () => {
    const delay = options.minMs + random() * (options.maxMs - options.minMs);
    timer = setTimeout(() => {
      cutAll();
      schedule();
    }, delay);
  };

  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : 0);
    });
  });

  return {
    port,
    get cuts() {
      return cuts;
    },
    get reset() {
      return reset;
    },
    get opened() {
      return opened;
    },
    start() {
      if (timer === undefined) schedule();
    },
    calm() {
      clearTimeout(timer);
      timer = undefined;
    },
    cut: cutAll,
    async close() {
      clearTimeout(timer);
      timer = undefined;
      for (const pair of pairs) {
        resetSocket(pair.downstream);
        resetSocket(pair.upstream);
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends RST instead of FIN: what was not yet read on either side is lost. */
export function resetSocket(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}
