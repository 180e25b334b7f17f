/**
 * MQTT over WebSocket, client side, with the web-standard `WebSocket` of Deno, Bun, Node ≥ 22 and browsers
 * (MQTT 5 §6).
 *
 * @module
 */

import type { Transport } from "./transport.ts";

/** Options of {@linkcode connectWebSocket}. */
export interface WebSocketOptions {
  /**
   * Subprotocols offered; the server must select one of them [MQTT-6.0.0-3]. An empty list offers none and
   * checks nothing.
   * @default {["mqtt"]}
   */
  protocols?: string[];
  /** Aborts the opening handshake: the promise rejects with `signal.reason` and the socket is closed. */
  signal?: AbortSignal;
  /**
   * Bytes that may wait in the socket's send buffer (`bufferedAmount`) before a write waits.
   * @default {1048576}
   */
  highWaterMark?: number;
  /**
   * How often, in milliseconds, a waiting write checks `bufferedAmount` again: WebSocket has no event for a
   * drained send buffer, so backpressure polls.
   * @default {2}
   */
  pollIntervalMs?: number;
}

/** How long writes that the socket takes at once may follow each other before one waits for a timer. */
const YIELD_EVERY_MS = 5;

/** How long `close()` waits for the closing handshake before it settles anyway. */
const CLOSE_WAIT_MS = 1000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The part of a WebSocket that {@linkcode fromWebSocket} uses: the web standard's `WebSocket` (including
 * `Deno.upgradeWebSocket`'s) and the `ws` package's both have it.
 */
export interface WebSocketLike {
  /** Set to `"arraybuffer"` by {@linkcode fromWebSocket}. */
  binaryType: string;
  /** `1` while open. */
  readonly readyState: number;
  /** Bytes queued by `send()` and not yet sent. */
  readonly bufferedAmount: number;
  /** Sends one binary frame. */
  send(data: Uint8Array): void;
  /** Starts the closing handshake. */
  close(): void;
  /** Receives frames. */
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  /** Learns of the end of the connection. */
  addEventListener(type: "close", listener: (event: { wasClean: boolean; code: number }) => void): void;
}

/** `WebSocket.OPEN`, spelled out so that a `ws` socket works where no global `WebSocket` exists. */
const OPEN = 1;

/**
 * Wraps an open WebSocket as a {@linkcode Transport}: the client side of {@linkcode connectWebSocket}, and the
 * server side of a broker's WebSocket listener.
 *
 * Every write is one binary frame [MQTT-6.0.0-1]; every received binary frame is one chunk (packets may span
 * or share frames [MQTT-6.0.0-2]); a text frame ends the readable with an error and closes the socket. A write
 * resolves once the frame is queued, but waits first while more than `highWaterMark` bytes are still buffered,
 * checking every `pollIntervalMs`, since WebSocket has no event for a drained send buffer. Reading has no
 * backpressure: WebSocket cannot pause its sender. Closing the writable closes the whole socket (WebSocket has
 * no half-close); `close()` ends the local readable at once and settles when the closing handshake is done, or
 * after a second.
 *
 * @param ws An open WebSocket, whose subprotocol the caller has checked.
 * @param options Send-buffer limits (`protocols` and `signal` are ignored here).
 * @returns The transport.
 *
 * @example Serve MQTT over a WebSocket upgraded by Deno
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect } from "@x/mqtt";
 * import { Broker } from "@x/mqtt/broker";
 * import { fromWebSocket } from "@x/mqtt/transport/websocket";
 * const broker = new Broker();
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
 *   const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "mqtt" });
 *   socket.addEventListener("open", () => void broker.handle(fromWebSocket(socket)), { once: true });
 *   return response;
 * });
 * const client = await connect(`ws://127.0.0.1:${server.addr.port}/mqtt`);
 * const subscription = await client.subscribe("chat/#");
 * await client.publish("chat/1", "hi");
 * for await (const message of subscription) {
 *   assert.equal(message.text(), "hi");
 *   break;
 * }
 * await client.close();
 * await broker.close();
 * await server.shutdown();
 * ```
 */
export function fromWebSocket(ws: WebSocketLike, options: WebSocketOptions = {}): Transport {
  const transport = wrap(ws, options);
  if (ws.readyState !== OPEN) void transport.close();
  return transport;
}

/** {@linkcode fromWebSocket} without the open check: listens from the start, so no early frame is missed. */
function wrap(ws: WebSocketLike, options: WebSocketOptions): Transport {
  const { highWaterMark = 1 << 20, pollIntervalMs = 2 } = options;
  ws.binaryType = "arraybuffer";
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let readDone = false;
  function endReadable(error?: Error): void {
    if (readDone) return;
    readDone = true;
    if (error !== undefined) controller.error(error);
    else controller.close();
  }
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      readDone = true;
      ws.close();
    },
  });
  const closed = new Promise<void>((resolve) => {
    ws.addEventListener("close", (event) => {
      endReadable(
        event.wasClean ? undefined : new Error(`The WebSocket closed abnormally (code ${event.code})`),
      );
      resolve();
    });
  });
  ws.addEventListener("message", (event) => {
    if (readDone) return;
    const data = event.data;
    if (data instanceof ArrayBuffer) {
      controller.enqueue(new Uint8Array(data));
    } else if (ArrayBuffer.isView(data)) {
      controller.enqueue(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } else {
      // [MQTT-6.0.0-1] anything but a binary frame closes the connection.
      endReadable(new Error("Cannot read MQTT from a WebSocket text frame [MQTT-6.0.0-1]"));
      ws.close();
    }
  });

  function closedError(): Error {
    return new Error("Cannot write: the WebSocket is closed");
  }
  let lastYield = performance.now();
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (ws.readyState !== OPEN) throw closedError();
      ws.send(chunk);
      if (ws.bufferedAmount <= highWaterMark && performance.now() - lastYield >= YIELD_EVERY_MS) {
        // send() never waits, so a loop that awaits each write (`for (;;) await client.publish(…)` at QoS 0)
        // would run on microtasks alone and starve timers, reads and the page: give way now and then.
        await sleep(0);
        lastYield = performance.now();
      }
      while (ws.bufferedAmount > highWaterMark) {
        await sleep(pollIntervalMs);
        if (ws.readyState !== OPEN) throw closedError();
      }
    },
    close() {
      ws.close();
    },
    abort() {
      ws.close();
    },
  });

  let closing: Promise<void> | undefined;
  return {
    readable,
    writable,
    close(): Promise<void> {
      if (closing === undefined) {
        endReadable();
        ws.close();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const waited = new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_WAIT_MS));
        closing = Promise.race([closed, waited]).finally(() => clearTimeout(timer));
      }
      return closing;
    },
  };
}

/**
 * Opens a WebSocket to an MQTT broker, checks that the server selected one of `protocols`, and wraps the
 * socket with {@linkcode fromWebSocket}.
 *
 * @param url A `ws:` or `wss:` URL, path included (often `/mqtt`).
 * @param options Subprotocols, abort signal and send-buffer limits.
 * @returns A transport over the open socket.
 * @throws {Error} When the connection fails or closes during the handshake, or when the server did not
 * select one of `protocols` (Deno's `WebSocket` opens anyway, so this is checked here).
 * @throws {SyntaxError} When `url` is not a valid WebSocket URL.
 * @throws {unknown} `signal.reason` when aborted first.
 *
 * @example Publish over WebSocket
 * ```ts ignore
 * import { connectWebSocket } from "@x/mqtt/transport/websocket";
 * const transport = await connectWebSocket("ws://broker.example:8080/mqtt");
 * const writer = transport.writable.getWriter();
 * await writer.write(new Uint8Array([0xe0, 0x00])); // DISCONNECT
 * await transport.close();
 * ```
 *
 * @example Connect to a local broker's WebSocket listener
 * ```ts
 * import assert from "node:assert/strict";
 * import { Broker } from "@x/mqtt/broker";
 * import { encode, PacketDecoder } from "@x/mqtt/codec";
 * import { connectWebSocket } from "@x/mqtt/transport/websocket";
 * const broker = new Broker();
 * const { port } = await broker.listen({ port: 0, websocket: true });
 * const transport = await connectWebSocket(`ws://127.0.0.1:${port}/mqtt`);
 * const writer = transport.writable.getWriter();
 * await writer.write(
 *   encode({ type: "connect", protocolVersion: 5, clientId: "ws-1", cleanStart: true, keepAlive: 0 }, 5),
 * );
 * const reader = transport.readable.getReader();
 * const decoder = new PacketDecoder({ version: 5 });
 * decoder.push((await reader.read()).value!);
 * assert.equal(decoder.next()?.type, "connack");
 * await transport.close();
 * await broker.close();
 * ```
 */
export async function connectWebSocket(url: string, options: WebSocketOptions = {}): Promise<Transport> {
  const { signal } = options;
  const protocols = options.protocols ?? ["mqtt"];
  signal?.throwIfAborted();
  const ws = new WebSocket(url, protocols);
  // Listen before the open event: a frame sent with the handshake's response may be dispatched in its turn.
  const transport = wrap(ws, options);
  await new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      ws.removeEventListener("open", onOpen);
      ws.removeEventListener("error", onFail);
      ws.removeEventListener("close", onFail);
      signal?.removeEventListener("abort", onAbort);
    };
    const onOpen = () => {
      cleanup();
      resolve();
    };
    const onFail = (event: Event) => {
      cleanup();
      const code = event.type === "close" ? ` (code ${(event as CloseEvent).code})` : "";
      reject(new Error(`Cannot connect to ${url}: the WebSocket connection failed${code}`));
    };
    const onAbort = () => {
      cleanup();
      ws.close();
      reject(signal?.reason);
    };
    ws.addEventListener("open", onOpen);
    ws.addEventListener("error", onFail);
    ws.addEventListener("close", onFail);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  if (protocols.length > 0 && !protocols.includes(ws.protocol)) {
    ws.close();
    throw new Error(
      `Cannot use the WebSocket at ${url}: the server selected subprotocol "${ws.protocol}", not one of ` +
        `${protocols.map((p) => `"${p}"`).join(", ")} [MQTT-6.0.0-3]`,
    );
  }
  return transport;
}
