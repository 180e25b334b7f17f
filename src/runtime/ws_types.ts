/**
 * The options of the WebSocket listeners in `{deno,bun,node}/ws_server.ts`.
 *
 * @module
 */

/** Where and how to accept MQTT over WebSocket. */
export interface WebSocketListenOptions {
  /** Default 127.0.0.1. */
  hostname?: string;
  /** 0 picks a free port. */
  port: number;
  /** The HTTP path clients connect to. Default `/mqtt`. */
  path?: string;
  /** PEM certificate and key for `wss://`. */
  cert?: string;
  key?: string;
  /**
   * Answers the HTTP requests that are not for the WebSocket's path (a listener that also serves pages and
   * data); without it they get 404.
   */
  http?: HttpHandler;
}

/** Answers one HTTP request. */
export type HttpHandler = (request: Request) => Response | Promise<Response>;

/** Whether a client's `Sec-WebSocket-Protocol` header offers `mqtt` [MQTT-6.0.0-3]. */
export function offersMqtt(header: string | null | undefined): boolean {
  return (header ?? "").split(",").some((protocol) => protocol.trim() === "mqtt");
}
