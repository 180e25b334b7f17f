/**
 * A stand-in broker for `scripts/bench/client.ts --broker stub`: a TCP server in the benchmark's own process
 * that answers the client under test directly, so that no broker's ceiling caps the client's figure.
 *
 * It answers CONNECT with CONNACK (accepted, no session), SUBSCRIBE with SUBACK (the QoS asked for),
 * UNSUBSCRIBE with UNSUBACK and PINGREQ with PINGRESP, and closes on DISCONNECT. Everything else goes to
 * the role the run gives the connection once its CONNECT arrived ({@linkcode StubBroker.onSession}): the raw
 * subscriber of `_client_raw.ts`, which receives and acknowledges the client's publishes, or the raw
 * publisher, which floods the client's subscription. Both speak MQTT 3.1.1 only and trust the client; this is
 * a load peer, not a broker.
 *
 * @module
 */

import { createServer, type Server, type Socket } from "node:net";
import process from "node:process";
import { BenchClient, type FrameHandler } from "./_broker_wire.ts";

const CONNACK = new Uint8Array([0x20, 2, 0, 0]);
const PINGRESP = new Uint8Array([0xd0, 0]);

/** The stand-in broker: one TCP server on 127.0.0.1, serving one client at a time. */
export class StubBroker {
  readonly name = "stub";
  readonly port: number;
  /** Its connections are served by this process. */
  readonly pid: number = process.pid;
  readonly warnings: string[] = [];
  warningCount = 0;
  /**
   * Given each new connection once its CONNECT arrived; it installs the run's role with
   * `RawSubscriber.over` or `RawPublisher.over`. Unset: the connection gets only the answers above.
   */
  onSession: ((client: BenchClient) => void) | undefined;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
    server.on("connection", (socket) => this.#accept(socket));
  }

  /**
   * Starts listening on a free port of 127.0.0.1.
   *
   * @returns The listening stub.
   */
  static start(): Promise<StubBroker> {
    return new Promise((resolve, reject) => {
      const server = createServer({ noDelay: true });
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        if (address === null || typeof address === "string") {
          reject(new Error("The stub broker has no TCP address"));
          return;
        }
        resolve(new StubBroker(server, address.port));
      });
    });
  }

  /** Its last lines of output, for failure messages: it writes none. */
  tail(): string[] {
    return [];
  }

  /** Whether it stopped by itself: never. */
  exited(): string | undefined {
    return undefined;
  }

  /** Closes the server and every connection. */
  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    const client = new BenchClient(socket, "stub-broker");
    let role: FrameHandler | undefined;
    const note = (what: string) => {
      this.warningCount++;
      if (this.warnings.length < 20) this.warnings.push(what);
    };
    // Installed before any frame is read, and kept: the scanner reads `onFrame` once per chunk, and a
    // chunk may hold the CONNECT and the SUBSCRIBE after it.
    const handler: FrameHandler = (first, buffer, body, end) => {
      switch (first >> 4) {
        case 1: // CONNECT
          client.write(CONNACK);
          if (this.onSession !== undefined) {
            this.onSession(client);
            role = client.onFrame;
          }
          client.onFrame = handler;
          return;
        case 8: // SUBSCRIBE: packet id, then (filter, options) pairs; grant what each asks for.
        case 10: { // UNSUBSCRIBE: packet id, then filters.
          const codes: number[] = [];
          for (let p = body + 2; p < end;) {
            p += 2 + ((buffer[p] << 8) | buffer[p + 1]);
            if (first >> 4 === 8) codes.push(buffer[p++] & 3);
          }
          const answer = first >> 4 === 8 ? 0x90 : 0xb0;
          client.write(new Uint8Array([answer, 2 + codes.length, buffer[body], buffer[body + 1], ...codes]));
          return;
        }
        case 12: // PINGREQ
          client.write(PINGRESP);
          return;
        case 14: // DISCONNECT
          client.destroy();
          return;
        default:
          if (role !== undefined) role(first, buffer, body, end);
          else note(`unexpected packet of type ${first >> 4} before CONNECT or without a role`);
      }
    };
    client.onFrame = handler;
  }
}
