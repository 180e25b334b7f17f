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

/** How long `close()` waits for the closing handshake before it settles anyway. */
const CLOSE_WAIT_MS = 1000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Opens a WebSocket to an MQTT broker and wraps it as a {@linkcode Transport}.
 *
 * Every write is one binary frame [MQTT-6.0.0-1]; every received binary frame is one chunk (packets may span
 * or share frames [MQTT-6.0.0-2]); a text frame ends the readable with an error and closes the socket. A write
 * resolves once the frame is queued, but waits first while more than `highWaterMark` bytes are still buffered,
 * checking every `pollIntervalMs`. Reading has no backpressure: WebSocket cannot pause its sender. Closing the
 * writable closes the whole socket (WebSocket has no half-close).
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
 */
export async function connectWebSocket(url: string, options: WebSocketOptions = {}): Promise<Transport> {
  const { signal, highWaterMark = 1 << 20, pollIntervalMs = 2 } = options;
  const protocols = options.protocols ?? ["mqtt"];
  signal?.throwIfAborted();
  const ws = new WebSocket(url, protocols);
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
        event.wasClean
          ? undefined
          : new Error(`The WebSocket to ${url} closed abnormally (code ${event.code})`),
      );
      resolve();
    });
  });
  ws.addEventListener("message", (event) => {
    if (readDone) return;
    if (typeof event.data === "string") {
      // [MQTT-6.0.0-1] anything but a binary frame closes the connection.
      endReadable(new Error("Cannot read MQTT from a WebSocket text frame [MQTT-6.0.0-1]"));
      ws.close();
      return;
    }
    controller.enqueue(new Uint8Array(event.data as ArrayBuffer));
  });

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

  function closedError(): Error {
    return new Error("Cannot write: the WebSocket is closed");
  }
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (ws.readyState !== WebSocket.OPEN) throw closedError();
      ws.send(chunk);
      while (ws.bufferedAmount > highWaterMark) {
        await sleep(pollIntervalMs);
        if (ws.readyState !== WebSocket.OPEN) throw closedError();
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
        closing = Promise.race([
          closed,
          new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_WAIT_MS)),
        ])
          .finally(() => clearTimeout(timer));
      }
      return closing;
    },
  };
}
